"""Rule-based players for rest-v0 (`scripted:rule`, `scripted:human?noise=0.3`, `scripted:chrf`).

A bot's randomness comes from a hash of (its seed, the observation), so its
moves do not depend on how many episodes run at once.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from arena.bots import SavedBot
from games.rest import rules

class RuleTranslator(SavedBot):
    """The rule-based translator: always the reference (R = 1)."""

    name = "rule"
    produces = "text"

    def act(self, observations: Sequence[dict[str, str]]) -> list[str]:
        return [rules.target(rules.translate(obs["source"])) for obs in observations]


class HumanTranslator(SavedBot):
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
            rng = self.rng(obs)
            sentence = rules.parse(obs["source"])
            if sentence is None:
                out.append("")
            elif rng.random() < self.params.noise:
                out.append(rules.target(rules.corrupt(sentence, rng)))
            else:
                out.append(rules.target(sentence.english()))
        return out


class ChrfScorer(SavedBot):
    """Plays the reward seat with the metric itself: chrF++ against the observation's reference."""

    name = "chrf"
    produces = "score"

    def act(self, observations: Sequence[dict[str, str]]) -> list[np.ndarray]:
        return [np.array([rules.chrf(obs["completion"], obs["reference"])], dtype=np.float32)
                for obs in observations]
