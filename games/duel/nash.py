"""NashConv of duel-v0 policies on the built-in `sum` task with a gold judge (`GameInfo.exploitability`).

The gold preference compares closeness to a+b, so the exact answer is at least as close as any
answer and strictly closer than every inexact one: "always exact" is a best response to every
policy p. Against p it wins when p is inexact and ties when p is exact, a gain of
(r_exact - r_p) / 2 = P(p inexact) per episode. The game is symmetric and zero-sum (value 0), so

    NashConv(p) = 2 * P(p answers inexactly),    NashConv(sum_i w_i p_i) = 2 * sum_i w_i P(p_i inexact),

0 only for the policy that is always exact (the Nash equilibrium: preferred to every other) and 2
for one that never is. P is estimated on `PROMPTS` fixed prompts, one sample each at the agent's own
sampling settings, the same prompts and sampling seed for every agent (standard error of the
NashConv at most 2 * 0.5 / sqrt(512) = 0.044). A duel given another task (from Python code) has
another best response: this formula is the `sum` task's.
"""
from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from arena.types import Move
from games.duel import rules

PROMPTS = 512
SEED = 0


def inexact_rate(agent: Any, n: int = PROMPTS, seed: int = SEED) -> float:
    """The share of `n` fixed `sum` prompts that `agent` (in a policy seat) answers inexactly."""
    task = rules.TASKS["sum"]
    rng = np.random.default_rng(seed)
    prompts = [task.sample(rng) for _ in range(n)]
    if hasattr(agent, "reset"):
        agent.reset(seed)  # the trainer resets every agent before it plays again
    acts = agent.act([{"prompt": p, "task_prompt": p, "answer_a": "", "answer_b": ""} for p in prompts])
    answers = [a.action if isinstance(a, Move) else a for a in acts]
    return float(np.mean([task.score(p, a if isinstance(a, str) else "") < 1.0 for p, a in zip(prompts, answers)]))


def exploitability(agents: Sequence[Any], weights: Sequence[float]) -> float:
    """NashConv of the mixture of `agents` with `weights`: 2 x its probability of an inexact answer."""
    w = np.asarray(weights, float)
    w = w / w.sum()
    return float(2 * sum(wi * inexact_rate(a) for wi, a in zip(w, agents) if wi > 0))
