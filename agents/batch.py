"""Prompt/completion batches and their log-probabilities under a causal LM.

Every learner that trains a generator goes through the same two steps:

1. build a `PairBatch`: prompt tokens followed by completion tokens, right-padded,
   with a mask that marks the completion tokens only (the prompt is context, never
   a training target);
2. `completion_logprobs(model, batch)`: one forward pass, the log-probability of
   each completion token given everything before it.

Two ways to build a batch:
- `encode_pairs(tokenizer, prompts, completions)` from text (SFT data, preference
  triples, ReST samples). An EOS token is appended to each completion when the
  tokenizer has one, so the model learns to stop.
- `batch_from_token_ids(prompt_ids, completion_ids, pad_id)` from the token ids an
  agent recorded while sampling (`Step.extras["prompt_ids"/"completion_ids"]`), so
  that policy-gradient scores exactly the tokens that were sampled: re-tokenising
  the decoded text can split it differently.

Right padding keeps the real tokens at positions 0..n-1, so the model's default
position ids are right without passing any.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch
from torch import Tensor


@dataclass
class PairBatch:
    """Right-padded prompt+completion sequences.

    Row i holds `prompt_i + completion_i (+ EOS)` then padding.
    """

    input_ids: Tensor  # (B, T) long
    attention_mask: Tensor  # (B, T) long, 1 on real tokens (prompt and completion)
    completion_mask: Tensor  # (B, T) bool, True on completion tokens only (incl. EOS)

    def __len__(self) -> int:
        return self.input_ids.shape[0]

    def to(self, device: torch.device | str) -> "PairBatch":
        return PairBatch(self.input_ids.to(device), self.attention_mask.to(device),
                         self.completion_mask.to(device))

    @property
    def completion_lengths(self) -> Tensor:
        """Number of completion tokens per row. # (B,)"""
        return self.completion_mask.sum(dim=1)


def pad_id_of(tokenizer: Any) -> int:
    """The id used for padding: pad, else EOS, else 0 (padding is masked out anyway)."""
    for tid in (getattr(tokenizer, "pad_token_id", None), getattr(tokenizer, "eos_token_id", None)):
        if tid is not None:
            return int(tid)
    return 0


def batch_from_token_ids(prompt_ids: Sequence[Sequence[int]], completion_ids: Sequence[Sequence[int]],
                         pad_id: int, max_length: int | None = None) -> PairBatch:
    """Build a batch from token ids as they are (no EOS added, nothing re-tokenised).

    `prompt_ids[i]` must be the unpadded prompt the model conditioned on and
    `completion_ids[i]` the sampled tokens (including EOS if one was sampled).
    With `max_length`, prompts are cut from the left first (the completion is the
    training target), then completions from the right.
    """
    if len(prompt_ids) != len(completion_ids):
        raise ValueError(f"{len(prompt_ids)} prompts but {len(completion_ids)} completions")
    rows: list[tuple[list[int], int]] = []  # (tokens, prompt length)
    for p, c in zip(prompt_ids, completion_ids):
        p, c = [int(t) for t in p], [int(t) for t in c]
        if max_length is not None and len(p) + len(c) > max_length:
            keep_p = max(max_length - len(c), 1 if p else 0)  # keep >= 1 context token
            p = p[len(p) - keep_p:]
            c = c[: max_length - len(p)]
        rows.append((p + c, len(p)))
    T = max((len(toks) for toks, _ in rows), default=0)
    B = len(rows)
    input_ids = torch.full((B, T), pad_id, dtype=torch.long)  # (B, T)
    attention_mask = torch.zeros((B, T), dtype=torch.long)  # (B, T)
    completion_mask = torch.zeros((B, T), dtype=torch.bool)  # (B, T)
    for i, (toks, n_prompt) in enumerate(rows):
        input_ids[i, : len(toks)] = torch.tensor(toks, dtype=torch.long)
        attention_mask[i, : len(toks)] = 1
        completion_mask[i, n_prompt: len(toks)] = True
    return PairBatch(input_ids, attention_mask, completion_mask)


def encode_pairs(tokenizer: Any, prompts: Sequence[str], completions: Sequence[str],
                 max_length: int | None = None, add_eos: bool = True,
                 encode_prompt: Callable[[str], Sequence[int]] | None = None) -> PairBatch:
    """Tokenise (prompt, completion) text pairs into a right-padded `PairBatch`.

    The prompt and the completion are tokenised separately and concatenated, as in
    generation (the model saw the prompt ids, then produced the completion ids).
    `encode_prompt` turns a prompt into the ids the player conditions on (e.g. its
    chat template, `agents.hf.encode_prompt`); by default the tokenizer with its own
    special tokens (a BOS). Completions get no special tokens, except the
    tokenizer's EOS appended when `add_eos` and the tokenizer has one.
    """
    if len(prompts) != len(completions):
        raise ValueError(f"{len(prompts)} prompts but {len(completions)} completions")
    if encode_prompt is None:
        p_ids = tokenizer(list(prompts))["input_ids"]
    else:
        p_ids = [list(encode_prompt(p)) for p in prompts]
    c_ids = tokenizer(list(completions), add_special_tokens=False)["input_ids"]
    eos = getattr(tokenizer, "eos_token_id", None)
    if add_eos and eos is not None:
        c_ids = [list(c) + [int(eos)] for c in c_ids]
    return batch_from_token_ids(p_ids, c_ids, pad_id_of(tokenizer), max_length)


