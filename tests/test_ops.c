/* tests/test_ops.c — checks of the CPU reference ops (fqt/ops.h, src/cpu/ops_impl.h).
 *
 * Layer 4 of the test plan (STYLE.md): finite-difference gradient checks in double for every
 * op through fqt_ops_cpu_f64, plus
 *   - forward values against naive double loops written from the ops.h contracts,
 *   - the accumulate (+=) vs write (=) contracts, with gradient buffers pre-filled,
 *   - RoPE orthogonality, attention probabilities (rows sum to 1, causal zeros, outputs
 *     inside the convex hull of the visible values, future keys/values change nothing),
 *   - cross-entropy ignored targets and dlogits aliasing logits,
 *   - the float table against the double table on the same inputs,
 *   - bit-identical float results with 1, 2 and 3 OpenMP threads.
 * Not for: GEMMs, quantizers, whole-model gradients. */
#include "check.h"
#include "fqt/ops.h"
#include "cpu/ops_f64.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static const fqt_ops_f64 *D = &fqt_ops_cpu_f64;
static const fqt_ops *F = &fqt_ops_cpu;

/* ---- helpers -------------------------------------------------------------------------- */

static uint64_t rng_state = 0x243F6A8885A308D3ull;

/* splitmix64 */
static uint64_t rng_u64(void) {
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* Uniform in [-1, 1), a multiple of 2^-23 so that the value is exact in float too: the float
 * and double tables then see identical inputs. */
static double rng_sym(void) { return (double)(int64_t)(rng_u64() >> 40) / 8388608.0 - 1.0; }

static double *dalloc(int64_t n) { return fqt_xcalloc((size_t)(n > 0 ? n : 1), sizeof(double)); }
static float *falloc(int64_t n) { return fqt_xcalloc((size_t)(n > 0 ? n : 1), sizeof(float)); }

static double *drand_new(int64_t n, double amp) {
    double *x = dalloc(n);
    for (int64_t i = 0; i < n; i++) x[i] = amp * rng_sym();
    return x;
}

static double *dcopy_new(const double *x, int64_t n) {
    double *y = dalloc(n);
    memcpy(y, x, (size_t)n * sizeof(double));
    return y;
}

static float *to_f32_new(const double *x, int64_t n) {
    float *y = falloc(n);
    for (int64_t i = 0; i < n; i++) y[i] = (float)x[i];
    return y;
}

static double dot(const double *a, const double *b, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

static double max_abs(const double *x, int64_t n) {
    double m = 0;
    for (int64_t i = 0; i < n; i++) m = fmax(m, fabs(x[i]));
    return m;
}

static int verbose;

/* ---- finite differences ----------------------------------------------------------------
 *
 * Every check has the form L(x) = sum_j out_j(x) r_j for a fixed random projection r, so the
 * analytic gradient of L is the op's backward applied to dout = r. The numerical gradient is
 * the central difference g_num = (L(x + h e_i) - L(x - h e_i)) / 2h with h = 1e-6.
 * Its error has two parts:
 *   truncation  h^2/6 |L'''|: the ops are smooth, inputs are O(1) and third derivatives are
 *               O(10) at most, so <= ~2e-12;
 *   rounding    |dL| / 2h, where dL is the difference in rounding error of the two double
 *               evaluations. L is a sum of <= ~500 terms of size <= ~1, each accurate to a
 *               few ulp (2^-52 = 2.2e-16), so |dL| <~ 500 * 4 * 2.2e-16 = 4.4e-13 in the
 *               worst case (random-walk estimate ~2e-14), i.e. <= 2.2e-7 (typically ~1e-8).
 * So |g_num - g_ana| <= FD_ABS + FD_REL |g_ana| with FD_ABS = FD_REL = 1e-6 has at least a 4x
 * margin over the worst case and ~100x over the typical case, while a wrong gradient term
 * (any missing factor or index slip) shows up as an O(1e-2..1) error. */
#define FD_H 1e-6
#define FD_ABS 1e-6
#define FD_REL 1e-6

typedef double (*loss_fn)(void *ctx);

/* Compares ana[0..n) with the central differences of f with respect to x[0..n). */
static void fd_check(const char *what, loss_fn f, void *ctx, double *x, const double *ana,
                     int64_t n, int want_nonzero) {
    double worst = 0, worst_err = 0, worst_num = 0, worst_ana = 0;
    int64_t worst_i = -1;
    for (int64_t i = 0; i < n; i++) {
        const double xi = x[i];
        x[i] = xi + FD_H;
        const double lp = f(ctx);
        x[i] = xi - FD_H;
        const double lm = f(ctx);
        x[i] = xi;
        const double num = (lp - lm) / (2 * FD_H);
        const double err = fabs(num - ana[i]);
        const double ratio = err / (FD_ABS + FD_REL * fabs(ana[i]));
        if (!(ratio <= worst)) {
            worst = ratio;
            worst_err = err;
            worst_num = num;
            worst_ana = ana[i];
            worst_i = i;
        }
    }
    CHECK_MSG(worst <= 1.0, "%s: element %lld numeric %.12g analytic %.12g (err %.3g = %.3g tol)",
              what, (long long)worst_i, worst_num, worst_ana, worst_err, worst);
    if (want_nonzero)
        CHECK_MSG(max_abs(ana, n) > 1e-3, "%s: analytic gradient is ~0, the check is vacuous",
                  what);
    if (verbose)
        printf("  %-34s n=%-4lld max err %.2e (%.4f of tol)\n", what, (long long)n, worst_err,
               worst);
}

/* Accumulate contract: got (computed into a buffer pre-filled with pre) == pre + fresh
 * (computed into zeros), up to the rounding of the extra additions. */
static void check_accum(const char *what, const double *got, const double *pre,
                        const double *fresh, int64_t n) {
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        const double want = pre[i] + fresh[i];
        const double tol = 1e-13 * (fabs(pre[i]) + fabs(fresh[i]) + 1e-300);
        worst = fmax(worst, fabs(got[i] - want) / tol);
    }
    CHECK_MSG(worst <= 1.0, "%s: not accumulated (+=): worst %.3g of tol", what, worst);
}

/* Write contract: the result does not depend on what the buffer held before. */
static void check_written(const char *what, const double *got_garbage, const double *got_zero,
                          int64_t n) {
    CHECK_MSG(memcmp(got_garbage, got_zero, (size_t)n * sizeof(double)) == 0,
              "%s: not written (=): depends on the previous buffer contents", what);
}

/* Fills a pre-fill pattern: nonzero, and different from anything the op computes. */
static void fill_pattern(double *x, int64_t n) {
    for (int64_t i = 0; i < n; i++) x[i] = 3.0 + 0.125 * (double)(i % 13);
}

static void check_close(const char *what, const double *got, const double *want, int64_t n,
                        double tol) {
    double worst = 0;
    int64_t wi = 0;
    for (int64_t i = 0; i < n; i++) {
        const double e = fabs(got[i] - want[i]) / (tol * (1 + fabs(want[i])));
        if (!(e <= worst)) {
            worst = e;
            wi = i;
        }
    }
    CHECK_MSG(worst <= 1.0, "%s: element %lld got %.17g want %.17g", what, (long long)wi,
              n ? got[wi] : 0.0, n ? want[wi] : 0.0);
}

/* Float result against the double result on identical inputs: max abs error relative to the
 * largest magnitude of the reference (a float op loses a few ulp per reduction step). */
static void check_f32(const char *what, const float *got, const double *want, int64_t n,
                      double tol) {
    double err = 0;
    for (int64_t i = 0; i < n; i++) {
        const double e = fabs((double)got[i] - want[i]);
        if (!(e <= err)) err = e;
    }
    const double scale = fmax(max_abs(want, n), 1e-30);
    CHECK_MSG(err <= tol * scale, "%s: float vs double max err %.3g, %.3g of scale %.3g", what,
              err, err / scale, scale);
    if (verbose) printf("  f32 %-30s rel err %.2e\n", what, err / scale);
}

/* ---- embedding ------------------------------------------------------------------------ */

typedef struct {
    int64_t N, C, V;
    int32_t *tok;
    double *wte, *out, *r;
} emb_ctx;

static double emb_loss(void *p) {
    emb_ctx *c = p;
    D->embedding_fwd(c->out, c->tok, c->wte, c->N, c->C);
    return dot(c->out, c->r, c->N * c->C);
}

static void test_embedding(void) {
    emb_ctx c = {.N = 9, .C = 7, .V = 5};
    c.tok = fqt_xmalloc((size_t)c.N * sizeof(int32_t));
    const int32_t toks[9] = {3, 0, 3, 4, 1, 3, 0, 2, 4}; /* repeats; every id used */
    memcpy(c.tok, toks, sizeof toks);
    c.wte = drand_new(c.V * c.C, 1);
    c.out = dalloc(c.N * c.C);
    c.r = drand_new(c.N * c.C, 1);

    fill_pattern(c.out, c.N * c.C);
    D->embedding_fwd(c.out, c.tok, c.wte, c.N, c.C);
    int exact = 1;
    for (int64_t n = 0; n < c.N; n++)
        for (int64_t j = 0; j < c.C; j++)
            exact &= c.out[n * c.C + j] == c.wte[c.tok[n] * c.C + j];
    CHECK_MSG(exact, "embedding_fwd: out[n] != wte[tok[n]]");

    double *g0 = dalloc(c.V * c.C), *g1 = dalloc(c.V * c.C), *pre = dalloc(c.V * c.C);
    D->embedding_bwd(g0, c.r, c.tok, c.N, c.C);
    fill_pattern(pre, c.V * c.C);
    memcpy(g1, pre, (size_t)(c.V * c.C) * sizeof(double));
    D->embedding_bwd(g1, c.r, c.tok, c.N, c.C);
    check_accum("embedding_bwd dwte", g1, pre, g0, c.V * c.C);
    fd_check("embedding dwte", emb_loss, &c, c.wte, g0, c.V * c.C, 1);

    /* float table: forward is a copy, backward sums a few rows */
    float *fw = to_f32_new(c.wte, c.V * c.C), *fr = to_f32_new(c.r, c.N * c.C);
    float *fo = falloc(c.N * c.C), *fg = falloc(c.V * c.C);
    F->embedding_fwd(fo, c.tok, fw, c.N, c.C);
    D->embedding_fwd(c.out, c.tok, c.wte, c.N, c.C);
    check_f32("embedding_fwd", fo, c.out, c.N * c.C, 0);
    F->embedding_bwd(fg, fr, c.tok, c.N, c.C);
    check_f32("embedding_bwd", fg, g0, c.V * c.C, 1e-6);

    free(fw), free(fr), free(fo), free(fg);
    free(g0), free(g1), free(pre);
    free(c.tok), free(c.wte), free(c.out), free(c.r);
}

/* ---- RMSNorm -------------------------------------------------------------------------- */

typedef struct {
    int64_t N, C;
    double eps;
    double *in, *w, *out, *rstd, *r;
} rms_ctx;

static double rms_loss(void *p) {
    rms_ctx *c = p;
    D->rmsnorm_fwd(c->out, c->rstd, c->in, c->w, c->N, c->C, c->eps);
    return dot(c->out, c->r, c->N * c->C);
}

static void test_rmsnorm(int64_t N, int64_t C) {
    rms_ctx c = {.N = N, .C = C, .eps = 1e-5};
    const int64_t nc = N * C;
    c.in = drand_new(nc, 1);
    c.w = drand_new(C, 1);
    for (int64_t j = 0; j < C; j++) c.w[j] += 1.0;
    c.out = dalloc(nc);
    c.rstd = dalloc(N);
    c.r = drand_new(nc, 1);

    /* forward against the formula; out and rstd written */
    fill_pattern(c.out, nc);
    fill_pattern(c.rstd, N);
    D->rmsnorm_fwd(c.out, c.rstd, c.in, c.w, N, C, c.eps);
    double *want = dalloc(nc), *wrstd = dalloc(N);
    for (int64_t n = 0; n < N; n++) {
        double ss = 0;
        for (int64_t j = 0; j < C; j++) ss += c.in[n * C + j] * c.in[n * C + j];
        wrstd[n] = 1 / sqrt(ss / (double)C + c.eps);
        for (int64_t j = 0; j < C; j++) want[n * C + j] = c.in[n * C + j] * wrstd[n] * c.w[j];
    }
    check_close("rmsnorm_fwd out", c.out, want, nc, 1e-14);
    check_close("rmsnorm_fwd rstd", c.rstd, wrstd, N, 1e-14);

    /* analytic gradients: fresh, then accumulated into a pattern */
    double *din0 = dalloc(nc), *dw0 = dalloc(C), *din1 = dalloc(nc), *dw1 = dalloc(C);
    double *pin = dalloc(nc), *pw = dalloc(C);
    D->rmsnorm_bwd(din0, dw0, c.r, c.in, c.w, c.rstd, N, C);
    fill_pattern(pin, nc);
    fill_pattern(pw, C);
    memcpy(din1, pin, (size_t)nc * sizeof(double));
    memcpy(dw1, pw, (size_t)C * sizeof(double));
    D->rmsnorm_bwd(din1, dw1, c.r, c.in, c.w, c.rstd, N, C);
    check_accum("rmsnorm_bwd din", din1, pin, din0, nc);
    check_accum("rmsnorm_bwd dw", dw1, pw, dw0, C);

    char what[64];
    snprintf(what, sizeof what, "rmsnorm din N=%lld C=%lld", (long long)N, (long long)C);
    fd_check(what, rms_loss, &c, c.in, din0, nc, 1);
    snprintf(what, sizeof what, "rmsnorm dw N=%lld C=%lld", (long long)N, (long long)C);
    fd_check(what, rms_loss, &c, c.w, dw0, C, 1);

    /* float table on the same inputs */
    float *fin = to_f32_new(c.in, nc), *fw = to_f32_new(c.w, C), *fr = to_f32_new(c.r, nc);
    float *fo = falloc(nc), *frs = falloc(N), *fdin = falloc(nc), *fdw = falloc(C);
    F->rmsnorm_fwd(fo, frs, fin, fw, N, C, (float)c.eps);
    D->rmsnorm_fwd(c.out, c.rstd, c.in, c.w, N, C, (double)(float)c.eps);
    check_f32("rmsnorm_fwd", fo, c.out, nc, 1e-6);
    F->rmsnorm_bwd(fdin, fdw, fr, fin, fw, frs, N, C);
    memset(din0, 0, (size_t)nc * sizeof(double));
    memset(dw0, 0, (size_t)C * sizeof(double));
    D->rmsnorm_bwd(din0, dw0, c.r, c.in, c.w, c.rstd, N, C);
    check_f32("rmsnorm_bwd din", fdin, din0, nc, 1e-5);
    check_f32("rmsnorm_bwd dw", fdw, dw0, C, 1e-5);

    free(fin), free(fw), free(fr), free(fo), free(frs), free(fdin), free(fdw);
    free(din0), free(dw0), free(din1), free(dw1), free(pin), free(pw), free(want), free(wrstd);
    free(c.in), free(c.w), free(c.out), free(c.rstd), free(c.r);
}

/* ---- RoPE ----------------------------------------------------------------------------- */

typedef struct {
    int64_t B, T, H, HS;
    double theta;
    double *x, *out, *r;
} rope_ctx;

static double rope_loss(void *p) {
    rope_ctx *c = p;
    const int64_t n = c->B * c->T * c->H * c->HS;
    memcpy(c->out, c->x, (size_t)n * sizeof(double));
    D->rope_fwd(c->out, c->B, c->T, c->H, c->HS, c->theta);
    return dot(c->out, c->r, n);
}

/* The ops.h convention written out directly: pairs (i, i + HS/2), angle t theta^(-2i/HS). */
static void rope_naive(double *y, const double *x, int64_t B, int64_t T, int64_t H,
                       int64_t HS, double theta) {
    const int64_t half = HS / 2;
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < T; t++)
            for (int64_t h = 0; h < H; h++) {
                const int64_t o = ((b * T + t) * H + h) * HS;
                for (int64_t i = 0; i < half; i++) {
                    const double a = (double)t * pow(theta, -2.0 * (double)i / (double)HS);
                    y[o + i] = x[o + i] * cos(a) - x[o + i + half] * sin(a);
                    y[o + i + half] = x[o + i + half] * cos(a) + x[o + i] * sin(a);
                }
            }
}

