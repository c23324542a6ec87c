"""An experiment's `dynamics.json` (schema 1), checked into typed records before anything renders it.

`arena.experiment` writes it once per experiment (every seed and arm) and, restricted to one
run, as `<run>/experiment.json`. The shape:

    {"schema": 1, "experiment": "checkability", "title": "…", "source": "Kirchner et al. 2024",
     "arms": [{"name": "game", "description": "…"}],
     "seeds": [0, 1],
     "runs": [{"arm": "game", "seed": 0, "run": "ck-game-s0", "path": "<dir: relative to the page's, or absolute>"}],
     "claims": [{"key", "label", "arm", "paper", "direction",
                 "per_seed": [{"seed", "value", "first", "last", "first_censored", "last_censored", "held"}],
                 "held": 4, "measured": 5}],
     "differences": [{"key", "label", "arms": ["game", "initial"],
                      "per_seed": [{"seed", "value", "censored"}],
                      "mean", "lower", "upper", "censored_fraction"}],
     "series": [{"key", "label", "arm", "seed", "x": [...], "y": [...], "censored": [...]}]}

Any field may be missing or null (it is then shown as missing); a field of the wrong type is a
one-line `ArenaError` naming it (`claims[0].per_seed[1].first must be a number, not "abc"`). The
file is data: reading it runs nothing, and its text reaches a page only escaped.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arena.types import ArenaError

SCHEMA = 1


@dataclass(frozen=True)
class ClaimSeed:
    seed: str
    value: str | None
    """The experiment's own words for the seed's value (shown when `first`/`last` are missing)."""
    first: float | None
    last: float | None
    first_censored: bool
    last_censored: bool
    held: bool | None
    """Whether the claim held on this seed; None: not measured."""


@dataclass(frozen=True)
class Claim:
    key: str
    label: str
    arm: str
    paper: str
    """The paper's figure for it."""
    direction: str
    per_seed: tuple[ClaimSeed, ...]
    held: int | None
    measured: int | None


@dataclass(frozen=True)
class SeedValue:
    seed: str
    value: float | None
    censored: bool


@dataclass(frozen=True)
class Difference:
    key: str
    label: str
    arms: tuple[str, ...]
    per_seed: tuple[SeedValue, ...]
    mean: float | None
    lower: float | None
    upper: float | None
    censored_fraction: float | None


@dataclass(frozen=True)
class Series:
    key: str
    label: str
    arm: str
    seed: str
    x: tuple[float, ...]
    y: tuple[float, ...]
    """NaN where the point is missing."""
    censored: tuple[bool, ...]


@dataclass(frozen=True)
class RunRef:
    arm: str
    seed: str
    run: str
    path: str


@dataclass(frozen=True)
class Arm:
    name: str
    description: str


@dataclass(frozen=True)
class Dynamics:
    experiment: str
    title: str
    source: str
    arms: tuple[Arm, ...]
    seeds: tuple[str, ...]
    runs: tuple[RunRef, ...]
    claims: tuple[Claim, ...]
    differences: tuple[Difference, ...]
    series: tuple[Series, ...]


class _Fields:
    """Typed reads of one JSON object's fields, each error naming where it is."""

    def __init__(self, obj: Any, where: str, source: str):
        if not isinstance(obj, dict):
            raise ArenaError(f"{source}: {where or 'the document'} must be a JSON object, not {_show(obj)}")
        self.obj, self.where, self.source = obj, where, source

    def _bad(self, key: str, what: str) -> ArenaError:
        at = f"{self.where}.{key}" if self.where else key
        return ArenaError(f"{self.source}: {at} must be {what}, not {_show(self.obj[key])}")

    def text(self, key: str, default: str = "") -> str:
        v = self.obj.get(key)
        if v is None:
            return default
        if isinstance(v, str):
            return v
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return format(v, "g") if isinstance(v, float) else str(v)
        raise self._bad(key, "a string")

    def number(self, key: str) -> float | None:
        v = self.obj.get(key)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise self._bad(key, "a number")
        return float(v) if math.isfinite(v) else None

    def integer(self, key: str) -> int | None:
        v = self.obj.get(key)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, int):
            raise self._bad(key, "a whole number")
        return v

    def flag(self, key: str) -> bool | None:
        v = self.obj.get(key)
        if v is None or isinstance(v, bool):
            return v
        raise self._bad(key, "true or false")

    def items(self, key: str) -> list[tuple[Any, str]]:
        """The list under `key` ([] when missing), each item with where it is."""
        v = self.obj.get(key)
        if v is None:
            return []
        if not isinstance(v, list):
            raise self._bad(key, "a list")
        at = f"{self.where}.{key}" if self.where else key
        return [(x, f"{at}[{i}]") for i, x in enumerate(v)]

    def sub(self, item: Any, where: str) -> "_Fields":
        return _Fields(item, where, self.source)


