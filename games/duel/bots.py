"""Rule-based players for duel-v0's built-in `sum` task.

`adder?noise=k` answers a+b off by a uniform error in [-k, k] (noise=0 is always right):
adders of different noise give a known strength order for rating tests.
`checker` judges by recomputing the sum (a perfect judge for the `sum` task).
Randomness comes from a hash of (seed, observation), so moves do not depend on batching.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from arena.options import spec_options
from arena.seeding import stable_hash
from games.duel.rules import NUMBER_RE, TASKS, verdict

STATE_FILE = "scripted.json"


class Adder:
    """Answers `a+b` with a uniform integer error in [-noise, noise]."""

    kind = "scripted"
    name = "adder"
    produces = "text"

    @dataclass
    class Params:
        noise: int = 0
        """Largest error added to the right answer."""

    def __init__(self, seat: str = "", options: str = ""):
        self.params = spec_options(self.Params, options, f"scripted:{self.name}")
        self.seed = 0

    def reset(self, seed: int) -> None:
        self.seed = seed

    def act(self, observations: Sequence[dict[str, str]]) -> list[str]:
        out = []
        for obs in observations:
            numbers = [int(x) for x in NUMBER_RE.findall(obs["task_prompt"])[:2]]
            rng = np.random.default_rng(stable_hash(self.seed, obs["prompt"]))
            error = int(rng.integers(-self.params.noise, self.params.noise + 1)) if self.params.noise else 0
            out.append(str(sum(numbers) + error))
        return out

    def save(self, directory: Path) -> None:
        (Path(directory) / STATE_FILE).write_text(json.dumps({"bot": self.name, "params": asdict(self.params)}))

    def load(self, directory: Path) -> None:
        self.params = self.Params(**json.loads((Path(directory) / STATE_FILE).read_text())["params"])


class Checker(Adder):
    """A judge that recomputes the gold `sum` score of both answers."""

    name = "checker"
    produces = "score"

    @dataclass
    class Params:
        pass

    def act(self, observations: Sequence[dict[str, str]]) -> list[np.ndarray]:
        task = TASKS["sum"]
        return [np.array([verdict(task.score(o["task_prompt"], o["answer_a"]),
                                  task.score(o["task_prompt"], o["answer_b"]))], dtype=np.float32)
                for o in observations]
