"""Recipes for abstain-v0: four ways to train the same base student on the same questions.

| recipe | the student learns from | judge seat |
|---|---|---|
| `sft` | SFT on a teacher's correct answers to every training question, known and unknown | `scripted:gold` |
| `sft-idk` | the same, but the teacher says "I don't know" where it guesses the student does not know: on unknown facts, with exactly `idk_noise` (20%) of all items given the other label | `scripted:gold` |
| `rl` (default) | policy gradient + KL to the base on +1 / 0 / -k from the gold check | `scripted:gold` |
| `rl-judge` | the same, with the reward read off a learned comparison judge's verdicts | the judge (frozen) |

Every recipe starts from the base pretrained on the fact base of `data_seed`
(the shipped `games/abstain/assets` for data seed 0; others are pretrained once and
cached, `pretraining.assets_for`), trains on the `train` split (known and unknown
countries), and plays the held-out `eval` split each round (`games.abstain.training`).
The student's payoff in the game is always the gold one; in `rl-judge` only its
training reward comes from the judge.

Both learners keep their AdamW moments from one step and round to the next
(`keep_state`, checkpointed with the student): a fresh AdamW per RL iteration makes
its first step a sign step of size lr on every weight, which on the tiny student
undid its knowledge faster than the reward could teach it anything. The RL defaults
(lr 3e-4, 6 iterations of 32 questions x 8 answers per round, 2 gradient steps per
iteration, KL coefficient 0.1) were chosen on data seed 0 among lr 2e-4..1e-3 and
1-4 steps per iteration: higher rates or more steps per batch lost known facts
faster than they gained abstentions.

`--seat student=hf:<dir or hub id>` trains another causal LM (its fact knowledge
is then whatever it has); `--seat judge=<spec>` replaces the judge (for `rl-judge`,
a scorer whose verdicts become the reward).
"""  # noqa: E501 (a table row is one line)
from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

from arena.selfplay import RecipeContext, SeatSetup, Setup, resolve_params, with_data_seed
from arena.types import ArenaError
from games.abstain import rules

METHODS = ("sft", "sft-idk", "rl", "rl-judge")


@dataclass
class Params:
    """Hyper-parameters of the abstain-v0 recipes (`--set name=value`), sized for the tiny student on a 2-core CPU."""

    k: float = 1.0
    """Penalty for a wrong answer (payoff +1 correct, 0 abstain, -k wrong); answering pays iff P(correct) > k/(1+k)."""
    data_seed: int | None = None
    """Fact base (and so the base model); unset: the run seed (`arena.selfplay.with_data_seed`)."""
    model: str = ""
    """Base student directory (default: the base pretrained on the data seed's fact base)."""
    judge_model: str = ""
    """Learned judge directory for rl-judge (default: the one pretrained with the base)."""
    sft_lr: float = 5e-4
    """AdamW learning rate of SFT."""
    sft_epochs: int = 1
    """Passes over the teacher's labels per round (sft, sft-idk)."""
    sft_batch: int = 32
    """Pairs per SFT step."""
    idk_noise: float = 0.2
    """sft-idk: the fraction of training items the teacher labels wrongly (known ones 'I don't know',
    unknown ones with their answer), drawn at random."""
    rl_lr: float = 3e-4
    """AdamW learning rate of the policy gradient."""
    rl_steps: int = 6
    """RL iterations per round (each on freshly sampled answers)."""
    rl_questions: int = 32
    """Training questions per RL iteration."""
    group: int = 8
    """Answers sampled per question (the leave-one-out baseline's group)."""
    rl_batch: int = 128
    """Samples per gradient step (an iteration of questions x group samples takes several)."""
    kl_coef: float = 0.1
    """beta: weight of KL(pi || base), folded into the reward per sample (k1)."""
    kl_estimator: str = "k1"
    """k1: KL folded into each sample's reward (the gradient of KL(pi || base)); k3: a k3 penalty in the loss (GRPO)."""
    max_updates: int = 0
    """Train in the first max_updates rounds only (0: every round); the experiment plays one round more
    than it trains so that the last update is measured too."""
    threads: int = 1
    """torch CPU threads (0: torch's default); one is fastest for the tiny model on a shared CPU."""

    def __post_init__(self) -> None:
        if self.k < 0 or not 0 <= self.idk_noise <= 1:
            raise ArenaError("k must be >= 0 and idk_noise in [0, 1]")
        if min(self.rl_steps, self.rl_questions, self.rl_batch, self.sft_epochs, self.sft_batch) < 1 or self.group < 2:
            raise ArenaError("rl_steps, rl_questions, rl_batch, sft_epochs and sft_batch must be >= 1, group >= 2")


