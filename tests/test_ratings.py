"""Rating math on hand-made match tables with known answers."""
from __future__ import annotations

import math

import numpy as np
import pytest

from arena import ratings as R


def table(*rows: tuple[int, int, float, int]):
    """(a, b, score, times) rows -> the three match arrays."""
    a, b, s = [], [], []
    for i, j, score, times in rows:
        a += [i] * times
        b += [j] * times
        s += [score] * times
    return np.array(a), np.array(b), np.array(s, dtype=float)


def theta_diff(ratings, i=0, j=1):
    return (ratings[i] - ratings[j]) / R.ELO_SCALE


def test_two_players_closed_form():
    # Two players, `wins` wins and `losses` losses: the MLE is θ0 − θ1 = ln(wins/losses).
    wins, losses = 30, 10
    a, b, s = table((0, 1, 1.0, wins), (0, 1, 0.0, losses))
    exact = math.log(wins / losses)
    nearly_no_prior = R.bradley_terry(a, b, s, 2, l2=1e-9)
    assert theta_diff(nearly_no_prior) == pytest.approx(exact, abs=1e-6)
    # With the default prior, d solves wins − (wins+losses)σ(d) = l2·d/2 (θ = ±d/2): a little shrunk.
    d = theta_diff(R.bradley_terry(a, b, s, 2))
    assert d < exact
    assert wins - (wins + losses) / (1 + math.exp(-d)) == pytest.approx(R.DEFAULT_L2 * d / 2, abs=1e-8)
    assert d == pytest.approx(exact, rel=0.01)


def test_draws_count_half_each_way():
    # 10 wins + 20 draws = 20 points of 30 against 10 losses + 20 draws = 10 points.
    a, b, s = table((0, 1, 1.0, 10), (0, 1, 0.5, 20))
    assert theta_diff(R.bradley_terry(a, b, s, 2, l2=1e-9)) == pytest.approx(math.log(2), abs=1e-6)


def test_mean_anchored_at_1000():
    a, b, s = table((0, 1, 1.0, 7), (1, 2, 1.0, 5), (2, 0, 0.0, 3), (1, 0, 1.0, 2))
    assert R.bradley_terry(a, b, s, 4).mean() == pytest.approx(1000.0)


def transitive(times: int):
    # Player i beats player j (i < j) with probability rising in j − i.
    rows = []
    for i in range(4):
        for j in range(i + 1, 4):
            wins = (2 + (j - i)) * times
            rows += [(i, j, 1.0, wins), (i, j, 0.0, 2 * times)]
    return table(*rows)


def test_transitive_players_are_ordered():
    a, b, s = transitive(3)
    r = R.bradley_terry(a, b, s, 4)
    assert list(np.argsort(-r)) == [0, 1, 2, 3]
    ci = R.bootstrap_bradley_terry(a, b, s, 4, rng=np.random.default_rng(0), rounds=200)
    assert np.all(ci.lower <= ci.rating) and np.all(ci.rating <= ci.upper)
    assert list(np.argsort(-ci.rating)) == [0, 1, 2, 3]


def test_equal_players_have_overlapping_intervals():
    # Players 0 and 1 split their games; both beat player 2 equally often.
    a, b, s = table((0, 1, 1.0, 10), (0, 1, 0.0, 10), (0, 2, 1.0, 12), (0, 2, 0.0, 4),
                    (1, 2, 1.0, 12), (1, 2, 0.0, 4))
    ci = R.bootstrap_bradley_terry(a, b, s, 3, rng=np.random.default_rng(1), rounds=300)
    assert ci.rating[0] == pytest.approx(ci.rating[1], abs=1e-6)
    assert ci.lower[0] < ci.upper[1] and ci.lower[1] < ci.upper[0]


def test_intervals_narrow_as_matches_are_added():
    widths = []
    for times in (1, 4, 16):
        a, b, s = transitive(times)
        ci = R.bootstrap_bradley_terry(a, b, s, 4, rng=np.random.default_rng(2), rounds=300)
        widths.append(ci.upper - ci.lower)
    assert np.all(widths[1] < widths[0]) and np.all(widths[2] < widths[1])


def test_never_losing_player_is_finite():
    a, b, s = table((0, 1, 1.0, 20), (0, 2, 1.0, 20), (1, 2, 1.0, 6), (1, 2, 0.0, 4))
    r = R.bradley_terry(a, b, s, 3)
    assert np.all(np.isfinite(r))
    assert r[0] > r[1] > r[2]
    ci = R.bootstrap_bradley_terry(a, b, s, 3, rng=np.random.default_rng(3), rounds=100)
    assert np.all(np.isfinite(ci.samples))


