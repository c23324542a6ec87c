"""Policy-gradient learners: REINFORCE on the round's own samples, with a KL to a reference.

`PolicyGradientLearner` scores every sampled move with its episode's reward,
turns rewards into advantages with a per-prompt group baseline (RLOO, or GRPO's
group mean and std), and adds a KL penalty to a frozen reference ("k3" in the
loss, GRPO-style, or "k1" folded into the reward, PPO-RLHF-style).

Where this departs from docs/algorithms.md: policy gradient is plain REINFORCE with a
group baseline, not PPO (#checkability uses PPO): no importance ratio or clipping; with
several steps per round later steps are slightly off-policy. The "k3" KL sits in
the loss (GRPO); its expected gradient is that of KL(π_ref‖π), not KL(π‖π_ref) —
use "k1" (KL folded into the reward, PPO-RLHF) for the latter.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Literal, Sequence

import torch
from torch import Tensor

from agents.batch import PairBatch, batch_from_token_ids, completion_logprobs, pad_id_of
from agents.learners.fitting import LearnerState, LossOutput, Optimization, fit, freeze, frozen_logprobs
from agents.losses import group_advantages, kl_k1, kl_shaped_rewards, masked_sum, policy_gradient_loss
from arena.types import ArenaError, Episode, Step


@dataclass(kw_only=True)
class PolicyGradientLearner(LearnerState):
    """REINFORCE on this round's own samples with a per-prompt group baseline
    (RLOO or GRPO-style) and a KL penalty to a frozen reference.

    Samples are the seat's moves that carry `prompt_ids`/`completion_ids` in their
    extras (scored exactly as sampled, never re-tokenised). Each move gets its
    episode's reward. Advantages are computed once over the whole round (every
    sample of a group sees the same baseline); with several steps per round the
    later steps are slightly off-policy (no importance ratio or clipping: this is
    plain REINFORCE, not PPO).
    """

    seat: str
    """Whose moves to train on."""
    reward_fn: Callable[[Sequence[Episode]], Sequence[float]] | None = None
    """One reward per episode (for this seat), e.g. a proxy RM score. None when the caller
    scores its own batches and hands the rewards to `fit_rewards` (e.g. SRC/CGC/goodhart)."""
    reference: torch.nn.Module | None = None
    """π_ref for the KL penalty (frozen here on init); None only with beta = 0."""
    beta: float = 0.0
    """KL coefficient; 0 is the unregularised baseline."""
    kl_estimator: Literal["k3", "k1"] = "k3"
    """"k3": per-token k3 estimate summed over the completion, in the loss (GRPO style).
    "k1": per-token log π − log π_ref summed over the completion, subtracted from the
    reward before the baseline (PPO-RLHF style; the REINFORCE gradient of KL(π‖π_ref))."""
    baseline: Literal["rloo", "mean", "none"] = "rloo"
    """Group baseline: leave-one-out mean ("rloo"), group mean ("mean", GRPO), none."""
    normalize_std: bool = False
    """Divide advantages by their group's reward std (GRPO)."""
    group_fn: Callable[[Episode, Step], Hashable] | None = None
    """Group key of a move; default: its prompt text (samples of the same prompt)."""
    max_length: int | None = None
    """Truncate prompt+completion to this many tokens (prompt cut from the left first)."""
    opt: Optimization = field(default_factory=Optimization)
    """Optimizer settings."""

    def __post_init__(self) -> None:
        if self.kl_estimator not in ("k3", "k1"):
            raise ArenaError(f"kl_estimator must be 'k3' or 'k1', not {self.kl_estimator!r}")
        if self.baseline not in ("rloo", "mean", "none"):
            raise ArenaError(f"baseline must be 'rloo', 'mean' or 'none', not {self.baseline!r}")
        if self.reference is not None:
            freeze(self.reference)
        elif self.beta:
            raise ArenaError("PolicyGradientLearner: beta > 0 needs a reference model")

    def update(self, agent: Any, episodes: Sequence[Episode]) -> dict[str, float]:
        if self.reward_fn is None:
            raise TypeError("PolicyGradientLearner.update needs a reward_fn; without one, call fit_rewards")
        return self.fit_rewards(agent, episodes, self.reward_fn(episodes))

    def fit_rewards(self, agent: Any, episodes: Sequence[Episode], rewards: Sequence[float]) -> dict[str, float]:
        """One update on `episodes` with one reward per episode given by the caller instead of `reward_fn`."""
        rewards_per_episode = [float(r) for r in rewards]
        if len(rewards_per_episode) != len(episodes):
            raise ArenaError(f"{len(rewards_per_episode)} rewards for {len(episodes)} episodes: "
                             f"the policy gradient needs one per episode")
        samples = [(e, s, r) for e, r in zip(episodes, rewards_per_episode)
                   for s in e.moves(self.seat) if "completion_ids" in s.extras]
        if not samples:
            return {"steps": 0.0}
        group_of = self.group_fn or (lambda e, s: s.observation.get("prompt", ""))
        keys: dict[Hashable, int] = {}
        groups = torch.tensor([keys.setdefault(group_of(e, s), len(keys)) for e, s, _ in samples])  # (N,)
        rewards = torch.tensor([r for _, _, r in samples], dtype=torch.float32)  # (N,)
        pad = pad_id_of(agent.tokenizer)

        def batch_of(idx: Sequence[int]) -> PairBatch:
            return batch_from_token_ids([samples[i][1].extras["prompt_ids"] for i in idx],
                                        [samples[i][1].extras["completion_ids"] for i in idx],
                                        pad, self.max_length)

        # 1. frozen reference token log-probs of the sampled tokens, once (per-sample rows).
        use_ref = self.reference is not None and self.beta > 0
        ref_rows: list[Tensor] = []
        kl_start = torch.zeros(len(samples))  # Σ_t k1 under π before this update, per sample
        shaped = rewards.clone()  # k1: R − β·Σ_t k1; k3: R
        # π before the update: its own forward pass, unless the update is one optimizer step in one
        # process (k3), where the loss's forward passes all run before that step and give it for free.
        one_step = self.opt.epochs == 1 and len(samples) <= self.opt.batch_size * self.opt.grad_accum_steps \
            and not (torch.distributed.is_available() and torch.distributed.is_initialized())
        pi_first = use_ref and (self.kl_estimator == "k1" or not one_step)
        for start in range(0, len(samples) if use_ref else 0, self.opt.batch_size):
            idx = list(range(start, min(start + self.opt.batch_size, len(samples))))
            ref_tl, mask = frozen_logprobs(self.reference, batch_of(idx))
            ref_rows += completion_rows(ref_tl, mask)
            if not pi_first:
                continue
            with torch.inference_mode():  # π before this update: the on-policy KL
                pi_tl, _ = completion_logprobs(agent.model, batch_of(idx))
            pi_tl, ref_tl, mask = pi_tl.cpu().clone(), ref_tl.cpu(), mask.cpu()
            kl_start[idx] = masked_sum(kl_k1(pi_tl, ref_tl), mask).float()
            if self.kl_estimator == "k1":
                shaped[idx] = kl_shaped_rewards(rewards[idx], pi_tl, ref_tl, mask, self.beta).float()

        # 2. advantages over the whole round, from the (k1-shaped) rewards.
        advantages = group_advantages(shaped, groups, self.baseline, self.normalize_std)  # (N,)
        k3_beta = self.beta if (use_ref and self.kl_estimator == "k3") else 0.0

        # 3. the loss on a micro-batch of samples.
        def loss_of(idx: list[int]) -> LossOutput:
            token_logps, mask = completion_logprobs(agent.model, batch_of(idx))  # (b, T-1)
            ref_tl = pad_rows([ref_rows[i] for i in idx], mask) if use_ref else None
            if use_ref and not pi_first:  # the one step's forward: still π before the update
                kl_start[idx] = masked_sum(kl_k1(token_logps.detach().float().cpu(), ref_tl.float().cpu()),
                                           mask.cpu()).float()
            loss = policy_gradient_loss(token_logps, mask, advantages[idx].to(token_logps.device),
                                        ref_tl, k3_beta)
            return loss, {}

        optimizer = self.optimizer_for(agent.model, self.opt)
        metrics = fit(agent.model, optimizer, len(samples), loss_of, self.opt, self._rng)
        metrics.update({"reward_mean": rewards.mean().item(), "advantage_abs_mean": advantages.abs().mean().item(),
                        "groups": float(len(keys)), "samples": float(len(samples))})
        if use_ref:
            metrics["kl"] = kl_start.mean().item()  # KL(π‖π_ref) estimate (k1) before the update
        return metrics


def completion_rows(values: Tensor, mask: Tensor) -> list[Tensor]:
    """Per-row 1-D tensors of the masked-in entries (to re-pad them in another batch)."""
    return [v[m] for v, m in zip(values, mask)]


def pad_rows(rows: Sequence[Tensor], mask: Tensor) -> Tensor:
    """Inverse of `completion_rows` for a batch whose `mask` has the same rows. (B, T)."""
    out = torch.zeros(mask.shape, dtype=rows[0].dtype, device=mask.device)
    out[mask] = torch.cat([r.to(mask.device) for r in rows])
    return out
