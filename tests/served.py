"""An `arena` command that serves the rating page, run as a subprocess the way a researcher runs it:
its link read from its log, its log kept line by line, killable with SIGKILL."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

TESTS = Path(__file__).parent
LINK_RE = re.compile(r"(http://127\.0\.0\.1:(\d+)/\?token=[A-Za-z0-9_-]+)")


class Served:
    """`arena <args>` with tests/ on the path (for study_toy); `.link` once the page is up."""

    def __init__(self, args: list[str], runs_dir: Path, timeout: float = 120.0):
        env = {**os.environ, "ARENA_RUNS_DIR": str(runs_dir), "COLUMNS": "160",
               "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")])}
        self.proc = subprocess.Popen([sys.executable, "-m", "arena.cli", *args], env=env, text=True,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.log: list[str] = []
        self.out: list[str] = []
        threading.Thread(target=self._pump, args=(self.proc.stderr, self.log), daemon=True).start()
        threading.Thread(target=self._pump, args=(self.proc.stdout, self.out), daemon=True).start()
        deadline = time.monotonic() + timeout
        self.link = self.port = None
        while self.link is None:
            found = [m for line in list(self.log) + list(self.out) if (m := LINK_RE.search(line))]
            if found:
                self.link, self.port = found[0].group(1), int(found[0].group(2))
            elif self.proc.poll() is not None or time.monotonic() > deadline:
                self.kill()
                raise AssertionError("the page never came up:\n" + "\n".join(self.log + self.out))
            time.sleep(0.1)

    @staticmethod
    def _pump(stream, into: list[str]) -> None:
        for line in stream:
            into.append(line.rstrip("\n"))

    @property
    def token(self) -> str:
        return self.link.split("token=")[1]

    def wait(self, timeout: float = 120.0) -> int:
        rc = self.proc.wait(timeout)
        time.sleep(0.2)  # the pumps read the last lines
        return rc

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)

    def text(self) -> str:
        return "\n".join(self.out)
