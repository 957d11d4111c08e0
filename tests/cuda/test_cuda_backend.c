/* tests/cuda/test_cuda_backend.c — the CUDA backend against the CPU reference, entry by
 * entry (built and run by `make test-cuda`, on a machine with a GPU).
 *
 * Quantize and dequantize: memcmp against fqt_quantize / fqt_dequantize for every preset and
 * some generic formats (odd blocks, 2-D tiles, E8M0 ceil), both axes, RNE and SR, awkward
 * shapes (1x1, a row, a column, odd sizes), NaN/Inf inputs, float32 and bf16 sources; the
 * bytes between and around the parts of the tensor must stay untouched (guards). GEMM
 * against fqt_qgemm with a tolerance derived from K and sum |a||b|. The other ops against
 * fqt_ops_cpu with derived tolerances (bit-identical where the operation order is the same:
 * embedding backward, add, Hadamard, AdamW). Reports max error as a fraction of the
 * tolerance. Not for: the training loop (tests/test_backend.c with FQT_BACKEND=cuda). */
#include "../check.h"

#include "cuda/cuda_backend.h"
#include "cuda/scale_layout.h"
#include "fqt/backend.h"
#include "fqt/gemm.h"
#include "fqt/ops.h"
#include "formats/codec.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>


static const fqt_backend *be;
#define GUARD 256
#define PAT 0xA5

static uint64_t rng_state = 12345;
static double urand(void) { return (double)(fqt_splitmix64(&rng_state) >> 11) * 0x1p-53; }
static float grand(void) {
    double u = urand() + 1e-12, v = urand();
    return (float)(sqrt(-2 * log(u)) * cos(6.283185307179586 * v));
}
static float *randv(int64_t n, float scale) {
    float *x = malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    for (int64_t i = 0; i < n; i++) x[i] = grand() * scale;
    return x;
}
static float bf16r(float x) { return fqt_bf16_decode(fqt_bf16_encode_rne(x)); }

/* Device buffer of n bytes with GUARD pattern bytes on both sides (and pattern inside). */
static void *dnew(size_t n) {
    uint8_t *base = be->alloc(n + 2 * GUARD);
    uint8_t *pat = malloc(n + 2 * GUARD);
    memset(pat, PAT, n + 2 * GUARD);
    be->upload(base, pat, n + 2 * GUARD);
    free(pat);
    return base + GUARD;
}
static void dfree(void *p) { be->free((uint8_t *)p - GUARD); }
static int guards_ok(void *p, size_t n) {
    uint8_t *h = malloc(n + 2 * GUARD);
    be->download(h, (uint8_t *)p - GUARD, n + 2 * GUARD);
    int ok = 1;
    for (size_t i = 0; i < GUARD; i++) ok &= h[i] == PAT && h[GUARD + n + i] == PAT;
    free(h);
    return ok;
}
static void *dup_to_dev(const void *h, size_t n) {
    void *d = dnew(n);
    be->upload(d, h, n);
    return d;
}
/* Activations: float32 host data to the backend's act storage (through convert). */
static void *act_up(const float *h, int64_t n) {
    void *tmp = dup_to_dev(h, (size_t)n * 4);
    void *d = dnew((size_t)n * fqt_dtype_size(be->act_dtype));
    be->convert(d, be->act_dtype, tmp, FQT_DT_F32, n);
    dfree(tmp);
    return d;
}
static float *act_down(const void *d, int64_t n) {
    void *tmp = dnew((size_t)n * 4);
    be->convert(tmp, FQT_DT_F32, d, be->act_dtype, n);
    float *h = malloc((size_t)(n > 0 ? n : 1) * 4);
    be->download(h, tmp, (size_t)n * 4);
    dfree(tmp);
    return h;
}
static float *f32_down(const void *d, int64_t n) {
    float *h = malloc((size_t)(n > 0 ? n : 1) * 4);
    be->download(h, d, (size_t)n * 4);
    return h;
}

/* max |got - ref| / (atol + rtol |ref|) over n; NaN must match NaN. */
static void check_close(const char *what, const float *got, const float *ref, int64_t n, double atol,
                        double rtol) {
    double worst = 0;
    int64_t at = -1;
    for (int64_t i = 0; i < n; i++) {
        if (isnan(ref[i]) || isnan(got[i])) {
            if (isnan(ref[i]) != isnan(got[i])) { worst = INFINITY; at = i; break; }
            continue;
        }
        double e = fabs((double)got[i] - (double)ref[i]) / (atol + rtol * fabs((double)ref[i]));
        if (!(e <= worst)) { worst = e; at = i; }
    }
    CHECK_MSG(worst <= 1.0, "%s: max error %.3g of the tolerance at %lld (got %.9g, ref %.9g)", what,
              worst, (long long)at, at >= 0 ? got[at] : 0.0, at >= 0 ? ref[at] : 0.0);
    if (worst > 0.25 && worst <= 1.0) printf("  note %s: max error %.3g of the tolerance\n", what, worst);
}
static void check_same(const char *what, const float *got, const float *ref, int64_t n) {
    int64_t bad = -1;
    for (int64_t i = 0; i < n && bad < 0; i++)
        if (memcmp(&got[i], &ref[i], 4)) bad = i;
    CHECK_MSG(bad < 0, "%s: first difference at %lld: %.9g vs %.9g", what, (long long)bad,
              bad >= 0 ? got[bad] : 0.0, bad >= 0 ? ref[bad] : 0.0);
}

/* ---- quantize / dequantize ----------------------------------------------------------- */
static const char *qformats[] = {"nvfp4", "mxfp4", "mxfp8", "fp8", "fp8-w", "int4", "nf4", "bf16",
                                 "fp16", "fp32", "e2m1:b16x16:ue4m3:tensor", "e2m1:b32:e8m0:ceil",
                                 "e5m2:b32:e8m0", "e2m1:b15:ue4m3", "e4m3:b7:fp32", "e2m1:b16:ue4m3",
                                 NULL};
static const int64_t qshapes[][2] = {{1, 1},   {1, 37},    {37, 1},   {33, 129}, {130, 257}, {256, 512},
                                     {3, 96},  {96, 3},    {130, 256}, {64, 384}, {128, 100}, {5, 80}};

static int stats_match(const fqt_qstats *a, const fqt_qstats *b) {
    int ok = a->n == b->n && a->n_nonfinite == b->n_nonfinite && a->n_saturated == b->n_saturated &&
             a->n_flushed == b->n_flushed && a->n_blocks == b->n_blocks &&
             a->n_zero_blocks == b->n_zero_blocks && a->scale_min == b->scale_min &&
             a->scale_max == b->scale_max;
    for (int i = 0; i < 16; i++) ok &= a->code_hist[i] == b->code_hist[i];
    /* double sums in another order: equal to rounding (or both the same infinity) */
    ok &= a->sum_sq_err == b->sum_sq_err || fabs(a->sum_sq_err - b->sum_sq_err) <= 1e-9 * fabs(b->sum_sq_err);
    ok &= a->sum_sq == b->sum_sq || fabs(a->sum_sq - b->sum_sq) <= 1e-9 * fabs(b->sum_sq);
    return ok;
}

/* Whether word is one of the comma-separated words of list (the whole list when unset). */
static bool listed(const char *list, const char *word) {
    if (!list || !*list) return true;
    const size_t n = strlen(word);
    for (const char *p = list; (p = strstr(p, word)) != NULL; p += n)
        if ((p == list || p[-1] == ',') && (p[n] == ',' || p[n] == 0)) return true;
    return false;
}

/* The expanded form (fqt_qtensor.expanded) of the CPU's tensor h: its values dequantized
 * without the tensor scale, rounded to bf16 (exact for the formats that expand). */
static uint16_t *expanded_ref(const fqt_qtensor *h) {
    const int64_t n = h->rows * h->cols;
    fqt_qtensor t = *h;
    t.tensor_scale = 1.0f;
    float *v = malloc((size_t)(n > 0 ? n : 1) * 4);
    fqt_dequantize(&t, v);
    uint16_t *e = malloc((size_t)(n > 0 ? n : 1) * 2);
    for (int64_t i = 0; i < n; i++) e[i] = fqt_bf16_rne_i(v[i]);
    free(v);
    return e;
}
static bool expands(const fqt_format *f) { return be->qgemm_expands && be->qgemm_expands(f, f); }

