"""A decode step of its own for Llama-architecture models on a CPU: the same arithmetic as transformers'
`LlamaForCausalLM` forward for one new token a row, in 8 calls a layer instead of ~50 ops.

At the tiny model's batch 64 a decode step's ops are small (a 64 x 128 matrix at most), so each op's fixed
cost is much of the step -- more so in a step, where the KV cache streamed through the CPU's caches between them
leaves torch's own code and data cold (an RMSNorm took 42 us there, 13 us in a loop of its own): transformers'
Llama layer runs separate q/k/v and gate/up projections, a 7-op RMSNorm and a 12-op rotary embedding, and every
forward makes its mask and rotary tables anew. Here the q/k/v and gate/up weights are joined (once per
`generate` call, so a learner's in-place updates are read) and each layer is: RMSNorm (C), one q/k/v matmul, one
C pass over each row that rotates its q and k, writes its new key and value into transformers' KV cache and
attends (`agents.hf.cpu_attention.run_layer`), the output projection added in place (`addmm_`), RMSNorm (C), one
gate/up matmul, SiLU x up (C), the down projection added in place; the embedding lookup rides on the first
RMSNorm. The C is compiled once a process (`agents.hf.native`) and checked against torch before use. Prefill,
compaction and every other model keep transformers' forward.

`LlamaStep.of(model, cache)` is None where this does not apply: another architecture, LoRA, biases or
another activation, not float32 on a CPU, another cache, no C compiler, or a model over `MAX_PARAMS` (its joined
weights would copy most of it every `generate` call, and its matmuls, not per-op costs, fill its step).
"""
from __future__ import annotations

import ctypes
import functools

import torch
import torch.nn.functional as F

from agents.hf import native
from agents.hf.cpu_attention import layer_kernel, prefill_kernel, run_layer, run_prefill
from agents.hf.kvcache import PreallocLayer

MAX_PARAMS = 16_000_000
"""Models with more parameters keep transformers' forward (with the attention loop): 64 MB of float32 at most,
of which the joined q/k/v and gate/up weights copy about two thirds per `generate` call."""

_SOURCE = native.EXP_NONPOS + r"""
#include <math.h>

/* out[r] = x[r] / sqrt(mean(x[r]^2) + eps) * w for R rows of dim floats, as torch's rms_norm; with idx, row r of x
   is x[idx[r]] (an embedding lookup, copied to x_out): -1 (nothing done) for an index outside 0..rows_x-1. */
int rms_norm(const float *x, const int64_t *idx, int64_t rows_x, float *x_out, const float *w, float *out,
             int64_t R, int64_t dim, float eps) {
    if (idx)
        for (int64_t r = 0; r < R; r++)
            if (idx[r] < 0 || idx[r] >= rows_x) return -1;
    for (int64_t r = 0; r < R; r++) {
        const float *xr = idx ? x + idx[r] * dim : x + r * dim;
        if (idx) memcpy(x_out + r * dim, xr, dim * sizeof(float));
        float ss = 0.0f;
        #pragma omp simd reduction(+:ss)
        for (int64_t d = 0; d < dim; d++) ss += xr[d] * xr[d];
        const float inv = 1.0f / sqrtf(ss / dim + eps);
        float *o = out + r * dim;
        #pragma omp simd
        for (int64_t d = 0; d < dim; d++) o[d] = xr[d] * inv * w[d];
    }
    return 0;
}

/* out[r] = silu(gu[r, :I]) * gu[r, I:] for R rows, silu(x) = x sigmoid(x) with the exp of -|x| (never above 1). */
int silu_mul(const float *gu, float *out, int64_t R, int64_t I) {
    for (int64_t r = 0; r < R; r++) {
        const float *g = gu + r * 2 * I, *u = g + I;
        float *o = out + r * I;
        #pragma omp simd
        for (int64_t i = 0; i < I; i++) {
            const float x = g[i], e = exp_nonpos(x < 0.0f ? x : -x);
            o[i] = x * (x < 0.0f ? e / (1.0f + e) : 1.0f / (1.0f + e)) * u[i];
        }
    }
    return 0;
}
"""
_i64, _ptr = ctypes.c_int64, ctypes.c_void_p
_ARGS = {"rms_norm": [_ptr, _ptr, _i64, _ptr, _ptr, _ptr, _i64, _i64, ctypes.c_float],
         "silu_mul": [_ptr, _ptr, _i64, _i64]}


@functools.cache
def _library():
    """The step's RMSNorm and SiLU in C, or None where no C compiler builds them right (`_checks_out`)."""
    return native.build(_SOURCE, _checks_out)


