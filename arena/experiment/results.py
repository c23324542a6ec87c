"""Reading an experiment's finished runs back: per-round series from each run's store (and the
game's own files), grouped by seed; `dynamics.json`, the one schema every experiment writes; and
`write_csv`, the CSV a game's own tables go to.
"""
from __future__ import annotations

import csv
import json
import math
import os
from pathlib import Path
from typing import Any, Sequence

from arena.experiment.claims import PairedDifference, Verdict
from arena.experiment.spec import Experiment, RunView, SeedView, Series

SCHEMA = 1


def read_run(exp: Experiment, arm: str, seed: int, run_dir: Path) -> RunView:
    """A finished run's series: every round summary's game metrics (by name) and learner metrics
    (`<seat>.<name>`), then whatever the experiment's `read` hook adds from the run's files."""
    from arena.store import read_round_summaries, read_run_config

    summaries = read_round_summaries(run_dir)
    rounds = [int(s["round"]) for s in summaries]
    columns: dict[str, list[float]] = {}

    def put(key: str, i: int, value: Any) -> None:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            columns.setdefault(key, [math.nan] * len(rounds))[i] = float(value)

    for i, s in enumerate(summaries):
        for k, v in (s.get("metrics") or {}).items():
            put(k, i, v)
        for seat, values in (s.get("losses") or {}).items():
            for k, v in (values or {}).items():
                put(f"{seat}.{k}", i, v)
    series = {k: Series(tuple(v)) for k, v in columns.items()}
    if exp.read is not None:
        series.update(exp.read(run_dir))
    params = read_run_config(run_dir).get("recipe_params") or {}
    return RunView(arm, seed, Path(run_dir), rounds, series, params.get(exp.data_param) if exp.data_param else None)


def by_seed(runs: Sequence[RunView]) -> list[SeedView]:
    seeds: dict[int, dict[str, RunView]] = {}
    for r in runs:
        seeds.setdefault(r.seed, {})[r.arm] = r
    return [SeedView(s, arms) for s, arms in sorted(seeds.items())]


def _finite(x: float) -> float | None:
    return None if x is None or (isinstance(x, float) and not math.isfinite(x)) else x


def dynamics(exp: Experiment, seeds: Sequence[SeedView], verdicts: Sequence[Verdict],
             differences: Sequence[PairedDifference], out_dir: Path) -> dict[str, Any]:
    """The experiment's results as one JSON document (schema 1; `arena.report` renders it)."""
    runs = [r for s in seeds for r in s.runs.values()]
    arms = [a for a in exp.arms if any(r.arm == a.name for r in runs)]
    claims = []
    for v in verdicts:
        held, told = v.count
        claims.append({"key": v.claim.key, "label": v.claim.label, "arm": v.claim.arm, "paper": v.claim.paper,
                       "direction": v.claim.direction, "held": held, "measured": told,
                       "per_seed": [{"seed": s.seed, "value": cell, "held": h}
                                    for s, cell, h in zip(seeds, v.cells, v.held)]})
    diffs = [{"key": d.difference.key, "label": d.difference.label, "arms": list(d.difference.arms),
              "per_seed": [{"seed": s, "value": _finite(x), "censored": c}
                           for s, x, c in zip(d.seeds, d.values, d.censored)],
              "mean": _finite(d.mean), "lower": _finite(d.lower), "upper": _finite(d.upper),
              "censored_fraction": _finite(d.censored_fraction)} for d in differences]
    keys = sorted({c.key for c in exp.claims} | {k for d in exp.differences for k in [d.key]})
    series = [{"key": key, "label": next((c.label for c in exp.claims if c.key == key), key), "arm": r.arm,
               "seed": r.seed, "x": list(s.x or r.rounds), "y": [_finite(x) for x in s.values],
               "censored": list(s.censored) or [False] * len(s.values)}
              for key in keys for r in runs if key in r.series for s in [r.series[key]]]
    return {"schema": SCHEMA, "experiment": exp.name, "title": exp.title, "source": exp.source,
            "arms": [{"name": a.name, "description": a.description} for a in arms],
            "seeds": [s.seed for s in seeds],
            "runs": [{"arm": r.arm, "seed": r.seed, "run": r.run_dir.name, "path": _relative(r.run_dir, out_dir),
                      "data_seed": r.data_seed} for r in runs],
            "claims": claims, "differences": diffs, "series": series}


def _relative(path: Path, base: Path) -> str:
    """`path` as seen from `base` (the summary page links runs this way)."""
    return Path(os.path.relpath(Path(path).resolve(), Path(base).resolve())).as_posix()


def run_slice(doc: dict[str, Any], run: dict[str, Any]) -> dict[str, Any]:
    """The part of a dynamics document about one run (its seed's cells, its own series), for the
    run's `experiment.json` (its report shows it)."""
    seed = run["seed"]
    claims = [{**c, "per_seed": [p for p in c["per_seed"] if p["seed"] == seed]} for c in doc["claims"]]
    return {**doc, "seeds": [seed], "runs": [run],
            "claims": [{**c, "held": sum(bool(p["held"]) for p in c["per_seed"]),
                        "measured": sum(p["held"] is not None for p in c["per_seed"])} for c in claims],
            "differences": [{**d, "per_seed": [p for p in d["per_seed"] if p["seed"] == seed]}
                            for d in doc["differences"]],
            "series": [s for s in doc["series"] if s["seed"] == seed and s["arm"] == run["arm"]]}


def write_dynamics(doc: dict[str, Any], out_dir: Path) -> Path:
    """`<out_dir>/dynamics.json`, written whole (a temp file renamed)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "dynamics.json"
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(doc, indent=1, allow_nan=False))
    tmp.replace(path)
    return path


def write_csv(rows: Sequence[dict[str, Any]], path: Path, columns: Sequence[str]) -> Path:
    """A game's own table as CSV: one row per dict, `columns` in order (other keys left out), floats
    to 5 decimals, missing values empty."""
    with open(path, "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(columns), extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({c: "" if r.get(c) is None else round(r[c], 5) if isinstance(r[c], float) else r[c]
                        for c in columns})
    return path
