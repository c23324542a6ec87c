"""The engine's contracts: agents, learners, moves and episodes.

`arena` knows no game and no model. A game is a PettingZoo `AECEnv`; a player
is anything with a batched `act`; a learner is anything with `update`. These
protocols are the whole interface between the three packages.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Sequence, runtime_checkable

Observation = dict[str, str]
"""Named text fields (and, in a game from elsewhere, other values); `arena.textobs` says which field
an LLM player reads (`prompt` unless the game names another)."""


class ArenaError(Exception):
    """A user-facing error: the CLI prints its message on one line and exits 2."""


@dataclass
class Move:
    """An action plus what the agent wants recorded next to it.

    Agents may return plain actions; an LLM agent returns `Move`s so that the
    prompt/completion token ids and per-token log-probs reach the learners.
    `extras["completion_tokens"]` (an int) is summed into tokens/s.
    """

    action: Any
    extras: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class Agent(Protocol):
    """One seat's player, batched over concurrent episodes.

    An agent may declare `produces = "text"` or `"score"`: building it for a seat whose action
    space takes the other kind (a `Text` or a `Box` space) is then a one-line error, not a round
    of invalid moves (`arena.specs.check_seat_fit`).

    An agent that samples may declare `seeded = True`: its `act` then also takes `seeds=`, one
    sampling seed per observation, and its action for an observation must depend only on that
    observation and its seed. The runner passes seeds derived from each episode's seed, so a
    run's transcripts do not depend on batching or on how episodes are split over processes.

    An agent that follows episodes (a person's chat view of a multi-turn game) may declare
    `wants_episodes = True`: its `act` then also takes `episodes=`, each observation's episode index.
    """

    def act(self, observations: Sequence[Observation]) -> list[Any]:
        """Return one action (or `Move`) per observation, in order."""
        ...

    def reset(self, seed: int) -> None:
        """Re-seed the agent's own RNG; called by the runner before each play."""
        ...


@runtime_checkable
class Checkpointable(Protocol):
    """An agent (or learner) whose state can be written and restored in place.

    `kind` names the agent factory (`arena.agents` entry point) that can build
    the agent back from the directory alone, e.g. for `ckpt:` specs.
    """

    kind: str

    def save(self, directory: Path) -> None: ...

    def load(self, directory: Path) -> None: ...


@runtime_checkable
class Learner(Protocol):
    """Updates one seat's agent between rounds.

    A learner whose update takes a while may have a `progress` attribute (default
    None): before each update the trainer sets it to a function taking one short
    line (e.g. "RL step 3/12"), which goes to the run's events and the live view.
    """

    def update(self, agent: Agent, episodes: Sequence["Episode"]) -> dict[str, float]:
        """Train `agent` in place on this round's episodes; return metrics."""
        ...

    def reset(self, seed: int) -> None:
        """Re-seed the learner's own RNG (data order, sampling); the trainer calls it before each
        round with a seed derived from (run seed, round, seat), so a resumed run replays exactly."""
        ...


@dataclass
class Step:
    """One move in a transcript."""

    seat: str
    observation: Observation
    action: Any
    extras: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"seat": self.seat, "observation": jsonable(self.observation),
                "action": jsonable(self.action), "extras": self.extras}


@dataclass
class Episode:
    """A finished episode: who played, what was said, what it paid."""

    index: int
    seed: int
    rewards: dict[str, float]
    info: dict[str, dict[str, Any]]
    """The env's final `infos` per seat (games put correctness, role, scores here)."""
    transcript: list[Step]
    round: int = 0

    @property
    def completion_tokens(self) -> int:
        return sum(int(s.extras.get("completion_tokens", 0)) for s in self.transcript)

    def moves(self, seat: str) -> list[Step]:
        return [s for s in self.transcript if s.seat == seat]

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "seed": self.seed, "round": self.round,
                "rewards": self.rewards, "info": jsonable(self.info),
                "transcript": [s.to_json() for s in self.transcript]}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "Episode":
        steps = [Step(s["seat"], s["observation"], s["action"], s.get("extras", {}))
                 for s in d["transcript"]]
        return cls(d["index"], d["seed"], d["rewards"], d["info"], steps, d.get("round", 0))


def jsonable(x: Any) -> Any:
    """Numpy scalars/arrays and NaN-safe floats to plain JSON values."""
    import math

    import numpy as np

    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, np.generic):
        return jsonable(x.item())
    if isinstance(x, float) and not math.isfinite(x):
        return str(x)
    return x