def _checks_out(lib) -> bool:
    """The C RMSNorm (with and without an embedding lookup) and SiLU x up against torch on random rows."""
    for name, args in _ARGS.items():
        getattr(lib, name).argtypes, getattr(lib, name).restype = args, ctypes.c_int
    g = torch.Generator().manual_seed(0)
    x, w, gu = torch.randn(5, 24, generator=g) * 3, torch.rand(24, generator=g), torch.randn(3, 40, generator=g) * 9
    idx = torch.tensor([4, 0, 4])
    h, rows, h2, a = torch.empty(5, 24), torch.empty(3, 24), torch.empty(3, 24), torch.empty(3, 20)

    def norm(index, out, n):
        ptr = None if index is None else index.data_ptr()
        return lib.rms_norm(x.data_ptr(), ptr, 5, rows.data_ptr(), w.data_ptr(), out.data_ptr(), n, 24, 1e-5)

    ok = norm(None, h, 5) == 0 and norm(idx, h2, 3) == 0 and norm(torch.tensor([5]), h2, 1) == -1 \
        and lib.silu_mul(gu.data_ptr(), a.data_ptr(), 3, 20) == 0
    return ok and torch.allclose(h, F.rms_norm(x, (24,), w, 1e-5), rtol=1e-5, atol=1e-6) and torch.equal(rows, x[idx]) \
        and torch.allclose(h2, h[idx], rtol=1e-6, atol=1e-7) \
        and torch.allclose(a, F.silu(gu[:, :20]) * gu[:, 20:], rtol=1e-5, atol=1e-6)


