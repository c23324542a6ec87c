"""Duel rules: prompt tasks with gold scoring functions, and the verdict.

A task is any object with `sample(rng) -> str` (a prompt) and
`score(prompt, answer) -> float` (the gold score, higher is better). `TASKS` holds
the built-in ones; other games expose theirs as `module:attr` import paths.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np

NUMBER_RE = re.compile(r"-?\d+")


@dataclass(frozen=True)
class SumTask:
    """`Add: a+b=` -> gold score 1 - |answer - (a+b)| / 10, floored at 0 (0 if no number)."""

    max_operand: int = 49

    def sample(self, rng: np.random.Generator) -> str:
        a, b = (int(x) for x in rng.integers(0, self.max_operand + 1, size=2))
        return f"Add: {a}+{b}="

    def score(self, prompt: str, answer: str) -> float:
        a, b = (int(x) for x in NUMBER_RE.findall(prompt)[:2])
        found = NUMBER_RE.search(answer)
        if found is None:
            return 0.0
        value = parse_number(found.group())
        return 0.0 if value is None else max(0.0, 1.0 - abs(value - (a + b)) / 10.0)


MAX_DIGITS = 30
"""Longer numbers score as wrong without being converted (Python refuses `int()` of over 4,300
digits; any answer at all must be scored, never raise)."""


def parse_number(text: str) -> int | None:
    """`-?\\d+` text as an int; None when it has more than `MAX_DIGITS` digits (leading zeros aside)."""
    digits = text.lstrip("-").lstrip("0") or "0"
    if len(digits) > MAX_DIGITS:
        return None
    return -int(digits) if text.startswith("-") else int(digits)


TASKS = {"sum": SumTask()}


def verdict(score_a: float, score_b: float, tol: float = 1e-9) -> int:
    """+1 if A is better, -1 if B is better, 0 for a draw."""
    return 0 if abs(score_a - score_b) <= tol else (1 if score_a > score_b else -1)
