"""A round's league state as data the views can trust, and as one line of text.

`read_league(summary["league"])` checks the state a round summary holds (`League.after_round`:
read back from `arena.db` or `events.jsonl`, so untrusted) into a `LeagueState`: a part of the
wrong type or length is None (missing), never an error; a state without a list of members is
None as a whole. `league_text` is the one line the live view and the plain log show per round:

    league nash · pool 5 · this round: r2 41% (26) · init 30% (19) · r0 20% (12) · +1 more ·
    exploitability 1.72 · meta_exploitability 0.206 · exploiter_nash_conv 0.35 [0.2, 0.5] (3 seeds)

(one line; wrapped here). `pool` counts the members after the round's checkpoint joined; the
members listed are those the round drew from, by the weight it drew them with (`used_weights`),
with the episodes each played (`counts`). No arena module beyond `arena.league.meta` is imported:
`arena.report` reads league states through it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from arena.league.meta import META_RULES

TOP = 3
"""How many of the round's opponents `league_text` names (the rest are counted)."""


@dataclass(frozen=True)
class Exploiters:
    """NashConv estimated by exploiter agents trained against the round's policies (optional)."""

    nash_conv: float | None
    low: float | None
    high: float | None
    """The 95% interval over exploiter seeds."""
    gains: tuple[float, ...] | None
    seeds: int | None
    steps: int | None


@dataclass(frozen=True)
class LeagueState:
    """One round's league, checked. Lists that do not fit the members are None."""

    rule: str
    learner: str
    opponent: str
    labels: tuple[str, ...]
    """The members after the round's checkpoint joined."""
    used_weights: tuple[float, ...] | None
    """This round's weights: one per member before the checkpoint joined."""
    counts: tuple[int, ...] | None
    """Episodes played against each of those members this round."""
    weights: tuple[float, ...] | None
    """The next round's weights, one per member."""
    payoff: tuple[tuple[float, ...], ...] | None
    """The meta-game (n x n, row member in the learner's seat); None under a rule that does not play it."""
    win: tuple[tuple[float, ...], ...] | None
    exploitability: float | None
    meta_exploitability: float | None
    exploiters: Exploiters | None

    def played(self) -> list[tuple[str, float | None, int | None]]:
        """(label, weight, episodes) of each member this round drew from, in pool order."""
        n = len(self.used_weights) if self.used_weights is not None else \
            len(self.counts) if self.counts is not None else 0
        return [(self.labels[i], None if self.used_weights is None else self.used_weights[i],
                 None if self.counts is None else self.counts[i]) for i in range(n)]


def number(x: Any) -> float | None:
    """A finite number, else None (strings, booleans, NaN, missing)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)):
        return None
    return float(x) if math.isfinite(x) else None


def _numbers(x: Any, n: int | None = None) -> tuple[float, ...] | None:
    """A list of finite numbers (of length n, if given), else None."""
    if not isinstance(x, list) or (n is not None and len(x) != n):
        return None
    values = [number(v) for v in x]
    return None if any(v is None for v in values) else tuple(v for v in values if v is not None)


def _counts(x: Any, n: int | None) -> tuple[int, ...] | None:
    values = _numbers(x, n)
    if values is None or any(v < 0 or not v.is_integer() for v in values):
        return None
    return tuple(int(v) for v in values)


def _matrix(x: Any, n: int) -> tuple[tuple[float, ...], ...] | None:
    if not isinstance(x, list) or len(x) != n:
        return None
    rows = [_numbers(row, n) for row in x]
    return None if any(r is None for r in rows) else tuple(r for r in rows if r is not None)


def _count(x: Any) -> int | None:
    v = number(x)
    return int(v) if v is not None and v >= 0 and v.is_integer() else None


def _exploiters(x: Any) -> Exploiters | None:
    if not isinstance(x, dict):
        return None
    return Exploiters(number(x.get("nash_conv")), number(x.get("low")), number(x.get("high")),
                      _numbers(x.get("gains")), _count(x.get("seeds")), _count(x.get("steps")))


def _text(x: Any, default: str = "?") -> str:
    return x if isinstance(x, str) else default


def read_league(x: Any) -> LeagueState | None:
    """`summary["league"]` checked into a `LeagueState`; None when it holds no list of members."""
    if not isinstance(x, dict) or not isinstance(x.get("members"), list) or not x["members"]:
        return None
    labels = tuple(_text(m.get("label"), f"#{i}") if isinstance(m, dict) else f"#{i}"
                   for i, m in enumerate(x["members"]))
    n = len(labels)
    used = _numbers(x.get("used_weights"))
    used = used if used is not None and len(used) <= n else None
    counts = _counts(x.get("counts"), None if used is None else len(used))
    counts = counts if counts is not None and len(counts) <= n else None
    rule = _text(x.get("rule"))
    played = rule in META_RULES
    return LeagueState(rule, _text(x.get("learner")), _text(x.get("opponent")), labels, used, counts,
                       _numbers(x.get("weights"), n), _matrix(x.get("payoff"), n) if played else None,
                       _matrix(x.get("win"), n) if played else None, number(x.get("exploitability")),
                       number(x.get("meta_exploitability")), _exploiters(x.get("exploiters")))


def percent(w: float | None) -> str:
    """A weight as a share: `41%`; `<1%` for a small positive one (not a misleading `0%`)."""
    if w is None:
        return "–"
    return "<1%" if 0 < w < 0.005 else f"{w:.0%}"


def g3(x: float | None) -> str:
    return "–" if x is None else f"{x:.3g}"


def interval(mean: float | None, low: float | None, high: float | None) -> str:
    """`0.35 [0.2, 0.5]`; the bounds only when both are there."""
    bounds = f" [{g3(low)}, {g3(high)}]" if low is not None and high is not None else ""
    return g3(mean) + bounds


def league_text(league: Any, top: int = TOP) -> str:
    """One line for a round's `summary["league"]` ('' when it holds no readable league)."""
    s = read_league(league)
    if s is None:
        return ""
    parts = [f"league {s.rule}", f"pool {len(s.labels)}"]
    drawn = [(label, w, c) for label, w, c in s.played() if (w or 0) > 0 or (c or 0) > 0]
    drawn.sort(key=lambda p: (-(p[1] or 0.0), -(p[2] or 0)))  # stable: pool order among equals
    shown = [" ".join(x for x in (label, None if w is None else percent(w), None if c is None else f"({c})") if x)
             for label, w, c in drawn[:top]]
    if shown:
        parts.append("this round: " + shown[0])
        parts += shown[1:]
    if len(drawn) > top:
        parts.append(f"+{len(drawn) - top} more")
    if s.exploitability is not None:
        parts.append(f"exploitability {g3(s.exploitability)}")
    if s.meta_exploitability is not None:
        parts.append(f"meta_exploitability {g3(s.meta_exploitability)}")
    x = s.exploiters
    if x is not None and x.nash_conv is not None:
        seeds = f" ({x.seeds} seeds)" if x.seeds is not None else ""
        parts.append(f"exploiter_nash_conv {interval(x.nash_conv, x.low, x.high)}{seeds}")
    return " · ".join(parts)
