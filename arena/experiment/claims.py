"""Judging an experiment: claim builders, verdicts over seeds, paired differences between arms.

Pure functions of `SeedView`s (no files, no terminal). The one rule for a trend: a quantity
*rises* from the first measured round to the last when last > first, *falls* when last < first,
*holds* when last >= first - tolerance. A censored value (a lower bound) counts as at least
itself: it rises past an uncensored smaller first value, but two bounds, or a bound first and a
value last, decide nothing in its favour (`moved`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from arena.experiment.spec import Claim, Difference, RunView, SeedView, Series


def fmt(x: float, censored: bool = False, digits: int = 2) -> str:
    """A figure for a table: `-` when missing, `>=` in front of a lower bound."""
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "-"
    return (">=" if censored else "") + f"{x:.{digits}f}"


def moved(first: tuple[float, bool], last: tuple[float, bool], direction: str, tolerance: float = 0.0) -> bool:
    """Did (value, censored) `first` -> `last` move `direction` (rises / falls / holds)? A censored
    value is a lower bound: only what the bounds prove counts."""
    (a, ca), (b, cb) = first, last
    if direction == "rises":
        return not ca and b > a
    if direction == "falls":
        return not cb and b < a
    if direction == "holds":
        return not ca and b >= a - tolerance - 1e-9
    raise ValueError(f"unknown direction {direction!r}")


def trend(key: str, label: str, paper: str, arm: str, direction: str, *, tolerance: float = 0.0,
          digits: int = 2) -> Claim:
    """The claim that `key` of `arm` moves `direction` from its first measured round to its last."""

    def check(seed: SeedView) -> tuple[str, bool | None]:
        run = seed.runs.get(arm)
        if run is None:
            return "-", None
        series = run.get(key)
        idx = series.measured()
        if len(idx) < 2:
            return "-", None
        first, last = series.at(idx[0]), series.at(idx[-1])
        cell = f"{fmt(*first, digits)} -> {fmt(*last, digits)}"
        return cell, moved(first, last, direction, tolerance)

    return Claim(key, label, paper, check, arm=arm, direction=direction)


def compare(key: str, label: str, paper: str, better: str, worse: str, *, relation: str = "higher",
            round: int = -1, digits: int = 2) -> Claim:
    """The claim that `key` at `round` is higher (or lower) in arm `better` than in arm `worse`."""

    def check(seed: SeedView) -> tuple[str, bool | None]:
        a, b = seed.runs.get(better), seed.runs.get(worse)
        if a is None or b is None:
            return "-", None
        (x, cx), (y, cy) = a.get(key).at(round), b.get(key).at(round)
        if math.isnan(x) or math.isnan(y):
            return "-", None
        held = moved((y, cy), (x, cx), "rises" if relation == "higher" else "falls")
        return f"{fmt(x, cx, digits)} vs {fmt(y, cy, digits)}", held

    return Claim(key, label, paper, check, arm="", direction=f"{better} {relation} than {worse}")


@dataclass
class Verdict:
    """One claim over every seed."""

    claim: Claim
    cells: list[str]
    held: list[bool | None]

    @property
    def count(self) -> tuple[int, int]:
        """(seeds it held on, seeds that could tell)."""
        told = [h for h in self.held if h is not None]
        return sum(told), len(told)


def verdicts(claims: Sequence[Claim], seeds: Sequence[SeedView]) -> list[Verdict]:
    out = []
    for c in claims:
        results = [c.check(s) for s in seeds]
        out.append(Verdict(c, [r[0] for r in results], [None if r[1] is None else bool(r[1]) for r in results]))
    return out


@dataclass
class PairedDifference:
    """`arms[0]` minus `arms[1]` per seed, the mean with a 95% bootstrap interval over seeds, and the
    share of the underlying measurements that are bounds (censored)."""

    difference: Difference
    seeds: list[int]
    values: list[float]
    censored: list[bool]
    mean: float
    lower: float
    upper: float
    censored_fraction: float


def paired(difference: Difference, seeds: Sequence[SeedView], *, rounds: int = 10000,
           rng: np.random.Generator | None = None) -> PairedDifference:
    rng = rng if rng is not None else np.random.default_rng(0)
    a_arm, b_arm = difference.arms
    got, shares = [], []
    for s in seeds:
        a, b = s.runs.get(a_arm), s.runs.get(b_arm)
        if a is None or b is None:
            continue
        (x, cx, sx), (y, cy, sy) = difference.pick(a), difference.pick(b)
        if math.isnan(x) or math.isnan(y):
            continue
        got.append((s.seed, x - y, cx or cy))
        shares += [sx, sy]
    values = np.array([d for _, d, _ in got], dtype=float)
    mean, lower, upper = bootstrap_mean(values, rounds, rng)
    return PairedDifference(difference, [s for s, _, _ in got], values.tolist(), [c for _, _, c in got],
                            mean, lower, upper, float(np.mean(shares)) if shares else float("nan"))


def bootstrap_mean(values: np.ndarray, rounds: int, rng: np.random.Generator) -> tuple[float, float, float]:
    """Mean of `values` and its 95% percentile-bootstrap interval (NaNs without values; the mean
    itself for one value)."""
    if values.size == 0:
        return float("nan"), float("nan"), float("nan")
    if values.size == 1:
        return float(values[0]), float(values[0]), float(values[0])
    draws = values[rng.integers(0, values.size, size=(rounds, values.size))].mean(axis=1)
    return float(values.mean()), float(np.quantile(draws, 0.025)), float(np.quantile(draws, 0.975))


def last_round(key: str) -> Callable[[RunView], tuple[float, bool, float]]:
    """`Difference.pick` for the last round's value of `key` (its share of bounds: the series' own
    `<key>_censored_share` series when the run has one, else 1 or 0)."""

    def pick(run: RunView) -> tuple[float, bool, float]:
        value, censored = run.get(key).at(-1)
        share_series: Series = run.series.get(f"{key}_censored_share", Series(()))
        share, _ = share_series.at(-1)
        return value, censored, (float(censored) if math.isnan(share) else share)

    return pick
