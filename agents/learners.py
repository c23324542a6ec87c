"""Learners: one dataclass per method, each `update(agent, episodes) -> metrics`.

Every `update` reads top to bottom, in the same three moves:

1. this round's data (given by the recipe, or derived from the episodes);
2. whatever is constant during the update, computed once (the frozen reference
   model's log-probs, policy-gradient advantages over the whole round);
3. `fit(...)`: epochs of shuffled micro-batches, each micro-batch a call to a
   named loss from `agents.losses`, each group of `grad_accum_steps`
   micro-batches one `optimizer_step`.

Plumbing shared by all learners sits at the top of this file (marked
PLUMBING); the algorithms follow (marked ALGORITHM), one class each.

Choices that hold for every learner:
- **Optimizer state.** A fresh AdamW per `update` (= per round) unless
  `Optimization.keep_state` is set; then its moments carry over between rounds
  and `save`/`load` write/read them (safetensors + JSON, no pickle) beside the
  agent checkpoint, so a resumed run continues exactly. The RNG that shuffles
  micro-batches is re-seeded by `reset(seed)` every round and is not saved.
- **No second copies.** A learner trains `agent.model` in place; a reference
  model is passed in (shared, frozen: `requires_grad=False`, eval mode, used only
  under `torch.inference_mode`).
- **Devices.** The agent decides where its model lives; batches go to the
  model's device. `accelerate.Accelerator` supplies mixed precision (autocast and,
  for fp16, loss scaling), gradient clipping and backward. It is single-process:
  the model is not wrapped by `accelerator.prepare` (that would patch the agent's
  `forward` for good), so `accelerate launch` over several GPUs would not sync
  gradients — run one learner process per model.

Where this departs from, or fills gaps in, ALGORITHMS.md (each also noted at the class):
- Policy gradient is plain REINFORCE with a group baseline, not PPO (§3 uses PPO):
  no importance ratio or clipping; with several steps per round later steps are
  slightly off-policy. The "k3" KL sits in the loss (GRPO); its expected gradient
  is that of KL(π_ref‖π), not KL(π‖π_ref) — use "k1" (KL folded into the reward,
  PPO-RLHF) for the latter.
- Verifier (§3): every (correct, incorrect) pair within a problem is a BT term, so
  a problem weighs by its number of pairs rather than equally; the per-round
  re-initialisation and the mixture of earlier rounds' solutions are the recipe's.
- ReST Improve (§2): only pairs with R > τ are run through the model, rescaled by
  kept/all so the gradient is that of J as written; "keep the best checkpoint on
  an evaluation set" is optional (`eval_fn`) and keeps one CPU copy of the weights.
- "rpo-mean" averages the NLL per sequence then over the batch (OpenRLHF, the
  Appendix F code), not over all tokens of the batch (TRL).
"""
from __future__ import annotations

import json
import math
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Hashable, Iterator, Literal, Sequence, TypeVar

import torch
from accelerate import Accelerator
from torch import Tensor

from agents.batch import (PairBatch, batch_from_token_ids, completion_logprobs, encode_pairs,
                          pad_id_of)
from agents.losses import (bradley_terry_loss, dpo_loss, explicit_rm_loss, filtered_nll,
                           group_advantages, implicit_reward, kl_k1, kl_shaped_rewards, masked_sum,
                           policy_gradient_loss, rpo_loss, sft_nll, verifier_loss)
from arena.types import Episode, Step

T = TypeVar("T")
Data = Sequence[T] | Callable[[Sequence[Episode]], Sequence[T]]
"""A recipe gives a learner its data as a fixed list, or as a function of this round's episodes."""

LossOutput = tuple[Tensor, dict[str, float]]
"""A micro-batch's loss (scalar, differentiable) and floats to report."""


# ================================ PLUMBING ==========================================


@dataclass(kw_only=True)
class Optimization:
    """How a learner takes gradient steps (one per learner; shared shape)."""

    lr: float = 1e-4
    """AdamW learning rate."""
    weight_decay: float = 0.0
    """AdamW decoupled weight decay."""
    betas: tuple[float, float] = (0.9, 0.999)
    """AdamW moment decay rates."""
    max_grad_norm: float | None = 1.0
    """Clip the global gradient norm to this before each step (None: no clipping)."""
    batch_size: int = 8
    """Examples per forward pass (a micro-batch). For the verifier: problems."""
    grad_accum_steps: int = 1
    """Micro-batches whose gradients are summed into one optimizer step."""
    epochs: int = 1
    """Passes over this round's data per `update`."""
    mixed_precision: Literal["auto", "no", "bf16", "fp16"] = "auto"
    """"auto": bf16 autocast on a CUDA device that has bf16 (fp16 with loss scaling on
    older GPUs); none on CPU or when the model's weights are already half precision."""
    keep_state: bool = False
    """Carry AdamW's moments from one round to the next (and checkpoint them).
    False: each round starts a fresh optimizer, so the learner has no state to save."""


