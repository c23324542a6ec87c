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
    attack: str = ""
    """`module:attr` of a `build(ctx) -> Attack` to use instead of the game's own (`GameInfo.attack`):
    e.g. `arena.league.exploiter:build`, the best response any recipe-trained game gets (`--best-response`)."""
    options: dict[str, str] = field(default_factory=dict)
    """KEY=VALUE settings handed to the attack's `build` (`AttackContext.options`; `--option`)."""
    game: str | None = None
    """The run's game as the user names it now (`--game MODULE:CLASS`), for a game that is not
    registered: a run directory never names code to import (`arena.runs.opening.run_game`)."""
    workers: int = 0
    """Processes playing units at once (`arena.attack.parallel`): 0 = one per torch CPU thread on a CPU (each
    with one thread), one on a GPU. A unit's record does not depend on it (up to float differences)."""

    def __post_init__(self) -> None:
        for name in ("seeds", "budget", "window"):
            if getattr(self, name) < 1:
                raise ArenaError(f"--{name} must be at least 1")
        if self.workers < 0:
            raise ArenaError("--workers must be 0 (one per CPU thread) or more")
        check_run_name(self.name)

    def key(self) -> dict[str, Any]:
        """What must match for stored units to be reused."""
        key = {"seat": self.seat, "budget": self.budget, "window": self.window, "full": self.full,
               "seed": self.seed}
        if self.attack or self.options:  # only when set: attacks stored before these existed still match
            key.update(attack=self.attack, options=dict(sorted(self.options.items())))
        return key


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
    options: dict[str, str] = field(default_factory=dict)
    """The attack's KEY=VALUE settings (`AttackConfig.options`)."""
    game: str | None = None
    """The game as the user named it (`AttackConfig.game`): pass it to `run_game`."""


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
    """The game's `build(ctx) -> Attack` (or `AttackConfig.attack`'s)."""
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


def plan_attack(cfg: AttackConfig, runs_dir: Path, targets: dict[int, Path] | None = None) -> AttackPlan:
    """The attack's plan. `targets` (round -> checkpoint directory) names checkpoints directly, for a
    trainer attacking the round it has just written, before the run's store lists it."""
    run_dir = find_run(cfg.run, runs_dir)
    config = read_run_config(run_dir)
    gspec = run_game(config, cfg.game)
    build = load_attr(cfg.attack or _game_attack(gspec, config))
    if targets is not None:
        return AttackPlan(cfg, run_dir, gspec.id, config, dict(targets), build, runs_dir)
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
    return AttackPlan(cfg, run_dir, gspec.id, config, {k: have[k] for k in rounds}, build, runs_dir)


def _game_attack(gspec: Any, config: dict[str, Any]) -> str:
    """The game's own attack for the run's recipe (`GameInfo.attack`)."""
    info = GameInfo.of(gspec.load())
    if not info.attack:
        raise ArenaError(f"{gspec.id} does not say how to attack it (its GameInfo has no `attack`; a best "
                         f"response by the recipe's learner: --best-response)")
    recipe = config.get("recipe") or "default"
    ref = info.attack.get(recipe)
    if not ref:
        raise ArenaError(f"{gspec.id} has no attack for runs of recipe {recipe!r} "
                         f"(attacks for: {', '.join(info.attack)}; any game with a learner for the "
                         f"attacker's seat: --best-response)")
    return ref
