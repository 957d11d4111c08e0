/* cpu/ops_impl.h — the CPU reference of every non-GEMM op (fqt/ops.h), written once and
 * generic over the scalar type.
 *
 * This file has no include guard on purpose: src/cpu/ops.c includes it twice, once with
 * REAL = float (the training backend, fqt_ops_cpu) and once with REAL = double (the gradient
 * check oracle, fqt_ops_cpu_f64), so the code that trains is the code that is checked.
 * The includer defines
 *   REAL          the scalar type of every tensor and scalar parameter
 *   SUFFIX(name)  name decorated with the type (name##_f32, name##_f64)
 *   REXP(x)       exp in REAL (fqt_exp_f32 of cpu/exp_f32.h / libm's exp)
 * and undefines them afterwards. Every function is static; only the tables leave ops.c.
 *
 * Numerics (both instantiations): row reductions whose length is C, T or V (sum of squares,
 * softmax denominators, the softmax-backward row dot, cross-entropy sums) accumulate in
 * double; dot products and weighted sums over the head size HS accumulate in REAL, in a
 * fixed order. Transcendentals on tensor elements use REXP; RoPE angles, cos and sin are
 * computed in double and rounded to REAL once.
 *
 * Determinism: OpenMP parallelizes over independent rows, (batch, head) pairs or column
 * blocks; every sum runs in a fixed order inside one thread, so results are bit-identical
 * for any thread count. Parameter-gradient accumulation (rmsnorm dw, embedding dwte) is
 * parallel over column blocks with a serial loop over rows.
 *
 * Not for: GEMMs (gemm.c), quantization (formats/), anything CUDA. */

#if !defined(REAL) || !defined(SUFFIX) || !defined(REXP)
#error "define REAL, SUFFIX and REXP before including cpu/ops_impl.h"
#endif

/* Type-independent helpers, defined at the first inclusion only. */
#ifndef FQT_OPS_IMPL_ONCE
#define FQT_OPS_IMPL_ONCE

#include <math.h>
#include <string.h>

#define FQT_PRAGMA_(...) _Pragma(#__VA_ARGS__)
#ifdef _OPENMP
#define FQT_OMP(...) FQT_PRAGMA_(omp __VA_ARGS__)
#else
#define FQT_OMP(...)
#endif

/* Below this many elements of work an op runs on the calling thread: forking costs more. */
#define FQT_OPS_MIN_PAR 32768
/* Column block of the parameter-gradient reductions (one block per task). */
#define FQT_OPS_COL_BLOCK 64

static inline int64_t fqt_ops_min64_(int64_t a, int64_t b) { return a < b ? a : b; }

#endif /* FQT_OPS_IMPL_ONCE */

/* ---------------------------------------------------------------------------------------
 * Embedding */

/* out[n, :] = wte[tok[n], :] (written). tok[n] in [0, V) is the caller's job; a negative
 * token aborts. */
/* out[s] = sum_d x[d] * mT[d*T + s] for s < ns: one row of x·Mᵀ against a head stored
 * transposed ([HS, T], so the inner loop streams contiguous memory). Accumulates over d in
 * order, the same in every caller. */
static void SUFFIX(row_times_T)(REAL *out, const REAL *x, const REAL *mT, int64_t T, int64_t HS,
                                int64_t ns) {
    for (int64_t s = 0; s < ns; s++) out[s] = 0;
    for (int64_t d = 0; d < HS; d++) {
        const REAL xd = x[d];
        const REAL *mr = mT + d * T;
        FQT_OMP(simd)
        for (int64_t s = 0; s < ns; s++) out[s] += xd * mr[s];
    }
}

static void SUFFIX(embedding_fwd)(REAL *out, const int32_t *tok, const REAL *wte, int64_t N,
                                  int64_t C) {
    FQT_OMP(parallel for schedule(guided) if (N * C >= FQT_OPS_MIN_PAR))
    for (int64_t n = 0; n < N; n++) {
        FQT_ASSERT(tok[n] >= 0);
        memcpy(out + n * C, wte + (int64_t)tok[n] * C, (size_t)C * sizeof(REAL));
    }
}

/* dwte[tok[n], :] += dout[n, :] (accumulated). Repeated tokens sum in row order n = 0..N-1
 * whatever the thread count: threads split the columns, never the rows. */
