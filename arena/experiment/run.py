"""`arena experiment <name>`: one command line for every experiment, and the seeds x arms loop.

For each seed, for each arm: the arm's run (`<name>-<arm>-s<seed>`) is trained, or reused when a
run of that name has the same settings (resumed to more rounds when it has fewer:
`arena.selfplay.train_or_reuse`), then the game measures it (`Experiment.measure`: tournaments,
attacks, ...; they reuse what is done). Then every run is read back from its files, each claim is
judged per seed, paired differences between arms get 95% bootstrap intervals over seeds, one
table is printed and `<runs-dir>/<name>/dynamics.json` written. `--summarize` only reads back.

Seeds vary the data as well as training: the recipe's data setting (`Experiment.data_param`) is
`data_offset + seed` unless `--data-seed` pins it -- the one data-seed rule of every experiment.
"""
from __future__ import annotations

import argparse
import os
import time
from pathlib import Path
from typing import Sequence

from rich.console import Console

from arena.experiment.spec import Arm, Experiment, MeasureContext
from arena.store import check_run_name
from arena.types import ArenaError

WIDE = 200
"""Console width when the output is not a terminal (a log file) and $COLUMNS is unset."""


def parser(exp: Experiment) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"arena experiment {exp.name}", description=f"{exp.title} ({exp.source}).",
                                epilog="Arms: " + "; ".join(f"{a.name}: {a.description}" for a in exp.arms)
                                + (f". {exp.notes}" if exp.notes else ""))
    p.add_argument("--seeds", default="0", help="comma-separated run seeds, e.g. 0,1,2,3,4 (default 0); each "
                                                "seed varies the data as well as training")
    p.add_argument("--arms", default=",".join(exp.default_arms or [a.name for a in exp.arms]),
                   help=f"comma-separated arms to run (default %(default)s; all: "
                        f"{','.join(a.name for a in exp.arms)})")
    own = ", ".join(f"{a.name} {a.rounds}" for a in exp.arms if a.rounds)
    p.add_argument("--rounds", type=int, default=None,
                   help=f"training rounds per run (default {exp.rounds}"
                        + (f"; arms with their own: {own}" if own else "") + "; given, it is every arm's)")
    p.add_argument("--episodes", type=int, default=exp.episodes,
                   help="episodes played per round (default %(default)s)")
    p.add_argument("--data-seed", type=int, default=None,
                   help="pin the data to this seed for every run seed (default: each seed its own data)")
    p.add_argument("--name", default=exp.name,
                   help="prefix of the runs (<name>-<arm>-s<seed>) and the results folder <runs-dir>/<name> "
                        "(default %(default)s)")
    p.add_argument("--runs-dir", default=None, help="where runs live (default $ARENA_RUNS_DIR or ./runs)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="recipe setting for every arm (an arm's own settings win), repeatable")
    p.add_argument("--seat", action="append", default=[], metavar="SEAT=SPEC",
                   help="agent of a seat for every arm (e.g. hf:<model dir or hub id>), repeatable")
    p.add_argument("--device", default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--threads", type=int, default=0,
                   help="torch CPU threads (default 0: torch's own; on a shared CPU 1 avoids spinning threads)")
    p.add_argument("--summarize", action="store_true",
                   help="train nothing: read the finished runs of these seeds and arms back and print the results")
    p.add_argument("--plain", action="store_true", help="plain lines instead of the live view")
    if exp.add_flags is not None:
        exp.add_flags(p)
    return p


def parse(exp: Experiment, argv: Sequence[str] | None) -> argparse.Namespace:
    p = parser(exp)
    args = p.parse_args(argv)
    try:
        args.seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
    except ValueError:
        p.error(f"--seeds takes comma-separated integers, not {args.seeds!r}")
    args.arms = [a.strip() for a in args.arms.split(",") if a.strip()]
    unknown = [a for a in args.arms if a not in {x.name for x in exp.arms}]
    if unknown or not args.arms:
        p.error(f"unknown arm(s) {', '.join(unknown) or '(none)'}; choose from {', '.join(a.name for a in exp.arms)}")
    if not args.seeds:
        p.error("--seeds needs at least one seed")
    try:  # before anything is made: the runs and the results folder never leave the runs dir
        check_run_name(args.name)
    except ArenaError as e:
        p.error(f"--name: {e}")
    if (args.rounds is not None and args.rounds < 1) or args.episodes < 1:
        p.error("--rounds and --episodes must be at least 1")
    args.rounds_given = args.rounds is not None
    if args.rounds is None:
        args.rounds = exp.rounds
    return args


def arm_rounds(arm: Arm, args: argparse.Namespace) -> int:
    """An arm's rounds: `--rounds` when given, else the arm's own (`Arm.rounds`) or the experiment's."""
    return arm.rounds if arm.rounds and not args.rounds_given else args.rounds


def run_name(prefix: str, arm: str, seed: int) -> str:
    return f"{prefix}-{arm}-s{seed}"


def arm_params(exp: Experiment, arm: Arm, args: argparse.Namespace, seed: int) -> dict[str, str]:
    """The recipe settings of one run: the user's, then the experiment's from its flags, then the
    arm's, then the data seed."""
    from arena.options import parse_pairs

    params = parse_pairs(args.set, "--set")
    if exp.data_param and exp.data_param in params:
        raise ArenaError(f"set the data seed with --data-seed, not --set {exp.data_param}=...")
    derived = exp.settings(args) if exp.settings is not None else {}
    fixed = sorted(set(params) & set(derived))
    if fixed:
        raise ArenaError(f"--set {', '.join(fixed)}: set by the experiment from its flags (see --help)")
    params.update(derived)
    params.update(arm.params)
    if exp.data_param:
        params[exp.data_param] = str(args.data_seed if args.data_seed is not None else exp.data_offset + seed)
    return params


def train_arm(exp: Experiment, arm: Arm, seed: int, args: argparse.Namespace, runs_dir: Path,
              console: Console, phases: dict[str, float]) -> Path:
    """Train (or reuse) one arm's run of one seed, then let the game measure it."""
    from arena.dashboard import LiveView
    from arena.options import parse_pairs
    from arena.runs.config import TrainConfig
    from arena.selfplay import train_or_reuse

    name = run_name(args.name, arm.name, seed)
    cfg = TrainConfig(game=exp.game, recipe=arm.recipe, rounds=arm_rounds(arm, args), episodes=args.episodes,
                      concurrency=args.episodes, seed=seed, run=name, seats=parse_pairs(args.seat, "--seat"),
                      params=arm_params(exp, arm, args, seed), device=args.device)
    console.rule(f"{exp.name}: arm {arm.name}, seed {seed} -> {runs_dir / name}")
    view = LiveView(Console(force_terminal=False) if args.plain else None)
    with view:
        train_or_reuse(cfg, runs_dir, view)
    if exp.measure is not None:
        from arena.store import append_event

        ctx = MeasureContext(runs_dir / name, runs_dir, arm, seed, args,
                             lambda line: console.print(line, highlight=False, markup=False))
        exp.measure(ctx)
        if ctx.phases:
            append_event(ctx.run_dir, {"type": "measure", "experiment": exp.name, "phases": ctx.phases})
            for k, v in ctx.phases.items():
                phases[f"measure: {k}"] = phases.get(f"measure: {k}", 0.0) + v
    return runs_dir / name


def main(exp: Experiment, argv: Sequence[str] | None = None) -> int:
    """The whole command: parse, train and measure (unless `--summarize`), judge, print, write.
    A user's error is one line and exit status 2."""
    args = parse(exp, argv)
    console = Console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(width=WIDE)  # a log file gets the whole table, not one folded to 80 columns
    try:
        return _main(exp, args, console)
    except ArenaError as e:
        Console(stderr=True).print(f"error: {e}", highlight=False, markup=False)
        return 2


def _main(exp: Experiment, args: argparse.Namespace, console: Console) -> int:
    from arena.experiment import claims, results, table
    from arena.store import runs_dir as default_runs_dir

    if args.threads > 0:
        import torch

        torch.set_num_threads(args.threads)
    runs_dir = default_runs_dir(args.runs_dir)
    t0 = time.perf_counter()
    arms = [exp.arm(a) for a in args.arms]
    views, phases = [], {}
    for seed in args.seeds:
        for arm in arms:
            run_dir = runs_dir / run_name(args.name, arm.name, seed)
            if args.summarize:
                if not (run_dir / "arena.db").is_file():
                    console.print(f"no run {run_dir.name} yet (arm {arm.name}, seed {seed}): left out", highlight=False)
                    continue
            else:
                run_dir = train_arm(exp, arm, seed, args, runs_dir, console, phases)
            views.append(results.read_run(exp, arm.name, seed, run_dir))
    if not views:
        raise ArenaError(f"no finished runs named {args.name}-<arm>-s<seed> in {runs_dir}")
    seeds = results.by_seed(views)
    verdicts = claims.verdicts(exp.claims, seeds)
    differences = [claims.paired(d, seeds) for d in exp.differences
                   if all(a in args.arms for a in d.arms)]
    out_dir = runs_dir / args.name
    table.print_results(console, exp, seeds, verdicts, differences)
    if exp.report is not None:
        for line in exp.report(seeds, out_dir, console):
            console.print(line, highlight=False, markup=False)
    if not args.summarize:
        print_phases(console, views, phases)
    doc = results.dynamics(exp, seeds, verdicts, differences, out_dir)
    path = results.write_dynamics(doc, out_dir)
    write_pages(doc, views, out_dir, console)
    console.print(f"\n{len(views)} run(s) in {runs_dir}; results: {path}, {out_dir / 'summary.html'}"
                  + ("" if args.summarize else f" ({time.perf_counter() - t0:.0f} s)"), highlight=False)
    return 0


def print_phases(console: Console, views: list, measured: dict[str, float]) -> None:
    """Where the time went: every run's training (as its rounds recorded it) and this command's
    measurements (also in each run's events.jsonl, type `measure`)."""
    from arena.dashboard import phase_table
    from arena.selfplay import phase_totals
    from arena.store import read_round_summaries

    phases = dict(measured)
    for v in views:
        for k, t in phase_totals(read_round_summaries(v.run_dir)).items():
            phases[f"train: {k}"] = phases.get(f"train: {k}", 0.0) + t
    if phases:
        console.print(phase_table(phases, "where the time went (training as the runs recorded it; measurements now)"))


def write_pages(doc: dict, views: list, out_dir: Path, console: Console) -> None:
    """Each run's `experiment.json` (its slice of the results) and refreshed `report.html`, then the
    experiment's `summary.html` linking them."""
    from arena.experiment.results import run_slice
    from arena.report.experiment import write_summary_page
    from arena.report.html import refresh_line
    from arena.store import write_json_atomic

    dirs = {v.run_dir.name: v.run_dir for v in views}
    for run in doc["runs"]:
        write_json_atomic(dirs[run["run"]] / "experiment.json", run_slice(doc, run))
        console.print(refresh_line(dirs[run["run"]]), highlight=False, markup=False)
    write_summary_page(out_dir, doc)
