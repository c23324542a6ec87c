"""The decode step's attention on a CPU: one query a row against the KV cache, in a C loop.

torch's CPU attention kernels (sdpa's flash kernel, or matmul, softmax, matmul) run a small matrix
product per row and head and read the tiny model's KV cache at ~6-7 GB/s where one thread sums the same
buffer at 15-25 GB/s; attention was over half of the batch-64 decode step (docs/benchmarks.md, "Steps
against their floors"). This loop reads each row's K and V once, every head's K in one pass and then every
head's V (four streams from memory, not one), skipping padded slots and fetching ahead with `prefetchnta`
(the stream passes without pushing the weights out of the caches): the scores, a softmax (its exp Cephes'
expf polynomial, in a form the compiler vectorises, 0 below -87), the weighted sum of V. Each row's output
depends on that row alone; the rows split over torch's threads through OpenMP (torch's own runtime, loaded
before this loop: a thread started per call was slower, torch's idle threads spinning beside it).

`decode_attention_for(model)` is a context manager: inside it, a float32 model on a CPU whose
attention is transformers' "sdpa" runs `decode_attention` instead (registered with transformers'
`AttentionInterface` as `NAME`, its mask made as sdpa's), which runs the loop for a one-token query
when no gradient is wanted and transformers' sdpa for everything else (prefill, training); a Llama model's
own decode step (`agents.hf.decode_step`) calls `run_loop` itself. The loop is compiled on first use in a
process with the system's C compiler (`$CC`, else `cc`; ~0.35 s) into a temporary directory and checked
against plain torch on a small case; without a compiler, or where that fails, sdpa runs (`kernel()` is None).
"""
from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import shlex
import shutil
import subprocess
import tempfile
import warnings

import torch

NAME = "arena_cpu_decode"
"""The attention implementation's name in transformers' registries."""

MAX_THREADS = 64
PARALLEL_FLOATS = 65536
"""Rows x cached tokens x head dim from which the loop splits its rows over torch's threads (below it, one thread:
waking the others costs more than the work)."""

