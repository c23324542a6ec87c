"""Opening a run directory someone handed you: which game it plays, without running its code, and
whether its store is the one it wrote (before a resume trains over it).

A run's `config.json` is data. It names its game by id (`game_id`) and by what the
user typed (`game`, an id or a `module:Class` import path). Opening a run only
ever looks the id up among the registered games; a game that is not registered
is imported only when the user names it on the command line of that same
command (`--game module:Class`), never because a file says so.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from arena import registry
from arena.checkpoints import CHECKPOINTS_DIR, round_of_label
from arena.registry import GameSpec
from arena.runs.lock import RunLock
from arena.store import read_store_marks
from arena.types import ArenaError


def run_game(config: dict[str, Any], given: str | None = None) -> GameSpec:
    """The game of a run's config: registered by id, or `given` (typed by the user now)."""
    game_id, typed = config.get("game_id"), config.get("game")
    names = [n for n in (game_id, typed) if isinstance(n, str) and n]
    if given:
        spec = registry.spec(given)
        if game_id and spec.id != game_id:
            raise ArenaError(f"--game {given} is {spec.id}, but the run plays {game_id}")
        return spec
    for name in names:
        if registry.is_registered(name):
            return registry.spec(name)
    if not names:
        raise ArenaError("the run's config.json names no game")
    hint = next((n for n in names if ":" in n), None)
    how = (f"if you trust it, name it on the command line: --game {hint}" if hint
           else "install or register the package that provides it")
    raise ArenaError(f"the run plays {names[0]!r}, which is not a registered game; a run directory never "
                     f"names code to import: {how}")


def lock_checked_run(run_dir: Path, config: dict[str, Any]) -> RunLock:
    """Take the lock of a run to resume and check its store belongs to it (`check_store_belongs`);
    return the lock (released if the check fails)."""
    lock = RunLock(run_dir).acquire()
    try:
        check_store_belongs(run_dir, config)
    except BaseException:
        lock.release()
        raise
    return lock


def check_store_belongs(run_dir: Path, config: dict[str, Any]) -> None:
    """Refuse a run whose arena.db is not the one it wrote (emptied, replaced, another run's):
    the `run_id` marker must match config.json's, and no checkpoint may be newer than the rounds
    the store says are done (resuming would otherwise retrain from scratch over them)."""
    marker, done = read_store_marks(run_dir)
    if config.get("run_id") and marker != config["run_id"]:
        raise ArenaError(f"{run_dir}/arena.db does not belong to this run (emptied or replaced: its run_id "
                         f"is {marker!r}, config.json's {config['run_id']!r}); refusing to train over its checkpoints")
    next_round = (done[-1] + 1) if done else 0
    found = sorted({k for d in (run_dir / CHECKPOINTS_DIR).glob("*/round-*")
                    if (k := round_of_label(d.name)) is not None and d.is_dir()})
    ahead = [k for k in found if k > next_round]
    if ahead:
        raise ArenaError(f"{run_dir}/arena.db has {len(done)} completed round(s) but checkpoints/ holds round-"
                         f"{ahead[-1]}: the store was emptied or replaced; refusing to train over its checkpoints")
