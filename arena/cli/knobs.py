"""Every knob of a game, for `arena train <game> --help`: its recipes' `--set` keys and its `--env` settings.

Read from the code, not restated: a recipe's keys, defaults and meanings come from its params
dataclass and the docstrings under its fields (`GameInfo.recipe_params`); a game's settings
from its constructor's signature.
"""
from __future__ import annotations

import dataclasses
import inspect

from rich.console import Console
from rich.table import Table
from rich.text import Text

from arena.gameinfo import GameInfo
from arena.options import field_docs
from arena.registry import load_attr
from arena.types import ArenaError


def print_knobs(game: str, console: Console | None = None) -> None:
    """The recipes of `game` with their `--set` keys, and its `--env` settings."""
    from arena import registry

    console = console or Console()
    try:
        gspec = registry.spec(game)
    except ArenaError as e:
        console.print(Text(f"\n({e})"))
        return
    cls, info = gspec.load(), GameInfo.of(gspec.load())
    console.print(Text(f"\n{gspec.id}: {info.description}", style="bold"))
    recipes = ", ".join(info.recipes) or "none: the --seat agents play, nothing learns"
    console.print(Text(f"recipes (--recipe): {recipes}"))
    shown: dict[str, list[str]] = {}
    for recipe, target in info.recipe_params.items():
        shown.setdefault(target, []).append(recipe)
    for target, recipes in shown.items():
        params = load_attr(target)
        docs, defaults = field_docs(params), params()
        console.print(Text(f"\nrecipe {', '.join(recipes)}: --set KEY=VALUE", style="bold"))
        table = Table("--set KEY", "default", "meaning", header_style="bold", box=None, padding=(0, 1))
        for f in dataclasses.fields(params):
            table.add_row(Text(f.name), Text(repr(getattr(defaults, f.name))), Text(docs.get(f.name, "")))
        console.print(table)
    console.print(Text("\ngame settings: --env KEY=VALUE", style="bold"))
    settings = Table("--env KEY", "default", header_style="bold", box=None, padding=(0, 1))
    for name, p in inspect.signature(cls.__init__).parameters.items():
        if name != "self" and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            settings.add_row(Text(name), Text("(required)" if p.default is p.empty else repr(p.default)))
    console.print(settings)
