"""The figures of one mode (`ModeResult`) and the side-by-side table `render` prints."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any


@dataclass
class ModeResult:
    """Figures of one mode. `wall_s` is the whole call (for batched: env construction too);
    `loop_s` the episode loop alone (batched: `PlayStats.wall_s`; naive: = wall_s)."""

    mode: str
    episodes: int
    wall_s: float
    cpu_s: float
    """CPU seconds of this process (all threads): a figure other processes on the machine disturb less."""
    loop_s: float
    completion_tokens: int
    forward_s: float
    forward_calls: int
    act_overhead: float | None = None
    mean_batch: float | None = None
    peak_rss_mb: float = 0.0
    python_heap_peak_mb: float | None = None
    cuda_peak_mb: float | None = None

    @property
    def tokens_per_s(self) -> float:
        return self.completion_tokens / self.wall_s

    @property
    def episodes_per_s(self) -> float:
        return self.episodes / self.wall_s

    @property
    def tokens_per_cpu_s(self) -> float:
        return self.completion_tokens / self.cpu_s

    @property
    def setup_s(self) -> float:
        return max(0.0, self.wall_s - self.loop_s)

    @property
    def outside_forward(self) -> float:
        return max(0.0, 1.0 - self.forward_s / self.wall_s)

    @property
    def outside_forward_loop(self) -> float:
        return max(0.0, 1.0 - self.forward_s / self.loop_s)

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.update(tokens_per_s=self.tokens_per_s, episodes_per_s=self.episodes_per_s,
                 tokens_per_cpu_s=self.tokens_per_cpu_s, setup_s=self.setup_s,
                 outside_forward=self.outside_forward, outside_forward_loop=self.outside_forward_loop)
        return d


def render(naive: ModeResult, batched: ModeResult) -> str:
    rows = [("", "naive (generate/move)", f"batched (K={batched.mean_batch and round(batched.mean_batch)})")]
    fmt = lambda v, f: "-" if v is None else format(v, f)  # noqa: E731
    for label, get, f in [
        ("episodes", lambda r: r.episodes, "d"),
        ("wall s", lambda r: r.wall_s, ".2f"),
        ("  of which env construction s", lambda r: r.setup_s if r.mode == "batched" else None, ".2f"),
        ("process CPU s", lambda r: r.cpu_s, ".2f"),
        ("completion tokens", lambda r: r.completion_tokens, "d"),
        ("tokens/s", lambda r: r.tokens_per_s, ",.0f"),
        ("episodes/s", lambda r: r.episodes_per_s, ",.2f"),
        ("tokens per CPU-second", lambda r: r.tokens_per_cpu_s, ",.0f"),
        ("forward calls", lambda r: r.forward_calls, "d"),
        ("time outside forward (wall)", lambda r: r.outside_forward, ".1%"),
        ("time outside forward (play loop)", lambda r: r.outside_forward_loop, ".1%"),
        ("time outside act (PlayStats)", lambda r: r.act_overhead, ".1%"),
        ("mean act batch", lambda r: r.mean_batch, ".1f"),
        ("peak RSS MiB (process)", lambda r: r.peak_rss_mb, ",.0f"),
        ("Python heap peak MiB", lambda r: r.python_heap_peak_mb, ",.1f"),
        ("CUDA peak MiB", lambda r: r.cuda_peak_mb, ",.0f"),
    ]:
        rows.append((label, fmt(get(naive), f), fmt(get(batched), f)))
    w = [max(len(r[i]) for r in rows) for i in range(3)]
    lines = [f"{a:<{w[0]}}  {b:>{w[1]}}  {c:>{w[2]}}" for a, b, c in rows]
    lines.append(f"speed-up: {batched.tokens_per_s / naive.tokens_per_s:.1f}x tokens/s, "
                 f"{batched.episodes_per_s / naive.episodes_per_s:.1f}x episodes/s (wall); "
                 f"{batched.tokens_per_cpu_s / naive.tokens_per_cpu_s:.1f}x tokens per CPU-second")
    return "\n".join(lines)