static void test_rope(int64_t B, int64_t T, int64_t H, int64_t HS, double theta) {
    rope_ctx c = {.B = B, .T = T, .H = H, .HS = HS, .theta = theta};
    const int64_t n = B * T * H * HS;
    c.x = drand_new(n, 1);
    c.out = dalloc(n);
    c.r = drand_new(n, 1);

    double *want = dalloc(n);
    rope_naive(want, c.x, B, T, H, HS, theta);
    rope_loss(&c);
    check_close("rope_fwd vs formula", c.out, want, n, 1e-14);
    /* position 0 is the identity, exactly */
    int id0 = 1;
    for (int64_t b = 0; b < B; b++)
        for (int64_t i = 0; i < H * HS; i++) id0 &= c.out[b * T * H * HS + i] == c.x[b * T * H * HS + i];
    CHECK_MSG(id0, "rope_fwd: position 0 must be the identity");

    /* orthogonality: norms of every pair kept, and bwd(fwd(x)) == x */
    double worst = 0;
    for (int64_t i = 0; i < n; i += HS)
        for (int64_t k = 0; k < HS / 2; k++) {
            const double a = hypot(c.x[i + k], c.x[i + k + HS / 2]);
            const double b = hypot(c.out[i + k], c.out[i + k + HS / 2]);
            worst = fmax(worst, fabs(a - b));
        }
    CHECK_MSG(worst < 1e-14, "rope_fwd does not keep pair norms: %.3g", worst);
    double *back = dcopy_new(c.out, n);
    D->rope_bwd(back, B, T, H, HS, theta);
    check_close("rope_bwd(rope_fwd(x)) == x", back, c.x, n, 1e-15);

    double *g = dcopy_new(c.r, n);
    D->rope_bwd(g, B, T, H, HS, theta);
    char what[64];
    snprintf(what, sizeof what, "rope dx T=%lld HS=%lld theta=%g", (long long)T, (long long)HS,
             theta);
    fd_check(what, rope_loss, &c, c.x, g, n, 1);

    /* float table */
    float *fx = to_f32_new(c.x, n);
    F->rope_fwd(fx, B, T, H, HS, (float)theta);
    D->rope_fwd(memcpy(back, c.x, (size_t)n * sizeof(double)), B, T, H, HS,
                (double)(float)theta);
    check_f32("rope_fwd", fx, back, n, 1e-6);
    F->rope_bwd(fx, B, T, H, HS, (float)theta);
    check_f32("rope_bwd(rope_fwd)", fx, c.x, n, 1e-6);

    free(fx), free(want), free(back), free(g);
    free(c.x), free(c.out), free(c.r);
}

