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
import csv
import json
import math
import time
from pathlib import Path
from typing import Any, Sequence

from arena.options import parse_pairs
from arena.store import check_run_name
from arena.types import ArenaError
from games.adversarial_rm.prepare import METHODS

GAME = "adversarial-rm-v0"
COLUMNS = ("seed", "method", "eta", "round", "gold", "proxy", "proxy_margin", "kl", "chosen_logp", "chosen_logp_delta",
           "gold_win_rate_vs_ref", "gold_win_rate_vs_data", "rm_margin", "implicit_accuracy",
           "implicit_gold_accuracy", "length", "reward_margin", "sft_weight", "wall_s")
PAPER_ETA = 0.005
"""η of RPO's main text (summed NLL weighted η·β; β = 0.01 or 0.05 on 7B models)."""
PAPER = {
    "baseline": "over-optimises (Gao et al. 2022)",
    "dpo": "MT 7.278, AE-LC 21.15",
    "rpo-sum": "MT 7.381, AE-LC 23.28",
    "rpo-mean": "App. F: NLL mean, η=0.2",
}
"""The paper's figures per method (Liu et al. 2024, Mistral-7B "beta" series; ALGORITHMS.md §1)."""
GOLD_DROP = 0.1
"""Gold falling more than this below its peak (gold units) counts as over-optimisation."""


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
    from arena.selfplay import TrainConfig, load_run, new_run

    cfg = TrainConfig(game=GAME, rounds=args.rounds, episodes=args.episodes, concurrency=args.episodes,
                      seed=args.seed, run=f"{args.name}-{method.replace('@', '-eta')}", recipe=recipe or method,
                      params=dict(params), device=args.device)

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


