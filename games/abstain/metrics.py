"""Answer-or-abstain metrics: pure functions over outcomes and confidences (numpy, no torch).

- `summarize(records)`: accuracy, abstention, hallucination and payoff, overall and
  split known / unknown. One record per answer: `kind` (known/unknown), `outcome`
  (correct/abstain/wrong), `payoff`.
  * accuracy = correct / questions; abstention = abstentions / questions;
  * hallucination = wrong / answered (the issue's definition: of the answers given,
    the share that is wrong; 0 when nothing was answered);
  * unknown_wrong = wrong / unknown questions (docs/algorithms.md#answer-or-abstain: "wrong answers on
    unknown facts");
  * payoff = mean of +1 / 0 / -k.
- `confidence_bins`: answer rate (and accuracy of the answer the model would give)
  against the model's confidence in that answer, in equal-width bins.
- `learned_threshold`: the confidence threshold that best describes a policy as
  "answer iff confidence > t" (a step fit), with the interval of equally good t.
- `optimal_threshold`: the same fit for the payoff-optimal choice on the data
  (answer where the answer is right with probability > k/(1+k)).
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

OUTCOMES = ("correct", "abstain", "wrong")


def rates(outcomes: Sequence[str], payoffs: Sequence[float]) -> dict[str, float]:
    """Accuracy, abstention, hallucination (wrong / answered), wrong share and payoff of one group."""
    n = len(outcomes)
    if n == 0:
        return {}
    correct = sum(o == "correct" for o in outcomes)
    abstain = sum(o == "abstain" for o in outcomes)
    wrong = n - correct - abstain
    answered = correct + wrong
    return {"accuracy": correct / n, "abstention": abstain / n,
            "hallucination": wrong / answered if answered else 0.0,
            "wrong": wrong / n, "payoff": float(np.mean(payoffs)), "n": float(n)}


def summarize(records: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Overall and per-kind rates: `accuracy`, `known_accuracy`, `unknown_abstention`, ..."""
    out: dict[str, float] = {}
    groups = {"": list(records)}
    for kind in ("known", "unknown"):
        groups[f"{kind}_"] = [r for r in records if r.get("kind") == kind]
    for prefix, rs in groups.items():
        for name, value in rates([r["outcome"] for r in rs], [r["payoff"] for r in rs]).items():
            out[prefix + name] = value
    return out


def confidence_bins(confidence: Sequence[float], answer_prob: Sequence[float],
                    correct: Sequence[float] | None = None, bins: int = 10) -> list[dict[str, float]]:
    """Per equal-width confidence bin on [0, 1]: centre, count, mean answer probability and
    (with `correct`) the accuracy of the answers in the bin. Empty bins are left out."""
    conf = np.clip(np.asarray(confidence, dtype=float), 0.0, 1.0)
    ans = np.asarray(answer_prob, dtype=float)
    idx = np.minimum((conf * bins).astype(int), bins - 1)
    out = []
    for b in range(bins):
        sel = idx == b
        if not sel.any():
            continue
        row = {"lo": b / bins, "hi": (b + 1) / bins, "n": float(sel.sum()), "answer_rate": float(ans[sel].mean()),
               "confidence": float(conf[sel].mean())}
        if correct is not None:
            row["accuracy"] = float(np.asarray(correct, dtype=float)[sel].mean())
        out.append(row)
    return out


def step_fit(x: Sequence[float], cost_abstain: Sequence[float],
             cost_answer: Sequence[float]) -> tuple[float, float, float]:
    """The threshold t of the rule "answer iff x > t" with the least total cost.

    Item i costs `cost_abstain[i]` when x_i <= t and `cost_answer[i]` when x_i > t.
    Returns (t, lo, hi): every threshold in [lo, hi) is equally good, t is the middle
    (lo = 0 / hi = 1 at the ends of the axis).
    """
    x = np.asarray(x, dtype=float)
    if x.size == 0:
        return float("nan"), float("nan"), float("nan")
    order = np.argsort(x, kind="stable")
    xs = x[order]
    a = np.asarray(cost_abstain, dtype=float)[order]
    b = np.asarray(cost_answer, dtype=float)[order]
    # cut i (0..n): items < i abstain, items >= i answer
    loss = np.concatenate([[0.0], np.cumsum(a)]) + np.concatenate([np.cumsum(b[::-1])[::-1], [0.0]])
    valid = np.ones(len(loss), dtype=bool)
    valid[1:-1] = xs[1:] > xs[:-1]  # no cut between equal values
    loss = np.where(valid, loss, np.inf)
    best = np.flatnonzero(loss <= loss.min() + 1e-9)
    edges = np.concatenate([[0.0], xs, [1.0]])
    lo, hi = float(edges[best[0]]), float(edges[best[-1] + 1])
    return 0.5 * (lo + hi), lo, hi


def learned_threshold(confidence: Sequence[float], answer_prob: Sequence[float]) -> tuple[float, float, float]:
    """The policy's own threshold on its confidence: the step rule that best matches how
    often it answers (cost = the probability mass the rule gets wrong)."""
    p = np.asarray(answer_prob, dtype=float)
    return step_fit(confidence, p, 1.0 - p)


def optimal_threshold(confidence: Sequence[float], correct: Sequence[float], k: float) -> tuple[float, float, float]:
    """The payoff-optimal threshold on these items: answering item i pays
    correct_i - k * (1 - correct_i) (`correct` 0/1 or a probability), abstaining 0."""
    c = np.asarray(correct, dtype=float)
    return step_fit(confidence, np.zeros_like(c), -(c - k * (1.0 - c)))


def logistic_threshold(confidence: Sequence[float], answer_prob: Sequence[float], iters: int = 50) -> float:
    """The confidence at which a logistic fit of P(answer) on confidence crosses 1/2.

    Fits P(answer | c) = sigmoid(a + b c) to the answer probabilities (soft targets,
    maximum likelihood by Newton's method, a tiny ridge for stability). Returns -a/b
    clipped to [0, 1]; NaN when the fit does not rise with confidence (b <= 0).
    """
    c = np.asarray(confidence, dtype=float)
    y = np.clip(np.asarray(answer_prob, dtype=float), 0.0, 1.0)
    if c.size < 2 or np.ptp(c) == 0:
        return float("nan")
    x = np.stack([np.ones_like(c), c], 1)  # (N, 2)
    w = np.zeros(2)
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-(x @ w)))
        grad = x.T @ (p - y) + 1e-6 * w
        hess = (x * (p * (1 - p))[:, None]).T @ x + 1e-6 * np.eye(2)
        step = np.linalg.solve(hess, grad)
        w -= step
        if np.abs(step).max() < 1e-9:
            break
    a, b = w
    return float(np.clip(-a / b, 0.0, 1.0)) if b > 0 else float("nan")
