"""Measuring: wall time inside model forward calls (`ForwardClock`), CPU time, peak memory.

Forward hooks on every model time each forward pass (synchronised on CUDA), and so do wrappers around
`agents.hf.decode_step.LlamaStep`'s prefill and decode step (which run without the model's forward) while attached
(`around_own_steps`);
`measure` runs one mode under them and also takes wall and process CPU time.
"""
from __future__ import annotations

import resource
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

import torch


@dataclass
class ForwardClock:
    """Wall time inside the forward calls of the models it is attached to (and inside `LlamaStep`'s, the
    generator's prefill and decode steps of its own)."""

    seconds: float = 0.0
    calls: int = 0
    sync: bool = False
    _start: dict[int, float] = field(default_factory=dict)

    @contextmanager
    def attach(self, *models: torch.nn.Module) -> Iterator["ForwardClock"]:
        handles = []
        for m in models:
            handles.append(m.register_forward_pre_hook(self._pre))
            handles.append(m.register_forward_hook(self._post))
        own = object()  # the key of the own steps' start times
        try:
            with around_own_steps(lambda tokens: self._pre(own, ()), lambda: self._post(own, (), None)):
                yield self
        finally:
            for h in handles:
                h.remove()

    def _now(self) -> float:
        if self.sync:
            torch.cuda.synchronize()
        return time.perf_counter()

    def _pre(self, module, args) -> None:
        self._start[id(module)] = self._now()

    def _post(self, module, args, output) -> None:
        self.seconds += self._now() - self._start.pop(id(module))
        self.calls += 1


@contextmanager
def around_own_steps(before: Callable[[int], None], after: Callable[[], None]) -> Iterator[None]:
    """`before(tokens a row)` and `after()` around every prefill (its prompts' padded length) and decode step (1)
    the generator runs without the model's forward (`agents.hf.decode_step.LlamaStep`), while inside."""
    from agents.hf.decode_step import LlamaStep

    call, prefill = LlamaStep.__call__, LlamaStep.prefill

    def timed_call(inner, tokens, *args):
        before(1)
        try:
            return call(inner, tokens, *args)
        finally:
            after()

    def timed_prefill(inner, ids, *args):
        before(ids.shape[1])
        try:
            return prefill(inner, ids, *args)
        finally:
            after()

    LlamaStep.__call__, LlamaStep.prefill = timed_call, timed_prefill
    try:
        yield
    finally:
        LlamaStep.__call__, LlamaStep.prefill = call, prefill


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def cuda_peak_mb(device: torch.device) -> float | None:
    return torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None


def measure(fn: Callable[[], Any], models: list[torch.nn.Module],
            device: torch.device) -> tuple[Any, float, float, ForwardClock]:
    """Run fn with forward hooks on `models`: (result, wall s, process CPU s, clock)."""
    clock = ForwardClock(sync=device.type == "cuda")
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats(device)
    with clock.attach(*models):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return out, wall, cpu, clock