def rows_of(method: str, summaries: Sequence[dict[str, Any]], seed: int = 0,
            eta: float | None = None) -> list[dict[str, Any]]:
    """CSV rows from a run's round summaries (game metrics + the probe's, under losses.policy).

    `sft_weight` (RPO, summed NLL): the SFT term's gradient on log π(chosen) relative to DPO's,
    η / σ(−βΔ) at the round's mean implicit margin βΔ (`reward_margin`): both terms' gradients on
    log π(chosen) carry β, DPO's times σ(−βΔ), which shrinks as the margin grows. At η = 0.005 the
    SFT term reaches DPO's weight only once βΔ ≈ ln(1/η) ≈ 5.3.
    """
    rows = []
    for s in summaries:
        m, probe = s.get("metrics", {}), s.get("losses", {}).get("policy", {})
        margin = probe.get("reward_margin")
        weight = (eta / (1.0 / (1.0 + math.exp(min(60.0, margin)))) if eta and margin is not None
                  and method.startswith("rpo-sum") else None)
        rows.append({"seed": seed, "method": method, "eta": eta, "round": s["round"],
                     "reward_margin": margin, "sft_weight": weight, "gold": m.get("gold"), "proxy": probe.get("proxy"),
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
    """Per method (and seed): peak and final gold, final proxy and KL, drop in log π(chosen) since round 0."""
    out = []
    for seed, method in [(sd, m) for sd in dict.fromkeys(r["seed"] for r in rows) for m in methods]:
        rs = [r for r in rows if r["method"] == method and r["seed"] == seed]
        if not rs:
            continue
        golds = [(r["gold"], r["round"]) for r in rs if r["gold"] is not None]
        peak = max(golds) if golds else (None, None)
        last = rs[-1]
        out.append({"seed": seed, "method": method, "eta": rs[0]["eta"], "rounds": len(rs), "gold_start": rs[0]["gold"], "gold_peak": peak[0],
                    "peak_round": peak[1], "gold_final": last["gold"], "proxy_start": rs[0]["proxy"],
                    "proxy_final": last["proxy"], "kl_final": last["kl"],
                    "chosen_logp_drop": None if last["chosen_logp_delta"] is None else -last["chosen_logp_delta"],
                    "win_rate_final": last["gold_win_rate_vs_ref"], "length_final": last["length"],
                    "sft_weight_final": last["sft_weight"]})
    return out


def _f(x, d=2) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{d}f}"


def summary_table(summary: Sequence[dict[str, Any]], title: str = ""):
    from rich.table import Table

    t = Table(title=title or "over-optimisation on adversarial-rm-v0 (gold = hidden true reward; proxy = BT "
                             "reward model)",
              caption="logπ(c) drop = fall of mean log π(chosen|x) on chosen answers of D since round 0; "
                      "SFT/DPO = RPO's SFT gradient weight relative to DPO's at the last round, η/σ(−βΔ); "
                      "paper = Liu et al. 2024 (Mistral-7B, MT-Bench / AlpacaEval-2 LC, η=0.005, β=0.01): "
                      "another task and scale", header_style="bold")
    for col in ("method", "η", "gold r0", "gold peak (round)", "gold final", "proxy r0", "proxy final", "KL final",
                "logπ(c) drop", "SFT/DPO", "length", "paper"):
        t.add_column(col, justify="left" if col in ("method", "paper") else "right")
    for s in summary:
        peak = "-" if s["gold_peak"] is None else f"{_f(s['gold_peak'])} ({s['peak_round']})"
        eta = s.get("eta")
        paper = PAPER.get(s["method"].split("@")[0], "")
        if s["method"].startswith("rpo-sum") and eta is not None:
            paper = f"η=0.005: {paper}" if eta == PAPER_ETA else f"η={PAPER_ETA:g} in the paper"
        t.add_row(s["method"], "-" if eta is None else f"{eta:g}", _f(s["gold_start"]), peak, _f(s["gold_final"]),
                  _f(s["proxy_start"]), _f(s["proxy_final"]), _f(s["kl_final"]), _f(s["chosen_logp_drop"]),
                  _f(s.get("sft_weight_final"), 3), _f(s["length_final"], 1), paper)
    return t


def dynamics(summary: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The paper's dynamics, each checked on every seed: [{dynamic, paper, held: {seed: bool|None}, values}]."""
    by = {(s["seed"], s["method"]): s for s in summary}
    seeds = list(dict.fromkeys(s["seed"] for s in summary))
    rpo = next((m for m in ("rpo-sum", "rpo-mean") if any(k[1] == m for k in by)), None)
    paper_rpo = next((m for (_, m) in by if m == f"rpo-sum@{PAPER_ETA:g}"), None)
    if paper_rpo is None and any(k[1] == "rpo-sum" and by[k].get("eta") == PAPER_ETA for k in by):
        paper_rpo = "rpo-sum"
    checks = []

    def overopt(s):
        return (s["proxy_final"] > s["proxy_start"] and s["gold_final"] < s["gold_peak"] - GOLD_DROP,
                f"proxy {_f(s['proxy_start'])}->{_f(s['proxy_final'])}, gold peak {_f(s['gold_peak'])} "
                f"final {_f(s['gold_final'])}")

    def gold_above(a, b):
        return (a["gold_final"] > b["gold_final"], f"{_f(a['gold_final'])} vs {_f(b['gold_final'])}")

    def logp_less(a, b):
        return (a["chosen_logp_drop"] < 0.5 * b["chosen_logp_drop"],
                f"{_f(a['chosen_logp_drop'])} vs {_f(b['chosen_logp_drop'])}")

    def add(name, paper, fn, *methods):
        held, values = {}, {}
        for seed in seeds:
            ss = [by.get((seed, m)) for m in methods]
            if any(x is None or x["gold_final"] is None for x in ss):
                held[seed] = None
                continue
            held[seed], values[seed] = fn(*ss)
        if any(v is not None for v in held.values()):
            checks.append({"dynamic": name, "paper": paper, "held": held, "values": values})

    add(f"baseline over-optimises: proxy up, gold > {GOLD_DROP:g} below its peak", "yes (Gao et al. 2022)",
        overopt, "baseline")
    add("DPO over-optimises (same test)", "DPO is what RPO fixes", overopt, "dpo")
    if rpo:
        add(f"{rpo} does not over-optimise", "yes", lambda s: (not overopt(s)[0], overopt(s)[1]), rpo)
        add(f"{rpo} ends above DPO on gold", "RPO > DPO: MT 7.381 vs 7.278", gold_above, rpo, "dpo")
        add(f"log π(chosen) falls < half as far under {rpo} as DPO", "much less (qualitative)", logp_less,
            rpo, "dpo")
    if paper_rpo and paper_rpo != rpo:
        add(f"at the paper's η={PAPER_ETA:g}: no over-optimisation", "yes", lambda s: (not overopt(s)[0],
                                                                                      overopt(s)[1]), paper_rpo)
        add(f"at the paper's η={PAPER_ETA:g}: ends above DPO on gold", "RPO > DPO", gold_above, paper_rpo, "dpo")
        add(f"at the paper's η={PAPER_ETA:g}: log π(chosen) falls < half as far as DPO", "much less", logp_less,
            paper_rpo, "dpo")
    return checks


def dynamics_table(checks: Sequence[dict[str, Any]]):
    from rich.table import Table

    t = Table(title="the paper's dynamics, per seed", header_style="bold",
              caption="held = seeds on which the dynamic appeared / seeds run")
    seeds = list(dict.fromkeys(k for c in checks for k in c["held"]))
    for col in ("dynamic", "paper", "held", *[f"seed {s}" for s in seeds]):
        t.add_column(col, justify="left" if col in ("dynamic", "paper") else "right")
    for c in checks:
        ran = [v for v in c["held"].values() if v is not None]
        cells = [("-" if c["held"][s] is None else ("yes " if c["held"][s] else "no ") + c["values"].get(s, ""))
                 for s in seeds]
        t.add_row(c["dynamic"], c["paper"], f"{sum(ran)}/{len(ran)}", *cells)
    return t


def plot(rows: Sequence[dict[str, Any]], methods: Sequence[str], path: Path) -> None:
    """Gold and proxy against sqrt(KL) (as in Gao et al. 2022), gold and log π(chosen) by round."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    (ax_gold, ax_proxy), (ax_round, ax_logp) = axes
    colors = dict(zip(METHODS, ("tab:red", "tab:blue", "tab:green", "tab:olive", "tab:purple")))
    seed = rows[0]["seed"] if rows else 0  # the plot shows the first seed
    for method in methods:
        rs = [r for r in rows if r["method"] == method and r["kl"] is not None and r["seed"] == seed]
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
