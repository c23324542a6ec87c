"""Players for rps-v0 (`scripted:<name>?option=value`).

    scripted:move?move=rock      always the same move (a fixed opponent for a league's pool)
    scripted:tabular             a softmax over the three moves that `examples.rps.learner` trains

`exploitability(agents, weights)` is the game's analytic exploitability (`GameInfo.exploitability`):
the NashConv of the mixture of the agents' move distributions.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from arena.bots import SavedBot, TableBot
from examples.rps import rules


class FixedMove(SavedBot):
    """Always plays `move`."""

    name, produces = "move", "text"

    @dataclass
    class Params:
        move: str = "rock"
        """rock, paper or scissors."""

        def __post_init__(self) -> None:
            if self.move not in rules.MOVES:
                raise ValueError(f"move must be one of {', '.join(rules.MOVES)}")

    def probabilities(self) -> np.ndarray:
        return np.eye(3)[rules.MOVES.index(self.params.move)]

    def act(self, observations: Sequence[dict[str, str]]) -> list[str]:
        return [self.params.move for _ in observations]


class TabularPolicy(TableBot):
    """P(move k) = softmax(logits / temperature)[k], logits (3,) starting at `init` (rock, paper, scissors)."""

    name, produces = "tabular", "text"

    @dataclass
    class Params(TableBot.Params):
        rock: float = 1.0
        """Initial logit of rock (the default start, (1, 0, 0), is biased: uniform would already be Nash)."""

    def __init__(self, seat: str = "", options: str = ""):
        super().__init__(seat, options)
        self.logits = np.array([self.params.rock, 0.0, 0.0])

    def probabilities(self) -> np.ndarray:
        return self.softmax()

    def act(self, observations: Sequence[dict[str, str]]) -> list[str]:
        p = self.probabilities()
        return [rules.MOVES[int(self.rng(obs).choice(3, p=p))] for obs in observations]



def exploitability(agents: Sequence[Any], weights: Sequence[float]) -> float:
    """NashConv of the mixture sum_k weights[k] * (agent k's move distribution); agents without a
    `probabilities()` (an LLM) make it unknown (NaN)."""
    if not all(callable(getattr(a, "probabilities", None)) for a in agents):
        return float("nan")
    p = sum(float(w) * a.probabilities() for a, w in zip(agents, weights))
    return rules.nash_conv(p)
