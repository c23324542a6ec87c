"""Atomic checkpoints: `checkpoints/<seat>/round-<k>/`, written to a temp dir then renamed.

A checkpoint directory holds whatever the agent's `save` writes (for LLM agents a
standard `save_pretrained` directory with safetensors), the learner's state under
`learner/` when it has any, and `arena_checkpoint.json` naming the agent kind,
game, seat and round, so `ckpt:<run>/<seat>/round-<k>` can rebuild the agent.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

from arena.specs import CHECKPOINT_META
from arena.types import ArenaError

LEARNER_DIR = "learner"


def checkpoint_dir(run_dir: Path, seat: str, round: int) -> Path:
    return Path(run_dir) / "checkpoints" / seat / f"round-{round}"


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
