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
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import time
from pathlib import Path
from typing import Any, Sequence

from arena.options import parse_pairs
from arena.types import ArenaError
from games.adversarial_rm.prepare import METHODS

GAME = "adversarial-rm-v0"
COLUMNS = ("method", "round", "gold", "proxy", "proxy_margin", "kl", "chosen_logp", "chosen_logp_delta",
           "gold_win_rate_vs_ref", "gold_win_rate_vs_data", "rm_margin", "implicit_accuracy",
           "implicit_gold_accuracy", "length", "wall_s")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="arena experiment overoptimization",
        description="Over-optimisation on adversarial-rm-v0: an unregularised policy-gradient baseline against a "
                    "learned proxy vs DPO, RPO (summed and token-mean NLL) and the explicit adversarial-RM game. "
                    "Writes a CSV and a PNG of gold and proxy reward against KL, and prints a summary table.")
    p.add_argument("--rounds", type=int, default=16, help="rounds per method; round 0 is the reference (default 16)")
    p.add_argument("--episodes", type=int, default=256, help="episodes (policy samples) per round (default 256)")
    p.add_argument("--seed", type=int, default=0, help="run seed, shared by every method (default 0)")
    p.add_argument("--methods", default=",".join(METHODS),
                   help=f"comma-separated subset of {','.join(METHODS)} (default all)")
    p.add_argument("--model", default="", help="base policy = π_ref: a HF dir or hub id (default: the tiny model)")
    p.add_argument("--data", default="", help="preference JSONL with prompt/chosen/rejected (default: synthetic "
                                              "letter task with a hidden gold reward)")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", default=[],
                   help="recipe hyper-parameter (see games/adversarial_rm/prepare.py Params), repeatable")
    p.add_argument("--name", default="", help="run-name prefix (default overopt-s<seed>)")
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
    return args


def recipe_params(args: argparse.Namespace) -> dict[str, str]:
    params = parse_pairs(args.set, "--set")
    if args.model:
        params["model"] = args.model
    if args.data:
        params["data"] = args.data
    return params


def run_method(method: str, args: argparse.Namespace, params: dict[str, str], runs_dir: Path,
               log) -> list[dict[str, Any]]:
    """Play one method's run (resuming or reusing a finished one with the same config); its round summaries."""
    from arena.selfplay import TrainConfig, load_run, new_run

    cfg = TrainConfig(game=GAME, rounds=args.rounds, episodes=args.episodes, concurrency=args.episodes,
                      seed=args.seed, run=f"{args.name}-{method}", recipe=method, params=dict(params),
                      device=args.device)

    def on_event(event: dict[str, Any]) -> None:
        if event.get("type") == "round_end":
            log(method, event["summary"])

    run_dir = runs_dir / cfg.run
    if (run_dir / "arena.db").exists():
        saved = json.loads((run_dir / "config.json").read_text())
        mine = {k: v for k, v in vars(cfg).items() if k != "rounds"}
        if any(saved.get(k) != v for k, v in mine.items()):
            raise ArenaError(f"run {cfg.run!r} exists with other settings; pass --name to start fresh")
        trainer = load_run(run_dir, runs_dir, on_event)
        trainer.cfg.rounds = args.rounds
        start = trainer.restore()
        if start >= args.rounds:
            return trainer.store.round_summaries()[:args.rounds]
        return trainer.run(start)[:args.rounds]
    return new_run(cfg, runs_dir, on_event).run()


def rows_of(method: str, summaries: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """CSV rows from a run's round summaries (game metrics + the probe's, under losses.policy)."""
    rows = []
    for s in summaries:
        m, probe = s.get("metrics", {}), s.get("losses", {}).get("policy", {})
        rows.append({"method": method, "round": s["round"], "gold": m.get("gold"), "proxy": probe.get("proxy"),
                     "proxy_margin": probe.get("proxy_margin"), "kl": probe.get("kl"),
                     "chosen_logp": probe.get("chosen_logp"),
                     "gold_win_rate_vs_ref": probe.get("gold_win_rate_vs_ref"),
                     "gold_win_rate_vs_data": m.get("gold_win_rate_vs_data"), "rm_margin": m.get("rm_margin"),
                     "implicit_accuracy": probe.get("implicit_accuracy"),
                     "implicit_gold_accuracy": probe.get("implicit_gold_accuracy"), "length": m.get("length"),
                     "wall_s": s.get("wall_s")})
    first = next((r["chosen_logp"] for r in rows if r["chosen_logp"] is not None), None)
    for r in rows:
        r["chosen_logp_delta"] = None if first is None or r["chosen_logp"] is None else r["chosen_logp"] - first
    return rows


def write_csv(rows: Sequence[dict[str, Any]], path: Path) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=COLUMNS)
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else round(r[k], 5) if isinstance(r[k], float) else r[k])
                        for k in COLUMNS})


