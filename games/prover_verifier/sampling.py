"""Checkability training's sampling and scoring: rollouts, verifier scores, prover rewards, best-of-n.

The pieces the round learners (`games.prover_verifier.training`), the demo and the
tests share:

- `rollout`: `group` solutions per (problem, role) from a prover, as single-move
  episodes shaped like the env's; `score_episodes` / `verifier_scores` ask a
  verifier for its scores as the env would (the solution's and the reference
  solution's of each problem, read by `rules.convinced`);
- `prover_rewards`: SRC / CGC / goodhart rewards of scored solutions
  (docs/algorithms.md#checkability); `batch_stats`: accuracy and mean scores of one RL batch;
- balanced best-of-n: `build_best_of_n_pool` (held-out samples of the initial
  prover, n/2 correct and n/2 incorrect per problem) and `best_of_n_accuracy` /
  `balanced_best_of_n` (the fraction of top-scored picks that are correct; chance
  is 0.5).
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import torch

from arena.spaces import as_score
from arena.types import Episode, Move, Step
from games.prover_verifier import rules


def rollout(prover: Any, problems: Sequence[rules.Problem], roles: Sequence[str], group: int, *,
            instruct: bool = False, round: int = 0, chunk: int = 256) -> list[Episode]:
    """`group` solutions per (problem, role) from `prover`, one batched `act` call.

    Returns one single-move `Episode` per solution, shaped like the env's (the
    prover's `Step` with the agent's extras, info under `"prover"`), so policy-gradient
    learners read them exactly as they read played episodes. Scores are filled in by
    `score_episodes`. At most `chunk` prompts go into one `act` call.
    """
    observations = [{"prompt": rules.prover_prompt(role, p.question, instruct), "role": role,
                     "question": p.question, "solution": ""}
                    for p in problems for role in roles for _ in range(group)]
    if not observations:
        return []
    actions = [a for i in range(0, len(observations), chunk) for a in prover.act(observations[i:i + chunk])]
    keys = [(p, role) for p in problems for role in roles for _ in range(group)]
    episodes = []
    for i, ((p, role), obs, act) in enumerate(zip(keys, observations, actions)):
        move = act if isinstance(act, Move) else Move(act)
        text = move.action if isinstance(move.action, str) else ""
        info = {"correct": rules.is_correct(p, text), "role": role, "question": p.question, "answer": p.answer,
                "half": rules.problem_half(p), "length": len(text), "solution": text,
                "reference": rules.reference_solution(p), "valid_solution": rules.parse_answer(text) is not None,
                "score": None, "reference_score": None, "convinced": False, "valid_score": False}
        episodes.append(Episode(i, 0, {}, {"prover": info}, [Step("prover", obs, text, move.extras)], round))
    return episodes


def verifier_scores(verifier: Any, questions: Sequence[str], solutions: Sequence[str]) -> list[float | None]:
    """The verifier's score for each (question, solution), as the env would ask for it (None = garbage)."""
    if not questions:
        return []
    observations = [{"prompt": rules.verifier_prompt(q, s), "role": "", "question": q, "solution": s}
                    for q, s in zip(questions, solutions)]
    actions = verifier.act(observations)
    return [as_score(a.action if isinstance(a, Move) else a) for a in actions]


def score_episodes(verifier: Any, episodes: Sequence[Episode],
                   references: dict[str, float | None] | None = None) -> None:
    """Fill `info["prover"]` of rollout episodes in place as the env would: `score`,
    `reference_score` (the verifier's score of the problem's reference solution, once per
    problem), `convinced` and `valid_score`. `references` caches reference scores by question
    across calls (for a frozen verifier)."""
    infos = [ep.info["prover"] for ep in episodes]
    cache = references if references is not None else {}
    todo = list(dict.fromkeys(i["question"] for i in infos if i["question"] not in cache))
    refs = {i["question"]: i["reference"] for i in infos}
    cache.update(zip(todo, verifier_scores(verifier, todo, [refs[q] for q in todo])))
    for info, s in zip(infos, verifier_scores(verifier, [i["question"] for i in infos],
                                                [i["solution"] for i in infos])):
        ref = cache[info["question"]]
        info.update(score=s, reference_score=ref, convinced=rules.convinced(s, ref),
                    valid_score=s is not None and ref is not None)


def solution_of(ep: Episode) -> str:
    """The prover's solution text in a played or rolled-out episode."""
    moves = ep.moves("prover")
    return moves[0].action if moves and isinstance(moves[0].action, str) else ""


