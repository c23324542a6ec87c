"""Experiment tracking: every round's figures as TensorBoard scalars, beside the run's events.

`TensorBoardLog(run_dir)` is an event sink like the live view: give it the trainer's events
and it writes `<run>/tensorboard/` (open it with `tensorboard --logdir runs`). Per round k it
logs `metrics/<name>` (the game's round metrics), `reward/<seat>` (mean reward per seat),
`learner/<seat>/<name>` (each learner's metrics) and `speed/episodes_per_s`, `speed/tokens_per_s`.
It needs the `tensorboard` package (`pip install alignment-arena[tracking]`); `available()` says
whether it is there, and `arena train` uses it by default when it is (`--no-tensorboard` to skip).
"""
from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from typing import Any, Callable

TENSORBOARD_DIR = "tensorboard"


def available() -> bool:
    return importlib.util.find_spec("tensorboard") is not None


def scalars(summary: dict[str, Any]) -> dict[str, float]:
    """The scalars of one round summary, by TensorBoard tag (non-finite values dropped)."""
    out = {f"metrics/{k}": v for k, v in summary.get("metrics", {}).items()}
    out.update({f"reward/{seat}": v for seat, v in summary.get("mean_reward", {}).items()})
    for seat, metrics in summary.get("losses", {}).items():
        out.update({f"learner/{seat}/{k}": v for k, v in metrics.items()})
    for key in ("episodes_per_s", "tokens_per_s"):
        if key in summary:
            out[f"speed/{key}"] = summary[key]
    return {k: float(v) for k, v in out.items() if isinstance(v, (int, float)) and math.isfinite(float(v))}


class TensorBoardLog:
    """Writes each `round_end` event's figures at step = round."""

    def __init__(self, run_dir: Path):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(Path(run_dir) / TENSORBOARD_DIR))

    def __call__(self, event: dict[str, Any]) -> None:
        if event.get("type") == "round_end":
            k = int(event["round"])
            for tag, value in scalars(event["summary"]).items():
                self.writer.add_scalar(tag, value, k)
            self.writer.flush()
        elif event.get("type") == "run_end":
            self.writer.flush()

    def close(self) -> None:
        self.writer.close()


def fan_out(*sinks: Callable[[dict[str, Any]], None] | None) -> Callable[[dict[str, Any]], None]:
    """One event sink that feeds several (None entries are skipped)."""
    live = [s for s in sinks if s is not None]

    def emit(event: dict[str, Any]) -> None:
        for sink in live:
            sink(event)

    return emit
