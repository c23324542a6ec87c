"""report.html's legibility-study section: one table and one figure per study of the run.

Read from `<run>/studies/<name>/study.json` and `legibility.png` (written by `arena study`) as
data; every string is HTML-escaped. `study_sections(run_dir)` returns the section's HTML pieces
(none when the run has no study), for `arena.report.html.build_report` to place.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from arena.study.analysis import CheckpointResult
from arena.study.report import HEADER, NOTE, STUDIES_DIR, table_rows

MAX_PNG_BYTES = 20 * 2**20


def study_sections(run_dir: Path) -> list[str]:
    """`["<h2>Legibility studies</h2>", <one fragment per study>]`, or [] when there is none."""
    base = Path(run_dir) / STUDIES_DIR
    dirs = sorted(d for d in base.glob("*") if (d / "study.json").is_file()) if base.is_dir() else []
    return ["<h2>Legibility studies</h2>", *(study_fragment(d) for d in dirs)] if dirs else []


def study_fragment(out_dir: Path) -> str:
    """One study's table (accuracy and median seconds with 95% intervals, automated legibility) and plot."""
    from arena.report.page import e, png_img, table

    head = f"<h3>Study {e(out_dir.name)}</h3>"
    try:
        doc = json.loads((out_dir / "study.json").read_text(encoding="utf-8"))
        rows = [_row(r) for r in doc["checkpoints"]]
    except (OSError, ValueError, TypeError, KeyError) as err:
        return head + f'<p class="note">Cannot read {e(out_dir.name)}/study.json: {e(err)}</p>'
    limit = doc.get("time_limit")
    meta = (f'<p class="meta">seat {e(doc.get("seat"))} · {e(doc.get("items"))} items · '
            f'{e(doc.get("judgements"))} judgements by {e(doc.get("raters"))} raters · '
            f'{e(f"{limit:g} s per item" if isinstance(limit, (int, float)) and limit else "no time limit")}</p>')
    body = table([e(h) for h in HEADER], ([e(c) for c in cells] for cells in table_rows(rows)))
    png = out_dir / "legibility.png"
    if png.is_file() and png.stat().st_size <= MAX_PNG_BYTES:
        data = png.read_bytes()
        if data[:8] == b"\x89PNG\r\n\x1a\n":
            body += png_img(data, f"legibility study {out_dir.name}", "wide")
    return head + meta + body + f'<p class="note">{e(NOTE)}</p>'


def _row(r: Any) -> CheckpointResult:
    """A row of study.json back as a `CheckpointResult` (missing numbers as NaN, text as text)."""
    if not isinstance(r, dict):
        raise ValueError("a checkpoint row is not an object")

    def num(key: str) -> float:
        v = r.get(key)
        return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else float("nan")

    def opt(key: str) -> float | None:
        v = num(key)
        return None if v != v else v

    def count(key: str) -> int:
        v = r.get(key)
        return int(v) if isinstance(v, int) and not isinstance(v, bool) else 0

    return CheckpointResult(str(r.get("label", "?")), count("items"), count("items_correct"), count("judged"),
                            count("timed_out"), num("accuracy"), num("accuracy_lower"), num("accuracy_upper"),
                            num("median_seconds"), num("seconds_lower"), num("seconds_upper"), count("raters"),
                            opt("legibility"), opt("legibility_lower"), opt("legibility_upper"))
