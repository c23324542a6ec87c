"""A tournament's analysis: ratings per seat group and cross-play matrices from match records.

Pure functions of a `Plan` and its `MatchRecord`s (the rating math is in
`arena.ratings`); no files, no database, no terminal.
"""
from __future__ import annotations

import itertools
import math
import re
import string
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from arena import ratings
from arena.tournament.plan import Plan, SeatGroup


@dataclass(frozen=True)
class MatchRecord:
    """One stored episode of one pairing."""

    pairing: str
    seats: dict[str, str]
    """seat -> entrant label."""
    idx: int
    seed: int
    rewards: dict[str, float]


@dataclass
class GroupResult:
    """Ratings of one seat's (or the symmetric seats') entrants."""

    seats: tuple[str, ...]
    labels: list[str]
    keys: list[str]
    specs: list[str]
    reward: ratings.MeanCI
    """Mean reward per entrant over all its episodes in these seats, with 95% CIs inside the
    rewards' range (`ratings.bounded_mean_ci`: Wilson for two-valued rewards, else bootstrap)."""
    bt: ratings.RatingsCI | None
    """Bradley–Terry ratings with bootstrap CIs (None for a single entrant or no matches)."""
    elo: np.ndarray | None
    """Online Elo over the same matches in schedule order."""
    n_matches: int
    method: str
    """`direct` (symmetric seats meet) or `paired` (same opponents, same seed)."""

    @property
    def name(self) -> str:
        return "/".join(self.seats)

    def order(self) -> list[int]:
        """Entrants best first: by BT rating, else by mean reward."""
        score = self.bt.rating if self.bt is not None else np.nan_to_num(self.reward.mean, nan=-np.inf)
        return sorted(range(len(self.labels)), key=lambda i: -score[i])


@dataclass
class CrossPlay:
    """Mean reward of `paid_seat` for row entrant vs column entrant."""

    title: str
    row_seat: str
    col_seat: str
    paid_seat: str
    row_labels: list[str]
    col_labels: list[str]
    cells: ratings.MeanCI
    """(rows, cols) arrays with 95% intervals inside the payoffs' range (`ratings.bounded_mean_ci`)."""
    short: dict[str, str] = field(default_factory=dict)
    """Entrant label -> short label for narrow tables (`short_labels`)."""


@dataclass
class TournamentResult:
    name: str
    game_id: str
    run_dir: Path
    out_dir: Path
    episodes: int
    pairings_total: int
    pairings_done: int
    n_episodes: int
    groups: list[GroupResult]
    crossplay: list[CrossPlay]
    short: dict[str, str] = field(default_factory=dict)
    """Entrant label -> short label (`p3` for prover/round-3) used by the tables, with a legend."""

    def to_json(self) -> dict[str, Any]:
        def arr(x):
            return [[finite_or_none(v) for v in row] for row in np.asarray(x).tolist()] if np.ndim(x) == 2 \
                else [finite_or_none(v) for v in np.asarray(x).tolist()]

        return {
            "name": self.name, "game": self.game_id, "run_dir": str(self.run_dir),
            "episodes_per_pairing": self.episodes, "pairings": self.pairings_total,
            "pairings_done": self.pairings_done, "episodes": self.n_episodes,
            "ratings": [dict(zip(RATING_COLUMNS, row)) for row in rating_rows(self)],
            "short_labels": dict(self.short),
            "reward_interval": {g.name: g.reward.method for g in self.groups},
            "crossplay": [{"title": c.title, "row_seat": c.row_seat, "col_seat": c.col_seat,
                           "paid_seat": c.paid_seat, "rows": c.row_labels, "cols": c.col_labels,
                           "mean": arr(c.cells.mean), "lower": arr(c.cells.lower),
                           "upper": arr(c.cells.upper), "interval": c.cells.method,
                           "episodes": np.asarray(c.cells.count, dtype=int).tolist()}
                          for c in self.crossplay],
        }


RATING_COLUMNS = ["group", "rank", "key", "label", "spec", "bt_rating", "bt_lower", "bt_upper", "elo",
                  "mean_reward", "reward_lower", "reward_upper", "episodes", "method"]


