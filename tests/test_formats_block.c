/* tests/test_formats_block.c — block-scaled tensor formats of docs/FORMATS.md §5-§7, on small
 * examples whose every code, scale and dequantized value is worked out by hand in the comments
 * (MXFP4, MXFP8, NVFP4, NVFP4 2-D tiles, fp8/int4/nf4 with FP32 scales), plus properties: the
 * packed nibble layout, partial blocks, non-finite blocks, axis = transpose, 2-D tiles giving
 * transposed-identical values, the format-name parser, and the §6 statistics.
 *
 * All quantization here is RNE (SR is test_sr.c's job). Element codecs are trusted only as far
 * as test_formats_elem.c proves them; expected values below never call the library.
 * Not for: scalar codecs or random bits. */
#include "check.h"
#include "fqt/formats.h"

#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>

static uint32_t u_of(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

static fqt_format fmt(const char *s) {
    fqt_format f;
    memset(&f, 0, sizeof f);
    fqt_status st = fqt_format_parse(s, &f);
    CHECK_MSG(st == FQT_OK, "parse \"%s\": %s", s, fqt_last_error());
    return f;
}

static unsigned nib(const fqt_qtensor *q, int64_t r, int64_t c) {
    return (q->codes[r * q->row_bytes + c / 2] >> (4 * (c & 1))) & 0xFu;
}
static unsigned code_at(const fqt_qtensor *q, int64_t r, int64_t c) {
    return fqt_elem_bits(q->fmt.elem) == 4 ? nib(q, r, c) : q->codes[r * q->row_bytes + c];
}
static float fp32_scale(const fqt_qtensor *q, int64_t i) {
    float s;
    memcpy(&s, q->scales + 4 * i, 4);
    return s;
}

/* One RNE quantization with its dequantization and statistics. */
typedef struct {
    fqt_qtensor q;
    fqt_status st;
    float *deq;
    fqt_qstats stats;
} qrun;

static qrun run(const char *name, const float *src, int64_t R, int64_t C, fqt_axis ax) {
    qrun r;
    memset(&r, 0, sizeof r);
    fqt_format f = fmt(name);
    int64_t qr = ax == FQT_AXIS_COLS ? C : R, qc = ax == FQT_AXIS_COLS ? R : C;
    CHECK(fqt_qtensor_alloc(&r.q, &f, qr, qc) == FQT_OK);
    r.st = fqt_quantize(&r.q, src, R, C, ax, FQT_ROUND_RNE, 0, 0, &r.stats);
    r.deq = malloc((size_t)(qr * qc) * sizeof *r.deq);
    fqt_dequantize(&r.q, r.deq);
    /* fqt_qdq is the same thing in one call, also in place */
    float *d2 = malloc((size_t)(R * C) * sizeof *d2);
    memcpy(d2, src, (size_t)(R * C) * sizeof *d2);
    fqt_status st2 = fqt_qdq(&f, d2, d2, R, C, ax, FQT_ROUND_RNE, 0, 0, NULL);
    int64_t bad = 0;
    for (int64_t i = 0; i < qr; i++)
        for (int64_t j = 0; j < qc; j++) {
            float a = r.deq[i * qc + j], b = ax == FQT_AXIS_COLS ? d2[j * C + i] : d2[i * C + j];
            bad += u_of(a) != u_of(b) && !(isnan(a) && isnan(b));
        }
    CHECK_MSG(bad == 0 && st2 == r.st, "%s: qdq in place differs from dequantize(quantize) at %lld",
              name, (long long)bad);
    free(d2);
    return r;
}
static void run_free(qrun *r) { fqt_qtensor_free(&r->q); free(r->deq); }

/* Checks codes and dequantized values of n elements of row r starting at column c0. */
static void expect(const char *what, const qrun *r, int64_t row, int64_t c0, int n,
                   const uint8_t *codes, const float *vals) {
    for (int k = 0; k < n; k++) {
        unsigned got = code_at(&r->q, row, c0 + k);
        CHECK_MSG(got == codes[k], "%s [%lld,%lld]: code 0x%x, want 0x%x", what, (long long)row,
                  (long long)(c0 + k), got, codes[k]);
        float d = r->deq[row * r->q.cols + c0 + k];
        CHECK_MSG(u_of(d) == u_of(vals[k]), "%s [%lld,%lld]: deq %.9g (0x%08x), want %.9g (0x%08x)",
                  what, (long long)row, (long long)(c0 + k), (double)d, u_of(d), (double)vals[k],
                  u_of(vals[k]));
    }
}

/* ---- MXFP4 (§5.2): E2M1 elements, E8M0 scale X = 2^(floor(log2 amax) - 2) ------------ */

static void test_mxfp4(void) {
    /* A: amax 6, floor(log2 6) = 2, e = 2 - 2 = 0, X = 1 (code 127): the elements are E2M1 RNE
     * of x itself: the §2.1 ties 0.25->0, 0.75->1, 1.25->1, 1.75->2, 2.5->2, 3.5->4, 5->4,
     * -0.1 -> -0 (0x8). */
    {
        float x[32] = {6, 0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5, -5, -0.1f, 0, 0.5f, -6, 4, 3, 1.5f};
        const uint8_t c[16] = {7, 0, 2, 2, 4, 4, 6, 6, 0xE, 0x8, 0, 1, 0xF, 6, 5, 3};
        const float v[16] = {6, 0, 1, 1, 2, 2, 4, 4, -4, -0.0f, 0, 0.5f, -6, 4, 3, 1.5f};
        qrun r = run("mxfp4", x, 1, 32, FQT_AXIS_ROWS);
        CHECK(r.st == FQT_OK);
        CHECK(r.q.row_bytes == 16 && r.q.scale_rows == 1 && r.q.scale_cols == 1);
        CHECK(r.q.scales[0] == 127);
        CHECK_BITS(fqt_qtensor_scale(&r.q, 0), 1.0f);
        CHECK_BITS(r.q.tensor_scale, 1.0f);
        expect("mxfp4 A", &r, 0, 0, 16, c, v);
        /* §7: element 2j in the low nibble, 2j+1 in the high one:
         * (7,0) (2,2) (4,4) (6,6) (E,8) (0,1) (F,6) (5,3) -> 0x07 0x22 0x44 0x66 0x8E 0x10 0x6F 0x35 */
        const uint8_t bytes[8] = {0x07, 0x22, 0x44, 0x66, 0x8E, 0x10, 0x6F, 0x35};
        CHECK_MSG(memcmp(r.q.codes, bytes, 8) == 0, "packed bytes %02x %02x %02x %02x %02x", r.q.codes[0],
                  r.q.codes[1], r.q.codes[2], r.q.codes[3], r.q.codes[4]);
        for (int k = 8; k < 16; k++) CHECK(r.q.codes[k] == 0);
        run_free(&r);
    }
    /* B: amax 30, floor(log2 30) = 4, e = 2, X = 4 (code 129). x / 4:
     *   30 -> 7.5 -> saturates to 6 (the floor rule clips (6X, 8X)) -> 24
     *   25 -> 6.25 -> 6 -> 24;  10 -> 2.5 tie -> 2 -> 8;  14 -> 3.5 tie -> 4 -> 16
     *   1 -> 0.25 tie -> 0 -> 0;  1.5 -> 0.375 -> 0.5 -> 2;  -30 -> -6 -> -24;  24 -> 6 -> 24 */
    {
        float x[32] = {30, 25, 10, 14, 1, 1.5f, -30, 24, 0};
        const uint8_t c[9] = {7, 7, 4, 6, 0, 1, 0xF, 7, 0};
        const float v[9] = {24, 24, 8, 16, 0, 2, -24, 24, 0};
        qrun r = run("mxfp4", x, 1, 32, FQT_AXIS_ROWS);
        CHECK(r.q.scales[0] == 129);
        CHECK_BITS(fqt_qtensor_scale(&r.q, 0), 4.0f);
        expect("mxfp4 B", &r, 0, 0, 9, c, v);
        /* §6: 30 and 25 exceed 6 after scaling (7.5, 6.25), -30 too; 24 is exactly 6: not counted.
         * 1 is flushed (x != 0, deq 0). */
        CHECK_MSG(r.stats.n_saturated == 3, "n_saturated %lld", (long long)r.stats.n_saturated);
        CHECK_MSG(r.stats.n_flushed == 1, "n_flushed %lld", (long long)r.stats.n_flushed);
        run_free(&r);
        /* :ceil: e = ceil(log2(30 / 6)) = ceil(2.32) = 3, X = 8 (code 130). x / 8:
         *   30 -> 3.75 -> 4 -> 32;  25 -> 3.125 -> 3 -> 24;  10 -> 1.25 tie -> 1 -> 8
         *   14 -> 1.75 tie -> 2 -> 16;  1 -> 0.125 -> 0;  1.5 -> 0.1875 -> 0;  -30 -> -32;  24 -> 3 -> 24 */
        const uint8_t cc[9] = {6, 5, 2, 4, 0, 0, 0xE, 5, 0};
        const float vc[9] = {32, 24, 8, 16, 0, 0, -32, 24, 0};
        r = run("e2m1:b32:e8m0:ceil", x, 1, 32, FQT_AXIS_ROWS);
        CHECK(r.q.scales[0] == 130);
        expect("mxfp4:ceil B", &r, 0, 0, 9, cc, vc);
        CHECK(r.stats.n_saturated == 0);
        run_free(&r);
    }
    /* Scale exponents at the edges of the two rules, one block per row:
     *   amax          floor rule                 ceil rule: ceil(log2(amax / 6))
     *   6             2 - 2 = 0     -> 127       log2(1) = 0            -> 127
     *   7             2 - 2 = 0     -> 127       log2(1.17) -> 1        -> 128
     *   7.9999995     0             -> 127       1                      -> 128
     *   8 (2^3)       3 - 2 = 1     -> 128       log2(1.33) -> 1        -> 128
     *   12            3 - 2 = 1     -> 128       log2(2) = 1 exactly    -> 128
     *   12 + 1 ulp    1             -> 128       just above 1 -> 2      -> 129
     *   3             1 - 2 = -1    -> 126       log2(0.5) = -1         -> 126
     *   1 (2^0)       -2            -> 125       log2(1/6) = -2.58 -> -2 -> 125 */
    {
        const float am[8] = {6, 7, 7.9999995f, 8, 12, 12.000001f, 3, 1};
        const uint8_t fl[8] = {127, 127, 127, 128, 128, 128, 126, 125};
        const uint8_t ce[8] = {127, 128, 128, 128, 128, 129, 126, 125};
        float x[8 * 4] = {0};
        for (int i = 0; i < 8; i++) { x[i * 4] = am[i]; x[i * 4 + 1] = -am[i] / 4; }
        qrun a = run("mxfp4", x, 8, 4, FQT_AXIS_ROWS), b = run("e2m1:b32:e8m0:ceil", x, 8, 4, FQT_AXIS_ROWS);
        for (int i = 0; i < 8; i++) {
            CHECK_MSG(a.q.scales[i] == fl[i], "floor amax %.9g: scale %u want %u", (double)am[i], a.q.scales[i], fl[i]);
            CHECK_MSG(b.q.scales[i] == ce[i], "ceil amax %.9g: scale %u want %u", (double)am[i], b.q.scales[i], ce[i]);
        }
        /* amax 7 with X = 1: 7 saturates to 6; with X = 2 (ceil): 3.5 tie -> 4 -> 8 */
        CHECK_BITS(a.deq[1 * 4], 6.0f);
        CHECK_BITS(b.deq[1 * 4], 8.0f);
        /* amax 8 = 2^3, X = 2: 8 / 2 = 4 exactly (code 6), -2 / 2 = -1 (code 0xA) */
        CHECK(nib(&a.q, 3, 0) == 6 && nib(&a.q, 3, 1) == 0xA);
        CHECK_BITS(a.deq[3 * 4], 8.0f);
        run_free(&a);
        run_free(&b);
    }
    /* All-zero block and subnormal amax (scale clamped at 2^-127), three rows of 8:
     *   row 0: zeros: X = 2^-127 (code 0), every element 0.
     *   row 1: {2^-127, 3*2^-130, 2^-128, -2^-129, 2^-149}: amax 2^-127, floor(log2) - 2 = -129
     *          clamps to -127, X = 2^-127; x / X = 1, 0.375, 0.5, -0.25, 2^-22 -> codes 2, 1, 1,
     *          0x8 (tie to -0), 0 -> deq 2^-127, 2^-128, 2^-128, -0, 0.
     *   row 2: {3*2^-130, 2^-131} (a subnormal amax): X = 2^-127, 0.375 -> 0.5 -> 2^-128;
     *          0.0625 -> 0. */
    {
        float x[3 * 8] = {0};
        x[8] = 0x1p-127f; x[9] = 0x1.8p-129f; x[10] = 0x1p-128f; x[11] = -0x1p-129f; x[12] = 0x1p-149f;
        x[16] = 0x1.8p-129f; x[17] = 0x1p-131f;
        qrun r = run("mxfp4", x, 3, 8, FQT_AXIS_ROWS);
        CHECK(r.st == FQT_OK);
        CHECK(r.q.scales[0] == 0 && r.q.scales[1] == 0 && r.q.scales[2] == 0);
        const uint8_t c0[8] = {0}, c1[5] = {2, 1, 1, 0x8, 0}, c2[2] = {1, 0};
        const float v0[8] = {0}, v1[5] = {0x1p-127f, 0x1p-128f, 0x1p-128f, -0.0f, 0}, v2[2] = {0x1p-128f, 0};
        expect("mxfp4 zero", &r, 0, 0, 8, c0, v0);
        expect("mxfp4 subnormal", &r, 1, 0, 5, c1, v1);
        expect("mxfp4 subnormal amax", &r, 2, 0, 2, c2, v2);
        run_free(&r);
    }
    /* A single outlier: amax 1000, floor(log2 1000) = 9, e = 7, X = 128 (code 134):
     *   1000 -> 7.8125 -> 6 -> 768;  0.3 -> 0.0023 -> 0;  -0.7 -> -0 (0x8);  64 -> 0.5 -> 64;
     *   100 -> 0.78125 -> 1 (above the 0.75 midpoint) -> 128; the 0.5s elsewhere -> 0 */
    {
        float x[32];
        for (int k = 0; k < 32; k++) x[k] = 0.5f;
        x[0] = 1000; x[1] = 0.3f; x[2] = -0.7f; x[3] = 64; x[4] = 100;
        const uint8_t c[6] = {7, 0, 0x8, 1, 2, 0};
        const float v[6] = {768, 0, -0.0f, 64, 128, 0};
        qrun r = run("mxfp4", x, 1, 32, FQT_AXIS_ROWS);
        CHECK(r.q.scales[0] == 134);
        expect("mxfp4 outlier", &r, 0, 0, 6, c, v);
        CHECK_MSG(r.stats.n_flushed == 29, "outlier flushes 0.3, -0.7 and 27 x 0.5: got %lld",
                  (long long)r.stats.n_flushed);
        run_free(&r);
    }
    /* Partial last block and row starts, [2, 37]: row_bytes 19, blocks cols 0-31 and 32-36.
     *   row 0: cols 0-31 = 1 -> amax 1, X = 2^-2 -> 4 -> code 6;
     *          cols 32-36 = {0.75, 0.5, -0.25, 0.125, 0.375}: amax 0.75, floor(log2) = -1,
     *          e = -3, X = 1/8 (code 124): x / X = 6, 4, -2, 1, 3 -> codes 7, 6, 0xC, 2, 5, exact.
     *   row 1: cols 0-31 = -3 -> amax 3, X = 1/2 (code 126) -> -6 -> 0xF; cols 32-36 zero -> code 0. */
    {
        float x[2 * 37];
        for (int k = 0; k < 37; k++) { x[k] = 1; x[37 + k] = k < 32 ? -3.0f : 0.0f; }
        x[32] = 0.75f; x[33] = 0.5f; x[34] = -0.25f; x[35] = 0.125f; x[36] = 0.375f;
        qrun r = run("mxfp4", x, 2, 37, FQT_AXIS_ROWS);
        CHECK(r.q.row_bytes == 19 && r.q.scale_cols == 2 && r.q.scale_rows == 2);
        CHECK(r.q.scales[0] == 125 && r.q.scales[1] == 124 && r.q.scales[2] == 126 && r.q.scales[3] == 0);
        const uint8_t c[5] = {7, 6, 0xC, 2, 5};
        const float v[5] = {0.75f, 0.5f, -0.25f, 0.125f, 0.375f};
        expect("mxfp4 partial", &r, 0, 32, 5, c, v);
        CHECK(r.q.codes[0] == 0x66 && r.q.codes[15] == 0x66);
        CHECK(r.q.codes[16] == 0x67 && r.q.codes[17] == 0x2C && (r.q.codes[18] & 0xF) == 5);
        CHECK(r.q.codes[19] == 0xFF && r.q.codes[34] == 0xFF && r.q.codes[35] == 0x00);
        CHECK_BITS(r.deq[37], -3.0f);
        CHECK_BITS(r.deq[37 + 36], 0.0f);
        run_free(&r);
    }
}

/* ---- non-finite inputs (§5.1) --------------------------------------------------------- */

static void test_nonfinite(void) {
    /* MXFP4 [2, 64]: row 0 block 0 holds a NaN and a -Inf, row 1 block 1 a +Inf; each of those
     * blocks gets scale 0xFF, codes 0, and decodes to NaN. Row 0 block 1 = (k % 7) - 3 in
     * -3..3: amax 3, X = 1/2 (126), x / X = 2x exact, deq = x. Row 1 block 0 = 2: X = 1/2,
     * 4 -> code 6, deq 2. */
    float x[2 * 64];
    for (int k = 0; k < 32; k++) {
        x[k] = 1.0f;
        x[32 + k] = (float)(k % 7 - 3);
        x[64 + k] = 2.0f;
        x[96 + k] = 1.0f;
    }
    x[3] = NAN; x[10] = -INFINITY; x[64 + 40] = INFINITY;
    qrun r = run("mxfp4", x, 2, 64, FQT_AXIS_ROWS);
    CHECK(r.st == FQT_ERR_NONFINITE);
    CHECK_MSG(r.q.n_nonfinite == 3, "n_nonfinite %lld", (long long)r.q.n_nonfinite);
    CHECK(r.stats.n_nonfinite == 3);
    CHECK(r.q.scales[0] == 0xFF && r.q.scales[1] == 126 && r.q.scales[2] == 126 && r.q.scales[3] == 0xFF);
    int64_t bad = 0;
    for (int k = 0; k < 32; k++) {
        bad += !isnan(r.deq[k]) || nib(&r.q, 0, k) != 0;
        bad += !isnan(r.deq[64 + 32 + k]) || nib(&r.q, 1, 32 + k) != 0;
        bad += u_of(r.deq[32 + k]) != u_of(x[32 + k]);
        bad += u_of(r.deq[64 + k]) != u_of(2.0f) || nib(&r.q, 1, k) != 6;
    }
    CHECK_MSG(bad == 0, "mxfp4 non-finite blocks: %lld wrong elements", (long long)bad);
    run_free(&r);

    /* NVFP4 [2, 32]: row 0 block 0 = {NaN, 10.5, 0...}; row 0 block 1 = {3, 1.25, ...};
     * row 1 block 0 = {Inf, 1, ...}; row 1 block 1 = {0.75, 0.3, ...}.
     * amax_t is over the finite elements of the whole tensor (§5.3), the 10.5 beside the NaN
     * included: s_enc = 2688 / 10.5 = 256, s_dec = 2^-8.
     *   row 0 block 1: sb = UE4M3((3/6) * 256) = 128 (0x70), inv = 1 / (128 * 2^-8) = 2:
     *                  3 -> 6 (7) -> (6 * 128) * 2^-8 = 3;  1.25 -> 2.5 tie -> 2 (4) -> 1
     *   row 1 block 1: sb = UE4M3((0.75/6) * 256) = 32 (0x60), inv = 8:
     *                  0.75 -> 6 (7) -> 0.75;  0.3 -> 2.4 -> 2 (4) -> 0.25 */
    float y[2 * 32] = {0};
    y[0] = NAN; y[1] = 10.5f; y[16] = 3; y[17] = 1.25f; y[32] = INFINITY; y[33] = 1; y[48] = 0.75f; y[49] = 0.3f;
    r = run("nvfp4", y, 2, 32, FQT_AXIS_ROWS);
    CHECK(r.st == FQT_ERR_NONFINITE && r.q.n_nonfinite == 2);
    CHECK_BITS(r.q.tensor_scale, 0x1p-8f);
    CHECK_MSG(r.q.scales[0] == 0x7F && r.q.scales[1] == 0x70 && r.q.scales[2] == 0x7F &&
              r.q.scales[3] == 0x60, "scales %02x %02x %02x %02x", r.q.scales[0], r.q.scales[1],
              r.q.scales[2], r.q.scales[3]);
    const uint8_t c1[2] = {7, 4}, c3[2] = {7, 4};
    const float v1[2] = {3, 1}, v3[2] = {0.75f, 0.25f};
    expect("nvfp4 beside NaN", &r, 0, 16, 2, c1, v1);
    expect("nvfp4 beside Inf", &r, 1, 16, 2, c3, v3);
    bad = 0;
    for (int k = 0; k < 16; k++) bad += !isnan(r.deq[k]) || !isnan(r.deq[32 + k]) || nib(&r.q, 0, k) || nib(&r.q, 1, k);
    CHECK_MSG(bad == 0, "nvfp4 non-finite blocks: %lld elements not NaN/code 0", (long long)bad);
    run_free(&r);

    /* fp8 (FP32 scale): the block's scale is a NaN */
    float z[4] = {1, NAN, 2, 3};
    r = run("fp8", z, 1, 4, FQT_AXIS_ROWS);
    CHECK(r.st == FQT_ERR_NONFINITE && r.q.n_nonfinite == 1);
    CHECK(isnan(fp32_scale(&r.q, 0)));
    for (int k = 0; k < 4; k++) CHECK(isnan(r.deq[k]));
    run_free(&r);
}

/* ---- NVFP4 (§5.3) ---------------------------------------------------------------------- */

static void test_nvfp4(void) {
    /* [1, 64], four blocks of 16. amax_t = 5.25: s_enc = 2688 / 5.25 = 512, s_dec = 2^-9 (exact).
     * block 0 {5.25, 0, -5.25, 2.625, 1.3125}: sb = UE4M3((5.25/6) * 512 = 0.875 * 512 = 448)
     *   = 0x7E; inv = 1 / (448 * 2^-9) = 1/0.875 = 1.14285719 (binary32);
     *   5.25 * inv = 6.0000005 -> 6 (7) -> (6 * 448) * 2^-9 = 5.25;  2.625 * inv = 3.0000002 -> 3 (5)
     *   -> 2.625;  1.3125 * inv = 1.5000001 -> 1.5 (3) -> 1.3125
     * block 1 {3, .625, .875, 1.25, 1.75, 2.5, -.125, -2.2, .1}: sb = UE4M3(0.5 * 512 = 256) = 0x78,
     *   inv = 1 / (256 * 2^-9) = 2, deq = v / 2: 6 (7), 1.25 tie -> 1 (2), 1.75 tie -> 2 (4),
     *   2.5 tie -> 2 (4), 3.5 tie -> 4 (6), 5 tie -> 4 (6), -0.25 tie -> -0 (8), -4.4 -> -4 (E),
     *   0.2 -> 0 (0)
     * block 2 {.75, .3, -.5, .0625, .03125, .4375}: sb = UE4M3(0.125 * 512 = 64) = 0x68, inv = 8,
     *   deq = v / 8: 6 (7), 2.4 -> 2 (4), -4 (E), 0.5 (1), 0.25 tie -> 0 (0), 3.5 tie -> 4 (6)
     * block 3 {3.1, 3, 1}: (3.1/6) * 512 = 264.53 -> UE4M3 rounds down to 256 (0x78; 272 is the
     *   midpoint to 288), inv = 2: 6.2 saturates to 6 (7) -> 3;  6 (7) -> 3;  2 (4) -> 1 */
    float x[64] = {0};
    const float b0[5] = {5.25f, 0, -5.25f, 2.625f, 1.3125f};
    const float b1[9] = {3, 0.625f, 0.875f, 1.25f, 1.75f, 2.5f, -0.125f, -2.2f, 0.1f};
    const float b2[6] = {0.75f, 0.3f, -0.5f, 0.0625f, 0.03125f, 0.4375f};
    const float b3[3] = {3.1f, 3, 1};
    memcpy(x, b0, sizeof b0); memcpy(x + 16, b1, sizeof b1); memcpy(x + 32, b2, sizeof b2);
    memcpy(x + 48, b3, sizeof b3);
    const uint8_t c0[5] = {7, 0, 0xF, 5, 3}, c1[9] = {7, 2, 4, 4, 6, 6, 8, 0xE, 0};
    const uint8_t c2[6] = {7, 4, 0xE, 1, 0, 6}, c3[3] = {7, 7, 4};
    const float v0[5] = {5.25f, 0, -5.25f, 2.625f, 1.3125f};
    const float v1[9] = {3, 0.5f, 1, 1, 2, 2, -0.0f, -2, 0};
    const float v2[6] = {0.75f, 0.25f, -0.5f, 0.0625f, 0, 0.5f};
    const float v3[3] = {3, 3, 1};
    CHECK_BITS(fqt_nvfp4_tensor_scale_enc(5.25f), 512.0f);
    CHECK_BITS(fqt_nvfp4_tensor_scale_enc(0.0f), 1.0f);
    CHECK_BITS(fqt_nvfp4_tensor_scale_enc(0x1p-140f), FLT_MAX); /* 2688 / 2^-140 overflows */
    qrun r = run("nvfp4", x, 1, 64, FQT_AXIS_ROWS);
    CHECK(r.st == FQT_OK);
    CHECK_BITS(r.q.tensor_scale, 0x1p-9f);
    CHECK(r.q.row_bytes == 32 && r.q.scale_cols == 4);
    CHECK_MSG(r.q.scales[0] == 0x7E && r.q.scales[1] == 0x78 && r.q.scales[2] == 0x68 &&
              r.q.scales[3] == 0x78, "scales %02x %02x %02x %02x", r.q.scales[0], r.q.scales[1],
              r.q.scales[2], r.q.scales[3]);
    expect("nvfp4 b0", &r, 0, 0, 5, c0, v0);
    expect("nvfp4 b1", &r, 0, 16, 9, c1, v1);
    expect("nvfp4 b2", &r, 0, 32, 6, c2, v2);
    expect("nvfp4 b3", &r, 0, 48, 3, c3, v3);
    /* §6 on this tensor: flushed = -0.125, 0.1 and 0.03125 (x != 0, deq 0); the block scales
     * times s_dec are 0.875, 0.5, 0.125, 0.5; the histogram counts the hand-derived codes
     * above plus code 0 for each of the zeros that fill the blocks */
    CHECK_MSG(r.stats.n_flushed == 3, "n_flushed %lld", (long long)r.stats.n_flushed);
    CHECK_BITS(r.stats.scale_min, 0.125f);
    CHECK_BITS(r.stats.scale_max, 0.875f);
    CHECK(r.stats.n == 64 && r.stats.n_blocks == 4);
    int64_t hist[16] = {0};
    const uint8_t *cs[4] = {c0, c1, c2, c3};
    const int ns[4] = {5, 9, 6, 3};
    for (int b = 0; b < 4; b++) {
        for (int k = 0; k < ns[b]; k++) hist[cs[b][k]]++;
        hist[0] += 16 - ns[b];
    }
    CHECK(memcmp(hist, r.stats.code_hist, sizeof hist) == 0);
    run_free(&r);

    /* The same blocks without :tensor (s_enc = s_dec = 1): block 1 gets sb = UE4M3(3/6) = 0.5
     * (0x30), inv = 2, the same codes; deq = v * 0.5. */
    r = run("e2m1:b16:ue4m3", x, 1, 64, FQT_AXIS_ROWS);
    CHECK_BITS(r.q.tensor_scale, 1.0f);
    CHECK(r.q.scales[1] == 0x30);
    expect("e2m1:b16:ue4m3 b1", &r, 0, 16, 9, c1, v1);
    run_free(&r);

    /* All-zero tensor: s_enc = 1, every sb = 0, all elements 0. */
    float z[32] = {0};
    r = run("nvfp4", z, 1, 32, FQT_AXIS_ROWS);
    CHECK(r.st == FQT_OK);
    CHECK_BITS(r.q.tensor_scale, 1.0f);
    CHECK(r.q.scales[0] == 0 && r.q.scales[1] == 0);
    for (int k = 0; k < 32; k++) CHECK(nib(&r.q, 0, k) == 0 && r.deq[k] == 0.0f);
    run_free(&r);

    /* Subnormal amax_t = 2^-140 < 2^-64 (§5.3, tiny tensors): the quantizer works on x * 2^64,
     * amax' = 2^-76; 2688 / 2^-76 = 2^87.4 exceeds the cap 2^85, so s_enc = 2^85, s_dec =
     * 2^-85 and the stored tensor scale is 2^-85 * 2^-64 = 2^-149 (the smallest subnormal).
     * sb = UE4M3((2^-76 / 6) * 2^85 = 512/6 = 85.33) = 88 (0x6B; 84 is the midpoint to 80),
     * inv = 1 / (88 * 2^-85): 2^-76 -> 512/88 = 5.82 -> 6 (7); -2^-77 -> -2.91 -> -3 (0xD).
     * Dequantized (6 * 88) * 2^-149 = 528 * 2^-149 and -264 * 2^-149: the block is no longer
     * flushed to zero (the old clamp s_enc = FLT_MAX made it so). */
    z[0] = 0x1p-140f; z[1] = -0x1p-141f;
    r = run("nvfp4", z, 1, 32, FQT_AXIS_ROWS);
    CHECK(r.st == FQT_OK);
    CHECK_BITS(r.q.tensor_scale, 0x1p-149f);
    CHECK_MSG(r.q.scales[0] == 0x6B, "scale %02x", r.q.scales[0]);
    CHECK(nib(&r.q, 0, 0) == 7 && nib(&r.q, 0, 1) == 0xD);
    CHECK_BITS(r.deq[0], 528 * 0x1p-149f);
    CHECK_BITS(r.deq[1], -264 * 0x1p-149f);
    run_free(&r);

    /* 2-D tiles (nvfp4-2d), W [32, 16]: tile 0 = rows 0-15, tile 1 = rows 16-31, one scale each.
     * amax_t = 5.25 (W[20][7]) -> s_enc 512. Tile 0 amax 0.75 (W[3][5]) -> 0x68, inv 8:
     * 0.75 -> 6 (7). Tile 1 amax 5.25 -> 0x7E, inv = 1.14285719: W[17][0] = 2.625 -> 3 (5) ->
     * 2.625; W[30][15] = 0.3 -> 0.34 -> 0.5 (1) -> (0.5 * 448) * 2^-9 = 0.4375. With 1-D blocks
     * row 30 would have had its own scale and kept 0.3 nearly exact. */
    float w[32 * 16] = {0};
    w[3 * 16 + 5] = 0.75f; w[20 * 16 + 7] = 5.25f; w[17 * 16 + 0] = 2.625f; w[30 * 16 + 15] = 0.3f;
    r = run("nvfp4-2d", w, 32, 16, FQT_AXIS_ROWS);
    CHECK(r.q.scale_rows == 2 && r.q.scale_cols == 1);
    CHECK(r.q.scales[0] == 0x68 && r.q.scales[1] == 0x7E);
    CHECK(nib(&r.q, 3, 5) == 7 && nib(&r.q, 20, 7) == 7 && nib(&r.q, 17, 0) == 5 && nib(&r.q, 30, 15) == 1);
    CHECK_BITS(r.deq[3 * 16 + 5], 0.75f);
    CHECK_BITS(r.deq[17 * 16], 2.625f);
    CHECK_BITS(r.deq[30 * 16 + 15], 0.4375f);
    run_free(&r);
}

/* ---- MXFP8 and the FP32-scaled formats (§5.2, §5.4) ------------------------------------ */

static void test_mxfp8_fp32_scaled(void) {
    /* MXFP8: amax 1000, floor(log2 1000) = 9, e = 9 - 8 = 1, X = 2 (128): 1000 / 2 = 500 ->
     * saturates to 448 (0x7E) -> 896;  3 / 2 = 1.5 (0x3C) -> 3.
     * Row 1: amax 2^-120 -> -120 - 8 = -128, clamped to -127 (code 0): x / X = 128 = 2^7 (0x70)
     * -> 2^-120 exactly. */
    {
        float x[2 * 4] = {1000, 3, 0, 0, 0x1p-120f, 0, 0, 0};
        qrun r = run("mxfp8", x, 2, 4, FQT_AXIS_ROWS);
        CHECK(r.q.row_bytes == 4 && r.q.scales[0] == 128 && r.q.scales[1] == 0);
        const uint8_t c[2] = {0x7E, 0x3C}, cb[1] = {0x70};
        const float v[2] = {896, 3}, vb[1] = {0x1p-120f};
        expect("mxfp8", &r, 0, 0, 2, c, v);
        expect("mxfp8 clamp", &r, 1, 0, 1, cb, vb);
        run_free(&r);
    }
    /* fp8 [1, 130], blocks of 128 and 2. Block 0: amax 896, scale = 896 / 448 = 2:
     *   896 -> 448 (0x7E) -> 896;  2.125 -> 1.0625 tie -> 1 (0x38) -> 2;  3 -> 1.5 (0x3C) -> 3;
     *   -0.001 -> -0.0005, below half of 2^-9 -> -0 (0x80).
     * Block 1 {-1000, 1}: scale s = 1000 / 448 = 2.23214293 (binary32); -1000 / s = -448.0 (to
     *   within an ulp) -> 0xFE -> -448 * s;  1 / s = 0.448 -> 0.4375 (0x2E; 0.46875 is 0x2F) -> 0.4375 * s */
    {
        float x[130] = {896, 2.125f, 3, -0.001f};
        x[128] = -1000; x[129] = 1;
        qrun r = run("fp8", x, 1, 130, FQT_AXIS_ROWS);
        CHECK(r.q.row_bytes == 130 && r.q.scale_cols == 2);
        volatile float s = 1000.0f, d448 = 448.0f;
        s = s / d448;
        CHECK_BITS(fp32_scale(&r.q, 0), 2.0f);
        CHECK_BITS(fp32_scale(&r.q, 1), (float)s);
        const uint8_t c[4] = {0x7E, 0x38, 0x3C, 0x80}, cb[2] = {0xFE, 0x2E};
        const float v[4] = {896, 2, 3, -0.0f};
        const float vb[2] = {-448.0f * s, 0.4375f * s};
        expect("fp8 b0", &r, 0, 0, 4, c, v);
        expect("fp8 b1", &r, 0, 128, 2, cb, vb);
        CHECK(fqt_qtensor_bytes(&r.q) == 130 + 2 * 4);
        run_free(&r);
    }
    /* int4 [1, 32]: amax 14, scale 14 / 7 = 2: 14 -> 7;  5 -> 2.5 tie -> 2;  7 -> 3.5 tie -> 4;
     * -3 -> -1.5 tie -> -2 (0xE);  1 -> 0.5 tie -> 0;  -14 -> -7 (0x9);  13 -> 6.5 tie -> 6 */
    {
        float x[32] = {14, 5, 7, -3, 1, -14, 0, 13};
        qrun r = run("int4", x, 1, 32, FQT_AXIS_ROWS);
        CHECK_BITS(fp32_scale(&r.q, 0), 2.0f);
        const uint8_t c[8] = {7, 2, 4, 0xE, 0, 9, 0, 6};
        const float v[8] = {14, 4, 8, -4, 0, -14, 0, 12};
        expect("int4", &r, 0, 0, 8, c, v);
        run_free(&r);
    }
    /* nf4 [1, 64]: absmax 2, scale 2: x / 2 = 1 -> 0xF;  -1 -> 0x0;  0.25 -> 0xA (0.2461, the
     * midpoint to 0.3379 is 0.292);  0 -> 0x7;  -0.1 -> 0x6 (-0.0911; midpoint to -0.1848 is
     * -0.1379);  0.8 -> 0xE (0.7230; midpoint to 1 is 0.8615). deq = table value * 2. */
    {
        float x[64] = {2, -2, 0.5f, 0, -0.2f, 1.6f};
        qrun r = run("nf4", x, 1, 64, FQT_AXIS_ROWS);
        CHECK_BITS(fp32_scale(&r.q, 0), 2.0f);
        const uint8_t c[6] = {0xF, 0x0, 0xA, 0x7, 0x6, 0xE};
        const float v[6] = {2, -2, 2 * 0.24611230194568634f, 0, 2 * -0.09105003625154495f,
                            2 * 0.7229568362236023f};
        expect("nf4", &r, 0, 0, 6, c, v);
        run_free(&r);
    }
    /* unscaled: fp32 is the identity, bf16/fp16 round each element */
    {
        float x[6] = {1.0f, 0.1f, -3.3e38f, 1e-40f, 70000.0f, -0.0f};
        qrun a = run("fp32", x, 2, 3, FQT_AXIS_ROWS), b = run("bf16", x, 2, 3, FQT_AXIS_ROWS),
             h = run("fp16", x, 2, 3, FQT_AXIS_ROWS);
        CHECK(a.q.row_bytes == 12 && b.q.row_bytes == 6 && h.q.row_bytes == 6);
        for (int k = 0; k < 6; k++) {
            CHECK_BITS(a.deq[k], x[k]);
            CHECK_BITS(b.deq[k], fqt_bf16_decode(fqt_bf16_encode_rne(x[k])));
            CHECK_BITS(h.deq[k], fqt_fp16_decode(fqt_fp16_encode_rne(x[k])));
        }
        CHECK(fqt_format_is_identity(&a.q.fmt) && !fqt_format_is_identity(&b.q.fmt));
        run_free(&a); run_free(&b); run_free(&h);
    }
}

/* ---- axis (§5.6) --------------------------------------------------------------------- */

static void test_axis(void) {
    const int64_t R = 40, C = 70; /* neither a multiple of 16, 32, 64 or 128 */
    float *x = malloc((size_t)(R * C) * sizeof *x), *xt = malloc((size_t)(R * C) * sizeof *xt);
    uint64_t s = 12345;
    for (int64_t i = 0; i < R * C; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x[i] = (float)((double)(int32_t)(s >> 32) * 0x1p-29); /* in [-4, 4) */
    }
    for (int64_t k = 0; k < 10; k++) x[k * C + 3] = 0; /* a column with a zero run */
    x[7 * C + 50] *= 300;                              /* an outlier */
    for (int64_t i = 0; i < R; i++)
        for (int64_t j = 0; j < C; j++) xt[j * R + i] = x[i * C + j];
    const char *names[] = {"nvfp4", "nvfp4-2d", "mxfp4", "mxfp8", "fp8", "fp8-w", "int4", "nf4",
                           "e2m1:b32:e8m0:ceil", "e5m2:b32:e8m0", "e4m3:b4x8:fp32", "bf16", "fp16", "fp32"};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        qrun a = run(names[k], x, R, C, FQT_AXIS_COLS), b = run(names[k], xt, C, R, FQT_AXIS_ROWS);
        size_t cb = (size_t)(a.q.rows * a.q.row_bytes);
        size_t sb = (size_t)(a.q.scale_rows * a.q.scale_cols) * (a.q.fmt.scale == FQT_SCALE_FP32 ? 4 : 1);
        CHECK_MSG(a.q.rows == C && a.q.cols == R && memcmp(a.q.codes, b.q.codes, cb) == 0 &&
                  (sb == 0 || memcmp(a.q.scales, b.q.scales, sb) == 0) &&
                  u_of(a.q.tensor_scale) == u_of(b.q.tensor_scale),
                  "%s: AXIS_COLS is not ROWS of the transpose", names[k]);
        run_free(&a);
        run_free(&b);
    }
    /* 2-D tiles: along rows and along columns the same values, transposed (and the scales) */
    const char *tiled[] = {"nvfp4-2d", "fp8-w", "e4m3:b4x8:fp32", "e2m1:b16x16:e8m0"};
    for (size_t k = 0; k < sizeof tiled / sizeof tiled[0]; k++) {
        fqt_format f = fmt(tiled[k]);
        if (f.block != f.block_rows) continue; /* only square tiles are transpose-invariant */
        qrun a = run(tiled[k], x, R, C, FQT_AXIS_ROWS), b = run(tiled[k], x, R, C, FQT_AXIS_COLS);
        int64_t bad = 0;
        for (int64_t i = 0; i < R; i++)
            for (int64_t j = 0; j < C; j++) bad += u_of(a.deq[i * C + j]) != u_of(b.deq[j * R + i]);
        for (int64_t i = 0; i < a.q.scale_rows; i++)
            for (int64_t j = 0; j < a.q.scale_cols; j++) {
                int64_t ia = i * a.q.scale_cols + j, ib = j * b.q.scale_cols + i;
                bad += a.q.fmt.scale == FQT_SCALE_FP32
                           ? memcmp(a.q.scales + 4 * ia, b.q.scales + 4 * ib, 4) != 0
                           : a.q.scales[ia] != b.q.scales[ib];
            }
        CHECK_MSG(bad == 0, "%s: rows and cols differ in %lld places", tiled[k], (long long)bad);
        run_free(&a);
        run_free(&b);
    }
    free(x);
    free(xt);
}

