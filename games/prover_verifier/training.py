"""Checkability training (Kirchner et al. 2024, docs/algorithms.md#checkability): the round's two learners.

Round k of `arena train prover-verifier-v1` (learner order: verifier, then prover):

1. The runner plays the round's episodes with the prover and verifier as they
   were at the end of round k-1 (both problem halves, role drawn per episode).
   These are the round's measurements (`ProverVerifierEnv.round_metrics`) and
   part of the verifier's data.
2. `VerifierRoundLearner`: adds this round's verifier-half solutions to its
   buffer (the episodes' plus `verifier_samples` problems x `group_size`
   solutions per role sampled from the current prover, so that every problem has
   several solutions to pair), re-initialises the verifier from its starting
   weights, and trains it with Bradley-Terry + a score penalty
   (`agents.learners.VerifierLearner`) on a mixture with an equal share of
   problems from every round so far and, per problem, as many correct as
   incorrect solutions. By default the mixture keeps one size every round, as in
   the paper ("the amount of verifier optimization is constant over the
   rounds"): new rounds' solutions replace part of the old (`mixture`). It never
   sees a prover-half problem (checked).
3. `ProverRoundLearner`: `prover_steps` iterations of on-policy RL against the
   frozen, freshly trained verifier: sample `prover_problems` prover-half
   problems x both roles x `group_size` solutions, score them, reward them with
   SRC / CGC / goodhart (`agents.losses`), and take a policy-gradient step with a
   group baseline and a KL penalty to the prover's initialisation
   (`agents.learners.PolicyGradientLearner`). The round stops early once sneaky
   incorrect solutions score on average at least as high as helpful correct ones.

Evaluation (verifier learner metrics): AUC of the fresh verifier on this round's
prover-half episodes (problems it never trains on), and balanced best-of-n
accuracy on a fixed pool of helpful samples of the initial prover on held-out
problems (n/2 correct and n/2 incorrect helpful samples per problem, as in the paper;
drawn at `bon_temperature` so that the tiny prover makes honest mistakes; chance is 0.5).

Sampling, scoring, rewards and best-of-n live in `games.prover_verifier.sampling`;
this module holds the two round learners and the state they keep between rounds.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch

from arena.league.meta import allocate, meta_weights
from arena.types import ArenaError, Episode
from games.prover_verifier import rules
from games.prover_verifier.sampling import (batch_stats, best_of_n_accuracy, build_best_of_n_pool, prover_rewards,
                                            rollout, score_episodes, solution_of, verifier_scores)

BUFFER_FILE = "verifier_data.jsonl"
METRICS_FILE = "metrics.json"
SHOWN_VERIFIER = ("loss", "pair_accuracy", "heldout_auc", "best_of_n", "steps")
"""Verifier learner metrics returned to the round summary (the live view); all are in `metrics.json`."""
SHOWN_PROVER = ("loss", "kl", "reward_mean", "rl_steps")
"""Prover learner metrics returned to the round summary; all are in `metrics.json`."""
POOL_FILE = "best_of_n_pool.json"


# -- the two round learners ------------------------------------------------------------

@dataclass(kw_only=True)
class RoundLearner:
    """What both round learners share: an inner `agents.learners` learner, this round's full
    metrics, the trainer's progress reporter and a seeded RNG."""

    inner: Any
    last_metrics: dict[str, float] = field(default_factory=dict)
    progress: Callable[[str], None] | None = field(default=None, repr=False, compare=False)
    """Set by the trainer: one line per phase or step for the live view (`arena.types.Learner`)."""
    _rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0))

    def reset(self, seed: int) -> None:
        self._rng = np.random.default_rng(seed)
        self.inner.reset(seed)

    def say(self, message: str) -> None:
        if self.progress:
            self.progress(message)