static void test_quantize(void) {
    int cases = 0, expanded_cases = 0, failed_before = (int)check_failed_;
    for (int fi = 0; qformats[fi]; fi++) {
        if (!listed(getenv("FQT_TEST_FORMATS"), qformats[fi])) continue; /* for racecheck's sake */
        fqt_format f;
        FQT_ASSERT(fqt_format_parse(qformats[fi], &f) == FQT_OK);
        for (size_t si = 0; si < sizeof qshapes / sizeof qshapes[0]; si++)
            for (int special = 0; special < 4; special++) {
                /* FQT_TEST_QUICK (racecheck, which is slow per launch): whole and partial tiles
                 * of the column kernels, finite and non-finite inputs */
                if (getenv("FQT_TEST_QUICK") && ((si != 3 && si != 4 && si != 9) || special > 1)) continue;
                /* special 1: NaN and +-Inf; 2 and 3: tiny tensors (amax_t < 2^-64, §5.3's
                 * x * 2^64 path; at 2^-150 the tensor scale's 2^85 cap binds and the inputs
                 * are float32 subnormals) */
                const int64_t R = qshapes[si][0], C = qshapes[si][1], n = R * C;
                float *x = malloc((size_t)n * 4);
                for (int64_t i = 0; i < n; i++)
                    x[i] = grand() * ldexpf(1.0f, (int)(urand() * 12) - 6) * (i % 97 == 5 ? 300.0f : 1.0f);
                if (n > 8) x[n / 3] = 0.0f;
                if (special == 1 && n > 3) { x[1] = NAN; x[n - 1] = INFINITY; x[n / 2] = -INFINITY; }
                if (special >= 2)
                    for (int64_t i = 0; i < n; i++) x[i] = ldexpf(x[i], special == 2 ? -100 : -150);
                if (be->act_dtype == FQT_DT_BF16)
                    for (int64_t i = 0; i < n; i++) x[i] = bf16r(x[i]);
                void *xd = act_up(x, n);
                for (int axis = 0; axis < 2; axis++)
                    for (int rd = 0; rd < 2; rd++) {
                        const int64_t qr = axis ? C : R, qc = axis ? R : C;
                        const uint64_t seed = 0x1234567890ull + (uint64_t)fi, stream = fqt_sr_stream(7, 2, (uint32_t)si);
                        fqt_qtensor hq;
                        FQT_ASSERT(fqt_qtensor_alloc(&hq, &f, qr, qc) == FQT_OK);
                        fqt_qstats hs, gs;
                        memset(&hs, 0, sizeof hs);
                        memset(&gs, 0, sizeof gs);
                        fqt_quantize(&hq, x, R, C, (fqt_axis)axis, (fqt_rounding)rd, seed, stream, &hs);
                        const size_t bytes = fqt_backend_qtensor_bytes(&f, qr, qc);
                        uint8_t *mem = dnew(bytes);
                        fqt_qtensor gq;
                        fqt_backend_qtensor_bind(&gq, &f, qr, qc, mem);
                        be->quantize(&gq, xd, be->act_dtype, R, C, (fqt_axis)axis, (fqt_rounding)rd, seed,
                                     stream, (special || si == 3) ? &gs : NULL, NULL);
                        uint8_t *h = malloc(bytes);
                        be->download(h, mem, bytes);
                        const size_t cb = fqt_qtensor_code_bytes(&hq), sb = fqt_qtensor_scale_bytes(&hq);
                        const size_t soff = (size_t)(gq.scales - gq.codes);
                        const size_t toff = (size_t)((uint8_t *)fqt_backend_qtensor_scale_slot(&gq) - gq.codes);
                        int pad_ok = 1;
                        for (size_t i = cb; i < soff; i++) pad_ok &= h[i] == PAT;
                        for (size_t i = soff + sb; i < toff; i++) pad_ok &= h[i] == PAT;
                        for (size_t i = toff + 4; i < bytes; i++) pad_ok &= h[i] == PAT;
                        float slot;
                        memcpy(&slot, h + toff, 4);
                        CHECK_MSG(!memcmp(h, hq.codes, cb), "%s [%lld,%lld] axis %d round %d special %d: codes differ",
                                  qformats[fi], (long long)R, (long long)C, axis, rd, special);
                        CHECK_MSG(!sb || !memcmp(h + soff, hq.scales, sb), "%s [%lld,%lld] axis %d round %d: scales differ",
                                  qformats[fi], (long long)R, (long long)C, axis, rd);
                        CHECK_MSG(check_bits_(slot) == check_bits_(hq.tensor_scale), "%s: tensor scale %g vs %g",
                                  qformats[fi], slot, hq.tensor_scale);
                        CHECK_MSG(pad_ok && guards_ok(mem, bytes), "%s [%lld,%lld]: write outside the parts",
                                  qformats[fi], (long long)R, (long long)C);
                        if (special || si == 3)
                            CHECK_MSG(stats_match(&gs, &hs), "%s [%lld,%lld] axis %d round %d: stats differ (n %lld/%lld nonfinite %lld/%lld sat %lld/%lld flush %lld/%lld blocks %lld/%lld zero %lld/%lld smin %g/%g smax %g/%g sse %.17g/%.17g)",
                                      qformats[fi], (long long)R, (long long)C, axis, rd, (long long)gs.n, (long long)hs.n,
                                      (long long)gs.n_nonfinite, (long long)hs.n_nonfinite, (long long)gs.n_saturated,
                                      (long long)hs.n_saturated, (long long)gs.n_flushed, (long long)hs.n_flushed,
                                      (long long)gs.n_blocks, (long long)hs.n_blocks, (long long)gs.n_zero_blocks,
                                      (long long)hs.n_zero_blocks, gs.scale_min, hs.scale_min, gs.scale_max, hs.scale_max,
                                      gs.sum_sq_err, hs.sum_sq_err);
                        /* a tensor scale taken before (fqt_backend.tensor_scale, as core/linear.c
                         * keeps it for a source's second quantization): the same bytes */
                        float *ts = NULL;
                        if (f.tensor_scale && be->tensor_scale) {
                            ts = dnew(FQT_TSCALE_FLOATS * sizeof(float));
                            be->tensor_scale(ts, xd, be->act_dtype, n, &f);
                            uint8_t *m2 = dnew(bytes), *h2 = malloc(bytes);
                            fqt_qtensor g2;
                            fqt_backend_qtensor_bind(&g2, &f, qr, qc, m2);
                            be->quantize(&g2, xd, be->act_dtype, R, C, (fqt_axis)axis, (fqt_rounding)rd, seed,
                                         stream, NULL, ts);
                            be->download(h2, m2, bytes);
                            CHECK_MSG(!memcmp(h2, h, bytes) && guards_ok(m2, bytes),
                                      "%s [%lld,%lld] axis %d round %d special %d: with the tensor scale kept: bytes differ",
                                      qformats[fi], (long long)R, (long long)C, axis, rd, special);
                            free(h2);
                            dfree(m2);
                        }
                        if (expands(&f)) {
                            /* the expanded form of the same quantization: its BF16 values, the
                             * tensor scale in the slot, the statistics, nothing written outside */
                            const size_t eb = fqt_backend_qtensor_bytes_expanded(&f, qr, qc);
                            uint8_t *em = dnew(eb);
                            fqt_qtensor eq;
                            fqt_backend_qtensor_bind_expanded(&eq, &f, qr, qc, em);
                            fqt_qstats es;
                            memset(&es, 0, sizeof es);
                            be->quantize(&eq, xd, be->act_dtype, R, C, (fqt_axis)axis, (fqt_rounding)rd, seed,
                                         stream, (special || si == 3) ? &es : NULL, rd ? ts : NULL);
                            uint16_t *want = expanded_ref(&hq), *got = malloc((size_t)n * 2 + 2);
                            be->download(got, em, (size_t)n * 2);
                            int64_t bad_e = 0;
                            for (int64_t i = 0; i < n; i++) bad_e += got[i] != want[i];
                            float eslot;
                            be->download(&eslot, fqt_backend_qtensor_scale_slot(&eq), 4);
                            CHECK_MSG(bad_e == 0 && check_bits_(eslot) == check_bits_(hq.tensor_scale),
                                      "%s [%lld,%lld] axis %d round %d special %d: expanded: %lld values differ, tensor scale %g vs %g",
                                      qformats[fi], (long long)R, (long long)C, axis, rd, special, (long long)bad_e,
                                      eslot, hq.tensor_scale);
                            CHECK_MSG(guards_ok(em, eb), "%s [%lld,%lld]: expanded: write outside", qformats[fi],
                                      (long long)R, (long long)C);
                            if (special || si == 3)
                                CHECK_MSG(stats_match(&es, &hs), "%s [%lld,%lld] axis %d round %d: expanded: stats differ",
                                          qformats[fi], (long long)R, (long long)C, axis, rd);
                            free(want);
                            free(got);
                            dfree(em);
                            expanded_cases++;
                        }
                        if (ts) dfree(ts);
                        /* dequantize: bit-identical float32 */
                        if (rd == 0) {
                            float *ref = malloc((size_t)n * 4);
                            fqt_dequantize(&hq, ref);
                            float *dd = dnew((size_t)n * 4);
                            be->dequantize(&gq, dd, FQT_DT_F32);
                            float *got = f32_down(dd, n);
                            check_same("dequantize", got, ref, n);
                            CHECK(guards_ok(dd, (size_t)n * 4));
                            /* into bf16 (what the exact GEMM path feeds cuBLASLt): the float32
                             * value rounded to nearest even, bit for bit */
                            uint16_t *db = dnew((size_t)n * 2), *hb = malloc((size_t)n * 2 + 2);
                            be->dequantize(&gq, db, FQT_DT_BF16);
                            be->download(hb, db, (size_t)n * 2);
                            int64_t bad_b = 0;
                            for (int64_t i = 0; i < n; i++) bad_b += hb[i] != fqt_bf16_rne_i(ref[i]);
                            CHECK_MSG(bad_b == 0, "%s [%lld,%lld] axis %d: %lld bf16 dequantized values differ",
                                      qformats[fi], (long long)R, (long long)C, axis, (long long)bad_b);
                            CHECK(guards_ok(db, (size_t)n * 2));
                            free(hb);
                            dfree(db);
                            free(got);
                            free(ref);
                            dfree(dd);
                        }
                        free(h);
                        dfree(mem);
                        fqt_qtensor_free(&hq);
                        cases++;
                    }
                dfree(xd);
                free(x);
            }
    }
    printf("  quantize (%s source): %d cases (%d also expanded), %d failures\n",
           be->act_dtype == FQT_DT_BF16 ? "bf16" : "f32", cases, expanded_cases, (int)check_failed_ - failed_before);
    /* the backend expands the E2M1 presets (the vector kernels' EXP form) and the others
     * staged: a listing that left them all out would make the checks above vacuous */
    fqt_format nv;
    FQT_ASSERT(fqt_format_parse("nvfp4", &nv) == FQT_OK);
    CHECK_MSG(expands(&nv), "the CUDA backend does not expand nvfp4 operands");
    /* against a partner off the BF16 path (fp32 weights, fp8 with FP32 block scales) the GEMM
     * takes the FP32 or FP8 path, which reads no expanded operand */
    fqt_format f32, f8;
    FQT_ASSERT(fqt_format_parse("fp32", &f32) == FQT_OK && fqt_format_parse("fp8", &f8) == FQT_OK);
    CHECK(!be->qgemm_expands(&nv, &f32) && !be->qgemm_expands(&nv, &f8) && !be->qgemm_expands(&f8, &nv));
}

