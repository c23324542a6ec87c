"""A study's numbers per checkpoint: pure functions of its items and judgements.

    accuracy       verdicts that match the solution's correctness, out of the judgements answered
                   in time; 95% Wilson score interval (never outside [0, 1], not degenerate at 0 or 1)
    median seconds over the judgements answered in time; 95% bootstrap percentile interval
    timed out      judgements whose time ran out (counted apart: they carry no verdict)
    legibility     the automated measure for the checkpoint, when one is given (`read_legibility`)
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from arena.ratings import wilson_interval
from arena.seeding import derive
from arena.store.studies import Judgement, StudyItem
from arena.types import ArenaError

LEGIBILITY_FILE = "legibility.json"


@dataclass
class CheckpointResult:
    """One checkpoint's row of the study table (NaN where there is nothing to measure)."""

    label: str
    items: int
    items_correct: int
    judged: int
    """Judgements answered in time."""
    timed_out: int
    accuracy: float
    accuracy_lower: float
    accuracy_upper: float
    median_seconds: float
    seconds_lower: float
    seconds_upper: float
    raters: int
    legibility: float | None = None
    legibility_lower: float | None = None
    legibility_upper: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in asdict(self).items()}


def median_ci(values: Sequence[float], rng: np.random.Generator, rounds: int = 1000,
              level: float = 0.95) -> tuple[float, float, float]:
    """(median, lower, upper): the sample median and its bootstrap percentile interval (NaN interval
    for fewer than 2 values or no rounds; NaN everything for none)."""
    x = np.asarray(values, dtype=np.float64)
    if x.size == 0:
        return math.nan, math.nan, math.nan
    med = float(np.median(x))
    if x.size < 2 or rounds <= 0:
        return med, math.nan, math.nan
    meds = np.median(x[rng.integers(0, x.size, size=(rounds, x.size))], axis=1)  # (rounds,)
    alpha = (1.0 - level) / 2.0
    lo, hi = np.quantile(meds, [alpha, 1.0 - alpha])
    return med, float(lo), float(hi)


def analyze(items: Sequence[StudyItem], judgements: Sequence[Judgement], order: Sequence[str], *, seed: int,
            rounds: int = 1000, legibility: Mapping[str, Mapping[str, float]] | None = None) -> list[CheckpointResult]:
    """One row per checkpoint label in `order` (then any other label the items name)."""
    labels = list(dict.fromkeys([*order, *(it.checkpoint for it in items)]))
    legibility = legibility or {}
    rows = []
    for label in labels:
        its = [it for it in items if it.checkpoint == label]
        js = [j for j in judgements if j.checkpoint == label]
        answered = [j for j in js if not j.timed_out and j.correct is not None]
        k = sum(bool(j.correct) for j in answered)
        lo, hi = wilson_interval(k, len(answered))
        med, slo, shi = median_ci([j.seconds for j in answered], np.random.default_rng(derive(seed, "study", label)),
                                  rounds)
        leg = legibility.get(label) or {}
        rows.append(CheckpointResult(
            label, len(its), sum(it.correct for it in its), len(answered), sum(j.timed_out for j in js),
            k / len(answered) if answered else math.nan, float(lo), float(hi), med, slo, shi,
            len({j.rater for j in js}), leg.get("legibility"), leg.get("lower"), leg.get("upper")))
    return rows


def read_legibility(run_dir: Path, given: Mapping[str, Any] | None = None) -> dict[str, dict[str, float]]:
    """The automated legibility per checkpoint label: `given` ({label: value or {legibility, lower,
    upper}}), else `<run>/legibility.json` ({"checkpoints": {label: {...}}}) if the run has one."""
    path = Path(run_dir) / LEGIBILITY_FILE
    if given is None:
        if not path.is_file():
            return {}
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as e:
            raise ArenaError(f"cannot read {path}: {e}") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("checkpoints"), dict):
            raise ArenaError(f'{path} is not {{"checkpoints": {{label: {{"legibility": x, "lower": l, "upper": u}}}}}}')
        given = doc["checkpoints"]
    out = {}
    for label, v in given.items():
        entry = {"legibility": v} if _finite(v) else v
        if not isinstance(entry, Mapping) or not _finite(entry.get("legibility")):
            raise ArenaError(f"legibility of {str(label)[:60]!r} is not a number or {{legibility, lower, upper}}")
        out[str(label)] = {k: float(entry[k]) for k in ("legibility", "lower", "upper") if _finite(entry.get(k))}
    return out


def _finite(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
