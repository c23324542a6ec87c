"""Rule-based players for abstain-v0 (`scripted:<name>[?option=value&...]`).

Students know what the base model was shown: the `known` facts of the fact base of
their `data_seed` option (default 0, the shipped base's). On other questions they
fall back on the best blind guess (`rules.prior_guess`: a random region, "Kingdom",
a made-up capital).

| bot | seat | plays |
|---|---|---|
| `always-answer` | student | the known answer, else the best guess: never abstains |
| `always-abstain` | student | "I don't know", always |
| `oracle` | student | the known answer; else the best guess iff it is right with probability > k/(1+k) (option `k`, default 1), else abstains: the payoff-optimal student with the base's knowledge |
| `gold` | judge | the gold check itself: +1 if the answer equals the reference after `rules.normalise`, else -1 |

Randomness comes from a hash of (seed, observation), so a move depends only on
what the bot sees. The bots keep no state and are not checkpointed: a run that
uses one records its spec, and tournaments and `arena play <run>` rebuild it.
"""  # noqa: E501 (a table row is one line)
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from arena.bots import ScriptedBot
from games.abstain import rules


class _Student(ScriptedBot):
    produces = "text"

    @dataclass
    class Params:
        data_seed: int = 0
        """Fact base whose known facts the bot knows."""
        k: float = 1.0
        """The penalty for a wrong answer the bot plays against (oracle only)."""

    def lookup(self, obs: dict[str, str]) -> rules.Fact | None:
        return rules.make_fact_base(self.params.data_seed).lookup(obs.get("question", ""))

    def guess(self, obs: dict[str, str]) -> tuple[str, float]:
        """(answer, P(correct)): the known answer (1.0) or the best blind guess."""
        fact = self.lookup(obs)
        if fact is not None and fact.kind == "known":
            return fact.answer, 1.0
        q = obs.get("question", "")
        attribute = "region" if "region" in q else "state" if "kingdom" in q else "capital"
        return rules.prior_guess(attribute, self.rng(obs))

    def act(self, observations: Sequence[dict[str, str]]) -> list[str]:
        return [self.move(obs) for obs in observations]

    def move(self, obs: dict[str, str]) -> str:
        raise NotImplementedError


class AlwaysAnswer(_Student):
    """Never abstains: the known answer, else the best guess."""

    name = "always-answer"

    def move(self, obs: dict[str, str]) -> str:
        return self.guess(obs)[0]


class AlwaysAbstain(_Student):
    """Always says "I don't know"."""

    name = "always-abstain"

    def move(self, obs: dict[str, str]) -> str:
        return rules.ABSTAIN


class Oracle(_Student):
    """Answers iff its answer is right with probability > k/(1+k) (known facts: always)."""

    name = "oracle"

    def move(self, obs: dict[str, str]) -> str:
        answer, p = self.guess(obs)
        return answer if p > rules.answer_threshold(self.params.k) else rules.ABSTAIN


class GoldJudge(ScriptedBot):
    """The gold check as a judge: +1 when the answer equals the reference after normalisation, else -1."""

    name = "gold"
    produces = "score"

    def act(self, observations: Sequence[dict[str, str]]) -> list[np.ndarray]:
        return [np.array([1.0 if rules.outcome(obs.get("answer", ""), obs.get("reference", "")) == "correct"
                          else -1.0], dtype=np.float32) for obs in observations]
