"""Helpers for the text observation/action spaces every game uses.

PettingZoo's `api_test` checks `observation_space.contains(obs)`, so text that
reaches an observation (a player's free-form action, say) is first sanitised
into the space's charset and length.
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
from gymnasium import spaces

# Printable ASCII, tab/newline, and Latin-1 letters: wide enough for real text.
CHARSET = "".join(chr(c) for c in [9, 10, *range(32, 127), *range(160, 256)])
_CHARS = frozenset(CHARSET)
MAX_TEXT = 8192


def text_space(max_length: int = MAX_TEXT) -> spaces.Text:
    # A fresh space per call: a space carries its own sampling RNG, which api_test seeds.
    return spaces.Text(max_length=max_length, min_length=0, charset=CHARSET)


def text_dict_space(*fields: str, max_length: int = MAX_TEXT) -> spaces.Dict:
    return spaces.Dict({f: text_space(max_length) for f in fields})


def score_space() -> spaces.Box:
    """An unbounded scalar score (verifier, reward model, judge)."""
    return spaces.Box(low=-np.inf, high=np.inf, shape=(1,), dtype=np.float32)


def sanitize(text: Any, max_length: int = MAX_TEXT) -> str:
    """Any action as observation-safe text: foreign chars become '?', cut to length."""
    s = text if isinstance(text, str) else ""
    return "".join(c if c in _CHARS else "?" for c in s[:max_length])


def as_text(action: Any) -> str | None:
    """A text action, or None when the action is not text at all."""
    if isinstance(action, str):
        return action
    if isinstance(action, np.ndarray) and action.dtype.kind in "US":
        return str(action.item()) if action.size == 1 else None
    return None


def as_score(action: Any) -> float | None:
    """A finite scalar score, or None for garbage (NaN, inf, text, wrong shape)."""
    try:
        arr = np.asarray(action, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if arr.size != 1:
        return None
    x = float(arr.reshape(()))
    return x if math.isfinite(x) else None
