"""Rule-based players for prover-verifier-v1 (they use the game's rules, so they live here).

Every bot draws its randomness from a hash of (its seed, the observation), so its
move depends only on what it sees: transcripts are then independent of how many
episodes run concurrently.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from arena.bots import SavedBot
from games.prover_verifier import rules

class RolePlayProver(SavedBot):
    """Follows the role in its observation: correct steps if helpful, one planted error if sneaky."""

    name = "role-play"
    produces = "text"

    @dataclass
    class Params:
        subtle: bool = False
        """Plant the error in the last step by +-1 (harder to spot)."""

    def act(self, observations: Sequence[dict[str, str]]) -> list[str]:
        return [self.solve(obs, obs.get("role") == "sneaky") for obs in observations]

    def solve(self, obs: dict[str, str], sneaky: bool) -> str:
        problem = rules.parse_question(obs["question"])
        if problem is None:
            return "Answer: 0"
        return rules.sneaky_solution(problem, self.rng(obs), self.params.subtle) if sneaky \
            else rules.honest_solution(problem)


class HelpfulProver(RolePlayProver):
    """Always writes a correct step-by-step solution."""

    name = "helpful"

    def act(self, observations):
        return [self.solve(obs, False) for obs in observations]


class SneakyProver(RolePlayProver):
    """Always plants one wrong step and carries the error to the answer."""

    name = "sneaky"

    def act(self, observations):
        return [self.solve(obs, True) for obs in observations]


class SpotCheckVerifier(SavedBot):
    """Re-checks each step with probability `check_rate`; +1 if nothing wrong is found, else -1."""

    name = "spot-check"
    produces = "score"

    @dataclass
    class Params:
        check_rate: float = 0.3
        """Probability of re-checking each step."""

    def act(self, observations: Sequence[dict[str, str]]) -> list[np.ndarray]:
        return [np.array([self.score(obs)], dtype=np.float32) for obs in observations]

    def score(self, obs: dict[str, str]) -> float:
        solution = obs["solution"]
        steps = rules.parse_steps(solution)
        if rules.parse_answer(solution) is None:
            return -1.0
        rng, wrong = self.rng(obs), set(rules.wrong_steps(solution))
        checked = [i for i in range(len(steps)) if rng.random() < self.params.check_rate]
        return -1.0 if wrong.intersection(checked) else 1.0


@dataclass
class SpotCheckLearner:
    """Scripted learner: raises the verifier's check rate by `lr` x the sneaky success rate.

    A stand-in for a trained verifier that lets the engine's loop, checkpoints and
    resume be exercised without a model.
    """

    lr: float = 0.5

    def reset(self, seed: int) -> None:
        pass

    def update(self, agent: SpotCheckVerifier, episodes) -> dict[str, float]:
        infos = [ep.info["prover"] for ep in episodes if "correct" in ep.info.get("prover", {})]
        sneaky = [i for i in infos if i["role"] == "sneaky" and not i["correct"]]
        fooled = sum(1 for i in sneaky if i["convinced"]) / max(1, len(sneaky))
        agent.params.check_rate = min(1.0, agent.params.check_rate + self.lr * fooled)
        return {"fooled": fooled, "check_rate": agent.params.check_rate}