class LlamaStep:
    """One decode step of a `LlamaForCausalLM` (float32, CPU): `step(tokens, positions, mask)` -> (b, V) logits."""

    def __init__(self, model, cache, lib, layer, prefill):
        inner = model.model
        c = model.config
        self.cache, self.lib, self.layer, self.prefill_layer = cache, lib, layer, prefill
        self.embed = inner.embed_tokens.weight
        self.heads, self.kv_heads = c.num_attention_heads, c.num_key_value_heads
        self.head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
        self.eps, self.inter, self.hidden = c.rms_norm_eps, c.intermediate_size, c.hidden_size
        self.layers = []
        for layer in inner.layers:
            a, m = layer.self_attn, layer.mlp
            self.layers.append((a.scaling, layer.input_layernorm.weight,
                                torch.cat([a.q_proj.weight, a.k_proj.weight, a.v_proj.weight]).t(), a.o_proj.weight.t(),
                                layer.post_attention_layernorm.weight,
                                torch.cat([m.gate_proj.weight, m.up_proj.weight]).t(), m.down_proj.weight.t()))
        self.norm, self.head = inner.norm.weight, model.lm_head.weight
        # (positions, head_dim) rotary tables, sin with rotate_half's sign folded in, for every position the cache
        # can hold (a position counts a row's real tokens: never past its slot); the rotary embedding is a static
        # one (`of` checks).
        cos, sin = inner.rotary_emb(self.embed[:1, None], torch.arange(cache.layers[0].capacity)[None])
        half = cos.shape[-1] // 2
        self.cos, self.sin = cos[0].contiguous(), torch.cat([-sin[0, :, :half], sin[0, :, half:]], dim=-1)
        self.buffers: tuple[torch.Tensor, ...] = ()

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
        lib, layer, prefill = _library(), layer_kernel(), prefill_kernel()
        head_dim = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
        if lib is None or layer is None or prefill is None or head_dim % 2 \
                or not all(x.allocate(c.num_key_value_heads, head_dim, param) for x in cache.layers):
            return None
        try:
            return cls(model, cache, lib, layer, prefill)
        except AttributeError:  # a transformers whose Llama names its parts otherwise
            return None

    def __call__(self, tokens: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """(b,) next tokens, (b, 1) their positions, (b, n) the attention mask over the cache's slots after this
        one -> (b, V) float logits. Each layer: RMSNorm (C), the joined q/k/v matmul, rotary, cache write and
        attention in one C pass (`run_layer`), the output projection added in place, RMSNorm (C), the joined
        gate/up matmul, SiLU x up (C), the down projection added in place."""
        b, hidden, H, D = tokens.shape[0], self.hidden, self.heads, self.head_dim
        if not self.buffers or self.buffers[0].shape[0] != b:  # x and its norm, qkv, attention, gate-up, MLP
            self.buffers = tuple(self.embed.new_empty((b, n)) for n in (
                hidden, hidden, (H + 2 * self.kv_heads) * D, H * D, 2 * self.inter, self.inter))
        x, h, qkv, out, gu, act = self.buffers
        keep, tokens, positions = mask.bool(), tokens.to(torch.int64).contiguous(), positions.to(torch.int64)
        if self.cache.layers[0].length != keep.shape[1] - 1:
            raise ValueError(f"a mask of {keep.shape[1]} slots for a cache of {self.cache.layers[0].length} and the "
                             "new token")
        self._embed(tokens, x, h)

        def attend(i: int, scale: float) -> None:
            layer = self.cache.layers[i]
            run_layer(self.layer, qkv, self.cos, self.sin, positions, layer._k, layer._v, keep, out, H, scale)
            layer.advance(keep.shape[1])

        self._layers(x, h, qkv, out, gu, act, attend)
        self.lib.rms_norm(x.data_ptr(), None, 0, None, self.norm.data_ptr(), h.data_ptr(), b, hidden, self.eps)
        return F.linear(h, self.head)  # float32: `of` checks

    def prefill(self, ids: torch.Tensor, mask: torch.Tensor, positions: torch.Tensor, start: int) -> torch.Tensor:
        """Rows `start:start + b` of the cache prefilled with (b, t) left-padded `ids` (`mask` 1 on real tokens, the
        int64 `positions` of each) -> (b, V) float logits at the last position. Every layer as the decode step's, on
        b x t tokens, with `run_prefill`'s one C call for the rotary embedding, the cache writes and a causal
        attention over the row's real tokens (a padded query's output is zeros: it feeds only padded slots, which
        no real query reads)."""
        b, t = ids.shape
        hidden, H, D, N = self.hidden, self.heads, self.head_dim, b * t
        x, h, qkv, out = (self.embed.new_empty((N, n)) for n in (hidden, hidden, (H + 2 * self.kv_heads) * D, H * D))
        gu, act = self.embed.new_empty((N, 2 * self.inter)), self.embed.new_empty((N, self.inter))
        keep = (torch.ones(t, t, dtype=torch.bool).tril_() & mask.bool()[:, None, :])[:, None]  # (b, 1, t, t)
        ids, positions = ids.to(torch.int64).contiguous(), positions.to(torch.int64).contiguous()
        self._embed(ids, x, h)

        def attend(i: int, scale: float) -> None:
            layer = self.cache.layers[i]
            run_prefill(self.prefill_layer, qkv.view(b, t, -1), self.cos, self.sin, positions,
                        layer._k[start:start + b], layer._v[start:start + b], keep, out.view(b, t, -1), H, scale)
            layer.advance(t)

        self._layers(x, h, qkv, out, gu, act, attend)
        last, final = torch.arange(t - 1, N, t), self.embed.new_empty((b, hidden))  # the last positions alone
        self.lib.rms_norm(x.data_ptr(), last.data_ptr(), N, h.data_ptr(), self.norm.data_ptr(), final.data_ptr(), b,
                          hidden, self.eps)
        return F.linear(final, self.head)

    def _embed(self, ids: torch.Tensor, x: torch.Tensor, h: torch.Tensor) -> None:
        """x = the embeddings of the int64 `ids`, h = their first RMSNorm (one C call)."""
        if self.lib.rms_norm(self.embed.data_ptr(), ids.data_ptr(), self.embed.shape[0], x.data_ptr(),
                             self.layers[0][1].data_ptr(), h.data_ptr(), x.shape[0], self.hidden, self.eps):
            raise ValueError(f"a token id outside the vocabulary of {self.embed.shape[0]}")

    def _layers(self, x, h, qkv, out, gu, act, attend) -> None:
        """Every layer on the rows of x (h: their first RMSNorm), in place: the joined q/k/v matmul into `qkv`,
        `attend(layer index, scale)` (attention from `qkv` into `out`, the cache written), the output projection
        added, RMSNorm, the joined gate/up matmul, SiLU x up, the down projection added, the next layer's RMSNorm
        (not after the last: the caller norms what it needs)."""
        n, lib = x.shape[0], self.lib
        for i, (scale, _, w_qkv, w_o, w_post, w_gu, w_down) in enumerate(self.layers):
            torch.mm(h, w_qkv, out=qkv)
            attend(i, scale)
            x.addmm_(out, w_o)
            lib.rms_norm(x.data_ptr(), None, 0, None, w_post.data_ptr(), h.data_ptr(), n, self.hidden, self.eps)
            torch.mm(h, w_gu, out=gu)
            lib.silu_mul(gu.data_ptr(), act.data_ptr(), n, self.inter)
            x.addmm_(act, w_down)
            if i + 1 < len(self.layers):
                lib.rms_norm(x.data_ptr(), None, 0, None, self.layers[i + 1][1].data_ptr(), h.data_ptr(), n,
                             self.hidden, self.eps)


_STATIC_ROPE = ("default", "linear", "llama3")
"""Rotary embeddings whose tables do not depend on the sequence's length (a dynamic one's do: transformers' forward)."""

_PLAIN = {"LlamaForCausalLM", "LlamaModel", "LlamaDecoderLayer", "LlamaAttention", "LlamaMLP", "LlamaRMSNorm",
          "LlamaRotaryEmbedding", "Linear", "Embedding", "ModuleList", "SiLU", "SiLUActivation", "Identity"}
"""The module classes a model this step reads may hold (anything else, such as a LoRA layer: transformers' forward)."""
