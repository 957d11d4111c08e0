/* core/backend_profile.c — where a training step's time goes, per backend op and shape.
 *
 * fqt_backend_profiled(inner) returns a table whose every op entry waits for the inner
 * backend's queued work (inner->sync), runs the op, waits again and adds the wall time to a
 * row keyed by the op's name and its shape (formats, axis and rounding for the quantizer and
 * the GEMMs). The same calls reach the inner backend in the same order with the same
 * arguments, so results are bit-identical to an unprofiled run; only the time changes (two
 * synchronisations per op, a few microseconds each on a GPU). fqt_backend_get wraps its
 * answer when FQT_PROFILE is set (and not "0"): "1" prints the table to stderr at exit,
 * anything else is a path, opened at once (an unwritable one fails before the run starts) and
 * written at exit. One profiled backend per process. Not for: timing the
 * buffer entries (alloc, upload, ...), which pass straight through. */
#include "fqt/backend.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROF_ROWS 384

typedef struct {
    char key[112];
    int64_t calls;
    double total, best;
} prof_row;

static const fqt_backend *inner;
static fqt_backend profiled;
static prof_row rows[PROF_ROWS];
static int n_rows;
static double t_begin;

static prof_row overflow = {"(other shapes: the table is full)", 0, 0, 1e30};

static void add(const char *key, double dt) {
    prof_row *r = NULL;
    for (int i = 0; i < n_rows && !r; i++)
        if (!strcmp(rows[i].key, key)) r = &rows[i];
    if (!r && n_rows == PROF_ROWS) r = &overflow;
    if (!r) {
        r = &rows[n_rows++];
        snprintf(r->key, sizeof r->key, "%s", key);
        r->best = dt;
    }
    r->calls++;
    r->total += dt;
    if (dt < r->best) r->best = dt;
}

/* Times the statement S under the key printed by the format and arguments that follow. */
#define TIMED(S, ...)                                          \
    do {                                                       \
        inner->sync();                                         \
        const double t0_ = fqt_prof_now();                     \
        S;                                                     \
        inner->sync();                                         \
        const double dt_ = fqt_prof_now() - t0_;               \
        char k_[112];                                          \
        snprintf(k_, sizeof k_, __VA_ARGS__);                  \
        add(k_, dt_);                                          \
    } while (0)

static const char *dt_name(fqt_dtype t) { return t == FQT_DT_BF16 ? "bf16" : "f32"; }

