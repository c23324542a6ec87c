"""`arena experiment abstention`: SFT against RL with negative feedback on abstain-v0.

Runs the `sft`, `sft-idk`, `rl` and `rl-judge` recipes with the same seed, fact
base and base model -- each an ordinary run (`runs/<name>-<method>/`, resumable,
playable in tournaments) -- plus `rl` at every other penalty of `--ks`, then

    <out>/abstention.csv         one row per (method, k, round): held-out figures (every held-out
                                 question, 2 sampled answers each), answer rates, thresholds, KL
    <out>/abstention_curve.csv   answer rate (and accuracy) against the model's confidence, last round
    <out>/abstention.png         the figures by round per method; answer rate against confidence,
                                 with the optimal threshold k/(1+k) drawn
    <out>/summary.json           what the tables show

and prints the tables, then each dynamic the sources claim (`games.abstain.dynamics`) beside the
claim, and on how many seeds it held (`--seeds 0,1,2`: the whole experiment per seed, runs
`<name>-s<seed>-<method>`, then one table over the seeds, also in `<runs-dir>/<name>-dynamics.json`).
Round r is the student after r updates (round 0: the base).
The data seed is the run seed unless `--data-seed` pins it (another data seed
pretrains its own base and judge once: 6-13 minutes on this 2-core CPU).

Measured on this project's shared 2-core CPU, one torch thread: seed 0 (shipped
base), a fresh runs dir, 4 min 56 s with the machine otherwise quiet; 8 min 51 s
for seed 1 while another pretraining shared the CPU.
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

GAME = "abstain-v0"
METHODS = ("sft", "sft-idk", "rl", "rl-judge")
FIGURES = ("known_accuracy", "unknown_accuracy", "known_abstention", "unknown_abstention", "hallucination",
           "known_hallucination", "unknown_hallucination", "unknown_wrong", "payoff", "accuracy", "abstention")
CURVE = ("known_answer_rate", "unknown_answer_rate", "known_confidence", "unknown_confidence", "threshold_logistic",
         "threshold", "threshold_lo", "threshold_hi", "optimal_threshold", "optimal_lo", "optimal_hi", "nominal_threshold")
COLUMNS = ("method", "k", "round", *FIGURES, *CURVE, "kl", "loss", "judge_agreement", "wall_s")
COLORS = {"base": "black", "sft": "tab:red", "sft-idk": "tab:orange", "rl": "tab:blue", "rl-judge": "tab:green"}


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="arena experiment abstention", description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=6, help="updates per method (default 6); round 0 is the base")
    p.add_argument("--episodes", type=int, default=32,
                   help="episodes played per round (held-out questions, for the live view; the figures come from "
                        "every held-out question, default 32)")
    p.add_argument("--seed", type=int, default=0, help="run seed, shared by every method (default 0); it seeds "
                                                        "the fact base as well as training unless --data-seed is given")
    p.add_argument("--seeds", default="",
                   help="comma-separated run seeds: the whole experiment once per seed (runs <name>-s<seed>-*), "
                        "then each dynamic per seed beside the claim and on how many seeds it held "
                        "(overrides --seed; finished runs with the same settings are reused)")
    p.add_argument("--data-seed", type=int, default=None, help="fact base (default: the run seed)")
    p.add_argument("--methods", default=",".join(METHODS), help=f"subset of {','.join(METHODS)}")
    p.add_argument("--ks", default="0.25,1,4", help="penalties k for the rl sweep (default 0.25,1,4); empty: none")
    p.add_argument("--set", action="append", metavar="KEY=VALUE", default=[],
                   help="recipe parameter (games/abstain/recipe.py Params), repeatable")
    p.add_argument("--name", default="", help="run-name prefix (default abstain-s<seed>; with --seeds, "
                                               "<name>-s<seed>, name default abstain)")
    p.add_argument("--out", default="", help="where the CSV and PNG go (default <runs-dir>/<name>)")
    p.add_argument("--runs-dir", default=None, help="runs directory (default $ARENA_RUNS_DIR or ./runs)")
    p.add_argument("--device", default=None, help="torch device (default cuda if available, else cpu)")
    p.add_argument("--threads", type=int, default=1,
                   help="torch CPU threads (default 1: the tiny models gain nothing from more, and on a shared CPU "
                        "extra threads mostly spin; 0 keeps torch's default)")
    p.add_argument("-q", "--quiet", action="store_true", help="no per-round lines")
    args = p.parse_args(argv)
    args.methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    bad = [m for m in args.methods if m not in METHODS]
    if bad or not args.methods:
        p.error(f"unknown method(s) {', '.join(bad) or '(none)'}; choose from {', '.join(METHODS)}")
    try:
        args.ks = [float(x) for x in args.ks.split(",") if x.strip()]
    except ValueError:
        p.error(f"--ks takes numbers, not {args.ks!r}")
    if any(k < 0 or not math.isfinite(k) for k in args.ks):
        p.error("--ks must be finite numbers >= 0")
    if args.rounds < 1:
        p.error("--rounds must be at least 1")
    try:
        args.seeds = [int(x) for x in args.seeds.split(",") if x.strip()]
    except ValueError:
        p.error(f"--seeds takes comma-separated integers, not {args.seeds!r}")
    if args.seeds and args.out:
        p.error("--out names one seed's output folder; with --seeds each seed writes to <runs-dir>/<name>-s<seed>")
    return args


def plan(args: argparse.Namespace) -> list[tuple[str, float, dict[str, str]]]:
    """(method, k, recipe params) per run: the methods at the default k, then rl at the other ks."""
    base = parse_pairs(args.set, "--set")
    if "k" in base or "max_updates" in base:
        raise ArenaError("set k with --ks and the number of updates with --rounds")
    base.update(data_seed=str(args.seed if args.data_seed is None else args.data_seed),
                max_updates=str(args.rounds), threads=str(args.threads))
    runs = [(m, 1.0, dict(base, k="1.0")) for m in args.methods]
    runs += [("rl", k, dict(base, k=str(k))) for k in args.ks if k != 1.0 or "rl" not in args.methods]
    return runs


def run_name(args: argparse.Namespace, method: str, k: float) -> str:
    return f"{args.name}-{method}" + ("" if k == 1.0 else f"-k{k:g}")


def run_one(args: argparse.Namespace, method: str, k: float, params: dict[str, str], runs_dir: Path, log):
    """Play one run (resuming it, or reusing a finished one with the same settings); its round summaries."""
    from arena.selfplay import TrainConfig, train_or_reuse

    cfg = TrainConfig(game=GAME, rounds=args.rounds + 1, episodes=args.episodes, concurrency=args.episodes,
                      seed=args.seed, run=run_name(args, method, k), recipe=method, params=params,
                      device=args.device)
    on_event = lambda e: log(method, k, e["summary"]) if e.get("type") == "round_end" else None  # noqa: E731
    return train_or_reuse(cfg, runs_dir, on_event), runs_dir / cfg.run


def rows_of(method: str, k: float, summaries: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    rows = []
    for s in summaries:
        learner = s.get("losses", {}).get("student", {})
        row: dict[str, Any] = {"method": method, "k": k, "round": s["round"], "wall_s": s.get("wall_s")}
        row.update({f: learner.get(f"heldout_{f}") for f in FIGURES})
        row.update({c: learner.get(c) for c in CURVE})
        row.update(kl=learner.get("kl"), loss=learner.get("loss"), judge_agreement=learner.get("judge_agreement"))
        rows.append(row)
    return rows


def fill_logistic(rows: list[dict[str, Any]], run_dir: Path) -> None:
    """The logistic 50% point of each round's answer rate on confidence, from `<run>/eval/round-<r>.json`."""
    from games.abstain.metrics import logistic_threshold

    for r in rows:
        path = run_dir / "eval" / f"round-{r['round']}.json"
        if r.get("threshold_logistic") is None and path.is_file():
            qs = json.loads(path.read_text())["questions"]
            r["threshold_logistic"] = logistic_threshold([q["confidence"] for q in qs], [q["p_answer"] for q in qs])