def _show(v: Any) -> str:
    return json.dumps(v, default=str)[:60]


def _seed(f: _Fields) -> str:
    return f.text("seed", "?")


def _numbers(f: _Fields, key: str, nullable: bool) -> tuple[float, ...]:
    out = []
    for v, where in f.items(key):
        if v is None and nullable:
            out.append(math.nan)
        elif isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ArenaError(f"{f.source}: {where} must be a number, not {_show(v)}")
        else:
            out.append(float(v))
    return tuple(out)


def _series(f: _Fields) -> Series:
    x, y = _numbers(f, "x", nullable=False), _numbers(f, "y", nullable=True)
    censored = []
    for v, where in f.items("censored"):
        if not isinstance(v, bool):
            raise ArenaError(f"{f.source}: {where} must be true or false, not {_show(v)}")
        censored.append(v)
    if len(x) != len(y) or (censored and len(censored) != len(y)):
        raise ArenaError(f"{f.source}: {f.where} has {len(x)} x, {len(y)} y and {len(censored)} censored values "
                         "(x and y must pair up, and censored, if given, too)")
    return Series(f.text("key"), f.text("label") or f.text("key"), f.text("arm"), _seed(f), x, y,
                  tuple(censored) or (False,) * len(y))


def check_dynamics(doc: Any, source: str = "dynamics.json") -> Dynamics:
    """The checked records of a `dynamics.json` document (`source` names it in errors)."""
    top = _Fields(doc, "", source)
    schema = top.integer("schema")
    if schema is not None and schema > SCHEMA:
        raise ArenaError(f"{source}: schema {schema} is newer than this arena reads ({SCHEMA}); upgrade arena")
    arms = tuple(Arm(a.text("name"), a.text("description"))
                 for a in (top.sub(x, w) for x, w in top.items("arms")))
    seeds = []
    for v, where in top.items("seeds"):
        if isinstance(v, bool) or not isinstance(v, (int, str)):
            raise ArenaError(f"{source}: {where} must be a whole number or a string, not {_show(v)}")
        seeds.append(str(v))
    runs = tuple(RunRef(r.text("arm"), _seed(r), r.text("run"), r.text("path"))
                 for r in (top.sub(x, w) for x, w in top.items("runs")))
    claims = []
    for c in (top.sub(x, w) for x, w in top.items("claims")):
        per_seed = tuple(ClaimSeed(_seed(s), s.text("value") or None, s.number("first"), s.number("last"),
                                   bool(s.flag("first_censored")), bool(s.flag("last_censored")), s.flag("held"))
                         for s in (c.sub(x, w) for x, w in c.items("per_seed")))
        claims.append(Claim(c.text("key"), c.text("label") or c.text("key"), c.text("arm"), c.text("paper"),
                            c.text("direction"), per_seed, c.integer("held"), c.integer("measured")))
    differences = []
    for d in (top.sub(x, w) for x, w in top.items("differences")):
        arms_of = []
        for v, where in d.items("arms"):
            if not isinstance(v, str):
                raise ArenaError(f"{source}: {where} must be a string, not {_show(v)}")
            arms_of.append(v)
        per_seed = tuple(SeedValue(_seed(s), s.number("value"), bool(s.flag("censored")))
                         for s in (d.sub(x, w) for x, w in d.items("per_seed")))
        differences.append(Difference(d.text("key"), d.text("label") or d.text("key"), tuple(arms_of), per_seed,
                                      d.number("mean"), d.number("lower"), d.number("upper"),
                                      d.number("censored_fraction")))
    series = tuple(_series(top.sub(x, w)) for x, w in top.items("series"))
    return Dynamics(top.text("experiment"), top.text("title"), top.text("source"), arms, tuple(seeds), runs,
                    tuple(claims), tuple(differences), series)


def read_dynamics(path: Path) -> Dynamics:
    """A `dynamics.json` or `experiment.json` file, checked; a one-line `ArenaError` if it is not one."""
    path = Path(path)
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ArenaError(f"cannot read {path}: {err}") from None
    return check_dynamics(doc, str(path))