/* ---- qgemm ------------------------------------------------------------------------------ */
/* h's expanded form (fqt_qtensor.expanded) on the device, its tensor scale in the slot. */
static void upload_expanded(const fqt_qtensor *h, fqt_qtensor *g, void **mem) {
    const size_t bytes = fqt_backend_qtensor_bytes_expanded(&h->fmt, h->rows, h->cols);
    *mem = dnew(bytes);
    fqt_backend_qtensor_bind_expanded(g, &h->fmt, h->rows, h->cols, *mem);
    uint16_t *e = expanded_ref(h);
    be->upload(g->codes, e, (size_t)(h->rows * h->cols) * 2);
    be->upload(fqt_backend_qtensor_scale_slot(g), &h->tensor_scale, 4);
    free(e);
}

/* be->qgemm(A, B) onto a device copy of c0 (c of type cdt, ld ldc): the result's bytes. */
static uint8_t *qgemm_bytes(const fqt_qtensor *ga, const fqt_qtensor *gb, float alpha, float beta, const float *c0,
                            fqt_dtype cdt, int64_t ldc, size_t *nbytes) {
    const int64_t n = ga->rows * ldc;
    const size_t es = fqt_dtype_size(cdt);
    uint8_t *h = malloc((size_t)n * es + 1);
    for (int64_t i = 0; i < n; i++) {
        if (cdt == FQT_DT_F32) memcpy(h + 4 * i, &c0[i], 4);
        else { const uint16_t b = fqt_bf16_encode_rne(c0[i]); memcpy(h + 2 * i, &b, 2); }
    }
    void *dc = dup_to_dev(h, (size_t)n * es);
    be->qgemm(ga, gb, alpha, beta, dc, cdt, ldc);
    be->download(h, dc, (size_t)n * es);
    CHECK(guards_ok(dc, (size_t)n * es));
    dfree(dc);
    *nbytes = (size_t)n * es;
    return h;
}

static void upload_q(const fqt_qtensor *h, fqt_qtensor *g, void **mem) {
    const size_t bytes = fqt_backend_qtensor_bytes(&h->fmt, h->rows, h->cols);
    *mem = dnew(bytes);
    fqt_backend_qtensor_bind(g, &h->fmt, h->rows, h->cols, *mem);
    be->upload(g->codes, h->codes, fqt_qtensor_code_bytes(h));
    if (fqt_qtensor_scale_bytes(h)) be->upload(g->scales, h->scales, fqt_qtensor_scale_bytes(h));
    be->upload(fqt_backend_qtensor_scale_slot(g), &h->tensor_scale, 4);
}

/* loose: tolerance factor for paths that do not accumulate in full FP32 (block-scaled FP8). */
/* The device copy of a plain bf16 tensor's codes transposed: element (r, c) at [c * rows + r],
 * the storage a column-major view (fqt_qtensor.colmajor) reads. */
static void *colmajor_copy(const fqt_qtensor *h) {
    const uint16_t *src = (const uint16_t *)(const void *)h->codes;
    uint16_t *t = malloc((size_t)(h->rows * h->cols) * 2 + 2);
    for (int64_t r = 0; r < h->rows; r++)
        for (int64_t c = 0; c < h->cols; c++) t[c * h->rows + r] = src[r * h->cols + c];
    void *d = dup_to_dev(t, (size_t)(h->rows * h->cols) * 2);
    free(t);
    return d;
}

/* be->qgemm(A, B) onto a device copy of c0 (ld ldc, type cdt) against the CPU's ref: the
 * largest error as a fraction of the derived tolerance (|alpha| sum |a||b| + |beta c| bounds
 * every rounding of the sum; loose > 0 replaces the float32 bound), INFINITY where a column
 * past N was touched. */
