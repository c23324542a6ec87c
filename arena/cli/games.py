"""`arena games` and `arena pretrain`: what games there are, and their tiny default models."""
from __future__ import annotations

import argparse
import inspect
from pathlib import Path

from rich.console import Console
from rich.table import Table

from arena.cli.common import global_options
from arena.gameinfo import GameInfo
from arena.types import ArenaError


def add_parser(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("games", help="list registered games", parents=[global_options(device=False)],
                       description="List registered games with their seats and recipes.")
    s.set_defaults(func=cmd_games)

    s = sub.add_parser("pretrain", help="train the tiny default model on a game's synthetic task",
                       parents=[global_options(device=False)],
                       description="Train the tiny default model by SFT on the game's synthetic task; "
                                   "writes a standard Hugging Face directory.")
    s.add_argument("game", help="game id")
    s.add_argument("--out", required=True, help="output directory")
    s.add_argument("--steps", type=int, help="training steps (default: the game's own, see its pretrain function)")
    s.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    s.set_defaults(func=cmd_pretrain)


def cmd_games(args: argparse.Namespace) -> int:
    from arena import registry

    table = Table(header_style="bold")
    table.add_column("game", no_wrap=True)
    for col in ("seats", "recipes", "description"):
        table.add_column(col)
    for gid in registry.list_games():
        spec = registry.spec(gid)
        env = spec.make()
        recipes = ", ".join(GameInfo.of(spec.load()).recipes) or "-"
        table.add_row(gid, ", ".join(env.possible_agents), recipes, spec.description)
    Console().print(table)
    return 0


def cmd_pretrain(args: argparse.Namespace) -> int:
    from arena import registry
    from arena.registry import load_attr

    gspec = registry.spec(args.game)
    entry = GameInfo.of(gspec.load()).pretrain
    if not entry:
        raise ArenaError(f"game {gspec.id!r} has no pretraining task")
    if args.steps is not None and args.steps < 1:
        raise ArenaError("--steps must be at least 1")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ArenaError(f"--out {out} is a file, not a directory")
    fn = load_attr(entry)
    steps = args.steps if args.steps is not None else inspect.signature(fn).parameters["steps"].default
    out = fn(out, steps=steps, seed=args.seed)
    Console().print(f"tiny model written to {out}")
    return 0
