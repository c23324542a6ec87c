"""The shared fitting loop every learner runs: `Optimization`, `fit` and its plumbing.

`fit(model, optimizer, n, loss_of, opt, generator)` runs epochs of shuffled
micro-batches over n examples; `loss_of(indices)` is one micro-batch's loss (a
call to a named loss from `agents.losses`), and every `grad_accum_steps`
micro-batches make one `optimizer_step`. `LearnerState` is what each learner
keeps between rounds (its RNG and, if asked, its optimizer); the helpers at the
bottom turn an agent's text into the token ids and log-probs the losses read.

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
  for fp16, loss scaling), gradient clipping and backward. The model is not wrapped
  by `accelerator.prepare` (that would patch the agent's `forward` for good).
- **Several processes** (torchrun / `accelerate launch`, one per GPU): every process
  holds the same weights and draws the same plan of micro-batches; each runs its
  shard of every micro-batch (`shard`: every world-th example), weights its examples
  by the count over all processes, and the gradients are summed over processes
  (`all_reduce_step`) before clipping, so every process takes the same step. One
  process is exactly the single-process loop.
"""
from __future__ import annotations

import copy
import json
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, Callable, Iterator, Literal, Sequence, TypeVar

import torch
from accelerate import Accelerator
from torch import Tensor

from agents.batch import PairBatch, completion_logprobs
from arena.types import ArenaError, Episode

T = TypeVar("T")
Data = Sequence[T] | Callable[[Sequence[Episode]], Sequence[T]]
"""A recipe gives a learner its data as a fixed list, or as a function of this round's episodes."""

LossOutput = tuple[Tensor, dict[str, float]]
"""A micro-batch's loss (scalar, differentiable) and floats to report."""


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


def reference_policy(model: torch.nn.Module) -> Any:
    """π_ref for a learner's KL / DPO term: the policy as it is now, frozen. For a LoRA model
    (`hf:<model>?lora=R`) that is the same base with the adapter disabled (`agents.hf.lora.BasePolicy`:
    no second copy of the weights; exact while the adapter is fresh, as LoRA's B starts at zero);
    otherwise a frozen deep copy."""
    from agents.hf.lora import BasePolicy, is_lora

    if is_lora(model):
        return BasePolicy(model)
    return freeze(copy.deepcopy(model))


def resolve_mixed_precision(model: torch.nn.Module, setting: str) -> str:
    """The mixed-precision mode `Accelerator` gets for `setting` on `model`'s device. "auto" defers
    to the seat's own choice (`hf:<model>?mixed_precision=bf16`, kept as `model.arena_mixed_precision`)."""
    if setting == "auto":
        setting = getattr(model, "arena_mixed_precision", "auto")
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
    from accelerate.state import AcceleratorState

    state = AcceleratorState._shared_state  # accelerate keeps one process-wide precision
    if state.get("_mixed_precision") not in (None, mp):
        # Seats of one process may differ (a bf16 LoRA policy beside an fp32 verifier): each `fit`
        # builds its own Accelerator, so the precision part of the state is reset between them
        # (the process group, `PartialState`, is left alone).
        AcceleratorState._reset_state(reset_partial_state=False)
    try:
        return Accelerator(cpu=device.type == "cpu", mixed_precision=mp)
    except ValueError as e:
        raise ArenaError(f"cannot set up the learner's accelerator (mixed precision {mp!r}): "
                         f"{' '.join(str(e).split())}") from e


def trainable_parameters(model: torch.nn.Module) -> list[torch.nn.Parameter]:
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ArenaError(f"{type(model).__name__} has no trainable parameters (requires_grad is off)")
    return params


def make_optimizer(model: torch.nn.Module, opt: Optimization) -> torch.optim.Optimizer:
    return torch.optim.AdamW(trainable_parameters(model), lr=opt.lr, betas=opt.betas,
                             weight_decay=opt.weight_decay)


