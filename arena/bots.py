"""What every game's scripted bots share (`GameInfo.bots`, played as `scripted:<name>?option=value`).

A bot subclasses `ScriptedBot` and declares its `name`, what it `produces` ("text" or "score")
and its options as a dataclass `Params` (a docstring per field). `ScriptedBot(seat=..., options=...)`
reads the options with `arena.options.spec_options` (an unknown option or a bad value is one
line), `reset(seed)` re-seeds it, and `rng(obs)` draws from a hash of (seed, the observation's
prompt), so that its moves do not depend on how episodes are batched.

`SavedBot` is a `ScriptedBot` that can be a checkpoint: `kind = "scripted"`, and `save(dir)` /
`load(dir)` write and read its name and params as `scripted.json`, by which the engine rebuilds
it (`agents.scripted`); a bot with more state adds it to `state()` and reads it back from what
`load` returns. `TableBot` is such a bot: a table of logits (a tabular policy that a learner trains),
saved with it. A bot without `save`/`load` is not checkpointed: a run that uses it records its
spec, from which tournaments and `arena play <run>` rebuild it.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping

import numpy as np

from arena.options import spec_options
from arena.seeding import stable_hash

STATE_FILE = "scripted.json"


class ScriptedBot:
    """Options, seat and seed of a rule-based player; subclasses write `act(observations)`."""

    name = ""

    @dataclass
    class Params:
        pass

    def __init__(self, seat: str = "", options: str = ""):
        self.seat, self.seed = seat, 0
        self.params = spec_options(self.Params, options, f"scripted:{self.name}")

    def reset(self, seed: int) -> None:
        self.seed = int(seed)

    def rng(self, obs: Mapping[str, str]) -> np.random.Generator:
        """This observation's generator: a hash of (seed, its prompt)."""
        return np.random.default_rng(stable_hash(self.seed, obs["prompt"]))


class SavedBot(ScriptedBot):
    """A `ScriptedBot` that is saved as (and rebuilt from) a `scripted.json` checkpoint."""

    kind = "scripted"

    def state(self) -> dict[str, Any]:
        """What `save` writes: the bot's name and params."""
        return {"bot": self.name, "params": asdict(self.params)}

    def save(self, directory: Path) -> None:
        (Path(directory) / STATE_FILE).write_text(json.dumps(self.state()))

    def load(self, directory: Path) -> dict[str, Any]:
        """Read the params back; returns the whole saved state (for a subclass's own fields)."""
        state = json.loads((Path(directory) / STATE_FILE).read_text())
        self.params = self.Params(**state["params"])
        return state


class TableBot(SavedBot):
    """A `SavedBot` holding a table of logits (`self.logits`, set by the subclass), saved and loaded
    with its params; a subclass's `Params` extends `TableBot.Params` (the sampling temperature)."""

    @dataclass
    class Params:
        temperature: float = 1.0
        """Sampling temperature."""

    logits: np.ndarray

    def softmax(self) -> np.ndarray:
        """softmax(logits / temperature)."""
        z = self.logits / self.params.temperature
        e = np.exp(z - z.max())
        return e / e.sum()

    def state(self) -> dict[str, Any]:
        return {**super().state(), "logits": self.logits.tolist()}

    def load(self, directory: Path) -> dict[str, Any]:
        state = super().load(directory)
        self.logits = np.asarray(state["logits"], dtype=float)
        return state
