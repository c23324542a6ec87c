"""Attack results for people: a rich table, and `attack.csv`, `attack.json`, `attack.png` (steps-to-exploit
over rounds) in the attack's folder.

A seed whose attack did not exploit its target within the budget is a censored value: it counts
as the budget in the mean, which is then a lower bound, shown `≥` in the table and as an open
triangle in the plot, and the count of such seeds is given beside them."""
from __future__ import annotations

import csv
import math
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.table import Table

from arena.store import write_json_atomic

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
                      f"the budget (a censored value: the mean is then a lower bound, marked ≥); censored: "
                      f"{'{} of {} attacks'.format(*censored_count(result))}", header_style="bold")
    for r in result.summaries:
        steps = _ci(r.steps, r.steps_lower, r.steps_upper, ".1f")
        t.add_row(str(r.round), ("≥ " if r.censored else "") + steps, f"{r.exploited}/{r.seeds}",
                  _ci(r.success, r.success_lower, r.success_upper, ".2f"))
    return t


def censored_count(result: "AttackResult") -> tuple[int, int]:
    """(attacks not exploited within the budget, attacks) over the rounds reported."""
    return sum(r.seeds - r.exploited for r in result.summaries), sum(r.seeds for r in result.summaries)


def write_outputs(result: "AttackResult") -> list[Path]:
    """`attack.csv`, `attack.json` (what the run's report shows) and `attack.png` in the attack's folder."""
    out = result.out_dir
    path = out / "attack.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["round", "seeds", "exploited", "censored", "steps_to_exploit", "steps_lower", "steps_upper",
                    "success", "success_lower", "success_upper", "budget"])
        for r in result.summaries:
            w.writerow([r.round, r.seeds, r.exploited, r.seeds - r.exploited, r.steps, r.steps_lower, r.steps_upper,
                        r.success, r.success_lower, r.success_upper, r.budget])
    write_json_atomic(out / "attack.json", attack_document(result))
    written = [path, out / "attack.json"]
    try:
        written.append(plot(result, out / "attack.png"))
    except ImportError:  # matplotlib is optional
        pass
    return written


def attack_document(result: "AttackResult") -> dict[str, Any]:
    """The attack as the run's report reads it: its settings, per round the summary over seeds and
    each seed's steps-to-exploit (null: not exploited within the budget, a censored value)."""
    cfg = result.plan.config
    by_round: dict[int, list[dict[str, Any]]] = {}
    for u in sorted(result.units, key=lambda u: (u["round"], u["seed"])):
        by_round.setdefault(int(u["round"]), []).append(
            {"seed": u["seed"], "steps_to_exploit": u["steps_to_exploit"], "steps_played": u.get("steps_played"),
             "final_success": u["final_success"]})
    return {"schema": 1, "name": cfg.name, "seat": cfg.seat, "attacker": result.attacker, "metric": result.metric,
            "threshold": result.threshold, "budget": cfg.budget, "window": cfg.window, "seed": cfg.seed,
            "rounds": [{**{k: nan_to_none(v) for k, v in asdict(r).items()}, "censored": r.seeds - r.exploited,
                        "per_seed": by_round.get(r.round, [])} for r in result.summaries]}


def nan_to_none(x: Any) -> Any:
    return None if isinstance(x, float) and not math.isfinite(x) else x


def plot(result: "AttackResult", path: Path) -> Path:
    from arena.report.figures import attack_figure

    s, budget = result.summaries, result.plan.config.budget
    by_round: dict[int, list[tuple[float, bool]]] = {}
    for u in sorted(result.units, key=lambda u: u["seed"]):
        x = u["steps_to_exploit"]
        by_round.setdefault(int(u["round"]), []).append((float(budget if x is None else x), x is None))
    n_cens, n = censored_count(result)
    fig = attack_figure(f"{result.plan.run_dir.name}: attacks on {result.plan.config.seat} ({result.attacker}); "
                        f"{n_cens} of {n} not exploited within {budget} steps",
                        [r.round for r in s], [(r.steps, r.censored) for r in s], [r.steps_lower for r in s],
                        [r.steps_upper for r in s], [by_round.get(r.round, []) for r in s],
                        [(r.success, r.success_lower, r.success_upper) for r in s], budget, result.metric)
    fig.savefig(path, dpi=110)
    return path