/* ---- attention ------------------------------------------------------------------------ */

typedef struct {
    int64_t B, T, NH, NKV, HS;
    double *q, *k, *v, *out, *att, *r;
} att_ctx;

static double att_loss(void *p) {
    att_ctx *c = p;
    D->attention_fwd(c->out, c->att, c->q, c->k, c->v, c->B, c->T, c->NH, c->NKV, c->HS);
    return dot(c->out, c->r, c->B * c->T * c->NH * c->HS);
}

/* Straight from the contract: scores, softmax over s <= t, weighted sum; kv head h/(NH/NKV). */
static void attention_naive(double *out, double *att, const double *q, const double *k,
                            const double *v, int64_t B, int64_t T, int64_t NH, int64_t NKV,
                            int64_t HS) {
    double *sc = dalloc(T);
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < NH; h++) {
            const int64_t kh = h / (NH / NKV);
            for (int64_t t = 0; t < T; t++) {
                const double *qt = q + ((b * T + t) * NH + h) * HS;
                double mx = -INFINITY, sum = 0;
                for (int64_t s = 0; s <= t; s++) {
                    const double *ks = k + ((b * T + s) * NKV + kh) * HS;
                    sc[s] = dot(qt, ks, HS) / sqrt((double)HS);
                    mx = fmax(mx, sc[s]);
                }
                for (int64_t s = 0; s <= t; s++) sum += exp(sc[s] - mx);
                double *arow = att + ((b * NH + h) * T + t) * T;
                double *ot = out + ((b * T + t) * NH + h) * HS;
                for (int64_t d = 0; d < HS; d++) ot[d] = 0;
                for (int64_t s = 0; s < T; s++) {
                    arow[s] = s <= t ? exp(sc[s] - mx) / sum : 0;
                    if (s > t) continue;
                    const double *vs = v + ((b * T + s) * NKV + kh) * HS;
                    for (int64_t d = 0; d < HS; d++) ot[d] += arow[s] * vs[d];
                }
            }
        }
    free(sc);
}

