"""The student's round learner: measure it on the held-out questions, then train it one round.

Round k of `arena train abstain-v0` (every recipe):

1. The runner plays the round's episodes: held-out questions (`split="eval"`),
   the student as it was after k updates, the judge seat's verdicts. Their
   `AbstainEnv.round_metrics` are the round's accuracy / abstention /
   hallucination / payoff, split known / unknown.
2. `StudentLearner.update` measures the same student on every held-out question:
   exactly (`evaluation.question_stats`: answer rate, confidence of its answer, the
   learned answer/abstain threshold) and by sampling `samples` answers to each
   (`heldout_*`: accuracy, abstention, hallucination, payoff by kind -- the figures
   the experiment reports, free of the question-drawing noise of the episodes),
   writes the per-question figures to `<run>/eval/round-<k>.json`, and then trains
   it with the recipe's method:
   - `SFTRound`: `epochs` passes of supervised fine-tuning on the teacher's labels
     (`agents.learners.SFTLearner`);
   - `RLRound`: `steps` iterations of on-policy policy gradient: `questions`
     training questions x `group` sampled answers each, rewarded +1 / 0 / -k by the
     gold check (`rl`) or by the learned judge's verdict (`rl-judge`), with a
     leave-one-out baseline over the group (the same question) and a KL penalty to
     the base (`agents.learners.PolicyGradientLearner`, k1 estimator folded into
     the reward). Training questions only: the held-out ones are never trained on.

`max_updates` (> 0) stops training after that many rounds, so a run of
max_updates + 1 rounds measures the student after every update, the last included.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from arena.spaces import as_score
from arena.types import Episode, Move, Step
from games.abstain import rules
from games.abstain.evaluation import curve_metrics, question_stats
from games.abstain.metrics import summarize


class FrozenJudge:
    """A learned judge in the judge seat: scores, never trains, and is not checkpointed (every
    round's copy would be the same), so tournaments meet it once, through its spec."""

    def __init__(self, scorer: Any):
        self.scorer = scorer
        self.scorer.model.requires_grad_(False)

    def reset(self, seed: int) -> None:
        self.scorer.reset(seed)

    def act(self, observations: Sequence[dict[str, str]]) -> list[Any]:
        return self.scorer.act(observations)


def verdicts(judge: Any, answers: Sequence[str], references: Sequence[str]) -> list[bool | None]:
    """The judge's verdict on each (answer, reference), asked as the env asks it."""
    if not answers:
        return []
    obs = [{"prompt": rules.judge_prompt(a, r), "question": "", "answer": a, "reference": r}
           for a, r in zip(answers, references)]
    return [rules.judge_verdict(as_score(getattr(x, "action", x))) for x in judge.act(obs)]


@dataclass(kw_only=True)
class SFTRound:
    """Supervised fine-tuning on fixed (prompt, completion) pairs: `inner.opt.epochs` passes per round."""

    inner: Any
    """`agents.learners.SFTLearner` holding the teacher's labels."""

    def run(self, agent: Any, rng: np.random.Generator, say: Callable[[str], None], round: int) -> dict[str, float]:
        say("SFT on the teacher's labels")
        return self.inner.update(agent, [])


@dataclass(kw_only=True)
class RLRound:
    """On-policy policy gradient on training questions against the gold check or a judge."""

    inner: Any
    """`agents.learners.PolicyGradientLearner` (rewards given per batch; group = the question's prompt)."""
    facts: Sequence[rules.Fact]
    """The training questions."""
    k: float = 1.0
    judge: Any = None
    """None: reward by the gold check (`rl`); else a judge agent whose verdicts are the reward (`rl-judge`)."""
    steps: int = 4
    questions: int = 32
    group: int = 8

    def run(self, agent: Any, rng: np.random.Generator, say: Callable[[str], None], round: int) -> dict[str, float]:
        history = []
        for step in range(self.steps):
            picks = rng.choice(len(self.facts), min(self.questions, len(self.facts)), replace=False)
            batch = self.rollout(agent, [self.facts[i] for i in sorted(picks)], round)
            m = self.inner.fit_rewards(agent, batch, [e.rewards["student"] for e in batch])
            m.update(batch_stats(batch))
            history.append(m)
            say(f"RL step {step + 1}/{self.steps}: reward {m.get('reward_mean', 0.0):+.2f}, "
                f"abstain {m['train_abstention']:.2f}, "
                f"KL {m.get('kl', 0.0):.2f}")
        keys = sorted({key for h in history for key in h})
        return {key: float(np.mean([h[key] for h in history if key in h])) for key in keys}

    def rollout(self, agent: Any, facts: Sequence[rules.Fact], round: int) -> list[Episode]:
        """`group` answers per fact, rewarded; single-move episodes shaped like the env's."""
        facts = [f for f in facts for _ in range(self.group)]
        obs = [{"prompt": rules.student_prompt(f.question), "question": f.question, "answer": "", "reference": ""}
               for f in facts]
        moves = [a if isinstance(a, Move) else Move(a) for a in agent.act(obs)]
        texts = [m.action if isinstance(m.action, str) else "" for m in moves]
        results = [rules.outcome(t, f.answer) for t, f in zip(texts, facts)]
        judged = [i for i, r in enumerate(results) if r != "abstain"]
        verdict: dict[int, bool | None] = {}
        if self.judge is not None:
            verdict = dict(zip(judged, verdicts(self.judge, [texts[i] for i in judged],
                                                [facts[i].answer for i in judged])))
        episodes = []
        for i, (f, o, m, t, r) in enumerate(zip(facts, obs, moves, texts, results)):
            gold = rules.payoff(r, self.k)
            reward = gold if self.judge is None else rules.judged_payoff(r, verdict.get(i), self.k)
            info = {"kind": f.kind, "outcome": r, "payoff": gold, "correct": r == "correct",
                    "verdict": verdict.get(i), "judged": i in verdict}
            episodes.append(Episode(i, 0, {"student": reward}, {"student": info}, [Step("student", o, t, m.extras)],
                                    round))
        return episodes


def batch_stats(batch: Sequence[Episode]) -> dict[str, float]:
    infos = [e.info["student"] for e in batch]
    out = {"train_abstention": float(np.mean([i["outcome"] == "abstain" for i in infos])),
           "train_accuracy": float(np.mean([i["correct"] for i in infos])),
           "train_gold_payoff": float(np.mean([i["payoff"] for i in infos]))}
    judged = [i for i in infos if i["judged"]]
    if judged:
        out["judge_agreement"] = float(np.mean([i["verdict"] is not None and i["verdict"] == i["correct"]
                                                for i in judged]))
    return out


@dataclass(kw_only=True)
class StudentLearner:
    """Measures the student on the held-out questions, then runs one round of its method."""

    method: SFTRound | RLRound
    eval_facts: Sequence[rules.Fact]
    k: float = 1.0
    out_dir: Path | None = None
    """Where `round-<k>.json` (per-question figures) go; None: nowhere."""
    max_updates: int = 0
    """Train in rounds 0..max_updates-1 only (0: every round)."""
    samples: int = 2
    """Sampled answers per held-out question in each measurement."""
    progress: Callable[[str], None] | None = field(default=None, repr=False)
    _rng: np.random.Generator = field(default_factory=lambda: np.random.default_rng(0), repr=False)

    def reset(self, seed: int) -> None:
        self._rng = np.random.default_rng(seed)
        self.method.inner.reset(seed)

    def save(self, directory: Path) -> None:
        """The method's optimizer state (AdamW moments carry over between rounds)."""
        self.method.inner.save(Path(directory))

    def load(self, directory: Path) -> None:
        self.method.inner.load(Path(directory))

    def say(self, message: str) -> None:
        if self.progress:
            self.progress(message)

    def measure(self, agent: Any, round: int) -> dict[str, float]:
        """Exact per-question figures (`question_stats`) and `samples` sampled answers to every
        held-out question (`heldout_*`: accuracy, abstention, hallucination, payoff by kind)."""
        stats = question_stats(agent, self.eval_facts)
        agent.reset(int(self._rng.integers(2**62)))
        facts = [f for f in self.eval_facts for _ in range(self.samples)]
        obs = [{"prompt": rules.student_prompt(f.question), "question": f.question, "answer": "", "reference": ""}
               for f in facts]
        texts = [getattr(a, "action", a) for a in agent.act(obs)]
        records = [{"kind": f.kind, "outcome": rules.outcome(t, f.answer)} for f, t in zip(facts, texts)]
        for r in records:
            r["payoff"] = rules.payoff(r["outcome"], self.k)
        for s, chunk in zip(stats, (records[i:i + self.samples] for i in range(0, len(records), self.samples))):
            s["sampled"] = [r["outcome"] for r in chunk]
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            tmp = self.out_dir / f"round-{round}.json.tmp"
            tmp.write_text(json.dumps({"round": round, "k": self.k, "questions": stats}))
            tmp.replace(self.out_dir / f"round-{round}.json")
        sampled = {f"heldout_{k}": v for k, v in summarize(records).items() if k != "n" and not k.endswith("_n")}
        return {**curve_metrics(stats, self.k), **sampled}

    def update(self, agent: Any, episodes: Sequence[Episode]) -> dict[str, float]:
        round = episodes[0].round if episodes else 0
        self.say("measuring on the held-out questions")
        out = self.measure(agent, round)
        if self.max_updates and round >= self.max_updates:
            return {**out, "trained": 0.0}
        return {**out, **self.method.run(agent, self._rng, self.say, round), "trained": 1.0}
