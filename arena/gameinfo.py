"""What the engine needs to know about a game, beside PettingZoo's own `metadata`.

A game class may carry one `GameInfo` as its class attribute `game_info`:

    class MyEnv(TextGame):
        metadata = {"name": "my-v0", "is_parallelizable": False, "render_modes": []}
        game_info = GameInfo(
            description="One line for `arena games`.",
            recipes={"default": "mypkg.recipe:build"},
            headline=("accuracy",),
            bots={"greedy": "mypkg.bots:Greedy"},
        )

PettingZoo's keys (`name`, `render_modes`, `is_parallelizable`) stay in
`metadata`; everything the engine reads (recipes, headline metrics, bots, ...)
is read from here and nowhere else, through `GameInfo.of(cls)`. Entries that
name code are `module:attr` strings, imported only when used (a recipe may
import torch; `arena games` should not).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

from arena.types import ArenaError, Episode


@dataclass(frozen=True)
class GameInfo:
    """The engine's typed view of one game (a frozen class attribute `game_info`)."""

    description: str = ""
    """One line for `arena games` (default: the first line of the class docstring)."""
    recipes: Mapping[str, str] = field(default_factory=dict)
    """Recipe name -> `module:attr` of `recipe(ctx: RecipeContext) -> Setup`; `default` is what
    `arena train` uses. A game with none is trained with the `--seat` agents and no learners."""
    recipe_params: Mapping[str, str] = field(default_factory=dict)
    """Recipe name -> `module:Class` of the dataclass its `--set KEY=VALUE` overrides build (each
    field documented by the docstring under it); `arena train <game> --help` lists them."""
    headline: Sequence[str] = ()
    """Round metrics shown first in the live view, `arena runs` and reports."""
    live_losses: Sequence[str] = ()
    """Learner metrics shown as live-view columns (all of a learner's metrics if it reports none of these)."""
    extra_seats: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    """Seats that exist only under some settings -> those settings (rest-v0's `{"reward": {"reward":
    "seat"}}`); a recipe builds them with `ctx.agent(seat, spec, **env_kwargs)`, so `--seat` can
    override them."""
    symmetric_seats: Sequence[str] = ()
    """Seats that share one pool of entrants in tournaments and play round robin (duel-v0's policies)."""
    bots: Mapping[str, str] = field(default_factory=dict)
    """Scripted bot name -> `module:Class` (built as `Class(seat=..., options=...)`) for `scripted:<name>`."""
    report: str | None = None
    """`module:attr` of `report(run_dir) -> renderable`, printed after `arena train`/`resume`."""
    pretrain: str | None = None
    """`module:attr` of `pretrain(out_dir, *, steps, seed) -> Path` for `arena pretrain <game>`."""
    text_field: str | Mapping[str, str] | None = None
    """The observation field an LLM seat reads (one name for every seat, or seat -> name), for a game
    whose seats observe several Text fields, none named `prompt`; without it an LLM reads `prompt`
    or the only Text field (`arena.textobs`). For a game you cannot edit: `--env text_field=NAME`."""
    attack: Mapping[str, str] = field(default_factory=dict)
    """Recipe name -> `module:attr` of `build(ctx: arena.attack.AttackContext) -> arena.attack.Attack`:
    a fresh attacker against one frozen checkpoint of a run trained with that recipe (`arena attack`)."""
    exploitability: str | None = None
    """`module:attr` of `exploitability(agents, weights) -> float`: the analytic NashConv of the mixture
    of one seat's agents with those weights (a symmetric game), which `arena train --opponents` reports
    per round for the learner and for the league's meta-strategy (NaN where it cannot be known)."""
    study: Mapping[str, str] = field(default_factory=dict)
    """Seat -> `module:attr` of `items(agent, n, *, seed, settings) -> list[dict]`: what `arena study`
    shows people of that seat's checkpoints (`arena.study` says what each item holds)."""

    @staticmethod
    def of(cls: type) -> "GameInfo":
        """The game's `game_info` (an empty one where it declares none)."""
        info = getattr(cls, "game_info", None)
        if info is None:
            return GameInfo(description=_doc_line(cls))
        if not isinstance(info, GameInfo):
            raise ArenaError(f"{getattr(cls, '__name__', cls)}.game_info must be an arena.GameInfo, "
                             f"not {type(info).__name__}")
        return info if info.description else _with_description(info, _doc_line(cls))


def _doc_line(cls: type) -> str:
    doc = (getattr(cls, "__doc__", None) or "").strip().splitlines()
    return doc[0] if doc else ""


def _with_description(info: GameInfo, description: str) -> GameInfo:
    from dataclasses import replace

    return replace(info, description=description)


def round_metrics(game_cls: type, episodes: Sequence[Episode]) -> dict[str, float]:
    """A game's round metrics: its `round_metrics(episodes)` staticmethod, as floats ({} if none)."""
    fn: Any = getattr(game_cls, "round_metrics", None)
    return {k: float(v) for k, v in fn(list(episodes)).items()} if callable(fn) else {}