/* Probabilities [B, NH, T, T] from attention_fwd's row statistics {max, 1/sum}: what the
 * backward pass recomputes (zero above the diagonal). */
static void probs_from_stats(double *prob, const double *stats, const double *q, const double *k,
                             int64_t B, int64_t T, int64_t NH, int64_t NKV, int64_t HS) {
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < NH; h++) {
            const int64_t kh = h / (NH / NKV);
            for (int64_t t = 0; t < T; t++) {
                const double *qt = q + ((b * T + t) * NH + h) * HS;
                const double *st = stats + ((b * NH + h) * T + t) * 2;
                double *prow = prob + ((b * NH + h) * T + t) * T;
                for (int64_t s = 0; s < T; s++) {
                    const double *ks = k + ((b * T + s) * NKV + kh) * HS;
                    prow[s] = s <= t ? exp(dot(qt, ks, HS) / sqrt((double)HS) - st[0]) * st[1] : 0;
                }
            }
        }
}

static void test_attention(int64_t B, int64_t T, int64_t NH, int64_t NKV, int64_t HS) {
    att_ctx c = {.B = B, .T = T, .NH = NH, .NKV = NKV, .HS = HS};
    const int64_t nq = B * T * NH * HS, nk = B * T * NKV * HS, na = B * NH * T * T;
    const int64_t ns = B * NH * T * 2; /* saved row statistics (max, 1/sum) */
    c.q = drand_new(nq, 1.5);
    c.k = drand_new(nk, 1.5);
    c.v = drand_new(nk, 1);
    c.out = dalloc(nq);
    c.att = dalloc(ns);
    c.r = drand_new(nq, 1);
    char tag[64];
    snprintf(tag, sizeof tag, "B=%lld T=%lld NH=%lld NKV=%lld HS=%lld", (long long)B,
             (long long)T, (long long)NH, (long long)NKV, (long long)HS);

    /* forward: written, equal to the naive loops */
    fill_pattern(c.out, nq);
    fill_pattern(c.att, ns);
    D->attention_fwd(c.out, c.att, c.q, c.k, c.v, B, T, NH, NKV, HS);
    double *wout = dalloc(nq), *watt = dalloc(na), *prob = dalloc(na);
    attention_naive(wout, watt, c.q, c.k, c.v, B, T, NH, NKV, HS);
    check_close("attention_fwd out vs naive", c.out, wout, nq, 1e-13);
    /* The probabilities the saved statistics stand for: P = exp(score - max) / sum. */
    probs_from_stats(prob, c.att, c.q, c.k, B, T, NH, NKV, HS);
    check_close("attention_fwd probabilities from stats vs naive", prob, watt, na, 1e-13);

    /* probabilities: rows sum to 1, non-negative, exact zeros above the diagonal */
    int ok_zero = 1, ok_pos = 1;
    double worst_sum = 0;
    for (int64_t bh = 0; bh < B * NH; bh++)
        for (int64_t t = 0; t < T; t++) {
            const double *arow = prob + (bh * T + t) * T;
            double s = 0;
            for (int64_t u = 0; u < T; u++) {
                if (u > t) ok_zero &= arow[u] == 0.0;
                else ok_pos &= arow[u] >= 0.0;
                s += arow[u];
            }
            worst_sum = fmax(worst_sum, fabs(s - 1));
        }
    CHECK_MSG(ok_zero, "attention_fwd: att above the diagonal not zero (%s)", tag);
    CHECK_MSG(ok_pos, "attention_fwd: negative probability (%s)", tag);
    CHECK_MSG(worst_sum < 1e-14, "attention_fwd: row sums off by %.3g (%s)", worst_sum, tag);

    /* convex combination: each output component lies within the visible v components */
    int ok_hull = 1;
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < T; t++)
            for (int64_t h = 0; h < NH; h++)
                for (int64_t d = 0; d < HS; d++) {
                    double lo = INFINITY, hi = -INFINITY;
                    for (int64_t s = 0; s <= t; s++) {
                        const double vv = c.v[((b * T + s) * NKV + h / (NH / NKV)) * HS + d];
                        lo = fmin(lo, vv);
                        hi = fmax(hi, vv);
                    }
                    const double o = c.out[((b * T + t) * NH + h) * HS + d];
                    ok_hull &= o >= lo - 1e-14 && o <= hi + 1e-14;
                }
    CHECK_MSG(ok_hull, "attention_fwd: output outside the convex hull of v[s<=t] (%s)", tag);

    /* causality: changing k and v at position s0 leaves rows t < s0 bit-identical */
    if (T >= 3) {
        const int64_t s0 = T - 2;
        double *k2 = dcopy_new(c.k, nk), *v2 = dcopy_new(c.v, nk), *o2 = dalloc(nq),
               *a2 = dalloc(ns);
        for (int64_t b = 0; b < B; b++)
            for (int64_t i = 0; i < NKV * HS; i++) {
                k2[(b * T + s0) * NKV * HS + i] += 5.0;
                v2[(b * T + s0) * NKV * HS + i] -= 7.0;
            }
        D->attention_fwd(o2, a2, c.q, k2, v2, B, T, NH, NKV, HS);
        int same_before = 1, changed_after = 0;
        for (int64_t b = 0; b < B; b++)
            for (int64_t t = 0; t < T; t++) {
                const int64_t o = (b * T + t) * NH * HS;
                const int same = memcmp(o2 + o, c.out + o, (size_t)(NH * HS) * sizeof(double)) == 0;
                if (t < s0) same_before &= same;
                else changed_after |= !same;
            }
        CHECK_MSG(same_before, "attention_fwd: a future key/value changed an earlier output (%s)",
                  tag);
        CHECK_MSG(changed_after, "attention_fwd: perturbing k/v at s0 changed nothing (%s)", tag);
        free(k2), free(v2), free(o2), free(a2);
    }

    /* backward: written (pattern in the buffers does not matter), then finite differences */
    D->attention_fwd(c.out, c.att, c.q, c.k, c.v, B, T, NH, NKV, HS);
    double *dq = dalloc(nq), *dk = dalloc(nk), *dv = dalloc(nk);
    double *dq1 = dalloc(nq), *dk1 = dalloc(nk), *dv1 = dalloc(nk);
    D->attention_bwd(dq, dk, dv, c.r, c.att, c.q, c.k, c.v, B, T, NH, NKV, HS);
    fill_pattern(dq1, nq);
    fill_pattern(dk1, nk);
    fill_pattern(dv1, nk);
    D->attention_bwd(dq1, dk1, dv1, c.r, c.att, c.q, c.k, c.v, B, T, NH, NKV, HS);
    check_written("attention_bwd dq", dq1, dq, nq);
    check_written("attention_bwd dk", dk1, dk, nk);
    check_written("attention_bwd dv", dv1, dv, nk);

    char what[96];
    const int nontrivial = T > 1; /* with T = 1 the output is v and dq = dk = 0 */
    snprintf(what, sizeof what, "attention dq %s", tag);
    fd_check(what, att_loss, &c, c.q, dq, nq, nontrivial);
    snprintf(what, sizeof what, "attention dk %s", tag);
    fd_check(what, att_loss, &c, c.k, dk, nk, nontrivial);
    snprintf(what, sizeof what, "attention dv %s", tag);
    fd_check(what, att_loss, &c, c.v, dv, nk, 1);

    /* float table on the same inputs */
    float *fq = to_f32_new(c.q, nq), *fk = to_f32_new(c.k, nk), *fv = to_f32_new(c.v, nk);
    float *fr = to_f32_new(c.r, nq), *fo = falloc(nq), *fa = falloc(ns);
    float *fdq = falloc(nq), *fdk = falloc(nk), *fdv = falloc(nk);
    F->attention_fwd(fo, fa, fq, fk, fv, B, T, NH, NKV, HS);
    D->attention_fwd(c.out, c.att, c.q, c.k, c.v, B, T, NH, NKV, HS);
    check_f32("attention_fwd out", fo, c.out, nq, 1e-5);
    check_f32("attention_fwd stats", fa, c.att, ns, 1e-5);
    F->attention_bwd(fdq, fdk, fdv, fr, fa, fq, fk, fv, B, T, NH, NKV, HS);
    check_f32("attention_bwd dq", fdq, dq, nq, 1e-5);
    check_f32("attention_bwd dk", fdk, dk, nk, 1e-5);
    check_f32("attention_bwd dv", fdv, dv, nk, 1e-5);

    free(fq), free(fk), free(fv), free(fr), free(fo), free(fa), free(fdq), free(fdk), free(fdv);
    free(dq), free(dk), free(dv), free(dq1), free(dk1), free(dv1), free(wout), free(watt), free(prob);
    free(c.q), free(c.k), free(c.v), free(c.out), free(c.att), free(c.r);
}