static double qgemm_error(const fqt_qtensor *ga, const fqt_qtensor *gb, float alpha, float beta, const float *c0,
                          fqt_dtype cdt, int64_t ldc, const float *ref, const float *absref, double loose) {
    const int64_t M = ga->rows, N = gb->rows, K = ga->cols;
    void *dc;
    float *got;
    if (cdt == FQT_DT_F32) {
        dc = dup_to_dev(c0, (size_t)(M * ldc) * 4);
        be->qgemm(ga, gb, alpha, beta, dc, FQT_DT_F32, ldc);
        got = f32_down(dc, M * ldc);
        CHECK(guards_ok(dc, (size_t)(M * ldc) * 4));
    } else {
        uint16_t *hb = malloc((size_t)(M * ldc) * 2);
        for (int64_t i = 0; i < M * ldc; i++) hb[i] = fqt_bf16_encode_rne(c0[i]);
        dc = dup_to_dev(hb, (size_t)(M * ldc) * 2);
        be->qgemm(ga, gb, alpha, beta, dc, FQT_DT_BF16, ldc);
        be->download(hb, dc, (size_t)(M * ldc) * 2);
        CHECK(guards_ok(dc, (size_t)(M * ldc) * 2));
        got = malloc((size_t)(M * ldc) * 4);
        for (int64_t i = 0; i < M * ldc; i++) got[i] = fqt_bf16_decode(hb[i]);
        free(hb);
    }
    double worst = 0;
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < ldc; j++) {
            const int64_t ix = i * ldc + j;
            if (j >= N) { worst = fmax(worst, got[ix] == c0[ix] ? 0 : INFINITY); continue; }
            double tol = 2.0 * (double)(K + 2) * 0x1p-24 * absref[ix] + 1e-30;
            if (loose > 0) tol = loose * absref[ix] + 1e-30;
            if (cdt == FQT_DT_BF16) tol += 0x1p-8 * fabs(ref[ix]) + 0x1p-8 * fabs(beta * c0[ix]);
            double e = fabs((double)got[ix] - ref[ix]) / tol;
            if (!(e <= worst)) worst = e;
        }
    dfree(dc);
    free(got);
    return worst;
}

/* want: the path (fqt_cuda_qg_path) that the shapes every tensor-core path takes (M, N % 16,
 * K % 128, ldc % 8) must have run, or -1; a path that silently fell back would leave its
 * tests testing another one. */
static void test_qgemm_formats(const char *const *gf, double loose, int want) {
    static const int64_t sh[][3] = {{1, 1, 1}, {7, 13, 33}, {64, 96, 128}, {33, 65, 300}, {128, 256, 1024}};
    for (int fi = 0; gf[fi]; fi++) {
        fqt_format f;
        FQT_ASSERT(fqt_format_parse(gf[fi], &f) == FQT_OK);
        for (size_t si = 0; si < sizeof sh / sizeof sh[0]; si++)
            for (int variant = 0; variant < 5; variant++) {
                const int64_t M = sh[si][0], N = sh[si][1], K = sh[si][2];
                const float alpha = 0.75f, beta = variant == 0 || variant == 3 ? 0.0f : 1.5f;
                const fqt_dtype cdt = variant == 2 || variant == 4 ? FQT_DT_BF16 : FQT_DT_F32;
                /* variants 0-2: an odd ldc (the paths that take any); 3-4: rows on 32 bytes */
                const bool aligned = variant >= 3;
                const int64_t ldc = aligned ? N + 8 - N % 8 : N + 3;
                const bool tc_shape = aligned && M % 16 == 0 && N % 16 == 0 && K % 128 == 0;
                float *a = randv(M * K, 2.0f), *b = randv(N * K, 0.5f);
                fqt_qtensor qa, qb, ga, gb;
                FQT_ASSERT(fqt_qtensor_alloc(&qa, &f, M, K) == FQT_OK);
                FQT_ASSERT(fqt_qtensor_alloc(&qb, &f, N, K) == FQT_OK);
                fqt_quantize(&qa, a, M, K, FQT_AXIS_ROWS, FQT_ROUND_RNE, 1, 1, NULL);
                fqt_quantize(&qb, b, N, K, FQT_AXIS_ROWS, FQT_ROUND_SR, 1, 2, NULL);
                float *c0 = randv(M * ldc, 1.0f);
                for (int64_t i = 0; i < M * ldc; i++) c0[i] = bf16r(c0[i]);
                float *ref = malloc((size_t)(M * ldc) * 4);
                memcpy(ref, c0, (size_t)(M * ldc) * 4);
                fqt_qgemm(&qa, &qb, alpha, beta, ref, ldc);
                /* |alpha| sum |a||b| + |beta c| bounds every rounding error of the sum. */
                float *da = malloc((size_t)(M * K) * 4), *db = malloc((size_t)(N * K) * 4);
                fqt_dequantize(&qa, da);
                fqt_dequantize(&qb, db);
                for (int64_t i = 0; i < M * K; i++) da[i] = fabsf(da[i]);
                for (int64_t i = 0; i < N * K; i++) db[i] = fabsf(db[i]);
                float *absref = malloc((size_t)(M * ldc) * 4);
                for (int64_t i = 0; i < M * ldc; i++) absref[i] = fabsf(beta * c0[i]);
                fqt_sgemm_nt(M, N, K, fabsf(alpha), da, K, db, K, 1.0f, absref, ldc);
                void *ma, *mb;
                upload_q(&qa, &ga, &ma);
                upload_q(&qb, &gb, &mb);
                /* cm 0: as quantized; plain bf16 on a backend that takes column-major views
                 * (fqt_linear_quantize's transposed operands): cm 1 A, 2 B, 3 both as views */
                const bool views = be->qgemm_colmajor_bf16 && f.elem == FQT_ELEM_BF16 && f.scale == FQT_SCALE_NONE;
                for (int cm = 0; cm < (views ? 4 : 1); cm++) {
                    void *ta = NULL, *tb = NULL;
                    fqt_qtensor va = ga, vb = gb;
                    if (cm & 1) va.codes = ta = colmajor_copy(&qa), va.colmajor = true;
                    if (cm & 2) vb.codes = tb = colmajor_copy(&qb), vb.colmajor = true;
                    const unsigned long long ran0 = want >= 0 ? fqt_cuda_qgemm_ran((fqt_cuda_qg_path)want) : 0;
                    const double worst = qgemm_error(&va, &vb, alpha, beta, c0, cdt, ldc, ref, absref, loose);
                    if (want >= 0 && tc_shape && cm == 0)
                        CHECK_MSG(fqt_cuda_qgemm_ran((fqt_cuda_qg_path)want) == ran0 + 1,
                                  "qgemm %s [%lld,%lld,%lld] ldc %lld c %s: did not take path %d", gf[fi], (long long)M,
                                  (long long)N, (long long)K, (long long)ldc, cdt ? "bf16" : "f32", want);
                    if (worst > 0.25) printf("  note qgemm %s%s [%lld,%lld,%lld]: max error %.3g of the tolerance\n", gf[fi],
                                             cm ? " (column-major views)" : "", (long long)M, (long long)N, (long long)K, worst);
                    CHECK_MSG(worst <= 1.0, "qgemm %s [%lld,%lld,%lld] beta %g c %s views %d: max error %.3g of the tolerance",
                              gf[fi], (long long)M, (long long)N, (long long)K, beta, cdt ? "bf16" : "f32", cm, worst);
                    if (ta) dfree(ta);
                    if (tb) dfree(tb);
                }
                if (expands(&f)) { /* expanded operands: the same operand values, so the same bytes */
                    void *ea, *eb;
                    fqt_qtensor xa, xb;
                    upload_expanded(&qa, &xa, &ea);
                    upload_expanded(&qb, &xb, &eb);
                    size_t nb0, nb;
                    uint8_t *r0 = qgemm_bytes(&ga, &gb, alpha, beta, c0, cdt, ldc, &nb0);
                    for (int mix = 1; mix < 4; mix++) {
                        uint8_t *r = qgemm_bytes(mix & 1 ? &xa : &ga, mix & 2 ? &xb : &gb, alpha, beta, c0, cdt, ldc, &nb);
                        CHECK_MSG(nb == nb0 && !memcmp(r, r0, nb), "qgemm %s [%lld,%lld,%lld] beta %g c %s: expanded %s differs from packed",
                                  gf[fi], (long long)M, (long long)N, (long long)K, beta, cdt ? "bf16" : "f32",
                                  mix == 1 ? "A" : mix == 2 ? "B" : "A and B");
                        free(r);
                    }
                    free(r0);
                    dfree(ea);
                    dfree(eb);
                }
                dfree(ma);
                dfree(mb);
                free(a); free(b); free(c0); free(ref); free(da); free(db); free(absref);
                fqt_qtensor_free(&qa);
                fqt_qtensor_free(&qb);
            }
    }
}