/* ---- §6 diagnostics ----------------------------------------------------------------- */

static void test_stats(void) {
    /* mxfp4 [1, 8] (one partial block): amax 7, floor(log2 7) = 2, X = 1.
     *   x    6   7    0.25   1.25   0.1   -3   0   2.5
     *   code 7   7    0      2      0     D    0   4
     *   deq  6   6    0      1      0     -3   0   2
     *   err  0   -1   -.25   -.25   -.1   0    0   -.5
     * sum err^2 = 1 + 0.0625 + 0.0625 + 0.1f^2 + 0.25 = 1.375 + 0.1f^2
     * sum x^2 = 36 + 49 + 0.0625 + 1.5625 + 0.1f^2 + 9 + 6.25 = 101.875 + 0.1f^2
     * MSE = sum err^2 / 8;  SNR = 10 log10(sum x^2 / sum err^2) = 18.67 dB
     * saturated: 7 (7 > 6);  flushed: 0.25 and 0.1;  histogram: 0 x3, 2 x1, 4 x1, 7 x2, D x1 */
    float x[8] = {6, 7, 0.25f, 1.25f, 0.1f, -3, 0, 2.5f};
    qrun r = run("mxfp4", x, 1, 8, FQT_AXIS_ROWS);
    double p = (double)0.1f * (double)0.1f;
    double se = 1.375 + p, sx = 101.875 + p;
    const fqt_qstats *s = &r.stats;
    CHECK(s->n == 8 && s->n_nonfinite == 0);
    CHECK_MSG(s->n_saturated == 1, "n_saturated %lld", (long long)s->n_saturated);
    CHECK_MSG(s->n_flushed == 2, "n_flushed %lld", (long long)s->n_flushed);
    CHECK_MSG(fabs(s->sum_sq_err - se) <= 1e-12 * se, "sum_sq_err %.17g want %.17g", s->sum_sq_err, se);
    CHECK_MSG(fabs(s->sum_sq - sx) <= 1e-12 * sx, "sum_sq %.17g want %.17g", s->sum_sq, sx);
    CHECK_MSG(fabs(fqt_qstats_mse(s) - se / 8) <= 1e-12, "mse %.17g", fqt_qstats_mse(s));
    double snr = 10 * log10(sx / se);
    CHECK_MSG(fabs(fqt_qstats_snr_db(s) - snr) <= 1e-9, "snr %.12g want %.12g", fqt_qstats_snr_db(s), snr);
    const int64_t hist[16] = {3, 0, 1, 0, 1, 0, 0, 2, 0, 0, 0, 0, 0, 1, 0, 0};
    CHECK(memcmp(hist, s->code_hist, sizeof hist) == 0);
    CHECK_BITS(s->scale_min, 1.0f);
    CHECK_BITS(s->scale_max, 1.0f);
    CHECK(s->n_blocks == 1);
    /* merge adds counts and widens the scale range; exact input gives +inf SNR */
    fqt_qstats m;
    memset(&m, 0, sizeof m);
    fqt_qstats_merge(&m, s);
    fqt_qstats_merge(&m, s);
    CHECK(m.n == 16 && m.n_saturated == 2 && m.n_flushed == 4 && m.code_hist[7] == 4);
    CHECK(fabs(m.sum_sq_err - 2 * se) <= 1e-12 * se);
    run_free(&r);
    float e[4] = {1, 2, 3, 4};
    r = run("fp32", e, 1, 4, FQT_AXIS_ROWS);
    CHECK(isinf(fqt_qstats_snr_db(&r.stats)) && fqt_qstats_snr_db(&r.stats) > 0);
    run_free(&r);
}