def curve_rows(method: str, k: float, run_dir: Path, round: int, bins: int = 10) -> list[dict[str, Any]]:
    from games.abstain.metrics import confidence_bins

    path = run_dir / "eval" / f"round-{round}.json"
    if not path.is_file():
        return []
    qs = json.loads(path.read_text())["questions"]
    out = []
    for kind in ("all", "known", "unknown"):
        sel = [q for q in qs if kind == "all" or q["kind"] == kind]
        for b in confidence_bins([q["confidence"] for q in sel], [q["p_answer"] for q in sel],
                                 [q["correct"] for q in sel], bins):
            out.append({"method": method, "k": k, "round": round, "kind": kind, **b})
    return out


def write_csv(rows: Sequence[dict[str, Any]], path: Path, columns: Sequence[str]) -> None:
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({c: "" if r.get(c) is None else round(r[c], 5) if isinstance(r[c], float) else r[c]
                        for c in columns})


def _f(x: Any, d: int = 2) -> str:
    return "-" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{d}f}"


def tables(rows: Sequence[dict[str, Any]], sweep: Sequence[dict[str, Any]], info: dict[str, Any]):
    from rich.table import Table

    last = max(r["round"] for r in rows)
    t = Table(title=f"answer or abstain: held-out questions after {last} updates (k = 1; base = round 0)",
              caption="hallucination = wrong answers / answers given; payoff = mean of +1 right, 0 abstain, -k wrong",
              header_style="bold")
    for col in ("method", "known accuracy", "unknown abstention", "hallucination", "payoff", "unknown wrong",
                "known abstention"):
        t.add_column(col, justify="left" if col == "method" else "right")
    base = next((r for r in rows if r["round"] == 0 and r["k"] == 1.0), None)
    for r in ([dict(base, method="base")] if base else []) + [r for r in rows if r["round"] == last and r["k"] == 1.0]:
        t.add_row(r["method"], _f(r["known_accuracy"]), _f(r["unknown_abstention"]), _f(r["hallucination"]),
                  _f(r["payoff"]), _f(r["unknown_wrong"]), _f(r["known_abstention"]))
    s = Table(title="rl's answer/abstain threshold on its own confidence against k/(1+k)",
              caption="learned: where a logistic fit of its answer rate on its confidence crosses 1/2; step rule: "
                      "the rule 'answer iff confidence > t' closest to how often it answers; optimal on data: the "
                      "best such rule for payoff given which of its answers are right",
              header_style="bold")
    for col in ("k", "k/(1+k)", "learned t", "step rule [interval]", "optimal on data [interval]",
                "unknown abstention", "payoff"):
        s.add_column(col, justify="right")
    for r in sweep:
        s.add_row(f"{r['k']:g}", _f(r["nominal_threshold"]), _f(r.get("threshold_logistic")),
                  f"{_f(r['threshold'])} [{_f(r['threshold_lo'])}, {_f(r['threshold_hi'])})",
                  f"{_f(r['optimal_threshold'])} [{_f(r['optimal_lo'])}, {_f(r['optimal_hi'])})",
                  _f(r["unknown_abstention"]), _f(r["payoff"]))
    kn = info.get("knowledge", {})
    jd = info.get("judge", {}).get("heldout", {})
    lines = [f"base (greedy): knows {_f(kn.get('known_accuracy'))} of known facts and {_f(kn.get('unknown_accuracy'))} "
             f"of unknown ones; answers {_f(kn.get('known_answer_rate'))} / {_f(kn.get('unknown_answer_rate'))}",
             f"judge: held-out pair accuracy {_f(jd.get('accuracy'), 3)} (near misses {_f(jd.get('accuracy_near_miss'), 3)})"
             + (f"; agreement with gold on rl-judge's training answers {_f(info['judge_agreement'], 3)}"
                if info.get("judge_agreement") is not None else "")]
    return t, s, lines


