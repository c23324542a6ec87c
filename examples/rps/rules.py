"""Rock-paper-scissors' rules: pure functions, no I/O, no randomness of their own.

Each player writes a move as text; the first of `rock`, `paper`, `scissors` it names is its move.
Rock beats scissors, scissors beats paper, paper beats rock: +1 to the winner, -1 to the loser,
0 to both on a draw. A move that names none of them is invalid and loses to any valid move (two
invalid moves draw). The game is symmetric and zero-sum, with one Nash equilibrium: each move
with probability 1/3, value 0.
"""
from __future__ import annotations

import re

import numpy as np

from arena.league import meta

MOVES = ("rock", "paper", "scissors")
PAYOFF = np.array([[0, -1, 1], [1, 0, -1], [-1, 1, 0]], dtype=float)
"""PAYOFF[i, j]: what move i gets against move j (rows and columns in `MOVES` order)."""
MOVE_RE = re.compile(r"rock|paper|scissors")


def prompt(table: int) -> str:
    return (f"Table {table}. Rock-paper-scissors: rock beats scissors, scissors beats paper, paper beats "
            f"rock. Your opponent moves without seeing your move. Reply with one word: rock, paper or scissors.")


def parse_move(text: str) -> int | None:
    """The index in `MOVES` of the first move the text names; None when it names none."""
    m = MOVE_RE.search(text.lower())
    return MOVES.index(m.group()) if m else None


def move_name(i: int | None) -> str | None:
    return None if i is None else MOVES[i]


def payoffs(a: int | None, b: int | None) -> tuple[float, float]:
    """(first, second) player's rewards; an invalid move (None) loses to a valid one."""
    if a is None or b is None:
        return (0.0, 0.0) if a is b else ((-1.0, 1.0) if a is None else (1.0, -1.0))
    r = float(PAYOFF[a, b])
    return r, -r


def nash_conv(p) -> float:
    """NashConv of the mixed strategy `p` (over `MOVES`) played in both seats: the two best-response
    gains (`arena.league.meta.nash_conv`; here 2 max_i (PAYOFF p)_i, the value being 0): 0 exactly
    at uniform, 2 for a pure move."""
    return meta.nash_conv(PAYOFF, p, p)