def summarize(rows: Sequence[dict[str, Any]], methods: Sequence[str]) -> list[dict[str, Any]]:
    """Per method: peak and final gold, final proxy and KL, drop in log π(chosen) since round 0."""
    out = []
    for method in methods:
        rs = [r for r in rows if r["method"] == method]
        if not rs:
            continue
        golds = [(r["gold"], r["round"]) for r in rs if r["gold"] is not None]
        peak = max(golds) if golds else (None, None)
        last = rs[-1]
        out.append({"method": method, "rounds": len(rs), "gold_start": rs[0]["gold"], "gold_peak": peak[0],
                    "peak_round": peak[1], "gold_final": last["gold"], "proxy_start": rs[0]["proxy"],
                    "proxy_final": last["proxy"], "kl_final": last["kl"],
                    "chosen_logp_drop": None if last["chosen_logp_delta"] is None else -last["chosen_logp_delta"],
                    "win_rate_final": last["gold_win_rate_vs_ref"], "length_final": last["length"]})
    return out


def summary_table(summary: Sequence[dict[str, Any]]):
    from rich.table import Table

    t = Table(title="over-optimisation on adversarial-rm-v0 (gold = hidden true reward; proxy = BT reward model)",
              caption="logπ(c) drop = fall of mean log π(chosen|x) on chosen answers of D since round 0; "
                      "gold win vs ref = P(gold now > gold of a round-0 answer)", header_style="bold")
    for col in ("method", "gold r0", "gold peak (round)", "gold final", "proxy r0", "proxy final", "KL final",
                "logπ(c) drop", "gold win vs ref", "length"):
        t.add_column(col, justify="left" if col == "method" else "right")
    f = lambda x, d=2: "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{d}f}"  # noqa: E731
    for s in summary:
        peak = "-" if s["gold_peak"] is None else f"{f(s['gold_peak'])} ({s['peak_round']})"
        t.add_row(s["method"], f(s["gold_start"]), peak, f(s["gold_final"]), f(s["proxy_start"]),
                  f(s["proxy_final"]), f(s["kl_final"]), f(s["chosen_logp_drop"]), f(s["win_rate_final"]),
                  f(s["length_final"], 1))
    return t


def plot(rows: Sequence[dict[str, Any]], methods: Sequence[str], path: Path) -> None:
    """Gold and proxy against sqrt(KL) (as in Gao et al. 2022), gold and log π(chosen) by round."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    (ax_gold, ax_proxy), (ax_round, ax_logp) = axes
    colors = dict(zip(METHODS, ("tab:red", "tab:blue", "tab:green", "tab:olive", "tab:purple")))
    for method in methods:
        rs = [r for r in rows if r["method"] == method and r["kl"] is not None]
        if not rs:
            continue
        x = [math.sqrt(max(r["kl"], 0.0)) for r in rs]
        style = dict(color=colors.get(method), label=method, ms=3, lw=1.2)
        if all(r["gold"] is not None for r in rs):
            ax_gold.plot(x, [r["gold"] for r in rs], "o-", **style)
            ax_round.plot([r["round"] for r in rs], [r["gold"] for r in rs], "o-", **style)
        if all(r["proxy"] is not None for r in rs):
            ax_proxy.plot(x, [r["proxy"] for r in rs], "o-", **style)
        if all(r["chosen_logp_delta"] is not None for r in rs):
            ax_logp.plot([r["round"] for r in rs], [r["chosen_logp_delta"] for r in rs], "o-", **style)
    sqrt_kl = "sqrt KL(π‖π_ref)  [sqrt nats]"
    ax_gold.set(title="gold reward (hidden) vs KL", xlabel=sqrt_kl, ylabel="mean gold reward")
    ax_proxy.set(title="proxy reward (Bradley-Terry RM fitted to D) vs KL", xlabel=sqrt_kl, ylabel="mean proxy score")
    ax_round.set(title="gold reward by round", xlabel="round (updates so far)", ylabel="mean gold reward")
    ax_logp.set(title="log π(chosen | x) relative to round 0", xlabel="round (updates so far)",
                ylabel="Δ mean log π(chosen|x)  [nats]")
    for ax in axes.flat:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


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
    console = term if term.is_terminal else Console(width=120)  # a log file gets the full table
    args.name = args.name or f"overopt-s{args.seed}"
    runs_dir = resolve_runs_dir(args.runs_dir)
    out = Path(args.out) if args.out else runs_dir / args.name
    out.mkdir(parents=True, exist_ok=True)
    params = recipe_params(args)
    t0 = time.perf_counter()

    def log(method: str, s: dict[str, Any]) -> None:
        if args.quiet:
            return
        m, probe = s.get("metrics", {}), s.get("losses", {}).get("policy", {})
        g = lambda d, k: f"{d[k]:+.2f}" if isinstance(d.get(k), (int, float)) else "  -  "  # noqa: E731
        console.print(f"[dim]{time.perf_counter() - t0:5.0f}s[/] {method:8s} r{s['round']:<2d} gold {g(m, 'gold')} "
                      f"proxy {g(probe, 'proxy')} KL {g(probe, 'kl')} logπ(chosen) {g(probe, 'chosen_logp')} "
                      f"len {m.get('length', 0):.1f}", highlight=False)

    rows: list[dict[str, Any]] = []
    for method in args.methods:
        rows += rows_of(method, run_method(method, args, params, runs_dir, log))
    write_csv(rows, out / "overoptimization.csv")
    plot(rows, args.methods, out / "overoptimization.png")
    summary = summarize(rows, args.methods)
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    console.print(summary_table(summary))
    console.print(f"wrote {out / 'overoptimization.csv'} and {out / 'overoptimization.png'} "
                  f"({time.perf_counter() - t0:.0f}s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
