"""Recipes for adversarial-rm-v0: five ways to push a policy against preference data.

| recipe | policy learner | reward-model seat |
|---|---|---|
| `baseline` | policy gradient on the proxy's score, **no KL** (the over-optimiser) | the frozen Bradley-Terry proxy |
| `dpo` | DPO on the data D | the frozen proxy (measurement only) |
| `rpo-sum` | RPO, paper main text: η·β·Σ_t NLL(chosen) + DPO | the frozen proxy (measurement only) |
| `rpo-mean` | RPO, Appendix F: η·mean_t NLL(chosen) + DPO | the frozen proxy (measurement only) |
| `explicit` (default) | policy gradient with β·KL(π‖π_ref) on the seat's score | the adversarial RM, trained each round on L_D(r) + η·(mean r(policy) − mean r(baseline)), starting from the proxy |

The *proxy* is one Bradley-Terry reward model fitted once to D (`fit_proxy`,
cached), shared by every recipe with the same data and base, so "proxy reward" is
on one scale across methods. The reference policy π_ref is a frozen copy of the
policy seat's model as the run builds it (the base), shared by the learners and
the probe.

Every recipe wraps its policy learner in a `RoundProbe` (`games.adversarial_rm.probe`),
which measures the policy that played the round, before it is updated (KL to
π_ref, proxy score, log π(chosen), implicit-reward accuracy, gold win rate); the
measurements appear in the round summary under `losses.policy`.

This module holds the recipe builders; `games.adversarial_rm.prepare` holds
`Params`, the data and the base and proxy models.

Defaults are sized for the tiny model on a 2-core CPU; `--set model=<hub id or
dir>` and `--set data=<pairs.jsonl>` run the same recipes on a real model and real
preference data (no gold reward then).
"""  # noqa: E501 (a table row is one line)
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from arena.selfplay import RecipeContext, SeatSetup, Setup, resolve_params, with_data_seed
from arena.types import ArenaError, Episode
from games.adversarial_rm.env import rm_input
from games.adversarial_rm.prepare import METHODS, Params, base_model, env_kwargs, preference_sets, proxy_model
from games.adversarial_rm.prepare import pretrain  # noqa: F401  (env.py's entry point names recipe:pretrain)
from games.adversarial_rm.probe import RoundProbe


# -- the recipes ---------------------------------------------------------------------