def plot(rows: Sequence[dict[str, Any]], curves: Sequence[dict[str, Any]], ks: Sequence[float], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(16, 9))
    panels = [("known_accuracy", "known accuracy"), ("unknown_abstention", "unknown abstention"),
              ("hallucination", "hallucination (wrong / answered)"), ("payoff", "payoff (k = 1)")]
    main = [r for r in rows if r["k"] == 1.0]
    for ax, (key, title) in zip([axes[0, 0], axes[0, 1], axes[0, 2], axes[1, 0]], panels):
        for method in dict.fromkeys(r["method"] for r in main):
            rs = [r for r in main if r["method"] == method and r[key] is not None]
            ax.plot([r["round"] for r in rs], [r[key] for r in rs], "o-", ms=3, color=COLORS.get(method), label=method)
        ax.set(title=f"{title} by round (held-out)", xlabel="round (updates so far)")
    last = max((c["round"] for c in curves), default=0)
    for ax, sel, title in ((axes[1, 1], [c for c in curves if c["k"] == 1.0], "k = 1, by method"),
                           (axes[1, 2], [c for c in curves if c["method"] == "rl"], "rl, by k")):
        for key in sorted(dict.fromkeys((c["method"], c["k"]) for c in sel), key=lambda m_k: (m_k[1], m_k[0])):
            cs = [c for c in sel if (c["method"], c["k"]) == key and c["kind"] == "all"]
            label = key[0] if title.startswith("k = 1") else f"k = {key[1]:g}"
            color = COLORS.get(key[0]) if title.startswith("k = 1") else None
            line = ax.plot([c["confidence"] for c in cs], [c["answer_rate"] for c in cs], "o-", ms=3, color=color,
                           label=label)[0]
            if not title.startswith("k = 1"):
                ax.axvline(key[1] / (1 + key[1]), ls="--", color=line.get_color(), lw=1)
        if title.startswith("k = 1"):
            ax.axvline(0.5, ls="--", color="grey", lw=1, label="k/(1+k)")
        ax.set(title=f"answer rate vs own confidence after {last} updates ({title})", xlabel="confidence of its answer",
               ylabel="P(answer)", xlim=(0, 1), ylim=(-0.02, 1.02))
    for ax in axes.flat:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def main(argv: Sequence[str] | None = None) -> int:
    from rich.console import Console

    from arena.store import runs_dir as resolve_runs_dir
    from games.abstain import dynamics

    args = parse_args(argv)
    import torch
    from transformers.utils import logging as hf_logging

    if args.threads:
        torch.set_num_threads(args.threads)

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    term = Console()
    console = term if term.is_terminal else Console(width=120)
    runs_dir = resolve_runs_dir(args.runs_dir)
    if args.seeds:
        prefix, summaries = args.name or "abstain", []
        for seed in args.seeds:
            args.seed, args.name = seed, f"{prefix}-s{seed}"
            console.rule(f"seed {seed}")
            summaries.append(run_seed(args, runs_dir, console))
        path = runs_dir / f"{prefix}-dynamics.json"
    else:
        summaries = [run_seed(args, runs_dir, console)]
        args.seeds = [args.seed]
        path = (Path(args.out) if args.out else runs_dir / args.name) / "dynamics.json"
    rows = dynamics.verdicts(summaries)
    console.print(dynamics.over_seeds_table(args.seeds, rows))
    path.write_text(json.dumps({"seeds": args.seeds, "dynamics": rows}, indent=1))
    console.print(f"wrote {path}", highlight=False)
    return 0


