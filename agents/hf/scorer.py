"""The scorer: `ScorerAgent`, an LM backbone with a scalar head playing a `Box` seat.

A verifier or reward model: `AutoModelForSequenceClassification` with one label;
a head the checkpoint lacks is initialised from its own seeded generator
(`init_head`), never from the global RNG.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from agents.hf.config import DEFAULT_MAX_BATCH, LoadConfig, resolve_device
from agents.hf.loading import (check_model_ref, load_adapter_in_place, load_errors, load_model, load_tokenizer,
                               load_weights_in_place, save_agent_dir)
from agents.hf.lora import is_lora, wrap_lora
from arena.textobs import read_text
from arena.types import ArenaError, Observation


CPU_SCORE_TOKENS = 2048
"""Tokens (rows x padded length) per scoring forward pass on a CPU when `ScorerAgent.score_tokens` is
None: a chunk's activations stay in the CPU's caches. The tiny likelihood verifier scoring 64 solutions
of ~120 characters, one thread, on a loaded 2-core machine: 0.98-1.38x the speed of one pass of 64 (medians of
three runs of interleaved repeats; the same scores to 1e-5)."""


class ScorerAgent:
    """An LM backbone with a scalar head playing a `Box(shape=(1,))` seat (verifier, reward model).

    Input text is the observation's `text_field` (`prompt` unless the seat reads another); the score is
    the head's output at the last non-pad token. `scores(texts, grad=True)` is what learners differentiate.
    """

    kind = "hf"
    produces = "score"
    text_field = "prompt"
    """The observation field this agent reads (its factory sets the seat's: `AgentContext.llm_text_field`)."""
    score_tokens: int | None = None
    """Tokens (rows x padded length) per forward pass: consecutive texts are scored together while their
    padded batch stays within this (and `max_batch` rows). None: `CPU_SCORE_TOKENS` on a CPU, no token
    limit on other devices (a GPU wants the large matmul); 0: no token limit."""

    def __init__(self, model, tokenizer, *, max_batch: int = 0, max_length: int = 0, seed: int = 0):
        self.model = model
        self.tokenizer = tokenizer
        self.max_batch = max_batch
        self.max_length = max_length
        self.device = next(model.parameters()).device
        self.generator = torch.Generator(device="cpu")  # the protocol's own RNG; scoring is deterministic
        self.generator.manual_seed(seed)
        if model.config.pad_token_id is None:
            model.config.pad_token_id = tokenizer.pad_token_id
        self.base: dict | None = None
        """`{"ref", "gguf_file"}` of the base weights (set by `from_pretrained`; a LoRA checkpoint names it)."""

    @classmethod
    def from_pretrained(cls, ref: str, *, gguf_file: str | None = None,
                        load: LoadConfig | None = None) -> "ScorerAgent":
        from transformers import AutoModelForSequenceClassification

        load = load or LoadConfig()
        device = resolve_device(load.device)  # a device this torch cannot use: one line, before loading
        check_model_ref(ref, gguf_file, download=load.download)
        tokenizer = load_tokenizer(ref, gguf_file, download=load.download)
        fresh = dataclasses.replace(load, lora=0)  # the head is initialised before an adapter wraps it
        try:
            # warnings off: a causal LM checkpoint has no score head, which is expected (initialised below)
            model, base, info = load_model(AutoModelForSequenceClassification, ref, gguf_file, fresh, "scorer",
                                           num_labels=1, pad_token_id=tokenizer.pad_token_id)
        except load_errors() as e:
            raise ArenaError(f"cannot load a scorer from {ref!r}: {type(e).__name__}: {e}") from e
        if not is_lora(model):
            name = _head_name(model)
            if any(k.startswith(name + ".") for k in info.get("missing_keys", [])):  # a backbone-only checkpoint
                init_head(getattr(model, name), load.seed, getattr(model.config, "initializer_range", 0.02))
            if load.lora:
                model = wrap_lora(model, load, "scorer")
                if load.gradient_checkpointing:
                    model.enable_input_require_grads()
                model.arena_mixed_precision = load.mixed_precision
        model.to(device).eval()
        agent = cls(model, tokenizer, max_batch=load.max_batch, max_length=load.max_length, seed=load.seed)
        agent.base = base
        return agent

    def reset(self, seed: int) -> None:
        self.generator.manual_seed(int(seed))

    def scores(self, texts: Sequence[str], grad: bool = False) -> torch.Tensor:
        """(B,) float32 scores for `texts`, computed in chunks of at most `max_batch` texts (0: 64, so a
        scoring pass over a whole held-out set keeps its memory bounded) and `score_tokens` tokens;
        with `grad=True` the graph is kept for a loss."""
        if not texts:
            return torch.zeros(0, device=self.device)
        parts = [self._score_batch(list(texts[c]), grad) for c in self._chunks(texts)]
        return torch.cat(parts)

    def _chunks(self, texts: Sequence[str]) -> list[slice]:
        """Consecutive runs of texts scored in one forward pass (see `score_tokens`)."""
        rows = self.max_batch or DEFAULT_MAX_BATCH  # memory bounded by a batch, however many texts come
        budget = self.score_tokens
        if budget is None:
            budget = CPU_SCORE_TOKENS if self.device.type == "cpu" else 0
        if not budget:
            return [slice(i, i + rows) for i in range(0, len(texts), rows)]
        lengths = [len(ids) for ids in self.tokenizer(list(texts))["input_ids"]]
        if self.max_length:
            lengths = [min(n, self.max_length) for n in lengths]
        out, start, longest = [], 0, 0
        for i, n in enumerate(lengths):
            longest = max(longest, n)
            if i > start and ((i - start + 1) * longest > budget or i - start == rows):
                out.append(slice(start, i))
                start, longest = i, n
        out.append(slice(start, len(texts)))
        return out

    def _score_batch(self, texts: list[str], grad: bool) -> torch.Tensor:
        if grad:
            return self._forward(texts)
        with torch.inference_mode():
            was_training = self.model.training
            self.model.eval()
            try:
                return self._forward(texts)
            finally:
                self.model.train(was_training)

    def _forward(self, texts: list[str]) -> torch.Tensor:
        """(B,) scores of one batch: the head's output at the last non-pad token."""
        enc = self.tokenizer(texts, padding=True, padding_side="right", return_tensors="pt",
                             truncation=bool(self.max_length),
                             max_length=self.max_length or None)
        enc = {k: v.to(self.device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
        return self.model(**enc).logits[:, 0].float()

    def act(self, observations: Sequence[Observation]) -> list[np.ndarray]:
        values = self.scores([read_text(obs, self.text_field) for obs in observations]).cpu().numpy()
        return [np.asarray([v], dtype=np.float32) for v in values]

    def save(self, directory: Path) -> None:
        save_agent_dir(self.model, self.tokenizer, directory, {"agent": "scorer"}, base=self.base)

    def load(self, directory: Path) -> None:
        if is_lora(self.model):
            load_adapter_in_place(self.model, Path(directory))
        else:
            load_weights_in_place(self.model, Path(directory))


def _head_name(model) -> str:
    for name in ("score", "classifier", "v_head"):
        if isinstance(getattr(model, name, None), torch.nn.Module):
            return name
    raise ArenaError(f"{type(model).__name__} has no scalar head named score/classifier/v_head")


@torch.no_grad()
def init_head(head: torch.nn.Module, seed: int, std: float = 0.02) -> None:
    """Initialise a fresh scalar head from its own seeded generator (the global RNG is never used)."""
    g = torch.Generator(device="cpu").manual_seed(int(seed))
    for name, p in head.named_parameters():
        if name.endswith("bias"):
            p.zero_()
        else:
            p.copy_(torch.randn(p.shape, generator=g) * std)
