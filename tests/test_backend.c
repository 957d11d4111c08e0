/* tests/test_backend.c — the differential harness of the backend table (fqt/backend.h), after
 * ggml's test-backend-ops: every entry of the backend under test, on random inputs of awkward
 * shapes (odd sizes, K not a multiple of the block, T = 1), against an independent reference:
 *   - ops: the double-precision instantiation of the CPU ops (fqt_ops_cpu_f64) on the same
 *     inputs, with a tolerance derived from the op's accumulation depth k and the storage
 *     unit u of the backend's activations (2^-24 float32, 2^-8 bf16): |got - ref| <=
 *     c * k * u * scale, scale the largest |ref| of the row; the worst error is reported as a
 *     fraction of its tolerance;
 *   - quantize / dequantize: fqt_quantize / fqt_dequantize on the host, compared with memcmp
 *     (codes, scales, the tensor-scale slot), RNE and SR, both axes, every preset;
 *   - qgemm: a double product of the dequantized operands, within gamma_K * sum|a||b|;
 *   - adamw: a scalar float32 loop written here, to the bit, and its dry-run count;
 *   - sumsq_partials, count_nonfinite: double / exact counts.
 * Every output buffer carries guard regions before and after it (sentinel bytes that must come
 * back untouched), and NaN inputs must give NaN exactly where the reference has NaN.
 *
 * The backend is fqt_backend_get(FQT_BACKEND) (default "cpu"), so the same binary checks the
 * CUDA backend on a GPU machine (make test-cuda). Not for: model-level behaviour
 * (test_model.c) or formats themselves (test_formats_*.c). */
#include "check.h"

#include "cpu/ops_f64.h"
#include "fqt/backend.h"
#include "fqt/formats.h"

#include <math.h>
#include <stdlib.h>

static const fqt_backend *BE;
static double U; /* unit roundoff of activation storage */
static uint64_t rng = 0x9E3779B97F4A7C15ull;

#define GUARD 256 /* bytes of sentinel on each side of a device output */
static const unsigned char SENT = 0xA5;

static double urand(void) { return (double)(fqt_splitmix64(&rng) >> 11) * 0x1p-53; }
static double nrand(void) {
    double u1 = urand() + 1e-300, u2 = urand();
    return sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2);
}

/* ---- device buffers with guards ------------------------------------------------------------ */

typedef struct {
    char *raw;    /* backend allocation: GUARD | payload | GUARD */
    size_t bytes; /* payload */
} dbuf;

static void *dptr(const dbuf *b) { return b->raw + GUARD; }

static dbuf dalloc_guarded(size_t bytes) {
    dbuf b = {BE->alloc(bytes + 2 * GUARD), bytes};
    FQT_ASSERT(b.raw);
    unsigned char *h = malloc(bytes + 2 * GUARD);
    memset(h, SENT, bytes + 2 * GUARD);
    BE->upload(b.raw, h, bytes + 2 * GUARD);
    free(h);
    return b;
}

/* The guards are intact; reports the buffer's name otherwise. */
static void check_guards(const dbuf *b, const char *what) {
    unsigned char *h = malloc(b->bytes + 2 * GUARD);
    BE->download(h, b->raw, b->bytes + 2 * GUARD);
    int bad = 0;
    for (size_t i = 0; i < GUARD; i++) bad += h[i] != SENT || h[GUARD + b->bytes + i] != SENT;
    CHECK_MSG(!bad, "%s: %d guard bytes overwritten", what, bad);
    free(h);
}

static void dfree(dbuf *b) { BE->free(b->raw); }

/* float32 host -> act (or f32) device buffer with guards, and back. */
static dbuf up(const float *x, int64_t n, fqt_dtype dt) {
    dbuf b = dalloc_guarded((size_t)n * fqt_dtype_size(dt) + 1);
    if (dt == FQT_DT_F32) {
        BE->upload(dptr(&b), x, (size_t)n * 4);
    } else {
        void *t = BE->alloc((size_t)n * 4 + 1);
        BE->upload(t, x, (size_t)n * 4);
        BE->convert(dptr(&b), dt, t, FQT_DT_F32, n);
        BE->free(t);
    }
    return b;
}

static float *down(const dbuf *b, int64_t n, fqt_dtype dt) {
    float *h = malloc((size_t)n * 4 + 4);
    if (dt == FQT_DT_F32) {
        BE->download(h, dptr(b), (size_t)n * 4);
    } else {
        void *t = BE->alloc((size_t)n * 4 + 1);
        BE->convert(t, FQT_DT_F32, dptr(b), dt, n);
        BE->download(h, t, (size_t)n * 4);
        BE->free(t);
    }
    return h;
}

/* Host values as the backend stores activations (rounded to bf16 when it keeps bf16). */
static void act_round(float *x, int64_t n) {
    if (BE->act_dtype == FQT_DT_BF16)
        for (int64_t i = 0; i < n; i++) x[i] = fqt_bf16_decode(fqt_bf16_encode_rne(x[i]));
}

static float *rand_f(int64_t n, double amp, bool act) {
    float *x = malloc((size_t)n * 4 + 4);
    for (int64_t i = 0; i < n; i++) x[i] = (float)(amp * nrand());
    if (act) act_round(x, n);
    return x;
}

