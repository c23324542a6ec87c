"""`arena report`: a run's self-contained report.html (figures, rounds, tournaments, config)."""
from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from arena.cli.common import global_options, runs_dir_of


def add_parser(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("report", help="write a run's report.html: figures, rounds table, tournaments, config",
                       parents=[global_options(device=False)],
                       description="Write one self-contained HTML page for a run: each headline metric over "
                                   "rounds, the rounds table, every tournament's ratings and cross-play tables "
                                   "with their heatmap, and the resolved config (figures embedded as PNG). "
                                   "Reads the run directory as data: no game code is imported.")
    s.add_argument("run", help="run name or path")
    s.add_argument("--out", metavar="PATH", help="where to write it (default <run>/report.html)")
    s.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from arena.report.html import write_report
    from arena.store import find_run

    run_dir = find_run(args.run, runs_dir_of(args))
    path = write_report(run_dir, Path(args.out) if args.out else None)
    Console().print(f"wrote {path}", highlight=False, markup=False, soft_wrap=True)
    return 0
