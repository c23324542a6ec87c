"""Ratings as pure functions over match arrays: no game, no store, no UI.

A table of M pairwise matches between `n` players is three aligned arrays:

    a      (M,) int    index of the first player
    b      (M,) int    index of the second player
    score  (M,) float  what `a` scored: 1 = a won, 0.5 = draw, 0 = b won

Views computed from it:

- `bradley_terry`: maximum-likelihood Bradley–Terry strengths θ with a small
  Gaussian (L2) prior, P(i beats j) = σ(θ_i − θ_j). A draw counts as half a win
  each way. The prior keeps the fit finite when a player never loses (without
  it the likelihood increases forever as θ → ∞) and pins players with no
  matches at the mean.
- `bootstrap_bradley_terry`: 95% percentile intervals by resampling matches
  with replacement and refitting, as Chatbot Arena does (or whole clusters of
  matches, e.g. all comparisons made on one episode seed); the RNG is an
  explicit `numpy.random.Generator`. `rounds=0` gives NaN intervals.
- `elo`: the online Elo view, updating in the order the matches are given.
- `payoff_matrix` / `mean_ci`: mean payoff per (row agent, column agent) cell
  with normal-approximation 95% intervals, or (`interval="bounded"`) intervals
  that stay inside the range of the payoffs: `bounded_mean_ci`, which uses the
  Wilson score interval (`wilson_interval`) for two-valued payoffs (win/loss,
  right/wrong) and the bootstrap percentile interval of the mean
  (`bootstrap_mean_ci`) otherwise. A normal interval of a reward bounded by -1
  can reach -1.06; neither of these can leave [min, max] of the data.

The Elo-like scale used for reporting is

    rating = 1000 + (400 / ln 10) · θ

so a 400-point gap means 10:1 odds, as in chess Elo. θ is anchored so that its
mean over all players is 0 (rating mean 1000). With equal L2 weight on every
player the penalised optimum already satisfies Σθ = 0 (each match moves the
gradient of the two players by equal and opposite amounts), so the anchor costs
nothing; `bradley_terry` re-centres anyway so the statement is exact.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

ELO_BASE = 1000.0
ELO_SCALE = 400.0 / math.log(10.0)
"""Elo points per unit of θ (natural-log odds): 400 / ln 10 ≈ 173.7."""

DEFAULT_L2 = 0.01
"""Default prior precision on θ: θ ~ N(0, 1/0.01), i.e. a prior sd of 10 logits
(≈ 1737 Elo points). Weak next to any real number of matches — with 40 matches
between two players it moves ln(w/l) by well under 1% — yet enough to keep an
undefeated player finite."""


# --------------------------------------------------------------------------- #
# Match tables
# --------------------------------------------------------------------------- #


def _check_matches(a, b, score, n_players: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a = np.asarray(a, dtype=np.int64).reshape(-1)
    b = np.asarray(b, dtype=np.int64).reshape(-1)
    score = np.asarray(score, dtype=np.float64).reshape(-1)
    if not (a.shape == b.shape == score.shape):
        raise ValueError(f"a, b, score must have the same length, got {a.shape}, {b.shape}, {score.shape}")
    if a.size and (a.min() < 0 or b.min() < 0 or a.max() >= n_players or b.max() >= n_players):
        raise ValueError(f"player index out of range for n_players={n_players}")
    if np.any(a == b):
        raise ValueError("a player cannot play itself")
    if np.any((score < 0) | (score > 1)) or np.any(~np.isfinite(score)):
        raise ValueError("score must lie in [0, 1]")
    return a, b, score


def win_matrix(a, b, score, n_players: int, weights=None) -> np.ndarray:
    """W (n, n): W[i, j] = points i scored against j (a draw gives ½ to each).

    `weights` (M,) multiplies each match (bootstrap resampling counts).
    W + W.T is the number of matches between each pair.
    """
    a, b, score = _check_matches(a, b, score, n_players)
    w = np.ones_like(score) if weights is None else np.asarray(weights, dtype=np.float64)
    W = np.zeros((n_players, n_players))
    np.add.at(W, (a, b), w * score)
    np.add.at(W, (b, a), w * (1.0 - score))
    return W


# --------------------------------------------------------------------------- #
# Bradley–Terry
# --------------------------------------------------------------------------- #


def _log_sigmoid(x: np.ndarray) -> np.ndarray:
    return -np.logaddexp(0.0, -x)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _bt_objective(theta: np.ndarray, W: np.ndarray, l2: float) -> np.ndarray:
    """Penalised log-likelihood. theta (..., n), W (..., n, n) -> (...)."""
    d = theta[..., :, None] - theta[..., None, :]  # (..., n, n): θi − θj
    return (W * _log_sigmoid(d)).sum(axis=(-2, -1)) - 0.5 * l2 * (theta**2).sum(axis=-1)


def fit_bradley_terry(W: np.ndarray, *, l2: float = DEFAULT_L2, tol: float = 1e-9,
                      max_iter: int = 100) -> np.ndarray:
    """θ (..., n) maximising Σ W_ij log σ(θi − θj) − (l2/2)‖θ‖², batched over leading dims.

    Damped Newton: the objective is strictly concave for l2 > 0, so Newton with
    a backtracking (Armijo) step converges from θ = 0 in a handful of steps.
    Stops when no θ moves by more than `tol`. θ is returned centred (mean 0).
    """
    if l2 <= 0:
        raise ValueError("l2 must be > 0 (it keeps the fit finite and identifiable)")
    W = np.asarray(W, dtype=np.float64)
    n = W.shape[-1]
    N = W + np.swapaxes(W, -1, -2)  # (..., n, n) matches per pair
    theta = np.zeros(W.shape[:-1])  # (..., n)
    eye = np.eye(n)
    for _ in range(max_iter):
        p = _sigmoid(theta[..., :, None] - theta[..., None, :])  # (..., n, n) P(i beats j)
        grad = (W - N * p).sum(axis=-1) - l2 * theta  # (..., n)
        c = N * p * (1.0 - p)  # (..., n, n) curvature of each pair
        hess = c - eye * (c.sum(axis=-1)[..., None] + l2)  # negative definite
        delta = -np.linalg.solve(hess, grad[..., None])[..., 0]  # (..., n) Newton direction
        f0 = _bt_objective(theta, W, l2)
        slope = (grad * delta).sum(axis=-1)  # (...) >= 0: ascent direction
        step = np.ones(f0.shape)
        for _ in range(40):  # halve the step where the Armijo condition fails
            bad = _bt_objective(theta + step[..., None] * delta, W, l2) < f0 + 1e-4 * step * slope
            if not bad.any():
                break
            step = np.where(bad, step / 2, step)
        move = step[..., None] * delta
        theta = theta + move
        if np.max(np.abs(move), initial=0.0) < tol:
            break
    return theta - theta.mean(axis=-1, keepdims=True)


def to_elo_scale(theta: np.ndarray) -> np.ndarray:
    """θ (natural-log odds) -> Elo-like points, mean-θ 0 maps to 1000."""
    return ELO_BASE + ELO_SCALE * np.asarray(theta)


def bradley_terry(a, b, score, n_players: int, *, l2: float = DEFAULT_L2) -> np.ndarray:
    """Ratings (n,) on the Elo-like scale from a match table (see module doc)."""
    return to_elo_scale(fit_bradley_terry(win_matrix(a, b, score, n_players), l2=l2))


@dataclass(frozen=True)
class RatingsCI:
    """Point ratings and bootstrap percentile intervals, all on the Elo-like scale."""

    rating: np.ndarray
    """(n,) BT fit on all matches."""
    lower: np.ndarray
    """(n,) 2.5th percentile of the bootstrap ratings."""
    upper: np.ndarray
    """(n,) 97.5th percentile of the bootstrap ratings."""
    samples: np.ndarray
    """(rounds, n) one BT fit per bootstrap resample."""


def bootstrap_bradley_terry(a, b, score, n_players: int, *, rng: np.random.Generator,
                            rounds: int = 1000, l2: float = DEFAULT_L2, level: float = 0.95,
                            groups=None) -> RatingsCI:
    """Bradley–Terry with bootstrap percentile intervals (Chatbot Arena's method).

    Each round draws M matches with replacement from the M given and refits.
    Drawing with replacement is done as one multinomial count per distinct
    (a, b, score) row, which is the same distribution and keeps the refits to
    (rounds, n, n) arrays however many matches there are.

    `groups` (M,) optional cluster ids: resample whole clusters instead of
    single matches (a cluster bootstrap). Use it when matches are not
    independent, e.g. many comparisons made on the same episode seed.
    """
    a, b, score = _check_matches(a, b, score, n_players)
    rating = bradley_terry(a, b, score, n_players, l2=l2)
    m = a.size
    if m == 0 or rounds <= 0:
        samples = np.tile(rating, (max(rounds, 0), 1))
    elif groups is None:
        rows, inverse = np.unique(np.stack([a, b, score]), axis=1, return_inverse=True)
        freq = np.bincount(inverse.reshape(-1), minlength=rows.shape[1]) / m
        counts = rng.multinomial(m, freq, size=rounds)  # (rounds, distinct rows)
        ra, rb, rs = rows[0].astype(np.int64), rows[1].astype(np.int64), rows[2]
        W = np.zeros((rounds, n_players, n_players))
        for k in range(rows.shape[1]):  # distinct rows: at most 3 · n² of them
            W[:, ra[k], rb[k]] += counts[:, k] * rs[k]
            W[:, rb[k], ra[k]] += counts[:, k] * (1.0 - rs[k])
        samples = to_elo_scale(fit_bradley_terry(W, l2=l2))
    else:
        g = np.asarray(groups).reshape(-1)
        if g.shape != a.shape:
            raise ValueError(f"groups must have one id per match, got {g.shape} for {a.shape}")
        _, gid = np.unique(g, return_inverse=True)
        gid = gid.reshape(-1)
        n_groups = int(gid.max()) + 1
        Wg = np.zeros((n_groups, n_players, n_players))  # one win matrix per cluster
        np.add.at(Wg, (gid, a, b), score)
        np.add.at(Wg, (gid, b, a), 1.0 - score)
        counts = rng.multinomial(n_groups, np.full(n_groups, 1.0 / n_groups), size=rounds)
        W = np.einsum("rg,gij->rij", counts.astype(np.float64), Wg)  # (rounds, n, n)
        samples = to_elo_scale(fit_bradley_terry(W, l2=l2))
    if samples.shape[0] == 0:
        lower = upper = np.full(n_players, np.nan)
    else:
        alpha = (1.0 - level) / 2.0
        lower, upper = np.quantile(samples, [alpha, 1.0 - alpha], axis=0)
    return RatingsCI(rating=rating, lower=lower, upper=upper, samples=samples)


# --------------------------------------------------------------------------- #
# Online Elo
# --------------------------------------------------------------------------- #


def elo(a, b, score, n_players: int, *, k: float = 32.0, initial: float = ELO_BASE,
        scale: float = 400.0) -> np.ndarray:
    """Online Elo ratings (n,) after playing the matches in the order given.

    Expected score E_a = 1 / (1 + 10^((R_b − R_a)/scale)); then
    R_a += k (s − E_a), R_b −= k (s − E_a). Order-dependent by design: it is the
    "who is hot now" view; Bradley–Terry is the order-free one.
    """
    a, b, score = _check_matches(a, b, score, n_players)
    r = np.full(n_players, float(initial))
    for i, j, s in zip(a.tolist(), b.tolist(), score.tolist()):
        expected = 1.0 / (1.0 + 10.0 ** ((r[j] - r[i]) / scale))
        r[i] += k * (s - expected)
        r[j] -= k * (s - expected)
    return r


# --------------------------------------------------------------------------- #
# Payoffs
# --------------------------------------------------------------------------- #


@dataclass(frozen=True)
class MeanCI:
    """Means with intervals; arrays share one shape."""

    mean: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    count: np.ndarray
    """Number of samples behind each mean (NaN mean where 0)."""
    method: str = "normal"
    """How the intervals were made: `normal` (mean ± z·s/√n), `wilson` (two-valued data),
    `bootstrap` (percentile interval of resampled means)."""


def _normal_ci(total: np.ndarray, total_sq: np.ndarray, count: np.ndarray, z: float) -> MeanCI:
    """mean ± z · s/√n with the sample sd (ddof=1). NaN interval where n < 2."""
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
        var = (total_sq - count * mean**2) / (count - 1)
        var = np.where(count > 1, np.maximum(var, 0.0), np.nan)
        half = z * np.sqrt(var / count)
    return MeanCI(mean=mean, lower=mean - half, upper=mean + half, count=count)


def mean_ci(values, groups, n_groups: int, *, z: float = 1.959963984540054) -> MeanCI:
    """Mean of `values` per group (n_groups,) with normal-approximation CIs."""
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    g = np.asarray(groups, dtype=np.int64).reshape(-1)
    count = np.bincount(g, minlength=n_groups).astype(np.float64)
    total = np.bincount(g, weights=v, minlength=n_groups)
    total_sq = np.bincount(g, weights=v * v, minlength=n_groups)
    return _normal_ci(total, total_sq, count, z)


def z_of(level: float) -> float:
    """The standard normal quantile of a two-sided interval: z_of(0.95) = 1.95996..."""
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    return NormalDist().inv_cdf(0.5 + level / 2)


def wilson_interval(successes, n, *, level: float = 0.95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval of a proportion: `successes` out of `n` (arrays, broadcast).

        centre = (p + z²/2n) / (1 + z²/n)
        half   = z / (1 + z²/n) · sqrt(p(1−p)/n + z²/4n²)

    Always inside [0, 1], and not of zero width at p = 0 or 1 (where the normal
    interval collapses): 10/10 gives [0.722, 1]. NaN where n = 0.
    """
    k = np.asarray(successes, dtype=np.float64)
    n = np.asarray(n, dtype=np.float64)
    z = z_of(level)
    with np.errstate(invalid="ignore", divide="ignore"):
        p = k / n
        denom = 1.0 + z * z / n
        centre = (p + z * z / (2 * n)) / denom
        half = z / denom * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
        lower, upper = np.clip(centre - half, 0.0, 1.0), np.clip(centre + half, 0.0, 1.0)
    bad = ~(n > 0)
    return np.where(bad, np.nan, lower), np.where(bad, np.nan, upper)


def bootstrap_mean_ci(values, groups, n_groups: int, *, rng: np.random.Generator, rounds: int = 1000,
                      level: float = 0.95) -> MeanCI:
    """Mean of `values` per group (n_groups,) with bootstrap percentile intervals.

    Each group's values are resampled with replacement `rounds` times; the interval is the
    (α/2, 1−α/2) quantiles of the resampled means, so it never leaves [min, max] of the
    group's values. NaN interval where a group has fewer than 2 values or `rounds` is 0.
    """
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    g = np.asarray(groups, dtype=np.int64).reshape(-1)
    count = np.bincount(g, minlength=n_groups).astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, np.bincount(g, weights=v, minlength=n_groups) / np.maximum(count, 1), np.nan)
    lower, upper = np.full(n_groups, np.nan), np.full(n_groups, np.nan)
    alpha = (1.0 - level) / 2.0
    for k in range(n_groups) if rounds > 0 else ():
        x = v[g == k]
        if x.size < 2:
            continue
        means = x[rng.integers(0, x.size, size=(rounds, x.size))].mean(axis=1)  # (rounds,)
        lower[k], upper[k] = np.quantile(means, [alpha, 1.0 - alpha])
    return MeanCI(mean=mean, lower=lower, upper=upper, count=count, method="bootstrap")