def build(ctx: RecipeContext, method: str) -> Setup:
    """Seats and the student's learner for one method (see the module docstring's table)."""
    import torch

    from agents.learners import Optimization, PolicyGradientLearner, SFTLearner, freeze
    from games.abstain.pretraining import assets_for
    from games.abstain.training import FrozenJudge, RLRound, SFTRound, StudentLearner

    if method not in METHODS:
        raise ArenaError(f"unknown method {method!r}; known: {', '.join(METHODS)}")
    p = with_data_seed(resolve_params(Params, ctx.params), ctx.seed)
    on_cpu = ctx.device.startswith("cpu") if ctx.device else not torch.cuda.is_available()
    if p.threads and on_cpu:
        torch.set_num_threads(p.threads)
    seed = p.data_seed
    assets: list[Path] = []

    def shipped(name: str) -> str:  # the data seed's base or judge, pretrained on first use
        if not assets:
            assets.append(assets_for(seed, ctx.runs_dir))
        return f"hf:{assets[0] / name}"

    env_kwargs = {"k": p.k, "data_seed": seed, "split": "eval"}
    given = ctx.seat_specs
    student_default = f"hf:{p.model}" if p.model else "" if "student" in given else shipped("base")
    student, student_spec = ctx.agent("student", student_default, **env_kwargs)
    if not (hasattr(student, "model") and hasattr(student, "tokenizer") and hasattr(student, "generate")):
        raise ArenaError("abstain-v0's student seat needs a Hugging Face generator (hf:<model>) to be trained")
    if method == "rl-judge":
        judge_default = f"hf:{p.judge_model}" if p.judge_model else "" if "judge" in given else shipped("judge")
        judge, judge_spec = ctx.agent("judge", judge_default, **env_kwargs)
        if hasattr(judge, "model") and hasattr(judge, "scores"):
            judge = FrozenJudge(judge)
    else:
        judge, judge_spec = ctx.agent("judge", "scripted:gold", **env_kwargs)

    base = rules.make_fact_base(seed)
    train_facts = [f for f in base.facts if f.split == "train"]
    if method in ("sft", "sft-idk"):
        labels = rules.teacher_labels(train_facts, idk=method == "sft-idk", noise=p.idk_noise, seed=seed)
        inner = SFTLearner(data=labels, opt=Optimization(lr=p.sft_lr, batch_size=p.sft_batch, epochs=p.sft_epochs,
                                                           keep_state=True))
        train = SFTRound(inner=inner)
    else:
        reference = freeze(copy.deepcopy(student.model))  # the base, frozen (before any checkpoint is loaded)
        inner = PolicyGradientLearner(seat="student", reference=reference,
                                      beta=p.kl_coef, kl_estimator=p.kl_estimator, baseline="rloo",
                                      opt=Optimization(lr=p.rl_lr, batch_size=p.rl_batch, keep_state=True))
        train = RLRound(inner=inner, facts=train_facts, k=p.k, judge=judge if method == "rl-judge" else None,
                        steps=p.rl_steps, questions=p.rl_questions, group=p.group)
    learner = StudentLearner(method=train, eval_facts=[f for f in base.facts if f.split == "eval"], k=p.k,
                             out_dir=Path(ctx.run_dir) / "eval", max_updates=p.max_updates)
    return Setup({"student": SeatSetup(student, learner, student_spec),
                  "judge": SeatSetup(judge, None, judge_spec)},
                 env_kwargs=env_kwargs, learner_order=["student"], params=p)


def sft(ctx: RecipeContext) -> Setup:
    """SFT on a teacher's correct answers to every training question, known and unknown."""
    return build(ctx, "sft")


def sft_idk(ctx: RecipeContext) -> Setup:
    """SFT on a teacher's labels with "I don't know" where it guesses the student does not know (20% wrong)."""
    return build(ctx, "sft-idk")


def rl(ctx: RecipeContext) -> Setup:
    """Policy gradient with a KL penalty on +1 / 0 / -k from the gold check."""
    return build(ctx, "rl")


def rl_judge(ctx: RecipeContext) -> Setup:
    """Policy gradient with a KL penalty on +1 / 0 / -k from a learned comparison judge."""
    return build(ctx, "rl-judge")
