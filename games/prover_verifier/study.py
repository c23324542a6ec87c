"""The legibility study's items for prover-verifier (`arena study`): a prover checkpoint's helpful
solutions on held-out problems, each shown to raters as the verifier reads it.

    arena study <run> --items-fn games.prover_verifier.study:helpful_items

Held out: problems from the verifier half of the problem space (`rules.problem_half`), which
the prover's RL never draws; generated from the study's seed with the run's settings, so every
checkpoint answers the same problems, the first n of one sequence.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from arena.seeding import derive
from games.prover_verifier import rules
from games.prover_verifier.sampling import rollout, solution_of


def held_out_problems(n: int, seed: int, settings: dict[str, Any]) -> list[rules.Problem]:
    """The first `n` distinct verifier-half problems of the study's seed, generated as the run set the game up."""
    rng = np.random.default_rng(derive(seed, "study-problems"))
    shape = {k: settings[k] for k in ("min_steps", "max_steps", "max_value") if k in settings}
    shape.setdefault("max_value", 9)
    out: dict[str, rules.Problem] = {}
    for _ in range(200 * n):
        p = rules.generate_problem(rng, **shape)
        if rules.problem_half(p) == "verifier":
            out.setdefault(p.question, p)
        if len(out) == n:
            break
    return list(out.values())


def helpful_items(agent: Any, n: int, *, seed: int, settings: dict[str, Any]) -> list[dict[str, Any]]:
    """One helpful solution of the prover `agent` per held-out problem, as the verifier would read it."""
    problems = held_out_problems(n, seed, settings)
    episodes = rollout(agent, problems, ["helpful"], 1, instruct=bool(settings.get("instruct", False)))
    return [{"problem_id": p.question, "prompt_text": rules.verifier_prompt(p.question, solution_of(ep)),
             "correct": rules.is_correct(p, solution_of(ep))} for p, ep in zip(problems, episodes)]
