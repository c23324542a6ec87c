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
import time
import uuid
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable

from arena.checkpoints import can_checkpoint, checkpoint_dir, prune_checkpoints, restore_checkpoint, write_checkpoint
from arena.gameinfo import GameInfo, round_metrics
from arena.options import build as build_options
from arena.registry import GameSpec, load_attr
from arena.registry import spec as game_spec
from arena.rollout import EnvFactory, Rollouts, make_rollouts
from arena.runner import mean_rewards
from arena.seeding import derive
from arena.runs import (RunLock, abandon_new_run, check_store_belongs, claim_new_run, config_from_json,
                        package_versions, publish_new_run, refuse_several_processes, run_game)
from arena.specs import AgentContext, build_agent
from arena.store import RunStore, append_event, check_run_name, read_events, read_run_config, write_json_atomic
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
    """Build a recipe's params dataclass from `--set` overrides: names and types checked, non-finite
    numbers refused, all through `arena.options` (one line naming the known keys otherwise)."""
    return build_options(cls, overrides, "parameter")


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
    info = GameInfo.of(cls)
    recipes = info.recipes
    if cfg.recipe not in recipes:
        if cfg.recipe != "default" or cfg.params:
            known = ", ".join(recipes) or "none"
            raise ArenaError(f"game {gspec.id!r} has no recipe {cfg.recipe!r} (recipes: {known})")
        setup = default_setup(ctx)
    else:
        if cfg.params and info.recipe_params:  # checked before the recipe loads any model
            if cfg.recipe not in info.recipe_params:
                _refuse_params(cfg, gspec, info)
            resolve_params(load_attr(info.recipe_params[cfg.recipe]), cfg.params)
        recipe: Callable[[RecipeContext], Setup] = load_attr(recipes[cfg.recipe])
        setup = recipe(ctx)
    if cfg.params and setup.params is None:  # the recipe never read them
        _refuse_params(cfg, gspec, info)
    unused = sorted(set(cfg.seats) - set(setup.seats))
    if unused:
        raise ArenaError(f"--seat {', '.join(unused)}: recipe {cfg.recipe!r} of {gspec.id} does not play "
                         f"{'that seat' if len(unused) == 1 else 'those seats'} with these settings")
    return setup


def _refuse_params(cfg: TrainConfig, gspec: GameSpec, info: GameInfo) -> None:
    taking = ", ".join(r for r in info.recipes if r in info.recipe_params) or "none"
    raise ArenaError(f"--set {', '.join(sorted(cfg.params))}: recipe {cfg.recipe!r} of {gspec.id} takes no "
                     f"parameters (recipes that do: {taking})")


# -- the loop -------------------------------------------------------------------

