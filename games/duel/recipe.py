"""duel-v0's recipe: Nash learning from human feedback (Munos et al. 2023) with a gold preference.

With `--env judge=gold`, duel-v0 is NLHF's preference game: two policies answer the same prompt
(`Add: a+b=`), a preference picks the winner (here the gold score of `rules.SumTask`, closeness to
a+b: the "human" is a scoring function), the winner gets +1 and the loser -1 (0 for a tie).
Its Nash equilibrium is the policy preferred to every other; the preference being a score's
comparison (transitive), that is the policy that always answers exactly.

| seat | agent | learner |
|---|---|---|
| `policy_a`, `policy_b` | the tiny char-level Llama, SFT'd on sums (`hf:<cache dir>`) | `PolicyGradientLearner` |

- **The start.** A fresh tiny model writes no number, and every duel of two such answers is a
  tie: there is nothing to learn from. So both seats start from one small SFT on correct sums
  (every `Add: a+b=` of the task with its answer, `sft_steps` steps; cached in
  `<runs>/_cache/duel/sft-<key>/`), short enough that its sampled answers are numbers near the
  sum but rarely exact (measured: 4% exact, mean gold score 0.48 at temperature 1 after 200
  steps). The start's seed is `base_seed`, not the run's: every run seed and every exploiter
  (`arena train --exploiters`) starts from the same base, so seeds vary the RL only.
- **The learner.** REINFORCE on the seat's episode reward (+1/-1/0) with a KL(π‖π_ref) penalty
  to the SFT start folded into the reward (`beta`, the "k1" estimator: NLHF's regularised game),
  `steps` AdamW steps per round, each on all of the round's own samples, AdamW's moments kept
  across rounds.
  The baseline is leave-one-out over the whole round: NLHF's per-prompt group would need several
  answers to one prompt, and the game's 2,500 prompts rarely repeat within a round.
- **League.** `arena train duel-v0 --env judge=gold --opponents nash` trains policy_a against the
  Nash mixture of its own past checkpoints (docs/league.md#an-alignment-game-duel-v0-as-nash-learning-from-human-feedback);
  without `--opponents` both seats learn, each against the other's current policy.

A seat given another agent (`--seat policy_b=scripted:adder?noise=3`) plays untrained.
Under `judge=seat` (the game's default: three seats) this recipe trains nothing: it plays the
`--seat` agents (default `scripted:random`) as duel-v0 did before it had a recipe, and refuses
`--set` in one line that names `--env judge=gold`; a learned judge is another game's job.
"""  # noqa: E501 (a table row is one line)
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from arena.cache import build_keyed
from arena.recipes import default_setup
from arena.selfplay import RecipeContext, SeatSetup, Setup, resolve_params
from arena.types import ArenaError, Episode, Step
from games.duel import rules

SEATS = ("policy_a", "policy_b")
ONE_STEP = 10**9
"""Micro-batches accumulated per AdamW step: all of them (a pass over the round's samples is one step)."""


@dataclass
class Params:
    """Hyper-parameters of duel-v0's NLHF recipe (`--set name=value`), sized for the tiny model on a CPU."""

    lr: float = 1e-3
    """AdamW learning rate of the policy gradient. Chosen on one check, the start against a fixed
    `scripted:adder?noise=5`, 10,240 fresh samples, its mean reward over 1,024 episodes from -0.46: lr 1e-3
    with one step per 512 samples -> -0.28 (per 1,024: -0.39, per 256: -0.24); 3e-4 per 256 -> -0.33;
    1e-4 per 256 -> -0.38."""
    beta: float = 0.05
    """KL coefficient: beta * KL(pi || pi_ref) to the SFT start, folded into each sample's reward (k1)."""
    steps: int = 1
    """AdamW steps per round, each on all of the round's samples (an exploiter's: per exploiter step).
    One: a round's samples come from the policy before its first step, so later steps are off-policy;
    at lr 1e-3, four steps a round (each on a quarter of 1,024 samples) collapsed the check above (mean
    gold score 0.45 to 0.15 in 5 rounds), where one step per 256 fresh samples did not."""
    batch_size: int = 256
    """Samples per forward pass (memory only: the round's micro-batches are accumulated into each step)."""
    temperature: float = 1.0
    """Sampling temperature of both policies (the policy gradient needs samples, not argmaxes)."""
    max_new_tokens: int = 4
    """Longest answer (a sum of the task has at most 2 digits, then EOS)."""
    sft_steps: int = 200
    """SFT steps of the start on correct sums (a fresh tiny model writes no number: every duel a tie)."""
    sft_lr: float = 3e-3
    """Peak learning rate of the SFT."""
    base_seed: int = 0
    """Seed of the start (its initial weights and SFT batches): one start for every run seed."""
    tiny_shape: str = ""
    """Overrides of the tiny model's shape, e.g. `hidden_size=64,num_hidden_layers=2`
    (empty: `agents.tiny.TINY_DEFAULTS`, 0.88M parameters)."""
    threads: int = 1
    """torch CPU threads (0: torch's default); one is fastest for the tiny model on a shared CPU."""

    def __post_init__(self) -> None:
        if self.beta < 0 or self.temperature <= 0 or self.lr <= 0:
            raise ArenaError("beta must be >= 0, temperature and lr > 0")
        if min(self.steps, self.batch_size, self.max_new_tokens, self.sft_steps) < 1:
            raise ArenaError("steps, batch_size, max_new_tokens and sft_steps must be at least 1")


