"""`arena experiment overoptimization`: gold vs proxy reward against KL for five ways of training a policy.

Runs the `baseline` (policy gradient on a Bradley-Terry proxy, no KL), `dpo`,
`rpo-sum`, `rpo-mean` and `explicit` (the adversarial-RM game) recipes of
adversarial-rm-v0 with the same seed, data, base model and proxy -- each as an
ordinary self-play run (`runs/<name>-<method>/`, resumable, playable in
tournaments) -- then writes

    <out>/overoptimization.csv   one row per (method, round)
    <out>/overoptimization.png   gold and proxy reward against KL(π‖π_ref), and log π(chosen) by round

and prints a summary table. Round k's figures describe the policy after k
updates (round 0 is π_ref itself).

**η sweep.** `--etas` adds one `rpo-sum` run per η (default: the paper's 0.005,
beside the recipe's own η), so the table shows gold reward against η.

**Seeds.** `--seeds 0,1,2` runs the whole experiment once per seed and ends with
a table of the paper's dynamics (baseline over-optimises, RPO ends above DPO on
gold, log π(chosen) falls less under RPO, ...), each with the paper's figure and
on how many seeds it held. A seed varies the data as well as the training: the
synthetic preference pairs (`data_seed`), the proxy fitted to them, the policy
samples and the learners' batches. `--data-seed N` pins the data (and the
proxy's data) so the seeds vary training randomness only.
"""
from __future__ import annotations

import argparse
import json
import math
import time
from pathlib import Path
from typing import Any, Sequence

from arena.options import parse_pairs
from arena.store import check_run_name
from games.adversarial_rm.prepare import METHODS
from games.adversarial_rm.results import (COLUMNS, PAPER_ETA, dynamics, dynamics_table, plot, rows_of,  # noqa: F401
                                           summarize, summary_table, write_csv)

GAME = "adversarial-rm-v0"
def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="arena experiment overoptimization",
        description="Over-optimisation on adversarial-rm-v0: an unregularised policy-gradient baseline against a "
                    "learned proxy vs DPO, RPO (summed and token-mean NLL) and the explicit adversarial-RM game. "
                    "Writes a CSV and a PNG of gold and proxy reward against KL, and prints a summary table.")
    p.add_argument("--rounds", type=int, default=16, help="rounds per method; round 0 is the reference (default 16)")
    p.add_argument("--episodes", type=int, default=256, help="episodes (policy samples) per round (default 256)")
    p.add_argument("--seed", type=int, default=0,
                   help="run seed, shared by every method (default 0). A seed varies the data as well as the "
                        "training: the synthetic preference pairs, the proxy fitted to them, the policy's samples "
                        "and the learners' batches (see --data-seed)")
    p.add_argument("--seeds", default="",
                   help="comma-separated seeds: the whole experiment once per seed, then a table of the paper's "
                        "dynamics and on how many seeds each held (default: --seed alone)")
    p.add_argument("--data-seed", type=int, default=None,
                   help="pin the synthetic preference data (and so the proxy's training data) to this seed for "
                        "every run seed, so seeds vary training randomness only (default: each seed its own data)")
    p.add_argument("--etas", default=str(PAPER_ETA),
                   help="η sweep: one extra rpo-sum run per comma-separated η (default: the paper's 0.005); "
                        "'' for none. The recipe's own rpo-sum runs at eta_sum (see --set)")
    p.add_argument("--methods", default=",".join(METHODS),
                   help=f"comma-separated subset of {','.join(METHODS)} (default all)")
    p.add_argument("--model", default="", help="base policy = π_ref: a HF dir or hub id (default: the tiny model)")
    p.add_argument("--data", default="", help="preference JSONL with prompt/chosen/rejected (default: synthetic "
                                              "letter task with a hidden gold reward)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", default=[],
                   help="recipe hyper-parameter (see games/adversarial_rm/prepare.py Params), repeatable")
    p.add_argument("--name", default="", help="run-name prefix: runs are <name>-s<seed>-<method> (default overopt)")
    p.add_argument("--out", default="", help="where the CSV and PNG go (default <runs-dir>/<name>)")
    p.add_argument("--runs-dir", default=None, help="runs directory (default $ARENA_RUNS_DIR or ./runs)")
    p.add_argument("--device", default=None, help="torch device (default cuda if available, else cpu)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: the tiny model's matrices are too small to gain from more, "
                        "and on a shared CPU extra threads mostly contend; 0 keeps torch's default)")
    p.add_argument("-q", "--quiet", action="store_true", help="no per-round lines")
    args = p.parse_args(argv)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        p.error(f"unknown method(s) {', '.join(bad) or '(none)'}; choose from {', '.join(METHODS)}")
    if args.rounds < 2:
        p.error("--rounds must be at least 2 (round 0 is the reference policy)")
    args.methods = methods
    try:
        args.seeds = [int(x) for x in args.seeds.split(",") if x.strip()] or [args.seed]
        args.etas = [float(x) for x in args.etas.split(",") if x.strip()]
    except ValueError as e:
        p.error(f"--seeds takes whole numbers and --etas numbers ({e})")
    if any(not math.isfinite(e) or e < 0 for e in args.etas):
        p.error("--etas must be finite and non-negative")
    return args


