"""Hugging Face agents: a batched generator for `Text` seats, a scalar scorer for `Box` seats.

Spec strings (the `hf` kind; `ckpt:` specs of checkpoints these agents wrote load
through the same factory):

    hf:<model>                       a local dir or a hub id
    hf:<file.gguf>                   a GGUF file (weights are dequantised on load)
    hf:<dir or hub id>::<file.gguf>  a GGUF file inside a dir / hub repo
    hf:<model>?key=value&key=value   with options, e.g.
    hf:runs/tiny-pv?temperature=0.7&top_k=20&max_new_tokens=64&stop=%0A%0A

Options are a URL query string (percent-encode special characters: `%0A` is a
newline, `%26` an `&`; `+` means a space). Repeat `stop=` for several stop
strings. The keys are the fields of `SamplingConfig` (generator only) and of
`LoadConfig` (both kinds); an unknown key is an error that lists the known ones.

Which agent a spec builds depends on the seat: a gymnasium `Text` action space
gets a `GeneratorAgent`, a `Box` action space a `ScorerAgent`
(`AutoModelForSequenceClassification` with one label; a head missing from the
checkpoint is initialised from `LoadConfig.seed`, never from the global RNG).

Both agents save standard `save_pretrained` directories (safetensors, tokenizer,
plus `arena_agent.json` holding the sampling settings, which `build` reads back
before applying the spec's own options) and `load` weights in place, so an
optimizer that holds the parameters stays valid.
"""
from __future__ import annotations

import dataclasses
import json
import typing
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence
from urllib.parse import parse_qsl

import numpy as np
import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from arena.types import ArenaError, Move, Observation

AGENT_META = "arena_agent.json"


# -- settings -------------------------------------------------------------------

@dataclass
class SamplingConfig:
    """How a `GeneratorAgent` decodes. Every field is settable as `hf:<model>?field=value`."""

    temperature: float = 1.0
    """Softmax temperature; 0 means greedy decoding (argmax)."""
    top_p: float = 1.0
    """Nucleus sampling: keep the smallest set of tokens whose probability reaches top_p (1 = off)."""
    top_k: int = 0
    """Keep only the k most likely tokens before sampling (0 = off)."""
    max_new_tokens: int = 64
    """Most tokens generated per completion."""
    stop: tuple[str, ...] = ()
    """Stop strings: a completion ends once its text contains one; the action is cut before it
    (the recorded `completion_ids` keep the tokens that spelled it, so a learner learns to stop)."""
    ignore_eos: bool = False
    """Keep generating past EOS, so every completion has `max_new_tokens` tokens (benchmarks)."""
    chat_template: bool = True
    """Wrap the prompt as a user message with the tokenizer's chat template when it has one."""
    system: str = ""
    """System message put before the prompt (chat template only; empty = none)."""
    max_prompt_tokens: int = 0
    """Keep only the last N prompt tokens (0 = no truncation)."""

    def __post_init__(self) -> None:
        if isinstance(self.stop, str):
            self.stop = (self.stop,)
        self.stop = tuple(s for s in self.stop if s)
        if self.temperature < 0 or not 0 < self.top_p <= 1 or self.top_k < 0 or self.max_new_tokens < 1:
            raise ArenaError(f"bad sampling settings {self}: need temperature >= 0, 0 < top_p <= 1, "
                             "top_k >= 0, max_new_tokens >= 1")


@dataclass
class LoadConfig:
    """How a model is loaded and batched. Every field is settable as `hf:<model>?field=value`."""

    device: str = ""
    """Torch device; empty = the arena's `--device`, else cuda when available, else cpu."""
    dtype: str = "float32"
    """Weight dtype: float32 (default; what learners want), bfloat16, float16, or auto (as stored)."""
    max_batch: int = 0
    """Split one `act` call into chunks of at most this many observations (0 = one batch)."""
    max_length: int = 0
    """Scorer only: truncate inputs to this many tokens (0 = no truncation)."""
    seed: int = 0
    """Initial RNG seed; also initialises a scalar head the checkpoint does not have."""


def _field_types(cls: type) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls)}