/* ---- SwiGLU --------------------------------------------------------------------------- */

typedef struct {
    int64_t n;
    double *gate, *up, *out, *r;
} swi_ctx;

static double swi_loss(void *p) {
    swi_ctx *c = p;
    D->swiglu_fwd(c->out, c->gate, c->up, c->n);
    return dot(c->out, c->r, c->n);
}

static void test_swiglu(void) {
    swi_ctx c = {.n = 37};
    const int64_t n = c.n;
    c.gate = drand_new(n, 6); /* covers both saturated tails of the sigmoid */
    c.up = drand_new(n, 2);
    c.out = dalloc(n);
    c.r = drand_new(n, 1);

    fill_pattern(c.out, n);
    D->swiglu_fwd(c.out, c.gate, c.up, n);
    double *want = dalloc(n);
    for (int64_t i = 0; i < n; i++) want[i] = c.gate[i] / (1 + exp(-c.gate[i])) * c.up[i];
    check_close("swiglu_fwd vs formula", c.out, want, n, 1e-15);

    double *dg = dalloc(n), *du = dalloc(n), *dg1 = dalloc(n), *du1 = dalloc(n);
    D->swiglu_bwd(dg, du, c.r, c.gate, c.up, n);
    fill_pattern(dg1, n);
    fill_pattern(du1, n);
    D->swiglu_bwd(dg1, du1, c.r, c.gate, c.up, n);
    check_written("swiglu_bwd dgate", dg1, dg, n);
    check_written("swiglu_bwd dup", du1, du, n);
    fd_check("swiglu dgate", swi_loss, &c, c.gate, dg, n, 1);
    fd_check("swiglu dup", swi_loss, &c, c.up, du, n, 1);

    /* extreme gates stay finite: silu(-1000) = -0, silu(1000) = 1000 */
    const double xg[2] = {-1000, 1000}, xu[2] = {1, 1}, xd[2] = {1, 1};
    double xo[2], xdg[2], xdu[2];
    D->swiglu_fwd(xo, xg, xu, 2);
    D->swiglu_bwd(xdg, xdu, xd, xg, xu, 2);
    CHECK_MSG(xo[0] == 0 && xo[1] == 1000 && xdg[0] == 0 && xdg[1] == 1,
              "swiglu extremes: out %g %g dgate %g %g", xo[0], xo[1], xdg[0], xdg[1]);

    float *fg = to_f32_new(c.gate, n), *fu = to_f32_new(c.up, n), *fr = to_f32_new(c.r, n);
    float *fo = falloc(n), *fdg = falloc(n), *fdu = falloc(n);
    F->swiglu_fwd(fo, fg, fu, n);
    check_f32("swiglu_fwd", fo, c.out, n, 2e-6);
    F->swiglu_bwd(fdg, fdu, fr, fg, fu, n);
    check_f32("swiglu_bwd dgate", fdg, dg, n, 1e-6);
    check_f32("swiglu_bwd dup", fdu, du, n, 1e-6);

    free(fg), free(fu), free(fr), free(fo), free(fdg), free(fdu);
    free(want), free(dg), free(du), free(dg1), free(du1);
    free(c.gate), free(c.up), free(c.out), free(c.r);
}

