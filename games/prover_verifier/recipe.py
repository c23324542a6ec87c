"""Recipes for prover-verifier-v1 (where the game meets concrete agents and learners).

- `default` (`checkability`): Kirchner et al.'s checkability training
  (`games.prover_verifier.training`), on the shipped tiny models unless `--seat`
  names others, e.g. `--seat prover=hf:Qwen/Qwen2.5-0.5B-Instruct
  --seat verifier=hf:<smaller model> --set data=gsm8k.jsonl --set instruct=true`.
- `correctness`: the paper's correctness-only baseline (reward = correct, helpful role only).
- `scripted`: rule-based players and a spot-checking verifier (engine tests).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from arena.selfplay import RecipeContext, SeatSetup, Setup, resolve_params, with_data_seed
from arena.types import ArenaError
from games.prover_verifier import data as pv_data
from games.prover_verifier import rules
from games.prover_verifier.bots import SpotCheckLearner, SpotCheckVerifier
from games.prover_verifier.pretraining import ASSETS
from games.prover_verifier.pretraining import pretrain as _pretrain


def scripted(ctx: RecipeContext) -> Setup:
    """Rule-based prover and a spot-checking verifier that learns to check more often."""
    prover, prover_spec = ctx.agent("prover", "scripted:role-play")
    verifier, verifier_spec = ctx.agent("verifier", "scripted:spot-check")
    learner = SpotCheckLearner() if isinstance(verifier, SpotCheckVerifier) else None
    return Setup({"prover": SeatSetup(prover, None, prover_spec),
                  "verifier": SeatSetup(verifier, learner, verifier_spec)})


@dataclass
class CheckabilityParams:
    """Hyper-parameters of checkability training (`--set name=value`).

    Names follow Kirchner et al. 2024 / docs/algorithms.md#checkability where the paper
    names the quantity; defaults are sized for the tiny models on a 2-core CPU.
    """

    reward: str = "src"
    """Prover reward: src (signed relative convincingness), cgc (correctness-gated) or goodhart (R = V)."""
    data: str = ""
    """GSM8K-style JSONL of problems (`question`, `answer` ending in `#### <number>`); empty = synthetic."""
    instruct: bool = False
    """Tell the prover in words what its role asks (for instruction-tuned models; the tiny model reads the role
    line)."""
    pool_size: int = 4000
    """Synthetic problems generated (split by hash into the prover and the verifier half)."""
    pool_seed: int | None = None
    """Seed of the synthetic problem pool; unset: 1234 + the run seed, so seeds vary the data as well as
    training (`arena.recipes.with_data_seed`; set it to pin the data across seeds; the run's config
    records the value used)."""
    min_steps: int = 2
    """Fewest arithmetic steps in a synthetic problem."""
    max_steps: int = 4
    """Most arithmetic steps in a synthetic problem. 4, where the tiny prover (trained on 2-3 steps) is
    right on about 2/3 of helpful attempts, so accuracy and legibility have room to move (the paper's
    correctness-only baseline raised it from 0.64 to 0.81 in 3 rounds on seed 0); at 3 it starts at 1.00."""
    max_value: int = 9
    """Every number of a synthetic problem stays in 0..max_value (9: the one-digit task the tiny models learned)."""
    verifier_lambda: float = 1e-3
    """lambda: weight of the score penalty in the verifier loss (keeps scores near zero). Held-out paired
    AUC of round 0's verifier, mean of seeds 0-2 (its base: 0.91): 0.83 at 0, 0.81 at 1e-3, 0.74 at 1e-2
    (centred; the paper's form: 0.82 at 1e-3, 0.74 at 1e-2). docs/results/checkability.md has the table."""
    verifier_penalty: str = "centred"
    """centred: lambda*(E[V])^2, which only removes the shift Bradley-Terry leaves free; paper:
    lambda*E[V^2], which also shrinks the differences BT learns (`agents.losses.verifier_loss`)."""
    verifier_lr: float = 5e-4
    """Verifier AdamW learning rate (2e-3 overfit the 64-problem mixture: held-out paired AUC fell)."""
    verifier_epochs: int = 10
    """Passes over the verifier's mixture per round (the verifier restarts from its initial weights every
    round; with the constant mixture every round's verifier takes the same steps: 10 x 64 problems / 16
    per step = 40). More steps overfit the 64 problems: from a base at held-out paired AUC 0.975, 120
    steps at 2e-3 left 0.71, at 5e-4 0.82; 40 at 2e-4 0.90 (seed 0)."""
    verifier_batch: int = 16
    """Problems per verifier optimisation step (every correct/incorrect pair within them is a BT term)."""
    mixture: str = "constant"
    """The verifier's training mixture. constant (the paper's): `verifier_problems` problems in all, an
    equal share from every round so far, `verifier_solutions` correct + as many incorrect per problem:
    the same verifier steps every round. growing: `verifier_problems` from EACH round so far (more
    data and steps every round; the confound the paper's design avoids)."""
    verifier_provers: str = "uniform"
    """How the constant mixture shares its problems among the rounds' provers, an opponent rule of the
    engine's league (`arena.league.meta`): uniform (the paper's: an equal share per round, fictitious
    play over the pool of past provers) or latest (the newest prover only: no history). pfsp and
    nash need a verifier-vs-prover meta-game, which the league does not build for asymmetric games."""
    verifier_problems: int = 64
    """Problems in the verifier's mixture (constant), or from each round so far (growing)."""
    verifier_solutions: int = 2
    """Correct solutions per mixture problem, and as many incorrect ones (constant mixture)."""
    verifier_data: str = "prover"
    """Where the verifier's solutions come from: prover (the game: every round's prover) or rules (a
    control without the game: the rule-made solution and rule-made corruptions of each problem)."""
    verifier_samples: int = 48
    """Verifier-half problems the current prover solves each round for the verifier's data."""
    group_size: int = 4
    """Solutions per problem and role, both in the verifier's samples and in the prover's RL batches."""
    prover_lr: float = 5e-4
    """Prover AdamW learning rate (policy gradient)."""
    prover_steps: int = 12
    """RL iterations per round: the round's step budget (the paper's PPO steps)."""
    prover_min_steps: int = 6
    """RL iterations before the early stop may end the round."""
    early_stop: bool = True
    """End the prover's round once sneaky-incorrect solutions score as high as helpful-correct ones."""
    prover_problems: int = 8
    """Prover-half problems per RL iteration (each solved group_size times in each role)."""
    kl_coef: float = 0.2
    """beta: weight of the KL penalty to the prover's initialisation. 0.2, not 0.05: over seeds 0-2
    of the demo, 0.05 let the tiny prover drift (KL 6.7-8.8 by round 3) and its helpful accuracy fall
    to 0.55-0.70; 0.2 kept KL under 1 and helpful accuracy at 0.91-0.97 (0.1: 0.78-0.88)."""
    baseline: str = "rloo"
    """Policy-gradient group baseline: rloo (leave-one-out), mean (GRPO) or none."""
    bon_n: int = 4
    """n of balanced best-of-n (n/2 correct and n/2 incorrect helpful samples per problem)."""
    bon_problems: int = 48
    """Held-out problems sampled for the best-of-n pool (those with n/2 incorrect helpful samples are kept)."""
    bon_samples: int = 24
    """Helpful samples per held-out problem drawn (once, from the initial prover) for the pool."""
    bon_temperature: float = 1.5
    """Temperature of the pool's helpful samples: the tiny prover is right ~100% of the time at 1.0,
    so its honest mistakes (the incorrect half) are drawn at 1.5 (~8% wrong)."""

    def __post_init__(self) -> None:
        if self.reward not in ("src", "cgc", "goodhart"):
            raise ArenaError(f"reward must be src, cgc or goodhart, not {self.reward!r}")
        if self.baseline not in ("rloo", "mean", "none"):
            raise ArenaError(f"baseline must be rloo, mean or none, not {self.baseline!r}")
        if self.bon_n < 2 or self.bon_n % 2:
            raise ArenaError("bon_n must be an even number >= 2")
        if self.verifier_data not in ("prover", "rules"):
            raise ArenaError(f"verifier_data must be prover or rules, not {self.verifier_data!r}")
        if self.mixture not in ("constant", "growing"):
            raise ArenaError(f"mixture must be constant or growing, not {self.mixture!r}")
        if self.verifier_provers not in ("uniform", "latest"):
            raise ArenaError(f"verifier_provers must be uniform or latest (pfsp and nash need a verifier-vs-"
                             f"prover meta-game, not built), not {self.verifier_provers!r}")
        if self.verifier_provers != "uniform" and self.mixture != "constant":
            raise ArenaError("verifier_provers shares the constant mixture: use it with mixture=constant")
        if self.verifier_penalty not in ("centred", "paper"):
            raise ArenaError(f"verifier_penalty must be centred or paper, not {self.verifier_penalty!r}")
        if self.verifier_solutions < 1 or self.verifier_problems < 1:
            raise ArenaError("verifier_problems and verifier_solutions must be at least 1")
        if self.group_size < 2:
            raise ArenaError("group_size must be at least 2 (SRC and the baseline compare within a group)")


DATA_SEED_BASE = 1234
"""`pool_seed` = DATA_SEED_BASE + run seed unless set (distinct from the pretraining problems' seeds)."""


def default_prover_spec() -> str:
    return f"hf:{ASSETS / 'prover'}"


def default_verifier_spec() -> str:
    return f"hf:{ASSETS / 'verifier'}"


def problem_pool(params: CheckabilityParams) -> list[rules.Problem]:
    if params.data:
        problems, _ = pv_data.load_jsonl(params.data)
        return problems
    return pv_data.synthetic_pool(params.pool_size, params.pool_seed, params.min_steps, params.max_steps,
                                  params.max_value)


def problem_split(params: CheckabilityParams, halves: dict[str, list[rules.Problem]] | None = None
                  ) -> tuple[list[rules.Problem], list[rules.Problem]]:
    """(held-out best-of-n problems, the prover's RL problems), both from the prover half.

    The best-of-n problems are taken out of the prover's RL problems so that they stay
    unseen by both players (the verifier never trains on the prover half). `arena attack`
    draws its sneaky attacker's problems from the same RL problems."""
    halves = halves or pv_data.split_halves(problem_pool(params))
    n_bon = min(params.bon_problems, len(halves["prover"]) // 4)
    return halves["prover"][:n_bon], halves["prover"][n_bon:]


@dataclass
class _Game:
    """What both recipes of the tiny game build the same way: seats, problems, env settings."""

    params: CheckabilityParams
    prover: Any
    prover_spec: str
    verifier: Any
    verifier_spec: str
    halves: dict[str, list[rules.Problem]]
    bon_problems: list[rules.Problem]
    prover_problems: list[rules.Problem]
    env_kwargs: dict[str, Any]


def _game(ctx: RecipeContext) -> _Game:
    params = with_data_seed(resolve_params(CheckabilityParams, ctx.params), ctx.seed, "pool_seed", DATA_SEED_BASE)
    if not (ASSETS / "prover").is_dir() and "prover" not in ctx.seat_specs:
        raise ArenaError(f"no tiny prover in {ASSETS}: run `arena pretrain prover-verifier-v1 --out {ASSETS}`")
    prover, prover_spec = ctx.agent("prover", default_prover_spec())
    verifier, verifier_spec = ctx.agent("verifier", default_verifier_spec())
    halves = pv_data.split_halves(problem_pool(params))
    if len(halves["prover"]) < 2 or len(halves["verifier"]) < 2:
        raise ArenaError("the problem pool needs at least two problems in each half")
    bon_problems, prover_problems = problem_split(params, halves)
    env_kwargs = {"reward": params.reward, "min_steps": params.min_steps, "max_steps": params.max_steps,
                  "max_value": params.max_value}
    if params.data:
        env_kwargs["data"] = params.data  # the env loads the same file (a plain path keeps the config JSON)
    if params.instruct:
        env_kwargs["instruct"] = True
    return _Game(params, prover, prover_spec, verifier, verifier_spec, halves, bon_problems, prover_problems,
                 env_kwargs)


def _prover_learner(g: _Game, reward: str, roles: tuple[str, ...], early_stop: bool) -> Any:
    """The prover's RL (policy gradient, KL to its initialisation), or None for a prover that cannot train."""
    from agents.learners import Optimization, PolicyGradientLearner, reference_policy
    from games.prover_verifier.training import ProverRoundLearner

    if not (hasattr(g.prover, "model") and hasattr(g.prover, "generate")):
        return None
    p = g.params
    reference = reference_policy(g.prover.model)  # the prover's initialisation (LoRA: the base, adapter off)
    inner = PolicyGradientLearner(seat="prover", reference=reference, beta=p.kl_coef, baseline=p.baseline,
                                  opt=Optimization(lr=p.prover_lr, batch_size=64))
    return ProverRoundLearner(
        inner=inner, verifier=g.verifier, problems=g.prover_problems, reward=reward, roles=roles,
        steps=p.prover_steps, min_steps=p.prover_min_steps, early_stop=early_stop,
        problems_per_step=p.prover_problems, group_size=p.group_size, instruct=p.instruct)


def checkability(ctx: RecipeContext) -> Setup:
    """Checkability training: verifier first (re-initialised, every round's data in a mixture of one
    size), then the prover by RL."""
    from agents.learners import Optimization, VerifierLearner
    from games.prover_verifier.training import VerifierRoundLearner

    g = _game(ctx)
    params, verifier_learner = g.params, None
    if hasattr(g.verifier, "model") and hasattr(g.verifier, "scores"):
        start = {k: v.detach().clone() for k, v in g.verifier.model.state_dict().items()}
        inner = VerifierLearner(lam=params.verifier_lambda, penalty=params.verifier_penalty,
                                opt=Optimization(lr=params.verifier_lr, batch_size=params.verifier_batch,
                                                 epochs=params.verifier_epochs))
        verifier_learner = VerifierRoundLearner(
            inner=inner, prover=g.prover, problems=g.halves["verifier"], bon_problems=g.bon_problems, start=start,
            samples_per_round=params.verifier_samples, group_size=params.group_size,
            mixture_rule=params.mixture, mixture_problems=params.verifier_problems, provers=params.verifier_provers,
            solutions_per_problem=params.verifier_solutions, source=params.verifier_data,
            max_value=params.max_value, bon_n=params.bon_n, bon_samples=params.bon_samples,
            bon_temperature=params.bon_temperature, instruct=params.instruct)
    prover_learner = _prover_learner(g, params.reward, rules.ROLES, params.early_stop)
    return Setup({"prover": SeatSetup(g.prover, prover_learner, g.prover_spec),
                  "verifier": SeatSetup(g.verifier, verifier_learner, g.verifier_spec)},
                 env_kwargs=g.env_kwargs, learner_order=["verifier", "prover"], params=params)


def correctness(ctx: RecipeContext) -> Setup:
    """The paper's correctness-only baseline (its Fig. 4): the prover, helpful role alone, trained by
    the same RL (KL, step budget, problems) with reward = correct; no verifier in the loop. The
    verifier seat keeps its starting weights and only scores the played (helpful) episodes."""
    g = _game(ctx)
    prover_learner = _prover_learner(g, "correct", ("helpful",), early_stop=False)
    return Setup({"prover": SeatSetup(g.prover, prover_learner, g.prover_spec),
                  "verifier": SeatSetup(g.verifier, None, g.verifier_spec)},
                 env_kwargs={**g.env_kwargs, "role": "helpful"}, learner_order=["prover"], params=g.params)


def pretrain(out_dir: Path, *, steps: int = 1500, seed: int = 0) -> Path:
    """`arena pretrain prover-verifier-v1`: the tiny prover (both roles) and the verifier's base LM."""
    return _pretrain(Path(out_dir), steps=steps, seed=seed)
