"""The loss library: small pure functions on tensors, one per formula.

Each docstring states the formula it implements and the section of
`docs/algorithms.md` it comes from. Notation: `σ` is the logistic function; a
"sequence log-prob" `log π(y|x)` is the sum of the completion's token
log-probs (`agents.batch.sequence_logprobs`); per-token tensors are `(B, T)`
with a boolean `mask` `(B, T)` marking completion tokens (masked entries of
`token_logps` may hold anything: they are ignored).

Nothing here touches a model, a tokenizer or an RNG; the learners in
`agents.learners` compose these with a forward pass and an optimizer step.
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

# --- Supervised ---------------------------------------------------------------


def masked_sum(x: Tensor, mask: Tensor) -> Tensor:
    """Σ_t x_t over the masked-in positions of each row; masked entries never leak
    (not even NaN/inf).  (B, T), (B, T) -> (B,)."""
    return torch.where(mask.bool(), x, torch.zeros_like(x)).sum(dim=1)


def sft_nll(token_logps: Tensor, mask: Tensor, reduction: Literal["mean", "sum"] = "mean") -> Tensor:
    """Negative log-likelihood of completions; the prompt is masked out by `mask`.

    - "sum":  mean_i [ −Σ_t log π(y_i,t | x_i, y_i,<t) ]   = E[−log π(y|x)]
              (the sequence NLL; docs/algorithms.md#rpo main text, #rest NLL(y|x)).
    - "mean": mean_i [ −(1/|y_i|) Σ_t log π(y_i,t | ...) ] (token-averaged per
              sequence, then averaged over sequences; the Appendix F / OpenRLHF
              `nll_loss` form). A row with no completion token contributes 0.

    token_logps, mask: (B, T). Returns a scalar.
    """
    per_seq = -masked_sum(token_logps, mask)  # (B,)
    if reduction == "sum":
        return per_seq.mean()
    if reduction == "mean":
        return (per_seq / mask.sum(dim=1).clamp(min=1).to(per_seq.dtype)).mean()
    raise ValueError(f"reduction must be 'mean' or 'sum', not {reduction!r}")


def filtered_nll(token_logps: Tensor, mask: Tensor, rewards: Tensor, threshold: float) -> Tensor:
    """ReST Improve step (docs/algorithms.md#rest):  J = mean_i [ 1{R_i > τ} · NLL(y_i|x_i) ].

    NLL(y|x) = −Σ_t log π(y_t | x, y_<t) (summed over the completion's tokens); the
    mean is over all pairs, kept or not, exactly as E_{D_g}[...] is written.
    token_logps, mask: (B, T); rewards: (B,). Returns a scalar.
    """
    keep = (rewards > threshold).to(token_logps.dtype)  # (B,)
    nll = -masked_sum(token_logps, mask)  # (B,)
    return (keep * nll).mean()


# --- Preferences: Bradley–Terry, DPO, RPO (docs/algorithms.md#rpo) ---------


def bradley_terry_loss(r_chosen: Tensor, r_rejected: Tensor) -> Tensor:
    """L_D(r) = − mean_i log σ( r(x_i, a_chosen) − r(x_i, a_rejected) ).  (B,), (B,) -> scalar."""
    return -F.logsigmoid(r_chosen - r_rejected).mean()


def implicit_reward(pi_logp: Tensor, ref_logp: Tensor, beta: float) -> Tensor:
    """The reward DPO/RPO implicitly fit: r(x, y) = β · (log π(y|x) − log π_ref(y|x)).  (B,) -> (B,)."""
    return beta * (pi_logp - ref_logp)


def dpo_loss(pi_chosen: Tensor, pi_rejected: Tensor, ref_chosen: Tensor, ref_rejected: Tensor,
             beta: float) -> Tensor:
    """Sigmoid DPO = the Bradley–Terry NLL of the implicit reward β·log(π/π_ref):

        L_DPO = − mean_i log σ( β·[log π(a_c|x) − log π_ref(a_c|x)]
                               − β·[log π(a_r|x) − log π_ref(a_r|x)] )

    All arguments are sequence log-probs (B,). Returns a scalar.
    """
    return bradley_terry_loss(implicit_reward(pi_chosen, ref_chosen, beta),
                              implicit_reward(pi_rejected, ref_rejected, beta))


def rpo_loss(pi_chosen: Tensor, pi_rejected: Tensor, ref_chosen: Tensor, ref_rejected: Tensor,
             beta: float, eta: float, variant: Literal["sum", "mean"] = "sum",
             chosen_lengths: Tensor | None = None) -> Tensor:
    """RPO: an SFT term on the chosen responses plus the DPO loss (docs/algorithms.md#rpo).

    - variant "sum" (paper, main text):
          L = η·β · mean_i[ −log π(a_c,i|x_i) ] + L_DPO
      with the NLL summed over the chosen response's tokens (= −pi_chosen).
    - variant "mean" (Appendix F, OpenRLHF `--nll_loss_coef η`; TRL's weight η):
          L = η · mean_i[ −log π(a_c,i|x_i) / |a_c,i| ] + L_DPO
      with the NLL averaged over each chosen response's tokens; needs
      `chosen_lengths` (B,), the number of completion tokens of each chosen response.
      (TRL averages over all chosen tokens of the batch at once instead of per
      sequence; identical when all chosen responses have the same length.)

    pi_*/ref_*: sequence log-probs (B,). Returns a scalar.
    """
    dpo = dpo_loss(pi_chosen, pi_rejected, ref_chosen, ref_rejected, beta)
    if variant == "sum":
        return eta * beta * (-pi_chosen).mean() + dpo
    if variant == "mean":
        if chosen_lengths is None:
            raise ValueError("rpo_loss(variant='mean') needs chosen_lengths")
        return eta * (-pi_chosen / chosen_lengths.clamp(min=1)).mean() + dpo
    raise ValueError(f"variant must be 'sum' or 'mean', not {variant!r}")


def explicit_rm_loss(r_chosen: Tensor, r_rejected: Tensor, r_policy: Tensor, r_baseline: Tensor,
                     eta: float) -> Tensor:
    """The adversarial reward model's loss in RPO's explicit game (docs/algorithms.md#rpo):

        L(r) = L_D(r) + η · ( mean_j r(x_j, a1_j) − mean_k r(x_k, a0_k) ),
        a1 ~ π (the policy's answers), a0 ~ π_base (the baseline's: chosen responses).

    r_chosen, r_rejected: (B,) on the preference data; r_policy: (N,); r_baseline: (M,).
    (The β·KL term of the game does not depend on r, so it is absent here.)
    """
    return bradley_terry_loss(r_chosen, r_rejected) + eta * (r_policy.mean() - r_baseline.mean())


# --- Prover–verifier game (docs/algorithms.md#checkability) ----------------


PENALTIES = ("centred", "paper")


def verifier_loss(v_1: Tensor, v_2: Tensor, sign: Tensor, scores_all: Tensor, lam: float,
                  penalty: str = "paper") -> Tensor:
    """Verifier loss: Bradley–Terry between solutions of the same problem + a score penalty.

        L_V = − mean_pairs log σ( (V(x,z1) − V(x,z2)) · sign(c(z1) − c(z2)) ) + λ · P(V)

    `paper`: P = mean V(x,z)² (Kirchner et al.'s term). `centred`: P = (mean V)², the part
    of mean V² = Var V + (mean V)² that a constant shift of every score moves -- the one
    direction Bradley–Terry leaves free. The paper's term also shrinks Var V, pulling the
    lowest scores (for a likelihood scorer: the incorrect solutions' wrong tokens) up the
    hardest, against what BT teaches; the centred one moves every score alike.

    v_1, v_2: (P,) scores of the two solutions of each pair; sign: (P,) in {−1, +1}
    (+1 when z1 is the correct one); scores_all: (N,) every score the penalty
    covers (usually all scored solutions, each once). Returns a scalar.
    """
    bt = -F.logsigmoid((v_1 - v_2) * sign).mean() if v_1.numel() else v_1.new_zeros(())
    if penalty == "paper":
        return bt + lam * (scores_all ** 2).mean()
    if penalty == "centred":
        return bt + lam * scores_all.mean() ** 2 if scores_all.numel() else bt
    raise ValueError(f"unknown verifier penalty {penalty!r}; use {' or '.join(PENALTIES)}")


def group_mean(values: Tensor, groups: Tensor) -> Tensor:
    """Each entry's group mean: out_i = mean_{j: g_j = g_i} values_j.  (B,), (B,) long -> (B,)."""
    if values.numel() == 0:
        return values.clone()
    _, inv = torch.unique(groups, return_inverse=True)
    sums = torch.zeros(int(inv.max()) + 1, dtype=values.dtype, device=values.device).index_add_(0, inv, values)
    counts = torch.bincount(inv).to(values.dtype)
    return (sums / counts)[inv]


def src_reward(v: Tensor, correct: Tensor, helpful: Tensor, groups: Tensor) -> Tensor:
    """Signed relative convincingness (docs/algorithms.md#checkability):

        V' = V − mean(V over the solutions with the same group = same problem and role)
        R  = (2c − 1)·(2h − 1)·V'   if V' > 0,   else −1

    v: (B,) verifier scores; correct, helpful: (B,) in {0, 1}; groups: (B,) long
    ids of (problem, role). Returns (B,).
    """
    v_rel = v - group_mean(v, groups)
    sign = (2 * correct.to(v.dtype) - 1) * (2 * helpful.to(v.dtype) - 1)
    return torch.where(v_rel > 0, sign * v_rel, torch.full_like(v, -1.0))


def cgc_reward(v: Tensor, correct: Tensor, helpful: Tensor) -> Tensor:
    """Correctness-gated convincingness (docs/algorithms.md#checkability):
    R = V if h = c, else −2.  (B,) -> (B,)."""
    return torch.where(correct.bool() == helpful.bool(), v, torch.full_like(v, -2.0))


def goodhart_reward(v: Tensor) -> Tensor:
    """Goodhart baseline (docs/algorithms.md#checkability): R = V, no roles.  (B,) -> (B,)."""
    return v.clone()


# --- Policy gradient with a group baseline and a KL penalty ----------------------


def group_advantages(rewards: Tensor, groups: Tensor, baseline: Literal["rloo", "mean", "none"] = "rloo",
                     normalize_std: bool = False, eps: float = 1e-6) -> Tensor:
    """A_i = R_i − b_i with a per-prompt (per-group) baseline b_i:

    - "rloo": b_i = mean of the *other* rewards of i's group, (S_g − R_i)/(n_g − 1)
              (REINFORCE leave-one-out). A group of one has no other sample: b_i = 0.
    - "mean": b_i = mean of i's group, including R_i (GRPO). A group of one gets A = 0.
    - "none": b_i = 0.
    With `normalize_std` (GRPO), A_i is divided by (std_g + eps), std_g the unbiased
    standard deviation of the rewards of i's group; a group of one uses std 1.

    rewards: (B,) float; groups: (B,) long. Returns (B,).
    """
    _, inv = torch.unique(groups, return_inverse=True)
    n_groups = int(inv.max()) + 1 if inv.numel() else 0
    zeros = torch.zeros(n_groups, dtype=rewards.dtype, device=rewards.device)
    sums = zeros.index_add(0, inv, rewards)[inv]  # (B,) S_g
    counts = torch.bincount(inv, minlength=n_groups).to(rewards.dtype)[inv]  # (B,) n_g
    if baseline == "rloo":
        b = torch.where(counts > 1, (sums - rewards) / (counts - 1).clamp(min=1), torch.zeros_like(rewards))
    elif baseline == "mean":
        b = sums / counts
    elif baseline == "none":
        b = torch.zeros_like(rewards)
    else:
        raise ValueError(f"baseline must be 'rloo', 'mean' or 'none', not {baseline!r}")
    adv = rewards - b
    if normalize_std:
        mean = sums / counts
        sq = zeros.index_add(0, inv, (rewards - mean) ** 2)[inv]  # Σ_g (R − mean_g)²
        std = torch.where(counts > 1, (sq / (counts - 1).clamp(min=1)).sqrt(), torch.ones_like(rewards))
        adv = adv / (std + eps)
    return adv


def kl_k1(token_logps: Tensor, ref_token_logps: Tensor) -> Tensor:
    """Per-token k1 estimator of KL(π‖π_ref) on tokens sampled from π: log π − log π_ref.  (B, T)."""
    return token_logps - ref_token_logps


def kl_k3(token_logps: Tensor, ref_token_logps: Tensor) -> Tensor:
    """Per-token k3 estimator of KL(π‖π_ref) (Schulman 2020), ≥ 0 and unbiased on tokens from π:

        k3 = π_ref/π − log(π_ref/π) − 1 = exp(log π_ref − log π) − (log π_ref − log π) − 1.  (B, T)
    """
    d = ref_token_logps - token_logps
    return torch.exp(d) - d - 1


def policy_gradient_loss(token_logps: Tensor, mask: Tensor, advantages: Tensor,
                         ref_token_logps: Tensor | None = None, beta: float = 0.0) -> Tensor:
    """REINFORCE with given advantages plus a k3 KL penalty to a frozen reference:

        L = mean_i[ −A_i · Σ_t log π(y_i,t | ...) ] + β · mean_i[ Σ_t k3_i,t ]

    The advantages (from `group_advantages`, computed once over the whole round so
    the group baseline sees every sample of a prompt) are constants. The KL term is
    summed over each completion's tokens (a sequence-level KL estimate) and sits in
    the loss, as in GRPO; differentiated on samples from π its expected gradient is
    that of KL(π_ref‖π) per token, which also pulls π back to π_ref. For the
    gradient of KL(π‖π_ref) itself, set β = 0 here and subtract β·Σ_t k1 from the
    rewards before the baseline (`kl_shaped_rewards`), as in PPO-RLHF.

    token_logps, mask, ref_token_logps: (B, T); advantages: (B,). Returns a scalar.
    """
    seq_logp = masked_sum(token_logps, mask)  # (B,)
    loss = -(advantages.detach() * seq_logp).mean()
    if beta and ref_token_logps is not None:
        loss = loss + beta * masked_sum(kl_k3(token_logps, ref_token_logps), mask).mean()
    return loss


def kl_shaped_rewards(rewards: Tensor, token_logps: Tensor, ref_token_logps: Tensor, mask: Tensor,
                      beta: float) -> Tensor:
    """R_i − β · Σ_t k1_i,t  (the KL(π‖π_ref) penalty folded into the reward; constants).  -> (B,)."""
    kl = masked_sum(kl_k1(token_logps, ref_token_logps), mask)
    return (rewards - beta * kl).detach()