def variants(args: argparse.Namespace, params: dict[str, str]) -> list[tuple[str, str, dict[str, str]]]:
    """(label, recipe, params) of every run: the methods, then one rpo-sum run per η of the sweep."""
    from games.adversarial_rm.prepare import Params

    out = [(m, m, dict(params)) for m in args.methods]
    own = float(params.get("eta_sum", Params.eta_sum))
    for eta in args.etas:
        if "rpo-sum" in args.methods and eta == own:
            continue  # the recipe's own rpo-sum run is this η already
        out.append((f"rpo-sum@{eta:g}", "rpo-sum", {**params, "eta_sum": f"{eta!r}"}))
    return out


def eta_of(label: str, recipe: str, params: dict[str, str]) -> float | None:
    from games.adversarial_rm.prepare import Params

    if recipe == "rpo-sum":
        return float(params.get("eta_sum", Params.eta_sum))
    if recipe == "rpo-mean":
        return float(params.get("eta_mean", Params.eta_mean))
    return 0.0 if recipe == "dpo" else None


def recipe_params(args: argparse.Namespace) -> dict[str, str]:
    params = parse_pairs(args.set, "--set")
    if args.model:
        params["model"] = args.model
    if args.data:
        params["data"] = args.data
    if args.data_seed is not None:
        params["data_seed"] = str(args.data_seed)
    return params


def run_method(method: str, args: argparse.Namespace, params: dict[str, str], runs_dir: Path,
               log, recipe: str | None = None) -> list[dict[str, Any]]:
    """Play one run (resuming or reusing a finished one with the same config); its round summaries.
    `method` labels it (`rpo-sum@0.005`), `recipe` (default: `method`) builds it."""
    from arena.selfplay import TrainConfig, train_or_reuse

    cfg = TrainConfig(game=GAME, rounds=args.rounds, episodes=args.episodes, concurrency=args.episodes,
                      seed=args.seed, run=f"{args.name}-{method.replace('@', '-eta')}", recipe=recipe or method,
                      params=dict(params), device=args.device)

    def on_event(event: dict[str, Any]) -> None:
        if event.get("type") == "round_end":
            log(method, event["summary"])

    return train_or_reuse(cfg, runs_dir, on_event)


def main(argv: Sequence[str] | None = None) -> int:
    from agents.hf import quiet_transformers

    args = parse_args(argv)
    with quiet_transformers(warnings=False):  # no per-checkpoint progress bars or head-initialisation reports
        return run_all(args)


def run_all(args: argparse.Namespace) -> int:
    """Every method's run, then the CSV, the plot and the summary table."""
    from rich.console import Console

    from arena.store import runs_dir as resolve_runs_dir

    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    term = Console()
    console = term if term.is_terminal else Console(width=200)  # a log file gets the full table
    prefix = args.name
    if prefix:
        check_run_name(prefix)  # before anything is made: a name never leaves the runs dir
    runs_dir = resolve_runs_dir(args.runs_dir)
    out = Path(args.out) if args.out else runs_dir / f"{prefix or 'overopt'}-s{'-'.join(map(str, args.seeds))}"
    out.mkdir(parents=True, exist_ok=True)
    params = recipe_params(args)
    runs = variants(args, params)
    labels = [label for label, _, _ in runs]
    t0 = time.perf_counter()

    def log(method: str, s: dict[str, Any]) -> None:
        if args.quiet:
            return
        m, probe = s.get("metrics", {}), s.get("losses", {}).get("policy", {})
        g = lambda d, k: f"{d[k]:+.2f}" if isinstance(d.get(k), (int, float)) else "  -  "  # noqa: E731
        console.print(f"[dim]{time.perf_counter() - t0:5.0f}s[/] s{args.seed} {method:14s} r{s['round']:<2d} "
                      f"gold {g(m, 'gold')} proxy {g(probe, 'proxy')} KL {g(probe, 'kl')} "
                      f"logπ(chosen) {g(probe, 'chosen_logp')} len {m.get('length', 0):.1f}", highlight=False)

    rows: list[dict[str, Any]] = []
    for seed in args.seeds:
        args.seed = seed
        args.name = f"{prefix or 'overopt'}-s{seed}"  # runs <name>-s<seed>-<method>: a --seeds call reuses them
        for label, recipe, p in runs:
            rows += rows_of(label, run_method(label, args, p, runs_dir, log, recipe), seed, eta_of(label, recipe, p))
    write_csv(rows, out / "overoptimization.csv")
    plot(rows, labels, out / "overoptimization.png")
    summary = summarize(rows, labels)
    checks = dynamics(summary)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    (out / "dynamics.json").write_text(json.dumps(checks, indent=2))
    data = (f"data seed {args.data_seed} for every seed" if args.data_seed is not None
            else "each seed its own data and proxy")
    for seed in args.seeds:
        console.print(summary_table([s for s in summary if s["seed"] == seed],
                                    f"over-optimisation on adversarial-rm-v0, seed {seed} ({data})"))
    if checks:
        console.print(dynamics_table(checks))
    console.print(f"wrote {out / 'overoptimization.csv'} and {out / 'overoptimization.png'} "
                  f"({time.perf_counter() - t0:.0f}s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
