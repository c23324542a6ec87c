"""The league's meta-game: the Nash solver on hand-solved games, NashConv, PFSP and the rules' weights."""
import numpy as np
import pytest

from arena.league.meta import meta_weights, nash_conv, pfsp_weights, solve_zero_sum
from arena.types import ArenaError

RPS = np.array([[0, -1, 1], [1, 0, -1], [-1, 1, 0]], float)


def test_rps_is_uniform_with_value_zero():
    x, y, v = solve_zero_sum(RPS)
    assert np.allclose(x, 1 / 3) and np.allclose(y, 1 / 3)
    assert v == pytest.approx(0.0, abs=1e-12)


def test_hand_solved_2x2():
    # row: 3x - 2(1-x) = -x + (1-x) -> x = 3/7; column: 3y - (1-y) = -2y + (1-y) -> y = 2/7; value 1/7
    A = np.array([[3, -1], [-2, 1]], float)
    x, y, v = solve_zero_sum(A)
    assert x == pytest.approx([3 / 7, 4 / 7], abs=1e-12)
    assert y == pytest.approx([2 / 7, 5 / 7], abs=1e-12)
    assert v == pytest.approx(1 / 7, abs=1e-12)


def test_saddle_point_and_dominated_strategy():
    x, y, v = solve_zero_sum(np.array([[1, 2], [0, 3]], float))  # saddle at (row 0, column 0)
    assert x == pytest.approx([1, 0]) and y == pytest.approx([1, 0]) and v == pytest.approx(1.0)
    # a fourth RPS move that loses to everything gets no weight
    A = np.pad(RPS, ((0, 1), (0, 1)))
    A[3, :3], A[:3, 3] = -1, 1
    x, y, v = solve_zero_sum(A)
    assert x == pytest.approx([1 / 3, 1 / 3, 1 / 3, 0], abs=1e-12) and v == pytest.approx(0, abs=1e-12)


def test_random_games_reach_equilibrium():
    for seed in range(5):
        A = np.random.default_rng(seed).normal(size=(7, 5))
        x, y, v = solve_zero_sum(A)
        assert nash_conv(A, x, y) < 1e-10 and x @ A @ y == pytest.approx(v)


def test_nash_conv_by_hand():
    # RPS, both seats play (1/2, 1/2, 0): A p = (-1/2, 1/2, 0) -> row gains 1/2, and so does the column
    p = [0.5, 0.5, 0.0]
    assert nash_conv(RPS, p, p) == pytest.approx(1.0)
    assert nash_conv(RPS, [1, 0, 0], [1, 0, 0]) == pytest.approx(2.0)  # always rock: paper wins 1 each side
    assert nash_conv(RPS, [1 / 3] * 3, [1 / 3] * 3) == pytest.approx(0.0)


def test_pfsp_weights_by_hand():
    # f(p) = (1 - p)^2: p = (0.9, 0.5, 0.0) -> (0.01, 0.25, 1) / 1.26
    assert pfsp_weights([0.9, 0.5, 0.0]) == pytest.approx([0.01 / 1.26, 0.25 / 1.26, 1 / 1.26])
    assert pfsp_weights([0.9, 0.5], power=1) == pytest.approx([0.1 / 0.6, 0.5 / 0.6])
    assert pfsp_weights([1.0, 1.0]) == pytest.approx([0.5, 0.5])  # the learner beats everyone: uniform
    with pytest.raises(ArenaError):
        pfsp_weights([1.5])


def test_meta_weights_per_rule():
    assert meta_weights("latest", 3, latest=2) == pytest.approx([0, 0, 1])
    assert meta_weights("uniform", 4, latest=3) == pytest.approx([0.25] * 4)
    assert meta_weights("pfsp", 2, latest=1, win_prob=[0.5, 0.0]) == pytest.approx([0.2, 0.8])
    assert meta_weights("nash", 3, latest=2, payoff=RPS) == pytest.approx([1 / 3] * 3)
    with pytest.raises(ArenaError, match="unknown opponent rule"):
        meta_weights("best", 2, latest=1)


def test_allocate_splits_a_budget_by_largest_remainder():
    from arena.league.meta import allocate

    for n in range(1, 10):  # uniform weights: the checkability mixture's equal shares, exactly
        for total in (0, 5, 64, 100):
            assert allocate(total, [1.0] * n) == [total // n + (r < total % n) for r in range(n)]
    assert allocate(7, [1, 2, 4]) == [1, 2, 4]
    assert allocate(10, [0, 0, 1]) == [0, 0, 10]
    assert allocate(64, [0.1, 0.9]) == [6, 58]  # 6.4 and 57.6: the larger remainder gets the unit
    for bad in ([], [-1, 2], [0, 0], [float("nan")]):
        with pytest.raises(ArenaError):
            allocate(3, bad)