def rating_rows(result: TournamentResult) -> list[list[Any]]:
    """One row per entrant (RATING_COLUMNS), best first within each group."""
    out = []
    for g in result.groups:
        for rank, i in enumerate(g.order(), 1):
            bt = [float(g.bt.rating[i]), float(g.bt.lower[i]), float(g.bt.upper[i])] if g.bt else [None] * 3
            out.append([g.name, rank, g.keys[i], g.labels[i], g.specs[i], *[finite_or_none(x) for x in bt],
                        finite_or_none(float(g.elo[i])) if g.elo is not None else None,
                        finite_or_none(float(g.reward.mean[i])), finite_or_none(float(g.reward.lower[i])),
                        finite_or_none(float(g.reward.upper[i])), int(g.reward.count[i]), g.method])
    return out


def rating_records(result: TournamentResult) -> list[tuple[str, str, float | None, float | None, float | None]]:
    """`(key, method, rating, lower, upper)` per entrant and method, as the store keeps them:
    `bradley-terry` and `elo` (rated groups only) and `mean-reward`."""
    out = []
    for g in result.groups:
        for i, key in enumerate(g.keys):
            if g.bt is not None:
                out.append((key, "bradley-terry",
                            *(finite_or_none(float(x[i])) for x in (g.bt.rating, g.bt.lower, g.bt.upper))))
                out.append((key, "elo", float(g.elo[i]), None, None))
            out.append((key, "mean-reward", *(finite_or_none(float(x[i])) for x in
                                              (g.reward.mean, g.reward.lower, g.reward.upper))))
    return out


def finite_or_none(v: Any) -> Any:
    """None for a non-finite float (an empty cell, an undefined interval), else `v`."""
    return None if isinstance(v, float) and not math.isfinite(v) else v


def _cmp(x: float, y: float) -> float:
    return 1.0 if x > y else (0.0 if x < y else 0.5)


def short_labels(groups: Sequence[tuple[Sequence[str], Sequence[str]]]) -> dict[str, str]:
    """A short label per entrant, for tables that must fit 80 columns (a legend gives the full ones).

    `groups` are `(seats, entrant labels)` per seat group. Each group gets the shortest prefix of
    its first seat's name that tells the groups apart (`p`, `v`); the run's own round-k checkpoints
    are that prefix and k (`p3` = `prover/round-3`), every other entrant the prefix and a letter
    (`va` = `verifier/scripted:constant?value=1`).
    """
    names = [seats[0] for seats, _ in groups]
    width = next((n for n in range(1, max(map(len, names), default=1) + 1)
                  if len({x[:n] for x in names}) == len(set(names))), None)
    out: dict[str, str] = {}
    taken: set[str] = set()
    for (seats, labels), name in zip(groups, names):
        prefix = name[:width] if width else name
        own = re.compile(rf"^(?:{'|'.join(map(re.escape, seats))})/round-(\d+)$")
        letters = (a + b for a in ["", *string.ascii_lowercase] for b in string.ascii_lowercase)
        for label in labels:
            m = own.match(label)
            short = f"{prefix}{m.group(1)}" if m else ""
            while not short or short in taken:  # not a round of this run, or two seats' round k
                short = f"{prefix}{next(letters)}"
            if label not in out:
                out[label] = short
                taken.add(short)
    return out


def analyze(plan: Plan, matches: Sequence[MatchRecord], *, rounds: int = 0,
            rng: np.random.Generator | None = None) -> TournamentResult:
    """Ratings and cross-play matrices from the stored matches of the scheduled pairings.

    `rounds` bootstrap resamples make the intervals (0: none, e.g. live standings mid-tournament,
    except Wilson intervals of two-valued rewards, which need no resampling)."""
    rng = rng if rng is not None else np.random.default_rng(0)
    order = {plan.pairing_id(p): i for i, p in enumerate(plan.pairings())}
    matches = sorted((m for m in matches if m.pairing in order), key=lambda m: (order[m.pairing], m.idx))
    groups = [_rate_group(plan, g, matches, rounds, rng) for g in plan.groups]
    short = short_labels([(g.seats, [e.label for e in g.entrants]) for g in plan.groups])
    crossplay = _crossplay(plan, matches, rounds, rng)
    for c in crossplay:
        c.short = short
    return TournamentResult(plan.name, plan.game_id, plan.run_dir, plan.out_dir, plan.cfg.episodes,
                            len(order), len({m.pairing for m in matches}), len(matches), groups,
                            crossplay, short)


