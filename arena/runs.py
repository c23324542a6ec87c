"""Opening a run directory someone handed you: which game it plays, without running its code.

A run's `config.json` is data. It names its game by id (`game_id`) and by what the
user typed (`game`, an id or a `module:Class` import path). Opening a run only
ever looks the id up among the registered games; a game that is not registered
is imported only when the user names it on the command line of that same
command (`--game module:Class`), never because a file says so.
"""
from __future__ import annotations

import dataclasses
import fcntl
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING, Any

from arena import registry
from arena.registry import GameSpec
from arena.types import ArenaError

if TYPE_CHECKING:
    from arena.selfplay import TrainConfig

LOCK_FILE = ".lock"
CONFIG_FILE = "config.json"


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


def config_from_json(raw: Any, device: str | None = None) -> "TrainConfig":
    """A saved `config.json` back into a `TrainConfig`, each field checked against its type."""
    from arena.selfplay import TrainConfig

    if not isinstance(raw, dict):
        raise ArenaError("config.json is not a JSON object")
    types = {f.name: f.type for f in dataclasses.fields(TrainConfig)}
    values = {k: v for k, v in raw.items() if k in types}
    for name in ("rounds", "episodes", "concurrency", "seed"):
        if name in values and (not isinstance(values[name], int) or isinstance(values[name], bool)):
            raise ArenaError(f"config.json: {name} must be a whole number, not {values[name]!r}")
    for name in ("game", "run", "recipe"):
        if name in values and not isinstance(values[name], str):
            raise ArenaError(f"config.json: {name} must be a string, not {values[name]!r}")
    for name in ("seats", "params"):
        v = values.get(name, {})
        if not isinstance(v, dict) or not all(isinstance(x, str) for kv in v.items() for x in kv):
            raise ArenaError(f"config.json: {name} must map names to strings")
    if device is not None:
        values["device"] = device
    elif values.get("device") is not None and not isinstance(values["device"], str):
        raise ArenaError("config.json: device must be a string")
    if "game" not in values:
        raise ArenaError("config.json names no game")
    return TrainConfig(**values)


class RunLock:
    """One writer per run: an exclusive `flock` on `<run>/.lock`, held while the process trains
    the run and released by the OS when it exits, however it exits (kill -9 included)."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK_FILE
        self.fd: int | None = None

    def acquire(self) -> "RunLock":
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise ArenaError(f"cannot lock run {self.path.parent}: {e.strerror}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 64, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise ArenaError(f"run {self.path.parent.name!r} is in use by {holder}; "
                             "wait for it to finish or stop it") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"process {os.getpid()}".encode(), 0)
        self.fd = fd
        return self

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing drops the flock
            self.fd = None


def claim_new_run(run_dir: Path, runs_dir: Path) -> RunLock:
    """Lock `run_dir` for a new run. A run exists once its `config.json` is written (the last step
    of setting one up); what a setup killed before that left behind is cleared, under the lock."""
    if Path(runs_dir).exists() and not Path(runs_dir).is_dir():
        raise ArenaError(f"runs dir {runs_dir} is a file, not a directory")
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ArenaError(f"cannot create run directory {run_dir}: {e.strerror}") from None
    lock = RunLock(run_dir).acquire()
    if (run_dir / CONFIG_FILE).exists():
        lock.release()
        raise ArenaError(f"run {run_dir.name!r} already exists in {runs_dir}/ "
                         f"(use `arena resume {run_dir.name}` or --run NAME)")
    leftovers = [p for p in run_dir.iterdir() if p.name != LOCK_FILE]
    if leftovers and not (run_dir / "arena.db").exists():
        lock.release()
        raise ArenaError(f"{run_dir} exists and is not a run; choose another --run name")
    for leftover in leftovers:  # an interrupted setup: nothing in it was ever a run
            shutil.rmtree(leftover) if leftover.is_dir() and not leftover.is_symlink() else leftover.unlink()
    return lock


def abandon_new_run(run_dir: Path, lock: RunLock) -> None:
    """A setup that failed leaves nothing behind to block the corrected command."""
    shutil.rmtree(run_dir, ignore_errors=True)
    lock.release()