static double *to_d(const float *x, int64_t n) {
    double *d = malloc((size_t)n * 8 + 8);
    for (int64_t i = 0; i < n; i++) d[i] = x[i];
    return d;
}

/* got vs ref over rows of `row` elements: |got - ref| <= 8 k u max|ref row| + tiny; NaN must
 * match NaN. Prints the worst error as a fraction of its tolerance. */
static void cmp_rows(const char *what, const float *got, const double *ref, int64_t n, int64_t row,
                     double k, double u) {
    double worst = 0;
    int64_t wi = -1, nan_bad = 0;
    for (int64_t r0 = 0; r0 < n; r0 += row) {
        double scale = 0;
        for (int64_t i = r0; i < r0 + row && i < n; i++)
            if (isfinite(ref[i])) scale = fmax(scale, fabs(ref[i]));
        const double tol = 8 * k * u * scale + 1e-30;
        for (int64_t i = r0; i < r0 + row && i < n; i++) {
            if (isnan(ref[i]) || isnan(got[i])) {
                nan_bad += isnan(ref[i]) != isnan(got[i]);
                continue;
            }
            double f = fabs(got[i] - ref[i]) / tol;
            if (!(f <= worst)) worst = f, wi = i;
        }
    }
    CHECK_MSG(worst <= 1.0 && nan_bad == 0, "%s: worst error %.3g of its tolerance at %lld (got %.9g, ref %.9g); "
              "%lld NaN mismatches", what, worst, (long long)wi, wi >= 0 ? got[wi] : 0.0, wi >= 0 ? ref[wi] : 0.0,
              (long long)nan_bad);
    if (getenv("FQT_BACKEND_VERBOSE")) printf("  %-44s worst %.3f of tolerance\n", what, worst);
}

static const fqt_ops_f64 *D = &fqt_ops_cpu_f64;

/* ---- ops --------------------------------------------------------------------------------------- */

static void test_rmsnorm(int64_t N, int64_t C, bool nan) {
    const fqt_dtype A = BE->act_dtype;
    float *x = rand_f(N * C, 1.3, true), *w = rand_f(C, 1, false), *g = rand_f(N * C, 1, true);
    if (nan) x[(N / 2) * C + C / 3] = NAN;
    dbuf dx = up(x, N * C, A), dw = up(w, C, FQT_DT_F32), dout = dalloc_guarded((size_t)(N * C) * fqt_dtype_size(A));
    dbuf drs = dalloc_guarded((size_t)N * 4);
    BE->rmsnorm_fwd(dptr(&dout), dptr(&drs), dptr(&dx), dptr(&dw), N, C, 1e-5f);
    double *xd = to_d(x, N * C), *wd = to_d(w, C), *od = malloc((size_t)(N * C) * 8), *rd = malloc((size_t)N * 8);
    D->rmsnorm_fwd(od, rd, xd, wd, N, C, (double)1e-5f);
    float *o = down(&dout, N * C, A);
    char what[96];
    snprintf(what, sizeof what, "rmsnorm_fwd N=%lld C=%lld%s", (long long)N, (long long)C, nan ? " NaN" : "");
    cmp_rows(what, o, od, N * C, C, 4, U > 1e-6 ? U : 0x1p-23);
    check_guards(&dout, what);
    check_guards(&drs, what);
    if (!nan) {
        /* backward: din accumulated onto a random start, dw accumulated */
        float *din0 = rand_f(N * C, 1, true), *dw0 = rand_f(C, 1, false);
        dbuf ddin = up(din0, N * C, A), ddw = up(dw0, C, FQT_DT_F32), dg = up(g, N * C, A);
        BE->rmsnorm_bwd(dptr(&ddin), dptr(&ddw), dptr(&dg), dptr(&dx), dptr(&dw), dptr(&drs), N, C);
        float *rsf = down(&drs, N, FQT_DT_F32);
        double *rsd = to_d(rsf, N), *dind = to_d(din0, N * C), *dwd = to_d(dw0, C), *gd = to_d(g, N * C);
        D->rmsnorm_bwd(dind, dwd, gd, xd, wd, rsd, N, C);
        float *din = down(&ddin, N * C, A), *dwg = down(&ddw, C, FQT_DT_F32);
        snprintf(what, sizeof what, "rmsnorm_bwd din N=%lld C=%lld", (long long)N, (long long)C);
        cmp_rows(what, din, dind, N * C, C, 2.0 * C, U > 1e-6 ? U : 0x1p-23);
        check_guards(&ddin, what);
        snprintf(what, sizeof what, "rmsnorm_bwd dw N=%lld C=%lld", (long long)N, (long long)C);
        cmp_rows(what, dwg, dwd, C, C, 2.0 * N, 0x1p-23);
        check_guards(&ddw, what);
        free(din0), free(dw0), free(rsf), free(rsd), free(dind), free(dwd), free(gd), free(din), free(dwg);
        dfree(&ddin), dfree(&ddw), dfree(&dg);
    }
    free(x), free(w), free(g), free(xd), free(wd), free(od), free(rd), free(o);
    dfree(&dx), dfree(&dw), dfree(&dout), dfree(&drs);
}