def _coerce(name: str, values: list[str], typ: Any) -> Any:
    raw = values[-1]
    try:
        if typ is bool:
            if raw.lower() in ("1", "true", "yes", "on"):
                return True
            if raw.lower() in ("0", "false", "no", "off"):
                return False
            raise ValueError(raw)
        if typ is int:
            return int(raw)
        if typ is float:
            return float(raw)
        if typing.get_origin(typ) is tuple:
            return tuple(values)
        return raw
    except ValueError:
        raise ArenaError(f"bad value for hf option {name}: {raw!r}") from None


def parse_hf_arg(arg: str) -> tuple[str, str | None, dict[str, list[str]]]:
    """`<model>[::<file.gguf>][?query]` -> (model dir or hub id, gguf file name or None, options)."""
    ref, _, query = arg.partition("?")
    ref = ref.strip()
    if not ref:
        raise ArenaError("hf spec needs a model: hf:<dir, hub id or file.gguf>[?options]")
    options: dict[str, list[str]] = {}
    for key, value in parse_qsl(query, keep_blank_values=True):
        options.setdefault(key, []).append(value)
    gguf = None
    if "::" in ref:
        ref, _, gguf = ref.partition("::")
    elif ref.endswith(".gguf"):
        path = Path(ref)
        ref, gguf = str(path.parent), path.name
    return ref, gguf, options


def split_options(options: dict[str, list[str]], *, generator: bool,
                  base_sampling: SamplingConfig | None = None) -> tuple[SamplingConfig, LoadConfig]:
    """Options to (SamplingConfig, LoadConfig); sampling keys are refused for a scorer."""
    stypes, ltypes = _field_types(SamplingConfig), _field_types(LoadConfig)
    known = [*ltypes, *(stypes if generator else [])]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ArenaError(f"unknown hf option(s) {', '.join(unknown)} for a "
                         f"{'generator' if generator else 'scorer'} seat; known: {', '.join(known)}")
    s = {k: _coerce(k, v, stypes[k]) for k, v in options.items() if k in stypes}
    load = LoadConfig(**{k: _coerce(k, v, ltypes[k]) for k, v in options.items() if k in ltypes})
    sampling = dataclasses.replace(base_sampling or SamplingConfig(), **s)
    return sampling, load