def test_bootstrap_is_reproducible_with_the_same_generator():
    a, b, s = transitive(1)
    one = R.bootstrap_bradley_terry(a, b, s, 4, rng=np.random.default_rng(7), rounds=50)
    two = R.bootstrap_bradley_terry(a, b, s, 4, rng=np.random.default_rng(7), rounds=50)
    np.testing.assert_array_equal(one.samples, two.samples)


def test_player_without_matches_sits_at_the_mean():
    a, b, s = table((0, 1, 1.0, 3), (0, 1, 0.0, 1))
    r = R.bradley_terry(a, b, s, 3)
    assert r[2] == pytest.approx(1000.0)


def test_elo_hand_computed():
    # Both start at 1000; 0 wins: E = 0.5, so ±16 with K = 32.
    r = R.elo([0], [1], [1.0], 2, k=32)
    np.testing.assert_allclose(r, [1016.0, 984.0])
    # Then 1 beats 0: E_1 = 1 / (1 + 10^(32/400)) = 0.454...; 1 gains 32 · 0.546 = 17.47...
    e1 = 1 / (1 + 10 ** (32 / 400))
    r = R.elo([0, 1], [1, 0], [1.0, 1.0], 2, k=32)
    np.testing.assert_allclose(r, [1016 - 32 * (1 - e1), 984 + 32 * (1 - e1)])
    # A draw between equals changes nothing.
    np.testing.assert_allclose(R.elo([0], [1], [0.5], 2), [1000.0, 1000.0])


def test_payoff_matrix_means_and_normal_intervals():
    rows = [0, 0, 0, 1, 1, 0]
    cols = [0, 0, 0, 1, 1, 1]
    pay = [1.0, 2.0, 3.0, 5.0, 5.0, 9.0]
    m = R.payoff_matrix(rows, cols, pay, 2, 2)
    np.testing.assert_allclose(m.mean[0, 0], 2.0)
    half = 1.959963984540054 * 1.0 / math.sqrt(3)  # sd of (1, 2, 3) is 1
    np.testing.assert_allclose([m.lower[0, 0], m.upper[0, 0]], [2 - half, 2 + half])
    assert m.lower[1, 1] == m.upper[1, 1] == 5.0  # zero spread: zero width
    assert m.mean[0, 1] == 9.0 and math.isnan(m.lower[0, 1])  # one episode: no interval
    assert math.isnan(m.mean[1, 0]) and m.count[1, 0] == 0


def test_bad_tables_are_rejected():
    with pytest.raises(ValueError):
        R.bradley_terry([0], [0], [1.0], 2)
    with pytest.raises(ValueError):
        R.bradley_terry([0], [2], [1.0], 2)
    with pytest.raises(ValueError):
        R.bradley_terry([0], [1], [1.5], 2)


def test_cluster_bootstrap_resamples_whole_clusters():
    # Each cluster holds the same 3 matches: resampling clusters changes nothing,
    # so every bootstrap fit equals the point fit.
    a, b, s = table((0, 1, 1.0, 1), (1, 2, 1.0, 1), (0, 2, 0.0, 1))
    a, b, s = np.tile(a, 5), np.tile(b, 5), np.tile(s, 5)
    groups = np.repeat(np.arange(5), 3)
    ci = R.bootstrap_bradley_terry(a, b, s, 3, rng=np.random.default_rng(0), rounds=20, groups=groups)
    np.testing.assert_allclose(ci.samples, np.tile(ci.rating, (20, 1)), atol=1e-6)


def test_zero_bootstrap_rounds_gives_point_ratings_and_nan_intervals():
    a, b, s = transitive(2)
    none = R.bootstrap_bradley_terry(a, b, s, 4, rng=np.random.default_rng(1), rounds=0)
    assert np.all(np.isnan(none.lower)) and np.all(np.isfinite(none.rating))


def test_t_interval_by_hand():
    from arena.ratings import t_interval

    mean, half = t_interval([1.0, 2.0, 3.0])  # sd 1, t(2 dof) = 4.303
    assert mean == 2.0 and half == pytest.approx(4.303 / 3 ** 0.5)
    assert t_interval([5.0])[0] == 5.0 and t_interval([5.0])[1] != t_interval([5.0])[1]  # NaN with one seed
