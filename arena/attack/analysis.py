"""Pure analysis of attacks: when an attack exploited its target, and per-round summaries over seeds."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from arena.ratings import bootstrap_mean_ci


def window_means(successes: Sequence[float], window: int) -> list[float]:
    """Mean of the last `window` successes at each step (fewer at the start)."""
    xs = list(successes)
    return [float(np.mean(xs[max(0, t + 1 - window):t + 1])) for t in range(len(xs))]


def steps_to_exploit(successes: Sequence[float], threshold: float, window: int) -> int | None:
    """The first step (1-based) whose window mean reaches `threshold`; None if none did.

    A window mean is only taken once `window` steps exist, so that one lucky first batch
    is not an exploit.
    """
    means = window_means(successes, window)
    for t, m in enumerate(means):
        if t + 1 >= window and m >= threshold:
            return t + 1
    return None


@dataclass(frozen=True)
class RoundSummary:
    """One round's target over its attack seeds."""

    round: int
    seeds: int
    exploited: int
    """Seeds whose attack exploited the target within the budget."""
    steps: float
    """Mean steps-to-exploit, a seed that never exploited counting as the budget (a lower bound then)."""
    steps_lower: float
    steps_upper: float
    success: float
    """Mean success at the end of the attack (window mean at the last step played)."""
    success_lower: float
    success_upper: float
    budget: int

    @property
    def censored(self) -> bool:
        return self.exploited < self.seeds


def summarize(units: Sequence[dict[str, Any]], budget: int, *, rng_seed: int = 0,
              rounds: int = 2000) -> list[RoundSummary]:
    """Per-round summaries of unit records `{round, seed, steps_to_exploit, final_success}`,
    with 95% bootstrap intervals over seeds (NaN with a single seed)."""
    by_round: dict[int, list[dict[str, Any]]] = {}
    for u in units:
        by_round.setdefault(int(u["round"]), []).append(u)
    out = []
    rng = np.random.default_rng(rng_seed)
    for k in sorted(by_round):
        us = sorted(by_round[k], key=lambda u: u["seed"])
        steps = np.array([budget if u["steps_to_exploit"] is None else u["steps_to_exploit"] for u in us], float)
        success = np.array([u["final_success"] for u in us], float)
        zeros = np.zeros(len(us), int)
        sci = bootstrap_mean_ci(steps, zeros, 1, rng=rng, rounds=rounds)
        uci = bootstrap_mean_ci(success, zeros, 1, rng=rng, rounds=rounds)
        out.append(RoundSummary(k, len(us), int(sum(u["steps_to_exploit"] is not None for u in us)),
                                float(sci.mean[0]), float(sci.lower[0]), float(sci.upper[0]),
                                float(uci.mean[0]), float(uci.lower[0]), float(uci.upper[0]), budget))
    return out


def trend(summaries: Sequence[RoundSummary]) -> str:
    """`rises`, `falls` or `flat`: steps-to-exploit from the first round to the last."""
    if len(summaries) < 2:
        return "flat"
    a, b = summaries[0].steps, summaries[-1].steps
    return "rises" if b > a else "falls" if b < a else "flat"
