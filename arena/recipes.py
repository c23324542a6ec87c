"""What a recipe is and how a run's seats are built from it.

A game names its recipes in `GameInfo.recipes` (`{"default": "module:attr"}`).
A recipe is a function `recipe(ctx: RecipeContext) -> Setup` that builds the
seats (agent + optional learner each) and the env kwargs; it is the one place
where a game meets concrete agents and learners. A game without a recipe is
trained with the `--seat` agents (default `scripted:random`) and no learners.
(`arena.selfplay` re-exports these names; recipes import them from there.)
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from arena.gameinfo import GameInfo
from arena.options import build as build_options
from arena.options import call_kwargs
from arena.registry import GameSpec, load_attr
from arena.specs import AgentContext, build_agent
from arena.types import ArenaError

if TYPE_CHECKING:
    from arena.runs.config import TrainConfig


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
    env: dict[str, Any] = field(default_factory=dict)
    """The user's game settings (`--env`, typed), added to the recipe's own env kwargs."""

    def agent(self, seat: str, default_spec: str, **env_kwargs: Any) -> tuple[Any, str]:
        """Build the agent for `seat`: the user's `--seat` override, else the default.
        `env_kwargs` are the game settings under which the seat exists (see `extra_seats`)."""
        spec = self.seat_specs.get(seat, default_spec)
        return build_agent(spec, self.context(seat, **env_kwargs)), spec

    def context(self, seat: str, **env_kwargs: Any) -> AgentContext:
        return AgentContext.for_seat(self.game, seat, self.runs_dir, self.device, **{**env_kwargs, **self.env})

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


def with_data_seed(params: Any, seed: int, field: str = "data_seed", offset: int = 0) -> Any:
    """The one data-seed rule of every recipe: a data seed left unset (None) is `offset` + the run's
    seed, so seeds vary the data as well as training (`arena.experiment` sets it the same way:
    `Experiment.data_offset` + seed, or `--data-seed`). A copy of `params`; a set one is kept."""
    if getattr(params, field) is not None:
        return params
    return dataclasses.replace(params, **{field: offset + int(seed)})


def default_setup(ctx: RecipeContext) -> Setup:
    """No recipe: every seat from `--seat` (default `scripted:random`), no learners."""
    seats = {}
    for seat in ctx.seat_names:
        agent, spec = ctx.agent(seat, "scripted:random")
        seats[seat] = SeatSetup(agent, None, spec)
    return Setup(seats)


def build_setup(cfg: TrainConfig, gspec: GameSpec, run_dir: Path, runs_dir: Path) -> Setup:
    cls = gspec.load()
    env = call_kwargs(cls.__init__, dict(cfg.env))
    seats = list(gspec.make(**env).possible_agents)
    # seats that exist only under some settings (rest-v0's `reward` with reward=seat): a recipe may build them
    extra = [s for s in GameInfo.of(cls).extra_seats if s not in seats]
    unknown = sorted(set(cfg.seats) - set(seats) - set(extra))
    if unknown:
        raise ArenaError(f"unknown seat(s) {', '.join(unknown)} for {gspec.id}; seats: {', '.join(seats + extra)}")
    ctx = RecipeContext(gspec, dict(cfg.seats), dict(cfg.params), cfg.seed, run_dir, runs_dir,
                        seats, cfg.device, env)
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
    setup.env_kwargs = {**setup.env_kwargs, **env}  # the run's game: what tournaments and replays play
    unused = sorted(set(cfg.seats) - set(setup.seats))
    if unused:
        raise ArenaError(f"--seat {', '.join(unused)}: recipe {cfg.recipe!r} of {gspec.id} does not play "
                         f"{'that seat' if len(unused) == 1 else 'those seats'} with these settings")
    return setup


def _refuse_params(cfg: TrainConfig, gspec: GameSpec, info: GameInfo) -> None:
    taking = ", ".join(r for r in info.recipes if r in info.recipe_params) or "none"
    raise ArenaError(f"--set {', '.join(sorted(cfg.params))}: recipe {cfg.recipe!r} of {gspec.id} takes no "
                     f"parameters (recipes that do: {taking})")