static void SUFFIX(embedding_bwd)(REAL *dwte, const REAL *dout, const int32_t *tok, int64_t N,
                                  int64_t C) {
    const int64_t nblk = (C + FQT_OPS_COL_BLOCK - 1) / FQT_OPS_COL_BLOCK;
    FQT_OMP(parallel for schedule(guided) if (N * C >= FQT_OPS_MIN_PAR))
    for (int64_t jb = 0; jb < nblk; jb++) {
        const int64_t j0 = jb * FQT_OPS_COL_BLOCK;
        const int64_t j1 = fqt_ops_min64_(C, j0 + FQT_OPS_COL_BLOCK);
        for (int64_t n = 0; n < N; n++) {
            FQT_ASSERT(tok[n] >= 0);
            REAL *d = dwte + (int64_t)tok[n] * C;
            const REAL *g = dout + n * C;
            FQT_OMP(simd)
            for (int64_t j = j0; j < j1; j++) d[j] += g[j];
        }
    }
}

/* ---------------------------------------------------------------------------------------
 * RMSNorm */

/* out[n, j] = in[n, j] * rstd[n] * w[j], rstd[n] = 1/sqrt(mean_j in[n, j]^2 + eps), both
 * written. The mean of squares is accumulated in double; rstd is rounded to REAL before use
 * so that the backward pass sees exactly the factor the forward applied. */
static void SUFFIX(rmsnorm_fwd)(REAL *out, REAL *rstd, const REAL *in, const REAL *w,
                                int64_t N, int64_t C, REAL eps) {
    FQT_OMP(parallel for schedule(guided) if (N * C >= FQT_OPS_MIN_PAR))
    for (int64_t n = 0; n < N; n++) {
        const REAL *x = in + n * C;
        REAL *o = out + n * C;
        double ss = 0.0;
        for (int64_t j = 0; j < C; j++) ss += (double)x[j] * (double)x[j];
        const REAL r = (REAL)(1.0 / sqrt(ss / (double)C + (double)eps));
        rstd[n] = r;
        FQT_OMP(simd)
        for (int64_t j = 0; j < C; j++) o[j] = x[j] * r * w[j];
    }
}

/* With y = x r w and r = (mean(x^2) + eps)^(-1/2), dr/dx_i = -r^3 x_i / C, so
 *   din[i] += r w_i g_i - x_i (r^3 / C) sum_j g_j w_j x_j     (accumulated)
 *   dw[j]  += sum_n g[n, j] x[n, j] r[n]                        (accumulated, n in order)
 * din and dw must not alias the inputs. */
static void SUFFIX(rmsnorm_bwd)(REAL *din, REAL *dw, const REAL *dout, const REAL *in,
                                const REAL *w, const REAL *rstd, int64_t N, int64_t C) {
    FQT_OMP(parallel for schedule(guided) if (N * C >= FQT_OPS_MIN_PAR))
    for (int64_t n = 0; n < N; n++) {
        const REAL *x = in + n * C, *g = dout + n * C;
        REAL *dx = din + n * C;
        double dot = 0.0;
        for (int64_t j = 0; j < C; j++) dot += (double)g[j] * (double)w[j] * (double)x[j];
        const REAL r = rstd[n];
        const double rd = (double)r;
        const REAL c = (REAL)(dot * rd * rd * rd / (double)C);
        FQT_OMP(simd)
        for (int64_t j = 0; j < C; j++) dx[j] += r * w[j] * g[j] - c * x[j];
    }

    const int64_t nblk = (C + FQT_OPS_COL_BLOCK - 1) / FQT_OPS_COL_BLOCK;
    FQT_OMP(parallel for schedule(guided) if (N * C >= FQT_OPS_MIN_PAR))
    for (int64_t jb = 0; jb < nblk; jb++) {
        const int64_t j0 = jb * FQT_OPS_COL_BLOCK;
        const int64_t j1 = fqt_ops_min64_(C, j0 + FQT_OPS_COL_BLOCK);
        for (int64_t n = 0; n < N; n++) {
            const REAL *x = in + n * C, *g = dout + n * C;
            const REAL r = rstd[n];
            FQT_OMP(simd)
            for (int64_t j = j0; j < j1; j++) dw[j] += g[j] * x[j] * r;
        }
    }
}