def run_seed(args: argparse.Namespace, runs_dir: Path, console) -> dict[str, Any]:
    """The whole experiment for `args.seed`: every run, the CSVs, the plot, the tables; its summary."""
    from games.abstain.pretraining import assets_for

    args.name = args.name or f"abstain-s{args.seed}"
    out = Path(args.out) if args.out else runs_dir / args.name
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    runs = plan(args)
    data_seed = int(runs[0][2]["data_seed"])
    info = json.loads((assets_for(data_seed, runs_dir) / "pretrain.json").read_text())

    def log(method: str, k: float, s: dict[str, Any]) -> None:
        if args.quiet:
            return
        m = s.get("losses", {}).get("student", {})
        console.print(f"[dim]{time.perf_counter() - t0:5.0f}s[/] {method:8s} k={k:<4g} r{s['round']} known acc "
                      f"{_f(m.get('heldout_known_accuracy'))} unknown abstain {_f(m.get('heldout_unknown_abstention'))} "
                      f"halluc {_f(m.get('heldout_hallucination'))} payoff {_f(m.get('heldout_payoff'))} "
                      f"t {_f(m.get('threshold'))}", highlight=False)

    rows, curves = [], []
    for method, k, params in runs:
        summaries, run_dir = run_one(args, method, k, params, runs_dir, log)
        new = rows_of(method, k, summaries)
        fill_logistic(new, run_dir)
        rows += new
        curves += curve_rows(method, k, run_dir, args.rounds)
    agreement = [r["judge_agreement"] for r in rows if r["method"] == "rl-judge" and r["judge_agreement"] is not None]
    info["judge_agreement"] = sum(agreement) / len(agreement) if agreement else None
    write_csv(rows, out / "abstention.csv", COLUMNS)
    write_csv(curves, out / "abstention_curve.csv",
              ("method", "k", "round", "kind", "lo", "hi", "n", "confidence", "answer_rate", "accuracy"))
    plot(rows, curves, args.ks, out / "abstention.png")
    sweep = sorted((r for r in rows if r["method"] == "rl" and r["round"] == args.rounds), key=lambda r: r["k"])
    final = [r for r in rows if r["round"] == args.rounds]
    wall = time.perf_counter() - t0
    (out / "summary.json").write_text(json.dumps({"final": final, "base": [r for r in rows if r["round"] == 0][:1],
                                                  "sweep": sweep, "pretrain": info, "wall_s": wall}, indent=2))
    table, sweep_table, lines = tables(rows, sweep, info)
    console.print(table)
    if sweep:
        console.print(sweep_table)
    for line in lines:
        console.print(line, highlight=False)
    console.print(f"wrote {out / 'abstention.csv'}, {out / 'abstention_curve.csv'} and {out / 'abstention.png'} "
                  f"({wall:.0f}s)", highlight=False)
    return json.loads((out / "summary.json").read_text())


if __name__ == "__main__":
    raise SystemExit(main())
