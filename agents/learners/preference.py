"""Preference learners: a policy or a scorer fit to pairs that say which of two is better.

- `DPOLearner`: DPO, or RPO in either named variant, on (prompt, chosen, rejected)
  triples against a frozen reference (docs/algorithms.md#rpo); `read_implicit_reward`
  reads out the reward it fits, β·log(π/π_ref).
- `BradleyTerryLearner`: a reward model (scorer agent) by Bradley–Terry NLL, with
  an optional adversarial term for RPO's explicit game.
- `VerifierLearner`: the prover–verifier game's verifier (docs/algorithms.md#checkability).

Where these depart from, or fill gaps in, docs/algorithms.md (each also noted at the class):
- Verifier (#checkability): every (correct, incorrect) pair within a problem is a BT term, so
  a problem weighs by its number of pairs rather than equally; the per-round
  re-initialisation and the mixture of earlier rounds' solutions are the recipe's.
- "rpo-mean" averages the NLL per sequence then over the batch (OpenRLHF, the
  Appendix F code), not over all tokens of the batch (TRL).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Literal, Sequence

import torch
from torch import Tensor

from agents.batch import PairBatch, completion_logprobs, encode_pairs
from agents.learners.fitting import (Data, LearnerState, LossOutput, Optimization, fit, freeze,
                                     frozen_logprobs, prompt_encoder, resolve)
from agents.losses import (bradley_terry_loss, dpo_loss, explicit_rm_loss, implicit_reward, masked_sum,
                           rpo_loss, verifier_loss)
from arena.types import ArenaError, Episode


@dataclass(kw_only=True)
class DPOLearner(LearnerState):
    """DPO, or RPO in either named variant, on preference triples (docs/algorithms.md#rpo).

    "rpo-sum" is the paper's main-text loss (η·β · summed NLL of chosen + DPO);
    "rpo-mean" the Appendix F / OpenRLHF form (η · per-sequence token-averaged NLL
    of chosen + DPO). TRL's `rpo_alpha` averages over all chosen tokens of a batch
    at once: equal to "rpo-mean" only when chosen lengths are equal.
    """

    data: Data[tuple[str, str, str]]
    """(prompt, chosen, rejected) triples."""
    reference: torch.nn.Module
    """π_ref: a frozen model shared with whoever else needs it (frozen here on init)."""
    loss: Literal["dpo", "rpo-sum", "rpo-mean"] = "dpo"
    """Which objective."""
    beta: float = 0.1
    """β: scale of the implicit reward β·log(π/π_ref) (paper: 0.01–0.05 on 7B models)."""
    eta: float = 0.005
    """η: weight of the SFT term in RPO (paper: 0.005 for "rpo-sum"; Appendix F: 0.2 for "rpo-mean")."""
    max_length: int | None = None
    """Truncate prompt+completion to this many tokens (prompt cut from the left first)."""
    opt: Optimization = field(default_factory=Optimization)
    """Optimizer settings."""

    def __post_init__(self) -> None:
        if self.loss not in ("dpo", "rpo-sum", "rpo-mean"):
            raise ArenaError(f"loss must be 'dpo', 'rpo-sum' or 'rpo-mean', not {self.loss!r}")
        freeze(self.reference)

    def update(self, agent: Any, episodes: Sequence[Episode]) -> dict[str, float]:
        triples = resolve(self.data, episodes)
        if not triples:
            return {"steps": 0.0}
        encode = prompt_encoder(agent)

        def encode_rows(idx: list[int]) -> PairBatch:  # rows: chosen for idx, then rejected for idx
            prompts = [triples[i][0] for i in idx]
            completions = [triples[i][1] for i in idx] + [triples[i][2] for i in idx]
            return encode_pairs(agent.tokenizer, prompts + prompts, completions, self.max_length,
                                encode_prompt=encode)

        # 1. log π_ref(y|x) of chosen and rejected, once: the reference never changes.
        ref = torch.zeros(len(triples), 2)  # (N, 2): [chosen, rejected]
        for start in range(0, len(triples), self.opt.batch_size):
            idx = list(range(start, min(start + self.opt.batch_size, len(triples))))
            seq = masked_sum(*frozen_logprobs(self.reference, encode_rows(idx))).cpu()  # (2b,)
            ref[idx] = torch.stack([seq[:len(idx)], seq[len(idx):]], dim=1)

        # 2. the loss on a micro-batch of triples.
        def loss_of(idx: list[int]) -> LossOutput:
            token_logps, mask = completion_logprobs(agent.model, encode_rows(idx))  # (2b, T-1)
            seq = masked_sum(token_logps, mask)  # (2b,)
            b = len(idx)
            pi_c, pi_r = seq[:b], seq[b:]
            ref_c, ref_r = ref[idx, 0].to(seq.device), ref[idx, 1].to(seq.device)
            if self.loss == "dpo":
                loss = dpo_loss(pi_c, pi_r, ref_c, ref_r, self.beta)
            else:  # "rpo-sum" / "rpo-mean"
                loss = rpo_loss(pi_c, pi_r, ref_c, ref_r, self.beta, self.eta, variant=self.loss[4:],
                                chosen_lengths=mask[:b].sum(dim=1))
            r_c = implicit_reward(pi_c, ref_c, self.beta).detach()
            r_r = implicit_reward(pi_r, ref_r, self.beta).detach()
            return loss, {"reward_accuracy": (r_c > r_r).float().mean().item(),
                          "reward_margin": (r_c - r_r).mean().item(),
                          "logp_chosen": pi_c.detach().mean().item(),
                          "logp_rejected": pi_r.detach().mean().item()}

        # 3. optimise.
        optimizer = self.optimizer_for(agent.model, self.opt)
        return fit(agent.model, optimizer, len(triples), loss_of, self.opt, self._rng)


def read_implicit_reward(agent: Any, reference: torch.nn.Module, prompts: Sequence[str],
                         completions: Sequence[str], beta: float) -> Tensor:
    """The adversarial reward DPO/RPO fit, read out: β·log(π(y|x)/π_ref(y|x)). (B,)"""
    batch = encode_pairs(agent.tokenizer, prompts, completions, encode_prompt=prompt_encoder(agent))
    with torch.inference_mode():
        pi = masked_sum(*completion_logprobs(agent.model, batch))
        ref = masked_sum(*completion_logprobs(reference, batch))
    return implicit_reward(pi, ref.to(pi.device), beta)


@dataclass(kw_only=True)
class BradleyTerryLearner(LearnerState):
    """A reward model (scorer agent) fit to preference pairs by Bradley–Terry NLL.

    With `adversarial` set it plays the reward-model side of RPO's explicit game
    (docs/algorithms.md#rpo): L_D(r) + η·(mean r(policy answers) − mean r(baseline answers)).
    """

    data: Data[tuple[str, str]]
    """(chosen text, rejected text) pairs, each exactly as the scorer reads it."""
    adversarial: Callable[[Sequence[Episode]], tuple[Sequence[str], Sequence[str]]] | None = None
    """Optional: (policy answers, baseline answers) texts for the explicit RPO game."""
    eta: float = 0.005
    """η: weight of the adversarial term (only with `adversarial`)."""
    opt: Optimization = field(default_factory=Optimization)
    """Optimizer settings."""

    def update(self, agent: Any, episodes: Sequence[Episode]) -> dict[str, float]:
        pairs = resolve(self.data, episodes)
        if not pairs:
            return {"steps": 0.0}
        policy, baseline = (list(t) for t in self.adversarial(episodes)) if self.adversarial else ([], [])

        def sample(texts: list[str], k: int) -> list[str]:  # k texts drawn with the learner's RNG
            picks = torch.randint(len(texts), (k,), generator=self._rng).tolist()
            return [texts[i] for i in picks]

        def loss_of(idx: list[int]) -> LossOutput:
            r_c = agent.scores([pairs[i][0] for i in idx], grad=True)  # (b,)
            r_r = agent.scores([pairs[i][1] for i in idx], grad=True)  # (b,)
            stats = {"accuracy": (r_c > r_r).float().mean().item(), "margin": (r_c - r_r).mean().item()}
            if not (policy and baseline):
                return bradley_terry_loss(r_c, r_r), stats
            r_pol = agent.scores(sample(policy, len(idx)), grad=True)
            r_base = agent.scores(sample(baseline, len(idx)), grad=True)
            stats["policy_minus_baseline"] = (r_pol.mean() - r_base.mean()).item()
            return explicit_rm_loss(r_c, r_r, r_pol, r_base, self.eta), stats

        optimizer = self.optimizer_for(agent.model, self.opt)
        return fit(agent.model, optimizer, len(pairs), loss_of, self.opt, self._rng)


@dataclass(kw_only=True)
class VerifierLearner(LearnerState):
    """The prover–verifier game's verifier (docs/algorithms.md#checkability): Bradley–Terry between a
    correct and an incorrect solution of the same problem, plus λ·E[V²] (or the centred
    λ·(E[V])², `penalty`).

    A micro-batch is `batch_size` problems; every solution of those problems is
    scored, every (correct, incorrect) pair within a problem is a BT term (so a
    problem weighs by its number of such pairs), and the V² penalty covers every
    scored solution. Re-initialising the verifier each round and mixing earlier
    rounds' solutions are the recipe's (it owns the agent and the data).
    """

    data: Data[tuple[Hashable, str, bool]] = ()
    """(problem id, text the verifier reads, correct?) per solution. Empty when the caller
    builds each round's solutions itself and hands them to `fit_solutions`."""
    lam: float = 1e-3
    """λ: weight of the score penalty that keeps scores near zero."""
    penalty: str = "paper"
    """paper: λ·E[V²] (Kirchner et al.); centred: λ·(E[V])², which only removes a shift
    (`agents.losses.verifier_loss`)."""
    opt: Optimization = field(default_factory=Optimization)
    """Optimizer settings (`batch_size` counts problems)."""

    def update(self, agent: Any, episodes: Sequence[Episode]) -> dict[str, float]:
        return self.fit_solutions(agent, resolve(self.data, episodes))

    def fit_solutions(self, agent: Any, solutions: Sequence[tuple[Hashable, str, bool]]) -> dict[str, float]:
        """One update on the caller's (problem id, verifier text, correct?) solutions instead of
        `data` (e.g. a mixture of every round's solutions that the recipe draws itself)."""
        by_problem: dict[Hashable, list[int]] = {}
        for i, (pid, _, _) in enumerate(solutions):
            by_problem.setdefault(pid, []).append(i)
        problems = list(by_problem.values())
        if not problems:
            return {"steps": 0.0}

        def loss_of(idx: list[int]) -> LossOutput:
            rows = [i for p in idx for i in problems[p]]
            v = agent.scores([solutions[i][1] for i in rows], grad=True)  # (N,)
            pos = {i: k for k, i in enumerate(rows)}
            pairs = [(pos[a], pos[b]) for p in idx for a in problems[p] for b in problems[p]
                     if solutions[a][2] and not solutions[b][2]]  # (correct, incorrect)
            first = torch.tensor([a for a, _ in pairs], dtype=torch.long, device=v.device)
            second = torch.tensor([b for _, b in pairs], dtype=torch.long, device=v.device)
            v_1, v_2 = v[first], v[second]  # (P,) each; z1 is the correct one: sign = +1
            loss = verifier_loss(v_1, v_2, torch.ones_like(v_1), v, self.lam, self.penalty)
            return loss, {"pair_accuracy": (v_1 > v_2).float().mean().item() if pairs else 0.0,
                          "score_sq": (v.detach() ** 2).mean().item()}

        optimizer = self.optimizer_for(agent.model, self.opt)
        return fit(agent.model, optimizer, len(problems), loss_of, self.opt, self._rng)