static void test_embedding(int64_t N, int64_t C, int64_t V) {
    const fqt_dtype A = BE->act_dtype;
    int32_t *tok = malloc((size_t)N * 4);
    for (int64_t i = 0; i < N; i++) tok[i] = (int32_t)(fqt_splitmix64(&rng) % (uint64_t)V);
    float *wte = rand_f(V * C, 1, false), *g = rand_f(N * C, 1, true), *dw0 = rand_f(V * C, 1, false);
    dbuf dtok = dalloc_guarded((size_t)N * 4), dwte = up(wte, V * C, FQT_DT_F32);
    BE->upload(dptr(&dtok), tok, (size_t)N * 4);
    dbuf dout = dalloc_guarded((size_t)(N * C) * fqt_dtype_size(A));
    BE->embedding_fwd(dptr(&dout), dptr(&dtok), dptr(&dwte), N, C);
    double *wd = to_d(wte, V * C), *od = malloc((size_t)(N * C) * 8);
    D->embedding_fwd(od, tok, wd, N, C);
    float *o = down(&dout, N * C, A);
    char what[96];
    snprintf(what, sizeof what, "embedding_fwd N=%lld C=%lld V=%lld", (long long)N, (long long)C, (long long)V);
    cmp_rows(what, o, od, N * C, C, 0.125, U > 1e-6 ? U : 0x1p-24); /* a copy: exact up to storage */
    check_guards(&dout, what);
    dbuf ddw = up(dw0, V * C, FQT_DT_F32), dg = up(g, N * C, A);
    BE->embedding_bwd(dptr(&ddw), dptr(&dg), dptr(&dtok), N, C);
    double *dwd = to_d(dw0, V * C), *gd = to_d(g, N * C);
    D->embedding_bwd(dwd, gd, tok, N, C);
    float *dwg = down(&ddw, V * C, FQT_DT_F32);
    snprintf(what, sizeof what, "embedding_bwd N=%lld C=%lld V=%lld", (long long)N, (long long)C, (long long)V);
    cmp_rows(what, dwg, dwd, V * C, C, (double)N, 0x1p-23);
    check_guards(&ddw, what);
    free(tok), free(wte), free(g), free(dw0), free(wd), free(od), free(o), free(dwd), free(gd), free(dwg);
    dfree(&dtok), dfree(&dwte), dfree(&dout), dfree(&ddw), dfree(&dg);
}

static void test_rope(int64_t B, int64_t T, int64_t H, int64_t HS) {
    const fqt_dtype A = BE->act_dtype;
    const int64_t n = B * T * H * HS;
    float *x = rand_f(n, 1, true);
    dbuf dx = up(x, n, A);
    BE->rope_fwd(dptr(&dx), B, T, H, HS, 10000.0f);
    double *xd = to_d(x, n);
    D->rope_fwd(xd, B, T, H, HS, 10000.0);
    float *o = down(&dx, n, A);
    char what[96];
    snprintf(what, sizeof what, "rope_fwd B=%lld T=%lld H=%lld HS=%lld", (long long)B, (long long)T, (long long)H, (long long)HS);
    /* cos/sin rounded to float before use: a few units of 2^-24 plus storage */
    cmp_rows(what, o, xd, n, HS, 4, U > 1e-6 ? U : 0x1p-21);
    check_guards(&dx, what);
    BE->rope_bwd(dptr(&dx), B, T, H, HS, 10000.0f);
    D->rope_bwd(xd, B, T, H, HS, 10000.0);
    float *o2 = down(&dx, n, A);
    snprintf(what, sizeof what, "rope_bwd B=%lld T=%lld H=%lld HS=%lld", (long long)B, (long long)T, (long long)H, (long long)HS);
    cmp_rows(what, o2, xd, n, HS, 8, U > 1e-6 ? U : 0x1p-21);
    free(x), free(xd), free(o), free(o2);
    dfree(&dx);
}

