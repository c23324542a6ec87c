"""Attention against the KV cache on a CPU, in a C loop (its C: `agents.hf.attention_c`).

torch's CPU attention kernels (sdpa's flash kernel, or matmul, softmax, matmul) run a small matrix
product per row and head and read the tiny model's KV cache at ~6-7 GB/s where one thread sums the same
buffer at 15-25 GB/s; attention was over half of the batch-64 decode step (docs/benchmarks.md, "Steps
against their floors"). For a decode step's one query a row, this loop reads each row's K and V once, every
head's K in one pass and then every head's V (four streams from memory, not one), skipping padded slots and
fetching ahead with `prefetchnta` (the stream passes without pushing the weights out of the caches): the
scores, a softmax (its exp Cephes' expf polynomial, in a form the compiler vectorises, 0 below -87), the
weighted sum of V. For a prefill's queries (several a row, with a mask) it transposes each head's keys once
and computes 4 queries' scores and outputs at a time over only the slots their masks keep (1.8x sdpa on the
tiny model's chunks). Each row's output depends on that row alone; the rows split over torch's threads
through OpenMP (torch's own runtime, loaded before this loop: a thread started per call was slower, torch's
idle threads spinning beside it).

`decode_attention_for(model)` is a context manager: inside it, a float32 model on a CPU whose
attention is transformers' "sdpa" runs `decode_attention` instead (registered with transformers'
`AttentionInterface` as `NAME`, its mask made as sdpa's), which runs the loop where no gradient is wanted
and a mask says what each query sees (or one query a row needs none), and transformers' sdpa for everything
else (training; a causal prefill sdpa was given no mask for); a Llama model's own prefill and decode step
(`agents.hf.decode_step`) run `prefill_layer` and `decode_layer` instead: the layer's rotary embedding and
KV cache writes fused into the same call (`run_prefill`, `run_layer`). The loop is compiled on first use in
a process (`agents.hf.native`) and checked against plain torch on small cases; without a compiler, or where
that fails, sdpa runs (`kernel()` is None).
"""
from __future__ import annotations

import contextlib
import ctypes
import functools
import warnings

import torch

from agents.hf import native
from agents.hf.attention_c import SOURCE

NAME = "arena_cpu_decode"
"""The attention implementation's name in transformers' registries."""

PARALLEL_FLOATS = 65536
"""Rows x cached tokens x head dim from which the loop splits its rows over torch's threads (below it, one thread:
waking the others costs more than the work)."""

_i64, _ptr = ctypes.c_int64, ctypes.c_void_p
_ARGS = {"decode_attention": [_ptr, _i64, _i64, _i64, _ptr, _i64, _i64, _i64, _ptr, _i64, _i64, _i64, _ptr, _i64,
                              _i64, _ptr, _i64, _i64, _i64, _i64, _i64, _i64, _i64, _i64, _i64, ctypes.c_float, _ptr,
                              _i64, _i64],
         "decode_layer": [_ptr, _i64, _ptr, _ptr, _i64, _ptr, _i64, _ptr, _ptr, _i64, _i64, _ptr, _i64, _ptr, _i64,
                          _i64, _i64, _i64, _i64, ctypes.c_float, _ptr, _i64, _i64],
         "prefill_layer": [_ptr, _i64, _i64, _ptr, _ptr, _i64, _ptr, _i64, _i64, _ptr, _ptr, _i64, _i64, _ptr, _i64,
                           _i64, _ptr, _i64, _i64, _i64, _i64, _i64, ctypes.c_float, _ptr, _i64, _i64]}


@functools.cache
def _library():
    """The compiled loop, or None where no C compiler builds one that passes `_checks_out`. Built once a process."""
    lib = native.build(SOURCE, _checks_out)
    if lib is None and native.compiler():
        warnings.warn(f"agents.hf.cpu_attention: {' '.join(native.compiler())} built no working decode loop; sdpa "
                      "runs instead", stacklevel=3)
    return lib


def kernel():
    """The loop's `decode_attention` (a ctypes function: `run_loop` calls it), or None without a working build."""
    lib = _library()
    return None if lib is None else lib.decode_attention


def layer_kernel():
    """The loop's `decode_layer` (rotary, KV cache write and attention of a Llama layer's decode step: `run_layer`
    calls it), or None without a working build."""
    lib = _library()
    return None if lib is None else lib.decode_layer


