"""The league's meta-game: pure functions over payoff matrices (no game, no agents, no I/O).

- `solve_zero_sum(A)`: a Nash equilibrium (x, y) of the two-player zero-sum matrix game in which
  the row player gets `A[i, j]` and the column player `-A[i, j]`, by linear programming (a small
  dense simplex with Bland's rule: scipy is not a dependency), exact up to floating point.
- `nash_conv(A, x, y)`: the exploitability of a strategy pair, the sum of both players'
  best-response gains, `(max_i (A y)_i - x A y) + (x A y - min_j (x A)_j)`; 0 exactly at a Nash
  equilibrium. For a symmetric zero-sum game (A = -A^T) played by one mixed strategy p in both
  seats it is `2 max_i (A p)_i`.
- `pfsp_weights(p, power)`: prioritised fictitious self-play (AlphaStar, Vinyals et al. 2019):
  opponent j is drawn with probability proportional to `f(p_j) = (1 - p_j) ** power`, where
  `p_j` is the probability that the learner beats opponent j (draws count half); power 2 is
  AlphaStar's "hard" weighting. Weights that are all zero (the learner beats everyone) fall back
  to uniform.
- `meta_weights(rule, ...)`: the opponent distribution each `--opponents` rule draws from.
- `allocate(total, weights)`: whole-number shares of a fixed budget in proportion to weights
  (largest remainder, ties to the earlier member): how a game that trains on a *mixture* of its
  opponents' data, rather than drawing opponents per episode, follows the same rules (the
  checkability verifier's mixture over past provers: `games/prover_verifier/training.py`).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from arena.types import ArenaError

RULES = ("latest", "uniform", "pfsp", "nash")
"""The `--opponents` rules: the newest checkpoint, uniform over the pool (fictitious self-play),
PFSP, the Nash mixture of the pool's meta-game (PSRO)."""

META_RULES = ("pfsp", "nash")
"""Rules whose weights need the meta-game: under the others its matches are not played (its payoff
matrix stays 0 and its win matrix 0.5, placeholders)."""


def nash_conv(A: np.ndarray, x: Sequence[float], y: Sequence[float]) -> float:
    """Sum of both players' best-response gains against (x, y) in the zero-sum game A (row's payoff)."""
    A, x, y = np.asarray(A, float), np.asarray(x, float), np.asarray(y, float)
    return float((A @ y).max() - (x @ A).min())


def solve_zero_sum(A: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    """(x, y, value): row and column equilibrium strategies and the row player's value x A y.

    The linear programme of the column player, `max sum(q) s.t. B q <= 1, q >= 0` with
    `B = A - min(A) + 1 > 0`, solved by the simplex method (Bland's rule: no cycling); then
    `y = q / sum(q)`, the row strategy `x` is its dual (the slacks' reduced costs, normalised) and
    the value is `1 / sum(q) + min(A) - 1`. Exact up to floating point: `nash_conv(A, x, y)` ~ 1e-12."""
    A = np.asarray(A, float)
    if A.ndim != 2 or 0 in A.shape or not np.isfinite(A).all():
        raise ArenaError(f"a meta-game must be a non-empty finite matrix, not shape {A.shape}")
    m, n = A.shape
    shift = A.min() - 1.0
    T = np.zeros((m + 1, n + m + 1))  # rows: constraints, then the objective; last column: right-hand side
    T[:m, :n] = A - shift
    T[:m, n:n + m] = np.eye(m)
    T[:m, -1] = 1.0
    T[m, :n] = -1.0
    basis = list(range(n, n + m))
    eps = 1e-12
    for _ in range(50 * (n + m) + 100):
        entering = next((j for j in range(n + m) if T[m, j] < -eps), None)
        if entering is None:
            break
        col = T[:m, entering]
        ratios = [(T[i, -1] / col[i], basis[i], i) for i in range(m) if col[i] > eps]
        _, _, r = min(ratios)  # bounded: B > 0 and q >= 0 keep sum(q) <= 1 / min(B)
        T[r] /= T[r, entering]
        for i in range(m + 1):
            if i != r and T[i, entering] != 0.0:
                T[i] -= T[i, entering] * T[r]
        basis[r] = entering
    q = np.zeros(n + m)
    for i, b in enumerate(basis):
        q[b] = T[i, -1]
    total = q[:n].sum()
    y = q[:n] / total
    x = np.maximum(T[m, n:n + m], 0.0)
    x = x / x.sum()
    return x, y, float(1.0 / total + shift)


def pfsp_weights(win_prob: Sequence[float], power: float = 2.0) -> np.ndarray:
    """Opponent probabilities proportional to (1 - p_j) ** power (p_j: the learner's chance to beat j)."""
    p = np.asarray(win_prob, float)
    if p.ndim != 1 or len(p) == 0 or ((p < 0) | (p > 1)).any():
        raise ArenaError("PFSP needs win probabilities in [0, 1], one per opponent")
    f = (1.0 - p) ** power
    return f / f.sum() if f.sum() > 0 else np.full(len(p), 1.0 / len(p))


def meta_weights(rule: str, n: int, *, latest: int, payoff: np.ndarray | None = None,
                 win_prob: Sequence[float] | None = None, power: float = 2.0) -> np.ndarray:
    """The probability of drawing each of the pool's `n` members as the opponent under `rule`.
    `latest`: the index of the newest checkpoint; `payoff`: the pool's meta-game (n x n, the row
    member's payoff against the column member); `win_prob`: the learner's chance to beat each."""
    if rule not in RULES:
        raise ArenaError(f"unknown opponent rule {rule!r}; rules: {', '.join(RULES)}")
    w = np.zeros(n)
    if rule == "latest":
        w[latest] = 1.0
    elif rule == "uniform":
        w[:] = 1.0 / n
    elif rule == "pfsp":
        w = pfsp_weights(win_prob if win_prob is not None else [], power)
    else:
        _, y, _ = solve_zero_sum(np.asarray(payoff, float))
        w = y
    return w


def allocate(total: int, weights: Sequence[float]) -> list[int]:
    """Whole-number shares of `total` proportional to `weights` (largest remainder; ties go to the
    earlier index), summing to `total`. Uniform weights over n give `total // n + (i < total % n)`."""
    w = np.asarray(weights, float)
    if total < 0 or w.ndim != 1 or not len(w) or (w < 0).any() or not np.isfinite(w).all() or w.sum() <= 0:
        raise ArenaError("allocate needs a total >= 0 and non-negative, finite weights with a positive sum")
    exact = total * w / w.sum()
    shares = np.floor(exact + 1e-9).astype(int)
    rest = exact - shares
    for i in sorted(range(len(w)), key=lambda i: (-round(rest[i], 9), i))[:total - int(shares.sum())]:
        shares[i] += 1
    return [int(x) for x in shares]
