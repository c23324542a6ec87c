"""The checkpoint layout, in one place: naming, writing, reading back, resolving `ckpt:` specs.

    <run>/checkpoints/<seat>/round-<k>/     one checkpoint (k counts from 0)
        ...                                 whatever the agent's `save` writes (for LLM agents a
                                            standard `save_pretrained` directory with safetensors)
        learner/                            the learner's state, when it has any
        arena_checkpoint.json               agent kind, game, seat, round (and the seat's spec)

A checkpoint is written to `round-<k>.tmp` and renamed, so a directory named
`round-<k>` is always whole. `ckpt:<run>/<seat>/round-<k>` names one (a run name is
looked up under the runs dir only; a path, one with a `/`, is taken as typed:
`resolve_checkpoint` says exactly what a `ckpt:` may name); `CheckpointRef` is that triple, and
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
    if getattr(agent, "produces", None):  # "text" or "score": a checkpoint is refused in a seat of the other kind
        meta["produces"] = agent.produces
    (tmp / CHECKPOINT_META).write_text(json.dumps(meta, indent=2))
    if final.exists():  # left by a round that crashed before it was marked complete
        shutil.rmtree(final)
    os.replace(tmp, final)
    return final


def kept_rounds(done: list[int], keep_last: int, keep_every: int = 0) -> set[int]:
    """Which of the completed rounds `done` keep their checkpoints under `--keep-last K`
    (`--keep-every N`): the last K rounds, and every N-th round from round 0 (0, N, 2N, ...), so
    tournaments across training still have rounds to select. K = 0 keeps every round."""
    if not keep_last:
        return set(done)
    last = sorted(done)[-keep_last:]
    every = {k for k in done if keep_every and k % keep_every == 0}
    return set(last) | every


def prune_checkpoints(run_dir: Path, done: list[int], keep_last: int, keep_every: int = 0) -> list[Path]:
    """Delete the checkpoints of completed rounds that `kept_rounds` does not keep; returns them.
    A directory is renamed away (`round-<k>.pruned`) before it is removed, so a kill mid-way never
    leaves a partial `round-<k>` that looks whole."""
    keep = kept_rounds(done, keep_last, keep_every)
    removed = []
    for seat_dir in sorted((Path(run_dir) / CHECKPOINTS_DIR).glob("*")):
        for d in sorted(seat_dir.glob("round-*")):
            m = ROUND_RE.fullmatch(d.name)
            gone = d.name.endswith(".pruned")
            if gone or (m and int(m.group(1)) in done and int(m.group(1)) not in keep):
                target = d if gone else d.with_name(d.name + ".pruned")
                if not gone:
                    os.replace(d, target)
                    removed.append(d)
                shutil.rmtree(target, ignore_errors=True)
    return removed


def restore_checkpoint(path: Path, agent: Any, learner: Any) -> None:
    """Load a checkpoint into live objects (used by resume)."""
    if not (Path(path) / CHECKPOINT_META).is_file():
        raise ArenaError(f"checkpoint {path} is missing or incomplete")
    agent.load(Path(path))
    if learner is not None and can_checkpoint(learner) and (Path(path) / LEARNER_DIR).is_dir():
        learner.load(Path(path) / LEARNER_DIR)


def resolve_checkpoint(arg: str, runs_dir: Path) -> Path:
    """The directory a `ckpt:` argument names. What a `ckpt:` may name, and where it is looked for:

    - `<run>/<seat>/round-<k>` with `<run>` a run *name* (letters, digits, `.`, `_`, `-`; no `/`):
      that run under the runs dir, and only there (never a directory of that name that happens
      to be in the current directory);
    - `<path>/<seat>/round-<k>` with `<path>` a path to a run (it has a `/`: `./x`, `../x`,
      `/abs/x`, `a/b`), or `<path>` to a checkpoint directory itself (`.../round-<k>` holding
      `arena_checkpoint.json`): that path, relative to the current directory. A path names
      exactly the directory the person who typed (or saved) it meant; `..` is allowed there.

    Either way the directory must be a whole checkpoint this engine wrote (its
    `arena_checkpoint.json`; its agent kind must be a registered one when it is built)."""
    from arena.store import check_run_name

    parts = arg.rstrip("/").split("/")
    shaped = len(parts) >= 3 and ROUND_RE.fullmatch(parts[-1]) is not None
    run = "/".join(parts[:-2])
    try:
        by_name = shaped and "/" not in run and check_run_name(run) == run
    except ArenaError:
        by_name = False
    if by_name:
        path = Path(runs_dir) / run / CHECKPOINTS_DIR / parts[-2] / parts[-1]
    elif _is_checkpoint(Path(arg)):
        return Path(arg)
    elif shaped:
        path = Path(run) / CHECKPOINTS_DIR / parts[-2] / parts[-1]
    else:
        raise ArenaError(f"malformed checkpoint spec {arg[:200]!r}: expected ckpt:<run>/<seat>/round-<k> "
                         "(a run name under the runs dir, or a path) or ckpt:<checkpoint dir>")
    if not _is_checkpoint(path):
        raise ArenaError(f"no checkpoint at {path}")
    return path


def _is_checkpoint(path: Path) -> bool:
    try:
        return (path / CHECKPOINT_META).is_file()
    except (OSError, ValueError):  # e.g. a name longer than the file system takes
        return False


def read_checkpoint_meta(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads((Path(path) / CHECKPOINT_META).read_text())
    except (OSError, ValueError) as e:
        raise ArenaError(f"unreadable checkpoint metadata in {path}: {e}") from None
    if not isinstance(meta, dict):
        raise ArenaError(f"unreadable checkpoint metadata in {path}: not a JSON object")
    return meta