def prefill_kernel():
    """The loop's `prefill_layer` (rotary, KV cache writes and attention of a Llama layer's prefill: `run_prefill`
    calls it), or None without a working build."""
    lib = _library()
    return None if lib is None else lib.prefill_layer


def _checks_out(lib) -> bool:
    """The loop against softmax(q K^T / sqrt(d)) V in plain torch, on a small case with a masked slot; the fused
    layer against the loop on keys and queries rotated in torch."""
    for name, args in _ARGS.items():
        getattr(lib, name).argtypes, getattr(lib, name).restype = args, ctypes.c_int
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(shape, generator=g) for shape in ((3, 4, 1, 16), (3, 2, 7, 16), (3, 2, 7, 16)))
    mask = torch.ones(3, 1, 1, 7, dtype=torch.bool)
    mask[1, ..., :2] = False
    with torch.inference_mode():
        ours = run_loop(lib.decode_attention, q, k, v, mask, 0.25)[:, 0]  # (b, h, d)
        kk, vv = k.repeat_interleave(2, dim=1), v.repeat_interleave(2, dim=1)
        p = (q @ kk.transpose(-1, -2) * 0.25).masked_fill(~mask, float("-inf")).softmax(-1)
        ref = (p @ vv)[:, :, 0]
        # the layer: new keys at slot 6 (position 4 of row 1, 5 of the others), rotated by tables of 8 positions
        cos, sin = torch.rand(8, 16, generator=g), torch.rand(8, 16, generator=g)
        positions = torch.tensor([[5], [4], [5]])
        qkv = torch.cat([q[:, :, 0], k[:, :, 6], v[:, :, 6]], dim=1)  # (3, 4 + 2 + 2, 16)
        c, s = cos[positions[:, 0]][:, None], sin[positions[:, 0]][:, None]
        rotated = qkv[:, :6] * c + torch.cat([qkv[:, :6, 8:], qkv[:, :6, :8]], dim=-1) * s
        k2, v2, out = k.clone(), v.clone(), torch.empty(3, 4 * 16)
        k2[:, :, 6] = v2[:, :, 6] = 0
        run_layer(lib.decode_layer, qkv.reshape(3, -1).clone(), cos, sin, positions, k2, v2, mask[:, 0, 0], out, 4,
                  0.25)
        k[:, :, 6] = rotated[:, 4:]
        layer_ref = run_loop(lib.decode_attention, rotated[:, :4, None], k, v, mask, 0.25).reshape(3, -1)
        # the prefill: 2 rows of 5 tokens, the second left-padded by 2, against plain torch on keys rotated in torch
        qkv = torch.randn(2, 5, 8 * 16, generator=g)
        positions = torch.tensor([[0, 1, 2, 3, 4], [0, 0, 0, 1, 2]])
        real = torch.tensor([[True] * 5, [False, False, True, True, True]])
        pmask = (torch.tril(torch.ones(5, 5, dtype=torch.bool)) & real[:, None])[:, None]  # (2, 1, 5, 5)
        c, s = cos[positions][:, :, None], sin[positions][:, :, None]  # (2, 5, 1, 16)
        heads = qkv.view(2, 5, 8, 16)
        rot = heads[:, :, :6] * c + torch.cat([heads[:, :, :6, 8:], heads[:, :, :6, :8]], dim=-1) * s
        kc, vc, pout = torch.zeros(2, 2, 7, 16), torch.zeros(2, 2, 7, 16), torch.empty(2, 5, 4 * 16)
        run_prefill(lib.prefill_layer, qkv.clone(), cos, sin, positions, kc, vc, pmask, pout, 4, 0.25)
        pk, pv = rot[:, :, 4:].transpose(1, 2), heads[:, :, 6:].transpose(1, 2)  # (2, 2, 5, 16)
        scores = rot[:, :, :4].transpose(1, 2) @ pk.repeat_interleave(2, dim=1).transpose(-1, -2) * 0.25
        p = scores.masked_fill(~pmask, float("-inf")).softmax(-1).nan_to_num()  # a padded query: zeros
        pref = (p @ pv.repeat_interleave(2, dim=1)).transpose(1, 2).reshape(2, 5, -1)
    return all(torch.allclose(a, b, rtol=1e-4, atol=1e-5) for a, b in
               ((ours, ref), (k2, k), (out, layer_ref), (kc[:, :, :5], pk), (pout, pref))) \
        and torch.equal(v2, v) and torch.equal(vc[:, :, :5], pv) and not kc[:, :, 5:].any()


