"""The checkpoint layout, in one place: naming, writing, reading back, resolving `ckpt:` specs.

    <run>/checkpoints/<seat>/round-<k>/     one checkpoint (k counts from 0)
        ...                                 whatever the agent's `save` writes (for LLM agents a
                                            standard `save_pretrained` directory with safetensors)
        learner/                            the learner's state, when it has any
        arena_checkpoint.json               agent kind, game, seat, round (and the seat's spec)

A checkpoint is written to `round-<k>.tmp` and renamed, so a directory named
`round-<k>` is always whole. `ckpt:<run>/<seat>/round-<k>` names one (the run by
name under the runs dir, or by path); `CheckpointRef` is that triple, and
`parse_checkpoint_path` reads it back from a directory.
"""
from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arena.types import ArenaError

CHECKPOINT_META = "arena_checkpoint.json"
LEARNER_DIR = "learner"
CHECKPOINTS_DIR = "checkpoints"
ROUND_RE = re.compile(r"round-(\d+)")


@dataclass(frozen=True)
class CheckpointRef:
    """Which checkpoint: a run directory, a seat, a round."""

    run_dir: Path
    seat: str
    round: int

    @property
    def path(self) -> Path:
        return checkpoint_dir(self.run_dir, self.seat, self.round)

    @property
    def label(self) -> str:
        """`<seat>/round-<k>`, how tables name a checkpoint of their own run."""
        return f"{self.seat}/{round_name(self.round)}"


def round_name(k: int) -> str:
    return f"round-{k}"


def checkpoint_dir(run_dir: Path, seat: str, round: int) -> Path:
    return Path(run_dir) / CHECKPOINTS_DIR / seat / round_name(round)


def parse_checkpoint_path(path: Path) -> CheckpointRef | None:
    """`.../<run>/checkpoints/<seat>/round-<k>` -> its `CheckpointRef` (None if not of that shape)."""
    path = Path(path)
    m = ROUND_RE.fullmatch(path.name)
    if not m or path.parent.parent.name != CHECKPOINTS_DIR:
        return None
    return CheckpointRef(path.parent.parent.parent, path.parent.name, int(m.group(1)))


def round_of_label(label: str) -> int | None:
    """The round of a label or spec ending in `round-<k>` (`prover/round-3` -> 3), else None."""
    m = re.search(r"round-(\d+)$", label)
    return int(m.group(1)) if m else None


def can_checkpoint(obj: Any) -> bool:
    return callable(getattr(obj, "save", None)) and callable(getattr(obj, "load", None))


def write_checkpoint(run_dir: Path, seat: str, round: int, agent: Any, learner: Any,
                     meta: dict[str, Any]) -> Path:
    """Save agent (+ learner state) for `seat` after `round`; atomic via rename."""
    final = checkpoint_dir(run_dir, seat, round)
    tmp = final.with_name(final.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    agent.save(tmp)
    if learner is not None and can_checkpoint(learner):
        (tmp / LEARNER_DIR).mkdir()
        learner.save(tmp / LEARNER_DIR)
    meta = {"kind": agent.kind, "seat": seat, "round": round, **meta}
    (tmp / CHECKPOINT_META).write_text(json.dumps(meta, indent=2))
    if final.exists():  # left by a round that crashed before it was marked complete
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final


def restore_checkpoint(path: Path, agent: Any, learner: Any) -> None:
    """Load a checkpoint into live objects (used by resume)."""
    if not (Path(path) / CHECKPOINT_META).is_file():
        raise ArenaError(f"checkpoint {path} is missing or incomplete")
    agent.load(Path(path))
    if learner is not None and can_checkpoint(learner) and (Path(path) / LEARNER_DIR).is_dir():
        learner.load(Path(path) / LEARNER_DIR)


def resolve_checkpoint(arg: str, runs_dir: Path) -> Path:
    """The directory a `ckpt:` argument names: `<run>/<seat>/round-<k>` (run by name or path)
    or a checkpoint directory."""
    direct = Path(arg)
    if (direct / CHECKPOINT_META).is_file():
        return direct
    parts = arg.rstrip("/").split("/")
    if len(parts) < 3 or not ROUND_RE.fullmatch(parts[-1]):
        raise ArenaError(f"malformed checkpoint spec {arg!r}: expected ckpt:<run>/<seat>/round-<k>")
    run, seat, rnd = "/".join(parts[:-2]), parts[-2], parts[-1]
    run_dir = Path(run) if Path(run).is_dir() else Path(runs_dir) / run
    path = run_dir / CHECKPOINTS_DIR / seat / rnd
    if not (path / CHECKPOINT_META).is_file():
        raise ArenaError(f"no checkpoint at {path}")
    return path


def read_checkpoint_meta(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads((Path(path) / CHECKPOINT_META).read_text())
    except (OSError, ValueError) as e:
        raise ArenaError(f"unreadable checkpoint metadata in {path}: {e}") from None
    if not isinstance(meta, dict):
        raise ArenaError(f"unreadable checkpoint metadata in {path}: not a JSON object")
    return meta