@dataclass(kw_only=True)
class VerifierRoundLearner(RoundLearner):
    """Re-initialise the verifier, then train it on every round's verifier-half solutions so far.

    `inner` is an `agents.learners.VerifierLearner` (Bradley-Terry + lambda*V^2); each
    round's mixture goes to its `fit_solutions`. The buffer of earlier rounds' solutions
    and the best-of-n pool are this learner's state (`save`/`load`), so a resumed run
    trains the same verifiers.
    """

    inner: Any
    """`agents.learners.VerifierLearner` doing the optimisation."""
    prover: Any
    """The prover agent (as it is when the verifier trains: the previous round's)."""
    problems: Sequence[rules.Problem]
    """The verifier half of the problem pool."""
    bon_problems: Sequence[rules.Problem]
    """Held-out problems for the best-of-n pool (prover half: the verifier never trains on them)."""
    start: dict[str, torch.Tensor]
    """The verifier's starting weights (re-loaded at the start of every round)."""
    samples_per_round: int = 24
    """Verifier-half problems sampled per round for extra solutions."""
    group_size: int = 4
    """Solutions per problem and role in those samples."""
    mixture_rule: str = "constant"
    """constant: the same data every round (`mixture_problems` in all; the paper's); growing:
    `mixture_problems` from each round (see `mixture`)."""
    provers: str = "uniform"
    """How the constant mixture shares its problems among the rounds' provers: an opponent rule of
    the engine's league (`arena.league.meta`): uniform (the paper's: an equal share per round, i.e.
    fictitious play over the pool of past provers) or latest (the newest round's prover only)."""
    mixture_problems: int = 64
    """Problems in the training mixture (constant), or taken from each round so far (growing)."""
    solutions_per_problem: int = 2
    """Correct solutions per mixture problem, and as many incorrect ones (constant rule)."""
    bon_n: int = 4
    """n of balanced best-of-n (n/2 correct + n/2 incorrect)."""
    bon_samples: int = 24
    """Helpful samples per held-out problem when the pool is built."""
    bon_temperature: float | None = None
    """Sampling temperature of the pool's helpful samples (None: the prover's own)."""
    instruct: bool = False
    """Prompts with role instructions (instruction-tuned provers)."""
    source: str = "prover"
    """Where each round's solutions come from: the prover (the game), or rules (a control: per problem,
    the rule-made correct solution and `group_size` rule-made corruptions, `rule_made`)."""
    max_value: int | None = 9
    """The task's largest number (rule-made corruptions stay within it where they can)."""
    rounds: list[list[dict[str, Any]]] = field(default_factory=list)
    """Per round: the solutions collected ({question, solution, correct, role, half})."""
    pool: list[dict[str, Any]] | None = None
    """The best-of-n pool, built once from the initial prover."""

    def update(self, agent: Any, episodes: Sequence[Episode]) -> dict[str, float]:
        # 1. this round's verifier-half data: the played episodes plus grouped samples (or rule-made ones).
        picks = self._rng.choice(len(self.problems), min(self.samples_per_round, len(self.problems)), replace=False)
        if self.source == "rules":
            self.say(f"rule-made solutions of {len(picks)} verifier-half problems")
            new = rule_made([self.problems[i] for i in picks], self.group_size, self._rng, self.max_value)
        else:
            self.say(f"sampling the prover on {len(picks)} verifier-half problems")
            played = [ep for ep in episodes if ep.info.get("prover", {}).get("half") == "verifier"
                      and "correct" in ep.info["prover"]]
            sampled = rollout(self.prover, [self.problems[i] for i in picks], rules.ROLES, self.group_size,
                              instruct=self.instruct)
            new = [{"question": ep.info["prover"]["question"], "solution": solution_of(ep),
                    "correct": bool(ep.info["prover"]["correct"]), "role": ep.info["prover"]["role"],
                    "half": ep.info["prover"]["half"]} for ep in [*played, *sampled]]
        if not all(s["half"] == "verifier" for s in new):
            raise ArenaError("the verifier's problems must all come from the verifier half of the pool")
        self.rounds.append(new)
        if self.pool is None:  # first round: helpful samples of the initial prover, held out
            self.pool = build_best_of_n_pool(self.prover, self.bon_problems, self.bon_samples, self.bon_n,
                                             self.instruct, self.bon_temperature)

        # 2. re-initialise from the starting weights; 3. train on the mixture.
        agent.model.load_state_dict(self.start)
        data = self.mixture()
        self.say(f"training on {len(data)} solutions from {len(self.rounds)} round(s)")
        metrics = self.inner.fit_solutions(agent, data)
        metrics.setdefault("loss", 0.0)  # no usable pair yet (every solution right, or every one wrong)
        metrics.setdefault("pair_accuracy", 0.5)

        # 4. evaluate the fresh verifier on problems it never trained on.
        self.say(f"held-out AUC and best-of-{self.bon_n}")
        held = [ep for ep in episodes if ep.info.get("prover", {}).get("half") == "prover"
                and "correct" in ep.info["prover"]]
        scores = verifier_scores(agent, [ep.info["prover"]["question"] for ep in held],
                                 [solution_of(ep) for ep in held])
        pos = [s for s, ep in zip(scores, held) if s is not None and ep.info["prover"]["correct"]]
        neg = [s for s, ep in zip(scores, held) if s is not None and not ep.info["prover"]["correct"]]
        auc = rules.auc(pos, neg)
        metrics.update({
            "heldout_auc": 0.5 if math.isnan(auc) else auc,
            "best_of_n": best_of_n_accuracy(agent, self.pool, self.bon_n, seed=len(self.rounds)),
            "data_rounds": float(len(self.rounds)),
            "data_solutions": float(len(data)),
            "data_prover_half": float(sum(rules.problem_half(rules.Problem(pid.split(":", 1)[1], 0)) == "prover"
                                          for pid, _, _ in data)),
        })
        self.last_metrics = {k: float(v) for k, v in metrics.items()}
        return {k: self.last_metrics[k] for k in SHOWN_VERIFIER if k in self.last_metrics}

    def mixture(self) -> list[tuple[str, str, bool]]:
        """(problem id, verifier text, correct): the round's training data.

        `constant` (the paper's): `mixture_problems` problems in all, an equal share from every
        round so far (`provers=uniform`: `arena.league.meta.allocate` of uniform weights, i.e.
        `total // rounds + (r < total % rounds)`; `latest`: all from the newest round) -- a new
        round's solutions replace part of the old ones -- each with
        `solutions_per_problem` correct and as many incorrect solutions -- the same data, hence
        the same verifier steps, every round. `growing`: `mixture_problems` problems from EACH
        round so far, each with as many correct as incorrect solutions as it has (the mixture and
        the steps grow with the rounds). Drawn with replacement where a round or a problem has
        too few."""
        rounds = len(self.rounds)
        shares = allocate(self.mixture_problems, meta_weights(self.provers, rounds, latest=rounds - 1))
        data = []
        for r, solutions in enumerate(self.rounds):
            by_q: dict[str, list[dict[str, Any]]] = {}
            for s in solutions:
                by_q.setdefault(s["question"], []).append(s)
            usable = sorted(q for q, ss in by_q.items() if any(s["correct"] for s in ss)
                            and not all(s["correct"] for s in ss))
            if self.mixture_rule == "constant":  # round r's share of a fixed total, by the league's rule
                share = shares[r]
            else:
                share = self.mixture_problems
            if not usable or not share:
                continue
            chosen = self._rng.choice(len(usable), share, replace=len(usable) < share)
            for j, qi in enumerate(chosen):
                q = usable[qi]
                pos = [s for s in by_q[q] if s["correct"]]
                neg = [s for s in by_q[q] if not s["correct"]]
                m = self.solutions_per_problem if self.mixture_rule == "constant" else min(len(pos), len(neg))
                for s in [*_pick(pos, m, self._rng), *_pick(neg, m, self._rng)]:
                    data.append((f"{r}.{j}:{q}", rules.verifier_prompt(q, s["solution"]), s["correct"]))
        return data

    # -- state that must survive a resume
    def save(self, directory: Path) -> None:
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        with open(directory / BUFFER_FILE, "w") as f:
            for r, solutions in enumerate(self.rounds):
                for s in solutions:
                    f.write(json.dumps({"round": r, **s}) + "\n")
        (directory / POOL_FILE).write_text(json.dumps({"n": self.bon_n, "pool": self.pool or []}))
        (directory / METRICS_FILE).write_text(json.dumps(self.last_metrics, indent=1))

    def load(self, directory: Path) -> None:
        directory = Path(directory)
        rounds: list[list[dict[str, Any]]] = []
        for line in (directory / BUFFER_FILE).read_text().splitlines():
            row = json.loads(line)
            r = row.pop("round")
            while len(rounds) <= r:
                rounds.append([])
            rounds[r].append(row)
        self.rounds = rounds
        self.pool = json.loads((directory / POOL_FILE).read_text())["pool"]