_SOURCE = r"""
#include <math.h>
#include <stdint.h>
#include <string.h>

/* exp(x) for x <= 0, 0 below -87: Cephes' expf, in a form the compiler vectorises. */
static inline float exp_nonpos(float x) {
    float n = x * 1.44269504088896341f;
    n = (n + 12582912.0f) - 12582912.0f;  /* round to nearest */
    float r = x - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    float e = p * r * r + r + 1.0f;
    int32_t bits = ((int32_t)(x < -87.0f ? 0.0f : n) + 127) << 23;
    float scale;
    memcpy(&scale, &bits, sizeof scale);
    return x < -87.0f ? 0.0f : e * scale;
}

typedef float v16 __attribute__((vector_size(64)));

/* The K or V row AHEAD slots on, fetched for a read that will not come back (prefetchnta): streamed past without
   pushing the weights and activations out of the caches; 10% faster alone, and the step's matmuls faster after it. */
#define AHEAD 8
#define PREFETCH(p) do { __builtin_prefetch((p), 0, 0); __builtin_prefetch((p) + 16, 0, 0); } while (0)

typedef struct {
    const float *q, *k, *v; const uint8_t *mask; float *out, *sc;
    int64_t qsb, qsh, ksb, ksh, kss, vsb, vsh, vss, msb, osb, osh, b0, b1, H, G, n, D;
    float scale;
} Job;

/* Rows b0 <= b < b1: out[b, h] = softmax(scale * q[b, h] . K[b, h / G, s] over the slots s < n that mask[b, s]
   keeps) V[b, h / G]; a row that keeps no slot gets zeros. Each pass over a row's slots runs over its heads at
   once (four streams from memory, not one), and a score's dot product is kept as 16 lanes until 16 slots are done. */
static void rows(const Job *j) {
    const int64_t n = j->n, D = j->D, H = j->H, G = j->G;
    float *sc = j->sc, *o = sc + H * n, *lanes = o + H * D;  /* H x n scores, H x D outputs, H x 16 x 16 */
    for (int64_t b = j->b0; b < j->b1; b++) {
        const uint8_t *mb = j->mask ? j->mask + b * j->msb : 0;
        const float *qb = j->q + b * j->qsb, *kb = j->k + b * j->ksb, *vb = j->v + b * j->vsb;
        if (D % 16 == 0) {
            for (int64_t s0 = 0; s0 < n; s0 += 16) {  /* 16 slots at a time: their lanes stay in the L1 cache */
                const int64_t s1 = s0 + 16 < n ? s0 + 16 : n;
                for (int64_t s = s0; s < s1; s++)
                    for (int64_t h = 0; h < H && !(mb && !mb[s]); h++) {  /* a masked slot is not read */
                        const float *qp = qb + h * j->qsh, *ks = kb + (h / G) * j->ksh + s * j->kss;
                        v16 acc = {0}, x, y;
                        PREFETCH(ks + AHEAD * j->kss);
                        for (int64_t d = 0; d < D; d += 16) {
                            memcpy(&x, qp + d, sizeof x);
                            memcpy(&y, ks + d, sizeof y);
                            acc += x * y;
                        }
                        memcpy(lanes + (h * 16 + s - s0) * 16, &acc, sizeof acc);
                    }
                for (int64_t h = 0; h < H; h++)
                    for (int64_t s = s0; s < s1; s++) {
                        float acc = 0.0f;
                        for (int l = 0; l < 16; l++) acc += lanes[(h * 16 + s - s0) * 16 + l];
                        sc[h * n + s] = acc * j->scale;
                    }
            }
        } else {
            for (int64_t s = 0; s < n; s++)
                for (int64_t h = 0; h < H && !(mb && !mb[s]); h++) {
                    const float *qp = qb + h * j->qsh, *ks = kb + (h / G) * j->ksh + s * j->kss;
                    float acc = 0.0f;
                    #pragma omp simd reduction(+:acc)
                    for (int64_t d = 0; d < D; d++) acc += qp[d] * ks[d];
                    sc[h * n + s] = acc * j->scale;
                }
        }
        if (mb)
            for (int64_t s = 0; s < n; s++)
                if (!mb[s]) for (int64_t h = 0; h < H; h++) sc[h * n + s] = -INFINITY;
        for (int64_t h = 0; h < H; h++) {
            float *sh = sc + h * n, mx = -INFINITY, sum = 0.0f;
            for (int64_t s = 0; s < n; s++) mx = sh[s] > mx ? sh[s] : mx;
            if (mx == -INFINITY) { for (int64_t s = 0; s < n; s++) sh[s] = 0.0f; continue; }
            #pragma omp simd reduction(+:sum)
            for (int64_t s = 0; s < n; s++) { float e = exp_nonpos(sh[s] - mx); sh[s] = e; sum += e; }
            const float inv = 1.0f / sum;
            #pragma omp simd
            for (int64_t s = 0; s < n; s++) sh[s] *= inv;
        }
        for (int64_t i = 0; i < H * D; i++) o[i] = 0.0f;
        for (int64_t s = 0; s < n; s++) {
            if (mb && !mb[s]) continue;
            for (int64_t h = 0; h < H; h++) {
                const float p = sc[h * n + s], *vs = vb + (h / G) * j->vsh + s * j->vss;
                PREFETCH(vs + AHEAD * j->vss);
                float *oh = o + h * D;
                #pragma omp simd
                for (int64_t d = 0; d < D; d++) oh[d] += p * vs[d];
            }
        }
        for (int64_t h = 0; h < H; h++)
            memcpy(j->out + b * j->osb + h * j->osh, o + h * D, D * sizeof(float));
    }
}

/* The whole batch, its rows split over `threads` threads (OpenMP's: torch's own runtime where it is loaded);
   every last dimension contiguous, the other strides in floats (the mask's in bytes); sc: `scratch_floats` a
   thread. */
int decode_attention(const float *q, int64_t qsb, int64_t qsh,
                     const float *k, int64_t ksb, int64_t ksh, int64_t kss,
                     const float *v, int64_t vsb, int64_t vsh, int64_t vss,
                     const uint8_t *mask, int64_t msb,
                     float *out, int64_t osb, int64_t osh,
                     int64_t B, int64_t H, int64_t G, int64_t n, int64_t D, float scale, float *sc, int64_t threads)
{
    if (threads > B) threads = B;
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    if (threads < 1) threads = 1;
    const int64_t per_thread = H * (n + D + 256);
    Job jobs[MAX_THREADS];
    for (int64_t t = 0; t < threads; t++) {
        Job j = {q, k, v, mask, out, sc + t * per_thread, qsb, qsh, ksb, ksh, kss, vsb, vsh, vss, msb, osb, osh,
                 B * t / threads, B * (t + 1) / threads, H, G, n, D, scale};
        jobs[t] = j;
    }
    #pragma omp parallel for num_threads(threads) schedule(static, 1)
    for (int64_t t = 0; t < threads; t++) rows(&jobs[t]);
    return 0;
}
""".replace("MAX_THREADS", str(MAX_THREADS))