static void p_embedding_fwd(void *out, const int32_t *tok, const float *wte, int64_t N, int64_t C) {
    TIMED(inner->embedding_fwd(out, tok, wte, N, C), "embedding_fwd %lldx%lld", (long long)N, (long long)C);
}
static void p_embedding_bwd(float *dwte, const void *dout, const int32_t *tok, int64_t N, int64_t C) {
    TIMED(inner->embedding_bwd(dwte, dout, tok, N, C), "embedding_bwd %lldx%lld", (long long)N, (long long)C);
}
static void p_rmsnorm_fwd(void *out, float *rstd, const void *in, const float *w, int64_t N, int64_t C,
                          float eps) {
    TIMED(inner->rmsnorm_fwd(out, rstd, in, w, N, C, eps), "rmsnorm_fwd %lldx%lld", (long long)N, (long long)C);
}
static void p_rmsnorm_bwd(void *din, float *dw, const void *dout, const void *in, const float *w,
                          const float *rstd, int64_t N, int64_t C) {
    TIMED(inner->rmsnorm_bwd(din, dw, dout, in, w, rstd, N, C), "rmsnorm_bwd %lldx%lld", (long long)N,
          (long long)C);
}
static void p_rope_fwd(void *x, int64_t B, int64_t T, int64_t H, int64_t HS, float theta) {
    TIMED(inner->rope_fwd(x, B, T, H, HS, theta), "rope_fwd %lldx%lldx%lldx%lld", (long long)B, (long long)T,
          (long long)H, (long long)HS);
}
static void p_rope_bwd(void *dx, int64_t B, int64_t T, int64_t H, int64_t HS, float theta) {
    TIMED(inner->rope_bwd(dx, B, T, H, HS, theta), "rope_bwd %lldx%lldx%lldx%lld", (long long)B, (long long)T,
          (long long)H, (long long)HS);
}
static void p_attention_fwd(void *out, float *stats, const void *q, const void *k, const void *v, int64_t B,
                            int64_t T, int64_t NH, int64_t NKV, int64_t HS) {
    TIMED(inner->attention_fwd(out, stats, q, k, v, B, T, NH, NKV, HS), "attention_fwd B%lld T%lld NH%lld KV%lld HS%lld",
          (long long)B, (long long)T, (long long)NH, (long long)NKV, (long long)HS);
}
static void p_attention_bwd(void *dq, void *dk, void *dv, const void *dout, const void *out, const float *stats,
                            const void *q, const void *k, const void *v, int64_t B, int64_t T, int64_t NH,
                            int64_t NKV, int64_t HS) {
    TIMED(inner->attention_bwd(dq, dk, dv, dout, out, stats, q, k, v, B, T, NH, NKV, HS),
          "attention_bwd B%lld T%lld NH%lld KV%lld HS%lld", (long long)B, (long long)T, (long long)NH,
          (long long)NKV, (long long)HS);
}
static void p_swiglu_fwd(void *out, const void *gate, const void *up, int64_t n) {
    TIMED(inner->swiglu_fwd(out, gate, up, n), "swiglu_fwd %lld", (long long)n);
}
static void p_swiglu_bwd(void *dgate, void *dup, const void *dout, const void *gate, const void *up, int64_t n) {
    TIMED(inner->swiglu_bwd(dgate, dup, dout, gate, up, n), "swiglu_bwd %lld", (long long)n);
}
static double p_xent_fwd_bwd(void *dlogits, float *losses, const void *logits, const int32_t *targets,
                             int64_t N, int64_t V, float dscale) {
    double r = 0;
    TIMED(r = inner->xent_fwd_bwd(dlogits, losses, logits, targets, N, V, dscale), "xent_fwd_bwd %lldx%lld%s",
          (long long)N, (long long)V, dlogits ? "" : " (no grad)");
    return r;
}
static void p_add_inplace(void *y, const void *x, int64_t n) {
    TIMED(inner->add_inplace(y, x, n), "add_inplace %lld", (long long)n);
}
static void p_hadamard16_rows(void *x, int64_t N, int64_t C, uint64_t seed, uint64_t stream) {
    TIMED(inner->hadamard16_rows(x, N, C, seed, stream), "hadamard16_rows %lldx%lld", (long long)N, (long long)C);
}
static void p_quantize(fqt_qtensor *q, const void *src, fqt_dtype src_dt, int64_t R, int64_t C, fqt_axis axis,
                       fqt_rounding rounding, uint64_t seed, uint64_t stream, fqt_qstats *stats,
                       const float *tscale) {
    char f[48];
    TIMED(inner->quantize(q, src, src_dt, R, C, axis, rounding, seed, stream, stats, tscale),
          "quantize %s %s %s %lldx%lld from %s%s%s%s", fqt_format_name(&q->fmt, f, sizeof f),
          axis == FQT_AXIS_ROWS ? "rows" : "cols", rounding == FQT_ROUND_SR ? "sr" : "rne", (long long)R,
          (long long)C, dt_name(src_dt), q->expanded ? " expanded" : "", tscale ? " +tscale" : "",
          stats ? " +stats" : "");
}
static void p_tensor_scale(float *tscale, const void *src, fqt_dtype src_dt, int64_t n, const fqt_format *fmt) {
    char f[48];
    TIMED(inner->tensor_scale(tscale, src, src_dt, n, fmt), "tensor_scale %s %lld from %s",
          fqt_format_name(fmt, f, sizeof f), (long long)n, dt_name(src_dt));
}
static void p_dequantize(const fqt_qtensor *q, void *dst, fqt_dtype dst_dt) {
    char f[48];
    TIMED(inner->dequantize(q, dst, dst_dt), "dequantize %s %lldx%lld to %s", fqt_format_name(&q->fmt, f, sizeof f),
          (long long)q->rows, (long long)q->cols, dt_name(dst_dt));
}
static void p_qgemm(const fqt_qtensor *A, const fqt_qtensor *B, float alpha, float beta, void *C, fqt_dtype c_dt,
                    int64_t ldc) {
    char fa[48], fb[48];
    TIMED(inner->qgemm(A, B, alpha, beta, C, c_dt, ldc), "qgemm %s x %s %lldx%lldx%lld to %s%s",
          fqt_format_name(&A->fmt, fa, sizeof fa), fqt_format_name(&B->fmt, fb, sizeof fb), (long long)A->rows,
          (long long)B->rows, (long long)A->cols, dt_name(c_dt), beta != 0.0f ? " +=" : "");
}
static int64_t p_adamw(float *w, const float *g, float *m, float *v, int64_t begin, int64_t end,
                       const fqt_adamw_args *a) {
    int64_t r = 0;
    TIMED(r = inner->adamw(w, g, m, v, begin, end, a), "adamw %lld%s", (long long)(end - begin),
          a->check_only ? " (check)" : "");
    return r;
}
static void p_sumsq_partials(const float *x, const float *y, int64_t n, double *part) {
    TIMED(inner->sumsq_partials(x, y, n, part), "sumsq_partials %lld", (long long)n);
}
static int64_t p_count_nonfinite(const float *x, int64_t n) {
    int64_t r = 0;
    TIMED(r = inner->count_nonfinite(x, n), "count_nonfinite %lld", (long long)n);
    return r;
}

