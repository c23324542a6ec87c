"""A decode step of its own for Llama-architecture models on a CPU: the same arithmetic as transformers'
`LlamaForCausalLM` forward for one new token a row, in ~15 ops a layer instead of ~50.

At the tiny model's batch 64 a decode step's ops are small (a 64 x 128 matrix at most), so each op's fixed
cost is much of the step: transformers' Llama layer runs separate q/k/v and gate/up projections, a 7-op
RMSNorm and a 12-op rotary embedding, and every forward makes its mask and rotary tables anew. Here the q/k/v
and gate/up weights are joined (once per `generate` call, so a learner's in-place updates are read), the norms
are `F.rms_norm`, the rotary embedding is one flip and a multiply-add on q and k together, residuals are
`addmm`, and attention is `agents.hf.cpu_attention`'s loop, written into transformers' KV cache
(`PreallocLayer.update`), so prefill, compaction and every other model keep transformers' forward.

`LlamaStep.of(model, cache)` is None where this does not apply: another architecture, LoRA, biases or
another activation, not float32 on a CPU, another cache, or a model over `MAX_PARAMS` (its joined weights
would copy most of it every `generate` call, and its matmuls, not per-op costs, fill its step).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

from agents.hf.cpu_attention import decode_attention, kernel, loop_applies, run_loop
from agents.hf.kvcache import PreallocLayer

MAX_PARAMS = 16_000_000
"""Models with more parameters keep transformers' forward (with the attention loop): 64 MB of float32 at most,
of which the joined q/k/v and gate/up weights copy about two thirds per `generate` call."""


class LlamaStep:
    """One decode step of a `LlamaForCausalLM` (float32, CPU): `step(tokens, positions, mask)` -> (b, V) logits."""

    def __init__(self, model, cache):
        inner = model.model
        c = model.config
        self.cache, self.rotary, self.embed = cache, inner.rotary_emb, inner.embed_tokens.weight
        self.heads, self.kv_heads = c.num_attention_heads, c.num_key_value_heads
        self.head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
        self.eps, self.inter = c.rms_norm_eps, c.intermediate_size
        self.layers = []
        for layer in inner.layers:
            a, m = layer.self_attn, layer.mlp
            self.layers.append((a, layer.input_layernorm.weight,
                                torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight]), a.o_proj.weight.t(),
                                layer.post_attention_layernorm.weight,
                                torch.cat([m.gate_proj.weight, m.up_proj.weight]), m.down_proj.weight.t()))
        self.norm, self.head = inner.norm.weight, model.lm_head.weight
        # (positions, head_dim) rotary tables, sin with rotate_half's sign folded in, for every position the cache
        # can hold (a position counts a row's real tokens: never past its slot); the rotary embedding is a static
        # one (`of` checks).
        cos, sin = self.rotary(self.embed[:1, None], torch.arange(cache.layers[0].capacity)[None])
        half = cos.shape[-1] // 2
        self.cos, self.sin = cos[0], torch.cat([-sin[0, :, :half], sin[0, :, half:]], dim=-1)

    @classmethod
    def of(cls, model, cache) -> "LlamaStep | None":
        """The step for `model` decoding into `cache`, or None where it does not apply (then transformers'
        forward runs)."""
        c = getattr(model, "config", None)
        param = next(model.parameters(), None)
        if type(model).__name__ != "LlamaForCausalLM" or c is None or param is None \
                or param.device.type != "cpu" or param.dtype != torch.float32 \
                or getattr(c, "attention_bias", False) or getattr(c, "mlp_bias", False) \
                or getattr(c, "hidden_act", "silu") != "silu" or getattr(c, "pretraining_tp", 1) != 1 \
                or c.num_attention_heads % c.num_key_value_heads \
                or not all(isinstance(layer, PreallocLayer) for layer in cache.layers) \
                or getattr(getattr(getattr(model, "model", None), "rotary_emb", None), "rope_type", "default") \
                not in _STATIC_ROPE:
            return None
        if any(type(m).__name__ not in _PLAIN for m in model.modules()):  # LoRA, quantised or other wrapped layers
            return None
        if sum(p.numel() for p in model.parameters()) > MAX_PARAMS:
            return None
        try:
            return cls(model, cache)
        except AttributeError:  # a transformers whose Llama names its parts otherwise
            return None

    def __call__(self, tokens: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(b,) next tokens, (b, 1) their positions, (b, n) the attention mask over the cache's slots after this
        one -> (b, V) float logits."""
        b, H, K, D = tokens.shape[0], self.heads, self.kv_heads, self.head_dim
        x = F.embedding(tokens, self.embed)  # (b, hidden)
        cos, sin = self.cos[positions[:, 0]][:, None], self.sin[positions[:, 0]][:, None]  # (b, 1, D): every head
        keep = mask.bool()[:, None, None, :]  # (b, 1, 1, n)
        hidden, half, loop = x.shape[-1], D // 2, None
        for layer_idx, (attn, w_in, w_qkv, w_o, w_post, w_gu, w_down) in enumerate(self.layers):
            qkv = F.linear(F.rms_norm(x, (hidden,), w_in, self.eps), w_qkv)  # (b, (H + 2K) D)
            qk = qkv[:, :(H + K) * D].view(b, H + K, D)
            qk = torch.addcmul(qk * cos, qk.view(b, H + K, 2, half).flip(2).view(b, H + K, D), sin)  # rotary
            v = qkv[:, (H + K) * D:].view(b, K, 1, D)
            keys, values = self.cache.layers[layer_idx].update(qk[:, H:, None, :], v)
            q = qk[:, :H, None, :]
            if loop is None:  # every layer's arguments are alike: checked once a step
                loop = kernel() if kernel() is not None and loop_applies(q, keys, values, keep, 0.0, {}) else False
            out = run_loop(loop, q, keys, values, keep, attn.scaling) if loop else \
                decode_attention(attn, q, keys, values, keep, scaling=attn.scaling)[0]
            x = torch.addmm(x, out.view(b, H * D), w_o)
            gu = F.linear(F.rms_norm(x, (hidden,), w_post, self.eps), w_gu)
            x = torch.addmm(x, F.silu(gu[:, :self.inter]) * gu[:, self.inter:], w_down)
        return F.linear(F.rms_norm(x, (hidden,), self.norm, self.eps), self.head)  # float32: `of` checks


_STATIC_ROPE = ("default", "linear", "llama3")
"""Rotary embeddings whose tables do not depend on the sequence's length (a dynamic one's do: transformers' forward)."""

_PLAIN = {"LlamaForCausalLM", "LlamaModel", "LlamaDecoderLayer", "LlamaAttention", "LlamaMLP", "LlamaRMSNorm",
          "LlamaRotaryEmbedding", "Linear", "Embedding", "ModuleList", "SiLU", "SiLUActivation", "Identity"}
"""The module classes a model this step reads may hold (anything else, such as a LoRA layer: transformers' forward)."""
