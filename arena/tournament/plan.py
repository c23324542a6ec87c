"""The plan of a tournament: which game, which seats, which entrants, who plays whom.

`plan_tournament` resolves a `TournamentConfig` against the run directory (its
config, its checkpoints) and the game; every bad input is one `ArenaError` line,
raised before any pairing is played.
"""
from __future__ import annotations

import itertools
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from arena.checkpoints import CheckpointRef, parse_checkpoint_path, read_checkpoint_meta, resolve_checkpoint
from arena.gameinfo import GameInfo
from arena.options import call_kwargs
from arena.registry import GameSpec
from arena.registry import spec as game_spec
from arena.runs.opening import run_game
from arena.specs import agent_factories, parse_spec
from arena.store import check_run_name, find_run, read_checkpoints, read_run_config
from arena.types import ArenaError, jsonable


@dataclass
class TournamentConfig:
    """What `arena tournament` was asked to do."""

    run: str | None = None
    """Run name or path: entrants default to its checkpoints; results go to its arena.db."""
    game: str | None = None
    """Game id; taken from the run's config when omitted (required without a run)."""
    seats: dict[str, list[str]] = field(default_factory=dict)
    """Explicit agent specs per seat (`--seat prover=ckpt:a,ckpt:b`); override the run's."""
    name: str = ""
    """Tournament name (folder under `<run>/tournaments/`); default `default`, or
    `<game>-tournament` without a run (then also the name of the run directory created)."""
    episodes: int = 32
    """Episodes per pairing (the same episode seeds for every pairing)."""
    seed: int = 0
    """Tournament seed: episode seeds, agent seeds and the bootstrap derive from it."""
    concurrency: int = 16
    """Episodes in flight at once per pairing."""
    env: dict[str, Any] = field(default_factory=dict)
    """Game constructor kwargs over the run's (`--env key=value`). String values are typed
    by the game constructor's parameters when the plan is made (`arena.options.call_kwargs`);
    the plan's config holds the typed values."""
    bootstrap: int = 1000
    """Bootstrap rounds for the rating intervals (0: no intervals)."""
    device: str | None = None
    """Torch device for model agents."""
    max_cached_agents: int = 8
    """Built agents kept in memory between pairings (LRU); pairings are ordered so
    that the first seat's entrant changes slowest."""

    def __post_init__(self) -> None:
        for name in ("episodes", "concurrency"):
            if getattr(self, name) < 1:
                raise ArenaError(f"--{name} must be at least 1")
        if self.bootstrap < 0:
            raise ArenaError("--bootstrap must be 0 or more")
        if self.run is None and not self.game:
            raise ArenaError("give a run (its checkpoints) or --game with --seat SEAT=SPEC[,SPEC...]")
        if self.name:
            check_run_name(self.name)


@dataclass(frozen=True)
class Entrant:
    label: str
    """Unique within the tournament, e.g. `prover/round-3`."""
    spec: str
    """Agent spec that builds it (`ckpt:<dir>` for checkpoints)."""


@dataclass(frozen=True)
class SeatGroup:
    """One seat, or the game's symmetric seats sharing one pool of entrants."""

    seats: tuple[str, ...]
    entrants: tuple[Entrant, ...]

    @property
    def name(self) -> str:
        return "/".join(self.seats)

    @property
    def symmetric(self) -> bool:
        return len(self.seats) > 1


@dataclass
class Plan:
    cfg: TournamentConfig
    """The config with the game's settings resolved (the run's env kwargs, typed overrides)."""
    game: GameSpec
    seat_order: list[str]
    groups: list[SeatGroup]
    run_dir: Path
    runs_dir: Path
    name: str
    create_run: bool = False

    @property
    def game_id(self) -> str:
        return self.game.id

    @property
    def out_dir(self) -> Path:
        return self.run_dir / "tournaments" / self.name

    def key(self, label: str) -> str:
        return f"{self.game_id}/{label}"

    def pairings(self) -> list[dict[str, Entrant]]:
        """Every assignment of entrants to seats, in schedule order (first group slowest)."""
        per_group = [itertools.permutations(g.entrants, len(g.seats)) for g in self.groups]
        out = []
        for combo in itertools.product(*per_group):
            assignment = {seat: e for g, es in zip(self.groups, combo) for seat, e in zip(g.seats, es)}
            out.append({seat: assignment[seat] for seat in self.seat_order})
        return out

    def pairing_id(self, pairing: dict[str, Entrant]) -> str:
        return " | ".join(f"{seat}={pairing[seat].label}" for seat in self.seat_order)

    def fingerprint(self) -> dict[str, Any]:
        """What must not change between the invocations of one tournament."""
        return {"game": self.game_id, "episodes": self.cfg.episodes, "seed": self.cfg.seed,
                "env": jsonable(self.cfg.env)}


