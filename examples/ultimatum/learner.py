"""REINFORCE for `TabularPolicy`: one gradient-ascent step per round on the table's logits.

The update is the policy gradient of the round's mean reward with a baseline:

    proposer   grad_k = mean_i A_i (1[k_i = k] - p_k) / T        (softmax over offers)
    responder  grad_k = mean_{i: offer_i = k} A_i (a_i - q_k) / T  (a_i = 1 if accepted)
    A_i = r_i - baseline  (proposer: the round's mean reward; responder: the mean for that offer)

Each gradient is a small named function, testable by hand.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import numpy as np

from arena.types import Episode


def proposer_gradient(probs: np.ndarray, offers: Sequence[int], rewards: Sequence[float],
                      temperature: float = 1.0) -> np.ndarray:
    """d/dlogits of mean_i (r_i - mean r) log softmax(logits / T)[offer_i]."""
    adv = np.asarray(rewards, dtype=float) - np.mean(rewards)
    onehot = np.eye(len(probs))[np.asarray(offers, dtype=int)]  # (n, pot + 1)
    return (adv[:, None] * (onehot - probs)).mean(axis=0) / temperature


def responder_gradient(probs: np.ndarray, offers: Sequence[int], accepted: Sequence[bool],
                       rewards: Sequence[float], temperature: float = 1.0) -> np.ndarray:
    """d/dlogits of the mean over each offer's replies of (r - mean r for that offer) log P(reply)."""
    offers, a, r = np.asarray(offers, dtype=int), np.asarray(accepted, dtype=float), np.asarray(rewards, dtype=float)
    grad = np.zeros(len(probs))
    for k in np.unique(offers):
        mine = offers == k
        grad[k] = ((r[mine] - r[mine].mean()) * (a[mine] - probs[k])).mean() / temperature
    return grad


@dataclass
class Reinforce:
    """Updates one seat's `TabularPolicy` on the round's episodes (a `arena.types.Learner`)."""

    seat: str
    """Whose moves to learn from."""
    lr: float = 25.0
    """Step size on the logits."""
    progress: Callable[[str], None] | None = None  # set by the trainer before each update

    def reset(self, seed: int) -> None:
        pass  # nothing random here

    def update(self, agent: Any, episodes: Sequence[Episode]) -> dict[str, float]:
        infos = [ep.info[self.seat] for ep in episodes if ep.info.get(self.seat, {}).get("valid_offer")]
        rewards = [ep.rewards[self.seat] for ep in episodes if ep.info.get(self.seat, {}).get("valid_offer")]
        if not infos:
            return {}
        offers = [min(i["offer"], agent.params.pot) for i in infos]
        probs, t = agent.probabilities(), agent.params.temperature
        if self.seat == "proposer":
            agent.logits += self.lr * proposer_gradient(probs, offers, rewards, t)
            p = agent.probabilities()
            return {"expected_offer": float(p @ np.arange(len(p)) / agent.params.pot),
                    "entropy": float(-(p * np.log(p + 1e-12)).sum())}
        agent.logits += self.lr * responder_gradient(probs, offers, [i["accepted"] for i in infos], rewards, t)
        return {"accept_prob": float(agent.probabilities()[1:].mean())}

