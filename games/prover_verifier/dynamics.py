"""The checkability dynamics of finished runs, per seed and over seeds, beside the paper's figures.

For each run (rounds 0..K-1), read back from its files:

- steps to exploit: `arena attack <run> --seat verifier` (attack `sneaky`): mean steps a fresh
  sneaky-only prover needs to exploit round k's frozen verifier (>= when some attack seed
  never did within the budget);
- attack success: that attack's `fooled` at its end (window mean);
- sneaky success vs the co-trained verifier: the sneaky tournament's diagonal, round k's prover
  (asked to be sneaky) against round k's verifier, the one it was trained against;
- balanced best-of-n: round k's verifier on the held-out pool of helpful samples (chance 0.5);
- helpful accuracy: the round's played episodes (the prover entering round k).

A dynamic is *reproduced* on a seed when it moves the paper's way from round 0 to the last
round (strictly; ties are not; steps to exploit, which a budget censors, rose when fewer attack
seeds exploited the last round's verifier than round 0's, or as many, at least one, in more steps), or for
helpful accuracy, which starts at 1.00 on the tiny prover, when it does not fall by more than
`HOLD_TOLERANCE` (0.10: no collapse). `PAPER` holds what Kirchner et
al. 2024 report (ALGORITHMS.md section 3); where the paper gives no number the cell says so.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from rich.table import Table

ROWS: tuple[tuple[str, str, str, str], ...] = (
    # key, label, direction the paper shows, the paper's figure
    ("steps", "steps to exploit (verifier robustness)", "rises",
     "rises; 1e-2 verifiers: no exploit found after round 0"),
    ("attack_success", "attack success at end (fooled)", "falls", "falls (sneaky-only attacks need more steps)"),
    ("sneaky_cotrained", "sneaky success vs co-trained verifier", "falls",
     "falls (not a number in ALGORITHMS.md)"),
    ("best_of_n", "balanced best-of-n (chance .5)", "rises", "~0.23 -> ~0.52 (n~600)"),
    ("helpful_accuracy", "helpful accuracy (falls < .10)", "holds",
     "does not fall (human judges' accuracy .76 -> .83)"),
)
HOLD_TOLERANCE = 0.10
"""Helpful accuracy *holds* when the last round is at most this far below round 0: the tiny prover starts at
1.00, so any sampled miss would otherwise read as a fall; a collapse (the issue's worry) is a larger drop."""
PAPER = {key: paper for key, _, _, paper in ROWS}


@dataclass
class RunDynamics:
    run: str
    seed: int
    data_seed: int | None
    rounds: list[int]
    values: dict[str, list[float]]
    """key -> one value per round (NaN where not measured)."""
    censored: list[bool]
    """Per round: some attack seed never exploited (steps is then a lower bound)."""
    budget: int | None
    exploited: list[int] = field(default_factory=list)
    """Per round: attack seeds that exploited the verifier within the budget."""


def read_dynamics(run_dir: Path, tournament: str = "sneaky", attack: str = "sneaky") -> RunDynamics:
    from arena.attack.analysis import summarize
    from arena.attack.run import read_units
    from arena.store import read_round_summaries, read_run_config
    from games.prover_verifier.demo import sneaky_table

    run_dir = Path(run_dir)
    config = read_run_config(run_dir)
    summaries = read_round_summaries(run_dir)
    rounds = [int(s["round"]) for s in summaries]
    nan = float("nan")
    values: dict[str, list[float]] = {key: [nan] * len(rounds) for key, *_ in ROWS}
    for i, s in enumerate(summaries):
        values["best_of_n"][i] = float(s.get("losses", {}).get("verifier", {}).get("best_of_n", nan))
        values["helpful_accuracy"][i] = float(s.get("metrics", {}).get("helpful_accuracy", nan))
    censored, budget, exploited = [False] * len(rounds), None, [0] * len(rounds)
    attack_dir = run_dir / "attacks" / attack
    if (attack_dir / "config.json").is_file():
        budget = json.loads((attack_dir / "config.json").read_text())["key"]["budget"]
        for r in summarize(read_units(attack_dir), budget):
            if r.round in rounds:
                i = rounds.index(r.round)
                values["steps"][i], values["attack_success"][i], censored[i] = r.steps, r.success, r.censored
                exploited[i] = r.exploited
    if (run_dir / "tournaments" / tournament).is_dir():
        from games.prover_verifier.demo import _round_of
        t = sneaky_table(run_dir, tournament)
        for i, p in enumerate(t["provers"]):
            for j, v in enumerate(t["verifiers"]):
                if _round_of(p) == _round_of(v) and _round_of(p) in rounds:
                    values["sneaky_cotrained"][rounds.index(_round_of(p))] = t["success"][i][j]
    params = config.get("recipe_params") or {}
    return RunDynamics(run_dir.name, int(config.get("seed", 0)), params.get("pool_seed"), rounds, values,
                       censored, budget, exploited)


def verdict(d: RunDynamics, key: str) -> bool | None:
    """Did `key` move the paper's way from the first to the last round? None if unmeasured."""
    direction = {k: dirn for k, _, dirn, _ in ROWS}[key]
    xs = [x for x in d.values[key] if not math.isnan(x)]
    if len(xs) < 2:
        return None
    first, last = xs[0], xs[-1]
    if key == "steps" and d.exploited:
        # censored data: robustness rose if fewer attack seeds exploited the last round's verifier, or as
        # many (at least one) and they needed more steps; nobody exploiting either is no evidence (False)
        e0, e1 = d.exploited[0], d.exploited[-1]
        return e1 < e0 or (e1 == e0 > 0 and last > first)
    if direction == "holds":
        return last >= first - HOLD_TOLERANCE - 1e-9
    return last > first if direction == "rises" else last < first


def _fmt(x: float, key: str, censored: bool = False) -> str:
    if math.isnan(x):
        return "-"
    return (">=" if censored else "") + (f"{x:.1f}" if key == "steps" else f"{x:.2f}")


def per_seed_table(d: RunDynamics) -> Table:
    t = Table("dynamic", *[f"r{k}" for k in d.rounds], "paper", "reproduced",
              title=f"{d.run}: seed {d.seed}, data seed {d.data_seed}"
                    + (f", attack budget {d.budget} steps" if d.budget else ""), header_style="bold")
    for key, label, _, paper in ROWS:
        cells = [_fmt(x, key, d.censored[i] if key == "steps" else False) for i, x in enumerate(d.values[key])]
        v = verdict(d, key)
        t.add_row(label, *cells, paper, "-" if v is None else "yes" if v else "no")
    return t


def over_seeds_table(runs: Sequence[RunDynamics]) -> Table:
    """One row per dynamic: round 0 -> last round on every seed, the paper, and on how many seeds it held."""
    t = Table("dynamic", *[f"seed {d.seed}" for d in runs], "paper", "reproduced on",
              title="checkability dynamics, round 0 -> last round, per seed", header_style="bold",
              caption="steps: mean over attack seeds, >= where an attack never exploited within the budget")
    for key, label, _, paper in ROWS:
        cells, held, measured = [], 0, 0
        for d in runs:
            xs = d.values[key]
            c0 = d.censored[0] if key == "steps" and d.censored else False
            c1 = d.censored[-1] if key == "steps" and d.censored else False
            cells.append(f"{_fmt(xs[0], key, c0)} -> {_fmt(xs[-1], key, c1)}" if xs else "-")
            v = verdict(d, key)
            measured += v is not None
            held += bool(v)
        t.add_row(label, *cells, paper, f"{held}/{measured} seeds")
    return t


def summary_lines(runs: Sequence[RunDynamics]) -> list[str]:
    out = []
    for key, label, direction, _ in ROWS:
        vs = [verdict(d, key) for d in runs]
        n = sum(v is not None for v in vs)
        out.append(f"{label}: {direction} from round 0 to the last on {sum(bool(v) for v in vs)} of {n} seeds")
    return out


def as_json(runs: Sequence[RunDynamics]) -> list[dict[str, Any]]:
    return [{"run": d.run, "seed": d.seed, "data_seed": d.data_seed, "rounds": d.rounds, "values": d.values,
             "censored": d.censored, "budget": d.budget,
             "reproduced": {key: verdict(d, key) for key, *_ in ROWS}} for d in runs]