def plan_tournament(cfg: TournamentConfig, runs_dir: Path) -> Plan:
    """Resolve the run, game, seats and entrants; every bad input is one ArenaError line."""
    runs_dir = Path(runs_dir)
    run_config: dict[str, Any] = {}
    run_ckpts: dict[str, dict[int, Path]] = {}
    if cfg.run is not None:
        run_dir = find_run(cfg.run, runs_dir)
        run_config, run_ckpts = read_run_config(run_dir), read_checkpoints(run_dir)
        if not run_ckpts and not cfg.seats:
            raise ArenaError(f"run {run_dir} has no checkpoints (no completed rounds); train it first "
                             f"or name agents with --seat SEAT=SPEC[,SPEC...]")
    run_id = run_config.get("game_id")
    if cfg.game:  # named on this command line (a game that is not registered: --game module:Class)
        gspec = game_spec(cfg.game)
        if run_id and run_id != gspec.id:
            raise ArenaError(f"run {cfg.run} is a {run_id} run, not {gspec.id}")
    elif run_config:  # registered games only: a run directory never names code to import
        gspec = run_game(run_config)
    else:
        raise ArenaError(f"cannot tell which game run {cfg.run} is (no config.json); give --game")
    # the game as the run's recipe set it up (e.g. its data or reward settings); --env overrides
    cfg = replace(cfg, env={**(run_config.get("env_kwargs") or {}), **_typed_env(gspec, cfg.env)})
    seat_order = list(gspec.make(**cfg.env).possible_agents)
    unknown = sorted(set(cfg.seats) - set(seat_order))
    if unknown:
        raise ArenaError(f"unknown seat(s) {', '.join(unknown)} for {gspec.id}; seats: {', '.join(seat_order)}")

    if cfg.run is not None:
        name = cfg.name or "default"
    else:
        name = cfg.name or check_run_name(f"{gspec.id}-tournament")
        run_dir = runs_dir / name

    declared = list(GameInfo.of(gspec.load()).symmetric_seats)
    symmetric = tuple(s for s in seat_order if s in declared) if len(declared) > 1 else ()
    if symmetric and len(symmetric) != len(declared):
        symmetric = ()  # the game's declared seats are not all present with these env kwargs

    plan = Plan(cfg, gspec, seat_order, [], run_dir, runs_dir, name, create_run=cfg.run is None)
    groups: list[SeatGroup] = []
    for seat in seat_order:
        if seat in symmetric and seat != symmetric[0]:
            continue
        seats = symmetric if seat in symmetric else (seat,)
        entrants: list[Entrant] = []
        for s in seats:
            entrants += _entrants_for_seat(plan, s, seats, cfg.seats.get(s), run_ckpts.get(s, {}),
                                           run_config.get("seat_specs", {}).get(s))
        unique = list(OrderedDict((e.label, e) for e in entrants).values())
        if not unique:
            raise ArenaError(f"no agent for seat {seat!r} of {gspec.id}: give --seat {seat}=SPEC[,SPEC...]")
        if len(seats) > 1 and len(unique) < 2:
            raise ArenaError(f"round robin over seats {', '.join(seats)} needs at least 2 agents, got {len(unique)}")
        groups.append(SeatGroup(seats, tuple(unique)))
    plan.groups = groups
    return plan


def _typed_env(gspec: GameSpec, env: dict[str, Any]) -> dict[str, Any]:
    """`env` with its string values (`--env` flags) typed by the game constructor's parameters."""
    typed = call_kwargs(gspec.load().__init__, {k: v for k, v in env.items() if isinstance(v, str)})
    return {k: typed.get(k, v) for k, v in env.items()}


def _entrants_for_seat(plan: Plan, seat: str, group_seats: tuple[str, ...], explicit: list[str] | None,
                       ckpts: dict[int, Path], run_spec: str | None) -> list[Entrant]:
    if explicit is not None:
        specs = [s.strip() for s in explicit if s.strip()]
    elif ckpts:
        specs = [f"ckpt:{path}" for _, path in sorted(ckpts.items())]
    elif run_spec:
        specs = [run_spec]
    else:
        specs = []
    return [_entrant(plan, seat, group_seats, spec) for spec in specs]


def _entrant(plan: Plan, seat: str, group_seats: tuple[str, ...], spec: str) -> Entrant:
    kind, arg = parse_spec(spec)
    if kind != "ckpt":
        known = agent_factories()
        if kind not in known:  # fail before any pairing is played
            raise ArenaError(f"unknown agent kind {kind!r} in {spec!r}; known: {', '.join(sorted([*known, 'ckpt']))}")
        return Entrant(spec if len(group_seats) > 1 else f"{seat}/{spec}", spec)
    path = resolve_checkpoint(arg, plan.runs_dir)
    meta = read_checkpoint_meta(path)
    if meta.get("game") and meta["game"] != plan.game_id:
        raise ArenaError(f"checkpoint {path} is for game {meta['game']!r}, not {plan.game_id!r}")
    ref = parse_checkpoint_path(path)  # None: a checkpoint directory outside a run's checkpoints/
    ck_seat = meta.get("seat") or (ref.seat if ref else path.parent.name)
    if ck_seat not in group_seats:
        raise ArenaError(f"checkpoint {path} is for seat {ck_seat!r}, not {seat!r}")
    ck_run = ref.run_dir if ref else path.parent.parent.parent
    rnd = meta.get("round", ref.round if ref else None)  # the metadata's word first, as for the seat
    own = CheckpointRef(ck_run, ck_seat, rnd).label if isinstance(rnd, int) else f"{ck_seat}/{path.name}"
    same_run = ck_run.resolve() == plan.run_dir.resolve()
    return Entrant(own if same_run else f"{ck_run.name}/{own}", f"ckpt:{path.resolve()}")
