/* tests/test_formats_elem.c — bit-exact tests of the scalar codecs of docs/FORMATS.md §2 (element
 * types) and §3 (scale types): every code of every 4- and 8-bit type decodes to the value the spec
 * defines, and every float32 bit pattern encodes to the nearest grid value (ties to even,
 * saturation, signed zero, the NaN/Inf policy of each type).
 *
 * This is an independent oracle: the decode tables and formulas are transcribed from the spec,
 * and the encode oracle searches the sorted grid of decoded magnitudes in double precision,
 * deciding each input by comparing it with the exact midpoint of its two neighbours. It shares
 * no bit manipulation with src/formats. E2M1 and E4M3 RNE are checked on all 2^32 inputs
 * (a strided subset under FQT_SANITIZE, so sanitizer runs stay short); the other encoders on a
 * dense stride plus a list of boundary values (grid points, midpoints, their neighbours,
 * powers of two, extremes, NaN payloads) that every run checks in full.
 *
 * Not for: block quantizers (test_formats_block.c), stochastic rounding (test_sr.c). */
#include "check.h"
#include "fqt/formats.h"

#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#ifdef _OPENMP
#include <omp.h>
#define OMP_SWEEP _Pragma("omp parallel for reduction(+ : bad) schedule(dynamic)")
#define OMP_CRITICAL _Pragma("omp critical(elem_report)")
#else
#define OMP_SWEEP
#define OMP_CRITICAL
#endif

/* Full sweeps are the point of this file; sanitizers slow each call ~10x, so they get every
 * 4099th pattern for E2M1/E4M3 and every 65537th for the rest (both odd, so every exponent and
 * every low mantissa bit appears), plus the whole boundary list. */
#ifdef FQT_SANITIZE
#define FULL_STRIDE 4099u
#define DENSE_STRIDE 65537u
#else
#define FULL_STRIDE 1u
#define DENSE_STRIDE 61u
#endif