/* ---- names (§5.7) -------------------------------------------------------------------- */

typedef struct {
    const char *name;
    fqt_elem elem;
    fqt_scale_type scale;
    int32_t block, block_rows;
    bool tensor, ceil_;
} preset;

static void test_parse(void) {
    const preset ps[] = {
        {"nvfp4", FQT_ELEM_E2M1, FQT_SCALE_UE4M3, 16, 1, true, false},
        {"nvfp4-2d", FQT_ELEM_E2M1, FQT_SCALE_UE4M3, 16, 16, true, false},
        {"mxfp4", FQT_ELEM_E2M1, FQT_SCALE_E8M0, 32, 1, false, false},
        {"mxfp8", FQT_ELEM_E4M3, FQT_SCALE_E8M0, 32, 1, false, false},
        {"fp8", FQT_ELEM_E4M3, FQT_SCALE_FP32, 128, 1, false, false},
        {"fp8-w", FQT_ELEM_E4M3, FQT_SCALE_FP32, 128, 128, false, false},
        {"int4", FQT_ELEM_INT4, FQT_SCALE_FP32, 32, 1, false, false},
        {"nf4", FQT_ELEM_NF4, FQT_SCALE_FP32, 64, 1, false, false},
        {"e2m1:b16:ue4m3:tensor", FQT_ELEM_E2M1, FQT_SCALE_UE4M3, 16, 1, true, false},
        {"e2m1:b16x16:ue4m3:tensor", FQT_ELEM_E2M1, FQT_SCALE_UE4M3, 16, 16, true, false},
        {"e2m1:b32:e8m0:ceil", FQT_ELEM_E2M1, FQT_SCALE_E8M0, 32, 1, false, true},
        {"e4m3:b2x64:fp32", FQT_ELEM_E4M3, FQT_SCALE_FP32, 64, 2, false, false},
        {"e5m2:b32:e8m0", FQT_ELEM_E5M2, FQT_SCALE_E8M0, 32, 1, false, false},
        {"nf4:b64:fp32", FQT_ELEM_NF4, FQT_SCALE_FP32, 64, 1, false, false},
        {"int4:b16:e8m0", FQT_ELEM_INT4, FQT_SCALE_E8M0, 16, 1, false, false},
        {"e2m1:b16:ue4m3", FQT_ELEM_E2M1, FQT_SCALE_UE4M3, 16, 1, false, false},
    };
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) {
        fqt_format f = fmt(ps[i].name);
        CHECK_MSG(f.elem == ps[i].elem && f.scale == ps[i].scale && f.block == ps[i].block &&
                  f.block_rows == ps[i].block_rows && f.tensor_scale == ps[i].tensor &&
                  f.scale_ceil == ps[i].ceil_,
                  "%s: elem %d scale %d block %d x %d tensor %d ceil %d", ps[i].name, f.elem,
                  f.scale, f.block, f.block_rows, f.tensor_scale, f.scale_ceil);
        /* the canonical name parses back to the same format */
        char buf[128];
        fqt_format g = fmt(fqt_format_name(&f, buf, sizeof buf));
        CHECK_MSG(fqt_format_equal(&f, &g), "%s -> \"%s\" does not round-trip", ps[i].name, buf);
    }
    char buf[128];
    fqt_format f = fmt("e2m1:b16:ue4m3:tensor");
    CHECK(strcmp(fqt_format_name(&f, buf, sizeof buf), "nvfp4") == 0);
    CHECK(fqt_format_equal(&f, &(fqt_format){0}) == false);
    fqt_format a = fmt("fp8-w"), b = fmt("e4m3:b128x128:fp32");
    CHECK(fqt_format_equal(&a, &b));
    const char *unscaled[3] = {"bf16", "fp16", "fp32"};
    const fqt_elem ue[3] = {FQT_ELEM_BF16, FQT_ELEM_FP16, FQT_ELEM_FP32};
    for (int i = 0; i < 3; i++) {
        f = fmt(unscaled[i]);
        CHECK_MSG(f.elem == ue[i] && f.scale == FQT_SCALE_NONE && f.block == 0 && !f.tensor_scale,
                  "%s", unscaled[i]);
    }
    /* the preset list names every §5.7 preset */
    const char *want[] = {"nvfp4", "nvfp4-2d", "mxfp4", "mxfp8", "fp8", "fp8-w", "int4", "nf4",
                          "bf16", "fp16", "fp32"};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        bool found = false;
        for (int k = 0; fqt_format_presets[k]; k++) found |= strcmp(fqt_format_presets[k], want[i]) == 0;
        CHECK_MSG(found, "fqt_format_presets lacks %s", want[i]);
    }
    const char *bad[] = {"", "fp4", "nvfp5", "mxfp6", "e2m1", "e2m1:b16", "e2m1:b0:e8m0",
                         "e2m1:bx:e8m0", "e2m1:b-16:e8m0", "e2m1:16:e8m0", "e3m2:b16:e8m0",
                         "e2m1:b16:e9m0", "e2m1:b16:e8m0:tensor", "e2m1:b16:fp32:tensor",
                         "e2m1:b16:ue4m3:ceil", "e2m1:b16:fp32:ceil", "e2m1:b16:e8m0:foo",
                         "e2m1:b16x:e8m0", "e2m1:b16:e8m0:", "e2m1::b16:e8m0", ":e2m1:b16:e8m0",
                         "nvfp4:tensor", "bf16:b16:fp32"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        fqt_format g;
        fqt_set_error("%s", "");
        fqt_status st = fqt_format_parse(bad[i], &g);
        const char *msg = fqt_last_error();
        CHECK_MSG(st == FQT_ERR_ARG, "\"%s\" parsed (status %d)", bad[i], st);
        CHECK_MSG(strstr(msg, "nvfp4") && strstr(msg, "mxfp4") && strstr(msg, "fp8-w") &&
                  strstr(msg, "nf4") && strstr(msg, "bf16"),
                  "\"%s\": message does not list the valid names: %s", bad[i], msg);
    }
}

