"""`arena experiment <name>` and commands other packages contribute (`arena bench`).

Both are entry points (`arena.experiments`, `arena.commands`) called as
`main(argv) -> int` with the rest of the command line, `--help` included. Their
summary lines in `arena --help` are read from the module docstring without
importing the module (a plugin may import torch; `arena --help` stays fast).
"""
from __future__ import annotations

import argparse
import ast
import importlib.util
import os
from importlib.metadata import entry_points
from pathlib import Path

from rich.console import Console

from arena.cli.common import global_options
from arena.types import ArenaError

EXPERIMENTS_GROUP = "arena.experiments"
COMMANDS_GROUP = "arena.commands"


def add_parser(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("experiment", help="run a named experiment (see `arena experiment`)",
                       parents=[global_options(device=False)],
                       description="Run an experiment a game ships, e.g. `arena experiment overoptimization --help`.")
    s.add_argument("name", nargs="?", help="experiment name (omit to list)")
    s.add_argument("rest", nargs=argparse.REMAINDER, help="the experiment's own arguments")
    s.set_defaults(func=cmd_experiment)
    for ep in sorted(entry_points(group=COMMANDS_GROUP), key=lambda e: e.name):
        summary = module_summary(ep.module) or f"runs {ep.value}"
        s = sub.add_parser(ep.name, help=f"{summary} (--help: its options)", add_help=False,
                           description=f"Runs {ep.value}; its own --help lists the options.")
        s.add_argument("rest", nargs=argparse.REMAINDER)
        s.set_defaults(func=cmd_plugin_command)


def plugin_names(group: str = COMMANDS_GROUP) -> set[str]:
    return {ep.name for ep in entry_points(group=group)}


def _plugin(group: str, name: str):
    found = {ep.name: ep for ep in entry_points(group=group)}
    if name not in found:
        raise ArenaError(f"unknown {group.split('.')[-1][:-1]} {name!r}; known: {', '.join(sorted(found)) or 'none'}")
    return found[name].load()


def cmd_experiment(args: argparse.Namespace) -> int:
    if args.name is None:
        names = sorted(plugin_names(EXPERIMENTS_GROUP))
        Console().print("experiments: " + (", ".join(names) or "none"))
        return 0
    if getattr(args, "runs_dir", None):
        os.environ["ARENA_RUNS_DIR"] = args.runs_dir  # experiments read it
    return int(_plugin(EXPERIMENTS_GROUP, args.name)(args.rest) or 0)


def cmd_plugin_command(args: argparse.Namespace) -> int:
    return int(_plugin(COMMANDS_GROUP, args.command)(args.rest) or 0)


def module_summary(module: str) -> str:
    """First line of a module's docstring, read from its source without importing it."""
    try:
        spec = importlib.util.find_spec(module)
        doc = ast.get_docstring(ast.parse(Path(spec.origin).read_text())) if spec and spec.origin else None
    except (ImportError, OSError, SyntaxError, ValueError):
        return ""
    return (doc or "").strip().split("\n")[0].rstrip(".")
