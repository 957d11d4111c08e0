/* cpu/backend_cpu.c — the CPU reference backend: fqt_backend_cpu (fqt/backend.h).
 *
 * Backend memory is host memory, activations are float32, and every entry is the reference
 * implementation itself: the op table of cpu/ops_impl.h (fqt_ops_cpu), the format core's
 * quantizers, the CPU GEMMs of fqt/gemm.h, and the fused AdamW and reductions below. Other
 * backends are tested against this table (tests/test_backend.c).
 * Not for: deciding what runs (core/), file formats (io/). */
#include "fqt/backend.h"
#include "fqt/gemm.h"
#include "fqt/ops.h"

#include <math.h>
#include <string.h>

static void *cpu_alloc(size_t bytes) {
    void *p = NULL;
    if (posix_memalign(&p, 256, bytes ? (bytes + 255) & ~(size_t)255 : 256)) {
        fqt_set_error("out of host memory allocating %zu bytes", bytes);
        return NULL;
    }
    return p;
}

static void cpu_free(void *p) { free(p); }
static void cpu_memcpy(void *dst, const void *src, size_t n) { if (n) memcpy(dst, src, n); }
static void cpu_zero(void *dst, size_t n) { if (n) memset(dst, 0, n); }

static void cpu_convert(void *dst, fqt_dtype dt, const void *src, fqt_dtype st, int64_t n) {
    if (dt == st) {
        cpu_memcpy(dst, src, (size_t)n * fqt_dtype_size(dt));
    } else if (dt == FQT_DT_BF16) {
        const float *s = src;
        uint16_t *d = dst;
        for (int64_t i = 0; i < n; i++) d[i] = fqt_bf16_encode_rne(s[i]);
    } else {
        const uint16_t *s = src;
        float *d = dst;
        for (int64_t i = 0; i < n; i++) d[i] = fqt_bf16_decode(s[i]);
    }
}

/* ---- ops: the float reference table; activations are float32 here ---------------------- */

#define F(p) ((float *)(p))
#define CF(p) ((const float *)(p))

static void embedding_fwd(void *out, const int32_t *tok, const float *wte, int64_t N, int64_t C) {
    fqt_ops_cpu.embedding_fwd(F(out), tok, wte, N, C);
}
static void embedding_bwd(float *dwte, const void *dout, const int32_t *tok, int64_t N, int64_t C) {
    fqt_ops_cpu.embedding_bwd(dwte, CF(dout), tok, N, C);
}
static void rmsnorm_fwd(void *out, float *rstd, const void *in, const float *w, int64_t N,
                        int64_t C, float eps) {
    fqt_ops_cpu.rmsnorm_fwd(F(out), rstd, CF(in), w, N, C, eps);
}
static void rmsnorm_bwd(void *din, float *dw, const void *dout, const void *in, const float *w,
                        const float *rstd, int64_t N, int64_t C) {
    fqt_ops_cpu.rmsnorm_bwd(F(din), dw, CF(dout), CF(in), w, rstd, N, C);
}
static void rope_fwd(void *x, int64_t B, int64_t T, int64_t H, int64_t HS, float theta) {
    fqt_ops_cpu.rope_fwd(F(x), B, T, H, HS, theta);
}
static void rope_bwd(void *dx, int64_t B, int64_t T, int64_t H, int64_t HS, float theta) {
    fqt_ops_cpu.rope_bwd(F(dx), B, T, H, HS, theta);
}
static void attention_fwd(void *out, float *stats, const void *q, const void *k, const void *v,
                          int64_t B, int64_t T, int64_t NH, int64_t NKV, int64_t HS) {
    fqt_ops_cpu.attention_fwd(F(out), stats, CF(q), CF(k), CF(v), B, T, NH, NKV, HS);
}
static void attention_bwd(void *dq, void *dk, void *dv, const void *dout, const void *out,
                          const float *stats, const void *q, const void *k, const void *v, int64_t B,
                          int64_t T, int64_t NH, int64_t NKV, int64_t HS) {
    (void)out; /* the oracle forms sum_j P dP */
    fqt_ops_cpu.attention_bwd(F(dq), F(dk), F(dv), CF(dout), stats, CF(q), CF(k), CF(v), B, T,
                              NH, NKV, HS);
}
static void swiglu_fwd(void *out, const void *gate, const void *up, int64_t n) {
    fqt_ops_cpu.swiglu_fwd(F(out), CF(gate), CF(up), n);
}
static void swiglu_bwd(void *dgate, void *dup, const void *dout, const void *gate, const void *up,
                       int64_t n) {
    fqt_ops_cpu.swiglu_bwd(F(dgate), F(dup), CF(dout), CF(gate), CF(up), n);
}
static double xent_fwd_bwd(void *dlogits, float *losses, const void *logits,
                           const int32_t *targets, int64_t N, int64_t V, float dscale) {
    return fqt_ops_cpu.xent_fwd_bwd(F(dlogits), losses, CF(logits), targets, N, V, dscale);
}
static void add_inplace(void *y, const void *x, int64_t n) { fqt_ops_cpu.add_inplace(F(y), CF(x), n); }
static void hadamard16_rows(void *x, int64_t N, int64_t C, uint64_t seed, uint64_t stream) {
    fqt_hadamard16_rows(F(x), N, C, seed, stream);
}

