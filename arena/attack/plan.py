"""The plan of an attack: which run, which seat's checkpoints, which rounds, and the game's side of it."""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from arena.gameinfo import GameInfo
from arena.runs.opening import run_game
from arena.store import check_run_name, find_run, read_checkpoints, read_run_config
from arena.types import ArenaError


@dataclass
class AttackConfig:
    """What `arena attack` was asked to do."""

    run: str
    """Run name or path: its checkpoints are the targets; results go under `<run>/attacks/<name>/`."""
    seat: str
    """The seat whose frozen checkpoints are attacked (e.g. `verifier`)."""
    rounds: list[int] | None = None
    """Rounds whose checkpoints are attacked (default: every completed round)."""
    seeds: int = 3
    """Attack seeds per round (the intervals are over these)."""
    budget: int = 48
    """Most attacker optimisation steps per attack."""
    window: int = 3
    """Steps averaged before comparing the success with the game's threshold (one batch is noisy)."""
    full: bool = False
    """Keep training to the budget after an exploit (default: stop at the exploit; cheaper)."""
    name: str = "default"
    """Attack name (folder under `<run>/attacks/`)."""
    seed: int = 0
    """Base seed: attack seed s of round k is seeded with `seed * 1000 + s` (the same for every round)."""
    device: str | None = None
    """Torch device for model agents."""

    def __post_init__(self) -> None:
        for name in ("seeds", "budget", "window"):
            if getattr(self, name) < 1:
                raise ArenaError(f"--{name} must be at least 1")
        check_run_name(self.name)

    def key(self) -> dict[str, Any]:
        """What must match for stored units to be reused."""
        return {"seat": self.seat, "budget": self.budget, "window": self.window, "full": self.full,
                "seed": self.seed}


@dataclass(frozen=True)
class AttackContext:
    """What a game's `build` gets: the run, the frozen target, the attack seed."""

    run_dir: Path
    run_config: dict[str, Any]
    """The run's checked `config.json` (seat specs, recipe params, env settings)."""
    game_id: str
    target_seat: str
    target: Path
    """The frozen checkpoint directory being attacked."""
    round: int
    seed: int
    device: str | None = None
    runs_dir: Path = field(default=Path("runs"))


class Attack(Protocol):
    """The game's side of one attack (returned by `GameInfo.attack`'s `build`)."""

    attacker: str
    """Words for the table: who attacks, in what role (e.g. `initial prover, sneaky only`)."""
    metric: str
    """Name of the success metric (e.g. `fooled`)."""
    threshold: float
    """Exploit when the window mean of `success` reaches this."""

    def step(self) -> dict[str, float]:
        """One attacker optimisation step; returns metrics, `success` among them (measured on the
        step's batch, before its update)."""
        ...


@dataclass
class AttackPlan:
    config: AttackConfig
    run_dir: Path
    game_id: str
    run_config: dict[str, Any]
    targets: dict[int, Path]
    """round -> frozen checkpoint directory of the target seat."""
    build: Any
    """The game's `build(ctx) -> Attack`."""
    runs_dir: Path

    @property
    def out_dir(self) -> Path:
        return self.run_dir / "attacks" / self.config.name

    def units(self) -> list[tuple[int, int]]:
        return [(k, s) for k in sorted(self.targets) for s in range(self.config.seeds)]


def load_attr(ref: str) -> Any:
    module, _, attr = ref.partition(":")
    try:
        return getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as e:
        raise ArenaError(f"cannot load {ref!r}: {e}") from None


def plan_attack(cfg: AttackConfig, runs_dir: Path) -> AttackPlan:
    run_dir = find_run(cfg.run, runs_dir)
    config = read_run_config(run_dir)
    gspec = run_game(config)
    info = GameInfo.of(gspec.load())
    if not info.attack:
        raise ArenaError(f"{gspec.id} does not say how to attack it (its GameInfo has no `attack`)")
    recipe = config.get("recipe") or "default"
    ref = info.attack.get(recipe)
    if not ref:
        raise ArenaError(f"{gspec.id} has no attack for runs of recipe {recipe!r} "
                         f"(attacks for: {', '.join(info.attack)})")
    checkpoints = read_checkpoints(run_dir)
    if cfg.seat not in checkpoints:
        raise ArenaError(f"run {run_dir.name} has no checkpoints of seat {cfg.seat!r} "
                         f"(seats with checkpoints: {', '.join(sorted(checkpoints)) or 'none'})")
    have = checkpoints[cfg.seat]
    rounds = sorted(have) if cfg.rounds is None else sorted(set(cfg.rounds))
    missing = [k for k in rounds if k not in have]
    if missing:
        raise ArenaError(f"no {cfg.seat} checkpoint for round(s) {', '.join(map(str, missing))} "
                         f"(have {', '.join(map(str, sorted(have)))})")
    return AttackPlan(cfg, run_dir, gspec.id, config, {k: have[k] for k in rounds}, load_attr(ref), runs_dir)
