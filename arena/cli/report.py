"""`arena report`: rebuild a run's self-contained report.html by hand (every command that adds to a run
rewrites it already): figures, rounds, tournaments, attacks, its experiment, config."""
from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from arena.cli.common import global_options, runs_dir_of


def add_parser(sub: argparse._SubParsersAction) -> None:
    s = sub.add_parser("report", help="rebuild a run's report.html: figures, rounds, tournaments, attacks, config",
                       parents=[global_options(device=False)],
                       description="Write one self-contained HTML page for a run: its experiment's claims beside "
                                   "the paper's figures (when an experiment ran it), each headline metric over "
                                   "rounds, the rounds table, every tournament's ratings and cross-play tables with "
                                   "their heatmap, every attack's steps-to-exploit (censored values marked), and the "
                                   "resolved config (figures embedded as PNG). train, resume, tournament, attack and "
                                   "the experiments rewrite it themselves; this rebuilds it by hand. Reads the run "
                                   "directory as data: no game code is imported.")
    s.add_argument("run", help="run name or path")
    s.add_argument("--out", metavar="PATH", help="where to write it (default <run>/report.html, rewritten under "
                                                 "the run's lock; another path needs no lock, e.g. while it trains)")
    s.set_defaults(func=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from arena.report.html import refresh_report, write_report
    from arena.store import find_run

    run_dir = find_run(args.run, runs_dir_of(args))
    path = write_report(run_dir, Path(args.out)) if args.out else refresh_report(run_dir)
    Console().print(f"wrote {path}", highlight=False, markup=False, soft_wrap=True)
    return 0