static void test_attention(int64_t B, int64_t T, int64_t NH, int64_t NKV, int64_t HS) {
    const fqt_dtype A = BE->act_dtype;
    const size_t e = fqt_dtype_size(A);
    const int64_t nq = B * T * NH * HS, nk = B * T * NKV * HS, ns = B * NH * T * 2;
    float *q = rand_f(nq, 1.2, true), *k = rand_f(nk, 1.2, true), *v = rand_f(nk, 1, true), *g = rand_f(nq, 1, true);
    dbuf dq = up(q, nq, A), dk = up(k, nk, A), dv = up(v, nk, A), dg = up(g, nq, A);
    dbuf dout = dalloc_guarded((size_t)nq * e), dst = dalloc_guarded((size_t)ns * 4);
    BE->attention_fwd(dptr(&dout), dptr(&dst), dptr(&dq), dptr(&dk), dptr(&dv), B, T, NH, NKV, HS);
    double *qd = to_d(q, nq), *kd = to_d(k, nk), *vd = to_d(v, nk), *gd = to_d(g, nq);
    double *od = malloc((size_t)nq * 8), *sd = malloc((size_t)ns * 8);
    D->attention_fwd(od, sd, qd, kd, vd, B, T, NH, NKV, HS);
    float *o = down(&dout, nq, A);
    char what[128];
    snprintf(what, sizeof what, "attention_fwd B=%lld T=%lld NH=%lld NKV=%lld HS=%lld", (long long)B,
             (long long)T, (long long)NH, (long long)NKV, (long long)HS);
    cmp_rows(what, o, od, nq, HS, (double)(HS + T), U > 1e-6 ? U : 0x1p-24);
    check_guards(&dout, what);
    check_guards(&dst, what);
    dbuf ddq = dalloc_guarded((size_t)nq * e), ddk = dalloc_guarded((size_t)nk * e), ddv = dalloc_guarded((size_t)nk * e);
    BE->attention_bwd(dptr(&ddq), dptr(&ddk), dptr(&ddv), dptr(&dg), dptr(&dout), dptr(&dst), dptr(&dq), dptr(&dk),
                      dptr(&dv), B, T, NH, NKV, HS);
    double *dqd = malloc((size_t)nq * 8), *dkd = malloc((size_t)nk * 8), *dvd = malloc((size_t)nk * 8);
    D->attention_bwd(dqd, dkd, dvd, gd, sd, qd, kd, vd, B, T, NH, NKV, HS);
    float *a = down(&ddq, nq, A), *b = down(&ddk, nk, A), *c = down(&ddv, nk, A);
    const double kb = (double)((NH / NKV) * T + HS) * 2;
    snprintf(what, sizeof what, "attention_bwd dq T=%lld HS=%lld", (long long)T, (long long)HS);
    cmp_rows(what, a, dqd, nq, HS, kb, U > 1e-6 ? U : 0x1p-24);
    check_guards(&ddq, what);
    snprintf(what, sizeof what, "attention_bwd dk T=%lld HS=%lld", (long long)T, (long long)HS);
    cmp_rows(what, b, dkd, nk, HS, kb, U > 1e-6 ? U : 0x1p-24);
    check_guards(&ddk, what);
    snprintf(what, sizeof what, "attention_bwd dv T=%lld HS=%lld", (long long)T, (long long)HS);
    cmp_rows(what, c, dvd, nk, HS, kb, U > 1e-6 ? U : 0x1p-24);
    check_guards(&ddv, what);
    free(q), free(k), free(v), free(g), free(qd), free(kd), free(vd), free(gd), free(od), free(sd), free(o);
    free(dqd), free(dkd), free(dvd), free(a), free(b), free(c);
    dfree(&dq), dfree(&dk), dfree(&dv), dfree(&dg), dfree(&dout), dfree(&dst), dfree(&ddq), dfree(&ddk), dfree(&ddv);
}

static void test_elementwise(int64_t n) {
    const fqt_dtype A = BE->act_dtype;
    const size_t e = fqt_dtype_size(A);
    float *ga = rand_f(n, 2, true), *up_ = rand_f(n, 1, true), *g = rand_f(n, 1, true);
    ga[n / 2] = NAN;
    dbuf dga = up(ga, n, A), dup_ = up(up_, n, A), dg = up(g, n, A), dout = dalloc_guarded((size_t)n * e);
    BE->swiglu_fwd(dptr(&dout), dptr(&dga), dptr(&dup_), n);
    double *gad = to_d(ga, n), *upd = to_d(up_, n), *gd = to_d(g, n), *od = malloc((size_t)n * 8);
    D->swiglu_fwd(od, gad, upd, n);
    float *o = down(&dout, n, A);
    char what[64];
    snprintf(what, sizeof what, "swiglu_fwd n=%lld (one NaN)", (long long)n);
    cmp_rows(what, o, od, n, 1, 4, U > 1e-6 ? U : 0x1p-22);
    check_guards(&dout, what);
    dbuf ddg = dalloc_guarded((size_t)n * e), ddu = dalloc_guarded((size_t)n * e);
    BE->swiglu_bwd(dptr(&ddg), dptr(&ddu), dptr(&dg), dptr(&dga), dptr(&dup_), n);
    double *dgd = malloc((size_t)n * 8), *dud = malloc((size_t)n * 8);
    D->swiglu_bwd(dgd, dud, gd, gad, upd, n);
    float *a = down(&ddg, n, A), *b = down(&ddu, n, A);
    snprintf(what, sizeof what, "swiglu_bwd dgate n=%lld", (long long)n);
    cmp_rows(what, a, dgd, n, 1, 8, U > 1e-6 ? U : 0x1p-22);
    check_guards(&ddg, what);
    snprintf(what, sizeof what, "swiglu_bwd dup n=%lld", (long long)n);
    cmp_rows(what, b, dud, n, 1, 8, U > 1e-6 ? U : 0x1p-22);
    check_guards(&ddu, what);
    /* add_inplace */
    BE->add_inplace(dptr(&dout), dptr(&dup_), n);
    for (int64_t i = 0; i < n; i++) od[i] = (double)o[i] + upd[i];
    float *o2 = down(&dout, n, A);
    snprintf(what, sizeof what, "add_inplace n=%lld", (long long)n);
    cmp_rows(what, o2, od, n, 1, 1, U > 1e-6 ? U : 0x1p-24);
    check_guards(&dout, what);
    free(ga), free(up_), free(g), free(gad), free(upd), free(gd), free(od), free(o), free(dgd), free(dud);
    free(a), free(b), free(o2);
    dfree(&dga), dfree(&dup_), dfree(&dg), dfree(&dout), dfree(&ddg), dfree(&ddu);
}

