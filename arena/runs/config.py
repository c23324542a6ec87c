"""`TrainConfig`: what `arena train` was asked to do, saved (resolved) as the run's `config.json`;
reading a saved one back (`config_from_json`: data, each field type-checked) and the package
versions a run records beside it.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from arena.store import check_run_config, check_run_name
from arena.types import ArenaError

CONFIG_FILE = "config.json"


@dataclass
class TrainConfig:
    """What `arena train` was asked to do; saved as the run's `config.json`."""

    game: str
    """Game id (`name-vN`) or import path (`module:Class`)."""
    rounds: int = 3
    """Self-play rounds to play."""
    episodes: int = 64
    """Episodes per round."""
    concurrency: int = 16
    """Episodes in flight at once (the batch an agent's `act` sees)."""
    seed: int = 0
    """Run seed; every other seed is derived from it."""
    run: str = ""
    """Run name (directory under the runs dir); default `<game>-<seed>`."""
    recipe: str = "default"
    """Which of the game's recipes builds the seats."""
    seats: dict[str, str] = field(default_factory=dict)
    """Agent spec overrides per seat (`--seat prover=hf:<dir>`)."""
    params: dict[str, str] = field(default_factory=dict)
    """Recipe hyper-parameter overrides (`--set key=value`)."""
    env: dict[str, str] = field(default_factory=dict)
    """Game settings (`--env key=value`): constructor arguments, added to the recipe's, and
    `text_field`, the observation field LLM seats read (`arena.textobs`)."""
    device: str | None = None
    """Torch device for LLM agents/learners (default: cuda if available, else cpu)."""
    keep_last: int = 0
    """Keep only the last K rounds' checkpoints per seat (0: keep every round)."""
    keep_every: int = 0
    """With keep_last: also keep every N-th round's checkpoints (0, N, 2N, ...) for tournaments across
    training (0: none besides the last K)."""
    workers: int = 0
    """Ray rollout workers that play the rounds (0: play in this process); needs `ray`."""
    ray_address: str = ""
    """With workers: the Ray cluster to join (default: start a local one)."""
    opponents: dict[str, str] = field(default_factory=dict)
    """League self-play (`--opponents SEAT=RULE`, docs/league.md): SEAT learns; the other seat is played
    by a pool member drawn per episode by RULE: latest, uniform, pfsp or nash (empty: both seats as
    the recipe built them, the default)."""
    pool: list[str] = field(default_factory=list)
    """With --opponents: fixed agents (specs) that join the pool and are never trained (`--pool SPEC`)."""
    league_episodes: int = 64
    """With --opponents pfsp or nash: episodes per ordered pair of pool members in the meta-game."""
    pfsp_power: float = 2.0
    """With --opponents pfsp: opponent j is drawn with weight (1 - P(learner beats j)) ** power."""
    exploiters: int = 0
    """With --opponents: exploiters trained against each round's learner checkpoint (best responses,
    `arena.league.exploiter`); their gains give the round's NashConv with an interval over them (0: none)."""
    exploiter_steps: int = 20
    """With --exploiters: learner updates per exploiter (each on --exploiter-episodes episodes)."""
    exploiter_episodes: int = 64
    """With --exploiters: episodes per exploiter step."""

    def __post_init__(self) -> None:
        for name in ("rounds", "episodes", "concurrency", "league_episodes", "exploiter_steps", "exploiter_episodes"):
            if getattr(self, name) < 1:
                raise ArenaError(f"--{name.replace('_', '-')} must be at least 1")
        for name in ("keep_last", "keep_every", "workers", "exploiters"):  # also read back from a config.json: data
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ArenaError(f"--{name.replace('_', '-')} must be a whole number >= 0, not {v!r}")
        if isinstance(self.pfsp_power, bool) or not isinstance(self.pfsp_power, (int, float)) \
                or not 0 < self.pfsp_power < 100:
            raise ArenaError(f"--pfsp-power must be a number in (0, 100), not {self.pfsp_power!r}")
        if self.pool and not self.opponents:
            raise ArenaError("--pool needs --opponents SEAT=RULE (the pool is the opponents' league)")
        if self.exploiters and not self.opponents:
            raise ArenaError("--exploiters needs --opponents SEAT=RULE (they attack the learner's checkpoints)")
        self.run = check_run_name(self.run or f"{self.game.replace(':', '_').replace('.', '_')}-s{self.seed}")


def config_from_json(raw: Any, device: str | None = None) -> TrainConfig:
    """A saved `config.json` back into a `TrainConfig`, each field checked against its type
    (`arena.store.check_run_config`); unknown keys are ignored."""
    raw = check_run_config(raw)
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    values = {k: v for k, v in raw.items() if k in names}
    if device is not None:
        values["device"] = device
    if "game" not in values:
        raise ArenaError("config.json names no game")
    return TrainConfig(**values)


def package_versions() -> dict[str, str]:
    """Versions of Python and the packages a run's numbers depend on (saved in config.json)."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for name in ("alignment-arena", "torch", "transformers", "accelerate", "pettingzoo", "gymnasium"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            continue
    return out
