"""The self-play round loop: play -> learners update -> checkpoints -> metrics -> event.

A game names its recipes in `GameInfo.recipes` (`{"default": "module:attr"}`).
A recipe is a function `recipe(ctx: RecipeContext) -> Setup` that builds the
seats (agent + optional learner each) and the env kwargs; it is the one place
where a game meets concrete agents and learners. A game without a recipe is
trained with the `--seat` agents (default `scripted:random`) and no learners.

Resume: every seed is derived from (run seed, round, ...), agents and learners are
rebuilt from the initial specs and then loaded from the last completed round's
checkpoints, so a resumed run ends exactly as an uninterrupted one.
"""
from __future__ import annotations

import dataclasses
import shutil
import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable

from arena.checkpoints import can_checkpoint, checkpoint_dir, restore_checkpoint, write_checkpoint
from arena.gameinfo import GameInfo, round_metrics
from arena.registry import GameSpec, load_attr
from arena.registry import spec as game_spec
from arena.runner import mean_rewards, play
from arena.seeding import derive
from arena.specs import AgentContext, build_agent
from arena.store import RunStore, append_event, check_run_name, write_json_atomic
from arena.types import ArenaError, Episode, jsonable


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
    device: str | None = None
    """Torch device for LLM agents/learners (default: cuda if available, else cpu)."""

    def __post_init__(self) -> None:
        for name in ("rounds", "episodes", "concurrency"):
            if getattr(self, name) < 1:
                raise ArenaError(f"--{name} must be at least 1")
        self.run = check_run_name(self.run or f"{self.game.replace(':', '_').replace('.', '_')}-s{self.seed}")


@dataclass
class SeatSetup:
    agent: Any
    learner: Any = None
    spec: str = ""


@dataclass
class Setup:
    """What a recipe returns."""

    seats: dict[str, SeatSetup]
    env_kwargs: dict[str, Any] = field(default_factory=dict)
    learner_order: list[str] | None = None
    """Order in which learners update (default: the game's seat order)."""
    params: Any = None
    """The recipe's resolved hyper-parameter dataclass (saved with the run)."""


@dataclass
class RecipeContext:
    """Everything a recipe may use to build its seats."""

    game: GameSpec
    seat_specs: dict[str, str]
    params: dict[str, str]
    seed: int
    run_dir: Path
    runs_dir: Path
    seat_names: list[str]
    device: str | None = None

    def agent(self, seat: str, default_spec: str, **env_kwargs: Any) -> tuple[Any, str]:
        """Build the agent for `seat`: the user's `--seat` override, else the default.
        `env_kwargs` are the game settings under which the seat exists (see `extra_seats`)."""
        spec = self.seat_specs.get(seat, default_spec)
        return build_agent(spec, self.context(seat, **env_kwargs)), spec

    def context(self, seat: str, **env_kwargs: Any) -> AgentContext:
        return AgentContext.for_seat(self.game, seat, self.runs_dir, self.device, **env_kwargs)

    @property
    def game_id(self) -> str:
        return self.game.id

    @property
    def game_cls(self) -> type:
        return self.game.load()


