"""Likelihood learners: the NLL of chosen completions, plain (SFT) or filtered by reward (ReST).

- `SFTLearner`: supervised fine-tuning on (prompt, completion) pairs.
- `FilteredNLLLearner`: ReST's Improve steps (ALGORITHMS.md §2) on one Grow
  step's scored data: for each threshold τ_i of a rising schedule, the NLL of the
  pairs with R > τ_i, the learning rate decaying from step to step, optionally
  keeping the weights of the step that scores best on an evaluation set.

Where this departs from, or fills gaps in, ALGORITHMS.md: ReST Improve (§2): only
pairs with R > τ are run through the model, rescaled by kept/all so the gradient
is that of J as written; "keep the best checkpoint on an evaluation set" is
optional (`eval_fn`) and keeps one CPU copy of the weights.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable, Literal, Sequence

import torch
from torch import Tensor

from agents.batch import completion_logprobs, encode_pairs
from agents.learners.fitting import Data, LearnerState, LossOutput, Optimization, fit, prompt_encoder, resolve
from agents.losses import filtered_nll, sft_nll
from arena.types import Episode


@dataclass(kw_only=True)
class SFTLearner(LearnerState):
    """Supervised fine-tuning: NLL of completions given prompts (prompt tokens masked)."""

    data: Data[tuple[str, str]]
    """(prompt, completion) pairs."""
    reduction: Literal["mean", "sum"] = "mean"
    """`sft_nll` reduction: token-averaged per sequence ("mean") or summed ("sum")."""
    max_length: int | None = None
    """Truncate prompt+completion to this many tokens (prompt cut from the left first)."""
    opt: Optimization = field(default_factory=Optimization)
    """Optimizer settings."""

    def update(self, agent: Any, episodes: Sequence[Episode]) -> dict[str, float]:
        pairs = resolve(self.data, episodes)
        if not pairs:
            return {"steps": 0.0}
        encode = prompt_encoder(agent)

        def loss_of(idx: list[int]) -> LossOutput:
            batch = encode_pairs(agent.tokenizer, [pairs[i][0] for i in idx], [pairs[i][1] for i in idx],
                                 self.max_length, encode_prompt=encode)
            token_logps, mask = completion_logprobs(agent.model, batch)
            return sft_nll(token_logps, mask, self.reduction), {}

        optimizer = self.optimizer_for(agent.model, self.opt)
        return fit(agent.model, optimizer, len(pairs), loss_of, self.opt, self._rng)


@dataclass(kw_only=True)
class FilteredNLLLearner(LearnerState):
    """ReST Improve steps on one Grow step's scored data (ALGORITHMS.md §2).

    For each threshold τ_i in turn (one Improve step each, continuing from the
    previous one with the learning rate multiplied by `lr_decay`), minimise
    J(θ) = mean over all pairs of 1{R > τ_i}·NLL(y|x). Only pairs with R > τ_i are
    run through the model; each micro-batch's filtered NLL is scaled by
    (kept / all) so the step follows ∇J exactly as written. With `eval_fn`, the
    weights after the best-scoring Improve step are kept (copied to CPU while the
    update runs: the one extra copy this algorithm asks for).
    """

    data: Data[tuple[str, str, float]]
    """(prompt, completion, reward) with rewards normalised to [0, 1]; the recipe mixes
    in the original data D ("D_g = samples ∪ D")."""
    thresholds: Sequence[float] = (0.0, 0.7, 0.8, 0.9)
    """τ_1 < τ_2 < ...: one Improve step each (ReST used values from [0, .7, .8, .9, .95, .99])."""
    lr_decay: float = 0.5
    """Learning-rate factor from one Improve step to the next (ReST lowers it)."""
    eval_fn: Callable[[Any], float] | None = None
    """Optional: agent -> reward on an evaluation set; keep the best Improve step's weights."""
    max_length: int | None = None
    """Truncate prompt+completion to this many tokens (prompt cut from the left first)."""
    opt: Optimization = field(default_factory=Optimization)
    """Optimizer settings (`lr` is the first Improve step's)."""

    def update(self, agent: Any, episodes: Sequence[Episode]) -> dict[str, float]:
        triples = resolve(self.data, episodes)
        if not triples:
            return {"steps": 0.0}
        encode = prompt_encoder(agent)
        rewards = torch.tensor([float(r) for _, _, r in triples])  # (N,)
        optimizer = self.optimizer_for(agent.model, self.opt)
        metrics: dict[str, float] = {"reward_mean": rewards.mean().item()}
        best: tuple[float, dict[str, Tensor]] | None = None
        for step, tau in enumerate(self.thresholds):
            kept = [i for i in range(len(triples)) if rewards[i] > tau]
            for group in optimizer.param_groups:
                group["lr"] = self.opt.lr * self.lr_decay ** step
            metrics[f"improve{step}_kept"] = float(len(kept))
            if not kept:
                continue

            def loss_of(idx: list[int], tau: float = tau, kept: list[int] = kept) -> LossOutput:
                rows = [kept[i] for i in idx]
                batch = encode_pairs(agent.tokenizer, [triples[i][0] for i in rows],
                                     [triples[i][1] for i in rows], self.max_length, encode_prompt=encode)
                token_logps, mask = completion_logprobs(agent.model, batch)
                r = rewards[rows].to(token_logps.device)
                return filtered_nll(token_logps, mask, r, tau) * (len(kept) / len(triples)), {}

            m = fit(agent.model, optimizer, len(kept), loss_of, self.opt, self._rng)
            metrics[f"improve{step}_loss"] = m.get("loss", math.nan)
            if self.eval_fn is not None:
                score = float(self.eval_fn(agent))
                metrics[f"improve{step}_eval"] = score
                if best is None or score > best[0]:
                    best = (score, {k: v.detach().to("cpu", copy=True) for k, v in agent.model.state_dict().items()})
        if best is not None:
            agent.model.load_state_dict(best[1])
            metrics["eval_best"] = best[0]
        return metrics