def rule_made(problems: Sequence[rules.Problem], group: int, rng: np.random.Generator,
              max_value: int | None) -> list[dict[str, Any]]:
    """Per problem: its rule-made correct solution and `group` corruptions (`rules.sneaky_solution`: one
    wrong step carried to the answer, half of them a +-1 error in the last step), as buffer rows."""
    out = []
    for p in problems:
        row = {"question": p.question, "half": rules.problem_half(p)}
        out.append({**row, "solution": rules.reference_solution(p), "correct": True, "role": "helpful"})
        for _ in range(group):
            text = rules.sneaky_solution(p, rng, subtle=bool(rng.integers(2)), max_value=max_value)
            out.append({**row, "solution": text, "correct": rules.is_correct(p, text), "role": "sneaky"})
    return out


def _pick(items: list[Any], m: int, rng: np.random.Generator) -> list[Any]:
    """`m` of `items` (with replacement only when there are fewer than `m`), in their order."""
    return [items[i] for i in sorted(rng.choice(len(items), m, replace=len(items) < m))] if m else []


# -- the prover's round ----------------------------------------------------------------

@dataclass(kw_only=True)
class ProverRoundLearner(RoundLearner):
    """On-policy RL of the prover against the frozen verifier, `steps` iterations per round.

    `inner` is an `agents.learners.PolicyGradientLearner` (group baseline, KL to the
    frozen initial prover); each iteration hands its `fit_rewards` freshly sampled,
    scored solutions and their rewards (SRC / CGC / goodhart).
    """

    inner: Any
    """`agents.learners.PolicyGradientLearner` (without a `reward_fn`: the rewards are computed here)."""
    verifier: Any
    """The verifier agent: trained earlier in the same round, frozen here."""
    problems: Sequence[rules.Problem]
    """The prover half of the problem pool."""
    reward: str = "src"
    """src, cgc, goodhart, or correct (the correctness-only baseline: no verifier in the reward)."""
    roles: tuple[str, ...] = rules.ROLES
    """Roles sampled each iteration (the correctness-only baseline: helpful alone)."""
    steps: int = 12
    """RL iterations per round (the paper's step budget)."""
    min_steps: int = 4
    """Iterations before the early stop may trigger."""
    early_stop: bool = True
    """Stop when sneaky-incorrect solutions score (mean over the last 3 batches) at least as high as
    helpful-correct ones."""
    problems_per_step: int = 8
    """Prover-half problems per iteration (each with both roles)."""
    group_size: int = 4
    """Solutions per problem and role (SRC's and the baseline's group)."""
    instruct: bool = False
    """Prompts with role instructions (instruction-tuned provers)."""

    def update(self, agent: Any, episodes: Sequence[Episode]) -> dict[str, float]:
        history: list[dict[str, float]] = []
        stopped = 0.0
        for step in range(self.steps):
            picks = self._rng.choice(len(self.problems), min(self.problems_per_step, len(self.problems)), replace=False)
            batch = rollout(agent, [self.problems[i] for i in picks], self.roles, self.group_size,
                            instruct=self.instruct)
            if not all(ep.info["prover"]["half"] == "prover" for ep in batch):
                raise ArenaError("the prover's RL problems must all come from the prover half of the pool")
            if self.reward != "correct":
                score_episodes(self.verifier, batch)
            rewards = prover_rewards(self.reward, [ep.info["prover"] for ep in batch]).tolist()
            m = self.inner.fit_rewards(agent, batch, rewards)
            m.update(batch_stats([ep.info["prover"] for ep in batch]))
            history.append({k: float(v) for k, v in m.items()})
            self.say(f"RL step {step + 1}/{self.steps}: helpful accuracy {m['helpful_accuracy']:.2f}, "
                     f"sneaky incorrect {m['sneaky_incorrect']:.2f}, KL {m.get('kl', 0.0):.2f}")
            recent = history[-3:]  # a 3-batch average: one batch of a few problems is too noisy to stop on
            sneaky_v = np.mean([h["sneaky_incorrect_score"] for h in recent])
            helpful_v = np.mean([h["helpful_correct_score"] for h in recent])
            if self.early_stop and "sneaky" in self.roles and step + 1 >= self.min_steps and sneaky_v >= helpful_v:
                stopped = 1.0
                break
        if not history:
            self.last_metrics = {"rl_steps": 0.0, "stopped_early": 0.0}
            return dict(self.last_metrics)
        keys = sorted({k for h in history for k in h})
        out = {k: float(np.mean([h[k] for h in history if k in h])) for k in keys}
        for k in ("kl", "helpful_accuracy", "sneaky_incorrect", "sneaky_incorrect_score", "helpful_correct_score"):
            if k in history[-1]:
                out[f"{k}_last"] = history[-1][k]
        out.update({"rl_steps": float(len(history)), "stopped_early": stopped})
        self.last_metrics = out
        return {k: out[k] for k in SHOWN_PROVER if k in out}

    def save(self, directory: Path) -> None:
        """Only this round's full metrics: the prover learner keeps no state between rounds."""
        Path(directory).mkdir(parents=True, exist_ok=True)
        (Path(directory) / METRICS_FILE).write_text(json.dumps(self.last_metrics, indent=1))

    def load(self, directory: Path) -> None:
        pass