/* ---- MXFP4 on FP8 tensor cores ----------------------------------------------------------- */
/* The device expansion (cuda/mx_fp8.cu) against fqt_mx_e4m3_expand, memcmp: E4M3 codes and
 * group scales, with blocks far under their group's largest (the inexact ones), NaN and Inf
 * blocks, partial groups and widths that leave no 16-code runs. */
static void test_mx_expand(void) {
    static const char *mf[] = {"mxfp4", "e2m1:b16:e8m0", "e2m1:b128:e8m0", "e2m1:b32:e8m0:ceil", NULL};
    static const int64_t sh[][2] = {{1, 1}, {3, 37}, {5, 128}, {7, 200}, {16, 1024}, {2, 96}};
    for (int fi = 0; mf[fi]; fi++) {
        fqt_format f;
        FQT_ASSERT(fqt_format_parse(mf[fi], &f) == FQT_OK);
        for (size_t si = 0; si < sizeof sh / sizeof sh[0]; si++) {
            const int64_t R = sh[si][0], C = sh[si][1], n = R * C, ng = (C + 127) / 128;
            float *x = malloc((size_t)n * 4);
            for (int64_t i = 0; i < n; i++) /* exponents over 40 binades, so some blocks fall > 14 under */
                x[i] = grand() * ldexpf(1.0f, (int)((i / 16) * 7 % 41) - 20);
            if (n > 40) { x[n / 2] = NAN; x[n - 3] = -INFINITY; }
            fqt_qtensor hq, gq;
            FQT_ASSERT(fqt_qtensor_alloc(&hq, &f, R, C) == FQT_OK);
            fqt_quantize(&hq, x, R, C, FQT_AXIS_ROWS, FQT_ROUND_RNE, 1, 1, NULL);
            uint8_t *ref = malloc((size_t)n + 1);
            float *rs = malloc((size_t)(R * ng) * 4 + 4);
            int64_t inexact = 0;
            CHECK(fqt_mx_e4m3_expand(&hq, ref, rs, &inexact) == FQT_OK);
            void *mem;
            upload_q(&hq, &gq, &mem);
            uint8_t *de = dnew((size_t)n);
            float *ds = dnew((size_t)(R * ng) * 4);
            fqt_cuda_mx_e4m3_expand(&gq, de, ds);
            uint8_t *got = malloc((size_t)n + 1);
            float *gs = malloc((size_t)(R * ng) * 4 + 4);
            be->download(got, de, (size_t)n);
            be->download(gs, ds, (size_t)(R * ng) * 4);
            CHECK_MSG(!memcmp(got, ref, (size_t)n), "mx expand %s [%lld,%lld]: E4M3 codes differ", mf[fi],
                      (long long)R, (long long)C);
            CHECK_MSG(!memcmp(gs, rs, (size_t)(R * ng) * 4), "mx expand %s [%lld,%lld]: group scales differ",
                      mf[fi], (long long)R, (long long)C);
            CHECK(guards_ok(de, (size_t)n) && guards_ok(ds, (size_t)(R * ng) * 4));
            if (si == 4 && f.block < 128) /* (one block per group cannot be under another) */
                CHECK_MSG(inexact > 0, "mx expand %s: the data left no block inexact", mf[fi]);
            dfree(de); dfree(ds); dfree(mem);
            free(x); free(ref); free(rs); free(got); free(gs);
            fqt_qtensor_free(&hq);
        }
    }
}

static void test_qgemm(void) {
    /* fp8 and fp8-w through the FP32 path here (FQT_CUDA_FP8=fp32): exact products, FP32 sums;
     * nvfp4 and mxfp4 on the exact BF16 path on every GPU (FQT_CUDA_FP4=bf16) */
    static const char *bf[] = {"nvfp4", "nvfp4-2d", "mxfp4", "mxfp8", "bf16", NULL};
    static const char *f32p[] = {"fp8", "fp8-w", "fp32", "int4", NULL};
    setenv("FQT_CUDA_FP8", "fp32", 1);
    setenv("FQT_CUDA_FP4", "bf16", 1);
    test_qgemm_formats(bf, 0, FQT_CUDA_QG_BF16);
    test_qgemm_formats(f32p, 0, FQT_CUDA_QG_F32);
    unsetenv("FQT_CUDA_FP8");
    /* the default on Hopper: block-scaled FP8 tensor cores (fp8-w's 128x128 scales repeated per
     * row), products exact, each 128-term block accumulated with at least 2^-10 relative
     * precision (a bound, not a measurement: the note lines report it) */
    static const char *f8[] = {"fp8", "fp8-w", NULL};
    test_qgemm_formats(f8, 0x1p-10, FQT_CUDA_QG_FP8);
    /* MXFP4 on the FP8 tensor cores: the same products (the test data keep every block within
     * 14 binades of its group's largest), FP8 tensor-core sums: fp8's bound */
    static const char *mx[] = {"mxfp4", NULL};
    setenv("FQT_CUDA_MXFP4", "fp8", 1);
    test_qgemm_formats(mx, 0x1p-10, FQT_CUDA_QG_MX_FP8);
    unsetenv("FQT_CUDA_MXFP4");
    unsetenv("FQT_CUDA_FP4");
    /* Blackwell: NVFP4 and MXFP4 on the FP4 tensor cores, packed codes and tiled scales. The
     * products are exact; the bound is the FP32 one (any order of float32 sums), which an FP4
     * tensor core that accumulates in FP32 meets. */
    static const char *e2m1[] = {"nvfp4", "mxfp4", NULL};
    if (fqt_cuda_fp4_native()) test_qgemm_formats(e2m1, 0, FQT_CUDA_QG_FP4);
    else printf("  qgemm on FP4 tensor cores: not run (this GPU has compute capability < 10)\n");
}

/* The Blackwell FP4 GEMM's scale layout on the device against fqt_scales_to_tiled, memcmp,
 * padding included (runs on any GPU). */
static void test_scales_tiled(void) {
    static const int64_t sh[][2] = {{1, 1}, {16, 4}, {130, 5}, {300, 48}, {256, 192}};
    for (size_t si = 0; si < sizeof sh / sizeof sh[0]; si++) {
        const int64_t R = sh[si][0], SC = sh[si][1];
        const size_t nb = fqt_scales_tiled_bytes(R, SC);
        uint8_t *src = malloc((size_t)(R * SC)), *ref = malloc(nb), *got = malloc(nb);
        for (int64_t i = 0; i < R * SC; i++) src[i] = (uint8_t)(fqt_splitmix64(&rng_state) >> 24) | 1; /* never 0 */
        fqt_scales_to_tiled(src, R, SC, ref);
        uint8_t *ds = dup_to_dev(src, (size_t)(R * SC)), *dt = dnew(nb);
        for (size_t i = 0; i < nb; i++) got[i] = (uint8_t)~ref[i];
        be->upload(dt, got, nb); /* every byte must be written, padding too */
        fqt_cuda_scales_to_tiled(dt, ds, R, SC);
        be->download(got, dt, nb);
        CHECK_MSG(!memcmp(got, ref, nb), "scales to tiled [%lld, %lld]: device layout differs from the host's",
                  (long long)R, (long long)SC);
        CHECK(guards_ok(dt, nb));
        dfree(ds); dfree(dt);
        free(src); free(ref); free(got);
    }
}

/* ---- ops ------------------------------------------------------------------------------- */
static double tol_act(void) { return be->act_dtype == FQT_DT_BF16 ? 0x1p-7 : 0x1p-19; }