/* ---- cross-entropy -------------------------------------------------------------------- */

typedef struct {
    int64_t N, V;
    int32_t *tg;
    double *x;
} xent_ctx;

static double xent_loss(void *p) {
    xent_ctx *c = p;
    return D->xent_fwd_bwd(NULL, NULL, c->x, c->tg, c->N, c->V, 1.0);
}

static void test_xent(void) {
    xent_ctx c = {.N = 6, .V = 11};
    const int64_t N = c.N, V = c.V, nv = N * V;
    const int32_t tg[6] = {3, -1, 0, 10, 7, 3}; /* row 1 ignored, first and last class */
    c.tg = fqt_xmalloc(sizeof tg);
    memcpy(c.tg, tg, sizeof tg);
    c.x = drand_new(nv, 3);
    const double dscale = 1.0 / 5.0; /* 1/count: the gradient of the mean */

    /* per-row losses and the mean against the formula */
    double *losses = dalloc(N), *dl = dalloc(nv), *want = dalloc(N);
    fill_pattern(losses, N);
    fill_pattern(dl, nv);
    const double mean = D->xent_fwd_bwd(dl, losses, c.x, c.tg, N, V, dscale);
    double wsum = 0;
    for (int64_t n = 0; n < N; n++) {
        want[n] = 0;
        if (tg[n] < 0) continue;
        double s = 0;
        for (int64_t j = 0; j < V; j++) s += exp(c.x[n * V + j]);
        want[n] = log(s) - c.x[n * V + tg[n]];
        wsum += want[n];
    }
    check_close("xent losses vs formula", losses, want, N, 1e-14);
    CHECK_MSG(fabs(mean - wsum / 5) < 1e-14, "xent mean %.17g want %.17g", mean, wsum / 5);
    int ign = losses[1] == 0;
    for (int64_t j = 0; j < V; j++) ign &= dl[1 * V + j] == 0;
    CHECK_MSG(ign, "xent: ignored row must have loss 0 and dlogits 0");

    /* written: same result from zeroed buffers; aliasing dlogits == logits gives the same */
    double *losses0 = dalloc(N), *dl0 = dalloc(nv);
    D->xent_fwd_bwd(dl0, losses0, c.x, c.tg, N, V, dscale);
    check_written("xent losses", losses, losses0, N);
    check_written("xent dlogits", dl, dl0, nv);
    double *alias = dcopy_new(c.x, nv);
    const double mean_alias = D->xent_fwd_bwd(alias, NULL, alias, c.tg, N, V, dscale);
    CHECK_MSG(mean_alias == mean, "xent aliased: mean %.17g != %.17g", mean_alias, mean);
    CHECK_MSG(memcmp(alias, dl0, (size_t)nv * sizeof(double)) == 0,
              "xent: dlogits aliasing logits differs from the separate buffer");

    fd_check("xent dlogits (mean loss)", xent_loss, &c, c.x, dl0, nv, 1);

    /* no counted row: mean 0, all gradients 0; huge logits do not overflow */
    const int32_t none[2] = {-1, -5};
    double big[2 * 3] = {1000, -1000, 999, 0, 0, 0}, bdl[6], bl[2];
    CHECK(D->xent_fwd_bwd(bdl, bl, big, none, 2, 3, 1.0) == 0.0);
    const int32_t one[2] = {2, -1};
    const double lbig = D->xent_fwd_bwd(bdl, bl, big, one, 2, 3, 1.0);
    CHECK_MSG(fabs(lbig - (1 + log1p(exp(-1.0)))) < 1e-12, "xent large logits: %.17g", lbig);

    /* float table */
    float *fx = to_f32_new(c.x, nv), *fl = falloc(N);
    const double fmean = F->xent_fwd_bwd(fx, fl, fx, c.tg, N, V, (float)dscale);
    CHECK_MSG(fabs(fmean - mean) < 1e-6 * fabs(mean), "xent float mean %.9g double %.9g", fmean,
              mean);
    check_f32("xent losses", fl, losses0, N, 1e-6);
    check_f32("xent dlogits (aliased)", fx, dl0, nv, 1e-6);

    free(fx), free(fl), free(alias), free(losses0), free(dl0);
    free(losses), free(dl), free(want), free(c.tg), free(c.x);
}