static void test_xent(int64_t N, int64_t V) {
    const fqt_dtype A = BE->act_dtype;
    float *lg = rand_f(N * V, 3, true);
    int32_t *tg = malloc((size_t)N * 4);
    for (int64_t i = 0; i < N; i++) tg[i] = i % 5 == 3 ? -1 : (int32_t)(fqt_splitmix64(&rng) % (uint64_t)V);
    dbuf dl = up(lg, N * V, A), dt = dalloc_guarded((size_t)N * 4), dlos = dalloc_guarded((size_t)N * 4);
    BE->upload(dptr(&dt), tg, (size_t)N * 4);
    const float dscale = 1.0f / (float)N;
    double got = BE->xent_fwd_bwd(dptr(&dl), dptr(&dlos), dptr(&dl), dptr(&dt), N, V, dscale);
    double *ld = to_d(lg, N * V), *los = malloc((size_t)N * 8);
    double ref = D->xent_fwd_bwd(ld, los, ld, tg, N, V, (double)dscale);
    CHECK_MSG(fabs(got - ref) <= 8 * (double)V * 0x1p-24 * fmax(1, fabs(ref)), "xent loss N=%lld V=%lld: %.9g vs %.9g",
              (long long)N, (long long)V, got, ref);
    float *dlg = down(&dl, N * V, A), *lf = down(&dlos, N, FQT_DT_F32);
    char what[64];
    snprintf(what, sizeof what, "xent dlogits N=%lld V=%lld", (long long)N, (long long)V);
    cmp_rows(what, dlg, ld, N * V, V, (double)V, U > 1e-6 ? U : 0x1p-24);
    check_guards(&dl, what);
    snprintf(what, sizeof what, "xent losses N=%lld V=%lld", (long long)N, (long long)V);
    cmp_rows(what, lf, los, N, 1, (double)V, 0x1p-24);
    check_guards(&dlos, what);
    free(lg), free(tg), free(ld), free(los), free(dlg), free(lf);
    dfree(&dl), dfree(&dt), dfree(&dlos);
}

static void test_hadamard(int64_t N, int64_t C) {
    const fqt_dtype A = BE->act_dtype;
    float *x = rand_f(N * C, 1, true);
    dbuf dx = up(x, N * C, A);
    const uint64_t seed = 77, stream = fqt_sr_stream(3, 7, 11);
    BE->hadamard16_rows(dptr(&dx), N, C, seed, stream);
    /* Reference in double from the definition: rows in blocks of 16, random signs, then H/4. */
    double *ref = to_d(x, N * C);
    for (int64_t b = 0; b + 16 <= N; b += 16) {
        double blk[16];
        for (int64_t c = 0; c < C; c++) {
            for (int i = 0; i < 16; i++) {
                double s = (fqt_sr_bits(seed, stream, (uint64_t)(b + i)) & 1u) ? -1 : 1;
                blk[i] = s * x[(b + i) * C + c];
            }
            for (int i = 0; i < 16; i++) {
                double acc = 0;
                for (int j = 0; j < 16; j++) acc += (__builtin_popcount((unsigned)(i & j)) & 1 ? -1 : 1) * blk[j];
                ref[(b + i) * C + c] = acc / 4;
            }
        }
    }
    float *o = down(&dx, N * C, A);
    char what[64];
    snprintf(what, sizeof what, "hadamard16_rows N=%lld C=%lld", (long long)N, (long long)C);
    /* per column of a block: 16 terms of size ~max|x| */
    cmp_rows(what, o, ref, N * C, N * C, 16, U > 1e-6 ? U : 0x1p-24);
    check_guards(&dx, what);
    free(x), free(ref), free(o);
    dfree(&dx);
}

/* ---- quantize, dequantize, qgemm ------------------------------------------------------------- */

/* A device-bound qtensor for [rows, cols] in f with guards around its storage. */
typedef struct {
    dbuf mem;
    fqt_qtensor q;
} dq_t;

static dq_t dq_new(const fqt_format *f, int64_t rows, int64_t cols) {
    dq_t d;
    d.mem = dalloc_guarded(fqt_backend_qtensor_bytes(f, rows, cols));
    fqt_backend_qtensor_bind(&d.q, f, rows, cols, dptr(&d.mem));
    return d;
}

