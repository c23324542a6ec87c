"""A study's outputs: the terminal table, `study.json` and the paper-style plot.

    <run>/studies/<name>/study.json       the config (less its token) and one row per checkpoint
                         legibility.png   judge accuracy and median seconds per checkpoint, with
                                          95% intervals: rounds on the x axis, one line per run
                                          (this run's seat, a baseline run's), like Kirchner et
                                          al.'s human-legibility figure; a third panel for the
                                          automated legibility when there is one

The table and the figure are pure functions of the rows (`arena.study.analysis`).
"""
from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from rich.table import Table
from rich.text import Text

from arena.study.analysis import CheckpointResult

STUDIES_DIR = "studies"
LABEL_RE = re.compile(r"^(?P<series>.+)/round-(?P<k>\d+)$")


def _ci(mean: float | None, lo: float | None, hi: float | None, spec: str) -> str:
    if mean is None or not math.isfinite(mean):
        return "–"
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return format(mean, spec)
    return f"{format(mean, spec)} [{format(lo, spec)}, {format(hi, spec)}]"


def table_rows(rows: Sequence[CheckpointResult]) -> list[list[str]]:
    """The table's cells as text (one list per checkpoint), shared by the terminal and report.html."""
    return [[r.label, f"{r.items_correct}/{r.items}", str(r.judged), str(r.timed_out), str(r.raters),
             _ci(r.accuracy, r.accuracy_lower, r.accuracy_upper, ".2f"),
             _ci(r.median_seconds, r.seconds_lower, r.seconds_upper, ".1f"),
             _ci(r.legibility, r.legibility_lower, r.legibility_upper, ".2f")] for r in rows]


HEADER = ["checkpoint", "correct items", "judged", "timed out", "raters", "judge accuracy (95% CI)",
          "median s (95% CI)", "automated legibility"]
NOTE = ("judge accuracy: verdicts matching the solution's correctness, of the judgements made in time "
        "(Wilson 95%); median s: seconds to judge, in time (bootstrap 95%); timed out: no verdict in the "
        "limit; automated legibility: the run's own measure where given (legibility.json), else –.")


def study_table(name: str, rows: Sequence[CheckpointResult], time_limit: float | None) -> Table:
    limit = f"{time_limit:g} s per item" if time_limit else "no time limit"
    t = Table(*HEADER, title=f"study {name}: {limit}", caption=NOTE, header_style="bold", caption_justify="left")
    for cells in table_rows(rows):
        t.add_row(*(Text(c) for c in cells))
    return t


def write_outputs(out_dir: Path, summary: dict[str, Any], rows: Sequence[CheckpointResult],
                  checkpoint_rounds: dict[str, int | None]) -> dict[str, Path]:
    """study.json (atomically) and legibility.png (when some checkpoint was judged)."""
    from arena.report.figures import png_bytes

    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "study.json", "png": out_dir / "legibility.png"}
    doc = {**summary, "checkpoints": [r.to_json() for r in rows]}
    tmp = paths["json"].with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=2))
    tmp.replace(paths["json"])
    if any(r.judged for r in rows):
        paths["png"].write_bytes(png_bytes(legibility_figure(rows, checkpoint_rounds, summary.get("name", ""))))
    else:
        paths.pop("png")
        (out_dir / "legibility.png").unlink(missing_ok=True)
    return paths


def series_of(label: str, round_: int | None) -> tuple[str, int | None]:
    """(line, x) of a checkpoint: `prover/round-2` -> ("prover", 2); `base:prover/round-3` ->
    ("base:prover", 3); a bare label -> (label, the checkpoint's round, if known)."""
    m = LABEL_RE.match(label)
    return (m.group("series"), int(m.group("k"))) if m else (label, round_)


def legibility_figure(rows: Sequence[CheckpointResult], checkpoint_rounds: dict[str, int | None], title: str):
    """Judge accuracy and median seconds (and the automated legibility, if any) per checkpoint."""
    from matplotlib.ticker import MaxNLocator

    from arena.report.figures import new_figure

    panels = [("judge accuracy", "accuracy", "accuracy_lower", "accuracy_upper"),
              ("median seconds to judge", "median_seconds", "seconds_lower", "seconds_upper")]
    if any(r.legibility is not None for r in rows):
        panels.append(("automated legibility", "legibility", "legibility_lower", "legibility_upper"))
    lines: dict[str, list[tuple[int | None, CheckpointResult]]] = {}
    for r in rows:
        name, x = series_of(r.label, checkpoint_rounds.get(r.label))
        lines.setdefault(name, []).append((x, r))
    fig = new_figure(3.6 * len(panels), 3.0)
    for p, (ylabel, key, lo_key, hi_key) in enumerate(panels):
        ax = fig.add_subplot(1, len(panels), p + 1)
        for j, (name, pts) in enumerate(lines.items()):
            pts = sorted(((x if x is not None else i), r) for i, (x, r) in enumerate(pts))
            xs = np.array([x for x, _ in pts], dtype=float) + 0.06 * (j - (len(lines) - 1) / 2)  # no overlap
            ys = np.array([_num(getattr(r, key)) for _, r in pts])
            lo = np.array([_num(getattr(r, lo_key)) for _, r in pts])
            hi = np.array([_num(getattr(r, hi_key)) for _, r in pts])
            err = np.vstack([np.where(np.isfinite(lo), ys - lo, 0), np.where(np.isfinite(hi), hi - ys, 0)])
            ax.errorbar(xs, ys, yerr=np.nan_to_num(err), marker="o", markersize=4, capsize=3, linewidth=1.5,
                        label=name)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("checkpoint (round)")
        ax.set_ylabel(ylabel)
        if key == "accuracy":
            ax.set_ylim(-0.02, 1.02)
            ax.axhline(0.5, color="0.6", linewidth=0.8, linestyle="--")
        ax.grid(alpha=0.3)
        if p == 0:
            ax.legend(fontsize=7, title="checkpoints of", title_fontsize=7)
    fig.suptitle(f"legibility study {title}: people judging helpful solutions (95% intervals)", fontsize=10)
    return fig


def _num(x: Any) -> float:
    return float(x) if isinstance(x, (int, float)) and x is not None and math.isfinite(x) else math.nan
