"""What every command shares: the global options, the runs directory, dataclass-driven flags.

Defaults live in the config dataclasses (`TrainConfig`, `PlayConfig`, ...); a
flag made by `add_config_flag` takes its default and help text from the field
and its docstring, so `--help` and the code cannot disagree.
"""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path
from typing import Any

from arena.options import field_docs

GLOBAL_HELP = {
    "runs_dir": "where runs live (default: $ARENA_RUNS_DIR or ./runs)",
    "device": "torch device for model agents and learners (default: cuda if available, else cpu)",
}


def global_options(*, device: bool = True) -> argparse.ArgumentParser:
    """A parent parser with `--runs-dir` (and `--device`), so every command takes them after its
    name too (`arena train ... --runs-dir X`); SUPPRESS keeps a value given before the command."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("--runs-dir", default=argparse.SUPPRESS, help=GLOBAL_HELP["runs_dir"])
    if device:
        p.add_argument("--device", default=argparse.SUPPRESS, help=GLOBAL_HELP["device"])
    return p


def runs_dir_of(args: argparse.Namespace) -> Path:
    from arena.store import runs_dir

    return runs_dir(getattr(args, "runs_dir", None))


def add_config_flag(parser: argparse.ArgumentParser, cls: type, name: str, *flags: str, **kw: Any) -> None:
    """`--<name>` for dataclass field `name` of `cls`: its default, its docstring as help."""
    field = {f.name: f for f in dataclasses.fields(cls)}[name]
    default = field.default if field.default is not dataclasses.MISSING else None
    doc = field_docs(cls).get(name, "")
    shown = f" (default {default!r})" if isinstance(default, str) else f" (default {default})"
    number = isinstance(default, (int, float)) and not isinstance(default, bool)
    kw.setdefault("type", type(default) if number else None)
    if kw["type"] is None:
        kw.pop("type")
    parser.add_argument(*(flags or (f"--{name.replace('_', '-')}",)), dest=name, default=default,
                        help=(kw.pop("help", None) or doc.rstrip(".")) + shown, **kw)