/* ---------------------------------------------------------------------------------------
 * Rotary embedding */

/* Rotates every head vector of x[B,T,H,HS] in place by the RoPE angles of its position,
 * sign = +1 (forward) or -1 (the inverse rotation R^T, used by the backward pass).
 * Hugging Face Llama "rotate_half" convention, half = HS/2, i < half:
 *   a = t * theta^(-2i/HS)   (double, then cos a and sin a rounded to REAL)
 *   x[i]      <- x[i] cos a - x[i+half] sin a
 *   x[i+half] <- x[i+half] cos a + x[i] sin a
 * HS must be even (asserted). The inverse uses the same rounded cos and sin with sin negated
 * (exact), so forward then backward is the identity up to one rounding per product. */
static void SUFFIX(rope_rotate)(REAL *x, int64_t B, int64_t T, int64_t H, int64_t HS,
                                REAL theta, int sign) {
    FQT_ASSERT(HS % 2 == 0);
    const int64_t half = HS / 2;
    if (B <= 0 || T <= 0 || H <= 0 || half == 0) return;
    /* tab[t*HS + i] = cos, tab[t*HS + half + i] = sin (sign applied). */
    REAL *tab = fqt_scratch(FQT_SCRATCH_ROPE, (size_t)(T * HS) * sizeof(REAL));
    for (int64_t i = 0; i < half; i++) {
        const double inv_freq = pow((double)theta, -2.0 * (double)i / (double)HS);
        for (int64_t t = 0; t < T; t++) {
            const double a = (double)t * inv_freq;
            tab[t * HS + i] = (REAL)cos(a);
            tab[t * HS + half + i] = (REAL)(sign * sin(a));
        }
    }
    FQT_OMP(parallel for schedule(guided) if (B * T * H * HS >= FQT_OPS_MIN_PAR))
    for (int64_t bt = 0; bt < B * T; bt++) {
        const int64_t t = bt % T;
        const REAL *cs = tab + t * HS, *sn = tab + t * HS + half;
        for (int64_t h = 0; h < H; h++) {
            REAL *v = x + (bt * H + h) * HS;
            FQT_OMP(simd)
            for (int64_t i = 0; i < half; i++) {
                const REAL x0 = v[i], x1 = v[i + half];
                v[i] = x0 * cs[i] - x1 * sn[i];
                v[i + half] = x1 * cs[i] + x0 * sn[i];
            }
        }
    }
}

/* In place, x[B,T,H,HS]: x <- R(t) x, see rope_rotate. */
static void SUFFIX(rope_fwd)(REAL *x, int64_t B, int64_t T, int64_t H, int64_t HS,
                             REAL theta) {
    SUFFIX(rope_rotate)(x, B, T, H, HS, theta, +1);
}

/* In place, dx[B,T,H,HS]: dx <- R(t)^T dx (the rotation is orthogonal). */
static void SUFFIX(rope_bwd)(REAL *dx, int64_t B, int64_t T, int64_t H, int64_t HS,
                             REAL theta) {
    SUFFIX(rope_rotate)(dx, B, T, H, HS, theta, -1);
}

/* ---------------------------------------------------------------------------------------
 * Causal grouped-query attention */

/* out[b,t,h,:] = sum_{s<=t} P[b,h,t,s] v[b,s,h/G,:], G = NH/NKV, with
 * P[b,h,t,:] = softmax_s<=t(q[b,t,h,:] . k[b,s,h/G,:] / sqrt(HS)). out and stats written;
 * stats[(b*NH + h)*T + t] = {m, r}: the row maximum m of the scaled scores and r = 1/sum_s
 * exp(score_s - m) rounded to REAL, so that P = exp(score - m) * r is recomputed in backward
 * with the same operations and therefore the same bits (the log-sum-exp is m - log r).
 * NH % NKV == 0 (asserted). One task per (b, h): its kv head is copied transposed (kT[d][s])
 * so that the scores of a query row are HS contiguous axpys over s, and the output row is a
 * sum of contiguous v rows over s; both vectorize without reassociating any sum. */