def completion_logprobs(model: Any, batch: PairBatch) -> tuple[Tensor, Tensor]:
    """Per-token log-probabilities of the completion tokens.

    Returns `(token_logps, mask)`, both `(B, T-1)`: position t scores token t+1
    given tokens 0..t; `mask` is True where token t+1 is a completion token, and
    `token_logps` is 0 wherever `mask` is False. Half-precision logits are upcast
    to float32 first (float64 models stay float64). Differentiable when called
    with grad enabled.

    Rows that are copies of one another (a group's samples that came out the same) run once
    (`copied_rows`; not while dropout draws a mask per row), and rows whose prompts are identical (a
    group of samples of one prompt, a preference pair) have their prompt run once
    (`shared_prompt_logprobs`), where the model can continue from a KV cache; the result is the same
    up to float rounding.
    """
    batch = batch.to(_device_of(model))
    copies = copied_rows(batch) if _merges_copies(model) else None
    if copies is None:
        return _distinct_logprobs(model, batch), batch.completion_mask[:, 1:]
    keep, inverse = copies  # each distinct row once, then every copy gets its row's log-probs
    distinct = PairBatch(batch.input_ids[keep], batch.attention_mask[keep], batch.completion_mask[keep])
    return repeat_rows(_distinct_logprobs(model, distinct), inverse), batch.completion_mask[:, 1:]


def _distinct_logprobs(model: Any, batch: PairBatch) -> Tensor:
    """`completion_logprobs`' (B, T-1) token log-probs, each repeated prompt run once where the model can
    continue from a KV cache, else one pass."""
    shared = shared_prompts(batch)
    if shared is not None and _continues_from_cache(model):
        return shared_prompt_logprobs(model, batch, *shared)
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits  # (B, T, V)
    logits = logits[:, :-1]  # (B, T-1, V): position t predicts token t+1
    targets = batch.input_ids[:, 1:]  # (B, T-1)
    mask = batch.completion_mask[:, 1:]  # (B, T-1)
    return _target_logprobs(logits, targets).masked_fill(~mask, 0.0)


def _target_logprobs(logits: Tensor, targets: Tensor) -> Tensor:
    """log softmax(logits) at `targets` (logit[target] - logsumexp), in float32 at least. (B, T)"""
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    return logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)


def shared_prompts(batch: PairBatch) -> tuple[list[list[int]], list[int]] | None:
    """(unique prompts, the index of each row's prompt among them) when some rows share a prompt and every
    row has a prompt token before its completion; None otherwise (nothing to share)."""
    has = batch.completion_mask.any(dim=1)
    starts = batch.completion_mask.int().argmax(dim=1)  # first completion token of each row
    if not bool(has.all()) or int(starts.min()) < 1:
        return None
    unique: dict[tuple[int, ...], int] = {}
    rows = batch.input_ids.tolist()
    source = [unique.setdefault(tuple(row[:n]), len(unique)) for row, n in zip(rows, starts.tolist())]
    return ([list(p) for p in unique], source) if len(unique) < len(rows) else None


def shared_prompt_logprobs(model: Any, batch: PairBatch, prompts: list[list[int]], source: list[int]) -> Tensor:
    """`completion_logprobs`' (B, T-1) token log-probs with each unique prompt run once: a forward over the
    U prompts (right-padded) fills a KV cache, whose rows are repeated for the B rows (autograd flows
    back through them), and a second forward runs every row's completion after its prompt. Gradients
    are those of the one-pass forward: the prompt's share of each row's loss reaches it through the
    repeated cache."""
    from transformers import DynamicCache

    from agents.hf.kvcache import cache_argument

    dev, U = batch.input_ids.device, len(prompts)
    plen = torch.tensor([len(p) for p in prompts], device=dev)  # (U,)
    P = int(plen.max())
    ids = torch.zeros((U, P), dtype=torch.long, device=dev)
    for u, p in enumerate(prompts):
        ids[u, :len(p)] = torch.tensor(p, dtype=torch.long)
    pmask = (torch.arange(P, device=dev)[None, :] < plen[:, None]).long()  # (U, P)
    cache, name = DynamicCache(config=model.config), cache_argument(model)
    first = model(input_ids=ids, attention_mask=pmask, use_cache=True, **{name: cache}).logits  # (U, P, V)
    first = first[torch.arange(U, device=dev), plen - 1]  # (U, V): predicts each prompt's first completion token
    src = torch.tensor(source, device=dev)  # (B,)
    for layer in cache.layers:  # repeat_rows: its backward sums the repeated rows in a fixed order
        layer.keys, layer.values = repeat_rows(layer.keys, src), repeat_rows(layer.values, src)
    # the completions, left-aligned after the (right-padded) prompts: (B, C)
    cmask = batch.completion_mask
    n = cmask.sum(dim=1)  # (B,)
    C = int(n.max())
    cpos = torch.arange(C, device=dev)[None, :] < n[:, None]  # (B, C)
    comp = torch.zeros((len(source), C), dtype=torch.long, device=dev).masked_scatter(cpos, batch.input_ids[cmask])
    positions = plen[src][:, None] + torch.arange(C, device=dev)[None, :]  # real tokens count from 0
    mask = torch.cat([pmask[src], cpos.long()], dim=1)  # (B, P + C)
    rest = model(input_ids=comp, attention_mask=mask, position_ids=positions, use_cache=True,
                 **{name: cache}).logits  # (B, C, V): position j predicts completion token j + 1
    # (B, C, V): entry j predicts completion token j
    logits = torch.cat([repeat_rows(first, src)[:, None], rest[:, :-1]], dim=1)
    lp = _target_logprobs(logits, comp)  # (B, C)
    out = torch.zeros(cmask[:, 1:].shape, dtype=lp.dtype, device=dev)
    return out.masked_scatter(cmask[:, 1:], lp[cpos])