def freeze(model: torch.nn.Module) -> torch.nn.Module:
    """Make `model` a frozen reference: no grads, eval mode. Returns it (same object)."""
    model.requires_grad_(False)
    return model.eval()


def resolve_mixed_precision(model: torch.nn.Module, setting: str) -> str:
    """The mixed-precision mode `Accelerator` gets for `setting` on `model`'s device."""
    if setting != "auto":
        return setting
    p = next(model.parameters())
    if p.device.type != "cuda" or p.dtype != torch.float32:
        return "no"
    return "bf16" if torch.cuda.is_bf16_supported() else "fp16"


def make_accelerator(model: torch.nn.Module, mixed_precision: str = "auto") -> Accelerator:
    """An `Accelerator` matching `model`'s device (CPU or GPU) and precision."""
    mp = resolve_mixed_precision(model, mixed_precision)
    device = next(model.parameters()).device
    try:
        return Accelerator(cpu=device.type == "cpu", mixed_precision=mp)
    except ValueError as e:  # accelerate keeps one process-wide state
        raise ValueError(f"all learners in one process must use the same mixed precision "
                         f"(this one resolved to {mp!r}): {e}") from e


def trainable_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError(f"{type(model).__name__} has no trainable parameters (requires_grad is off)")
    return params


def make_optimizer(model: torch.nn.Module, opt: Optimization) -> torch.optim.Optimizer:
    return torch.optim.AdamW(trainable_parameters(model), lr=opt.lr, betas=opt.betas,
                             weight_decay=opt.weight_decay)


