"""Creating a run: either a whole run or nothing.

A new run is set up in a hidden directory `<runs>/.setup-<name>/` under its own lock
(agents built, store created, config.json written last) and then renamed to
`<runs>/<name>` in one step. So `<runs>/<name>` only ever holds a whole run, whose
config.json and arena.db agree; a setup killed before the rename leaves a hidden
directory that no command reads and the next setup clears.
"""
from __future__ import annotations

import errno
import os
import shutil
from pathlib import Path

from arena.runs.config import CONFIG_FILE
from arena.runs.lock import LOCK_FILE, RunLock
from arena.store import SETUP_PREFIX
from arena.types import ArenaError


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
        fd = lock.try_once() if (d / LOCK_FILE).exists() else None
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