def bounded_mean_ci(values, groups, n_groups: int, *, rng: np.random.Generator, rounds: int = 1000,
                    level: float = 0.95) -> MeanCI:
    """Mean per group with intervals inside the range of the data.

    Two-valued data (every value is `lo` or `hi`: win/loss, right/wrong, ±1 rewards): the
    Wilson interval of the share of `hi`, mapped onto [lo, hi]. One distinct value: the
    interval is that value. Otherwise `bootstrap_mean_ci`. Whether the data are two-valued
    is decided over all groups together, so every group of one table gets the same method.
    """
    v = np.asarray(values, dtype=np.float64).reshape(-1)
    g = np.asarray(groups, dtype=np.int64).reshape(-1)
    distinct = np.unique(v)
    if distinct.size > 2:
        return bootstrap_mean_ci(v, g, n_groups, rng=rng, rounds=rounds, level=level)
    count = np.bincount(g, minlength=n_groups).astype(np.float64)
    lo, hi = (distinct[0], distinct[-1]) if distinct.size else (0.0, 0.0)
    k = np.bincount(g, weights=(v == hi).astype(np.float64), minlength=n_groups) if hi != lo else count
    p_lo, p_hi = wilson_interval(k, count, level=level)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(count > 0, lo + (hi - lo) * k / np.maximum(count, 1), np.nan)
    return MeanCI(mean=mean, lower=lo + (hi - lo) * p_lo, upper=lo + (hi - lo) * p_hi, count=count, method="wilson")


