"""`arena`: the command line. Every command explains itself with --help.

One module per command, each owning its `add_parser`:

    games.py     arena games, arena pretrain
    play.py      arena play
    train.py     arena train, arena resume
    runs.py      arena runs, arena watch
    report.py    arena report
    plugins.py   arena experiment <name>, and contributed commands (arena bench)
    attack.py    arena attack
    (arena.tournament.command: arena tournament; arena.study.command: arena study)

Errors a user can cause (unknown game, bad agent spec, missing run, corrupt
database...) print one line `error: ...` and exit with status 2.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from rich.console import Console

from arena.cli import attack, games, play, plugins, report, runs, train
from arena.cli.common import GLOBAL_HELP
from arena.store import StoreError
from arena.types import ArenaError


def build_parser() -> argparse.ArgumentParser:
    from arena.study.command import add_parser as add_study_parser
    from arena.tournament import add_parser as add_tournament_parser

    p = argparse.ArgumentParser(
        prog="arena",
        description="Alignment methods played as multi-agent games: self-play training, tournaments, live view.",
        epilog="Agent specs: scripted:<bot> | scripted:random | hf:<dir or hub id> | ckpt:<run>/<seat>/round-<k> | "
               "human | human:web. Runs live in ./runs (or --runs-dir / $ARENA_RUNS_DIR).")
    p.add_argument("--runs-dir", help=GLOBAL_HELP["runs_dir"])
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)
    games.add_parser(sub)
    play.add_parser(sub)
    train.add_parser(sub)
    runs.add_parser(sub)
    add_tournament_parser(sub)
    add_study_parser(sub)
    attack.add_parser(sub)
    report.add_parser(sub)
    plugins.add_parser(sub)
    return p


def train_help(parser: argparse.ArgumentParser, argv: list[str]) -> int:
    """`arena train [GAME] --help`: the flags, then (given a game) every recipe key and game setting."""
    from arena.cli.knobs import print_knobs

    try:
        parser.parse_args(["train", "--help"])
    except SystemExit:
        pass
    game = next((a for a in argv[1:] if not a.startswith("-")), None)
    if game:
        print_knobs(game)
    else:
        print("\n(arena train GAME --help also lists that game's recipe keys and settings)")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    if not argv:  # no command: show what there is to do
        parser.print_help()
        return 2
    if argv[0] in plugins.plugin_names():  # hand everything, --help included, to the plugin
        args = argparse.Namespace(func=plugins.cmd_plugin_command, command=argv[0], rest=argv[1:])
    elif len(argv) > 1 and argv[0] == "experiment" and not argv[1].startswith("-"):
        args = argparse.Namespace(func=plugins.cmd_experiment, name=argv[1], rest=argv[2:], runs_dir=None)
    else:
        if argv[0] == "train" and {"-h", "--help"} & set(argv):
            return train_help(parser, argv)
        args = parser.parse_args(argv)
    console = Console(stderr=True)
    try:
        return args.func(args)
    except ArenaError as e:
        return error_line(console, str(e))
    except OSError as e:  # the machine said no: a full disk, a read-only or missing path, a name too long
        where = f" ({e.filename})" if e.filename else ""
        return error_line(console, f"{e.strerror or e}{where}")
    except StoreError as e:  # e.g. "database or disk is full"; a run keeps its completed rounds
        return error_line(console, f"run database: {e}")
    except KeyboardInterrupt:
        console.print("interrupted")
        return 130


def error_line(console: Console, message: str) -> int:
    """The one line a user error prints (never markup, never a traceback); exit status 2."""
    console.print(f"error: {' '.join(message.split())}", highlight=False, soft_wrap=True, markup=False)
    return 2