class Trainer:
    """Runs rounds of one run directory; reports progress through `on_event`."""

    def __init__(self, cfg: TrainConfig, run_dir: Path, runs_dir: Path,
                 on_event: Callable[[dict[str, Any]], None] | None = None, gspec: GameSpec | None = None,
                 *, create: bool = True, lock: RunLock | None = None, store_dir: Path | None = None):
        """`store_dir`: where the store and config.json are written while a new run is set up
        (its hidden setup directory; `run_dir` is where the run will live, which recipes see)."""
        self.cfg, self.run_dir, self.lock = cfg, Path(run_dir), lock
        self.gspec = gspec or game_spec(cfg.game)
        self.game_cls = self.gspec.load()
        self.game_id = self.gspec.id
        self.setup = build_setup(cfg, self.gspec, self.run_dir, runs_dir)
        self.store = RunStore(Path(store_dir or self.run_dir), create=create)
        self.on_event = on_event or (lambda e: None)
        self.rollouts: Rollouts | None = None  # made when rounds start (a Ray cluster takes seconds)

    def close(self) -> None:
        if self.rollouts is not None:
            self.rollouts.close()
            self.rollouts = None
        self.store.close()
        if self.lock is not None:
            self.lock.release()

    def emit(self, event: dict[str, Any]) -> None:
        append_event(self.run_dir, event)
        self.on_event(event)

    def learner_progress(self, k: int, seat: str, message: str) -> None:
        self.emit({"type": "learner_progress", "round": k, "seat": seat, "message": str(message)})

    def save_config(self) -> None:
        params = self.setup.params
        resolved = {**dataclasses.asdict(self.cfg),
                    "game_id": self.game_id,
                    "run_id": self.store.get("run_id"),
                    "versions": package_versions(),
                    "seat_specs": {s: v.spec for s, v in self.setup.seats.items()},
                    "env_kwargs": jsonable(self.setup.env_kwargs),  # tournaments of this run play the same game
                    "recipe_params": dataclasses.asdict(params) if dataclasses.is_dataclass(params) else None}
        write_json_atomic(self.store.dir / "config.json", resolved)

    def restore(self) -> int:
        """Load the last completed round's checkpoints; return the next round to play. Events of
        rounds the store committed but a crash kept out of events.jsonl are written first."""
        self.store.discard_incomplete()
        self.replay_missing_events()
        done = self.store.completed_rounds()
        if not done:
            return 0
        last = done[-1]
        for seat, s in self.setup.seats.items():
            path = checkpoint_dir(self.run_dir, seat, last)
            if can_checkpoint(s.agent):
                restore_checkpoint(path, s.agent, s.learner)
        return last + 1

    def replay_missing_events(self) -> None:
        """events.jsonl follows the store: a `round_end` for every committed round."""
        logged = {e.get("round") for e in read_events(self.run_dir)[0] if e.get("type") == "round_end"}
        for summary in self.store.round_summaries():
            if summary["round"] not in logged:
                self.emit({"type": "round_end", "round": summary["round"], "summary": summary})

    def finish_events(self) -> None:
        """A run whose rounds are all committed ends with `run_end` in its events (what `watch` waits for)."""
        events = read_events(self.run_dir)[0]
        done = self.store.completed_rounds()
        if len(done) >= self.cfg.rounds and not any(e.get("type") == "run_end" for e in events):
            self.emit({"type": "run_end", "run": self.cfg.run, "rounds": len(done)})

    def run(self, start: int = 0) -> list[dict[str, Any]]:
        """Play rounds `start`.. to the end; the run's lock is held until this returns or raises
        (taken again if this trainer gave it up), so no other writer can interleave."""
        if self.lock is None:
            self.lock = RunLock(self.run_dir).acquire()
        try:
            return self._run(start)
        finally:
            self.lock.release()
            self.lock = None

    def _run(self, start: int) -> list[dict[str, Any]]:
        cfg = self.cfg
        previous = self.store.round_summaries()
        self.emit({"type": "run_start", "run": cfg.run, "game": self.game_id, "rounds": cfg.rounds,
                   "episodes": cfg.episodes, "start_round": start, "seats": list(self.setup.seats),
                   "live_losses": list(GameInfo.of(self.game_cls).live_losses),
                   "history": previous})
        summaries = list(previous)
        if self.rollouts is None:
            self.rollouts = make_rollouts(cfg, EnvFactory(self.gspec, dict(self.setup.env_kwargs)))
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

        agents = {s: v.agent for s, v in setup.seats.items()}
        episodes, stats = self.rollouts.play(agents, cfg.episodes, concurrency=cfg.concurrency,
                                             seed=derive(cfg.seed, "round", k), on_episode=on_episode, round=k)
        play_s = time.perf_counter() - t0
        losses = {}
        for seat in setup.learner_order or list(setup.seats):
            s = setup.seats[seat]
            if s.learner is not None:
                self.emit({"type": "learner_start", "round": k, "seat": seat})
                if hasattr(s.learner, "progress"):  # see arena.types.Learner
                    s.learner.progress = partial(self.learner_progress, k, seat)
                losses[seat] = {n: float(v) for n, v in s.learner.update(s.agent, episodes).items()}
        self.rollouts.updated(agents, list(losses))
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
        if cfg.keep_last:  # after the round is committed: a kill before this keeps one round too many
            prune_checkpoints(self.run_dir, self.store.completed_rounds(), cfg.keep_last, cfg.keep_every)
        self.emit({"type": "round_end", "round": k, "summary": summary})
        return summary


def new_run(cfg: TrainConfig, runs_dir: Path, on_event=None) -> Trainer:
    """Set up a new run: either a whole run or nothing. Everything is built and checked in a
    hidden setup directory under the run's lock, config.json is written last, and one rename
    gives the directory its run name (`arena.runs.claim_new_run`); a setup that fails or is
    killed leaves nothing that a command reads or that blocks `arena train` with the same name."""
    refuse_several_processes()
    runs_dir = Path(runs_dir)
    gspec = game_spec(cfg.game)  # an unknown game is refused before anything is made
    run_dir = runs_dir / cfg.run
    staging, lock = claim_new_run(run_dir, runs_dir)
    trainer = None
    try:
        trainer = Trainer(cfg, run_dir, runs_dir, on_event, gspec, create=True, lock=lock, store_dir=staging)
        trainer.store.set("run_id", uuid.uuid4().hex)
        trainer.save_config()
        trainer.store.close()
        publish_new_run(staging, run_dir)
    except BaseException:
        if trainer is not None:
            trainer.store.close()
        abandon_new_run(staging, lock)
        raise
    trainer.store = RunStore(run_dir)
    return trainer


def load_run(run_dir: Path, runs_dir: Path, on_event=None, *, game: str | None = None,
             device: str | None = None) -> Trainer:
    """Reopen a run to resume it. Its `config.json` is data: the game must be registered or
    named by the user (`game`), every field is type-checked, and nothing in it is imported.
    Its arena.db must be the one the run wrote (`check_store_belongs`), checked under the lock
    before anything is built or written."""
    refuse_several_processes()
    raw = read_run_config(run_dir)
    if not raw:
        raise ArenaError(f"{run_dir} has no config.json: its setup never finished; start it again with "
                         f"`arena train ... --run {Path(run_dir).name}`")
    gspec = run_game(raw, game)
    cfg = config_from_json(raw, device)
    lock = RunLock(run_dir).acquire()
    try:
        check_store_belongs(Path(run_dir), raw)
        trainer = Trainer(cfg, run_dir, runs_dir, on_event, gspec=gspec, create=False, lock=lock)
    except BaseException:
        lock.release()
        raise
    return trainer
