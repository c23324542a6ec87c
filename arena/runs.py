"""Opening a run directory someone handed you: which game it plays, without running its code.

A run's `config.json` is data. It names its game by id (`game_id`) and by what the
user typed (`game`, an id or a `module:Class` import path). Opening a run only
ever looks the id up among the registered games; a game that is not registered
is imported only when the user names it on the command line of that same
command (`--game module:Class`), never because a file says so.
"""
from __future__ import annotations

import dataclasses
import errno
import fcntl
import os
import shutil
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from arena import registry
from arena.registry import GameSpec
from arena.checkpoints import CHECKPOINTS_DIR, round_of_label
from arena.store import SETUP_PREFIX, read_store_marks
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
    """A saved `config.json` back into a `TrainConfig`, each field checked against its type
    (`arena.store.check_run_config`); unknown keys are ignored."""
    from arena.selfplay import TrainConfig
    from arena.store import check_run_config

    raw = check_run_config(raw)
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {k: v for k, v in raw.items() if k in names}
    if device is not None:
        values["device"] = device
    if "game" not in values:
        raise ArenaError("config.json names no game")
    return TrainConfig(**values)


class RunLock:
    """One writer per run: an exclusive `flock` on `<dir>/.lock`, held while a process sets up or
    trains the run and released by the OS when it exits, however it exits (kill -9 included).

    The lock file records its holder (`process <pid> (<command>, since <time>)`), which a second
    writer's one-line error names. A lock is only as good as the file it is on: a lock taken on a
    file that was renamed or removed meanwhile (a setup directory published under its run name,
    a stale one cleared) is given up and taken again."""

    def __init__(self, run_dir: Path):
        self.path = Path(run_dir) / LOCK_FILE
        self.fd: int | None = None

    def acquire(self, wait_s: float = 0.5) -> "RunLock":
        """Take the lock, waiting up to `wait_s` for a holder that lets go (`run_holder` probes
        hold it for microseconds); else a one-line `ArenaError` naming the holder."""
        deadline = time.monotonic() + wait_s
        while True:
            fd = self._try_once()
            if fd is not None:
                break
            if time.monotonic() >= deadline:
                name = self.path.parent.name.removeprefix(SETUP_PREFIX)  # a run being set up: its name
                raise ArenaError(f"run {name!r} is in use by {read_holder(self.path)}; "
                                 "wait for it to finish or stop it")
            time.sleep(0.05)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"process {os.getpid()} ({_command()}, since {time.strftime('%Y-%m-%d %H:%M:%S')})".encode(), 0)
        self.fd = fd
        return self

    def _try_once(self) -> int | None:
        """The locked fd, or None while another process holds the lock."""
        while True:
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                raise ArenaError(f"cannot lock run {self.path.parent}: {e.strerror}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                os.close(fd)
                return None
            if _same_file(fd, self.path):
                return fd
            os.close(fd)  # renamed or removed while we waited: lock what is there now

    def release(self) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing drops the flock
            self.fd = None

    @property
    def held(self) -> bool:
        return self.fd is not None


def _command() -> str:
    """What this process was started as, shortly: `arena resume pv-1`."""
    prog = Path(sys.argv[0]).name if sys.argv and sys.argv[0] else "python"
    prog = "arena" if prog in ("arena", "__main__.py") else prog
    return " ".join([prog, *sys.argv[1:3]])[:120]


def _same_file(fd: int, path: Path) -> bool:
    try:
        a, b = os.fstat(fd), os.stat(path)
    except OSError:
        return False
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def read_holder(lock_path: Path) -> str:
    try:
        return Path(lock_path).read_text(errors="replace").strip()[:200] or "another process"
    except OSError:
        return "another process"


def run_holder(run_dir: Path) -> str | None:
    """Who writes the run now (the lock's holder), or None when no process does. A shared lock
    taken and dropped at once: a writer that starts meanwhile waits for it (`RunLock.acquire`)."""
    path = Path(run_dir) / LOCK_FILE
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except OSError:
        return read_holder(path)
    finally:
        os.close(fd)  # drops the shared lock, if taken
    return None


# -- creating a run: either a whole run or nothing ----------------------------------
#
# A new run is set up in a hidden directory `<runs>/.setup-<name>/` under its own lock
# (agents built, store created, config.json written last) and then renamed to
# `<runs>/<name>` in one step. So `<runs>/<name>` only ever holds a whole run, whose
# config.json and arena.db agree; a setup killed before the rename leaves a hidden
# directory that no command reads and the next setup clears.

def setup_dir(runs_dir: Path, name: str) -> Path:
    return Path(runs_dir) / f"{SETUP_PREFIX}{name}"


def claim_new_run(run_dir: Path, runs_dir: Path) -> tuple[Path, RunLock]:
    """Lock the setup directory of the run `run_dir` (which must not exist yet) and clear what
    an interrupted setup left in it; return (setup directory, its lock)."""
    runs_dir, run_dir = Path(runs_dir), Path(run_dir)
    if runs_dir.exists() and not runs_dir.is_dir():
        raise ArenaError(f"runs dir {runs_dir} is a file, not a directory")
    for _ in range(20):  # a concurrent setup of the same name may publish or clear its directory under us
        _refuse_existing(run_dir, runs_dir)
        staging = setup_dir(runs_dir, run_dir.name)
        try:
            staging.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ArenaError(f"cannot create run directory {staging}: {e.strerror}") from None
        try:
            lock = RunLock(staging).acquire()
        except ArenaError:
            if staging.is_dir():
                raise
            continue  # published or cleared meanwhile: look again
        try:
            _refuse_existing(run_dir, runs_dir)
            _clear(staging)  # what a setup killed before its rename left behind
        except BaseException:
            abandon_new_run(staging, lock)  # ours while we hold its lock: leave nothing behind
            raise
        _reap_stale_setups(runs_dir, keep=staging)
        return staging, lock
    raise ArenaError(f"cannot set up run {run_dir.name!r}: other processes keep creating it")


def _refuse_existing(run_dir: Path, runs_dir: Path) -> None:
    if (run_dir / CONFIG_FILE).exists():
        raise ArenaError(f"run {run_dir.name!r} already exists in {runs_dir}/ "
                         f"(use `arena resume {run_dir.name}` or --run NAME)")
    if run_dir.is_symlink() or (run_dir.exists() and not run_dir.is_dir()):
        raise ArenaError(f"{run_dir} exists and is not a run; choose another --run name")
    if run_dir.is_dir():
        names = {p.name for p in run_dir.iterdir()}
        if names - {LOCK_FILE}:
            raise ArenaError(f"{run_dir} exists and is not a run; choose another --run name")
        if LOCK_FILE in names:  # an empty directory an older version's setup left: never a run
            probe = RunLock(run_dir).acquire(wait_s=0)
            (run_dir / LOCK_FILE).unlink(missing_ok=True)
            probe.release()
        try:
            run_dir.rmdir()
        except OSError:
            pass


def _clear(directory: Path) -> None:
    for p in directory.iterdir():
        if p.name != LOCK_FILE:
            shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()


def _reap_stale_setups(runs_dir: Path, keep: Path) -> None:
    """Clear the setup directories of other names that no live process holds (their setups were killed)."""
    for d in Path(runs_dir).glob(SETUP_PREFIX + "*"):
        if d == keep or not d.is_dir():
            continue
        lock = RunLock(d)
        fd = lock._try_once() if (d / LOCK_FILE).exists() else None
        if fd is None:
            continue
        try:
            shutil.rmtree(d, ignore_errors=True)
        finally:
            os.close(fd)


def publish_new_run(staging: Path, run_dir: Path) -> None:
    """Give the finished setup directory its run name, in one rename (the run exists from here)."""
    try:
        os.rename(staging, run_dir)
    except OSError as e:
        if e.errno in (errno.EEXIST, errno.ENOTEMPTY):
            raise ArenaError(f"run {run_dir.name!r} already exists in {run_dir.parent}/ "
                             f"(use `arena resume {run_dir.name}` or --run NAME)") from None
        raise ArenaError(f"cannot create run directory {run_dir}: {e.strerror}") from None


def abandon_new_run(staging: Path, lock: RunLock) -> None:
    """A setup that failed leaves nothing behind to block the corrected command."""
    shutil.rmtree(staging, ignore_errors=True)
    lock.release()


def package_versions() -> dict[str, str]:
    """Versions of Python and the packages a run's numbers depend on (saved in config.json)."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("alignment-arena", "torch", "transformers", "accelerate", "pettingzoo", "gymnasium"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out


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