/* ---- storage (§7) ------------------------------------------------------------------- */

static void test_alloc(void) {
    struct { const char *f; int64_t r, c, rb, sr, sc, bytes; } t[] = {
        {"nvfp4", 3, 37, 19, 3, 3, 3 * 19 + 9},
        {"nvfp4-2d", 40, 48, 24, 3, 3, 40 * 24 + 9},
        {"mxfp4", 1, 1, 1, 1, 1, 2},
        {"fp8", 2, 130, 130, 2, 2, 260 + 16},
        {"fp8-w", 130, 129, 129, 2, 2, 130 * 129 + 16},
        {"int4", 5, 33, 17, 5, 2, 85 + 40},
        {"bf16", 2, 5, 10, 0, 0, 20},
        {"fp32", 2, 5, 20, 0, 0, 40},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        fqt_format f = fmt(t[i].f);
        fqt_qtensor q;
        CHECK(fqt_qtensor_alloc(&q, &f, t[i].r, t[i].c) == FQT_OK);
        CHECK_MSG(q.rows == t[i].r && q.cols == t[i].c && q.row_bytes == t[i].rb,
                  "%s [%lld,%lld]: row_bytes %lld", t[i].f, (long long)t[i].r, (long long)t[i].c,
                  (long long)q.row_bytes);
        if (f.block) {
            CHECK_MSG(q.scale_rows == t[i].sr && q.scale_cols == t[i].sc &&
                      fqt_qtensor_bytes(&q) == (size_t)t[i].bytes,
                      "%s: scales %lld x %lld, %zu bytes", t[i].f, (long long)q.scale_rows,
                      (long long)q.scale_cols, fqt_qtensor_bytes(&q));
        } else {
            CHECK_MSG(fqt_qtensor_bytes(&q) == (size_t)t[i].bytes, "%s: %zu bytes", t[i].f,
                      fqt_qtensor_bytes(&q));
        }
        fqt_qtensor_free(&q);
    }
}

int main(void) {
    test_parse();
    test_alloc();
    test_mxfp4();
    test_nonfinite();
    test_nvfp4();
    test_mxfp8_fp32_scaled();
    test_axis();
    test_stats();
    return check_finish();
}