static float f_of(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static uint32_t u_of(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* ---- value tables straight from the spec ------------------------------------------ */

/* §2.1: codes 0x0-0x7 */
static const float E2M1_MAG[8] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};

/* §2.5, code order ascending */
static const float NF4_TAB[16] = {
    -1.0f,                 -0.6961928009986877f,  -0.5250730514526367f, -0.39491748809814453f,
    -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
    0.07958029955625534f,  0.16093020141124725f,  0.24611230194568634f, 0.33791524171829224f,
    0.44070982933044434f,  0.5626170039176941f,   0.7229568362236023f,  1.0f};

/* §2.2: s eeee mmm, bias 7, exponent 0 subnormal m*2^-9, 0x7F/0xFF NaN. */
static double e4m3_value(unsigned c) {
    unsigned e = (c >> 3) & 15, m = c & 7;
    double mag = e == 0 ? ldexp((double)m, -9) : ldexp(1.0 + m / 8.0, (int)e - 7);
    return (c & 0x80) ? -mag : mag;
}

/* §2.3: s eeeee mm, bias 15, subnormal m*2^-16, exponent 31: Inf (m == 0) or NaN. */
static double e5m2_value(unsigned c) {
    unsigned e = (c >> 2) & 31, m = c & 3;
    double mag;
    if (e == 31) mag = m == 0 ? INFINITY : NAN;
    else mag = e == 0 ? ldexp((double)m, -16) : ldexp(1.0 + m / 4.0, (int)e - 15);
    return (c & 0x80) ? -mag : mag;
}

/* IEEE binary16: bias 15, subnormal m*2^-24. */
static double fp16_value(unsigned c) {
    unsigned e = (c >> 10) & 31, m = c & 1023;
    double mag;
    if (e == 31) mag = m == 0 ? INFINITY : NAN;
    else mag = e == 0 ? ldexp((double)m, -24) : ldexp(1.0 + m / 1024.0, (int)e - 15);
    return (c & 0x8000) ? -mag : mag;
}

/* ---- the encode oracle: nearest magnitude on a sorted grid ------------------------- */

typedef struct {
    int64_t n;
    double *mag;     /* ascending magnitudes */
    uint32_t *code;  /* code of each magnitude */
} grid;

static void grid_init(grid *g, int64_t n) {
    g->n = n;
    g->mag = malloc((size_t)n * sizeof *g->mag);
    g->code = malloc((size_t)n * sizeof *g->code);
}
static void grid_free(grid *g) { free(g->mag); free(g->code); }

/* Code of the grid magnitude nearest to a >= 0; exact ties go to the even code; a at or above
 * the last magnitude gives the last code (callers put saturation or the overflow stand-in
 * there). Midpoints of neighbouring grid values are exact in double.
 * *hint is the bracket found for the previous input: a sweep in bit-pattern order visits
 * magnitudes in ascending order, so the bracket is usually the same or the next one, and only
 * otherwise does this fall back to a binary search. That keeps 2^32 inputs fast. */
static uint32_t grid_nearest(const grid *g, double a, int64_t *hint) {
    if (a >= g->mag[g->n - 1]) return g->code[g->n - 1];
    int64_t lo = *hint;
    if (lo >= 0 && lo < g->n - 1 && g->mag[lo] <= a && a < g->mag[lo + 1]) {
        /* same bracket as last time */
    } else if (lo >= 0 && lo + 2 < g->n && g->mag[lo + 1] <= a && a < g->mag[lo + 2]) {
        lo++;
    } else {
        int64_t hi = g->n - 1; /* invariant: mag[lo] <= a < mag[hi] */
        lo = 0;
        while (hi - lo > 1) {
            int64_t mid = lo + (hi - lo) / 2;
            if (g->mag[mid] <= a) lo = mid; else hi = mid;
        }
    }
    *hint = lo;
    double m = 0.5 * (g->mag[lo] + g->mag[lo + 1]);
    if (a < m) return g->code[lo];
    if (a > m) return g->code[lo + 1];
    return (g->code[lo] & 1) ? g->code[lo + 1] : g->code[lo];
}

static grid G_E2M1, G_E4M3, G_E5M2, G_FP16, G_INT4;

static void grids_build(void) {
    grid_init(&G_E2M1, 8);
    for (int i = 0; i < 8; i++) { G_E2M1.mag[i] = E2M1_MAG[i]; G_E2M1.code[i] = (uint32_t)i; }
    /* E4M3: all finite magnitudes 0x00..0x7E. Anything above 448 saturates to 0x7E (§2.2),
     * which grid_nearest does by construction. */
    grid_init(&G_E4M3, 0x7F);
    for (unsigned c = 0; c < 0x7F; c++) { G_E4M3.mag[c] = e4m3_value(c); G_E4M3.code[c] = c; }
    /* E5M2 and FP16: IEEE overflow is rounding with an unbounded exponent, so the code of Inf
     * (even) stands at the next power of two: 65536 for both. */
    grid_init(&G_E5M2, 0x7D);
    for (unsigned c = 0; c < 0x7C; c++) { G_E5M2.mag[c] = e5m2_value(c); G_E5M2.code[c] = c; }
    G_E5M2.mag[0x7C] = 65536.0; G_E5M2.code[0x7C] = 0x7C;
    grid_init(&G_FP16, 0x7C01);
    for (unsigned c = 0; c < 0x7C00; c++) { G_FP16.mag[c] = fp16_value(c); G_FP16.code[c] = c; }
    G_FP16.mag[0x7C00] = 65536.0; G_FP16.code[0x7C00] = 0x7C00;
    grid_init(&G_INT4, 8);
    for (int i = 0; i < 8; i++) { G_INT4.mag[i] = i; G_INT4.code[i] = (uint32_t)i; }
}

/* ---- per-format checkers: run the implementation and the oracle on x --------------- */

/* hint: the caller's grid_nearest bracket, carried from one input to the next */
typedef bool (*check_fn)(float x, uint32_t *got, uint32_t *want, int64_t *hint);

static bool chk_e2m1(float x, uint32_t *got, uint32_t *want, int64_t *hint) {
    uint32_t s = signbit(x) ? 8u : 0u;
    if (isnan(x)) *want = 0;                             /* §2.1: NaN -> 0x0 */
    else if (isinf(x)) *want = s | 7;                    /* saturate to +-6 */
    else *want = s | grid_nearest(&G_E2M1, fabs((double)x), hint);
    *got = fqt_e2m1_encode_rne(x);
    return *got == *want;
}

static bool chk_e4m3(float x, uint32_t *got, uint32_t *want, int64_t *hint) {
    uint32_t s = signbit(x) ? 0x80u : 0u;
    if (!isfinite(x)) *want = s | 0x7F;                  /* §2.2: Inf and NaN -> NaN, sign kept */
    else *want = s | grid_nearest(&G_E4M3, fabs((double)x), hint);
    *got = fqt_e4m3_encode_rne(x);
    return *got == *want;
}

static bool chk_e5m2(float x, uint32_t *got, uint32_t *want, int64_t *hint) {
    uint32_t s = signbit(x) ? 0x80u : 0u;
    if (isnan(x)) *want = s | 0x7E;                      /* §2.3 */
    else if (isinf(x)) *want = s | 0x7C;
    else *want = s | grid_nearest(&G_E5M2, fabs((double)x), hint);
    *got = fqt_e5m2_encode_rne(x);
    return *got == *want;
}

static bool chk_int4(float x, uint32_t *got, uint32_t *want, int64_t *hint) {
    if (isnan(x)) {
        *want = 0;                                       /* §2.4 */
    } else {
        /* nearest integer in 0..7 by magnitude (even code == even integer), then the sign;
         * the nibble is the two's-complement of the signed value */
        int k = (int)grid_nearest(&G_INT4, fabs((double)x), hint);
        int v = signbit(x) ? -k : k;
        *want = (uint32_t)v & 0xFu;
    }
    *got = fqt_int4_encode_rne(x);
    return *got == *want;
}

static bool chk_nf4(float x, uint32_t *got, uint32_t *want, int64_t *hint) {
    if (isnan(x)) *want = 7;                             /* §2.5 */
    else if (x <= NF4_TAB[0]) *want = 0;
    else if (x >= NF4_TAB[15]) *want = 15;
    else {
        int i = 0;
        while (!(NF4_TAB[i] <= x && x < NF4_TAB[i + 1])) i++;
        double m = 0.5 * ((double)NF4_TAB[i] + (double)NF4_TAB[i + 1]);
        /* exact ties go to the lower code */
        *want = (double)x <= m ? (uint32_t)i : (uint32_t)i + 1;
    }
    *got = fqt_nf4_encode_rne(x);
    return *got == *want;
}

static bool chk_bf16(float x, uint32_t *got, uint32_t *want, int64_t *hint) {
    uint32_t s = signbit(x) ? 0x8000u : 0u;
    *got = fqt_bf16_encode_rne(x);
    if (isnan(x)) {
        /* §2.6: NaN stays NaN with the quiet bit set and the sign kept; the payload is free */
        *want = s | 0x7FC0;
        return (*got & 0x7F80) == 0x7F80 && (*got & 0x0040) && (*got & 0x8000) == s;
    }
    if (isinf(x)) *want = s | 0x7F80;
    else {
        /* bf16 values are the floats with 16 zero low bits: bracket |x| between the one below
         * (low bits cleared) and the next one up; overflow has the unbounded-exponent stand-in
         * 2^128 for Inf's even code 0x7F80 */
        uint32_t lo = (u_of(x) & 0x7FFFFFFFu) >> 16, hi = lo + 1;
        double a = fabs((double)x), vlo = f_of(lo << 16);
        double vhi = hi == 0x7F80 ? ldexp(1.0, 128) : (double)f_of(hi << 16);
        double m = 0.5 * (vlo + vhi);
        uint32_t c = a < m ? lo : a > m ? hi : (lo & 1) ? hi : lo;
        *want = s | c;
    }
    return *got == *want;
}

static bool chk_fp16(float x, uint32_t *got, uint32_t *want, int64_t *hint) {
    uint32_t s = signbit(x) ? 0x8000u : 0u;
    *got = fqt_fp16_encode_rne(x);
    if (isnan(x)) {
        *want = s | 0x7E00; /* §2.6 "NaN kept": any NaN pattern is accepted */
        return (*got & 0x7C00) == 0x7C00 && (*got & 0x03FF) != 0 && *got <= 0xFFFF;
    }
    if (isinf(x)) *want = s | 0x7C00;
    else *want = s | grid_nearest(&G_FP16, fabs((double)x), hint);
    return *got == *want;
}

static bool chk_e8m0(float x, uint32_t *got, uint32_t *want, int64_t *hint) {
    if (x == 0.0f) *want = 0;                            /* §3.1: 0 (and -0) -> 2^-127 */
    else if (!isfinite(x) || x < 0.0f) *want = 0xFF;
    else {
        int e;
        frexp((double)x, &e);                            /* x = m * 2^e, m in [0.5, 1) */
        int fl = e - 1;                                  /* floor(log2 x), exact */
        if (fl < -127) fl = -127;
        if (fl > 127) fl = 127;
        *want = (uint32_t)(fl + 127);
    }
    *got = fqt_e8m0_encode_floor(x);
    return *got == *want;
}

static bool chk_ue4m3(float x, uint32_t *got, uint32_t *want, int64_t *hint) {
    /* §3.2: §2.2 RNE of the magnitude; NaN/Inf give 0x7F, never a sign bit */
    if (!isfinite(x)) *want = 0x7F;
    else *want = grid_nearest(&G_E4M3, fabs((double)x), hint);
    *got = fqt_ue4m3_encode_rne(x);
    return *got == *want;
}

/* ---- sweeps ------------------------------------------------------------------------ */

static float *g_special;
static int64_t g_nspecial, g_capspecial;

static void push(float x) {
    if (g_nspecial + 2 > g_capspecial) {
        g_capspecial = g_capspecial ? 2 * g_capspecial : 1 << 16;
        g_special = realloc(g_special, (size_t)g_capspecial * sizeof *g_special);
    }
    g_special[g_nspecial++] = x;
    g_special[g_nspecial++] = -x;
}

/* A value, its neighbours up to 2 ulps away, and the same for the midpoint to the next. */
static void push_around(double v) {
    float f = (float)v;
    if (!isfinite(f) || (double)f != v) { push(f); return; }
    float a = f, b = f;
    push(f);
    for (int k = 0; k < 2; k++) {
        a = nextafterf(a, INFINITY); b = nextafterf(b, -INFINITY);
        push(a); push(b);
    }
}

static void push_grid_boundaries(const grid *g) {
    for (int64_t i = 0; i < g->n; i++) {
        push_around(g->mag[i]);
        if (i + 1 < g->n) push_around(0.5 * (g->mag[i] + g->mag[i + 1]));
    }
}

static void specials_build(void) {
    static const uint32_t pats[] = {
        0x00000000, 0x00000001, 0x00000002, 0x007FFFFF, 0x00800000, 0x00800001, 0x3F800000,
        0x7F7FFFFF, 0x7F7F0000, 0x7F7F7FFF, 0x7F7F8000, 0x7F7F8001, 0x7F7FFFFF, 0x7F800000,
        0x7F800001, 0x7FBFFFFF, 0x7FC00000, 0x7FC00001, 0x7FFFFFFF, 0x7FFF0000, 0x7F810000};
    for (size_t i = 0; i < sizeof pats / sizeof pats[0]; i++) push(f_of(pats[i]));
    for (int e = -149; e <= 127; e++) push_around(ldexp(1.0, e));
    push_grid_boundaries(&G_E2M1);
    push_grid_boundaries(&G_E4M3);
    push_grid_boundaries(&G_E5M2);
    push_grid_boundaries(&G_FP16);
    push_grid_boundaries(&G_INT4);
    for (int i = 0; i < 16; i++) {
        push_around(NF4_TAB[i]);
        if (i < 15) push_around(0.5 * ((double)NF4_TAB[i] + NF4_TAB[i + 1]));
    }
    /* every bf16 tie (low half exactly 0x8000) and its neighbours */
    for (uint32_t c = 0; c < 0x7F80; c++) {
        uint32_t t = (c << 16) | 0x8000u;
        push(f_of(t)); push(f_of(t - 1)); push(f_of(t + 1)); push(f_of(c << 16));
    }
    /* the saturation and overflow thresholds named by the spec */
    const double th[] = {6, 7, 8, 448, 464, 480, 57344, 61440, 65504, 65520, 65536, 1, 0.5};
    for (size_t i = 0; i < sizeof th / sizeof th[0]; i++) push_around(th[i]);
}

/* Checks inputs k*stride (k = 0, 1, ...) plus the special list; prints the first few
 * mismatches and the run time. The strided inputs go in chunks of consecutive k, each walked in
 * order by one thread so that grid_nearest's bracket hint stays valid. */
static void sweep(const char *name, check_fn f, uint64_t stride) {
    int64_t bad = 0, shown = 0;
    const int64_t count = (int64_t)(((UINT64_C(1) << 32) + stride - 1) / stride);
    const int64_t chunk = INT64_C(1) << 20, nchunks = (count + chunk - 1) / chunk;
    double t0 = now_s();
    OMP_SWEEP
    for (int64_t ch = 0; ch < nchunks + 1; ch++) {
        int64_t hint = 0;
        int64_t k0 = ch < nchunks ? ch * chunk : 0;
        int64_t k1 = ch < nchunks ? (ch + 1 < nchunks ? k0 + chunk : count) : g_nspecial;
        for (int64_t k = k0; k < k1; k++) {
            float x = ch < nchunks ? f_of((uint32_t)((uint64_t)k * stride)) : g_special[k];
            uint32_t got, want;
            if (!f(x, &got, &want, &hint)) {
                bad++;
                OMP_CRITICAL
                {
                    if (shown < 8) {
                        shown++;
                        fprintf(stderr, "  %s: x = %.9g (0x%08x): got 0x%x, want 0x%x\n", name,
                                (double)x, u_of(x), got, want);
                    }
                }
            }
        }
    }
    double dt = now_s() - t0;
    printf("%-10s %lld inputs (stride %llu + %lld boundary values), %lld mismatches, %.2f s\n",
           name, (long long)(count + g_nspecial), (unsigned long long)stride,
           (long long)g_nspecial, (long long)bad, dt);
    CHECK_MSG(bad == 0, "%s: %lld mismatches", name, (long long)bad);
}

/* ---- decode tests ------------------------------------------------------------------ */

static void test_decode(void) {
    for (unsigned c = 0; c < 16; c++) {
        float want = (c & 8) ? -E2M1_MAG[c & 7] : E2M1_MAG[c & 7]; /* 0x8 is -0 */
        CHECK_BITS(fqt_e2m1_decode((uint8_t)c), want);
        CHECK_BITS(fqt_elem_decode(FQT_ELEM_E2M1, c), want);
        float wi = (float)(c < 8 ? (int)c : (int)c - 16); /* two's complement, 0x8 = -8 */
        CHECK_BITS(fqt_int4_decode((uint8_t)c), wi);
        CHECK_BITS(fqt_elem_decode(FQT_ELEM_INT4, c), wi);
        CHECK_BITS(fqt_nf4_decode((uint8_t)c), NF4_TAB[c]);
        CHECK_BITS(fqt_elem_decode(FQT_ELEM_NF4, c), NF4_TAB[c]);
    }
    /* spot values of the tables, so a transcription slip here would also show */
    CHECK_BITS(fqt_e2m1_decode(0x8), -0.0f);
    CHECK_BITS(fqt_e2m1_decode(0xF), -6.0f);
    CHECK_BITS(fqt_nf4_decode(0x7), 0.0f);
    for (unsigned c = 0; c < 256; c++) {
        float v = fqt_e4m3_decode((uint8_t)c);
        if ((c & 0x7F) == 0x7F) CHECK_MSG(isnan(v), "e4m3 0x%02x must be NaN", c);
        else CHECK_MSG(u_of(v) == u_of((float)e4m3_value(c)), "e4m3 0x%02x -> %.9g, want %.9g", c,
                       (double)v, e4m3_value(c));
        float w = fqt_e5m2_decode((uint8_t)c);
        double ww = e5m2_value(c);
        if (isnan(ww)) CHECK_MSG(isnan(w), "e5m2 0x%02x must be NaN", c);
        else CHECK_MSG(u_of(w) == u_of((float)ww), "e5m2 0x%02x -> %.9g, want %.9g", c, (double)w,
                       ww);
        float s = fqt_e8m0_decode((uint8_t)c);
        if (c == 0xFF) CHECK_MSG(isnan(s), "e8m0 0xff must be NaN");
        else CHECK_MSG(u_of(s) == u_of((float)ldexp(1.0, (int)c - 127)), "e8m0 0x%02x -> %.9g", c,
                       (double)s);
        if (c < 0x80) { /* UE4M3: sign bit unused (§3.2), so only 0x00-0x7F are codes */
            float u = fqt_ue4m3_decode((uint8_t)c);
            if (c == 0x7F) CHECK_MSG(isnan(u), "ue4m3 0x7f must be NaN");
            else CHECK_MSG(u_of(u) == u_of((float)e4m3_value(c)), "ue4m3 0x%02x -> %.9g", c,
                           (double)u);
        }
    }
    CHECK_BITS(fqt_e4m3_decode(0x7E), 448.0f);
    CHECK_BITS(fqt_e4m3_decode(0x01), 0x1p-9f);
    CHECK_BITS(fqt_e4m3_decode(0x80), -0.0f);
    CHECK_BITS(fqt_e5m2_decode(0x7B), 57344.0f);
    CHECK_BITS(fqt_e5m2_decode(0x7C), INFINITY);
    CHECK_BITS(fqt_e5m2_decode(0xFC), -INFINITY);
    CHECK_BITS(fqt_e5m2_decode(0x01), 0x1p-16f);
    CHECK_BITS(fqt_e8m0_decode(0), 0x1p-127f);
    CHECK_BITS(fqt_e8m0_decode(127), 1.0f);
    CHECK_BITS(fqt_e8m0_decode(254), 0x1p127f);
    CHECK_BITS(fqt_ue4m3_decode(0x7E), 448.0f);

    int64_t bad_bf = 0, bad_h = 0;
    for (uint32_t c = 0; c < 65536; c++) {
        float b = fqt_bf16_decode((uint16_t)c), want = f_of(c << 16);
        if (isnan(want) ? !isnan(b) : u_of(b) != u_of(want)) {
            if (bad_bf++ < 5) fprintf(stderr, "  bf16 0x%04x -> %.9g\n", c, (double)b);
        }
        float h = fqt_fp16_decode((uint16_t)c);
        double hw = fp16_value(c);
        if (isnan(hw) ? !isnan(h) : u_of(h) != u_of((float)hw)) {
            if (bad_h++ < 5) fprintf(stderr, "  fp16 0x%04x -> %.9g want %.9g\n", c, (double)h, hw);
        }
    }
    CHECK_MSG(bad_bf == 0, "bf16 decode: %lld wrong", (long long)bad_bf);
    CHECK_MSG(bad_h == 0, "fp16 decode: %lld wrong", (long long)bad_h);
}

/* ---- hand-written encode cases (the examples the spec spells out) ------------------ */

static void test_encode_examples(void) {
    /* §2.1 ties: 0.25->0, 0.75->1, 1.25->1, 1.75->2, 2.5->2, 3.5->4, 5->4 (values, codes) */
    const float tie_x[] = {0.25f, 0.75f, 1.25f, 1.75f, 2.5f, 3.5f, 5.0f};
    const uint8_t tie_c[] = {0x0, 0x2, 0x2, 0x4, 0x4, 0x6, 0x6};
    for (int i = 0; i < 7; i++) {
        CHECK_MSG(fqt_e2m1_encode_rne(tie_x[i]) == tie_c[i], "e2m1(%g)", (double)tie_x[i]);
        CHECK_MSG(fqt_e2m1_encode_rne(-tie_x[i]) == (tie_c[i] | 8), "e2m1(-%g)", (double)tie_x[i]);
    }
    CHECK(fqt_e2m1_encode_rne(-0.1f) == 0x8);
    CHECK(fqt_e2m1_encode_rne(-0.0f) == 0x8);
    CHECK(fqt_e2m1_encode_rne(0.0f) == 0x0);
    CHECK(fqt_e2m1_encode_rne(6.0f) == 0x7);
    CHECK(fqt_e2m1_encode_rne(1e30f) == 0x7);
    CHECK(fqt_e2m1_encode_rne(-INFINITY) == 0xF);
    CHECK(fqt_e2m1_encode_rne(NAN) == 0x0);
    CHECK(fqt_e2m1_encode_rne(-NAN) == 0x0);

    CHECK(fqt_e4m3_encode_rne(448.0f) == 0x7E);
    CHECK(fqt_e4m3_encode_rne(464.0f) == 0x7E);  /* would round to 480: saturates */
    CHECK(fqt_e4m3_encode_rne(-1e10f) == 0xFE);
    CHECK(fqt_e4m3_encode_rne(INFINITY) == 0x7F);
    CHECK(fqt_e4m3_encode_rne(-INFINITY) == 0xFF);
    CHECK(fqt_e4m3_encode_rne(0x1p-10f) == 0x00); /* half of the smallest subnormal: tie to 0 */
    CHECK(fqt_e4m3_encode_rne(0x1.8p-9f) == 0x02); /* 1.5 * 2^-9: tie between 0x01 and 0x02 */
    CHECK(fqt_e4m3_encode_rne(-0x1p-11f) == 0x80);
    CHECK(fqt_e4m3_encode_rne(1.0625f) == 0x38);  /* tie between 1 (0x38) and 1.125 (0x39) */
    CHECK(fqt_e4m3_encode_rne(1.1875f) == 0x3A);  /* tie between 1.125 and 1.25 (0x3A) */

    CHECK(fqt_e5m2_encode_rne(57344.0f) == 0x7B);
    CHECK(fqt_e5m2_encode_rne(61439.996f) == 0x7B);
    CHECK(fqt_e5m2_encode_rne(61440.0f) == 0x7C);
    CHECK(fqt_e5m2_encode_rne(-61440.0f) == 0xFC);
    CHECK(fqt_e5m2_encode_rne(NAN) == 0x7E);
    CHECK(fqt_e5m2_encode_rne(-NAN) == 0xFE);
    CHECK(fqt_e5m2_encode_rne(0x1p-17f) == 0x00);
    CHECK(fqt_e5m2_encode_rne(0x1.8p-16f) == 0x02);

    /* §2.4: half to even integer, clamp to +-7, NaN -> 0 */
    const float ix[] = {0.5f, 1.5f, 2.5f, 3.5f, 6.5f, 7.5f, 100.0f, -0.5f, -1.5f, -2.5f, -7.5f,
                        -1e30f, 0.49999997f, 0.50000006f};
    const uint8_t ic[] = {0x0, 0x2, 0x2, 0x4, 0x6, 0x7, 0x7, 0x0, 0xE, 0xE, 0x9, 0x9, 0x0, 0x1};
    for (size_t i = 0; i < sizeof ix / sizeof ix[0]; i++)
        CHECK_MSG(fqt_int4_encode_rne(ix[i]) == ic[i], "int4(%g) = 0x%x, want 0x%x",
                  (double)ix[i], fqt_int4_encode_rne(ix[i]), ic[i]);
    CHECK(fqt_int4_encode_rne(NAN) == 0);
    CHECK(fqt_int4_encode_rne(-INFINITY) == 0x9);

    /* §2.5: clamp, NaN -> 0x7, the exact table values map to themselves */
    for (unsigned c = 0; c < 16; c++) CHECK(fqt_nf4_encode_rne(NF4_TAB[c]) == c);
    CHECK(fqt_nf4_encode_rne(2.0f) == 0xF);
    CHECK(fqt_nf4_encode_rne(-2.0f) == 0x0);
    CHECK(fqt_nf4_encode_rne(NAN) == 0x7);
    CHECK(fqt_nf4_encode_rne(-0.0f) == 0x7);

    /* §3.1 */
    CHECK(fqt_e8m0_encode_floor(0.0f) == 0);
    CHECK(fqt_e8m0_encode_floor(-0.0f) == 0);
    CHECK(fqt_e8m0_encode_floor(1.0f) == 127);
    CHECK(fqt_e8m0_encode_floor(1.9999999f) == 127);
    CHECK(fqt_e8m0_encode_floor(2.0f) == 128);
    CHECK(fqt_e8m0_encode_floor(0.75f) == 126);
    CHECK(fqt_e8m0_encode_floor(0x1p127f) == 254);
    CHECK(fqt_e8m0_encode_floor(FLT_MAX) == 254);     /* floor(log2) = 127 */
    CHECK(fqt_e8m0_encode_floor(0x1p-126f) == 1);
    CHECK(fqt_e8m0_encode_floor(0x1.fffffcp-127f) == 0); /* largest subnormal: -127 */
    CHECK(fqt_e8m0_encode_floor(0x1p-127f) == 0);
    CHECK(fqt_e8m0_encode_floor(0x1p-149f) == 0);     /* -149 clamps to -127 */
    CHECK(fqt_e8m0_encode_floor(NAN) == 0xFF);
    CHECK(fqt_e8m0_encode_floor(INFINITY) == 0xFF);
    CHECK(fqt_e8m0_encode_floor(-INFINITY) == 0xFF);
    CHECK(fqt_e8m0_encode_floor(-1.0f) == 0xFF);
    CHECK(fqt_e8m0_encode_floor(-0x1p-149f) == 0xFF);

    /* §3.2 */
    CHECK(fqt_ue4m3_encode_rne(448.0f) == 0x7E);
    CHECK(fqt_ue4m3_encode_rne(1000.0f) == 0x7E);
    CHECK(fqt_ue4m3_encode_rne(FLT_MAX) == 0x7E);
    CHECK(fqt_ue4m3_encode_rne(-3.0f) == 0x44);       /* magnitude: 3 = 1.5 * 2^1 */
    CHECK(fqt_ue4m3_encode_rne(-0.0f) == 0x00);
    CHECK(fqt_ue4m3_encode_rne(1.0625f) == 0x38);     /* tie to even */
    CHECK(fqt_ue4m3_encode_rne(NAN) == 0x7F);

    CHECK(fqt_bf16_encode_rne(1.0f) == 0x3F80);
    CHECK(fqt_bf16_encode_rne(f_of(0x3F808000)) == 0x3F80); /* tie, even stays */
    CHECK(fqt_bf16_encode_rne(f_of(0x3F818000)) == 0x3F82); /* tie, odd rounds up */
    CHECK(fqt_bf16_encode_rne(f_of(0x7F7F8000)) == 0x7F80); /* overflow tie to Inf */
    CHECK(fqt_bf16_encode_rne(f_of(0x7F7F7FFF)) == 0x7F7F);
    CHECK(fqt_fp16_encode_rne(65504.0f) == 0x7BFF);
    CHECK(fqt_fp16_encode_rne(65519.996f) == 0x7BFF);
    CHECK(fqt_fp16_encode_rne(65520.0f) == 0x7C00);
    CHECK(fqt_fp16_encode_rne(0x1p-25f) == 0x0000);   /* tie to 0 */
    CHECK(fqt_fp16_encode_rne(0x1.8p-24f) == 0x0002);
}

/* ---- generic dispatch and type properties ----------------------------------------- */

static void test_generic(void) {
    CHECK(fqt_elem_bits(FQT_ELEM_E2M1) == 4);
    CHECK(fqt_elem_bits(FQT_ELEM_INT4) == 4);
    CHECK(fqt_elem_bits(FQT_ELEM_NF4) == 4);
    CHECK(fqt_elem_bits(FQT_ELEM_E4M3) == 8);
    CHECK(fqt_elem_bits(FQT_ELEM_E5M2) == 8);
    CHECK(fqt_elem_bits(FQT_ELEM_BF16) == 16);
    CHECK(fqt_elem_bits(FQT_ELEM_FP16) == 16);
    CHECK(fqt_elem_bits(FQT_ELEM_FP32) == 32);
    CHECK_BITS(fqt_elem_max(FQT_ELEM_E2M1), 6.0f);
    CHECK_BITS(fqt_elem_max(FQT_ELEM_E4M3), 448.0f);
    CHECK_BITS(fqt_elem_max(FQT_ELEM_E5M2), 57344.0f);
    CHECK_BITS(fqt_elem_max(FQT_ELEM_INT4), 7.0f);
    CHECK_BITS(fqt_elem_max(FQT_ELEM_NF4), 1.0f);
    CHECK_BITS(fqt_elem_max(FQT_ELEM_FP16), 65504.0f);
    CHECK_BITS(fqt_elem_max(FQT_ELEM_BF16), f_of(0x7F7F0000));
    CHECK_BITS(fqt_elem_max(FQT_ELEM_FP32), FLT_MAX);
    /* "exponent of the largest power of two <= max" (formats.h; §5.2 names E2M1 2, E4M3 8) */
    CHECK(fqt_elem_emax(FQT_ELEM_E2M1) == 2);
    CHECK(fqt_elem_emax(FQT_ELEM_E4M3) == 8);
    CHECK(fqt_elem_emax(FQT_ELEM_E5M2) == 15);
    CHECK(fqt_elem_emax(FQT_ELEM_INT4) == 2);
    CHECK(fqt_elem_emax(FQT_ELEM_NF4) == 0);
    CHECK(strcmp(fqt_elem_name(FQT_ELEM_E2M1), "e2m1") == 0);
    CHECK(strcmp(fqt_elem_name(FQT_ELEM_E4M3), "e4m3") == 0);
    CHECK(strcmp(fqt_scale_name(FQT_SCALE_E8M0), "e8m0") == 0);
    CHECK(strcmp(fqt_scale_name(FQT_SCALE_UE4M3), "ue4m3") == 0);

    /* fqt_elem_encode(t, x, RNE, *) is the typed encoder, on a spread of inputs */
    int64_t bad = 0;
    for (int64_t k = 0; k < g_nspecial; k += 7) {
        float x = g_special[k];
        bad += fqt_elem_encode(FQT_ELEM_E2M1, x, FQT_ROUND_RNE, 0) != fqt_e2m1_encode_rne(x);
        bad += fqt_elem_encode(FQT_ELEM_E4M3, x, FQT_ROUND_RNE, 0) != fqt_e4m3_encode_rne(x);
        bad += fqt_elem_encode(FQT_ELEM_E5M2, x, FQT_ROUND_RNE, 0) != fqt_e5m2_encode_rne_sat(x);
        bad += fqt_elem_encode(FQT_ELEM_INT4, x, FQT_ROUND_RNE, 0) != fqt_int4_encode_rne(x);
        bad += fqt_elem_encode(FQT_ELEM_NF4, x, FQT_ROUND_RNE, 0) != fqt_nf4_encode_rne(x);
        bad += fqt_elem_encode(FQT_ELEM_BF16, x, FQT_ROUND_RNE, 0) != fqt_bf16_encode_rne(x);
        bad += fqt_elem_encode(FQT_ELEM_FP16, x, FQT_ROUND_RNE, 0) != fqt_fp16_encode_rne(x);
        uint32_t r = (uint32_t)k * 2654435761u;
        bad += fqt_elem_encode(FQT_ELEM_E2M1, x, FQT_ROUND_SR, r) != fqt_e2m1_encode_sr(x, r);
        bad += fqt_elem_encode(FQT_ELEM_E4M3, x, FQT_ROUND_SR, r) != fqt_e4m3_encode_sr(x, r);
    }
    CHECK_MSG(bad == 0, "fqt_elem_encode differs from the typed encoders %lld times",
              (long long)bad);
    for (unsigned c = 0; c < 256; c++) {
        float a = fqt_elem_decode(FQT_ELEM_E4M3, c), b = fqt_e4m3_decode((uint8_t)c);
        CHECK_MSG(u_of(a) == u_of(b) || (isnan(a) && isnan(b)), "elem_decode e4m3 0x%02x", c);
        a = fqt_elem_decode(FQT_ELEM_E5M2, c); b = fqt_e5m2_decode((uint8_t)c);
        CHECK_MSG(u_of(a) == u_of(b) || (isnan(a) && isnan(b)), "elem_decode e5m2 0x%02x", c);
    }
}

int main(void) {
    grids_build();
    specials_build();
#ifdef _OPENMP
    printf("threads: %d\n", omp_get_max_threads());
#endif
    test_decode();
    test_encode_examples();
    test_generic();
    /* the two exhaustive sweeps the suite is built around */
    sweep("e2m1 rne", chk_e2m1, FULL_STRIDE);
    sweep("e4m3 rne", chk_e4m3, FULL_STRIDE);
    /* dense strided sweeps; every boundary value is in the special list */
    sweep("e5m2 rne", chk_e5m2, DENSE_STRIDE);
    sweep("bf16 rne", chk_bf16, DENSE_STRIDE);
    sweep("fp16 rne", chk_fp16, DENSE_STRIDE);
    sweep("int4 rne", chk_int4, DENSE_STRIDE);
    sweep("nf4 rne", chk_nf4, DENSE_STRIDE);
    sweep("e8m0 floor", chk_e8m0, DENSE_STRIDE);
    sweep("ue4m3 rne", chk_ue4m3, DENSE_STRIDE);
    grid_free(&G_E2M1); grid_free(&G_E4M3); grid_free(&G_E5M2); grid_free(&G_FP16);
    grid_free(&G_INT4);
    free(g_special);
    return check_finish();
}
