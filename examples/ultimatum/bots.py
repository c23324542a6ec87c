"""Players for ultimatum-v0, built from agent specs (`scripted:<name>?option=value`).

    scripted:fixed?offer=5          a proposer that always offers the same
    scripted:threshold?min=3        a responder that accepts offers of at least `min` coins
    scripted:tabular                either seat: a softmax policy table the recipe's learner trains

A bot declares what it `produces` ("text": these seats take text), reads its options through
`arena.options.spec_options` (a dataclass `Params` with a docstring per field: an unknown option
or a bad value is a one-line error), and draws its randomness from a hash of (seed, observation),
so its moves do not depend on how episodes are batched. `save`/`load` make it a checkpoint
(`kind = "scripted"`: the engine rebuilds it by the `bot` name saved in scripted.json).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from arena.options import spec_options
from arena.seeding import stable_hash

STATE_FILE = "scripted.json"


class FixedOffer:
    """A proposer that always offers `offer` coins."""

    kind, name, produces = "scripted", "fixed", "text"

    @dataclass
    class Params:
        offer: int = 5
        """Coins offered to the responder."""

    def __init__(self, seat: str = "", options: str = ""):
        self.params = spec_options(self.Params, options, f"scripted:{self.name}")

    def reset(self, seed: int) -> None:
        pass

    def act(self, observations: Sequence[dict[str, str]]) -> list[str]:
        return [f"offer {self.params.offer}" for _ in observations]

    def save(self, directory: Path) -> None:
        (Path(directory) / STATE_FILE).write_text(json.dumps({"bot": self.name, "params": asdict(self.params)}))

    def load(self, directory: Path) -> None:
        self.params = self.Params(**json.loads((Path(directory) / STATE_FILE).read_text())["params"])


class Threshold(FixedOffer):
    """A responder that accepts an offer of at least `min` coins."""

    name = "threshold"

    @dataclass
    class Params:
        min: int = 3
        """The smallest offer accepted."""

    def act(self, observations: Sequence[dict[str, str]]) -> list[str]:
        return ["accept" if int(o["offer"] or 0) >= self.params.min else "reject" for o in observations]


class TabularPolicy(FixedOffer):
    """A softmax policy table for either seat, trained by `examples.ultimatum.learner.Reinforce`.

    proposer:  logits (pot + 1,)  P(offer k) = softmax(logits / temperature)[k]
    responder: logits (pot + 1,)  P(accept | offer k) = sigmoid(logits[k] / temperature)
    """

    name = "tabular"

    @dataclass
    class Params:
        pot: int = 10
        """Largest offer the table covers (the game's pot)."""
        temperature: float = 1.0
        """Sampling temperature."""

    def __init__(self, seat: str = "", options: str = ""):
        super().__init__(seat, options)
        self.seat = seat
        self.logits = np.zeros(self.params.pot + 1)  # uniform offers / even odds of accepting
        self.seed = 0

    def reset(self, seed: int) -> None:
        self.seed = seed

    def probabilities(self) -> np.ndarray:
        """(pot + 1,): offer probabilities (proposer) or accept probabilities per offer (responder)."""
        z = self.logits / self.params.temperature
        if self.seat == "responder":
            return 1.0 / (1.0 + np.exp(-z))
        e = np.exp(z - z.max())
        return e / e.sum()

    def act(self, observations: Sequence[dict[str, str]]) -> list[str]:
        p = self.probabilities()
        out = []
        for obs in observations:
            rng = np.random.default_rng(stable_hash(self.seed, obs["prompt"]))
            if self.seat == "responder":
                k = min(int(obs["offer"] or 0), self.params.pot)
                out.append("accept" if rng.random() < p[k] else "reject")
            else:
                out.append(f"offer {int(rng.choice(len(p), p=p))}")
        return out

    def save(self, directory: Path) -> None:
        (Path(directory) / STATE_FILE).write_text(json.dumps(
            {"bot": self.name, "params": asdict(self.params), "logits": self.logits.tolist()}))

    def load(self, directory: Path) -> None:
        state = json.loads((Path(directory) / STATE_FILE).read_text())
        self.params = self.Params(**state["params"])
        self.logits = np.asarray(state["logits"], dtype=float)
