"""`KEY=VALUE` settings from the command line and agent specs: one parser, one set of rules.

Every place a user types a setting goes through here: `--set` (recipe
parameters), `--env` (game constructor arguments), `--seat` (agent specs per
seat), and the options of an agent spec (`hf:<dir>?temperature=0.7`,
`scripted:spot-check?threshold=2`). So `yes`, `true`, `on` and `1` mean the same
thing everywhere, a number is a number everywhere, and a bad value or an unknown
key is one line that names the known keys.

Typed targets are dataclasses (a recipe's params, an agent's options): values
are converted to each field's type (bool, int, float, str, tuples of those, and
`X | None`), non-finite floats are refused. Untyped targets (a game's
constructor) are converted by the parameter's default value where it has one.
"""
from __future__ import annotations

import dataclasses
import inspect
import math
import types
import typing
from typing import Any, Iterable, Sequence
from urllib.parse import parse_qsl

from arena.types import ArenaError

TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


def parse_pairs(items: Iterable[str] | None, what: str) -> dict[str, str]:
    """`["a=1", "b=x"]` (repeated `--set`/`--env`/`--seat` flags) -> `{"a": "1", "b": "x"}`."""
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise ArenaError(f"malformed {what} {item!r}: expected KEY=VALUE")
        out[key.strip()] = value.strip()
    return out


def parse_query(query: str, what: str = "option") -> dict[str, list[str]]:
    """Agent-spec options `a=1&b=x&b=y` -> `{"a": ["1"], "b": ["x", "y"]}` (a key may repeat)."""
    out: dict[str, list[str]] = {}
    try:
        pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=bool(query))
    except ValueError:
        raise ArenaError(f"malformed {what}s {query!r}: expected key=value&key=value") from None
    for key, value in pairs:
        out.setdefault(key, []).append(value)
    return out


def spec_options(cls: type, options: str, what: str) -> Any:
    """An agent spec's `?a=1&b=x` options as an instance of the dataclass `cls` (a bot's `Params`)."""
    return build(cls, parse_query(options, f"{what} option"), f"{what} option")


def coerce(raw: str | Sequence[str], typ: Any, name: str = "value") -> Any:
    """Convert a string (or a repeated option's strings) to `typ`; ValueError says why not."""
    values = [raw] if isinstance(raw, str) else list(raw)
    origin, args = typing.get_origin(typ), typing.get_args(typ)
    if origin in (typing.Union, types.UnionType) and type(None) in args:
        if values[-1].lower() in ("", "none", "null"):
            return None
        typ = next(a for a in args if a is not type(None))
        origin, args = typing.get_origin(typ), typing.get_args(typ)
    if origin in (tuple, list):
        inner = args[0] if args else str
        items = [x.strip() for v in values for x in v.split(",") if x.strip()]
        return (tuple if origin is tuple else list)(coerce(x, inner, name) for x in items)
    text = values[-1].strip()
    if typ is bool:
        if text.lower() in TRUE_WORDS:
            return True
        if text.lower() in FALSE_WORDS:
            return False
        raise ValueError(f"{name} takes true/false, not {text!r}")
    if typ is int:
        try:
            return int(text)
        except ValueError:
            raise ValueError(f"{name} takes a whole number, not {text!r}") from None
    if typ is float:
        try:
            x = float(text)
        except ValueError:
            raise ValueError(f"{name} takes a number, not {text!r}") from None
        if not math.isfinite(x):
            raise ValueError(f"{name} takes a finite number, not {text!r}")
        return x
    return text


def guess(raw: str) -> Any:
    """An untyped value: true/false words, then int, then float, else the string."""
    text = raw.strip()
    if text.lower() in ("true", "false", "yes", "no", "on", "off"):
        return text.lower() in TRUE_WORDS
    for typ in (int, float):
        try:
            return coerce(text, typ)
        except ValueError:
            continue
    return text


def field_types(cls: type) -> dict[str, Any]:
    """A dataclass's field names and resolved types, in declaration order."""
    hints = typing.get_type_hints(cls)
    return {f.name: hints[f.name] for f in dataclasses.fields(cls) if f.init}


def build(cls: type, overrides: dict[str, Any], what: str, base: Any = None) -> Any:
    """A dataclass instance from string overrides (on top of `base` or the defaults).

    Unknown keys and bad values are one-line `ArenaError`s naming what is known."""
    types = field_types(cls)
    unknown = sorted(set(overrides) - set(types))
    if unknown:
        raise ArenaError(f"unknown {what}(s) {', '.join(unknown)}; known: {', '.join(types) or 'none'}")
    values = {}
    for name, raw in overrides.items():
        if not isinstance(raw, (str, list, tuple)):
            values[name] = raw
            continue
        try:
            values[name] = coerce(raw, types[name], name)
        except ValueError as e:
            raise ArenaError(f"bad {what} {e}") from None
    try:
        return dataclasses.replace(base, **values) if base is not None else cls(**values)
    except (TypeError, ValueError) as e:
        raise ArenaError(f"bad {what}s {overrides}: {e}") from None


def call_kwargs(fn: Any, raw: dict[str, str]) -> dict[str, Any]:
    """String settings for a callable (a game's constructor): typed by each parameter's
    annotation or default, guessed where it has neither."""
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        params = {}
    out: dict[str, Any] = {}
    for key, value in raw.items():
        p = params.get(key)
        like = None if p is None or p.default is inspect.Parameter.empty else p.default
        typ = type(like) if isinstance(like, (bool, int, float)) else None
        if typ is None:
            out[key] = guess(value)
            continue
        try:
            out[key] = float(coerce(value, float, key)) if typ is float else coerce(value, typ, key)
        except ValueError as e:
            raise ArenaError(f"bad --env {e}") from None
    return out


def env_settings(game_cls: type | None, items: Iterable[str] | None) -> dict[str, Any]:
    """`--env KEY=VALUE` flags for a game, typed by its constructor's defaults (guessed
    where the game is not known yet)."""
    return call_kwargs(game_cls.__init__ if game_cls else None, parse_pairs(items, "--env"))


def field_docs(cls: type) -> dict[str, str]:
    """The docstrings written under a dataclass's fields (`x: int = 1` then `\"\"\"What x is.\"\"\"`),
    read from the source with `ast`, whitespace folded; {} where the source is not available."""
    import ast
    import textwrap

    out: dict[str, str] = {}
    for klass in reversed(getattr(cls, "__mro__", (cls,))):
        try:
            tree = ast.parse(textwrap.dedent(inspect.getsource(klass)))
        except (OSError, TypeError, SyntaxError):
            continue
        body = tree.body[0].body if tree.body and isinstance(tree.body[0], ast.ClassDef) else []
        for node, nxt in zip(body, body[1:]):
            if (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)
                    and isinstance(nxt, ast.Expr) and isinstance(getattr(nxt, "value", None), ast.Constant)
                    and isinstance(nxt.value.value, str)):
                out[node.target.id] = " ".join(nxt.value.value.split())
    return out