static void SUFFIX(attention_fwd)(REAL *out, REAL *stats, const REAL *q, const REAL *k,
                                  const REAL *v, int64_t B, int64_t T, int64_t NH,
                                  int64_t NKV, int64_t HS) {
    FQT_ASSERT(NKV > 0 && NH % NKV == 0);
    const int64_t G = NH / NKV;
    const int64_t qs = NH * HS, ks = NKV * HS; /* row strides over t */
    const REAL scale = (REAL)(1.0 / sqrt((double)HS));
    const int64_t tasks = B * NH;
    FQT_OMP(parallel if (tasks > 1 && tasks * T * T * HS >= FQT_OPS_MIN_PAR))
    {
        REAL *kT = fqt_scratch(FQT_SCRATCH_ATTN, (size_t)(HS * T + T + HS) * sizeof(REAL));
        REAL *p = kT + HS * T;  /* [T] scores, then probabilities */
        REAL *acc = p + T;      /* [HS] output row */
        FQT_OMP(for schedule(guided))
        for (int64_t task = 0; task < tasks; task++) {
            const int64_t b = task / NH, h = task % NH, kh = h / G;
            const REAL *qb = q + b * T * qs + h * HS;
            const REAL *kb = k + b * T * ks + kh * HS;
            const REAL *vb = v + b * T * ks + kh * HS;
            REAL *ob = out + b * T * qs + h * HS;
            REAL *st = stats + (b * NH + h) * T * 2;
            for (int64_t s = 0; s < T; s++)
                for (int64_t d = 0; d < HS; d++) kT[d * T + s] = kb[s * ks + d];

            for (int64_t t = 0; t < T; t++) {
                const REAL *qt = qb + t * qs;
                const int64_t ns = t + 1;
                SUFFIX(row_times_T)(p, qt, kT, T, HS, ns);
                REAL mx = -INFINITY;
                for (int64_t s = 0; s < ns; s++) {
                    p[s] *= scale;
                    if (p[s] > mx) mx = p[s];
                }
                FQT_OMP(simd)
                for (int64_t s = 0; s < ns; s++) p[s] = REXP(p[s] - mx);
                double sum = 0.0;
                for (int64_t s = 0; s < ns; s++) sum += (double)p[s];
                const REAL inv = (REAL)(1.0 / sum);
                st[2 * t] = mx;
                st[2 * t + 1] = inv;
                for (int64_t s = 0; s < ns; s++) p[s] = p[s] * inv;

                for (int64_t d = 0; d < HS; d++) acc[d] = 0;
                for (int64_t s = 0; s < ns; s++) {
                    const REAL ps = p[s];
                    const REAL *vr = vb + s * ks;
                    FQT_OMP(simd)
                    for (int64_t d = 0; d < HS; d++) acc[d] += ps * vr[d];
                }
                memcpy(ob + t * qs, acc, (size_t)HS * sizeof(REAL));
            }
        }
    }
}

/* Backward of attention_fwd; the probabilities P are recomputed from q, k and stats exactly
 * as the forward formed them. dq, dk, dv WRITTEN. With dP[t,s] = dout[t] . v[s] and
 * dS[t,s] = P[t,s] (dP[t,s] - sum_s' P[t,s'] dP[t,s']):
 *   dq[t] = scale sum_s dS[t,s] k[s],  dk[s] = scale sum_h sum_t dS[t,s] q[t],
 *   dv[s] = sum_h sum_t P[t,s] dout[t],  h over the G query heads of the kv head.
 * One task per (b, kv head): it owns dk and dv of that head and visits its query heads and
 * rows in a fixed order, so the sums over shared heads are deterministic. k and v are copied
 * transposed (kT, vT) so that the score and dP rows are HS contiguous axpys over s. */