/* ---- add ------------------------------------------------------------------------------ */

static void test_add(void) {
    const int64_t n = 29;
    double *y = drand_new(n, 1), *x = drand_new(n, 1), *y0 = dcopy_new(y, n);
    D->add_inplace(y, x, n);
    int ok = 1;
    for (int64_t i = 0; i < n; i++) ok &= y[i] == y0[i] + x[i];
    CHECK_MSG(ok, "add_inplace (double)");
    float *fy = to_f32_new(y0, n), *fx = to_f32_new(x, n);
    F->add_inplace(fy, fx, n);
    ok = 1;
    for (int64_t i = 0; i < n; i++) ok &= fy[i] == (float)y0[i] + (float)x[i];
    CHECK_MSG(ok, "add_inplace (float)");
    free(y), free(x), free(y0), free(fy), free(fx);
}

/* ---- thread-count independence -------------------------------------------------------- */

#ifdef _OPENMP

/* Runs every float op at sizes above the parallel threshold; concatenates all outputs. */
static float *run_all_f32(int64_t *len) {
    const uint64_t saved = rng_state;
    rng_state = 0x1234567ull; /* same inputs on every call */
    const int64_t B = 2, T = 64, NH = 4, NKV = 2, HS = 16;
    const int64_t nq = B * T * NH * HS, nk = B * T * NKV * HS, na = B * NH * T * T;
    const int64_t N = 512, C = 96, V = 300, NX = 128, NR = 4 * 128 * 4 * 16, NS = 40000,
                  NA = 140000;
    const int64_t total = nq + na + nq + 2 * nk + (N * C + N) + (N * C + C) + NR + 3 * NS + NX
                        + NX * V + 1 + (N * C + 37 * C) + NA;
    float *res = falloc(total), *o = res;
    double *tmp;
#define RAND_F32(name, cnt, amp) \
    tmp = drand_new(cnt, amp);    \
    float *name = to_f32_new(tmp, cnt); \
    free(tmp)
    RAND_F32(q, nq, 1.5);
    RAND_F32(k, nk, 1.5);
    RAND_F32(v, nk, 1);
    RAND_F32(gq, nq, 1);
    F->attention_fwd(o, o + nq, q, k, v, B, T, NH, NKV, HS);
    F->attention_bwd(o + nq + na, o + 2 * nq + na, o + 2 * nq + na + nk, gq, o + nq, q, k, v, B,
                     T, NH, NKV, HS);
    o += 2 * nq + na + 2 * nk;

    RAND_F32(in, N * C, 1);
    RAND_F32(w, C, 1);
    RAND_F32(gin, N * C, 1);
    F->rmsnorm_fwd(o, o + N * C, in, w, N, C, 1e-5f);
    float *rstd = o + N * C;
    o += N * C + N;
    F->rmsnorm_bwd(o, o + N * C, gin, in, w, rstd, N, C);
    o += N * C + C;

    RAND_F32(rx, NR, 1);
    memcpy(o, rx, (size_t)NR * sizeof(float));
    F->rope_fwd(o, 4, 128, 4, 16, 10000.0f);
    o += NR;

    RAND_F32(sg, NS, 6);
    RAND_F32(su, NS, 1);
    RAND_F32(sd, NS, 1);
    F->swiglu_fwd(o, sg, su, NS);
    o += NS;
    F->swiglu_bwd(o, o + NS, sd, sg, su, NS);
    o += 2 * NS;

    RAND_F32(lx, NX * V, 3);
    int32_t *tg = fqt_xmalloc((size_t)NX * sizeof(int32_t));
    for (int64_t i = 0; i < NX; i++) tg[i] = (i % 9 == 4) ? -1 : (int32_t)(rng_u64() % (uint64_t)V);
    o[NX + NX * V] = (float)F->xent_fwd_bwd(o + NX, o, lx, tg, NX, V, 1.0f / (float)NX);
    o += NX + NX * V + 1;

    int32_t *tok = fqt_xmalloc((size_t)N * sizeof(int32_t));
    for (int64_t i = 0; i < N; i++) tok[i] = (int32_t)(rng_u64() % 37);
    RAND_F32(wte, 37 * C, 1);
    F->embedding_fwd(o, tok, wte, N, C);
    F->embedding_bwd(o + N * C, in, tok, N, C); /* o + N*C is zero: calloc */
    o += N * C + 37 * C;

    RAND_F32(ay, NA, 1);
    RAND_F32(ax, NA, 1);
    memcpy(o, ay, (size_t)NA * sizeof(float));
    F->add_inplace(o, ax, NA);
    o += NA;
    FQT_ASSERT(o - res == total);
#undef RAND_F32
    free(q), free(k), free(v), free(gq), free(in), free(w), free(gin), free(rx), free(sg),
        free(su), free(sd), free(lx), free(tg), free(tok), free(wte), free(ay), free(ax);
    rng_state = saved;
    *len = total;
    return res;
}

