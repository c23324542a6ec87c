"""The C of `agents.hf.cpu_attention`: attention against a KV cache on a CPU, one pass over each row's keys and
values (`decode_attention`: a decode step's one query a row, or a prefill's queries; `decode_layer`: a Llama
layer's decode step with its rotary embedding and cache write in the same pass). Compiled by `agents.hf.native`.
"""
from __future__ import annotations

from agents.hf import native

MAX_THREADS = 64
"""Threads a call splits its rows over at most."""

SOURCE = native.EXP_NONPOS + r"""
#include <math.h>

typedef float v16 __attribute__((vector_size(64)));

/* The K or V row AHEAD slots on, fetched for a read that will not come back (prefetchnta): streamed past without
   pushing the weights and activations out of the caches; 10% faster alone, and the step's matmuls faster after it. */
#define AHEAD 8
#define PREFETCH(p) do { __builtin_prefetch((p), 0, 0); __builtin_prefetch((p) + 16, 0, 0); } while (0)

typedef struct {
    const float *q, *k, *v; const uint8_t *mask; float *out, *sc;
    int64_t qsb, qsh, ksb, ksh, kss, vsb, vsh, vss, msb, osb, osh, b0, b1, H, G, n, D;
    float scale;
    /* decode_layer's: qkv (= q) rows of H query heads, K key heads and K value heads, the caches (= k, v) to
       write the new key and value into at slot n - 1, the rotary tables (sin with rotate_half's sign) and the
       rows' positions; qkv is NULL for decode_attention. */
    float *qkv, *kw, *vw; const float *cos, *sin; const int64_t *pos; int64_t psb, pst, K;
    /* T queries a batch row (a prefill's tokens; 1 in a decode step): "rows" b0..b1 count (batch row, query) pairs,
       and a query's q, mask row and output are strides qst, mst, ost on. */
    int64_t T, qst, mst, ost;
    int prefill;  /* prefill_rows, not rows: b0..b1 count (batch row, head) pairs */
} Job;

/* Token t of row b of a decode_layer or prefill_layer: its q and k heads rotated in place (x cos + rotate_half(x)
   sin) at its position, then its new key and value written at the caches' slot `slot`. */
static void rotate_write(const Job *j, int64_t b, int64_t t, int64_t slot) {
    const int64_t D = j->D, half = D / 2, p = j->pos[b * j->psb + t * j->pst];
    const float *c = j->cos + p * D, *s = j->sin + p * D;
    float *row = j->qkv + b * j->qsb + t * j->qst;
    for (int64_t h = 0; h < j->H + j->K; h++) {
        float *x = row + h * D;
        for (int64_t d = 0; d < half; d++) {
            const float a = x[d], e = x[d + half];
            x[d] = a * c[d] + e * s[d];
            x[d + half] = e * c[d + half] + a * s[d + half];
        }
        if (h >= j->H) memcpy(j->kw + b * j->ksb + (h - j->H) * j->ksh + slot * j->kss, x, D * sizeof(float));
    }
    for (int64_t h = 0; h < j->K; h++)
        memcpy(j->vw + b * j->vsb + h * j->vsh + slot * j->vss, row + (j->H + j->K + h) * D, D * sizeof(float));
}

/* Rows b0 <= b < b1: out[b, h] = softmax(scale * q[b, h] . K[b, h / G, s] over the slots s < n that mask[b, s]
   keeps) V[b, h / G]; a row that keeps no slot gets zeros. Each pass over a row's slots runs over its heads at
   once (four streams from memory, not one), and a score's dot product is kept as 16 lanes until 16 slots are done. */
static void rows(const Job *j) {
    const int64_t n = j->n, D = j->D, H = j->H, G = j->G;
    float *sc = j->sc, *o = sc + H * n, *lanes = o + H * D;  /* H x n scores, H x D outputs, H x 16 x 16 */
    for (int64_t i = j->b0; i < j->b1; i++) {
        const int64_t b = i / j->T, t = i % j->T;
        if (j->qkv) rotate_write(j, b, 0, j->n - 1);
        const uint8_t *mb = j->mask ? j->mask + b * j->msb + t * j->mst : 0;
        const float *qb = j->q + b * j->qsb + t * j->qst, *kb = j->k + b * j->ksb, *vb = j->v + b * j->vsb;
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
            memcpy(j->out + b * j->osb + t * j->ost + h * j->osh, o + h * D, D * sizeof(float));
    }
}

/* The slots lo <= s < hi a mask row keeps the first and last of (lo == hi: none). */
static void kept_range(const uint8_t *mb, int64_t n, int64_t *lo, int64_t *hi) {
    int64_t l = 0, h = n;
    uint64_t w;
    if (mb) {
        while (l + 8 <= n && (memcpy(&w, mb + l, 8), w == 0)) l += 8;
        while (l < n && !mb[l]) l++;
        while (h - 8 >= l && (memcpy(&w, mb + h - 8, 8), w == 0)) h -= 8;
        while (h > l && !mb[h - 1]) h--;
    }
    *lo = l, *hi = h;
}

#define QB 4  /* queries a block: their scores and outputs share each load of K and V */

typedef int32_t vi16 __attribute__((vector_size(64)));
typedef uint8_t vb16 __attribute__((vector_size(16)));
static const vi16 LANE = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};

/* exp_nonpos of 16 lanes (0 below -87, so for -inf too). */
static inline v16 exp_nonpos16(v16 x) {
    EXP_CORE(v16, x, n, r, p, e)
    const vi16 low = x < -87.0f;
    const vi16 bits = (__builtin_convertvector(n, vi16) + 127) << 23;
    return (v16)((vi16)(e * (v16)(bits & ~low)) & ~low);
}

/* Mask bytes s0 .. s0 + 15 of a row of n as 16 lanes (0 past n). */
static inline vi16 mask16(const uint8_t *m, int64_t s0, int64_t n) {
    vb16 b = {0};
    if (s0 + 16 <= n) memcpy(&b, m + s0, 16);
    else for (int64_t k = 0; k < 16 && s0 + k < n; k++) b[k] = m[s0 + k];
    return __builtin_convertvector(b, vi16);
}

/* A prefill's (row, head) pairs b0 <= i < b1 (b = i / H, h = i % H), the row's T queries QB at a time against its
   n slots: the head's keys transposed once (D x np floats, zero-padded), the block's scores 32 slots at a time over
   the slots any of its queries keeps (a causal mask: up to the last query's own), a softmax a query over the slots it
   keeps (0 elsewhere), the weighted sums of V. D % 16 == 0, D <= 256. */
static void prefill_rows(const Job *j) {
    const int64_t n = j->n, D = j->D, np = (n + 63) / 64 * 64, C = D / 16, T = j->T;
    float *kt = j->sc, *scores = kt + D * np + 64;  /* QB rows of np + 64 scores */
    for (int64_t i = j->b0; i < j->b1; i++) {
        const int64_t b = i / j->H, h = i % j->H;
        const float *kb = j->k + b * j->ksb + (h / j->G) * j->ksh, *vb = j->v + b * j->vsb + (h / j->G) * j->vsh;
        for (int64_t s = 0; s < np; s++)
            for (int64_t d = 0; d < D; d++) kt[d * np + s] = s < n ? kb[s * j->kss + d] : 0.0f;
        for (int64_t t0 = 0; t0 < T; t0 += QB) {
            const int64_t nq = T - t0 < QB ? T - t0 : QB;
            const float *qp[QB];
            const uint8_t *mb[QB];
            int64_t lo[QB], hi[QB], LO = n, HI = 0;
            for (int64_t q = 0; q < QB; q++) {  /* a block's missing queries repeat its last (and are not written) */
                const int64_t t = t0 + (q < nq ? q : nq - 1);
                qp[q] = j->q + b * j->qsb + h * j->qsh + t * j->qst;
                mb[q] = j->mask ? j->mask + b * j->msb + t * j->mst : 0;
                kept_range(mb[q], n, &lo[q], &hi[q]);
                if (lo[q] < hi[q]) { LO = lo[q] < LO ? lo[q] : LO; HI = hi[q] > HI ? hi[q] : HI; }
            }
            if (HI == 0) {  /* no query of the block keeps a slot: zeros */
                for (int64_t q = 0; q < nq; q++)
                    memset(j->out + b * j->osb + (t0 + q) * j->ost + h * j->osh, 0, D * sizeof(float));
                continue;
            }
            LO = LO / 16 * 16;
            for (int64_t s0 = LO; s0 < HI; s0 += 32) {
                v16 acc[QB][2] = {{{0}}}, y0, y1;
                for (int64_t d = 0; d < D; d++) {
                    memcpy(&y0, kt + d * np + s0, sizeof y0);
                    memcpy(&y1, kt + d * np + s0 + 16, sizeof y1);
                    for (int64_t q = 0; q < QB; q++) {
                        const v16 qd = (v16){0} + qp[q][d] * j->scale;  /* the scale folded into q */
                        acc[q][0] += qd * y0;
                        acc[q][1] += qd * y1;
                    }
                }
                for (int64_t q = 0; q < QB; q++) {
                    memcpy(scores + q * (np + 64) + s0, &acc[q][0], sizeof y0);
                    memcpy(scores + q * (np + 64) + s0 + 16, &acc[q][1], sizeof y1);
                }
            }
            float inv[QB];
            for (int64_t q = 0; q < QB; q++) {  /* p = exp(score - max) over the slots the query keeps, 0 elsewhere */
                float *sq = scores + q * (np + 64);
                const vi16 l = (vi16){0} + (int32_t)lo[q], e = (vi16){0} + (int32_t)hi[q];
                v16 mx = (v16){0} - INFINITY, sum = {0}, x;
                inv[q] = 0.0f;
                for (int64_t s0 = LO; s0 < HI; s0 += 16) {
                    const vi16 s = LANE + (int32_t)s0;
                    vi16 keep = (s >= l) & (s < e);
                    if (mb[q]) keep &= mask16(mb[q], s0, n) != 0;
                    memcpy(&x, sq + s0, sizeof x);
                    x = (v16)(((vi16)x & keep) | ((vi16)((v16){0} - INFINITY) & ~keep));
                    memcpy(sq + s0, &x, sizeof x);
                    mx = (v16)(((vi16)x & (x > mx)) | ((vi16)mx & ~(x > mx)));
                }
                float m = -INFINITY;
                for (int k = 0; k < 16; k++) m = mx[k] > m ? mx[k] : m;
                if (m == -INFINITY) {  /* this one keeps none */
                    memset(sq + LO, 0, (HI - LO) * sizeof(float));
                    continue;
                }
                for (int64_t s0 = LO; s0 < HI; s0 += 16) {
                    memcpy(&x, sq + s0, sizeof x);
                    x = exp_nonpos16(x - m);
                    sum += x;
                    memcpy(sq + s0, &x, sizeof x);
                }
                float total = 0.0f;
                for (int k = 0; k < 16; k++) total += sum[k];
                inv[q] = 1.0f / total;
            }
            for (int64_t c = 0; c < C; c += 2) {  /* 32 of the outputs at a time (16 where D leaves 16): in registers */
                const int two = c + 1 < C;
                v16 o0[QB] = {{0}}, o1[QB] = {{0}}, y0, y1 = {0};
                for (int64_t s = LO; s < HI; s++) {
                    const float *vs = vb + s * j->vss + 16 * c;
                    memcpy(&y0, vs, sizeof y0);
                    if (two) memcpy(&y1, vs + 16, sizeof y1);
                    for (int64_t q = 0; q < QB; q++) {
                        const float p = scores[q * (np + 64) + s];
                        o0[q] += p * y0;
                        o1[q] += p * y1;
                    }
                }
                for (int64_t q = 0; q < nq; q++) {
                    float *op = j->out + b * j->osb + (t0 + q) * j->ost + h * j->osh + 16 * c;
                    y0 = o0[q] * inv[q], y1 = o1[q] * inv[q];
                    memcpy(op, &y0, sizeof y0);
                    if (two) memcpy(op + 16, &y1, sizeof y1);
                }
            }
        }
    }
}

/* The jobs' rows split over `threads` threads (OpenMP's: torch's own runtime where it is loaded). */
static void run_jobs(const Job *jobs, int64_t threads) {
    #pragma omp parallel for num_threads(threads) schedule(static, 1)
    for (int64_t t = 0; t < threads; t++) {
        if (jobs[t].prefill) prefill_rows(&jobs[t]);
        else rows(&jobs[t]);
    }
}


static int64_t thread_count(int64_t threads, int64_t B) {
    if (threads > B) threads = B;
    if (threads > MAX_THREADS) threads = MAX_THREADS;
    return threads < 1 ? 1 : threads;
}

/* The whole batch, T queries a row (a prefill's: prefill_rows where D allows): every last dimension contiguous, the
   other strides in floats (the mask's in bytes); sc: per_thread floats a thread (cpu_attention.scratch_floats). */
int decode_attention(const float *q, int64_t qsb, int64_t qsh, int64_t qst,
                     const float *k, int64_t ksb, int64_t ksh, int64_t kss,
                     const float *v, int64_t vsb, int64_t vsh, int64_t vss,
                     const uint8_t *mask, int64_t msb, int64_t mst,
                     float *out, int64_t osb, int64_t osh, int64_t ost,
                     int64_t B, int64_t T, int64_t H, int64_t G, int64_t n, int64_t D, float scale, float *sc,
                     int64_t per_thread, int64_t threads)
{
    const int prefill = T > 1 && D % 16 == 0 && D <= 256;
    const int64_t units = prefill ? B * H : B * T;
    threads = thread_count(threads, units);
    Job jobs[MAX_THREADS];
    for (int64_t t = 0; t < threads; t++) {
        Job j = {.q = q, .k = k, .v = v, .mask = mask, .out = out, .sc = sc + t * per_thread,
                 .qsb = qsb, .qsh = qsh, .ksb = ksb, .ksh = ksh, .kss = kss, .vsb = vsb, .vsh = vsh, .vss = vss,
                 .msb = msb, .osb = osb, .osh = osh, .b0 = units * t / threads, .b1 = units * (t + 1) / threads,
                 .H = H, .G = G, .n = n, .D = D, .scale = scale, .T = T, .qst = qst, .mst = mst, .ost = ost,
                 .prefill = prefill};
        jobs[t] = j;
    }
    run_jobs(jobs, threads);
    return 0;
}

/* A Llama layer's attention in a decode step: qkv (B rows of H + 2K heads of D floats, row stride qkvsb) rotated
   at the rows' positions (pos[b * psb] < npos, the tables' rows), the new keys and values written at slot n - 1
   of the caches (B, K, capacity, D; strides csb, csh), then attention over the n slots the mask (B, n) keeps into
   out (B, H * D). -1 (nothing done) for a position outside the tables. sc as decode_attention's. */
int decode_layer(float *qkv, int64_t qkvsb, const float *cos, const float *sin, int64_t npos,
                 const int64_t *pos, int64_t psb, float *kc, float *vc, int64_t csb, int64_t csh,
                 const uint8_t *mask, int64_t msb, float *out,
                 int64_t B, int64_t H, int64_t K, int64_t n, int64_t D, float scale, float *sc, int64_t per_thread,
                 int64_t threads)
{
    for (int64_t b = 0; b < B; b++)
        if (pos[b * psb] < 0 || pos[b * psb] >= npos) return -1;
    threads = thread_count(threads, B);
    Job jobs[MAX_THREADS];
    for (int64_t t = 0; t < threads; t++) {
        Job j = {.q = qkv, .k = kc, .v = vc, .mask = mask, .out = out, .sc = sc + t * per_thread,
                 .qsb = qkvsb, .qsh = D, .ksb = csb, .ksh = csh, .kss = D, .vsb = csb, .vsh = csh, .vss = D,
                 .msb = msb, .osb = H * D, .osh = D, .b0 = B * t / threads, .b1 = B * (t + 1) / threads,
                 .H = H, .G = H / K, .n = n, .D = D, .scale = scale, .qkv = qkv, .kw = kc, .vw = vc,
                 .cos = cos, .sin = sin, .pos = pos, .psb = psb, .K = K, .T = 1};
        jobs[t] = j;
    }
    run_jobs(jobs, threads);
    return 0;
}

/* A Llama layer's attention in a prefill of B rows of T tokens (their cache slots 0..T-1): qkv (B x T tokens of H +
   2K heads of D floats; strides qkvsb, qkvst) rotated at the tokens' positions (pos[b * psb + t * pst] < npos), the
   keys and values written into the caches (B, K, capacity, D; strides csb, csh), then decode_attention's prefill
   over the T slots with mask (B|1, 1, T, T; strides msb, mst) into out (B, T, H * D). -1 (nothing done) for a
   position outside the tables. */
int prefill_layer(float *qkv, int64_t qkvsb, int64_t qkvst, const float *cos, const float *sin, int64_t npos,
                  const int64_t *pos, int64_t psb, int64_t pst, float *kc, float *vc, int64_t csb, int64_t csh,
                  const uint8_t *mask, int64_t msb, int64_t mst, float *out,
                  int64_t B, int64_t T, int64_t H, int64_t K, int64_t D, float scale, float *sc, int64_t per_thread,
                  int64_t threads)
{
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < T; t++)
            if (pos[b * psb + t * pst] < 0 || pos[b * psb + t * pst] >= npos) return -1;
    const Job w = {.qsb = qkvsb, .qst = qkvst, .ksb = csb, .ksh = csh, .kss = D, .vsb = csb, .vsh = csh, .vss = D,
                   .H = H, .D = D, .qkv = qkv, .kw = kc, .vw = vc, .cos = cos, .sin = sin, .pos = pos, .psb = psb,
                   .pst = pst, .K = K};
    const int64_t rows_threads = thread_count(threads, B);
    #pragma omp parallel for num_threads(rows_threads) schedule(static)
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < T; t++) rotate_write(&w, b, t, t);
    return decode_attention(qkv, qkvsb, D, qkvst, kc, csb, csh, D, vc, csb, csh, D, mask, msb, mst,
                            out, T * H * D, D, H * D, B, T, H, H / K, T, D, scale, sc, per_thread, threads);
}
""".replace("MAX_THREADS", str(MAX_THREADS))
