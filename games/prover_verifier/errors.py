"""Sneaky errors over rounds (Kirchner et al. 2024: they "become subtler and more localised"): what an
incorrect solution's wrong steps look like, and how well a discriminator tells one round's sneaky
solutions from the initial prover's. Pure functions (numpy), no model.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from arena.seeding import stable_hash
from games.prover_verifier import rules


def error_profile(solution: str) -> dict[str, float]:
    """Of one incorrect solution: `wrong_steps` (steps whose arithmetic is wrong), `first_wrong`
    (where the first one sits, 0 = first step .. 1 = last; NaN without a wrong step: the error is
    elsewhere, e.g. only in the answer line) and `error_size` (|written - right| there)."""
    steps = rules.parse_steps(solution)
    wrong = rules.wrong_steps(solution)
    if not wrong:
        return {"wrong_steps": 0.0, "first_wrong": float("nan"), "error_size": float("nan")}
    k = wrong[0]
    a, op, b, c = steps[k]
    return {"wrong_steps": float(len(wrong)), "first_wrong": k / max(1, len(steps) - 1),
            "error_size": float(abs(c - rules.apply(a, op, b)))}


def mean_profile(solutions: Sequence[str]) -> dict[str, float]:
    """Means of `error_profile` over solutions (NaN-aware), and the share with no wrong step."""
    rows = [error_profile(s) for s in solutions]
    if not rows:
        return {"wrong_steps": float("nan"), "first_wrong": float("nan"), "error_size": float("nan"),
                "no_wrong_step": float("nan")}
    out = {}
    for key in ("wrong_steps", "first_wrong", "error_size"):
        xs = [r[key] for r in rows if not np.isnan(r[key])]
        out[key] = float(np.mean(xs)) if xs else float("nan")
    out["no_wrong_step"] = float(np.mean([r["wrong_steps"] == 0 for r in rows]))
    return out


def _bigrams(texts: Sequence[str], vocab: dict[str, int]) -> np.ndarray:
    x = np.zeros((len(texts), len(vocab)))
    for i, t in enumerate(texts):
        for j in range(len(t) - 1):
            k = vocab.get(t[j:j + 2])
            if k is not None:
                x[i, k] += 1.0
    return x


def discriminator_auc(a: Sequence[str], b: Sequence[str], *, seed: int = 0, folds: int = 5,
                      l2: float = 1.0, steps: int = 300) -> float:
    """How well a logistic regression on character-bigram counts tells texts `a` from texts `b`:
    the AUC of its held-out predictions over `folds` folds (0.5: indistinguishable; NaN when a side
    has fewer than `folds` texts). A fold holds every copy of a text (folds by the text's hash): a
    text written in both sets is then held out whole and scores alike on both sides, where a copy
    left in training would teach the other label and push the AUC below 0.5."""
    if len(a) < folds or len(b) < folds:
        return float("nan")
    texts = [*a, *b]
    y = np.array([1.0] * len(a) + [0.0] * len(b))
    vocab = {g: i for i, g in enumerate(sorted({t[j:j + 2] for t in texts for j in range(len(t) - 1)}))}
    x = _bigrams(texts, vocab)
    fold = np.array([stable_hash(seed, t) % folds for t in texts])
    pred = np.zeros(len(texts))
    for f in range(folds):
        test, train = np.flatnonzero(fold == f), np.flatnonzero(fold != f)
        if not test.size or not train.size:
            continue
        mu, sd = x[train].mean(0), x[train].std(0) + 1e-6
        xt, xv = (x[train] - mu) / sd, (x[test] - mu) / sd
        w, c = np.zeros(x.shape[1]), 0.0
        for _ in range(steps):  # gradient descent on the mean log-loss + l2 |w|^2 / n
            p = 1.0 / (1.0 + np.exp(-(xt @ w + c)))
            g = p - y[train]
            w -= 0.5 * (xt.T @ g / len(train) + l2 * w / len(train))
            c -= 0.5 * g.mean()
        pred[test] = xv @ w + c
    return rules.auc(list(pred[y == 1]), list(pred[y == 0]))