/* n: 1001 takes the kernels' one-element paths, 1024 their 8-wide vector paths */
static void test_elementwise(int64_t n) {
    float *g = randv(n, 3.0f), *u = randv(n, 1.0f), *d = randv(n, 1.0f);
    if (be->act_dtype == FQT_DT_BF16)
        for (int64_t i = 0; i < n; i++) { g[i] = bf16r(g[i]); u[i] = bf16r(u[i]); d[i] = bf16r(d[i]); }
    void *gd = act_up(g, n), *ud = act_up(u, n), *dd = act_up(d, n);
    const size_t ab = (size_t)n * fqt_dtype_size(be->act_dtype);
    void *od = dnew(ab), *o2 = dnew(ab);
    float *ref = malloc(n * 4), *ref2 = malloc(n * 4);
    fqt_ops_cpu.swiglu_fwd(ref, g, u, n);
    be->swiglu_fwd(od, gd, ud, n);
    float *got = act_down(od, n);
    check_close("swiglu_fwd", got, ref, n, 1e-30, 8 * tol_act());
    free(got);
    fqt_ops_cpu.swiglu_bwd(ref, ref2, d, g, u, n);
    be->swiglu_bwd(od, o2, dd, gd, ud, n);
    got = act_down(od, n);
    check_close("swiglu_bwd dgate", got, ref, n, 1e-30, 8 * tol_act());
    free(got);
    got = act_down(o2, n);
    check_close("swiglu_bwd dup", got, ref2, n, 1e-30, 8 * tol_act());
    free(got);
    CHECK(guards_ok(od, ab) && guards_ok(o2, ab));
    memcpy(ref, g, n * 4);
    fqt_ops_cpu.add_inplace(ref, u, n);
    be->add_inplace(gd, ud, n);
    got = act_down(gd, n);
    if (be->act_dtype == FQT_DT_F32) check_same("add_inplace", got, ref, n);
    else check_close("add_inplace", got, ref, n, 1e-30, 0x1p-7); /* half a bf16 ulp: <= 2^-8 relative */
    free(got);
    /* convert round trip */
    if (be->act_dtype == FQT_DT_F32) {
        float *x = randv(n, 1e3f);
        x[0] = NAN; x[1] = -INFINITY; x[2] = 1e-40f;
        void *xd = dup_to_dev(x, n * 4), *bd = dnew(n * 2);
        be->convert(bd, FQT_DT_BF16, xd, FQT_DT_F32, n);
        uint16_t *hb = malloc(n * 2);
        be->download(hb, bd, n * 2);
        int ok = 1;
        for (int64_t i = 0; i < n; i++) ok &= hb[i] == fqt_bf16_encode_rne(x[i]);
        CHECK_MSG(ok, "convert f32 -> bf16 differs from fqt_bf16_encode_rne");
        CHECK(guards_ok(bd, n * 2));
        free(hb); free(x); dfree(xd); dfree(bd);
    }
    dfree(gd); dfree(ud); dfree(dd); dfree(od); dfree(o2);
    free(g); free(u); free(d); free(ref); free(ref2);
}

/* C: 67 takes RMSNorm's one-element path, 264 its 8-wide path (a warp's second pass partial);
 * HS: RoPE's head size (16: fewer pairs than a warp's lanes, 128: more) */
static void test_embedding_rmsnorm_rope(int64_t C, int64_t HS) {
    const int64_t N = 37, V = 11;
    int32_t tok[37];
    for (int i = 0; i < N; i++) tok[i] = (int32_t)((i * 7 + i / 3) % V);
    float *wte = randv(V * C, 1.0f);
    if (be->act_dtype == FQT_DT_BF16) for (int64_t i = 0; i < V * C; i++) wte[i] = bf16r(wte[i]);
    int32_t *tokd = dup_to_dev(tok, sizeof tok);
    float *wted = dup_to_dev(wte, (size_t)(V * C) * 4);
    const size_t ab = (size_t)(N * C) * fqt_dtype_size(be->act_dtype);
    void *od = dnew(ab);
    float *ref = malloc((size_t)(N * C) * 4);
    fqt_ops_cpu.embedding_fwd(ref, tok, wte, N, C);
    be->embedding_fwd(od, tokd, wted, N, C);
    float *got = act_down(od, N * C);
    check_same("embedding_fwd", got, ref, N * C);
    CHECK(guards_ok(od, ab));
    free(got);
    /* backward: accumulate into a nonzero dwte */
    float *dout = randv(N * C, 1.0f);
    if (be->act_dtype == FQT_DT_BF16) for (int64_t i = 0; i < N * C; i++) dout[i] = bf16r(dout[i]);
    void *doutd = act_up(dout, N * C);
    float *dw = randv(V * C, 1.0f);
    float *dwd = dup_to_dev(dw, (size_t)(V * C) * 4);
    fqt_ops_cpu.embedding_bwd(dw, dout, tok, N, C);
    be->embedding_bwd(dwd, doutd, tokd, N, C);
    got = f32_down(dwd, V * C);
    check_same("embedding_bwd (row order, no atomics)", got, dw, V * C);
    CHECK(guards_ok(dwd, (size_t)(V * C) * 4));
    free(got);

    /* RMSNorm */
    float *x = randv(N * C, 2.0f), *w = randv(C, 1.0f);
    if (be->act_dtype == FQT_DT_BF16) for (int64_t i = 0; i < N * C; i++) x[i] = bf16r(x[i]);
    void *xd = act_up(x, N * C);
    float *wd = dup_to_dev(w, C * 4), *rstdd = dnew(N * 4);
    float *rstd = malloc(N * 4);
    fqt_ops_cpu.rmsnorm_fwd(ref, rstd, x, w, N, C, 1e-5f);
    be->rmsnorm_fwd(od, rstdd, xd, wd, N, C, 1e-5f);
    got = act_down(od, N * C);
    check_close("rmsnorm_fwd", got, ref, N * C, 1e-6, 4 * tol_act());
    free(got);
    got = f32_down(rstdd, N);
    check_close("rmsnorm_fwd rstd", got, rstd, N, 1e-30, 0x1p-22);
    free(got);
    CHECK(guards_ok(rstdd, N * 4));
    float *din = randv(N * C, 1.0f), *dwn = randv(C, 1.0f);
    if (be->act_dtype == FQT_DT_BF16) for (int64_t i = 0; i < N * C; i++) din[i] = bf16r(din[i]);
    void *dind = act_up(din, N * C);
    float *dwnd = dup_to_dev(dwn, C * 4);
    be->upload(rstdd, rstd, N * 4); /* same rstd on both sides */
    fqt_ops_cpu.rmsnorm_bwd(din, dwn, dout, x, w, rstd, N, C);
    be->rmsnorm_bwd(dind, dwnd, doutd, xd, wd, rstdd, N, C);
    got = act_down(dind, N * C);
    check_close("rmsnorm_bwd din", got, din, N * C, 1e-5, 8 * tol_act());
    free(got);
    got = f32_down(dwnd, C);
    check_close("rmsnorm_bwd dw", got, dwn, C, 1e-5, 1e-5);
    free(got);

    /* RoPE on [B=2, T=5, H=3, HS=16] */
    const int64_t B = 2, T = 5, H = 3, nr = B * T * H * HS;
    float *r = randv(nr, 1.0f);
    if (be->act_dtype == FQT_DT_BF16) for (int64_t i = 0; i < nr; i++) r[i] = bf16r(r[i]);
    void *rd = act_up(r, nr);
    fqt_ops_cpu.rope_fwd(r, B, T, H, HS, 10000.0f);
    be->rope_fwd(rd, B, T, H, HS, 10000.0f);
    got = act_down(rd, nr);
    /* bf16: each output is rounded once per pass and mixes two inputs of size ~1 */
    const double ratol = be->act_dtype == FQT_DT_BF16 ? 4 * 0x1p-8 : 1e-6;
    check_close("rope_fwd", got, r, nr, ratol, 2 * tol_act());
    free(got);
    fqt_ops_cpu.rope_bwd(r, B, T, H, HS, 10000.0f);
    be->rope_bwd(rd, B, T, H, HS, 10000.0f);
    got = act_down(rd, nr);
    check_close("rope_bwd", got, r, nr, 2 * ratol, 4 * tol_act());
    free(got);

    dfree(tokd); dfree(wted); dfree(od); dfree(doutd); dfree(dwd); dfree(xd); dfree(wd); dfree(rstdd);
    dfree(dind); dfree(dwnd); dfree(rd);
    free(wte); free(ref); free(dout); free(dw); free(x); free(w); free(rstd); free(din); free(dwn); free(r);
}