#endif /* _OPENMP */

static void test_threads(void) {
#ifdef _OPENMP
    const int saved = omp_get_max_threads();
    int64_t n1, n2, n3;
    omp_set_num_threads(1);
    float *r1 = run_all_f32(&n1);
    omp_set_num_threads(2);
    float *r2 = run_all_f32(&n2);
    omp_set_num_threads(3);
    float *r3 = run_all_f32(&n3);
    omp_set_num_threads(saved);
    CHECK(n1 == n2 && n1 == n3);
    CHECK_MSG(memcmp(r1, r2, (size_t)n1 * sizeof(float)) == 0, "1 vs 2 threads differ");
    CHECK_MSG(memcmp(r1, r3, (size_t)n1 * sizeof(float)) == 0, "1 vs 3 threads differ");
    int finite = 1;
    for (int64_t i = 0; i < n1; i++) finite &= isfinite(r1[i]);
    CHECK_MSG(finite, "non-finite value in the thread-test outputs");
    free(r1), free(r2), free(r3);
#else
    printf("SKIP test_ops threads: built without OpenMP\n");
#endif
}

int main(int argc, char **argv) {
    verbose = argc > 1 && strcmp(argv[1], "-v") == 0;
    test_embedding();
    test_rmsnorm(3, 8);
    test_rmsnorm(5, 13);
    test_rope(2, 7, 3, 8, 10000.0);
    test_rope(1, 5, 2, 6, 10.0);
    test_rope(1, 300, 1, 4, 500000.0); /* far positions; FD on 1200 elements is cheap */
    test_attention(2, 6, 4, 2, 6);     /* GQA */
    test_attention(2, 5, 3, 3, 4);     /* MHA */
    test_attention(1, 7, 4, 1, 5);     /* MQA, odd head size */
    test_attention(2, 1, 2, 1, 3);     /* T = 1 */
    test_swiglu();
    test_xent();
    test_add();
    test_threads();
    return check_finish();
}