/* ---- quantization and GEMM ----------------------------------------------------------------- */

static void quantize(fqt_qtensor *q, const void *src, fqt_dtype src_dt, int64_t R, int64_t C,
                     fqt_axis axis, fqt_rounding rounding, uint64_t seed, uint64_t stream,
                     fqt_qstats *stats, const float *tscale) {
    (void)tscale; /* no tensor_scale entry here: always NULL */
    FQT_ASSERT(src_dt == FQT_DT_F32 && !q->expanded);
    /* A NaN/Inf input is kept as NaN (§5.1) and surfaces in the loss or the gradient norm. */
    (void)fqt_quantize(q, CF(src), R, C, axis, rounding, seed, stream, stats);
    *fqt_backend_qtensor_scale_slot(q) = q->tensor_scale;
}

static void dequantize(const fqt_qtensor *q, void *dst, fqt_dtype dst_dt) {
    FQT_ASSERT(dst_dt == FQT_DT_F32);
    fqt_dequantize(q, F(dst));
}

static void qgemm(const fqt_qtensor *A, const fqt_qtensor *B, float alpha, float beta, void *C,
                  fqt_dtype c_dt, int64_t ldc) {
    /* no column-major views or expanded operands here (qgemm_colmajor_bf16, qgemm_expands unset) */
    FQT_ASSERT(c_dt == FQT_DT_F32 && !A->colmajor && !B->colmajor && !A->expanded && !B->expanded);
    fqt_qgemm(A, B, alpha, beta, F(C), ldc);
}

/* ---- optimizer and reductions -------------------------------------------------------------- */

static int64_t adamw(float *w, const float *g, float *m, float *v, int64_t begin, int64_t end,
                     const fqt_adamw_args *a) {
    const float b1 = a->beta1, b2 = a->beta2, eps = a->eps, lrf = a->lr, gs = a->grad_scale;
    const float c1 = a->bias_corr1, c2 = a->bias_corr2;
    int64_t bad = 0;
    for (int i = 0; i < a->n_segs; i++) {
        const fqt_param_segment *sg = &a->segs[i];
        const int64_t lo = sg->offset > begin ? sg->offset : begin;
        const int64_t hi = sg->offset + sg->numel < end ? sg->offset + sg->numel : end;
        const float wd = sg->decay ? a->weight_decay : 0.0f;
        const bool dry = a->check_only;
#pragma omp parallel for reduction(+ : bad) schedule(guided)
        for (int64_t j = lo; j < hi; j++) {
            float gj = g[j] * gs;
            float mj = b1 * m[j] + (1.0f - b1) * gj;
            float vj = b2 * v[j] + (1.0f - b2) * gj * gj;
            float mh = mj / c1, vh = vj / c2;
            float wj = w[j] - lrf * (mh / (sqrtf(vh) + eps) + wd * w[j]);
            if (dry) {
                bad += !isfinite(wj) + !isfinite(mj) + !isfinite(vj);
            } else {
                m[j] = mj;
                v[j] = vj;
                w[j] = wj;
            }
        }
    }
    return bad;
}

static void sumsq_partials(const float *x, const float *y, int64_t n, double *part) {
    const int64_t CH = FQT_SUMSQ_CHUNK, nc = (n + CH - 1) / CH;
#pragma omp parallel for schedule(guided)
    for (int64_t c = 0; c < nc; c++) {
        double s = 0;
        const int64_t hi = (c + 1) * CH < n ? (c + 1) * CH : n;
        if (y)
            for (int64_t i = c * CH; i < hi; i++) {
                double e = (double)x[i] - (double)y[i];
                s += e * e;
            }
        else
            for (int64_t i = c * CH; i < hi; i++) s += (double)x[i] * x[i];
        part[c] = s;
    }
}

static int64_t count_nonfinite(const float *x, int64_t n) {
    int64_t bad = 0;
#pragma omp parallel for reduction(+ : bad) schedule(guided)
    for (int64_t i = 0; i < n; i++) bad += !isfinite(x[i]);
    return bad;
}

static void cpu_sync(void) {}

const fqt_backend fqt_backend_cpu = {
    .name = "cpu",
    .act_dtype = FQT_DT_F32,
    .host_memory = true,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .upload = cpu_memcpy,
    .download = cpu_memcpy,
    .copy = cpu_memcpy,
    .zero = cpu_zero,
    .convert = cpu_convert,
    .embedding_fwd = embedding_fwd,
    .embedding_bwd = embedding_bwd,
    .rmsnorm_fwd = rmsnorm_fwd,
    .rmsnorm_bwd = rmsnorm_bwd,
    .rope_fwd = rope_fwd,
    .rope_bwd = rope_bwd,
    .attention_fwd = attention_fwd,
    .attention_bwd = attention_bwd,
    .swiglu_fwd = swiglu_fwd,
    .swiglu_bwd = swiglu_bwd,
    .xent_fwd_bwd = xent_fwd_bwd,
    .add_inplace = add_inplace,
    .hadamard16_rows = hadamard16_rows,
    .quantize = quantize,
    .dequantize = dequantize,
    .qgemm = qgemm,
    .adamw = adamw,
    .sumsq_partials = sumsq_partials,
    .count_nonfinite = count_nonfinite,
    .sync = cpu_sync,
};