static void test_attention(void) {
    static const int64_t cfg[][5] = {{1, 1, 2, 1, 8},   {2, 7, 4, 2, 16},   {1, 33, 3, 3, 16}, {2, 64, 4, 1, 32},
                                     {1, 1, 2, 2, 64},  {2, 100, 4, 2, 64}, {1, 130, 2, 1, 128},
                                     {1, 65, 2, 1, 64}, {2, 256, 2, 2, 64}, {1, 200, 4, 2, 128}};
    for (size_t ci = 0; ci < sizeof cfg / sizeof cfg[0]; ci++) {
        const int64_t B = cfg[ci][0], T = cfg[ci][1], NH = cfg[ci][2], NKV = cfg[ci][3], HS = cfg[ci][4];
        const int64_t nq = B * T * NH * HS, nk = B * T * NKV * HS;
        float *q = randv(nq, 1.0f), *k = randv(nk, 1.0f), *v = randv(nk, 1.0f), *g = randv(nq, 1.0f);
        if (be->act_dtype == FQT_DT_BF16) {
            for (int64_t i = 0; i < nq; i++) { q[i] = bf16r(q[i]); g[i] = bf16r(g[i]); }
            for (int64_t i = 0; i < nk; i++) { k[i] = bf16r(k[i]); v[i] = bf16r(v[i]); }
        }
        float *out = malloc(nq * 4), *att = malloc((size_t)(B * NH * T * 2) * 4); /* CPU stats */
        float *dq = malloc(nq * 4), *dk = malloc(nk * 4), *dv = malloc(nk * 4);
        fqt_ops_cpu.attention_fwd(out, att, q, k, v, B, T, NH, NKV, HS);
        fqt_ops_cpu.attention_bwd(dq, dk, dv, g, att, q, k, v, B, T, NH, NKV, HS);
        void *qd = act_up(q, nq), *kd = act_up(k, nk), *vd = act_up(v, nk), *gd = act_up(g, nq);
        const size_t es = fqt_dtype_size(be->act_dtype);
        void *od = dnew(nq * es), *dqd = dnew(nq * es), *dkd = dnew(nk * es), *dvd = dnew(nk * es);
        float *st = dnew((size_t)(B * NH * T * 2) * 4);
        be->attention_fwd(od, st, qd, kd, vd, B, T, NH, NKV, HS);
        be->attention_bwd(dqd, dkd, dvd, gd, od, st, qd, kd, vd, B, T, NH, NKV, HS);
        const double tl = be->act_dtype == FQT_DT_BF16 ? 0x1p-6 : 1e-5;
        float *got = act_down(od, nq);
        check_close("attention_fwd", got, out, nq, tl, tl);
        free(got);
        /* stats [B, NH, T, 2]: row max of the scaled scores and 1 / sum exp(s - max), as the CPU */
        float *hs = f32_down(st, B * NH * T * 2);
        check_close("attention stats", hs, att, B * NH * T * 2, tl, tl);
        free(hs);
        got = act_down(dqd, nq);
        check_close("attention_bwd dq", got, dq, nq, tl, tl);
        free(got);
        got = act_down(dkd, nk);
        check_close("attention_bwd dk", got, dk, nk, tl, tl);
        free(got);
        got = act_down(dvd, nk);
        check_close("attention_bwd dv", got, dv, nk, tl, tl);
        free(got);
        CHECK(guards_ok(od, nq * es) && guards_ok(dqd, nq * es) && guards_ok(dkd, nk * es) &&
              guards_ok(dvd, nk * es) && guards_ok(st, (size_t)(B * NH * T * 2) * 4));
        { /* deterministic: a second backward writes the same bits */
            void *const outs[3] = {dqd, dkd, dvd};
            const size_t nb[3] = {nq * es, nk * es, nk * es};
            unsigned char *first[3], *again = malloc(nq * es);
            for (int o = 0; o < 3; o++) be->download(first[o] = malloc(nb[o]), outs[o], nb[o]);
            be->attention_bwd(dqd, dkd, dvd, gd, od, st, qd, kd, vd, B, T, NH, NKV, HS);
            for (int o = 0; o < 3; o++) {
                be->download(again, outs[o], nb[o]);
                CHECK_MSG(!memcmp(again, first[o], nb[o]), "attention_bwd output %d differs between two runs", o);
                free(first[o]);
            }
            free(again);
        }
        dfree(qd); dfree(kd); dfree(vd); dfree(gd); dfree(od); dfree(dqd); dfree(dkd); dfree(dvd); dfree(st);
        free(q); free(k); free(v); free(g); free(out); free(att); free(dq); free(dk); free(dv);
    }
}

static void test_xent(void) {
    /* V % 8 == 0 takes the register-cached kernel for bf16 (50304: the models' vocabulary) */
    static const int64_t cfg[][2] = {{1, 5}, {7, 1003}, {33, 4099}, {5, 1024}, {4, 50304}, {3, 8}};
    for (size_t ci = 0; ci < sizeof cfg / sizeof *cfg; ci++) {
        const int64_t N = cfg[ci][0], V = cfg[ci][1];
        float *x = randv(N * V, 3.0f);
        if (be->act_dtype == FQT_DT_BF16) for (int64_t i = 0; i < N * V; i++) x[i] = bf16r(x[i]);
        int32_t *t = malloc(N * 4);
        for (int64_t i = 0; i < N; i++) t[i] = (int32_t)((i * 31 + 3) % V);
        if (N > 2) t[1] = -1;
        float *dl = malloc((size_t)(N * V) * 4), *ls = malloc(N * 4);
        double ref = fqt_ops_cpu.xent_fwd_bwd(dl, ls, x, t, N, V, 1.0f / (float)N);
        void *xd = act_up(x, N * V);
        int32_t *td = dup_to_dev(t, N * 4);
        float *lsd = dnew(N * 4);
        double got = be->xent_fwd_bwd(xd, lsd, xd, td, N, V, 1.0f / (float)N); /* aliased */
        CHECK_MSG(fabs(got - ref) <= 1e-6 * fabs(ref) + 1e-12, "xent mean %.17g vs %.17g", got, ref);
        float *g = act_down(xd, N * V);
        check_close("xent dlogits (aliased)", g, dl, N * V, 1e-9, 8 * tol_act());
        free(g);
        g = f32_down(lsd, N);
        check_close("xent losses", g, ls, N, 1e-6, 1e-6);
        free(g);
        CHECK(guards_ok(lsd, N * 4));
        dfree(xd); dfree(td); dfree(lsd);
        free(x); free(t); free(dl); free(ls);
    }
}

