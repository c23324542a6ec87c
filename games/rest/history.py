"""A ReST run's learner history (`<run>/rest/history.json`: one row per policy, BC first, then
G1 I0, G1 I1, ... or RL 1, RL 2, ...) as series (`read`, what the experiment stores per run) and
back as rows (`rows`), and the paper's rows among them (`paper_rows`): what the experiment's claims
(`games.rest.experiment`) and its tables (`games.rest.experiment_report`) both read.
"""
from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Sequence

from arena.experiment import Series

COLUMNS = ("grow", "improve", "test", "test_chrf", "tau", "dg_mean", "kept", "pairs", "kl")
"""History columns read back as series `step.<column>` (x: the row's index; row 0 is BC)."""
Row = dict[str, float]


def read(run_dir: Path) -> dict[str, Series]:
    """The run's learner history as series over its rows (BC first), one per column."""
    path = Path(run_dir) / "rest" / "history.json"
    if not path.is_file():
        return {}
    steps = json.loads(path.read_text()).get("steps") or []
    x = tuple(range(len(steps)))
    num = lambda v: float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else math.nan  # noqa: E731
    return {f"step.{c}": Series(tuple(num(s.get(c)) for s in steps), x=x) for c in COLUMNS}


def rows(series: dict[str, Series]) -> list[Row]:
    """A run's history rows back from its series (`read`), rewards x100 as the paper's."""
    n = len(series.get("step.grow", Series(())).values)
    out = []
    for i in range(n):
        row = {c: series[f"step.{c}"].values[i] for c in COLUMNS if f"step.{c}" in series}
        for c in ("test", "test_chrf"):
            row[c] = 100 * row[c]
        row["grow"], row["improve"] = int(row["grow"]), int(row["improve"])
        out.append(row)
    return out


def label(row: Row | None) -> str:
    """BC, G<g> I<i> (ReST), or RL <n> (online RL: the rows with a KL)."""
    if row is None:
        return "-"
    if row["grow"] == 0:
        return "BC"
    return f"RL {row['grow']}" if not math.isnan(row.get("kl", math.nan)) else f"G{row['grow']} I{row['improve']}"


def exact(steps: Sequence[Row], grow: int, improve: int) -> Row | None:
    return next((r for r in steps if r["grow"] == grow and r["improve"] == improve), None)


def step(steps: Sequence[Row], grow: int, improve: int) -> Row | None:
    """Row `G<grow> I<improve>`, or that Grow step's last Improve step when it has fewer."""
    rs = [r for r in steps if r["grow"] == grow]
    return exact(steps, grow, improve) or (rs[-1] if rs else None)


def paper_rows(steps: Sequence[Row]) -> dict[str, Row | None]:
    """The paper's rows: BC, G1 I0, G1 I4 (or G1's last), G2 I3 (or G2's last)."""
    g1 = [r for r in steps if r["grow"] == 1 and r["improve"] >= 1]
    return {"BC": next((r for r in steps if r["grow"] == 0), None),
            "G1 I0": exact(steps, 1, 0),
            "G1 I4": step(steps, 1, 4) if g1 else None, "G2 I3": step(steps, 2, 3)}


def online_ends(steps: Sequence[Row]) -> tuple[Row | None, Row | None]:
    """(BC, the last round) of an online-RL history (None, None before its first round)."""
    if len(steps) < 2:
        return None, None
    return steps[0], steps[-1]