def build(ctx: RecipeContext, method: str) -> Setup:
    """Seats and learners for one method (see the module docstring's table)."""
    from agents.hf import LoadConfig, ScorerAgent
    from agents.learners import (BradleyTerryLearner, DPOLearner, Optimization, PolicyGradientLearner,
                                 reference_policy)

    if method not in METHODS:
        raise ArenaError(f"unknown method {method!r}; known: {', '.join(METHODS)}")
    p = with_data_seed(resolve_params(Params, ctx.params), ctx.seed)
    pairs, heldout = preference_sets(p)
    base = base_model(p, ctx)
    proxy_dir = proxy_model(p, ctx, base, pairs, heldout)

    policy, policy_spec = ctx.agent("policy", f"hf:{base}?max_new_tokens={p.max_new_tokens}"
                                              f"&temperature={p.temperature}")
    rm, rm_spec = ctx.agent("reward_model", f"hf:{proxy_dir}")
    if not (hasattr(policy, "model") and hasattr(policy, "tokenizer")):
        raise ArenaError("the policy seat needs a Hugging Face generator (hf:<model>) to be trained")
    device = next(policy.model.parameters()).device
    reference = reference_policy(policy.model)  # π_ref = the policy as it starts (before any checkpoint resume)
    if method == "explicit":  # the seat's RM moves; measure against a frozen copy of the proxy
        proxy = ScorerAgent.from_pretrained(str(proxy_dir), load=LoadConfig(device=str(device)))
    else:
        proxy = rm
    proxy.model.requires_grad_(False)

    opt = dict(batch_size=p.batch_size)
    rm_learner = None
    if method in ("dpo", "rpo-sum", "rpo-mean"):
        triples = [(q.prompt, q.chosen, q.rejected) for q in pairs]
        eta = {"dpo": 0.0, "rpo-sum": p.eta_sum, "rpo-mean": p.eta_mean}[method]
        inner = DPOLearner(data=triples, reference=reference, loss=method, beta=p.beta, eta=eta,
                           opt=Optimization(lr=p.dpo_lr, epochs=p.dpo_epochs, **opt))
    else:
        explicit = method == "explicit"
        inner = PolicyGradientLearner(
            seat="policy", reward_fn=_policy_score, reference=reference if explicit else None,
            beta=p.beta if explicit else 0.0, kl_estimator="k1", baseline="rloo", normalize_std=True,
            group_fn=lambda e, s: 0,  # one group: a leave-one-out batch baseline (prompts rarely repeat)
            opt=Optimization(lr=p.pg_lr, batch_size=10**6, epochs=p.pg_steps))
        if explicit:
            rm_data = [(rm_input(q.prompt, q.chosen), rm_input(q.prompt, q.rejected)) for q in pairs]
            rm_learner = BradleyTerryLearner(
                data=_RoundSubset(rm_data, p.rm_pairs), adversarial=_policy_and_baseline_texts, eta=p.rm_eta,
                opt=Optimization(lr=p.rm_lr, **opt))
    probe = RoundProbe(inner=inner, reference=reference, proxy=proxy,
                       chosen=[(q.prompt, q.chosen) for q in pairs[:p.probe_chosen]], heldout=heldout,
                       beta=p.beta, batch_size=p.batch_size)
    return Setup({"policy": SeatSetup(policy, probe, policy_spec),
                  "reward_model": SeatSetup(rm, rm_learner, rm_spec)},
                 env_kwargs=env_kwargs(p), learner_order=["reward_model", "policy"], params=p)


def _policy_score(episodes: Sequence[Episode]) -> list[float]:
    """The policy's reward for its gradient: the reward-model seat's score of its answer.

    (The game's payoff subtracts r(baseline), which does not depend on the policy's answer.)
    """
    return [float(e.info.get("policy", {}).get("score") or 0.0) for e in episodes]


def _policy_and_baseline_texts(episodes: Sequence[Episode]) -> tuple[list[str], list[str]]:
    infos = [e.info.get("policy", {}) for e in episodes]
    infos = [i for i in infos if "answer" in i]
    return [rm_input(i["prompt"], i["answer"]) for i in infos], [rm_input(i["prompt"], i["baseline"]) for i in infos]


@dataclass
class _RoundSubset:
    """`n` items of `items` per round, chosen by the round number (deterministic, different each round)."""

    items: Sequence[Any]
    n: int

    def __call__(self, episodes: Sequence[Episode]) -> list[Any]:
        k = episodes[0].round if episodes else 0
        rng = np.random.default_rng([17, k])
        idx = rng.choice(len(self.items), size=min(self.n, len(self.items)), replace=False)
        return [self.items[i] for i in idx]


def baseline(ctx: RecipeContext) -> Setup:
    """Unregularised policy gradient against the frozen Bradley-Terry proxy."""
    return build(ctx, "baseline")


def dpo(ctx: RecipeContext) -> Setup:
    """DPO on D; the adversarial reward is the implicit β·log(π/π_ref)."""
    return build(ctx, "dpo")


def rpo_sum(ctx: RecipeContext) -> Setup:
    """RPO with the paper's summed NLL on chosen, weighted η·β."""
    return build(ctx, "rpo-sum")


def rpo_mean(ctx: RecipeContext) -> Setup:
    """RPO with a token-averaged NLL on chosen, weighted η (Appendix F)."""
    return build(ctx, "rpo-mean")


def explicit(ctx: RecipeContext) -> Setup:
    """The game itself: adversarial reward model vs KL-regularised policy gradient, alternating by round."""
    return build(ctx, "explicit")