def optimizer_step(accelerator: Accelerator, model: torch.nn.Module, optimizer: Any,
                   micro_losses: Sequence[Callable[[], LossOutput]], weights: Sequence[float],
                   max_grad_norm: float | None, total_weight: float | None = None) -> LossOutput:
    """One optimizer step accumulated over micro-batches.

    Each micro-batch's loss is computed under the accelerator's autocast and
    back-propagated with weight w_i / Σw (its share of the examples), so the step
    follows the gradient of the example-weighted mean loss; then the gradient norm
    is clipped, the optimizer steps and the gradients are cleared. Returns the
    weighted mean loss (detached) and the weighted mean of the reported floats.

    Several processes (`fit` under torchrun): each runs its shard of the step's examples,
    `total_weight` is Σw over every process, and the gradients (and the reported figures)
    are summed over processes before clipping, so every process takes the same step.
    """
    total_w = float(total_weight if total_weight is not None else sum(weights))
    loss_sum, stats_sum = 0.0, {}
    for compute, w in zip(micro_losses, weights):
        if not w:
            continue
        with accelerator.autocast():
            loss, stats = compute()
        accelerator.backward(loss * (w / total_w))
        loss_sum += loss.item() * w / total_w
        for k, v in stats.items():
            stats_sum[k] = stats_sum.get(k, 0.0) + float(v) * w / total_w
    if accelerator.num_processes > 1:
        loss_sum, stats_sum = all_reduce_step(trainable_parameters(model), loss_sum, stats_sum)
    if max_grad_norm:
        accelerator.clip_grad_norm_(trainable_parameters(model), max_grad_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return torch.tensor(loss_sum), stats_sum


def all_reduce_step(params: Sequence[torch.nn.Parameter], loss_sum: float,
                    stats_sum: dict[str, float]) -> tuple[float, dict[str, float]]:
    """Sum the gradients of `params`, and the step's loss and figures, over every process (in one
    flat buffer: one collective call). A process whose shard was empty contributes zeros."""
    import torch.distributed as dist

    from arena.rollout.distributed import collective

    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1).float() for g in grads])
    with collective(dist.get_rank(), dist.get_world_size()):  # a process that died: one line, not a traceback
        dist.all_reduce(flat)
    offset = 0
    for p, g in zip(params, grads):
        n = g.numel()
        p.grad = flat[offset:offset + n].view_as(g).to(g.dtype)
        offset += n
    names = sorted({k for d in _all_gather(sorted(stats_sum)) for k in d})
    figures = torch.tensor([loss_sum, *(stats_sum.get(k, 0.0) for k in names)], dtype=torch.float64)
    with collective(dist.get_rank(), dist.get_world_size()):
        dist.all_reduce(figures)
    return float(figures[0]), {k: float(v) for k, v in zip(names, figures[1:])}


def _all_gather(obj: Any) -> list[Any]:
    import torch.distributed as dist

    from arena.rollout.distributed import collective

    out: list[Any] = [None] * dist.get_world_size()
    with collective(dist.get_rank(), dist.get_world_size()):
        dist.all_gather_object(out, obj)
    return out


def shard(idx: Sequence[int], rank: int, world: int) -> list[int]:
    """This process's examples of a micro-batch: every `world`-th one from position `rank`."""
    return list(idx[rank::world])


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
    world, rank = accelerator.num_processes, accelerator.process_index
    losses: list[float] = []
    stats_sum: dict[str, float] = {}
    with training_mode(model):
        for step in plan_steps(n, opt, generator):  # every process draws the same plan (same seed)
            if world > 1:  # this process's share of each micro-batch; weights count every process's
                total = float(sum(len(idx) for idx in step))
                step = [shard(idx, rank, world) for idx in step]
            else:
                total = None
            loss, stats = optimizer_step(accelerator, model, prepared,
                                         [partial(loss_of, idx) for idx in step],
                                         [len(idx) for idx in step], opt.max_grad_norm, total)
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

    @property
    def rng(self) -> torch.Generator:
        """The learner's own generator, re-seeded by `reset`. A caller that builds its loop from
        this learner's parts draws its other randomness from it too: one stream per seed."""
        return self._rng

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
    """A learner's `data` for this round: the list itself, or the function applied to the episodes."""
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