def resolve_device(device: str | None) -> torch.device:
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def resolve_dtype(dtype: str) -> Any:
    if dtype == "auto":
        return "auto"
    try:
        return {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
                "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}[dtype]
    except KeyError:
        raise ArenaError(f"unknown dtype {dtype!r}: use float32, bfloat16, float16 or auto") from None


# -- loading and saving -----------------------------------------------------------

def check_model_ref(ref: str) -> None:
    """A `ref` that can only be a local path (absolute, `./`, `../`, `~`, or more than one `/`;
    a hub id is `name` or `owner/name`) must exist: say so in one line instead of a hub error."""
    local = ref.startswith(("/", "./", "../", "~")) or ref.count("/") > 1
    if local and not Path(ref).expanduser().exists():
        raise ArenaError(f"no model at {ref!r}: no such file or directory")


def load_tokenizer(ref: str, gguf_file: str | None = None):
    from transformers import AutoTokenizer

    kw = {"gguf_file": gguf_file} if gguf_file else {}
    try:
        tok = AutoTokenizer.from_pretrained(ref, **kw)
    except (OSError, ValueError) as e:
        raise ArenaError(f"cannot load a tokenizer from {ref!r}{' / ' + gguf_file if gguf_file else ''}: {e}") from e
    if tok.pad_token_id is None:  # many causal LMs ship without one; padding is masked anyway
        tok.pad_token = tok.eos_token if tok.eos_token is not None else tok.convert_ids_to_tokens(0)
    return tok


def load_weights_in_place(model: torch.nn.Module, directory: Path) -> None:
    """Copy the safetensors weights in `directory` into `model`'s existing parameters.

    Keys missing from the files are allowed only for tied parameters (e.g. an
    `lm_head` that shares the embedding), which `save_pretrained` writes once.
    """
    from safetensors.torch import load_file

    files = sorted(Path(directory).glob("*.safetensors"))
    if not files:
        raise ArenaError(f"no safetensors weights in {directory}")
    state: dict[str, torch.Tensor] = {}
    for f in files:
        state.update(load_file(str(f)))
    result = model.load_state_dict(state, strict=False)
    own = model.state_dict()
    loaded_ptrs = {own[k].data_ptr() for k in state if k in own}
    untied = [k for k in result.missing_keys if own[k].data_ptr() not in loaded_ptrs]
    if untied or result.unexpected_keys:
        raise ArenaError(f"checkpoint {directory} does not fit the model: missing {untied[:5]}, "
                         f"unexpected {result.unexpected_keys[:5]}")


@contextmanager
def quiet_transformers(progress: bool = False, warnings: bool = True) -> Iterator[None]:
    """Within the block, transformers shows progress bars only if `progress` and logs
    warnings only if `warnings`; both settings are restored after it. Checkpoints are
    saved every round and small models load in milliseconds: their bars are noise."""
    from transformers.utils import logging as hf_logging

    bars, verbosity = hf_logging.is_progress_bar_enabled(), hf_logging.get_verbosity()
    if not progress:
        hf_logging.disable_progress_bar()
    if not warnings:
        hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        (hf_logging.enable_progress_bar if bars else hf_logging.disable_progress_bar)()


def slow_to_load(ref: str) -> bool:
    """Whether loading `ref` may take long enough to deserve a progress bar: a hub id,
    or a local checkpoint of 1 GiB or more."""
    path = Path(ref)
    if not path.exists():
        return True
    files = [path] if path.is_file() else [*path.glob("*.safetensors"), *path.glob("*.gguf"), *path.glob("*.bin")]
    return sum(f.stat().st_size for f in files) >= 2**30


def save_agent_dir(model, tokenizer, directory: Path, meta: dict[str, Any]) -> None:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with quiet_transformers():
        model.save_pretrained(directory)  # safetensors only in transformers >= 5
        tokenizer.save_pretrained(directory)
    (directory / AGENT_META).write_text(json.dumps(meta, indent=2))


def read_agent_meta(ref: str) -> dict[str, Any]:
    path = Path(ref) / AGENT_META
    if not path.is_file():
        return {}
    try:
        return json.loads(path.read_text())
    except ValueError as e:
        raise ArenaError(f"unreadable {path}: {e}") from e


def encode_prompt(tokenizer, prompt: str, sampling: SamplingConfig | None = None) -> list[int]:
    """The token ids a generator conditions on for `prompt`.

    With a chat template (and `sampling.chat_template`): the prompt as the user
    message, plus the assistant turn's opening. Otherwise the raw prompt with the
    tokenizer's own special tokens (the tiny tokenizer adds `<s>`). Pretraining
    and learners use this same function, so train and play see identical inputs.
    """
    sampling = sampling or SamplingConfig()
    if sampling.chat_template and getattr(tokenizer, "chat_template", None):
        messages = [{"role": "user", "content": prompt}]
        if sampling.system:
            messages.insert(0, {"role": "system", "content": sampling.system})
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    else:
        ids = tokenizer(prompt)["input_ids"]
    if sampling.max_prompt_tokens and len(ids) > sampling.max_prompt_tokens:
        ids = ids[-sampling.max_prompt_tokens:]
    return list(ids)


def _stop_token_ids(model, tokenizer) -> set[int]:
    ids: set[int] = set()
    for source in (getattr(model, "generation_config", None), model.config, tokenizer):
        eos = getattr(source, "eos_token_id", None)
        if eos is None:
            continue
        ids.update(eos if isinstance(eos, (list, tuple)) else [eos])
    return {int(i) for i in ids}


# -- the generator ------------------------------------------------------------------

class PreallocLayer(DynamicLayer):
    """A `DynamicLayer` that writes into a buffer sized once per batch, instead of
    `torch.cat`-ing the whole cache at every step (on CPU that copy was over half of
    a decode step). `keys`/`values` are views of the filled part: (b, heads, n, head_dim)."""

    def __init__(self, capacity: int):
        super().__init__()
        self.capacity, self.length = capacity, 0

    def lazy_initialization(self, key_states, value_states) -> None:
        super().lazy_initialization(key_states, value_states)
        b, h, _, d = key_states.shape
        self._k = key_states.new_empty((b, h, self.capacity, d))
        self._v = value_states.new_empty((b, h, self.capacity, value_states.shape[-1]))

    def update(self, key_states, value_states, *args, **kwargs):
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        n = self.length + key_states.shape[-2]
        if n > self.capacity:  # never with the capacity `_decode` asks for; grow to stay correct
            self.capacity = max(n, 2 * self.capacity)
            k, v = self._k, self._v
            self._k = k.new_empty((*k.shape[:2], self.capacity, k.shape[-1]))
            self._v = v.new_empty((*v.shape[:2], self.capacity, v.shape[-1]))
            self._k[:, :, :self.length], self._v[:, :, :self.length] = k[:, :, :self.length], v[:, :, :self.length]
        self._k[:, :, self.length:n] = key_states
        self._v[:, :, self.length:n] = value_states
        self.length = n
        self.keys, self.values = self._k[:, :, :n], self._v[:, :, :n]
        return self.keys, self.values

    def batch_select_indices(self, indices) -> None:
        if self.is_initialized:
            self._k, self._v = self._k[indices], self._v[indices]
            self.keys, self.values = self._k[:, :, :self.length], self._v[:, :, :self.length]


def new_kv_cache(config, capacity: int):
    """A `DynamicCache` for `config` whose full-attention layers are preallocated to `capacity` tokens.

    Sliding-window and other special layers keep their own transformers class.
    """
    cache = DynamicCache(config=config)
    cache.layers = [PreallocLayer(capacity) if type(layer) is DynamicLayer else layer for layer in cache.layers]
    return cache


@dataclass
class Completion:
    """One generated completion."""

    text: str
    """Decoded completion (special tokens skipped), cut before the first stop string."""
    prompt_ids: list[int]
    completion_ids: list[int]
    """Every sampled token, including the EOS or the tokens that spelled a stop string."""
    logprobs: list[float]
    """log p(token | prefix) under the model itself (temperature 1, no top-k/p), one per completion id."""
    finish: str
    """'eos', 'stop' or 'length'."""


class GeneratorAgent:
    """A causal LM playing a `Text` seat: batched, KV-cached, seedable sampling.

    One `act` call left-pads all prompts into one batch (position ids count real
    tokens only, as in transformers' `generate`) and decodes them together with a
    KV cache preallocated for the batch (`new_kv_cache`); identical prompts are
    prefilled once and their cache rows copied; rows whose completion has ended
    are dropped from the batch and the cache (once they are a quarter of it), so
    the others run faster.
    Sampling uses the agent's own `torch.Generator`, re-seeded by `reset(seed)`;
    the same seed and the same batch of prompts give the same completions.

    `model`, `tokenizer`, `device` and `sampling` are public: learners train
    `model` in place, and `encode_prompt(tokenizer, prompt, sampling)` gives the
    exact prompt ids the agent conditions on.
    """

    kind = "hf"

    def __init__(self, model, tokenizer, sampling: SamplingConfig | None = None, *,
                 seed: int = 0, max_batch: int = 0):
        self.model = model
        self.tokenizer = tokenizer
        self.sampling = sampling or SamplingConfig()
        self.max_batch = max_batch
        self.device = next(model.parameters()).device
        self.generator = torch.Generator(device=self.device)
        self.generator.manual_seed(seed)
        self.stop_token_ids = _stop_token_ids(model, tokenizer)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self._pieces: dict[int, str] = {}

    @classmethod
    def from_pretrained(cls, ref: str, *, gguf_file: str | None = None, sampling: SamplingConfig | None = None,
                        load: LoadConfig | None = None) -> "GeneratorAgent":
        from transformers import AutoModelForCausalLM

        load = load or LoadConfig()
        check_model_ref(ref)
        kw = {"gguf_file": gguf_file} if gguf_file else {}
        try:
            with quiet_transformers(progress=slow_to_load(ref)):
                model = AutoModelForCausalLM.from_pretrained(ref, dtype=resolve_dtype(load.dtype), **kw)
        except (OSError, ValueError) as e:
            raise ArenaError(f"cannot load a causal LM from {ref!r}: {e}") from e
        model.to(resolve_device(load.device)).eval()
        return cls(model, load_tokenizer(ref, gguf_file), sampling, seed=load.seed, max_batch=load.max_batch)

    # -- the Agent protocol
    def reset(self, seed: int) -> None:
        self.generator.manual_seed(int(seed))

    def act(self, observations: Sequence[Observation]) -> list[Move]:
        prompts = [encode_prompt(self.tokenizer, obs["prompt"], self.sampling) for obs in observations]
        out: list[Move] = []
        step = self.max_batch or max(1, len(prompts))
        for i in range(0, len(prompts), step):
            for c in self.generate(prompts[i:i + step]):
                out.append(Move(c.text, {"prompt_ids": c.prompt_ids, "completion_ids": c.completion_ids,
                                         "logprobs": c.logprobs, "completion_tokens": len(c.completion_ids),
                                         "finish": c.finish}))
        return out

    # -- Checkpointable
    def save(self, directory: Path) -> None:
        save_agent_dir(self.model, self.tokenizer, directory,
                       {"agent": "generator", "sampling": dataclasses.asdict(self.sampling)})

    def load(self, directory: Path) -> None:
        load_weights_in_place(self.model, Path(directory))

    # -- decoding
    def _piece(self, token: int) -> str:
        piece = self._pieces.get(token)
        if piece is None:
            piece = self._pieces[token] = self.tokenizer.decode([token], skip_special_tokens=True)
        return piece

    def _sample(self, logits: torch.Tensor) -> torch.Tensor:
        """(b, V) float logits -> (b,) token ids, drawn with the agent's generator."""
        s = self.sampling
        if s.temperature == 0:
            return logits.argmax(-1)
        logits = logits / s.temperature
        if s.top_k and s.top_k < logits.shape[-1]:
            kth = torch.topk(logits, s.top_k, dim=-1).values[:, -1:]  # (b, 1)
            logits = logits.masked_fill(logits < kth, float("-inf"))
        if s.top_p < 1.0:
            sorted_logits, order = torch.sort(logits, dim=-1, descending=True)
            probs = sorted_logits.softmax(-1)
            drop = probs.cumsum(-1) - probs > s.top_p  # mass before this token already reaches top_p
            logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
        # Exponential race: argmax p_i / E_i with E_i ~ Exp(1) is a draw from p (same law as
        # torch.multinomial, several times faster on CPU). E = -log U with U ~ uniform is
        # Exp(1), and `rand` draws U ~5x faster than `exponential_` draws E.
        probs = logits.softmax(-1)
        race = torch.rand(probs.shape, generator=self.generator, device=probs.device).log_().neg_()
        return (probs / race).argmax(-1)

    @torch.inference_mode()
    def generate(self, prompts: Sequence[Sequence[int]]) -> list[Completion]:
        """Decode one batch of tokenised prompts together; one `Completion` per prompt, in order."""
        if not prompts:
            return []
        s, dev, model = self.sampling, self.device, self.model
        was_training = model.training
        model.eval()
        try:
            return self._decode([list(p) for p in prompts], s, dev)
        finally:
            model.train(was_training)

    def _decode(self, prompts: list[list[int]], s: SamplingConfig, dev: torch.device) -> list[Completion]:
        B, T = len(prompts), max(len(p) for p in prompts)
        if min(len(p) for p in prompts) == 0:
            raise ArenaError("empty prompt: the tokenizer produced no tokens")
        # Identical prompts (a group of samples per prompt, as RLOO/GRPO and ReST draw them)
        # are prefilled once; their rows of the KV cache are copied before decoding.
        row_of: dict[tuple[int, ...], int] = {}
        source = [row_of.setdefault(tuple(p), len(row_of)) for p in prompts]  # unique row of each prompt
        U = len(row_of)
        ids = torch.full((U, T), self.pad_id, dtype=torch.long)
        mask = torch.zeros((U, T), dtype=torch.long)
        for p, i in row_of.items():  # left padding: every row's last prompt token is at T-1
            ids[i, T - len(p):] = torch.tensor(p, dtype=torch.long)
            mask[i, T - len(p):] = 1
        ids, mask = ids.to(dev), mask.to(dev)
        pos = (mask.cumsum(-1) - 1).clamp(min=0)  # (U, T) positions count real tokens only
        cache = new_kv_cache(self.model.config, T + s.max_new_tokens)
        out = self.model(input_ids=ids, attention_mask=mask, position_ids=pos, past_key_values=cache,
                         use_cache=True, logits_to_keep=1)
        logits = out.logits[:, -1, :].float()  # (U, V)
        if U < B:
            expand = torch.tensor(source, device=dev)
            cache.batch_select_indices(expand)
            logits, mask, pos = logits[expand], mask[expand], pos[expand]
        next_pos = pos[:, -1:] + 1  # (b, 1)
        rows = list(range(B))  # original index of each batch row
        done = [False] * B  # by original index
        tokens: list[list[int]] = [[] for _ in range(B)]
        logps: list[list[float]] = [[] for _ in range(B)]
        texts = [""] * B
        finish = ["length"] * B
        stops, eos = s.stop, (set() if s.ignore_eos else self.stop_token_ids)
        for step in range(s.max_new_tokens):
            tok = self._sample(logits)  # (b,)
            lp = torch.log_softmax(logits, -1).gather(1, tok[:, None]).squeeze(1)  # (b,)
            keep = []
            for r, (i, t, l) in enumerate(zip(rows, tok.tolist(), lp.tolist())):
                if done[i]:  # finished earlier, still in the batch until the next compaction
                    continue
                tokens[i].append(t)
                logps[i].append(l)
                if t in eos:
                    finish[i], done[i] = "eos", True
                    continue
                if stops:
                    piece = self._piece(t)
                    texts[i] += piece
                    if any(x in texts[i][-(len(x) + len(piece)):] for x in stops):
                        finish[i], done[i] = "stop", True
                        continue
                keep.append(r)
            if not keep or step == s.max_new_tokens - 1:
                break
            # Drop finished rows from the batch and the KV cache once they are a quarter of
            # it: compacting copies the whole cache, so doing it for every single row that
            # ends costs more than carrying a few dead rows for some steps.
            if 4 * (len(rows) - len(keep)) >= len(rows):
                sel = torch.tensor(keep, device=dev)
                cache.batch_select_indices(sel)
                tok, mask, next_pos = tok[sel], mask[sel], next_pos[sel]
                rows = [rows[r] for r in keep]
            mask = torch.cat([mask, mask.new_ones((len(rows), 1))], dim=1)  # (b, T + step + 1)
            out = self.model(input_ids=tok[:, None], attention_mask=mask, position_ids=next_pos,
                             past_key_values=cache, use_cache=True)
            logits = out.logits[:, -1, :].float()
            next_pos = next_pos + 1
        return [Completion(self._final_text(tokens[i]), prompts[i], tokens[i], logps[i], finish[i])
                for i in range(B)]

    def _final_text(self, completion: list[int]) -> str:
        text = self.tokenizer.decode(completion, skip_special_tokens=True)
        cuts = [text.find(x) for x in self.sampling.stop if x in text]
        return text[:min(cuts)] if cuts else text


# -- the scorer -----------------------------------------------------------------------

class ScorerAgent:
    """An LM backbone with a scalar head playing a `Box(shape=(1,))` seat (verifier, reward model).

    Input text is `observation["prompt"]`; the score is the head's output at the
    last non-pad token. `scores(texts, grad=True)` is what learners differentiate.
    """

    kind = "hf"

    def __init__(self, model, tokenizer, *, max_batch: int = 0, max_length: int = 0, seed: int = 0):
        self.model = model
        self.tokenizer = tokenizer
        self.max_batch = max_batch
        self.max_length = max_length
        self.device = next(model.parameters()).device
        self.generator = torch.Generator(device="cpu")  # the protocol's own RNG; scoring is deterministic
        self.generator.manual_seed(seed)
        if model.config.pad_token_id is None:
            model.config.pad_token_id = tokenizer.pad_token_id

    @classmethod
    def from_pretrained(cls, ref: str, *, gguf_file: str | None = None,
                        load: LoadConfig | None = None) -> "ScorerAgent":
        from transformers import AutoModelForSequenceClassification

        load = load or LoadConfig()
        check_model_ref(ref)
        tokenizer = load_tokenizer(ref, gguf_file)
        kw = {"gguf_file": gguf_file} if gguf_file else {}
        try:
            # warnings off: a causal LM checkpoint has no score head, which is expected (initialised below)
            with quiet_transformers(progress=slow_to_load(ref), warnings=False):
                model, info = AutoModelForSequenceClassification.from_pretrained(
                    ref, num_labels=1, dtype=resolve_dtype(load.dtype), pad_token_id=tokenizer.pad_token_id,
                    output_loading_info=True, **kw)
        except (OSError, ValueError) as e:
            raise ArenaError(f"cannot load a scorer from {ref!r}: {e}") from e
        name = _head_name(model)
        if any(k.startswith(name + ".") for k in info.get("missing_keys", [])):  # a backbone-only checkpoint
            init_head(getattr(model, name), load.seed, getattr(model.config, "initializer_range", 0.02))
        model.to(resolve_device(load.device)).eval()
        return cls(model, tokenizer, max_batch=load.max_batch, max_length=load.max_length, seed=load.seed)

    def reset(self, seed: int) -> None:
        self.generator.manual_seed(int(seed))

    def scores(self, texts: Sequence[str], grad: bool = False) -> torch.Tensor:
        """(B,) float32 scores for `texts`; with `grad=True` the graph is kept for a loss."""
        if not texts:
            return torch.zeros(0, device=self.device)
        step = self.max_batch or len(texts)
        parts = [self._score_batch(list(texts[i:i + step]), grad) for i in range(0, len(texts), step)]
        return torch.cat(parts)

    def _score_batch(self, texts: list[str], grad: bool) -> torch.Tensor:
        enc = self.tokenizer(texts, padding=True, padding_side="right", return_tensors="pt",
                             truncation=bool(self.max_length),
                             max_length=self.max_length or None)
        enc = {k: v.to(self.device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
        if grad:
            return self.model(**enc).logits[:, 0].float()
        with torch.inference_mode():
            was_training = self.model.training
            self.model.eval()
            try:
                return self.model(**enc).logits[:, 0].float()
            finally:
                self.model.train(was_training)

    def act(self, observations: Sequence[Observation]) -> list[np.ndarray]:
        values = self.scores([obs["prompt"] for obs in observations]).cpu().numpy()
        return [np.asarray([v], dtype=np.float32) for v in values]

    def save(self, directory: Path) -> None:
        save_agent_dir(self.model, self.tokenizer, directory, {"agent": "scorer"})

    def load(self, directory: Path) -> None:
        load_weights_in_place(self.model, Path(directory))


def _head_name(model) -> str:
    for name in ("score", "classifier", "v_head"):
        if isinstance(getattr(model, name, None), torch.nn.Module):
            return name
    raise ArenaError(f"{type(model).__name__} has no scalar head named score/classifier/v_head")


@torch.no_grad()
def init_head(head: torch.nn.Module, seed: int, std: float = 0.02) -> None:
    """Initialise a fresh scalar head from its own seeded generator (the global RNG is never used)."""
    g = torch.Generator(device="cpu").manual_seed(int(seed))
    for name, p in head.named_parameters():
        if name.endswith("bias"):
            p.zero_()
        else:
            p.copy_(torch.randn(p.shape, generator=g) * std)


# -- the factory ------------------------------------------------------------------------

def seat_action_space(ctx) -> Any:
    """The action space of `ctx.seat`: `ctx.action_space`, else from a default-constructed env."""
    if getattr(ctx, "action_space", None) is not None:
        return ctx.action_space
    env = ctx.game_cls()
    try:
        return env.action_space(ctx.seat)
    finally:
        close = getattr(env, "close", None)
        if callable(close):
            close()


def build(arg: str, ctx) -> GeneratorAgent | ScorerAgent:
    """`arena.agents` entry point for `hf:<model>[?options]` (and `ckpt:` dirs these agents wrote)."""
    from gymnasium import spaces

    ref, gguf, options = parse_hf_arg(arg)
    space = seat_action_space(ctx)
    meta = read_agent_meta(ref) if gguf is None else {}
    if isinstance(space, spaces.Box):
        _, load = split_options(options, generator=False)
        load = _with_ctx_device(load, ctx)
        return ScorerAgent.from_pretrained(ref, gguf_file=gguf, load=load)
    if isinstance(space, spaces.Text):
        base = SamplingConfig(**{k: (tuple(v) if k == "stop" else v) for k, v in meta.get("sampling", {}).items()
                                 if k in _field_types(SamplingConfig)})
        sampling, load = split_options(options, generator=True, base_sampling=base)
        return GeneratorAgent.from_pretrained(ref, gguf_file=gguf, sampling=sampling,
                                              load=_with_ctx_device(load, ctx))
    raise ArenaError(f"seat {ctx.seat!r} of {ctx.game_id} has a {type(space).__name__} action space; "
                     "hf agents play Text seats (generator) and Box seats (scorer)")


def _with_ctx_device(load: LoadConfig, ctx) -> LoadConfig:
    if not load.device and getattr(ctx, "device", None):
        return dataclasses.replace(load, device=ctx.device)
    return load