def loop_applies(query, key, value, mask, dropout: float, kwargs) -> bool:
    """Whether the loop computes this call: float32 CPU tensors without gradients, a bool mask of one row per batch
    row (or none) for each query (one query token: a decode step; several, a prefill: a mask is needed, none would
    mean causal), no dropout and none of the extras (softcap, sinks, biases) sdpa would see."""
    tq = query.shape[2]
    if (tq > 1 and mask is None) or dropout or any(kwargs.get(x) is not None for x in
                                                   ("softcap", "s_aux", "sinks", "position_bias")):
        return False
    ts = (query, key, value)
    if any(t.device.type != "cpu" or t.dtype != torch.float32 or t.stride(-1) != 1 for t in ts):
        return False
    if torch.is_grad_enabled() and any(t.requires_grad for t in ts):
        return False
    b, h, _, d = query.shape
    if key.shape[:2] != value.shape[:2] or key.shape[2] != value.shape[2] or key.shape[0] != b \
            or key.shape[-1] != d or value.shape[-1] != d or h % key.shape[1]:
        return False
    return mask is None or (mask.dtype == torch.bool and mask.dim() == 4 and mask.shape[1] == 1
                            and mask.shape[2] == tq and mask.shape[-1] == key.shape[2] and mask.shape[0] in (1, b))


def decode_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling: float | None = None,
                     **kwargs):
    """transformers' attention interface: (b, h, q, d) query, (b, h_kv, n, d) key and value -> ((b, q, h, d), None).
    The loop where `loop_applies`, transformers' sdpa elsewhere."""
    fn = kernel()
    if fn is None or not loop_applies(query, key, value, attention_mask, dropout, kwargs):
        from transformers.integrations.sdpa_attention import sdpa_attention_forward

        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    scale = scaling if scaling is not None else query.shape[-1] ** -0.5
    return run_loop(fn, query, key, value, attention_mask, scale), None


def scratch_floats(heads: int, n: int, d: int) -> int:
    """Floats of scratch a thread of the loop needs for `n` slots: a decode step's scores, outputs and 16 slots'
    lanes a head; a prefill's keys transposed (d x n rounded up to 64, + 64) and 4 queries' scores."""
    np_ = (n + 63) // 64 * 64
    return max(heads * (n + d + 256), d * np_ + 64 + 4 * (np_ + 64))