static void SUFFIX(attention_bwd)(REAL *dq, REAL *dk, REAL *dv, const REAL *dout,
                                  const REAL *stats, const REAL *q, const REAL *k, const REAL *v,
                                  int64_t B, int64_t T, int64_t NH, int64_t NKV, int64_t HS) {
    FQT_ASSERT(NKV > 0 && NH % NKV == 0);
    const int64_t G = NH / NKV;
    const int64_t qs = NH * HS, ks = NKV * HS;
    const REAL scale = (REAL)(1.0 / sqrt((double)HS));
    const int64_t tasks = B * NKV;
    FQT_OMP(parallel if (tasks > 1 && tasks * G * T * T * HS >= FQT_OPS_MIN_PAR))
    {
        REAL *vT = fqt_scratch(FQT_SCRATCH_ATTN, (size_t)(2 * HS * T + 2 * T + HS) * sizeof(REAL));
        REAL *kT = vT + HS * T;
        REAL *prow = kT + HS * T; /* [T] recomputed probabilities */
        REAL *ds = prow + T;      /* [T] dP, then dS * scale */
        REAL *acc = ds + T;       /* [HS] dq row */
        FQT_OMP(for schedule(guided))
        for (int64_t task = 0; task < tasks; task++) {
            const int64_t b = task / NKV, kh = task % NKV;
            const REAL *kb = k + b * T * ks + kh * HS;
            const REAL *vb = v + b * T * ks + kh * HS;
            REAL *dkb = dk + b * T * ks + kh * HS;
            REAL *dvb = dv + b * T * ks + kh * HS;
            for (int64_t s = 0; s < T; s++) {
                for (int64_t d = 0; d < HS; d++) {
                    vT[d * T + s] = vb[s * ks + d];
                    kT[d * T + s] = kb[s * ks + d];
                    dkb[s * ks + d] = 0;
                    dvb[s * ks + d] = 0;
                }
            }
            for (int64_t hh = 0; hh < G; hh++) {
                const int64_t h = kh * G + hh;
                const REAL *qb = q + b * T * qs + h * HS;
                const REAL *gb = dout + b * T * qs + h * HS;
                REAL *dqb = dq + b * T * qs + h * HS;
                const REAL *st = stats + (b * NH + h) * T * 2;
                for (int64_t t = 0; t < T; t++) {
                    const REAL *gt = gb + t * qs, *qt = qb + t * qs;
                    const int64_t ns = t + 1;
                    const REAL mx = st[2 * t], inv = st[2 * t + 1];
                    SUFFIX(row_times_T)(prow, qt, kT, T, HS, ns);
                    FQT_OMP(simd)
                    for (int64_t s = 0; s < ns; s++) {
                        prow[s] *= scale;
                        prow[s] = REXP(prow[s] - mx);
                        prow[s] = prow[s] * inv;
                    }
                    SUFFIX(row_times_T)(ds, gt, vT, T, HS, ns);
                    double rowdot = 0.0;
                    for (int64_t s = 0; s < ns; s++) rowdot += (double)prow[s] * (double)ds[s];
                    const REAL rd = (REAL)rowdot;
                    FQT_OMP(simd)
                    for (int64_t s = 0; s < ns; s++) ds[s] = prow[s] * (ds[s] - rd) * scale;

                    for (int64_t d = 0; d < HS; d++) acc[d] = 0;
                    for (int64_t s = 0; s < ns; s++) {
                        const REAL dss = ds[s], ps = prow[s];
                        const REAL *kr = kb + s * ks;
                        REAL *dkr = dkb + s * ks, *dvr = dvb + s * ks;
                        FQT_OMP(simd)
                        for (int64_t d = 0; d < HS; d++) {
                            acc[d] += dss * kr[d];
                            dkr[d] += dss * qt[d];
                            dvr[d] += ps * gt[d];
                        }
                    }
                    memcpy(dqb + t * qs, acc, (size_t)HS * sizeof(REAL));
                }
            }
        }
    }
}

/* ---------------------------------------------------------------------------------------
 * SwiGLU */

/* out[i] = silu(gate[i]) * up[i], silu(g) = g / (1 + exp(-g)) (written). Elementwise: out
 * may alias gate or up. exp(-g) overflowing to +Inf for very negative g gives silu = -0. */
static void SUFFIX(swiglu_fwd)(REAL *out, const REAL *gate, const REAL *up, int64_t n) {
    FQT_OMP(parallel for simd schedule(guided) if (n >= FQT_OPS_MIN_PAR))
    for (int64_t i = 0; i < n; i++) {
        const REAL g = gate[i], u = up[i];
        const REAL sg = 1 / (1 + REXP(-g));
        out[i] = g * sg * u;
    }
}

/* dgate[i] = dout[i] up[i] sig(g) (1 + g (1 - sig(g))), dup[i] = dout[i] silu(g) (both
 * written). Elementwise: the outputs may alias any input. */