_FLAGS = (["-O3", "-march=native", "-fopenmp", "-fno-math-errno"], ["-O3", "-march=native", "-fno-math-errno"],
          ["-O3", "-fno-math-errno"], ["-O2"])
"""Compiler flags, tried in order: this CPU's vector units and OpenMP (which, loaded after torch, is torch's own
runtime, so its threads are torch's), then without what a compiler lacks (one thread, generic vectors)."""


@functools.cache
def kernel():
    """The compiled loop (a ctypes function), or None where no C compiler builds one that loads and passes a check
    against plain torch on a small case. Built once a process."""
    compiler = shlex.split(os.environ.get("CC", "")) or \
        next(([c] for c in ("cc", "gcc", "clang") if shutil.which(c)), None)
    if not compiler:
        return None
    with tempfile.TemporaryDirectory(prefix="arena-attention-") as tmp:
        src = os.path.join(tmp, "attention.c")
        with open(src, "w") as f:
            f.write(_SOURCE)
        for i, flags in enumerate(_FLAGS):
            lib = os.path.join(tmp, f"attention{i}.so")
            try:
                done = subprocess.run([*compiler, *flags, "-shared", "-fPIC", src, "-o", lib, "-lm"],
                                      capture_output=True, timeout=120)
                fn = ctypes.CDLL(lib).decode_attention if done.returncode == 0 else None  # loaded: the file can go
            except (OSError, subprocess.SubprocessError):
                fn = None
            if fn is not None:
                i64, ptr = ctypes.c_int64, ctypes.c_void_p
                fn.argtypes = [ptr, i64, i64, ptr, i64, i64, i64, ptr, i64, i64, i64, ptr, i64, ptr, i64, i64,
                               i64, i64, i64, i64, i64, ctypes.c_float, ptr, i64]
                fn.restype = ctypes.c_int
                if _checks_out(fn):
                    return fn
    warnings.warn(f"agents.hf.cpu_attention: {' '.join(compiler)} built no working decode loop; sdpa runs instead",
                  stacklevel=2)
    return None


def _checks_out(fn) -> bool:
    """The loop against softmax(q K^T / sqrt(d)) V in plain torch, on a small case with a masked slot."""
    g = torch.Generator().manual_seed(0)
    q, k, v = (torch.randn(shape, generator=g) for shape in ((3, 4, 1, 16), (3, 2, 7, 16), (3, 2, 7, 16)))
    mask = torch.ones(3, 1, 1, 7, dtype=torch.bool)
    mask[1, ..., :2] = False
    with torch.inference_mode():
        ours = run_loop(fn, q, k, v, mask, 0.25)[:, 0]  # (b, h, d)
        kk, vv = k.repeat_interleave(2, dim=1), v.repeat_interleave(2, dim=1)
        p = (q @ kk.transpose(-1, -2) * 0.25).masked_fill(~mask, float("-inf")).softmax(-1)
        ref = (p @ vv)[:, :, 0]
    return bool(torch.allclose(ours, ref, rtol=1e-4, atol=1e-5))


def loop_applies(query, key, value, mask, dropout: float, kwargs) -> bool:
    """Whether the loop computes this call: one query token, float32 CPU tensors without gradients, a bool mask of
    one row per batch row (or none), no dropout and none of the extras (softcap, sinks, biases) sdpa would see."""
    if query.shape[2] != 1 or dropout or any(kwargs.get(x) is not None for x in
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
                            and mask.shape[2] == 1 and mask.shape[-1] == key.shape[2] and mask.shape[0] in (1, b))


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


def run_loop(fn, query, key, value, mask, scale: float) -> torch.Tensor:
    """The loop `fn` (`kernel()`) on arguments `loop_applies` to -> (b, 1, h, d)."""
    b, h, _, d = query.shape
    n = key.shape[2]
    out = query.new_empty((b, 1, h, d))
    threads = torch.get_num_threads() if b * n * d >= PARALLEL_FLOATS else 1
    scratch = query.new_empty(threads * h * (n + d + 256))  # per thread: scores, outputs, 16 slots' lanes
    if mask is not None and mask.stride(-1) != 1:
        mask = mask.contiguous()
    msb = 0 if mask is None or mask.shape[0] == 1 else mask.stride(0)
    fn(query.data_ptr(), query.stride(0), query.stride(1), key.data_ptr(), key.stride(0), key.stride(1),
       key.stride(2), value.data_ptr(), value.stride(0), value.stride(1), value.stride(2),
       mask.data_ptr() if mask is not None else None, msb, out.data_ptr(), out.stride(0), out.stride(2),
       b, h, h // key.shape[1], n, d, scale, scratch.data_ptr(), threads)
    return out


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