def payoff_matrix(rows, cols, payoff, n_rows: int, n_cols: int, *,
                  z: float = 1.959963984540054, interval: str = "normal",
                  rng: np.random.Generator | None = None, rounds: int = 1000) -> MeanCI:
    """Cross-play matrix: mean payoff of row agent vs column agent, (n_rows, n_cols).

    One sample per episode: `rows[m]`, `cols[m]` are the two agents' indices
    and `payoff[m]` what the row agent was paid. Per-cell intervals
    (episodes are i.i.d. given the pairing):
    - `interval="normal"`: mean ± 1.96 · s/√n; NaN where a cell has fewer than 2 episodes;
    - `interval="bounded"`: `bounded_mean_ci` with `rng` and `rounds` (inside the payoffs' range).
    """
    r = np.asarray(rows, dtype=np.int64).reshape(-1)
    c = np.asarray(cols, dtype=np.int64).reshape(-1)
    if interval == "normal":
        ci = mean_ci(payoff, r * n_cols + c, n_rows * n_cols, z=z)
    elif interval == "bounded":
        if rng is None:
            raise ValueError("interval='bounded' needs an explicit rng")
        ci = bounded_mean_ci(payoff, r * n_cols + c, n_rows * n_cols, rng=rng, rounds=rounds)
    else:
        raise ValueError(f"interval must be 'normal' or 'bounded', not {interval!r}")
    shape = (n_rows, n_cols)
    return MeanCI(mean=ci.mean.reshape(shape), lower=ci.lower.reshape(shape),
                  upper=ci.upper.reshape(shape), count=ci.count.reshape(shape), method=ci.method)


T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262}
"""Two-sided 95% quantiles of Student's t by degrees of freedom (1.96 beyond)."""


def t_interval(values) -> tuple[float, float]:
    """(mean, half-width of the 95% Student-t interval over `values`, e.g. seeds; NaN with one)."""
    v = np.asarray(values, float)
    if len(v) < 2:
        return float(v.mean()), float("nan")
    return float(v.mean()), T95.get(len(v) - 1, 1.96) * float(v.std(ddof=1)) / math.sqrt(len(v))