static void SUFFIX(swiglu_bwd)(REAL *dgate, REAL *dup, const REAL *dout, const REAL *gate,
                               const REAL *up, int64_t n) {
    FQT_OMP(parallel for simd schedule(guided) if (n >= FQT_OPS_MIN_PAR))
    for (int64_t i = 0; i < n; i++) {
        const REAL g = gate[i], u = up[i], d = dout[i];
        const REAL sg = 1 / (1 + REXP(-g));
        dgate[i] = d * u * sg * (1 + g * (1 - sg));
        dup[i] = d * (g * sg);
    }
}

/* ---------------------------------------------------------------------------------------
 * Softmax cross-entropy */

/* Per row n with target y = targets[n] >= 0 (y < V asserted):
 *   loss_n = log(sum_j exp(x_j - max)) + max - x_y   (sum and loss in double)
 *   dlogits[n, j] = dscale * (softmax_j - [j == y])   (written, if dlogits != NULL)
 * Rows with y < 0 are ignored: loss 0, dlogits row 0, not counted. losses[n] (written, if
 * not NULL) gets loss_n rounded to REAL. Returns sum_n loss_n / count, summed in double in
 * row order, or 0 if no row is counted. dlogits may alias logits exactly (same pointer):
 * each row is read completely before its gradient is stored. */
static double SUFFIX(xent_fwd_bwd)(REAL *dlogits, REAL *losses, const REAL *logits,
                                   const int32_t *targets, int64_t N, int64_t V, REAL dscale) {
    double *rowloss = fqt_scratch(FQT_SCRATCH_XENT, (size_t)(N > 0 ? N : 1) * sizeof(double));
    FQT_OMP(parallel for schedule(guided) if (N * V >= FQT_OPS_MIN_PAR))
    for (int64_t n = 0; n < N; n++) {
        const REAL *x = logits + n * V;
        REAL *dl = dlogits ? dlogits + n * V : NULL;
        const int32_t y = targets[n];
        if (y < 0) {
            rowloss[n] = 0.0;
            if (losses) losses[n] = 0;
            if (dl)
                for (int64_t j = 0; j < V; j++) dl[j] = 0;
            continue;
        }
        FQT_ASSERT(y < V);
        REAL mx = -INFINITY;
        for (int64_t j = 0; j < V; j++)
            if (x[j] > mx) mx = x[j];
        const REAL xy = x[y];
        /* exp(x - max) a chunk at a time (a vector loop), summed in order: into dl, which
         * holds it until the row is normalized (x is dead once read), or into a buffer. */
        double sum = 0.0;
        REAL ebuf[256];
        for (int64_t j0 = 0; j0 < V; j0 += 256) {
            const int64_t nj = V - j0 < 256 ? V - j0 : 256;
            REAL *e = dl ? dl + j0 : ebuf;
            FQT_OMP(simd)
            for (int64_t j = 0; j < nj; j++) e[j] = REXP(x[j0 + j] - mx);
            for (int64_t j = 0; j < nj; j++) sum += (double)e[j];
        }
        const double l = log(sum) + (double)mx - (double)xy;
        rowloss[n] = l;
        if (losses) losses[n] = (REAL)l;
        if (dl) {
            const REAL inv = (REAL)(1.0 / sum);
            const REAL py = dl[y] * inv;
            FQT_OMP(simd)
            for (int64_t j = 0; j < V; j++) dl[j] = dscale * (dl[j] * inv);
            dl[y] = dscale * (py - 1);
        }
    }
    double total = 0.0;
    int64_t count = 0;
    for (int64_t n = 0; n < N; n++) {
        if (targets[n] < 0) continue;
        total += rowloss[n];
        count++;
    }
    return count > 0 ? total / (double)count : 0.0;
}

/* ---------------------------------------------------------------------------------------
 * Elementwise */

/* y[i] += x[i], n elements. x may equal y. */
static void SUFFIX(add_inplace)(REAL *y, const REAL *x, int64_t n) {
    FQT_OMP(parallel for simd schedule(guided) if (n >= 4 * FQT_OPS_MIN_PAR))
    for (int64_t i = 0; i < n; i++) y[i] += x[i];
}
