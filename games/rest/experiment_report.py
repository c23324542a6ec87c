"""The ReST experiment's own tables, after the claims table (its `report` hook): one row per run in
the paper's layout -- ReST and ReST-EM runs at BC, G1 I0, G1 I4, G2 I3 (test reward x100, greedy;
chrF beside R when R is a learned reward model), online-RL runs at BC and their last round -- with
the paper's figures below. Each run's own table, Best-of-N curve and files: `games.rest.report`.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from rich.table import Table

from arena.experiment import SeedView
from arena.experiment.claims import fmt
from games.rest.history import Row, online_ends, paper_rows, rows
from games.rest.report import PAPER, PAPER_ONLINE

LABELS = ("BC", "G1 I0", "G1 I4", "G2 I3")


def _f(x: float | None) -> str:
    return fmt(x, False, 1)


def rest_seeds_table(runs: Sequence[tuple[str, Sequence[Row]]], learned: bool) -> Table:
    t = Table(title="ReST on rest-v0, one row per run (test reward x100, greedy)", header_style="bold")
    for col in ("run", *LABELS, *([f"chrF {k}" for k in LABELS] if learned else [])):
        t.add_column(col, justify="left" if col == "run" else "right")
    for name, steps in runs:
        p = paper_rows(steps)
        g1 = p["G1 I4"]
        last = f"G1 I{g1['improve']}" if g1 is not None and g1["improve"] != 4 else ""
        v = {k: None if p[k] is None else p[k]["test"] for k in LABELS}
        c = {k: None if p[k] is None else p[k]["test_chrf"] for k in LABELS}
        t.add_row(name, _f(v["BC"]), _f(v["G1 I0"]), _f(v["G1 I4"]) + (f" ({last})" if last else ""), _f(v["G2 I3"]),
                  *([_f(c[k]) for k in LABELS] if learned else []))
    t.add_row("paper (IWSLT'14, RM score)", *[f"{PAPER[k]:.1f}" for k in LABELS], *([""] * 4 if learned else []),
              style="dim")
    return t


def online_seeds_table(runs: Sequence[tuple[str, Sequence[Row]]], rewards: set[str]) -> Table:
    t = Table(title=f"online RL on rest-v0 (R = {'/'.join(sorted(rewards))}), one row per run "
                    "(test, greedy, x100)", header_style="bold")
    for col in ("run", "R BC", "R last", "ΔR", "chrF BC", "chrF last", "ΔchrF", "KL"):
        t.add_column(col, justify="left" if col == "run" else "right")
    d = lambda a, b: "-" if a is None or b is None else f"{b - a:+.1f}"  # noqa: E731
    for name, steps in runs:
        bc, last = online_ends(steps)
        bc = bc or (steps[0] if steps else None)
        g = lambda r, k: None if r is None else r[k]  # noqa: E731
        t.add_row(name, _f(g(bc, "test")), _f(g(last, "test")) + (f" (RL {last['grow']})" if last else ""),
                  d(g(bc, "test"), g(last, "test")), _f(g(bc, "test_chrf")), _f(g(last, "test_chrf")),
                  d(g(bc, "test_chrf"), g(last, "test_chrf")), "-" if last is None else f"{last['kl']:.2f}")
    p = PAPER_ONLINE
    t.add_row("paper: online PPO (IWSLT'14, RM score; BLEU)", f"{p['BC']:.1f}", f"{p['online']:.1f}",
              f"{p['online'] - p['BC']:+.1f}", "", "", f"BLEU {p['BLEU']:+.0f}", "", style="dim")
    return t


def report(seeds: Sequence[SeedView], out_dir: Path, console) -> list[str]:
    """Each run's row in the paper's layout: ReST and ReST-EM runs in one table, online RL in another."""
    offline: list[tuple[str, Sequence[Row]]] = []
    online: list[tuple[str, Sequence[Row]]] = []
    rewards: dict[str, set[str]] = {"offline": set(), "online": set()}
    for s in seeds:
        for run in s.runs.values():
            path = run.run_dir / "rest" / "history.json"
            if not path.is_file():
                continue
            history: dict[str, Any] = json.loads(path.read_text())
            kind = "online" if history.get("variant") == "online" else "offline"
            (online if kind == "online" else offline).append((run.run_dir.name, rows(run.series)))
            rewards[kind].add(str(history.get("reward", "chrf")))
    learned = bool(rewards["offline"] - {"chrf"})
    if offline:
        console.print(rest_seeds_table(offline, learned))
    if online:
        console.print(online_seeds_table(online, rewards["online"]))
    return [("R is a learned reward model in some runs: chrF beside it is the true metric. " if learned else "")
            + "Paper: Gulcehre et al. 2023, IWSLT'14 De-En, reward-model scores (another task and scale)."]