static void test_quantize(const char *fmt_name, int64_t R, int64_t C) {
    fqt_format f;
    FQT_ASSERT(fqt_format_parse(fmt_name, &f) == FQT_OK);
    float *x = rand_f(R * C, 0.7, false);
    x[(R * C) / 3] *= 40; /* an outlier */
    if (R * C > 8) x[R * C - 2] = 0;
    for (int axis = 0; axis < 2; axis++)
        for (int rnd = 0; rnd < 2; rnd++) {
            const int64_t qr = axis ? C : R, qc = axis ? R : C;
            const uint64_t seed = 1234, stream = fqt_sr_stream(5, 2, 9);
            fqt_qtensor ref;
            FQT_ASSERT(fqt_qtensor_alloc(&ref, &f, qr, qc) == FQT_OK);
            fqt_qstats rs = {0}, gs = {0};
            (void)fqt_quantize(&ref, x, R, C, (fqt_axis)axis, (fqt_rounding)rnd, seed, stream, &rs);
            /* Weights are float32; activations in act storage (the same values when f32). */
            for (int src_act = 0; src_act < 2; src_act++) {
                const fqt_dtype dt = src_act ? BE->act_dtype : FQT_DT_F32;
                if (src_act && dt == FQT_DT_F32) continue;
                float *xs = malloc((size_t)(R * C) * 4);
                memcpy(xs, x, (size_t)(R * C) * 4);
                if (src_act) act_round(xs, R * C);
                fqt_qtensor ref2 = ref;
                if (src_act) {
                    FQT_ASSERT(fqt_qtensor_alloc(&ref2, &f, qr, qc) == FQT_OK);
                    (void)fqt_quantize(&ref2, xs, R, C, (fqt_axis)axis, (fqt_rounding)rnd, seed, stream, NULL);
                }
                dbuf dx = up(xs, R * C, dt);
                dq_t d = dq_new(&f, qr, qc);
                memset(&gs, 0, sizeof gs);
                BE->quantize(&d.q, dptr(&dx), dt, R, C, (fqt_axis)axis, (fqt_rounding)rnd, seed, stream,
                             src_act ? NULL : &gs, NULL);
                char what[128];
                snprintf(what, sizeof what, "quantize %s [%lld,%lld] %s %s from %s", fmt_name, (long long)R,
                         (long long)C, axis ? "cols" : "rows", rnd ? "sr" : "rne", src_act ? "act" : "f32");
                const size_t cb = fqt_qtensor_code_bytes(&ref2), sb = fqt_qtensor_scale_bytes(&ref2);
                unsigned char *codes = malloc(cb + 1), *scales = malloc(sb + 1);
                float ts;
                BE->download(codes, d.q.codes, cb);
                if (sb) BE->download(scales, d.q.scales, sb);
                BE->download(&ts, fqt_backend_qtensor_scale_slot(&d.q), 4);
                CHECK_MSG(!memcmp(codes, ref2.codes, cb), "%s: codes differ", what);
                CHECK_MSG(!sb || !memcmp(scales, ref2.scales, sb), "%s: scales differ", what);
                CHECK_MSG(check_bits_(ts) == check_bits_(ref2.tensor_scale), "%s: tensor scale %g vs %g", what,
                          (double)ts, (double)ref2.tensor_scale);
                if (!src_act)
                    CHECK_MSG(gs.n == rs.n && gs.n_saturated == rs.n_saturated && gs.n_flushed == rs.n_flushed &&
                                  gs.n_nonfinite == rs.n_nonfinite && gs.n_blocks == rs.n_blocks,
                              "%s: statistics differ (n %lld/%lld sat %lld/%lld flush %lld/%lld)", what,
                              (long long)gs.n, (long long)rs.n, (long long)gs.n_saturated, (long long)rs.n_saturated,
                              (long long)gs.n_flushed, (long long)rs.n_flushed);
                check_guards(&d.mem, what);
                /* dequantize: the host decoder of the same codes, exactly */
                dbuf dd = dalloc_guarded((size_t)(qr * qc) * 4);
                BE->dequantize(&d.q, dptr(&dd), FQT_DT_F32);
                float *got = down(&dd, qr * qc, FQT_DT_F32), *want = malloc((size_t)(qr * qc) * 4 + 4);
                fqt_dequantize(&ref2, want);
                CHECK_MSG(!memcmp(got, want, (size_t)(qr * qc) * 4), "dequantize of %s: differs", what);
                check_guards(&dd, what);
                free(got), free(want), free(codes), free(scales), free(xs);
                if (src_act) fqt_qtensor_free(&ref2);
                dfree(&dx), dfree(&d.mem), dfree(&dd);
            }
            fqt_qtensor_free(&ref);
        }
    free(x);
}

