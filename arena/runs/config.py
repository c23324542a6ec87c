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

    def __post_init__(self) -> None:
        for name in ("rounds", "episodes", "concurrency"):
            if getattr(self, name) < 1:
                raise ArenaError(f"--{name} must be at least 1")
        for name in ("keep_last", "keep_every", "workers"):  # also read back from a config.json: data
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ArenaError(f"--{name.replace('_', '-')} must be a whole number >= 0, not {v!r}")
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
