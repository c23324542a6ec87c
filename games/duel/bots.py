"""Rule-based players for duel-v0's built-in `sum` task.

`adder?noise=k` answers a+b off by a uniform error in [-k, k] (noise=0 is always right):
adders of different noise give a known strength order for rating tests.
`checker` judges by recomputing the sum (a perfect judge for the `sum` task).
Randomness comes from a hash of (seed, observation), so moves do not depend on batching.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from arena.bots import SavedBot
from games.duel.rules import NUMBER_RE, TASKS, verdict


class Adder(SavedBot):
    """Answers `a+b` with a uniform integer error in [-noise, noise]."""

    name = "adder"
    produces = "text"

    @dataclass
    class Params:
        noise: int = 0
        """Largest error added to the right answer."""

    def act(self, observations: Sequence[dict[str, str]]) -> list[str]:
        out = []
        for obs in observations:
            numbers = [int(x) for x in NUMBER_RE.findall(obs["task_prompt"])[:2]]
            rng = self.rng(obs)
            error = int(rng.integers(-self.params.noise, self.params.noise + 1)) if self.params.noise else 0
            out.append(str(sum(numbers) + error))
        return out


class Checker(SavedBot):
    """A judge that recomputes the gold `sum` score of both answers."""

    name = "checker"
    produces = "score"

    def act(self, observations: Sequence[dict[str, str]]) -> list[np.ndarray]:
        task = TASKS["sum"]
        return [np.array([verdict(task.score(o["task_prompt"], o["answer_a"]),
                                  task.score(o["task_prompt"], o["answer_b"]))], dtype=np.float32)
                for o in observations]
