"""Likelihood learners: the NLL of chosen completions, plain (SFT) or filtered by reward (ReST).

- `SFTLearner`: supervised fine-tuning on (prompt, completion) pairs.
- `FilteredNLLLearner`: ReST's Improve steps (docs/algorithms.md#rest) on one Grow
  step's scored data: for each threshold τ_i of a rising schedule, the NLL of the
  pairs with R > τ_i, the learning rate decaying from step to step, optionally
  keeping the weights of the step that scores best on an evaluation set.
  `improve_step` (one Improve step on pairs the caller kept), `set_lr` and
  `BestWeights` (that selection) are the parts `games.rest`'s learner builds its
  own loop from.

Where this departs from, or fills gaps in, docs/algorithms.md: ReST Improve (#rest): only
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
    """ReST Improve steps on one Grow step's scored data (docs/algorithms.md#rest).

    For each threshold τ_i in turn (one Improve step each, continuing from the
    previous one with the learning rate multiplied by `lr_decay`), minimise
    J(θ) = mean over all pairs of 1{R > τ_i}·NLL(y|x). Only pairs with R > τ_i are
    run through the model; each micro-batch's filtered NLL is scaled by
    (kept / all) so the step follows ∇J exactly as written. With `eval_fn`, the
    weights after the best-scoring Improve step are kept (copied to CPU while the
    update runs: the one extra copy this algorithm asks for).

    A caller that picks the kept pairs itself (ReST-EM's cap per source) or judges
    each step by more than one number (`games.rest`) runs the same loop from the
    parts: `optimizer_for`, `set_lr`, `improve_step` and `BestWeights`.
    """

    data: Data[tuple[str, str, float]] = ()
    """(prompt, completion, reward) with rewards normalised to [0, 1]; the recipe mixes
    in the original data D ("D_g = samples ∪ D"). Empty when the caller runs the loop."""
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
        rewards = torch.tensor([float(r) for _, _, r in triples])  # (N,)
        optimizer = self.optimizer_for(agent.model, self.opt)
        metrics: dict[str, float] = {"reward_mean": rewards.mean().item()}
        best = BestWeights()
        for step, tau in enumerate(self.thresholds):
            kept = [triples[i] for i in range(len(triples)) if rewards[i] > tau]
            self.set_lr(optimizer, step)
            metrics[f"improve{step}_kept"] = float(len(kept))
            if not kept:
                continue
            m = self.improve_step(agent, optimizer, kept, tau, len(triples))
            metrics[f"improve{step}_loss"] = m.get("loss", math.nan)
            if self.eval_fn is not None:
                score = float(self.eval_fn(agent))
                metrics[f"improve{step}_eval"] = score
                best.offer(agent.model, score, step)
        if best.step is not None:
            best.restore(agent.model)
            metrics["eval_best"] = best.score
        return metrics

    def set_lr(self, optimizer: torch.optim.Optimizer, step: int) -> float:
        """Set Improve step `step`'s (0-based) learning rate, `opt.lr`·lr_decay^step; returns it."""
        lr = self.opt.lr * self.lr_decay ** step
        for group in optimizer.param_groups:
            group["lr"] = lr
        return lr

    def improve_step(self, agent: Any, optimizer: torch.optim.Optimizer, kept: Sequence[tuple[str, str, float]],
                     tau: float, n_all: int) -> dict[str, float]:
        """One Improve step: J(θ) = (1/n_all)·Σ 1{R > τ}·NLL(y|x) over D_g (|D_g| = n_all), run on
        the `kept` (prompt, completion, reward) triples only (the others contribute 0), each
        micro-batch scaled by kept/all so the step follows ∇J as written. Returns `fit`'s metrics."""
        encode = prompt_encoder(agent)
        rewards = torch.tensor([float(r) for _, _, r in kept])  # (K,)

        def loss_of(idx: list[int]) -> LossOutput:
            batch = encode_pairs(agent.tokenizer, [kept[i][0] for i in idx], [kept[i][1] for i in idx],
                                 self.max_length, encode_prompt=encode)
            token_logps, mask = completion_logprobs(agent.model, batch)  # (B, T-1) each
            r = rewards[idx].to(token_logps.device)  # (B,)
            return filtered_nll(token_logps, mask, r, tau) * (len(kept) / n_all), {}

        return fit(agent.model, optimizer, len(kept), loss_of, self.opt, self._rng)


class BestWeights:
    """The weights after the best-scoring step so far, one copy on the CPU.

    `offer` after each step; a strictly higher score replaces the copy (the earliest
    of equal scores stays). `restore` loads the copy back unless the best step was
    the last one offered (the model holds those weights already).
    """

    def __init__(self) -> None:
        self.score: float | None = None
        self.step: int | None = None
        """The best step offered so far (None: none yet)."""
        self._last: int | None = None
        self._state: dict[str, Tensor] | None = None

    def offer(self, model: torch.nn.Module, score: float, step: int) -> None:
        self._last = step
        if self.score is None or score > self.score:
            self.score, self.step = score, step
            self._state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}

    def restore(self, model: torch.nn.Module) -> None:
        if self._state is not None and self.step != self._last:
            model.load_state_dict(self._state)
