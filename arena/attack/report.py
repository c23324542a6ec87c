"""Attack results for people: a rich table, `attack.csv`, and `attack.png` (steps-to-exploit over rounds)."""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import TYPE_CHECKING

from rich.table import Table

if TYPE_CHECKING:
    from arena.attack.run import AttackResult


def _ci(mean: float, lo: float, hi: float, fmt: str) -> str:
    if math.isnan(lo):
        return format(mean, fmt)
    return f"{format(mean, fmt)} [{format(lo, fmt)},{format(hi, fmt)}]"


def attack_table(result: "AttackResult") -> Table:
    cfg = result.plan.config
    t = Table("round", "steps to exploit", "exploited", f"{result.metric} at end",
              title=f"attack on {cfg.seat} checkpoints: {result.attacker}; exploit = mean {result.metric} over "
                    f"{cfg.window} steps >= {result.threshold:g}; budget {cfg.budget} steps",
              caption="means over attack seeds, [95% bootstrap interval]; a seed that never exploited counts as "
                      "the budget (then the mean is a lower bound, marked >=)", header_style="bold")
    for r in result.summaries:
        steps = _ci(r.steps, r.steps_lower, r.steps_upper, ".1f")
        t.add_row(str(r.round), (">=" if r.censored else "") + steps, f"{r.exploited}/{r.seeds}",
                  _ci(r.success, r.success_lower, r.success_upper, ".2f"))
    return t


def write_outputs(result: "AttackResult") -> list[Path]:
    out = result.out_dir
    path = out / "attack.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["round", "seeds", "exploited", "steps_to_exploit", "steps_lower", "steps_upper",
                    "success", "success_lower", "success_upper", "budget"])
        for r in result.summaries:
            w.writerow([r.round, r.seeds, r.exploited, r.steps, r.steps_lower, r.steps_upper, r.success,
                        r.success_lower, r.success_upper, r.budget])
    written = [path]
    try:
        written.append(plot(result, out / "attack.png"))
    except ImportError:  # matplotlib is optional
        pass
    return written


def plot(result: "AttackResult", path: Path) -> Path:
    import numpy as np

    from arena.report.figures import new_figure

    s = result.summaries
    rounds = [r.round for r in s]
    fig = new_figure(7.5, 3.2)
    for ax, (name, mean, lo, hi) in zip(fig.subplots(1, 2), [
            ("steps to exploit", [r.steps for r in s], [r.steps_lower for r in s], [r.steps_upper for r in s]),
            (f"{result.metric} at end", [r.success for r in s], [r.success_lower for r in s],
             [r.success_upper for r in s])]):
        mean, lo, hi = np.array(mean), np.array(lo), np.array(hi)
        ax.plot(rounds, mean, marker="o")
        ok = ~np.isnan(lo)
        if ok.any():
            ax.fill_between(np.array(rounds)[ok], lo[ok], hi[ok], alpha=0.25)
        if name == "steps to exploit":
            ax.axhline(result.plan.config.budget, ls="--", c="grey", lw=1, label="budget")
            ax.set_ylim(0, result.plan.config.budget * 1.1)
            ax.legend(loc="best", fontsize=8)
        ax.set_xlabel("round of the attacked checkpoint")
        ax.set_xticks(rounds)
        ax.set_ylabel(name)
        if name != "steps to exploit":
            ax.set_ylim(0, 1)
    fig.suptitle(f"{result.plan.run_dir.name}: attacks on {result.plan.config.seat} ({result.attacker})", fontsize=9)
    fig.savefig(path, dpi=110)
    return path
