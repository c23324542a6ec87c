"""Options and spec parsing for `hf:` agents: `SamplingConfig`, `LoadConfig`, the spec string.

`parse_hf_arg` splits `<model>[::<file.gguf>][?query]`; `split_options` turns
the query's options into the two configs through `arena.options` (the project's
one KEY=VALUE parser), so booleans, numbers and errors read as everywhere else.
`stop` and `system` are text the model reads: they are kept exactly as typed
(no trimming, no splitting on commas; repeat `stop=` for several strings).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from arena import options as opts
from arena.types import ArenaError


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
        if not all(isinstance(x, str) for x in self.stop) or not isinstance(self.system, str):
            raise ArenaError(f"bad sampling settings: stop and system are text, not {self.stop!r} / {self.system!r}")
        self.stop = tuple(s for s in self.stop if s)
        numbers = {"temperature": float, "top_p": float, "top_k": int, "max_new_tokens": int, "max_prompt_tokens": int}
        for name, typ in numbers.items():  # settings also come from an agent dir's arena_agent.json: data
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float) if typ is float else int) \
                    or not math.isfinite(v):
                raise ArenaError(f"bad sampling setting {name}={v!r}: a finite {typ.__name__} is needed")
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
    """Split one `act` (or scoring) call into chunks of at most this many texts, so memory is bounded
    by a batch size whatever a caller hands over (0 = `DEFAULT_MAX_BATCH`, 64)."""
    max_length: int = 0
    """Scorer only: truncate inputs to this many tokens (0 = no truncation)."""
    seed: int = 0
    """Initial RNG seed; also initialises a scalar head the checkpoint does not have."""
    download: bool = False
    """Fetch a hub id that is not in the local Hugging Face cache (off: such a name is a one-line
    error at once, never minutes of network retries; a cached or local model never touches the network)."""
    lora: int = 0
    """LoRA rank: train a `peft` LoRA adapter of this rank instead of every weight (0 = full
    fine-tuning). Checkpoints then hold the adapter only; the KL/DPO reference is the base with the
    adapter disabled."""
    lora_alpha: float = 0.0
    """LoRA scaling numerator (the update is scaled by alpha / rank); 0 = 2 x rank."""
    lora_dropout: float = 0.0
    """Dropout on the LoRA branch's input while training."""
    lora_targets: tuple[str, ...] = ()
    """Module names that get an adapter (repeat or comma-separate); empty = per architecture
    (`agents.hf.lora.DEFAULT_TARGETS`: every projection of the blocks; else peft's all-linear)."""
    gradient_checkpointing: bool = False
    """Recompute activations in the backward pass instead of storing them (less memory, ~30% more
    time per learner step)."""
    mixed_precision: str = "auto"
    """The seat's learners' precision when their `Optimization.mixed_precision` is auto: auto (bf16
    autocast on a GPU that has it, fp16 with loss scaling on older GPUs, none on CPU), no, bf16, fp16."""

    def __post_init__(self) -> None:
        if isinstance(self.lora_targets, str):
            self.lora_targets = (self.lora_targets,)
        self.lora_targets = tuple(t.strip() for t in self.lora_targets if t and t.strip())
        if isinstance(self.lora, bool) or not isinstance(self.lora, int) or self.lora < 0:
            raise ArenaError(f"bad hf option lora={self.lora!r}: a rank >= 0 (0 = full fine-tuning)")
        if not (math.isfinite(self.lora_alpha) and self.lora_alpha >= 0) or not 0 <= self.lora_dropout < 1:
            raise ArenaError(f"bad LoRA settings lora_alpha={self.lora_alpha!r}, lora_dropout={self.lora_dropout!r}: "
                             "need lora_alpha >= 0 and 0 <= lora_dropout < 1")
        if self.mixed_precision not in ("auto", "no", "bf16", "fp16"):
            raise ArenaError(f"bad hf option mixed_precision={self.mixed_precision!r}: auto, no, bf16 or fp16")


DEFAULT_MAX_BATCH = 64
"""Texts per forward pass when `LoadConfig.max_batch` is 0. Scoring 1,024 texts of ~200 characters
with the tiny verifier took +904 MiB of peak RSS in one batch and +90 MiB in chunks of 64, with
the same scores (CPU, one thread)."""


VERBATIM = {"stop": tuple, "system": str}
"""Text options the model reads, taken exactly as typed: `stop` keeps every repeated value,
`system` the last one. (`arena.options.coerce` trims strings and splits tuples on commas,
which would turn `stop=%0A%0A` into no stop string at all.)"""


def parse_hf_arg(arg: str) -> tuple[str, str | None, dict[str, list[str]]]:
    """`<model>[::<file.gguf>][?query]` -> (model dir or hub id, gguf file name or None, options)."""
    ref, _, query = arg.partition("?")
    ref = ref.strip()
    if not ref:
        raise ArenaError("hf spec needs a model: hf:<dir, hub id or file.gguf>[?options]")
    options = opts.parse_query(query, "hf option")
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
    stypes, ltypes = opts.field_types(SamplingConfig), opts.field_types(LoadConfig)
    known = [*ltypes, *(stypes if generator else [])]
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise ArenaError(f"unknown hf option(s) {', '.join(unknown)} for a "
                         f"{'generator' if generator else 'scorer'} seat; known: {', '.join(known)}")
    verbatim = {k: (tuple(v) if VERBATIM[k] is tuple else v[-1]) for k, v in options.items() if k in VERBATIM}
    base = dataclasses.replace(base_sampling or SamplingConfig(), **verbatim)
    typed = {k: v for k, v in options.items() if k in stypes and k not in VERBATIM}
    sampling = opts.build(SamplingConfig, typed, "hf option", base=base)
    load = opts.build(LoadConfig, {k: v for k, v in options.items() if k in ltypes}, "hf option")
    return sampling, load


def sampling_from_meta(meta: dict[str, Any]) -> SamplingConfig:
    """The `SamplingConfig` saved in an agent dir's `arena_agent.json` (unknown keys ignored)."""
    fields = opts.field_types(SamplingConfig)
    saved = meta.get("sampling", {})
    if not isinstance(saved, dict) or not isinstance(saved.get("stop", []), (list, tuple, str)):
        raise ArenaError("unreadable arena_agent.json: 'sampling' is not an object of settings")
    return SamplingConfig(**{k: (tuple(v) if k == "stop" and not isinstance(v, str) else v)
                             for k, v in saved.items() if k in fields})


def resolve_device(device: str | None) -> torch.device:
    """`device` (`--device`, `?device=`), else cuda when available, else cpu; a device this torch
    cannot use is a one-line error here, not an assertion deep inside the first `.to()`."""
    if not device:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ArenaError(f"unknown device {device!r}: {e}") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            build = "a CPU-only build" if torch.version.cuda is None else f"CUDA {torch.version.cuda}, no GPU visible"
            raise ArenaError(f"device {device!r}: this torch {torch.__version__} cannot use CUDA ({build}); "
                             "use --device cpu")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ArenaError(f"device {device!r}: only {torch.cuda.device_count()} CUDA device(s) visible")
    elif dev.type == "mps" and not torch.backends.mps.is_available():
        raise ArenaError(f"device {device!r}: MPS is not available to this torch; use --device cpu")
    return dev


def resolve_dtype(dtype: str) -> Any:
    if dtype == "auto":
        return "auto"
    try:
        return {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16,
                "bf16": torch.bfloat16, "float16": torch.float16, "fp16": torch.float16}[dtype]
    except KeyError:
        raise ArenaError(f"unknown dtype {dtype!r}: use float32, bfloat16, float16 or auto") from None
