"""`arena tournament`: its command-line flags, and the command that runs one tournament."""
from __future__ import annotations

import argparse
from typing import Sequence

from rich.console import Console

from arena.options import parse_pairs
from arena.store import runs_dir as default_runs_dir
from arena.tournament.plan import TournamentConfig
from arena.tournament.play import run_tournament
from arena.tournament.report import TournamentView, crossplay_table
from arena.types import ArenaError


def parse_seat_lists(items: Sequence[str] | None) -> dict[str, list[str]]:
    """`--seat prover=a,b --seat prover=c` -> {"prover": ["a", "b", "c"]}.

    Each flag is one `arena.options.parse_pairs` pair (same errors as `--env`/`--set`), but a
    seat may repeat and its value is a comma-separated list that must name an agent."""
    out: dict[str, list[str]] = {}
    for item in items or []:
        ((seat, specs),) = parse_pairs([item], "--seat").items()
        listed = [s.strip() for s in specs.split(",") if s.strip()]
        if not listed:
            raise ArenaError(f"malformed --seat {item!r}: expected SEAT=SPEC[,SPEC...]")
        out.setdefault(seat, []).extend(listed)
    return out


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    from arena.cli.common import global_options

    s = subparsers.add_parser(
        "tournament", help="rate checkpoints: cross-play matrix, ratings with CIs, heatmap",
        parents=[global_options(device=False)],  # --runs-dir after the command too
        description="Play every pairing of a run's checkpoints (or of the --seat agents) with the same episode "
                    "seeds, then report Bradley-Terry ratings with bootstrap 95% CIs, Elo, and the cross-play "
                    "matrix; files go to <run>/tournaments/<name>/ and the run's report.html is rewritten with them. "
                    "Interrupted? Run the same command again.")
    s.add_argument("run", nargs="?", help="run name or path (entrants default to all its checkpoints)")
    s.add_argument("--game", help="game id (default: the run's game; required without a run)")
    s.add_argument("--seat", action="append", metavar="SEAT=SPEC[,SPEC...]",
                   help="agents for a seat, comma-separated (repeatable); replaces the run's checkpoints for it")
    s.add_argument("--name", help="tournament name (default 'default'); a new name starts a new tournament")
    s.add_argument("-n", "--episodes", type=int, default=32, help="episodes per pairing (default 32)")
    s.add_argument("--seed", type=int, default=0, help="tournament seed (default 0)")
    s.add_argument("--concurrency", type=int, default=16, help="episodes in flight at once (default 16)")
    s.add_argument("--env", action="append", metavar="KEY=VALUE",
                   help="game setting: a constructor argument, or text_field=NAME (the observation field LLM seats "
                        "read, for a game that does not name it: docs/outside-games.md)")
    s.add_argument("--bootstrap", type=int, default=1000, help="bootstrap rounds for the CIs (default 1000)")
    s.add_argument("--device", help="torch device for model agents (default: cuda if available)")
    s.add_argument("--plain", action="store_true", help="plain lines instead of the live view")
    s.set_defaults(func=run_command)
    return s


def run_command(args: argparse.Namespace) -> int:
    # --env values stay strings here: the plan types them by the game's constructor
    cfg = TournamentConfig(run=args.run, game=args.game, seats=parse_seat_lists(args.seat), name=args.name or "",
                           episodes=args.episodes, seed=args.seed, concurrency=args.concurrency,
                           env=parse_pairs(args.env, "--env"),
                           bootstrap=args.bootstrap, device=args.device)
    console = Console()
    view = TournamentView(Console(force_terminal=False) if args.plain else console)
    with view:
        result = run_tournament(cfg, default_runs_dir(getattr(args, "runs_dir", None)), on_event=view)
    # the view printed the final ratings table once, as the tournament ended
    for c in result.crossplay:
        console.print(crossplay_table(c))
    console.print(f"wrote ratings.csv, crossplay.csv, tournament.json"
                  f"{', crossplay.png' if result.crossplay else ''} to {result.out_dir}", highlight=False)
    from arena.report.html import refresh_line

    console.print(refresh_line(result.run_dir), highlight=False, markup=False, soft_wrap=True)
    return 0