def resolve_params(cls: type, overrides: dict[str, str]):
    """Build a recipe's params dataclass from string overrides, checking names and types."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(overrides) - set(fields))
    if unknown:
        raise ArenaError(f"unknown parameter(s) {', '.join(unknown)}; known: {', '.join(fields)}")
    values = {}
    for name, raw in overrides.items():
        default = getattr(cls(), name)
        try:
            values[name] = _coerce(raw, default)
        except ValueError:
            raise ArenaError(f"bad value for {name}: {raw!r} (expected {type(default).__name__})") from None
    return cls(**values)


def _coerce(raw: str, like: Any) -> Any:
    if isinstance(like, bool):
        if raw.lower() in ("1", "true", "yes", "on"):
            return True
        if raw.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(raw)
    if isinstance(like, int):
        return int(raw)
    if isinstance(like, float):
        return float(raw)
    if isinstance(like, (tuple, list)):
        return type(like)(_coerce(x, like[0]) if like else x for x in raw.split(","))
    return raw


def default_setup(ctx: RecipeContext) -> Setup:
    """No recipe: every seat from `--seat` (default `scripted:random`), no learners."""
    seats = {}
    for seat in ctx.seat_names:
        agent, spec = ctx.agent(seat, "scripted:random")
        seats[seat] = SeatSetup(agent, None, spec)
    return Setup(seats)


def build_setup(cfg: TrainConfig, gspec: GameSpec, run_dir: Path, runs_dir: Path) -> Setup:
    cls = gspec.load()
    seats = list(gspec.make().possible_agents)
    # seats that exist only under some settings (rest-v0's `reward` with reward=seat): a recipe may build them
    extra = [s for s in GameInfo.of(cls).extra_seats if s not in seats]
    unknown = sorted(set(cfg.seats) - set(seats) - set(extra))
    if unknown:
        raise ArenaError(f"unknown seat(s) {', '.join(unknown)} for {gspec.id}; seats: {', '.join(seats + extra)}")
    ctx = RecipeContext(gspec, dict(cfg.seats), dict(cfg.params), cfg.seed, run_dir, runs_dir,
                        seats, cfg.device)
    recipes = GameInfo.of(cls).recipes
    if cfg.recipe not in recipes:
        if cfg.recipe != "default" or cfg.params:
            known = ", ".join(recipes) or "none"
            raise ArenaError(f"game {gspec.id!r} has no recipe {cfg.recipe!r} (recipes: {known})")
        setup = default_setup(ctx)
    else:
        recipe: Callable[[RecipeContext], Setup] = load_attr(recipes[cfg.recipe])
        setup = recipe(ctx)
    unused = sorted(set(cfg.seats) - set(setup.seats))
    if unused:
        raise ArenaError(f"--seat {', '.join(unused)}: recipe {cfg.recipe!r} of {gspec.id} does not play "
                         f"{'that seat' if len(unused) == 1 else 'those seats'} with these settings")
    return setup


# -- the loop -------------------------------------------------------------------

class Trainer:
    """Runs rounds of one run directory; reports progress through `on_event`."""

    def __init__(self, cfg: TrainConfig, run_dir: Path, runs_dir: Path,
                 on_event: Callable[[dict[str, Any]], None] | None = None):
        self.cfg, self.run_dir = cfg, Path(run_dir)
        self.gspec = game_spec(cfg.game)
        self.game_cls = self.gspec.load()
        self.game_id = self.gspec.id
        self.store = RunStore(self.run_dir, create=True)
        try:
            self.setup = build_setup(cfg, self.gspec, self.run_dir, runs_dir)
        except BaseException:
            self.store.close()
            raise
        self.on_event = on_event or (lambda e: None)

    def close(self) -> None:
        self.store.close()

    def emit(self, event: dict[str, Any]) -> None:
        append_event(self.run_dir, event)
        self.on_event(event)

    def learner_progress(self, k: int, seat: str, message: str) -> None:
        self.emit({"type": "learner_progress", "round": k, "seat": seat, "message": str(message)})

    def save_config(self) -> None:
        params = self.setup.params
        resolved = {**dataclasses.asdict(self.cfg),
                    "game_id": self.game_id,
                    "seat_specs": {s: v.spec for s, v in self.setup.seats.items()},
                    "env_kwargs": jsonable(self.setup.env_kwargs),  # tournaments of this run play the same game
                    "recipe_params": dataclasses.asdict(params) if dataclasses.is_dataclass(params) else None}
        write_json_atomic(self.run_dir / "config.json", resolved)

    def restore(self) -> int:
        """Load the last completed round's checkpoints; return the next round to play."""
        self.store.discard_incomplete()
        done = self.store.completed_rounds()
        if not done:
            return 0
        last = done[-1]
        for seat, s in self.setup.seats.items():
            path = checkpoint_dir(self.run_dir, seat, last)
            if can_checkpoint(s.agent):
                restore_checkpoint(path, s.agent, s.learner)
        return last + 1

    def run(self, start: int = 0) -> list[dict[str, Any]]:
        cfg = self.cfg
        previous = self.store.round_summaries()
        self.emit({"type": "run_start", "run": cfg.run, "game": self.game_id, "rounds": cfg.rounds,
                   "episodes": cfg.episodes, "start_round": start, "seats": list(self.setup.seats),
                   "live_losses": list(GameInfo.of(self.game_cls).live_losses),
                   "history": previous})
        summaries = list(previous)
        for k in range(start, cfg.rounds):
            summaries.append(self.play_round(k, summaries))
        self.emit({"type": "run_end", "run": cfg.run, "rounds": len(summaries)})
        return summaries

    def play_round(self, k: int, history: list[dict[str, Any]]) -> dict[str, Any]:
        cfg, setup = self.cfg, self.setup
        t0 = time.perf_counter()
        self.store.start_round(k)
        self.emit({"type": "round_start", "round": k, "episodes": cfg.episodes})
        for seat, s in setup.seats.items():
            s.agent.reset(derive(cfg.seed, "round", k, "agent", seat))
            if s.learner is not None:
                s.learner.reset(derive(cfg.seed, "round", k, "learner", seat))
        n_done = 0

        def on_episode(ep: Episode) -> None:
            nonlocal n_done
            n_done += 1
            self.store.add_episode(ep)
            self.emit({"type": "episode", "round": k, "done": n_done, "total": cfg.episodes})

        episodes, stats = play(lambda: self.gspec.make(**setup.env_kwargs),
                               {s: v.agent for s, v in setup.seats.items()}, cfg.episodes,
                               concurrency=cfg.concurrency, seed=derive(cfg.seed, "round", k),
                               on_episode=on_episode, round=k)
        play_s = time.perf_counter() - t0
        losses = {}
        for seat in setup.learner_order or list(setup.seats):
            s = setup.seats[seat]
            if s.learner is not None:
                self.emit({"type": "learner_start", "round": k, "seat": seat})
                if hasattr(s.learner, "progress"):  # see arena.types.Learner
                    s.learner.progress = partial(self.learner_progress, k, seat)
                losses[seat] = {n: float(v) for n, v in s.learner.update(s.agent, episodes).items()}
        ckpts = {seat: write_checkpoint(self.run_dir, seat, k, s.agent, s.learner,
                                        {"game": self.game_id, "spec": s.spec})
                 for seat, s in setup.seats.items() if can_checkpoint(s.agent)}
        metrics = round_metrics(self.game_cls, episodes)
        wall = time.perf_counter() - t0
        elapsed = sum(h["wall_s"] for h in history) + wall
        summary = {
            "round": k, "episodes": len(episodes), "mean_reward": mean_rewards(episodes),
            "metrics": metrics, "headline": list(GameInfo.of(self.game_cls).headline),
            "losses": losses, "episodes_per_s": len(episodes) / max(play_s, 1e-9),
            "tokens_per_s": stats.completion_tokens / max(play_s, 1e-9),
            "overhead": stats.overhead_fraction, "mean_batch": stats.mean_batch,
            "wall_s": wall, "play_s": play_s, "elapsed_s": elapsed,
            "eta_s": elapsed / (k + 1) * (cfg.rounds - k - 1),
        }
        self.store.complete_round(k, summary, ckpts)
        self.emit({"type": "round_end", "round": k, "summary": summary})
        return summary


def new_run(cfg: TrainConfig, runs_dir: Path, on_event=None) -> Trainer:
    run_dir = runs_dir / cfg.run
    if (run_dir / "arena.db").exists():
        raise ArenaError(f"run {cfg.run!r} already exists in {runs_dir}/ (use `arena resume {cfg.run}` or --run NAME)")
    created = not run_dir.exists()
    run_dir.mkdir(parents=True, exist_ok=True)
    try:
        trainer = Trainer(cfg, run_dir, runs_dir, on_event)
    except BaseException:  # a run that never started leaves nothing behind to block the corrected command
        if created:
            shutil.rmtree(run_dir, ignore_errors=True)
        raise
    trainer.save_config()
    return trainer


def load_run(run_dir: Path, runs_dir: Path, on_event=None) -> Trainer:
    import json

    try:
        raw = json.loads((run_dir / "config.json").read_text())
    except (OSError, ValueError) as e:
        raise ArenaError(f"cannot read {run_dir / 'config.json'}: {e}") from None
    names = {f.name for f in dataclasses.fields(TrainConfig)}
    cfg = TrainConfig(**{k: v for k, v in raw.items() if k in names})
    return Trainer(cfg, run_dir, runs_dir, on_event)