static void test_qgemm(const char *fa, const char *fb, int64_t M, int64_t N, int64_t K, float beta,
                       fqt_dtype cdt) {
    fqt_format f1, f2;
    FQT_ASSERT(fqt_format_parse(fa, &f1) == FQT_OK && fqt_format_parse(fb, &f2) == FQT_OK);
    float *a = rand_f(M * K, 1, false), *b = rand_f(N * K, 1, false), *c0 = rand_f(M * N, 1, cdt != FQT_DT_F32);
    dbuf da = up(a, M * K, FQT_DT_F32), db = up(b, N * K, FQT_DT_F32), dc = up(c0, M * N, cdt);
    dq_t qa = dq_new(&f1, M, K), qb = dq_new(&f2, N, K);
    BE->quantize(&qa.q, dptr(&da), FQT_DT_F32, M, K, FQT_AXIS_ROWS, FQT_ROUND_SR, 5, 6, NULL, NULL);
    BE->quantize(&qb.q, dptr(&db), FQT_DT_F32, N, K, FQT_AXIS_ROWS, FQT_ROUND_RNE, 5, 7, NULL, NULL);
    BE->qgemm(&qa.q, &qb.q, 1.0f, beta, dptr(&dc), cdt, N);
    /* Reference: host quantization (bit-identical, tested above), dequantized, double GEMM. */
    fqt_qtensor ha, hb;
    FQT_ASSERT(fqt_qtensor_alloc(&ha, &f1, M, K) == FQT_OK && fqt_qtensor_alloc(&hb, &f2, N, K) == FQT_OK);
    (void)fqt_quantize(&ha, a, M, K, FQT_AXIS_ROWS, FQT_ROUND_SR, 5, 6, NULL);
    (void)fqt_quantize(&hb, b, N, K, FQT_AXIS_ROWS, FQT_ROUND_RNE, 5, 7, NULL);
    float *ad = malloc((size_t)(M * K) * 4), *bd = malloc((size_t)(N * K) * 4);
    fqt_dequantize(&ha, ad);
    fqt_dequantize(&hb, bd);
    double *ref = malloc((size_t)(M * N) * 8), worst = 0;
    float *got = down(&dc, M * N, cdt);
    int64_t nan_bad = 0;
    const double g = (double)(K + 2) * 0x1p-24 / (1 - (double)(K + 2) * 0x1p-24);
    const double us = cdt == FQT_DT_F32 ? 0 : 0x1p-8;
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double s = 0, sa = 0;
            for (int64_t k = 0; k < K; k++) {
                double p = (double)ad[i * K + k] * bd[j * K + k];
                s += p;
                sa += fabs(p);
            }
            const double c = (double)c0[i * N + j];
            ref[i * N + j] = s + beta * c;
            const double tol = g * (sa + fabs(beta * c)) + us * fabs(ref[i * N + j]) + 1e-30;
            double e = fabs(got[i * N + j] - ref[i * N + j]) / tol;
            if (isnan(got[i * N + j]) != isnan(ref[i * N + j])) nan_bad++;
            else if (!isnan(e) && e > worst) worst = e;
        }
    char what[128];
    snprintf(what, sizeof what, "qgemm %s x %s M=%lld N=%lld K=%lld beta=%g C=%s", fa, fb, (long long)M, (long long)N,
             (long long)K, (double)beta, cdt == FQT_DT_F32 ? "f32" : "act");
    CHECK_MSG(worst <= 1.0 && !nan_bad, "%s: worst %.3g of gamma_K bound, %lld NaN mismatches", what, worst,
              (long long)nan_bad);
    if (getenv("FQT_BACKEND_VERBOSE")) printf("  %-44s worst %.3f of tolerance\n", what, worst);
    check_guards(&dc, what);
    fqt_qtensor_free(&ha), fqt_qtensor_free(&hb);
    free(a), free(b), free(c0), free(ad), free(bd), free(ref), free(got);
    dfree(&da), dfree(&db), dfree(&dc), dfree(&qa.mem), dfree(&qb.mem);
}

/* ---- optimizer and reductions ----------------------------------------------------------------- */

static void test_adamw(int64_t n) {
    float *w = rand_f(n, 0.1, false), *g = rand_f(n, 0.01, false), *m = rand_f(n, 0.001, false);
    float *v = rand_f(n, 0.001, false);
    for (int64_t i = 0; i < n; i++) v[i] = v[i] * v[i];
    fqt_param_segment segs[3] = {{0, n / 3, true}, {n / 3, n / 3, false}, {2 * (n / 3), n - 2 * (n / 3), true}};
    fqt_adamw_args a = {1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.19f, 0.0975f, 0.5f, segs, 3, false};
    dbuf dw = up(w, n, FQT_DT_F32), dg = up(g, n, FQT_DT_F32), dm = up(m, n, FQT_DT_F32), dv = up(v, n, FQT_DT_F32);
    /* a sub-range, as a ZeRO-1 shard would ask for */
    const int64_t lo = n / 5, hi = n - n / 7;
    CHECK(BE->adamw(dptr(&dw), dptr(&dg), dptr(&dm), dptr(&dv), lo, hi, &a) == 0);
    for (int s = 0; s < 3; s++) {
        const float wd = segs[s].decay ? a.weight_decay : 0.0f;
        for (int64_t j = segs[s].offset; j < segs[s].offset + segs[s].numel; j++) {
            if (j < lo || j >= hi) continue;
            float gj = g[j] * a.grad_scale;
            m[j] = a.beta1 * m[j] + (1.0f - a.beta1) * gj;
            v[j] = a.beta2 * v[j] + (1.0f - a.beta2) * gj * gj;
            float mh = m[j] / a.bias_corr1, vh = v[j] / a.bias_corr2;
            w[j] -= a.lr * (mh / (sqrtf(vh) + a.eps) + wd * w[j]);
        }
    }
    float *w2 = down(&dw, n, FQT_DT_F32), *m2 = down(&dm, n, FQT_DT_F32), *v2 = down(&dv, n, FQT_DT_F32);
    CHECK_MSG(!memcmp(w2, w, (size_t)n * 4) && !memcmp(m2, m, (size_t)n * 4) && !memcmp(v2, v, (size_t)n * 4),
              "adamw n=%lld: not bit-identical to the float32 formula", (long long)n);
    check_guards(&dw, "adamw w");
    check_guards(&dm, "adamw m");
    check_guards(&dv, "adamw v");
    /* dry run: a huge lr overflows some weights; nothing may be written */
    fqt_adamw_args big = a;
    big.lr = 3e38f;
    big.check_only = true;
    int64_t bad = BE->adamw(dptr(&dw), dptr(&dg), dptr(&dm), dptr(&dv), 0, n, &big);
    float *w3 = down(&dw, n, FQT_DT_F32);
    CHECK_MSG(bad > 0 && !memcmp(w3, w2, (size_t)n * 4), "adamw check_only: %lld non-finite, weights %s", (long long)bad,
              memcmp(w3, w2, (size_t)n * 4) ? "changed" : "kept");
    free(w), free(g), free(m), free(v), free(w2), free(m2), free(v2), free(w3);
    dfree(&dw), dfree(&dg), dfree(&dm), dfree(&dv);
}