def prover_rewards(mode: str, infos: Sequence[dict[str, Any]]) -> torch.Tensor:
    """Per-solution prover rewards (docs/algorithms.md#checkability) from scored infos.  -> (N,)

    SRC's relative score is taken within the batch of solutions of the same problem
    and role; an invalid (garbage) score counts as 0. `correct` is the correctness-only
    baseline's reward (the paper's Fig. 4): 1 for a correct solution, else 0, no verifier.
    """
    from agents.losses import cgc_reward, goodhart_reward, src_reward

    v = torch.tensor([i["score"] if i.get("valid_score") else 0.0 for i in infos], dtype=torch.float32)
    c = torch.tensor([float(i["correct"]) for i in infos])
    if mode == "correct":
        return c
    h = torch.tensor([float(i["role"] == "helpful") for i in infos])
    keys: dict[tuple[str, str], int] = {}
    groups = torch.tensor([keys.setdefault((i["question"], i["role"]), len(keys)) for i in infos])
    if mode == "src":
        return src_reward(v, c, h, groups)
    if mode == "cgc":
        return cgc_reward(v, c, h)
    if mode == "goodhart":
        return goodhart_reward(v)
    raise ValueError(f"unknown reward {mode!r}; use src, cgc, goodhart or correct")


def balanced_best_of_n(scores_correct: Sequence[Sequence[float]], scores_incorrect: Sequence[Sequence[float]],
                       n: int, rng: np.random.Generator, draws: int = 8) -> float:
    """Fraction of top-scored picks that are correct among n/2 correct + n/2 incorrect samples per problem.

    `scores_correct[p]` / `scores_incorrect[p]`: the verifier's scores of problem p's
    correct / incorrect samples (each list at least n/2 long). Ties count 1/2.
    `draws` random subsets per problem. NaN when no problem qualifies.
    """
    half, hits = n // 2, []
    for pos, neg in zip(scores_correct, scores_incorrect):
        if len(pos) < half or len(neg) < half:
            continue
        for _ in range(draws):
            best_pos = max(rng.choice(np.asarray(pos, dtype=float), half, replace=False))
            best_neg = max(rng.choice(np.asarray(neg, dtype=float), half, replace=False))
            hits.append(1.0 if best_pos > best_neg else 0.5 if best_pos == best_neg else 0.0)
    return float(np.mean(hits)) if hits else float("nan")


def build_best_of_n_pool(prover: Any, problems: Sequence[rules.Problem], samples: int, n: int,
                         instruct: bool = False, temperature: float | None = None) -> list[dict[str, Any]]:
    """Helpful samples of `prover` on held-out problems, kept where a balanced n-subset exists.

    Balanced best-of-n as Kirchner et al. define it: both halves are *helpful* samples,
    n/2 correct and n/2 incorrect (honest mistakes, never sneaky ones). The tiny prover
    is almost always right when helpful at its own temperature, so the pool is sampled at
    `temperature` (when given; the prover's sampling is restored afterwards), and problems
    with fewer than n/2 incorrect (or correct) helpful samples are left out.
    """
    import dataclasses

    saved = getattr(prover, "sampling", None)
    if temperature is not None and saved is not None:
        prover.sampling = dataclasses.replace(saved, temperature=temperature)
    try:
        helpful = rollout(prover, problems, ["helpful"], samples, instruct=instruct)
    finally:
        if saved is not None:
            prover.sampling = saved
    pool = []
    for start in range(0, len(helpful), samples):
        h = helpful[start:start + samples]
        pos = [solution_of(e) for e in h if e.info["prover"]["correct"]]  # duplicates kept: they are samples
        neg = [solution_of(e) for e in h if not e.info["prover"]["correct"]]
        if len(pos) >= n // 2 and len(neg) >= n // 2:
            pool.append({"question": h[0].info["prover"]["question"], "correct": pos, "incorrect": neg,
                         "filled": False})
    return pool


def best_of_n_accuracy(verifier: Any, pool: Sequence[dict[str, Any]], n: int, seed: int) -> float:
    """`balanced_best_of_n` of `verifier` on a pool from `build_best_of_n_pool` (0.5 if the pool is empty)."""
    if not pool:
        return 0.5
    pos, neg = [], []
    for item in pool:
        s = verifier_scores(verifier, [item["question"]] * (len(item["correct"]) + len(item["incorrect"])),
                            item["correct"] + item["incorrect"])
        s = [x if x is not None else -math.inf for x in s]
        pos.append(s[:len(item["correct"])])
        neg.append(s[len(item["correct"]):])
    value = balanced_best_of_n(pos, neg, n, np.random.default_rng(seed))
    return 0.5 if math.isnan(value) else value


def batch_stats(infos: Sequence[dict[str, Any]]) -> dict[str, float]:
    """Accuracy and mean scores of one scored RL batch (both roles)."""
    helpful = [i for i in infos if i["role"] == "helpful"]
    sneaky = [i for i in infos if i["role"] == "sneaky"]
    score = lambda xs: float(np.mean([i["score"] or 0.0 for i in xs])) if xs else 0.0  # noqa: E731
    return {"helpful_accuracy": sum(i["correct"] for i in helpful) / max(1, len(helpful)),
            "sneaky_incorrect": sum(not i["correct"] for i in sneaky) / max(1, len(sneaky)),
            "sneaky_success": sum(not i["correct"] and i["convinced"] for i in sneaky) / max(1, len(sneaky)),
            "helpful_correct_score": score([i for i in helpful if i["correct"]]),
            "sneaky_incorrect_score": score([i for i in sneaky if not i["correct"]])}