static void test_hadamard_adamw_reduce(void) {
    /* Hadamard: 2 full blocks of 16 rows and a partial one */
    const int64_t N = 37, C = 19;
    float *x = randv(N * C, 1.0f);
    if (be->act_dtype == FQT_DT_BF16) for (int64_t i = 0; i < N * C; i++) x[i] = bf16r(x[i]);
    void *xd = act_up(x, N * C);
    fqt_hadamard16_rows(x, N, C, 99, 1234);
    be->hadamard16_rows(xd, N, C, 99, 1234);
    float *got = act_down(xd, N * C);
    if (be->act_dtype == FQT_DT_F32) check_same("hadamard16_rows", got, x, N * C);
    else check_close("hadamard16_rows", got, x, N * C, 1e-6, 0x1p-7);
    free(got);
    dfree(xd);
    free(x);
    if (be->act_dtype != FQT_DT_F32) return;

    /* AdamW over three segments, a sub-range */
    const int64_t n = 10007;
    float *w = randv(n, 1.0f), *g = randv(n, 0.1f), *m = randv(n, 0.01f), *v = randv(n, 0.001f);
    for (int64_t i = 0; i < n; i++) v[i] = fabsf(v[i]);
    g[5] = 0.0f;
    fqt_param_segment segs[3] = {{0, 3000, true}, {3000, 1, false}, {3001, n - 3001, true}};
    fqt_adamw_args a = {3e-4f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.19f, 0.0975f, 0.5f, segs, 3, false};
    float *wd = dup_to_dev(w, n * 4), *gd = dup_to_dev(g, n * 4), *md = dup_to_dev(m, n * 4), *vd = dup_to_dev(v, n * 4);
    const int64_t b0 = 7, e0 = n - 5;
    for (int s = 0; s < 3; s++) {
        const float wdk = segs[s].decay ? a.weight_decay : 0.0f;
        for (int64_t j = segs[s].offset; j < segs[s].offset + segs[s].numel; j++) {
            if (j < b0 || j >= e0) continue;
            float gj = g[j] * a.grad_scale;
            m[j] = a.beta1 * m[j] + (1.0f - a.beta1) * gj;
            v[j] = a.beta2 * v[j] + (1.0f - a.beta2) * gj * gj;
            float mh = m[j] / a.bias_corr1, vh = v[j] / a.bias_corr2;
            w[j] -= a.lr * (mh / (sqrtf(vh) + a.eps) + wdk * w[j]);
        }
    }
    /* the dry run writes nothing and counts the non-finite results (none here; then one NaN
     * gradient makes w, m and v of its index non-finite: 3) */
    fqt_adamw_args dry = a;
    dry.check_only = true;
    float *w_before = f32_down(wd, n);
    CHECK(be->adamw(wd, gd, md, vd, b0, e0, &dry) == 0);
    float nang = NAN;
    be->upload(gd + 100, &nang, 4);
    CHECK(be->adamw(wd, gd, md, vd, b0, e0, &dry) == 3);
    be->upload(gd + 100, &g[100], 4);
    got = f32_down(wd, n);
    check_same("adamw dry run leaves w", got, w_before, n);
    free(got);
    free(w_before);
    CHECK(be->adamw(wd, gd, md, vd, b0, e0, &a) == 0);
    got = f32_down(wd, n);
    check_same("adamw w", got, w, n);
    free(got);
    got = f32_down(md, n);
    check_same("adamw m", got, m, n);
    free(got);
    got = f32_down(vd, n);
    check_same("adamw v", got, v, n);
    free(got);
    CHECK(guards_ok(wd, n * 4) && guards_ok(md, n * 4) && guards_ok(vd, n * 4));
    /* base pointers off 16-byte alignment (a data-parallel shard's slice): by one index on
     * all four (the vector path from the next aligned index), then g by a different one (the
     * scalar path) */
    for (int k = 0; k < 2; k++) {
        const int64_t og = k ? 3 : 1, len = 1001;
        fqt_param_segment one = {0, len, true};
        fqt_adamw_args b1 = a;
        b1.segs = &one;
        b1.n_segs = 1;
        CHECK(be->adamw(wd + 1, gd + og, md + 1, vd + 1, 0, len, &b1) == 0);
        for (int64_t j = 0; j < len; j++) {
            float gj = g[og + j] * a.grad_scale;
            float *wj = &w[1 + j], *mj = &m[1 + j], *vj = &v[1 + j];
            *mj = a.beta1 * *mj + (1.0f - a.beta1) * gj;
            *vj = a.beta2 * *vj + (1.0f - a.beta2) * gj * gj;
            float mh = *mj / a.bias_corr1, vh = *vj / a.bias_corr2;
            *wj -= a.lr * (mh / (sqrtf(vh) + a.eps) + a.weight_decay * *wj);
        }
        got = f32_down(wd, n);
        check_same(k ? "adamw w (unaligned, g offset differs)" : "adamw w (unaligned base)", got, w, n);
        free(got);
        got = f32_down(vd, n);
        check_same("adamw v (unaligned)", got, v, n);
        free(got);
    }

    /* sums of squares per chunk, and non-finite counts */
    const int64_t nc = (n + FQT_SUMSQ_CHUNK - 1) / FQT_SUMSQ_CHUNK;
    double part[8], ok = 1;
    for (int withy = 0; withy < 2; withy++) {
        be->sumsq_partials(wd, withy ? gd : NULL, n, part);
        for (int64_t c = 0; c < nc; c++) {
            double s = 0;
            for (int64_t i = c * FQT_SUMSQ_CHUNK; i < n && i < (c + 1) * FQT_SUMSQ_CHUNK; i++) {
                double d = withy ? (double)w[i] - (double)g[i] : (double)w[i];
                s += d * d;
            }
            ok = ok && fabs(part[c] - s) <= 1e-12 * s;
        }
    }
    CHECK_MSG(ok, "sumsq_partials differ from the sequential double sums beyond 1e-12");
    CHECK(be->count_nonfinite(wd, n) == 0);
    float bad[3] = {NAN, INFINITY, -INFINITY};
    be->upload(wd + 17, bad, 12);
    be->upload(wd + n - 1, bad, 4);
    CHECK(be->count_nonfinite(wd, n) == 4);
    dfree(wd); dfree(gd); dfree(md); dfree(vd);
    free(w); free(g); free(m); free(v);
}

/* FQT_TEST_SECTIONS=a,b runs only the sections whose call contains one of the words (for
 * compute-sanitizer's racecheck, which is too slow for the whole suite in one device call). */
static bool section_wanted(const char *call) {
    const char *want = getenv("FQT_TEST_SECTIONS");
    if (!want || !*want) return true;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", want);
    for (char *save = NULL, *w = strtok_r(buf, ",", &save); w; w = strtok_r(NULL, ",", &save))
        if (strstr(call, w)) return true;
    return false;
}

static void run_all(fqt_dtype act) {
    be = fqt_backend_cuda_open_act(act);
    FQT_ASSERT(be);
    printf("backend %s (activations %s)\n", be->name, act == FQT_DT_BF16 ? "bf16" : "f32");
#define SECTION(call)                                                                      \
    do {                                                                                   \
        if (!section_wanted(#call)) break;                                                 \
        long f0 = check_failed_, p0 = check_passed_;                                       \
        call;                                                                              \
        printf("  %-28s %ld passed, %ld failed\n", #call, check_passed_ - p0, check_failed_ - f0); \
    } while (0)
    /* the expanded operand forms serve the BF16 GEMM path: tested on every GPU, also where
     * nvfp4 and mxfp4 GEMMs would take the FP4 tensor cores */
    setenv("FQT_CUDA_FP4", "bf16", 1);
    SECTION(test_quantize());
    setenv("FQT_CUDA_QUANT_SCALAR", "1", 1); /* the one-thread-per-block kernel where the vector one applies */
    SECTION(test_quantize());
    unsetenv("FQT_CUDA_QUANT_SCALAR");
    setenv("FQT_CUDA_QUANT_GENERIC", "1", 1); /* the staged kernels, also where the fused one applies */
    SECTION(test_quantize());
    unsetenv("FQT_CUDA_QUANT_GENERIC");
    unsetenv("FQT_CUDA_FP4");
    if (act == FQT_DT_F32) SECTION(test_qgemm());
    if (act == FQT_DT_F32) SECTION(test_mx_expand());
    if (act == FQT_DT_F32) SECTION(test_scales_tiled());
    SECTION(test_elementwise(1001));
    SECTION(test_elementwise(1024));
    SECTION(test_embedding_rmsnorm_rope(67, 16));
    SECTION(test_embedding_rmsnorm_rope(264, 128));
    SECTION(test_embedding_rmsnorm_rope(64, 6)); /* RoPE's one-pair kernel (HS % 8 != 0) */
    SECTION(test_attention()); /* bf16: the fused tensor-core kernels where HS is 64 or 128 */
    if (act == FQT_DT_BF16) {
        setenv("FQT_CUDA_ATTN", "cublas", 1); /* and the cuBLAS path for every shape */
        SECTION(test_attention());
        unsetenv("FQT_CUDA_ATTN");
    }
    SECTION(test_xent());
    SECTION(test_hadamard_adamw_reduce());
    be->sync();
}

int main(void) {
    if (!fqt_backend_cuda_open()) {
        printf("SKIP no GPU: %s\n", fqt_last_error());
        return check_finish();
    }
    const char *act = getenv("FQT_TEST_ACT"); /* f32 or bf16 alone; both when unset */
    if (!act || strcmp(act, "bf16") != 0) run_all(FQT_DT_F32);
    if (!act || strcmp(act, "f32") != 0) run_all(FQT_DT_BF16);
    return check_finish();
}