static void test_reductions(int64_t n) {
    float *x = rand_f(n, 2, false), *y = rand_f(n, 2, false);
    x[n / 2] = INFINITY;
    if (n > 10) x[7] = NAN;
    dbuf dx = up(x, n, FQT_DT_F32), dy = up(y, n, FQT_DT_F32);
    const int64_t nc = (n + FQT_SUMSQ_CHUNK - 1) / FQT_SUMSQ_CHUNK;
    double *part = malloc((size_t)nc * 8 + 8);
    BE->sumsq_partials(dptr(&dy), NULL, n, part);
    int ok = 1;
    for (int64_t c = 0; c < nc; c++) {
        double s = 0;
        for (int64_t i = c * FQT_SUMSQ_CHUNK; i < n && i < (c + 1) * FQT_SUMSQ_CHUNK; i++) s += (double)y[i] * y[i];
        ok &= fabs(part[c] - s) <= 1e-13 * s;
    }
    CHECK_MSG(ok, "sumsq_partials n=%lld", (long long)n);
    BE->sumsq_partials(dptr(&dx), dptr(&dy), n, part);
    int nonfin = 0;
    for (int64_t c = 0; c < nc; c++) nonfin += !isfinite(part[c]);
    CHECK_MSG(nonfin >= 1, "sumsq_partials of x - y with Inf/NaN: non-finite partial expected");
    int64_t want = (n > 10) + 1;
    CHECK_MSG(BE->count_nonfinite(dptr(&dx), n) == want, "count_nonfinite n=%lld", (long long)n);
    CHECK(BE->count_nonfinite(dptr(&dy), n) == 0);
    free(x), free(y), free(part);
    dfree(&dx), dfree(&dy);
}

int main(void) {
    const char *name = getenv("FQT_BACKEND") ? getenv("FQT_BACKEND") : "cpu";
    BE = fqt_backend_get(name);
    if (!BE) {
        fprintf(stderr, "test_backend: backend %s: %s\n", name, fqt_last_error());
        printf("0 passed, 1 failed\n");
        return 1;
    }
    U = BE->act_dtype == FQT_DT_BF16 ? 0x1p-8 : 0x1p-24;
    printf("backend %s (activations %s)\n", BE->name, BE->act_dtype == FQT_DT_BF16 ? "bf16" : "f32");

    test_rmsnorm(7, 33, false);
    test_rmsnorm(1, 64, false);
    test_rmsnorm(9, 17, true);
    test_embedding(13, 24, 50);
    test_rope(2, 5, 3, 8);
    test_rope(1, 1, 2, 6);
    test_attention(2, 7, 4, 2, 6);
    test_attention(1, 1, 2, 1, 4);
    test_attention(2, 33, 2, 2, 16);
    test_elementwise(1001);
    test_xent(11, 37);
    test_xent(3, 1000);
    test_hadamard(37, 5);
    const char *fmts[] = {"nvfp4", "mxfp4", "mxfp8", "fp8", "fp8-w", "int4", "nf4", "bf16", "fp32",
                          "e2m1:b16x16:ue4m3:tensor"};
    for (size_t i = 0; i < sizeof fmts / sizeof fmts[0]; i++) {
        test_quantize(fmts[i], 5, 37);
        test_quantize(fmts[i], 33, 70);
        test_quantize(fmts[i], 1, 1);
    }
    test_qgemm("nvfp4", "nvfp4", 7, 5, 37, 0.0f, BE->act_dtype);
    test_qgemm("nvfp4", "nvfp4", 33, 17, 130, 1.0f, FQT_DT_F32);
    test_qgemm("mxfp4", "mxfp4", 9, 11, 64, 0.0f, BE->act_dtype);
    test_qgemm("fp8", "fp8-w", 5, 130, 200, 1.0f, FQT_DT_F32);
    test_qgemm("bf16", "bf16", 3, 4, 5, 0.0f, BE->act_dtype);
    test_qgemm("fp32", "fp32", 1, 1, 1, 1.0f, FQT_DT_F32);
    test_qgemm("int4", "nvfp4", 6, 8, 96, 0.0f, FQT_DT_F32);
    test_adamw(1000);
    test_adamw(3);
    test_reductions(10000);
    test_reductions(5);
    return check_finish();
}
