"""Versioned game registry (`name-vN`), with lazy `module:attr` entry points.

Games register through the `arena.games` entry-point group (this repo's own
games do too, in `pyproject.toml`), through `register()`, or are named on the
command line by import path (`--game mypkg.mod:MyEnv`).
"""
from __future__ import annotations

import difflib
import importlib
import re
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import Any, Callable

from arena.types import ArenaError

ID_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]*-v\d+$")
ENTRY_POINT_GROUP = "arena.games"
_MEETS_CONTRACT: set[Any] = set()
"""Env classes (or factories) whose first env passed `arena.testing.contract_problems`."""


@dataclass(frozen=True)
class GameSpec:
    """A registered game: its id, where its env class lives, default kwargs."""

    id: str
    entry_point: str | Callable[..., Any]
    kwargs: dict[str, Any] = field(default_factory=dict)

    def load(self) -> type:
        return load_attr(self.entry_point) if isinstance(self.entry_point, str) else self.entry_point

    def make(self, **overrides: Any):
        """A new env; the first one of each game is checked against the contract (its spaces)."""
        factory = self.load()
        try:
            env = factory(**{**self.kwargs, **overrides})
        except (TypeError, ValueError) as e:
            raise ArenaError(f"cannot make {self.id} with {overrides or 'defaults'}: {e}") from None
        if factory not in _MEETS_CONTRACT:
            from arena.testing import contract_problems

            problems = contract_problems(env)
            if problems:
                raise ArenaError(f"{self.id} is not an arena game: it {'; it '.join(problems)} "
                                 "(docs/adding-a-game.md)")
            _MEETS_CONTRACT.add(factory)
        return env

    @property
    def description(self) -> str:
        from arena.gameinfo import GameInfo

        return GameInfo.of(self.load()).description


def load_attr(path: str) -> Any:
    """Import `package.module:attr` (attr may be dotted)."""
    module_name, _, attr = path.partition(":")
    if not module_name or not attr:
        raise ArenaError(f"not an import path of the form module:attr: {path!r}")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as e:
        raise ArenaError(f"cannot import {module_name!r} for {path!r}: {e}") from e
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ArenaError(f"{module_name!r} has no attribute {attr!r}") from None
    return obj


class Registry:
    """Maps game ids to specs. Entry points are read lazily, once."""

    def __init__(self, group: str | None = ENTRY_POINT_GROUP):
        self._specs: dict[str, GameSpec] = {}
        self._group = group
        self._scanned = group is None

    def register(self, id: str, entry_point: str | Callable[..., Any], **kwargs: Any) -> GameSpec:
        if not ID_RE.match(id):
            raise ArenaError(f"game id {id!r} must look like 'name-vN'")
        spec = GameSpec(id, entry_point, dict(kwargs))
        self._specs[id] = spec
        return spec

    def _scan(self) -> None:
        if self._scanned:
            return
        self._scanned = True
        for ep in entry_points(group=self._group):
            self._specs.setdefault(ep.name, GameSpec(ep.name, ep.value))

    def is_registered(self, id: str) -> bool:
        """Whether `id` is a registered game (looks nothing up by import path)."""
        self._scan()
        return id in self._specs

    def ids(self) -> list[str]:
        self._scan()
        return sorted(self._specs)

    def spec(self, id: str) -> GameSpec:
        """Look up `id`, or build an ad-hoc spec for an import path `mod:Class`."""
        self._scan()
        if id in self._specs:
            return self._specs[id]
        if ":" in id:
            cls = load_attr(id)
            name = getattr(cls, "metadata", {}).get("name") or id
            return GameSpec(name, cls)
        close = difflib.get_close_matches(id, self._specs, n=3, cutoff=0.4)
        hint = f"; did you mean {', '.join(close)}?" if close else f"; known games: {', '.join(self.ids())}"
        raise ArenaError(f"unknown game {id!r}{hint}")

    def make(self, id: str, **overrides: Any):
        return self.spec(id).make(**overrides)


default_registry = Registry()
register = default_registry.register
make = default_registry.make
spec = default_registry.spec
list_games = default_registry.ids
is_registered = default_registry.is_registered
