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
    """
    batch = batch.to(_device_of(model))
    logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits  # (B, T, V)
    logits = logits[:, :-1]  # (B, T-1, V): position t predicts token t+1
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()
    targets = batch.input_ids[:, 1:]  # (B, T-1)
    # log softmax at the target only: logit[target] - logsumexp(logits)
    target_logits = logits.gather(-1, targets.unsqueeze(-1)).squeeze(-1)  # (B, T-1)
    token_logps = target_logits - torch.logsumexp(logits, dim=-1)  # (B, T-1)
    mask = batch.completion_mask[:, 1:]  # (B, T-1)
    return token_logps.masked_fill(~mask, 0.0), mask


def sequence_logprobs(model: Any, batch: PairBatch) -> Tensor:
    """log π(y|x): completion token log-probabilities summed per row. # (B,)"""
    token_logps, _ = completion_logprobs(model, batch)
    return token_logps.sum(dim=1)


def _device_of(model: Any) -> torch.device:
    try:
        return next(model.parameters()).device
    except (StopIteration, AttributeError):
        return torch.device("cpu")