def _rate_group(plan: Plan, g: SeatGroup, matches: list[MatchRecord], rounds: int,
                rng: np.random.Generator) -> GroupResult:
    labels = [e.label for e in g.entrants]
    index = {label: i for i, label in enumerate(labels)}
    who, paid = [], []
    for m in matches:
        for seat in g.seats:
            who.append(index[m.seats[seat]])
            paid.append(m.rewards[seat])
    a, b, s, cluster = [], [], [], []
    if g.symmetric:  # the entrants meet: one match per pair of symmetric seats per episode
        for m in matches:
            for s1, s2 in itertools.combinations(g.seats, 2):
                a.append(index[m.seats[s1]]), b.append(index[m.seats[s2]])
                s.append(_cmp(m.rewards[s1], m.rewards[s2])), cluster.append(m.idx)
    else:  # paired: same opponents, same episode seed
        seat = g.seats[0]
        contexts: dict[tuple, list[tuple[int, float]]] = OrderedDict()
        for m in matches:
            ctx = (tuple(m.seats[x] for x in plan.seat_order if x != seat), m.idx)
            contexts.setdefault(ctx, []).append((index[m.seats[seat]], m.rewards[seat]))
        for (_, idx), played in contexts.items():
            for (i, ri), (j, rj) in itertools.combinations(played, 2):
                a.append(i), b.append(j), s.append(_cmp(ri, rj)), cluster.append(idx)
    bt = elo = None
    if len(labels) > 1 and a:
        bt = ratings.bootstrap_bradley_terry(a, b, s, len(labels), rng=rng, rounds=rounds, groups=cluster)
        elo = ratings.elo(a, b, s, len(labels))
    reward = ratings.bounded_mean_ci(paid, who, len(labels), rng=rng, rounds=rounds)
    return GroupResult(g.seats, labels, [plan.key(x) for x in labels], [e.spec for e in g.entrants],
                       reward, bt, elo, len(a), "direct" if g.symmetric else "paired")


def _crossplay(plan: Plan, matches: list[MatchRecord], rounds: int, rng: np.random.Generator) -> list[CrossPlay]:
    def matrix(rows, cols, pay, n_rows, n_cols) -> ratings.MeanCI:
        return ratings.payoff_matrix(rows, cols, pay, n_rows, n_cols, interval="bounded", rng=rng, rounds=rounds)

    sym = [g for g in plan.groups if g.symmetric]
    if sym:
        g = sym[0]
        labels = [e.label for e in g.entrants]
        index = {x: i for i, x in enumerate(labels)}
        rows, cols, pay = [], [], []
        for m in matches:
            for s1, s2 in itertools.permutations(g.seats, 2):
                rows.append(index[m.seats[s1]]), cols.append(index[m.seats[s2]]), pay.append(m.rewards[s1])
        cells = matrix(rows, cols, pay, len(labels), len(labels))
        return [CrossPlay(f"mean reward of row vs column ({g.name}, both seat orders)", g.name, g.name,
                          g.name, labels, labels, cells)]
    if len(plan.groups) < 2:
        return []
    by_size = sorted(plan.groups, key=lambda g: -len(g.entrants))[:2]
    rg, cg = sorted(by_size, key=lambda g: plan.seat_order.index(g.seats[0]))
    rl, cl = [e.label for e in rg.entrants], [e.label for e in cg.entrants]
    ri, ci = {x: i for i, x in enumerate(rl)}, {x: i for i, x in enumerate(cl)}
    rows = [ri[m.seats[rg.seats[0]]] for m in matches]
    cols = [ci[m.seats[cg.seats[0]]] for m in matches]
    out = []
    for paid in (rg.seats[0], cg.seats[0]):
        cells = matrix(rows, cols, [m.rewards[paid] for m in matches], len(rl), len(cl))
        out.append(CrossPlay(f"mean {paid} reward ({rg.name} rows × {cg.name} columns)", rg.name, cg.name,
                             paid, rl, cl, cells))
    return out
