"""`arena runs` and `arena watch`: what runs there are, and one run's live view from another terminal."""
from __future__ import annotations

import argparse

from rich.console import Console
from rich.table import Table
from rich.text import Text

from arena.cli.common import global_options, runs_dir_of
from arena.types import ArenaError


def add_parser(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("runs", help="list the runs: game, recipe, rounds done, last round's figures",
                       parents=[global_options(device=False)],
                       description="List the runs in the runs directory with their game, recipe, completed "
                                   "rounds, the last round's headline figures and their tournaments.")
    s.set_defaults(func=cmd_runs)

    s = sub.add_parser("watch", help="show a run's live view from another terminal",
                       parents=[global_options(device=False)],
                       description="Follow a run's events.jsonl and show the same live view until it finishes.")
    s.add_argument("run", help="run name or path")
    s.add_argument("--once", action="store_true", help="show what is there now and exit")
    s.add_argument("--timeout", type=float, help="stop following after this many seconds")
    s.set_defaults(func=cmd_watch)


def cmd_runs(args: argparse.Namespace) -> int:
    """Two lines per run: name, game, recipe, rounds, tournaments; the last round's headline figures."""
    from arena.dashboard import fmt_value
    from arena.store import read_round_summaries, read_run_config

    base, console = runs_dir_of(args), Console()
    # a hidden `.setup-<name>` directory is a run being set up (or a killed setup): not a run yet
    dirs = sorted(d for d in base.glob("*") if not d.name.startswith(".") and (d / "arena.db").is_file()) \
        if base.is_dir() else []
    if not dirs:
        console.print(f"no runs in {base}/ yet (arena train <game> writes one)")
        return 0
    grid = Table.grid(padding=(0, 2))
    grid.add_column(no_wrap=True, style="bold")
    grid.add_column()
    for d in dirs:
        try:
            config = read_run_config(d)
            summaries = read_round_summaries(d)  # read only: listing runs writes to none of them
        except ArenaError as e:
            grid.add_row(Text(d.name), Text(f"unreadable: {e}"))
            continue
        tournaments = ", ".join(sorted(t.name for t in (d / "tournaments").glob("*") if t.is_dir()))
        game = config.get("game_id") or config.get("game", "?")
        grid.add_row(Text(d.name), Text(f"{game} · recipe {config.get('recipe', '?')}"
                                        f" · {len(summaries)}/{config.get('rounds', '?')} rounds"
                                        + (f" · tournaments: {tournaments}" if tournaments else "")))
        last = summaries[-1] if summaries else {}
        figures = "  ".join(f"{h}={fmt_value(last['metrics'][h])}" for h in last.get("headline", [])
                            if h in last.get("metrics", {}))
        if figures:
            grid.add_row("", Text(f"round {last['round']}: {figures}", style="dim"))
    console.print(grid, highlight=False)
    return 0


def cmd_watch(args: argparse.Namespace) -> int:
    from arena.dashboard import watch
    from arena.store import find_run

    run_dir = find_run(args.run, runs_dir_of(args))
    try:
        snap = watch(run_dir, follow=not args.once, timeout_s=args.timeout)
    except KeyboardInterrupt:
        return 0
    if not snap.rows and args.once:
        Console().print("no finished rounds yet")
    return 0
