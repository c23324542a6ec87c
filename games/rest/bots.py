"""Rule-based players for rest-v0 (`scripted:rule`, `scripted:human?noise=0.3`, `scripted:chrf`).

A bot's randomness comes from a hash of (its seed, the observation), so its
moves do not depend on how many episodes run at once.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from arena.options import spec_options
from arena.seeding import stable_hash
from games.rest import rules

STATE_FILE = "scripted.json"


class _Bot:
    kind = "scripted"
    name = ""

    @dataclass
    class Params:
        pass

    def __init__(self, seat: str = "", options: str = ""):
        self.seat, self.seed = seat, 0
        self.params = spec_options(self.Params, options, f"scripted:{self.name}")

    def reset(self, seed: int) -> None:
        self.seed = seed

    def save(self, directory: Path) -> None:
        (Path(directory) / STATE_FILE).write_text(json.dumps({"bot": self.name, "params": asdict(self.params)}))

    def load(self, directory: Path) -> None:
        self.params = self.Params(**json.loads((Path(directory) / STATE_FILE).read_text())["params"])


class RuleTranslator(_Bot):
    """The rule-based translator: always the reference (R = 1)."""

    name = "rule"
    produces = "text"

    def act(self, observations: Sequence[dict[str, str]]) -> list[str]:
        return [rules.target(rules.translate(obs["source"])) for obs in observations]


class HumanTranslator(_Bot):
    """The original data's translator: the reference, with one mistake with probability `noise`."""

    name = "human"
    produces = "text"

    @dataclass
    class Params:
        noise: float = 0.3
        """Probability of a flawed translation."""

    def act(self, observations: Sequence[dict[str, str]]) -> list[str]:
        out = []
        for obs in observations:
            rng = np.random.default_rng(stable_hash(self.seed, obs["prompt"]))
            sentence = rules.parse(obs["source"])
            if sentence is None:
                out.append("")
            elif rng.random() < self.params.noise:
                out.append(rules.target(rules.corrupt(sentence, rng)))
            else:
                out.append(rules.target(sentence.english()))
        return out


class ChrfScorer(_Bot):
    """Plays the reward seat with the metric itself: chrF++ against the observation's reference."""

    name = "chrf"
    produces = "score"

    def act(self, observations: Sequence[dict[str, str]]) -> list[np.ndarray]:
        return [np.array([rules.chrf(obs["completion"], obs["reference"])], dtype=np.float32)
                for obs in observations]