def run_loop(fn, query, key, value, mask, scale: float) -> torch.Tensor:
    """The loop `fn` (`kernel()`) on arguments `loop_applies` to: (b, h, t, d) queries -> (b, t, h, d)."""
    b, h, tq, d = query.shape
    n = key.shape[2]
    out = query.new_empty((b, tq, h, d))
    threads = torch.get_num_threads() if b * tq * n * d >= PARALLEL_FLOATS else 1
    per_thread = scratch_floats(h, n, d)
    scratch = query.new_empty(threads * per_thread)
    if mask is not None and mask.stride(-1) != 1:
        mask = mask.contiguous()
    msb = 0 if mask is None or mask.shape[0] == 1 else mask.stride(0)
    mst = 0 if mask is None or tq == 1 else mask.stride(2)
    fn(query.data_ptr(), query.stride(0), query.stride(1), query.stride(2), key.data_ptr(), key.stride(0),
       key.stride(1), key.stride(2), value.data_ptr(), value.stride(0), value.stride(1), value.stride(2),
       mask.data_ptr() if mask is not None else None, msb, mst, out.data_ptr(), out.stride(0), out.stride(2),
       out.stride(1), b, tq, h, h // key.shape[1], n, d, scale, scratch.data_ptr(), per_thread, threads)
    return out


def run_layer(fn, qkv, cos, sin, positions, k_cache, v_cache, mask, out, heads: int, scale: float) -> None:
    """The fused layer `fn` (`layer_kernel()`): qkv's (b, (heads + 2 kv) d) q and k heads rotated in place at the
    (b, 1) int64 `positions` with the (P, d) tables (`sin` with rotate_half's sign), its new keys and values written
    at slot n - 1 of the (b, kv, capacity, d) caches for the (b, n) bool `mask`, attention into out (b, heads d).
    Every tensor float32 (the positions int64, the mask bool) on the CPU, last two dimensions contiguous."""
    b, n = mask.shape
    kv, capacity, d = k_cache.shape[1:]
    if n > capacity or k_cache.stride() != v_cache.stride() or qkv.shape != (b, (heads + 2 * kv) * d):
        raise ValueError(f"decode_layer: {n} slots in caches of {capacity}, or qkv {tuple(qkv.shape)} for {heads} "
                         f"heads and {kv} of keys and values")
    threads = torch.get_num_threads() if b * n * d >= PARALLEL_FLOATS else 1
    per_thread = scratch_floats(heads, n, d)
    scratch = qkv.new_empty(threads * per_thread)
    if fn(qkv.data_ptr(), qkv.stride(0), cos.data_ptr(), sin.data_ptr(), cos.shape[0], positions.data_ptr(),
          positions.stride(0), k_cache.data_ptr(), v_cache.data_ptr(), k_cache.stride(0), k_cache.stride(1),
          mask.data_ptr(), mask.stride(0), out.data_ptr(), b, heads, kv, n, d, scale, scratch.data_ptr(), per_thread,
          threads):
        raise ValueError(f"decode_layer: a row's position is outside the rotary tables' {cos.shape[0]}")


def run_prefill(fn, qkv, cos, sin, positions, k_cache, v_cache, mask, out, heads: int, scale: float) -> None:
    """The fused prefill `fn` (`prefill_kernel()`): qkv's (b, t, (heads + 2 kv) d) q and k heads rotated in place at
    the (b, t) int64 `positions`, every token's key and value written at slots 0..t-1 of the (b, kv, capacity, d)
    caches, attention with the (b or 1, 1, t, t) bool `mask` into out (b, t, heads d). Float32 CPU tensors (the
    positions int64, the mask bool), last dimensions contiguous, as `LlamaStep.prefill` hands them."""
    b, t, _ = qkv.shape
    kv, capacity, d = k_cache.shape[1:]
    if t > capacity or k_cache.stride() != v_cache.stride() or qkv.shape != (b, t, (heads + 2 * kv) * d) \
            or mask.shape[-2:] != (t, t) or positions.shape != (b, t):
        raise ValueError(f"prefill_layer: {t} tokens in caches of {capacity}, qkv {tuple(qkv.shape)} for {heads} "
                         f"heads and {kv} of keys and values, a mask {tuple(mask.shape)}")
    threads = torch.get_num_threads() if b * t * t * d >= PARALLEL_FLOATS else 1
    per_thread = scratch_floats(heads, t, d)
    scratch = qkv.new_empty(threads * per_thread)
    msb = 0 if mask.shape[0] == 1 else mask.stride(0)
    if fn(qkv.data_ptr(), qkv.stride(0), qkv.stride(1), cos.data_ptr(), sin.data_ptr(), cos.shape[0],
          positions.data_ptr(), positions.stride(0), positions.stride(1), k_cache.data_ptr(), v_cache.data_ptr(),
          k_cache.stride(0), k_cache.stride(1), mask.data_ptr(), msb, mask.stride(2), out.data_ptr(), b, t, heads, kv,
          d, scale, scratch.data_ptr(), per_thread, threads):
        raise ValueError(f"prefill_layer: a token's position is outside the rotary tables' {cos.shape[0]}")


def _register() -> bool:
    """Registers `decode_attention` and sdpa's mask under `NAME`; False with a transformers without those registries."""
    try:
        from transformers import AttentionInterface
        from transformers.masking_utils import AttentionMaskInterface, sdpa_mask
    except ImportError:
        return False
    AttentionInterface.register(NAME, decode_attention)
    AttentionMaskInterface.register(NAME, sdpa_mask)
    return True


@contextlib.contextmanager
def decode_attention_for(model):
    """Within it, `model` (float32, on a CPU, attention "sdpa") runs `decode_attention`; yields whether it does."""
    config = getattr(model, "config", None)
    param = next(model.parameters(), None)
    if config is None or param is None or getattr(config, "_attn_implementation", None) != "sdpa" \
            or param.device.type != "cpu" or param.dtype != torch.float32 or kernel() is None or not _register():
        yield False
        return
    config._attn_implementation = NAME
    try:
        yield True
    finally:
        config._attn_implementation = "sdpa"
