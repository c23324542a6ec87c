"""The checkability experiment's own tables and plot, over seeds: robustness per arm, legibility and
its tax (initial prover, the game's rounds, correctness-only rounds), and sneaky errors per round.

Pure reading of `SeedView`s (the engine read the runs); the plot goes to `<out>/legibility.png` and
the tables' numbers to `<out>/checkability.json`.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from rich.table import Table

from arena.experiment import SeedView
from arena.experiment.claims import bootstrap_mean, fmt

ARM_ORDER = ("game", "initial", "rules", "correctness")


def _mean_ci(xs: Sequence[float]) -> tuple[float, float, float]:
    v = np.array([x for x in xs if not math.isnan(x)], dtype=float)
    return bootstrap_mean(v, 2000, np.random.default_rng(0))


def _ci(m: tuple[float, float, float], digits: int = 2) -> str:
    mean, lo, hi = m
    return "-" if math.isnan(mean) else f"{mean:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def robustness_table(seeds: Sequence[SeedView]) -> tuple[Table, dict[str, Any]]:
    """Per arm: steps to exploit round 0's and the last round's verifier (mean over seeds, CI), how many of
    those attacks ran out of budget, and attack success at the end."""
    t = Table("arm", "seeds", "steps r0", "steps last", "censored r0 | last", "success r0", "success last",
              title="robustness per arm: sneaky-only attacks on round 0's and the last round's verifier",
              caption="means over seeds [95% bootstrap CI]; censored: share of attacks that never exploited "
                      "(their steps count as the budget, a lower bound)", header_style="bold")
    doc: dict[str, Any] = {}
    for arm in ARM_ORDER:
        runs = [s.runs[arm] for s in seeds if arm in s.runs and "steps" in s.runs[arm].series]
        if not runs:
            continue
        steps = [[r.get("steps").at(i)[0] for r in runs] for i in (0, -1)]
        share = [[r.get("steps_censored_share").at(i)[0] for r in runs] for i in (0, -1)]
        success = [[r.get("attack_success").at(i)[0] for r in runs] for i in (0, -1)]
        cells = [_mean_ci(x) for x in steps] + [_mean_ci(x) for x in success]
        cens = [float(np.nanmean(x)) if not all(math.isnan(v) for v in x) else math.nan for x in share]
        t.add_row(arm, str(len(runs)), _ci(cells[0], 1), _ci(cells[1], 1), f"{fmt(cens[0])} | {fmt(cens[1])}",
                  _ci(cells[2]), _ci(cells[3]))
        doc[arm] = {"seeds": len(runs), "steps_first": cells[0], "steps_last": cells[1], "censored": cens,
                    "success_first": cells[2], "success_last": cells[3]}
    return t, doc


def _points(seeds: Sequence[SeedView], arm: str, key: str) -> dict[int, list[float]]:
    out: dict[int, list[float]] = {}
    for s in seeds:
        run = s.runs.get(arm)
        if run is None or key not in run.series:
            continue
        series = run.series[key]
        for x, v in zip(series.x or run.rounds, series.values):
            out.setdefault(int(x), []).append(v)
    return out


def legibility_table(seeds: Sequence[SeedView]) -> tuple[Table, dict[str, Any]]:
    t = Table("prover", "accuracy", "legibility (judge)", "legibility (step checker)",
              title="accuracy and legibility of helpful solutions on held-out problems (the paper's Fig. 4 and 5)",
              caption="balanced accuracy of time-limited judges that never trained with the prover; means over "
                      "seeds [95% bootstrap CI]", header_style="bold")
    doc: dict[str, Any] = {}
    for arm in ("game", "correctness"):
        acc, judge, checker = (_points(seeds, arm, k) for k in ("accuracy", "legibility_judge", "legibility_checker"))
        for x in sorted(acc):
            if x < 0 and arm != "game" and "game" in doc:
                continue  # the initial prover is one row
            name = "initial" if x < 0 else f"{arm} r{x}"
            cells = [_mean_ci(acc.get(x, [])), _mean_ci(judge.get(x, [])), _mean_ci(checker.get(x, []))]
            t.add_row(name, *[_ci(c) for c in cells])
            doc.setdefault(arm, {})[str(x)] = {"accuracy": cells[0], "judge": cells[1], "checker": cells[2]}
    return t, doc


def errors_table(seeds: Sequence[SeedView]) -> tuple[Table, dict[str, Any]]:
    keys = (("sneaky_wrong_steps", "wrong steps"), ("sneaky_first_wrong", "first wrong (0 first .. 1 last)"),
            ("sneaky_error_size", "error size"), ("sneaky_discriminator_auc", "vs initial: discriminator AUC"))
    t = Table("sneaky prover", *[k[1] for k in keys],
              title="sneaky errors: incorrect sneaky solutions on held-out problems (paper: subtler, more localised)",
              caption="means over seeds [95% bootstrap CI]; AUC .5 = indistinguishable from the initial prover's",
              header_style="bold")
    points = {k: _points(seeds, "game", k) for k, _ in keys}
    doc: dict[str, Any] = {}
    for x in sorted(points["sneaky_wrong_steps"]):
        cells = [_mean_ci(points[k].get(x, [])) for k, _ in keys]
        t.add_row("initial" if x < 0 else f"game r{x}", *[_ci(c) for c in cells])
        doc[str(x)] = dict(zip([k for k, _ in keys], cells))
    return t, doc


def plot(doc: dict[str, Any], path: Path) -> Path | None:
    """Accuracy against legibility (judge), initial -> rounds, per arm: the paper's tax, drawn."""
    if not doc:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(5.5, 4.5))
    for arm, color in (("game", "tab:blue"), ("correctness", "tab:red")):
        rows = doc.get(arm, {})
        start = doc.get("game", {}).get("-1")
        xs = sorted((int(k) for k in rows if k != "-1"))
        pts = ([start] if start else []) + [rows[str(x)] for x in xs]
        if not pts:
            continue
        ax.plot([p["judge"][0] for p in pts], [p["accuracy"][0] for p in pts], "-o", color=color,
                label="checkability game" if arm == "game" else "correctness-only RL")
        for p, label in zip(pts, (["init"] if start else []) + [f"r{x}" for x in xs]):
            ax.annotate(label, (p["judge"][0], p["accuracy"][0]), fontsize=8, xytext=(3, 3), textcoords="offset points")
    ax.set_xlabel("legibility: time-limited judge's balanced accuracy")
    ax.set_ylabel("helpful accuracy")
    ax.set_title("accuracy vs legibility (mean over seeds)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def print_report(seeds: Sequence[SeedView], out_dir: Path, console) -> list[str]:
    out_dir.mkdir(parents=True, exist_ok=True)
    doc: dict[str, Any] = {}
    for name, build in (("robustness", robustness_table), ("legibility", legibility_table),
                        ("sneaky_errors", errors_table)):
        table, doc[name] = build(seeds)
        if doc[name]:
            console.print(table)
    lines = []
    png = plot(doc["legibility"], out_dir / "legibility.png") if doc["legibility"] else None
    if png:
        lines.append(f"accuracy vs legibility: {png}")
    (out_dir / "checkability.json").write_text(json.dumps(doc, indent=1, default=float))
    return lines
