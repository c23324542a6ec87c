"""Hugging Face agents: a batched generator for `Text` seats, a scalar scorer for `Box` seats.

Spec strings (the `hf` kind; `ckpt:` specs of checkpoints these agents wrote load
through the same factory):

    hf:<model>                       a local dir, or a hub id in the local cache
    hf:<hub id>?download=true        a hub id fetched from the hub when it is not cached
    hf:<file.gguf>                   a GGUF file (weights are dequantised on load)
    hf:<dir or hub id>::<file.gguf>  a GGUF file inside a dir / hub repo
    hf:<model>?key=value&key=value   with options, e.g.
    hf:runs/tiny-pv?temperature=0.7&top_k=20&max_new_tokens=64&stop=%0A%0A
    hf:<model>?lora=16&gradient_checkpointing=true&mixed_precision=bf16   a LoRA seat (see `lora`)

Options are a URL query string (percent-encode special characters: `%0A` is a
newline, `%26` an `&`; `+` means a space). Repeat `stop=` for several stop
strings. The keys are the fields of `SamplingConfig` (generator only) and of
`LoadConfig` (both kinds); an unknown key is an error that lists the known ones.

Which agent a spec builds depends on the seat: a gymnasium `Text` action space
gets a `GeneratorAgent`, a `Box` action space a `ScorerAgent`
(`AutoModelForSequenceClassification` with one label; a head missing from the
checkpoint is initialised from `LoadConfig.seed`, never from the global RNG) -- or,
when the dir's `arena_agent.json` declares a `readout`, a `LikelihoodScorer`: a
causal LM whose score is the soft-min log-probability of the text's tokens after a
marker (a generative verifier; `likelihood`).

Both agents save standard `save_pretrained` directories (safetensors, tokenizer,
plus `arena_agent.json` holding the sampling settings, which `build` reads back
before applying the spec's own options) and `load` weights in place, so an
optimizer that holds the parameters stays valid.

Modules, one job each: `config` (the options and the spec string), `loading` (models, tokenizers, GGUF, adapter
checkpoints, agent dirs), `generator` (`GeneratorAgent`), `kvcache` (its KV cache), `decode_step` (a Llama
model's prefill and decode step of their own on a CPU), `cpu_attention` (attention against the KV cache on a CPU:
a C loop, its C in `attention_c`), `native` (compiling and loading the project's C on first use), `scorer`
(`ScorerAgent`), `likelihood` (`LikelihoodScorer`), `factory` (`build`, the `hf:` entry point) and `quiet`
(`quiet_transformers`), `lora` (LoRA adapters through peft: wrapping, the base-policy view, saving an adapter;
below `loading`, which uses it). Everything public is importable from here.
"""
from agents.hf.config import (LoadConfig, SamplingConfig, parse_hf_arg, resolve_device, resolve_dtype,
                              sampling_from_meta, split_options)
from agents.hf.factory import build, seat_action_space
from agents.hf.generator import Completion, GeneratorAgent, PreallocLayer, encode_prompt, new_kv_cache
from agents.hf.likelihood import LikelihoodScorer, Readout
from agents.hf.loading import (AGENT_META, check_model_ref, load_tokenizer, load_weights_in_place, read_agent_meta,
                               save_agent_dir, slow_to_load)
from agents.hf.quiet import quiet_transformers
from agents.hf.scorer import ScorerAgent, init_head

__all__ = [
    "AGENT_META", "Completion", "GeneratorAgent", "LikelihoodScorer", "LoadConfig", "PreallocLayer", "SamplingConfig",
    "ScorerAgent", "build", "check_model_ref", "encode_prompt", "init_head", "load_tokenizer", "load_weights_in_place",
    "new_kv_cache", "parse_hf_arg", "quiet_transformers", "Readout", "read_agent_meta", "resolve_device",
    "resolve_dtype", "sampling_from_meta", "save_agent_dir", "seat_action_space", "slow_to_load", "split_options",
]
