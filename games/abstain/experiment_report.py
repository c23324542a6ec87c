"""The abstention experiment's own files and tables, after the claims table (its `report` hook):

    <out>/abstention.csv         one row per (seed, method, k, round): held-out figures (every held-out
                                 question, 2 sampled answers each), answer rates, thresholds, KL
    <out>/abstention_curve.csv   answer rate (and accuracy) against the model's confidence, last round
    <out>/abstention.png         the first seed: the figures by round per method; answer rate against
                                 confidence, with the optimal threshold k/(1+k) drawn

and per seed the held-out table at the last round (k = 1, base = round 0), rl's threshold against
k/(1+k) over the k sweep, and what the base knows and how well the judge judges.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from arena.experiment import SeedView
from arena.experiment.claims import fmt
from arena.experiment.results import write_csv

FIGURES = ("known_accuracy", "unknown_accuracy", "known_abstention", "unknown_abstention", "hallucination",
           "known_hallucination", "unknown_hallucination", "unknown_wrong", "payoff", "accuracy", "abstention")
CURVE = ("known_answer_rate", "unknown_answer_rate", "known_confidence", "unknown_confidence", "threshold_logistic",
         "threshold", "threshold_lo", "threshold_hi", "optimal_threshold", "optimal_lo", "optimal_hi",
         "nominal_threshold")
COLUMNS = ("seed", "method", "k", "round", *FIGURES, *CURVE, "kl", "loss", "judge_agreement", "wall_s")
CURVE_COLUMNS = ("seed", "method", "k", "round", "kind", "lo", "hi", "n", "confidence", "answer_rate", "accuracy")
COLORS = {"base": "black", "sft": "tab:red", "sft-idk": "tab:orange", "rl": "tab:blue", "rl-judge": "tab:green"}


def rows_of(seed: int, method: str, k: float, summaries: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """CSV rows of one run: its student's held-out figures (`heldout_*`) and curve metrics per round."""
    rows = []
    for s in summaries:
        learner = s.get("losses", {}).get("student", {})
        row: dict[str, Any] = {"seed": seed, "method": method, "k": k, "round": s["round"], "wall_s": s.get("wall_s")}
        row.update({f: learner.get(f"heldout_{f}") for f in FIGURES})
        row.update({c: learner.get(c) for c in CURVE})
        row.update(kl=learner.get("kl"), loss=learner.get("loss"), judge_agreement=learner.get("judge_agreement"))
        rows.append(row)
    return rows


def curve_rows(seed: int, method: str, k: float, run_dir: Path, round: int, bins: int = 10) -> list[dict[str, Any]]:
    """Answer rate and accuracy by confidence bin, from `<run>/eval/round-<round>.json`."""
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
            out.append({"seed": seed, "method": method, "k": k, "round": round, "kind": kind, **b})
    return out


def _run_rows(seeds: Sequence[SeedView]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every run's CSV rows and last-round curve rows: method = its recipe, k = its resolved setting."""
    from arena.store import read_round_summaries, read_run_config

    rows: list[dict[str, Any]] = []
    curves: list[dict[str, Any]] = []
    for s in seeds:
        for run in s.runs.values():
            config = read_run_config(run.run_dir)
            method, k = config.get("recipe", run.arm), float((config.get("recipe_params") or {}).get("k", 1.0))
            rows += rows_of(s.seed, method, k, read_round_summaries(run.run_dir))
            if run.rounds:
                curves += curve_rows(s.seed, method, k, run.run_dir, run.rounds[-1])
    return rows, curves


def _f(x: Any, digits: int = 2) -> str:
    return fmt(x, False, digits)


def tables(rows: Sequence[dict[str, Any]], info: dict[str, Any], seed: int):
    """One seed's held-out table (k = 1), rl's threshold table over k, and the base/judge lines."""
    from rich.table import Table

    last = max(r["round"] for r in rows)
    t = Table(title=f"seed {seed}, answer or abstain: held-out questions after {last} updates (k = 1; base = round 0)",
              caption="hallucination = wrong answers / answers given; payoff = mean of +1 right, 0 abstain, -k wrong",
              header_style="bold")
    for col in ("method", "known accuracy", "unknown abstention", "hallucination", "payoff", "unknown wrong",
                "known abstention"):
        t.add_column(col, justify="left" if col == "method" else "right")
    base = next((r for r in rows if r["round"] == 0 and r["k"] == 1.0), None)
    for r in ([dict(base, method="base")] if base else []) + [r for r in rows if r["round"] == last and r["k"] == 1.0]:
        t.add_row(r["method"], _f(r["known_accuracy"]), _f(r["unknown_abstention"]), _f(r["hallucination"]),
                  _f(r["payoff"]), _f(r["unknown_wrong"]), _f(r["known_abstention"]))
    sweep = sorted((r for r in rows if r["method"] == "rl" and r["round"] == last), key=lambda r: r["k"])
    s = Table(title=f"seed {seed}: rl's answer/abstain threshold on its own confidence against k/(1+k)",
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
    agreement = [r["judge_agreement"] for r in rows if r["method"] == "rl-judge" and r["judge_agreement"] is not None]
    lines = [f"base (greedy): knows {_f(kn.get('known_accuracy'))} of known facts and {_f(kn.get('unknown_accuracy'))} "
             f"of unknown ones; answers {_f(kn.get('known_answer_rate'))} / {_f(kn.get('unknown_answer_rate'))}",
             f"judge: held-out pair accuracy {_f(jd.get('accuracy'), 3)} "
             f"(near misses {_f(jd.get('accuracy_near_miss'), 3)})"
             + (f"; agreement with gold on rl-judge's training answers {_f(sum(agreement) / len(agreement), 3)}"
                if agreement else "")]
    return t, (s if sweep else None), lines


def plot(rows: Sequence[dict[str, Any]], curves: Sequence[dict[str, Any]], path: Path) -> None:
    from arena.report.figures import new_figure, save_panels

    fig = new_figure(16, 9)
    axes = fig.subplots(2, 3)
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
    save_panels(fig, path, dpi=90)


def report(seeds: Sequence[SeedView], out_dir: Path, console) -> list[str]:
    """The CSVs, the plot (first seed) and each seed's tables; the lines to print after them."""
    from games.abstain.pretraining import assets_dir

    rows, curves = _run_rows(seeds)
    if not rows:
        return []
    out_dir.mkdir(parents=True, exist_ok=True)
    write_csv(rows, out_dir / "abstention.csv", COLUMNS)
    write_csv(curves, out_dir / "abstention_curve.csv", CURVE_COLUMNS)
    first = seeds[0].seed
    plot([r for r in rows if r["seed"] == first], [c for c in curves if c["seed"] == first], out_dir / "abstention.png")
    for s in seeds:
        run = next(iter(s.runs.values()))
        info_path = (assets_dir(int(run.data_seed), run.run_dir.parent) / "pretrain.json"
                     if isinstance(run.data_seed, int) else None)
        info = json.loads(info_path.read_text()) if info_path is not None and info_path.is_file() else {}
        table, sweep, lines = tables([r for r in rows if r["seed"] == s.seed], info, s.seed)
        console.print(table)
        if sweep is not None:
            console.print(sweep)
        for line in lines:
            console.print(line, highlight=False, markup=False)
    return [f"wrote {out_dir / 'abstention.csv'}, {out_dir / 'abstention_curve.csv'} and {out_dir / 'abstention.png'} "
            f"(seed {first})"]