@dataclass(frozen=True)
class SeatReward:
    """A seat's episode reward (+1 win, -1 loss, 0 tie): the policy gradient's reward."""

    seat: str

    def __call__(self, episodes: Sequence[Episode]) -> list[float]:
        return [float(ep.rewards[self.seat]) for ep in episodes]


def one_group(episode: Episode, step: Step) -> int:
    """Every sample in one group: the baseline is the leave-one-out mean of the whole round."""
    return 0


def sft_pairs(task: rules.SumTask) -> list[tuple[str, str]]:
    """Every prompt of the task with its correct answer."""
    n = task.max_operand + 1
    return [(f"Add: {a}+{b}=", str(a + b)) for a in range(n) for b in range(n)]


def sampling(p: Params):
    from agents.hf import SamplingConfig

    return SamplingConfig(temperature=p.temperature, max_new_tokens=p.max_new_tokens)


def start_model(p: Params, runs_dir: Path) -> Path:
    """The start's directory: the tiny model SFT'd on sums (`sft_steps`), built once per settings."""
    from agents.tiny import parse_shape
    from agents.tiny import pretrain as sft

    shape = parse_shape(p.tiny_shape)
    task = rules.TASKS["sum"]

    def build(tmp: Path) -> None:
        sft(sft_pairs(task), tmp, steps=p.sft_steps, seed=p.base_seed, lr=p.sft_lr, batch_size=32,
            warmup=min(20, p.sft_steps), progress=sys.stderr.isatty(), log=lambda s: None, sampling=sampling(p),
            **shape)

    key = {"steps": p.sft_steps, "lr": p.sft_lr, "seed": p.base_seed, "shape": shape,
           "max_operand": task.max_operand, "version": 1}
    return build_keyed(runs_dir, "duel", "sft", key, build,
                       what=f"the start: the tiny model SFT'd on sums ({p.sft_steps} steps)")


def build(ctx: RecipeContext) -> Setup:
    """Both policy seats: the SFT'd tiny model, each with a policy-gradient learner (judge=gold)."""
    if ctx.env.get("judge", "seat") != "gold":
        if ctx.params:
            raise ArenaError(f"--set {', '.join(sorted(ctx.params))}: duel-v0's recipe trains the policies "
                             "with a gold preference: add --env judge=gold")
        return default_setup(ctx)  # the judge seat's game, untrained, as before this recipe
    if ctx.env.get("task", "sum") != "sum":
        raise ArenaError("duel-v0's recipe SFTs its start on the built-in `sum` task: leave out the task")
    import torch

    from agents.learners import Optimization, PolicyGradientLearner, reference_policy

    p = resolve_params(Params, ctx.params)
    on_cpu = ctx.device.startswith("cpu") if ctx.device else not torch.cuda.is_available()
    if p.threads and on_cpu:
        torch.set_num_threads(p.threads)
    start: list[Path] = []

    def default_spec() -> str:  # built only when a seat plays it
        if not start:
            start.append(start_model(p, ctx.runs_dir))
        return f"hf:{start[0]}?temperature={p.temperature}&max_new_tokens={p.max_new_tokens}"

    seats = {}
    for seat in SEATS:
        agent, spec = ctx.agent(seat, "" if seat in ctx.seat_specs else default_spec())
        learner = None
        if hasattr(agent, "model") and hasattr(agent, "tokenizer"):
            learner = PolicyGradientLearner(
                seat=seat, reward_fn=SeatReward(seat), reference=reference_policy(agent.model), beta=p.beta,
                kl_estimator="k1", baseline="rloo", group_fn=one_group,
                opt=Optimization(lr=p.lr, batch_size=p.batch_size, grad_accum_steps=ONE_STEP, epochs=p.steps,
                                 keep_state=True))
        seats[seat] = SeatSetup(agent, learner, spec)
    return Setup(seats, params=p)
