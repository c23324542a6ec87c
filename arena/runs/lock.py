"""One writer per run: `RunLock`, an exclusive `flock` on `<run>/.lock` held while a process sets
up or trains the run, and `run_holder`, who writes a run now (what `arena runs` and the live view show).
"""
from __future__ import annotations

import fcntl
import os
import sys
import time
from pathlib import Path

from arena.store import SETUP_PREFIX
from arena.types import ArenaError

LOCK_FILE = ".lock"


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
            fd = self.try_once()
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

    def try_once(self) -> int | None:
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
