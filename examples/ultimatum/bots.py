"""Players for ultimatum-v0, built from agent specs (`scripted:<name>?option=value`).

    scripted:fixed?offer=5          a proposer that always offers the same
    scripted:threshold?min=3        a responder that accepts offers of at least `min` coins
    scripted:tabular                either seat: a softmax policy table the recipe's learner trains

A bot subclasses `arena.bots.SavedBot` and declares what it `produces` ("text": these seats
take text) and its options (a dataclass `Params` with a docstring per field, read through
`arena.options.spec_options`: an unknown option or a bad value is a one-line error). The base
class draws its randomness from a hash of (seed, observation), so its moves do not depend on how
episodes are batched, and saves it as a checkpoint (`kind = "scripted"`: the engine rebuilds it
by the `bot` name saved in scripted.json); `TabularPolicy` adds its logits to that state.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from arena.bots import SavedBot, TableBot


class FixedOffer(SavedBot):
    """A proposer that always offers `offer` coins."""

    name, produces = "fixed", "text"

    @dataclass
    class Params:
        offer: int = 5
        """Coins offered to the responder."""

    def act(self, observations: Sequence[dict[str, str]]) -> list[str]:
        return [f"offer {self.params.offer}" for _ in observations]


class Threshold(SavedBot):
    """A responder that accepts an offer of at least `min` coins."""

    name = "threshold"

    @dataclass
    class Params:
        min: int = 3
        """The smallest offer accepted."""

    def act(self, observations: Sequence[dict[str, str]]) -> list[str]:
        return ["accept" if int(o["offer"] or 0) >= self.params.min else "reject" for o in observations]


class TabularPolicy(TableBot):
    """A softmax policy table for either seat, trained by `examples.ultimatum.learner.Reinforce`.

    proposer:  logits (pot + 1,)  P(offer k) = softmax(logits / temperature)[k]
    responder: logits (pot + 1,)  P(accept | offer k) = sigmoid(logits[k] / temperature)
    """

    name = "tabular"

    @dataclass
    class Params(TableBot.Params):
        pot: int = 10
        """Largest offer the table covers (the game's pot)."""

    def __init__(self, seat: str = "", options: str = ""):
        super().__init__(seat, options)
        self.logits = np.zeros(self.params.pot + 1)  # uniform offers / even odds of accepting

    def probabilities(self) -> np.ndarray:
        """(pot + 1,): offer probabilities (proposer) or accept probabilities per offer (responder)."""
        if self.seat == "responder":
            return 1.0 / (1.0 + np.exp(-self.logits / self.params.temperature))
        return self.softmax()

    def act(self, observations: Sequence[dict[str, str]]) -> list[str]:
        p = self.probabilities()
        out = []
        for obs in observations:
            rng = self.rng(obs)
            if self.seat == "responder":
                k = min(int(obs["offer"] or 0), self.params.pot)
                out.append("accept" if rng.random() < p[k] else "reject")
            else:
                out.append(f"offer {int(rng.choice(len(p), p=p))}")
        return out