def copied_rows(batch: PairBatch) -> tuple[Tensor, Tensor] | None:
    """(the first row of each distinct row, each row's index among those) when some rows are copies of
    others (the same tokens and masks); None when every row is distinct."""
    rows = torch.cat([batch.input_ids, batch.attention_mask.long(), batch.completion_mask.long()], 1).tolist()
    index: dict[tuple[int, ...], int] = {}
    inverse = [index.setdefault(tuple(row), len(index)) for row in rows]
    if len(index) == len(rows):
        return None
    first = {}
    for i, u in enumerate(inverse):
        first.setdefault(u, i)
    dev = batch.input_ids.device
    return torch.tensor(list(first.values()), device=dev), torch.tensor(inverse, device=dev)


def _merges_copies(model: Any) -> bool:
    """Whether copied rows may run once: always outside training, and in training unless something in the
    model drops out at random (each copy would draw its own mask): an `nn.Dropout` with p > 0, or a
    config's dropout probability above 0 (attention dropout is a config value, not a module)."""
    if not (torch.is_grad_enabled() and getattr(model, "training", False)):
        return True
    if any(isinstance(m, torch.nn.modules.dropout._DropoutNd) and m.p > 0 for m in model.modules()):
        return False
    config = getattr(model, "config", None)
    configs = [config, config.get_text_config()] if hasattr(config, "get_text_config") else [config]
    return not any(("dropout" in k or "pdrop" in k) and isinstance(v, (int, float)) and not isinstance(v, bool)
                   and v > 0 for c in configs if c is not None for k, v in vars(c).items())


class _RepeatRows(torch.autograd.Function):
    """`x.index_select(0, index)`, whose backward is `index_select`'s own (an `index_add_`: the same sums in
    the same order) on a contiguous copy of the gradient. A gradient sliced out of a `cat` (a KV cache's
    prompt part) is not contiguous, and there `index_add_` on a CPU takes a scatter path with an index
    tensor the size of the gradient, several times slower than the copy and the add."""

    @staticmethod
    def forward(ctx: Any, x: Tensor, index: Tensor) -> Tensor:
        ctx.rows = x.shape[0]
        ctx.save_for_backward(index)
        return x.index_select(0, index)

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        (index,) = ctx.saved_tensors
        return grad.new_zeros((ctx.rows, *grad.shape[1:])).index_add_(0, index, grad.contiguous()), None


def repeat_rows(x: Tensor, index: Tensor) -> Tensor:
    """Row `index[i]` of `x` as row i (differentiable; gradients of repeated rows are summed in row order)."""
    return _RepeatRows.apply(x, index)


def _continues_from_cache(model: Any) -> bool:
    """Whether `model` is a decoder-only transformers model that can continue from a KV cache of full-attention
    layers only (a sliding-window layer crops by position, and the prompts here are right-padded) and is
    not checkpointing activations (which turns the cache off in training)."""
    from transformers import DynamicCache
    from transformers.cache_utils import DynamicLayer

    from agents.hf.kvcache import cache_argument

    config = getattr(model, "config", None)
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model  # LoRA
    name = "is_activation_checkpointing" if hasattr(type(inner), "is_activation_checkpointing") \
        else "is_gradient_checkpointing"  # transformers >= 5.2x renamed it (the old name warns)
    if config is None or getattr(config, "is_encoder_decoder", False) or getattr(inner, name, False) \
            or cache_argument(model) is None:
        return False
    return all(type(layer) is DynamicLayer for layer in DynamicCache(config=config).layers)


def sequence_logprobs(model: Any, batch: PairBatch) -> Tensor:
    """log π(y|x): completion token log-probabilities summed per row. # (B,)"""
    token_logps, _ = completion_logprobs(model, batch)
    return token_logps.sum(dim=1)


def _device_of(model: Any) -> torch.device:
    try:
        return next(model.parameters()).device
    except (StopIteration, AttributeError):
        return torch.device("cpu")