def optimizer_step(accelerator: Accelerator, model: torch.nn.Module, optimizer: Any,
                   micro_losses: Sequence[Callable[[], LossOutput]], weights: Sequence[float],
                   max_grad_norm: float | None) -> LossOutput:
    """One optimizer step accumulated over micro-batches.

    Each micro-batch's loss is computed under the accelerator's autocast and
    back-propagated with weight w_i / Σw (its share of the examples), so the step
    follows the gradient of the example-weighted mean loss; then the gradient norm
    is clipped, the optimizer steps and the gradients are cleared. Returns the
    weighted mean loss (detached) and the weighted mean of the reported floats.
    """
    total_w = float(sum(weights))
    loss_sum, stats_sum = 0.0, {}
    for compute, w in zip(micro_losses, weights):
        with accelerator.autocast():
            loss, stats = compute()
        accelerator.backward(loss * (w / total_w))
        loss_sum += loss.item() * w / total_w
        for k, v in stats.items():
            stats_sum[k] = stats_sum.get(k, 0.0) + float(v) * w / total_w
    if max_grad_norm:
        accelerator.clip_grad_norm_(trainable_parameters(model), max_grad_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return torch.tensor(loss_sum), stats_sum


def plan_steps(n: int, opt: Optimization, generator: torch.Generator) -> list[list[list[int]]]:
    """Example indices for each optimizer step: a fresh shuffle each epoch, cut into
    micro-batches of `batch_size`, `grad_accum_steps` micro-batches per step."""
    steps: list[list[list[int]]] = []
    for _ in range(opt.epochs):
        order = torch.randperm(n, generator=generator).tolist()
        micro = [order[i:i + opt.batch_size] for i in range(0, n, opt.batch_size)]
        steps += [micro[i:i + opt.grad_accum_steps] for i in range(0, len(micro), opt.grad_accum_steps)]
    return steps


@contextmanager
def training_mode(model: torch.nn.Module) -> Iterator[None]:
    """model.train() for the duration; the agent gets its model back in its old mode."""
    was_training = model.training
    model.train()
    try:
        yield
    finally:
        model.train(was_training)


def fit(model: torch.nn.Module, optimizer: torch.optim.Optimizer, n: int,
        loss_of: Callable[[list[int]], LossOutput], opt: Optimization,
        generator: torch.Generator) -> dict[str, float]:
    """Run `plan_steps` over n examples; `loss_of(indices)` is one micro-batch's loss.

    Returns metrics: `loss` (mean over steps), `loss_first`, `loss_last`, `steps`,
    and the step-mean of every float the loss function reported.
    """
    accelerator = make_accelerator(model, opt.mixed_precision)
    prepared = accelerator.prepare(optimizer)  # loss scaling (fp16); state to the device
    losses: list[float] = []
    stats_sum: dict[str, float] = {}
    with training_mode(model):
        for step in plan_steps(n, opt, generator):
            loss, stats = optimizer_step(accelerator, model, prepared,
                                         [partial(loss_of, idx) for idx in step],
                                         [len(idx) for idx in step], opt.max_grad_norm)
            losses.append(float(loss))
            for k, v in stats.items():
                stats_sum[k] = stats_sum.get(k, 0.0) + v
    if not losses:
        return {"steps": 0.0}
    out = {"loss": sum(losses) / len(losses), "loss_first": losses[0], "loss_last": losses[-1],
           "steps": float(len(losses))}
    out.update({k: v / len(losses) for k, v in stats_sum.items()})
    return out


@dataclass(kw_only=True)
class LearnerState:
    """What every learner keeps between rounds: its RNG and, if asked, its optimizer.

    Provides the Learner protocol's `reset(seed)` and the optional `save`/`load`.
    Learners inherit it for these three methods and override nothing.
    """

    _rng: torch.Generator = field(default_factory=lambda: torch.Generator().manual_seed(0),
                                  init=False, repr=False)
    _optimizer: torch.optim.Optimizer | None = field(default=None, init=False, repr=False)
    _loaded_state: dict[str, Any] | None = field(default=None, init=False, repr=False)

    def reset(self, seed: int) -> None:
        """Re-seed the learner's own generator (micro-batch shuffling). Never the global RNG."""
        self._rng.manual_seed(int(seed))

    def optimizer_for(self, model: torch.nn.Module, opt: Optimization) -> torch.optim.Optimizer:
        """AdamW over `model`'s trainable parameters: fresh, or the kept/loaded one."""
        params = trainable_parameters(model)
        kept = self._optimizer
        if opt.keep_state and kept is not None and \
                [id(p) for p in kept.param_groups[0]["params"]] == [id(p) for p in params]:
            return kept
        optimizer = make_optimizer(model, opt)
        if opt.keep_state and self._loaded_state is not None:
            optimizer.load_state_dict(self._loaded_state)
            self._loaded_state = None
        if opt.keep_state:
            self._optimizer = optimizer
        return optimizer

    def save(self, directory: Path) -> None:
        """Write the kept optimizer's state (nothing but a marker when there is none)."""
        from safetensors.torch import save_file

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        sd = self._optimizer.state_dict() if self._optimizer is not None else self._loaded_state
        if sd is None:
            (directory / "learner.json").write_text(json.dumps({"optimizer": False}))
            return
        tensors, scalars = {}, {}
        for pid, state in sd["state"].items():
            for name, v in state.items():
                if torch.is_tensor(v):
                    tensors[f"{pid}.{name}"] = v.detach().cpu().contiguous()
                else:
                    scalars[f"{pid}.{name}"] = v
        save_file(tensors, str(directory / "optimizer.safetensors"))
        meta = {"optimizer": True, "param_groups": sd["param_groups"], "scalars": scalars}
        (directory / "learner.json").write_text(json.dumps(meta))

    def load(self, directory: Path) -> None:
        """Read what `save` wrote; the optimizer is rebuilt on the next `update`."""
        from safetensors.torch import load_file

        meta = json.loads((Path(directory) / "learner.json").read_text())
        self._optimizer = None
        if not meta.get("optimizer"):
            self._loaded_state = None
            return
        state: dict[int, dict[str, Any]] = {}
        for key, v in load_file(str(Path(directory) / "optimizer.safetensors")).items():
            pid, name = key.split(".", 1)
            state.setdefault(int(pid), {})[name] = v
        for key, v in meta["scalars"].items():
            pid, name = key.split(".", 1)
            state.setdefault(int(pid), {})[name] = v
        self._loaded_state = {"state": state, "param_groups": meta["param_groups"]}


def resolve(data: Data[T], episodes: Sequence[Episode]) -> list[T]:
    return list(data(episodes)) if callable(data) else list(data)


def prompt_encoder(agent: Any) -> Callable[[str], list[int]]:
    """The prompt ids `agent` conditions on when it plays (chat template, BOS, ...), so
    that training and play see identical inputs."""
    if not hasattr(agent, "sampling"):  # not an `agents.hf.GeneratorAgent`: the tokenizer's own specials
        return lambda prompt: list(agent.tokenizer(prompt)["input_ids"])
    from agents.hf import encode_prompt

    return partial(encode_prompt, agent.tokenizer, sampling=agent.sampling)


def frozen_logprobs(reference: torch.nn.Module, batch: PairBatch) -> tuple[Tensor, Tensor]:
    """`completion_logprobs` under the frozen reference, inference only. (B, T-1) each."""
    with torch.inference_mode():
        token_logps, mask = completion_logprobs(reference, batch)
    return token_logps.clone(), mask.clone()  # clones are ordinary tensors, usable in autograd


def completion_rows(values: Tensor, mask: Tensor) -> list[Tensor]:
    """Per-row 1-D tensors of the masked-in entries (to re-pad them in another batch)."""
    return [v[m] for v, m in zip(values, mask)]


def pad_rows(rows: Sequence[Tensor], mask: Tensor) -> Tensor:
    """Inverse of `completion_rows` for a batch whose `mask` has the same rows. (B, T)."""
    out = torch.zeros(mask.shape, dtype=rows[0].dtype, device=mask.device)
    out[mask] = torch.cat([r.to(mask.device) for r in rows])
    return out


def read_implicit_reward(agent: Any, reference: torch.nn.Module, prompts: Sequence[str],
                         completions: Sequence[str], beta: float) -> Tensor:
    """The adversarial reward DPO/RPO fit, read out: β·log(π(y|x)/π_ref(y|x)). (B,)"""
    batch = encode_pairs(agent.tokenizer, prompts, completions, encode_prompt=prompt_encoder(agent))
    with torch.inference_mode():
        pi = masked_sum(*completion_logprobs(agent.model, batch))
        ref = masked_sum(*completion_logprobs(reference, batch))
    return implicit_reward(pi, ref.to(pi.device), beta)


# ================================ ALGORITHMS ========================================


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
class DPOLearner(LearnerState):
    """DPO, or RPO in either named variant, on preference triples (ALGORITHMS.md §1).

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
            raise ValueError(f"loss must be 'dpo', 'rpo-sum' or 'rpo-mean', not {self.loss!r}")
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


@dataclass(kw_only=True)
class BradleyTerryLearner(LearnerState):
    """A reward model (scorer agent) fit to preference pairs by Bradley–Terry NLL.

    With `adversarial` set it plays the reward-model side of RPO's explicit game
    (ALGORITHMS.md §1, way 2): L_D(r) + η·(mean r(policy answers) − mean r(baseline answers)).
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
    """The prover–verifier game's verifier (ALGORITHMS.md §3): Bradley–Terry between a
    correct and an incorrect solution of the same problem, plus λ·E[V²].

    A micro-batch is `batch_size` problems; every solution of those problems is
    scored, every (correct, incorrect) pair within a problem is a BT term (so a
    problem weighs by its number of such pairs), and the V² penalty covers every
    scored solution. Re-initialising the verifier each round and mixing earlier
    rounds' solutions are the recipe's (it owns the agent and the data).
    """

    data: Data[tuple[Hashable, str, bool]]
    """(problem id, text the verifier reads, correct?) per solution."""
    lam: float = 1e-3
    """λ: weight of the E[V²] penalty that keeps scores near zero."""
    opt: Optimization = field(default_factory=Optimization)
    """Optimizer settings (`batch_size` counts problems)."""

    def update(self, agent: Any, episodes: Sequence[Episode]) -> dict[str, float]:
        solutions = resolve(self.data, episodes)
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
            loss = verifier_loss(v_1, v_2, torch.ones_like(v_1), v, self.lam)
            return loss, {"pair_accuracy": (v_1 > v_2).float().mean().item() if pairs else 0.0,
                          "score_sq": (v.detach() ** 2).mean().item()}

        optimizer = self.optimizer_for(agent.model, self.opt)
        return fit(agent.model, optimizer, len(problems), loss_of, self.opt, self._rng)


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
    reward_fn: Callable[[Sequence[Episode]], Sequence[float]]
    """One reward per episode (for this seat), e.g. SRC/CGC/goodhart or a proxy RM score."""
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
            raise ValueError(f"kl_estimator must be 'k3' or 'k1', not {self.kl_estimator!r}")
        if self.reference is not None:
            freeze(self.reference)
        elif self.beta:
            raise ValueError("PolicyGradientLearner: beta > 0 needs a reference model")

    def update(self, agent: Any, episodes: Sequence[Episode]) -> dict[str, float]:
        rewards_per_episode = [float(r) for r in self.reward_fn(episodes)]
        if len(rewards_per_episode) != len(episodes):
            raise ValueError(f"reward_fn gave {len(rewards_per_episode)} rewards for {len(episodes)} episodes")
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
        for start in range(0, len(samples) if use_ref else 0, self.opt.batch_size):
            idx = list(range(start, min(start + self.opt.batch_size, len(samples))))
            ref_tl, mask = frozen_logprobs(self.reference, batch_of(idx))
            ref_rows += completion_rows(ref_tl, mask)
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