static int by_total(const void *a, const void *b) {
    const double x = ((const prof_row *)a)->total, y = ((const prof_row *)b)->total;
    return (x < y) - (x > y);
}

void fqt_backend_profile_report(FILE *out) {
    static prof_row sorted[PROF_ROWS + 1];
    int n = n_rows;
    memcpy(sorted, rows, sizeof(prof_row) * (size_t)n);
    if (overflow.calls) sorted[n++] = overflow;
    qsort(sorted, (size_t)n, sizeof sorted[0], by_total);
    double sum = 0;
    for (int i = 0; i < n; i++) sum += sorted[i].total;
    const double wall = fqt_prof_now() - t_begin;
    fprintf(out, "# fqt backend profile (%s): %.3f s inside ops of %.3f s since the backend opened or "
                 "the last reset (fqt train resets after its first step)\n",
            inner ? inner->name : "?", sum, wall);
    fprintf(out, "%9s %6s %10s %10s  %s\n", "total ms", "share", "calls", "best us", "op and shape");
    for (int i = 0; i < n; i++)
        fprintf(out, "%9.1f %5.1f%% %10lld %10.1f  %s\n", sorted[i].total * 1e3,
                sum > 0 ? 100.0 * sorted[i].total / sum : 0.0, (long long)sorted[i].calls, sorted[i].best * 1e6,
                sorted[i].key);
    /* The same figures summed per op name (the key's first word). */
    fprintf(out, "# per op\n");
    prof_row ops[64];
    int n_ops = 0;
    for (int i = 0; i < n; i++) {
        char name[32];
        size_t len = strcspn(sorted[i].key, " ");
        if (len >= sizeof name) len = sizeof name - 1;
        memcpy(name, sorted[i].key, len);
        name[len] = 0;
        int j = 0;
        while (j < n_ops && strcmp(ops[j].key, name)) j++;
        if (j == n_ops) {
            if (n_ops == 64) continue;
            n_ops++;
            snprintf(ops[j].key, sizeof ops[j].key, "%s", name);
            ops[j].calls = 0, ops[j].total = 0;
        }
        ops[j].calls += sorted[i].calls;
        ops[j].total += sorted[i].total;
    }
    qsort(ops, (size_t)n_ops, sizeof ops[0], by_total);
    for (int j = 0; j < n_ops; j++)
        fprintf(out, "%9.1f %5.1f%% %10lld %10s  %s\n", ops[j].total * 1e3, sum > 0 ? 100.0 * ops[j].total / sum : 0.0,
                (long long)ops[j].calls, "", ops[j].key);
}

static FILE *report_file;

static void report_at_exit(void) {
    fqt_backend_profile_report(report_file);
    if (report_file != stderr) fclose(report_file);
}

bool fqt_backend_profile_open(const char *dest) {
    if (report_file) return true;
    FILE *f = !strcmp(dest, "1") ? stderr : fopen(dest, "w");
    if (!f) {
        fqt_set_error("FQT_PROFILE: cannot write the profile to '%s': %s", dest, strerror(errno));
        return false;
    }
    report_file = f;
    atexit(report_at_exit);
    return true;
}

void fqt_backend_profile_reset(void) {
    n_rows = 0;
    memset(rows, 0, sizeof rows);
    overflow.calls = 0, overflow.total = 0, overflow.best = 1e30;
    t_begin = fqt_prof_now();
}

const fqt_backend *fqt_backend_profiled(const fqt_backend *be) {
    if (!be || be == &profiled) return be;
    if (inner) return inner == be ? &profiled : be; /* one profiled backend per process */
    inner = be;
    profiled = *be;
    profiled.embedding_fwd = p_embedding_fwd;
    profiled.embedding_bwd = p_embedding_bwd;
    profiled.rmsnorm_fwd = p_rmsnorm_fwd;
    profiled.rmsnorm_bwd = p_rmsnorm_bwd;
    profiled.rope_fwd = p_rope_fwd;
    profiled.rope_bwd = p_rope_bwd;
    profiled.attention_fwd = p_attention_fwd;
    profiled.attention_bwd = p_attention_bwd;
    profiled.swiglu_fwd = p_swiglu_fwd;
    profiled.swiglu_bwd = p_swiglu_bwd;
    profiled.xent_fwd_bwd = p_xent_fwd_bwd;
    profiled.add_inplace = p_add_inplace;
    profiled.hadamard16_rows = p_hadamard16_rows;
    profiled.quantize = p_quantize;
    profiled.tensor_scale = be->tensor_scale ? p_tensor_scale : NULL; /* NULL stays NULL */
    profiled.dequantize = p_dequantize;
    profiled.qgemm = p_qgemm;
    profiled.adamw = p_adamw;
    profiled.sumsq_partials = p_sumsq_partials;
    profiled.count_nonfinite = p_count_nonfinite;
    fqt_backend_profile_reset();
    return &profiled;
}
