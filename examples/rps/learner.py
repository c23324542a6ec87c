"""REINFORCE for rps-v0's `TabularPolicy`: one gradient step per round on the three logits.

    grad_k = mean_i (r_i - mean r) (1[a_i = k] - p_k) / T

over the round's episodes of the seat (invalid moves are skipped); a small named function,
testable by hand. Its metrics: the policy's move probabilities and its `exploitability` (NashConv,
`examples.rps.rules.nash_conv`; 0 at the Nash equilibrium).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from arena.types import Episode
from examples.rps import rules


def policy_gradient(probs: np.ndarray, moves: Sequence[int], rewards: Sequence[float],
                    temperature: float = 1.0) -> np.ndarray:
    """d/dlogits of mean_i (r_i - mean r) log softmax(logits / T)[move_i]."""
    adv = np.asarray(rewards, dtype=float) - np.mean(rewards)
    onehot = np.eye(len(probs))[np.asarray(moves, dtype=int)]
    return (adv[:, None] * (onehot - probs)).mean(axis=0) / temperature


@dataclass
class Reinforce:
    """Updates one seat's `TabularPolicy` on the round's episodes (an `arena.types.Learner`)."""

    seat: str
    lr: float = 2.0

    def reset(self, seed: int) -> None:
        pass  # nothing random here

    def update(self, agent: Any, episodes: Sequence[Episode]) -> dict[str, float]:
        mine = [ep for ep in episodes if ep.info.get(self.seat, {}).get("move") is not None]
        if mine:
            moves = [rules.MOVES.index(ep.info[self.seat]["move"]) for ep in mine]
            rewards = [ep.rewards[self.seat] for ep in mine]
            agent.logits += self.lr * policy_gradient(agent.probabilities(), moves, rewards, agent.params.temperature)
        p = agent.probabilities()
        return {"p_rock": float(p[0]), "p_paper": float(p[1]), "p_scissors": float(p[2]),
                "exploitability": rules.nash_conv(p)}
