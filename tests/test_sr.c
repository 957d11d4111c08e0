/* tests/test_sr.c — stochastic rounding (docs/FORMATS.md §1, §4): the Philox4x32-10 generator
 * against Random123's published known-answer vectors and an independent implementation, the
 * counter/key/stream mapping of fqt_sr_bits, the exact comparison rule of each SR encoder, the
 * element index used by fqt_quantize, unbiasedness (mean and P(up) within 5 sigma) for E2M1,
 * E4M3 and NVFP4 blocks, and reproducibility: same seed and stream give the same bits, other
 * seeds or streams other bits, and no dependence on the OpenMP thread count.
 *
 * Everything here is derived from the spec; the only library functions trusted are the scalar
 * decoders and RNE encoders, which test_formats_elem.c checks exhaustively.
 * Not for: RNE encoders (test_formats_elem.c) or block layout (test_formats_block.c). */
#include "check.h"
#include "fqt/formats.h"

#include <float.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <time.h>

#ifdef _OPENMP
#include <omp.h>
#endif

/* Sanitizer runs are ~10x slower per call; statistical bounds below are derived from n, so a
 * smaller n only widens them. */
#ifdef FQT_SANITIZE
#define N_SCALAR_DRAWS (INT64_C(1) << 16)
#define N_BLOCK_ROWS (INT64_C(1) << 13)
#define N_RANDOM_CASES 20000
#else
#define N_SCALAR_DRAWS (INT64_C(1) << 20)
#define N_BLOCK_ROWS (INT64_C(1) << 17)
#define N_RANDOM_CASES 1000000
#endif

static float f_of(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static uint32_t u_of(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

/* splitmix64: the test's own source of inputs (not the generator under test) */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rng_next(void) {
    uint64_t z = (rng_state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}
static double rng_unit(void) { return (double)(rng_next() >> 11) * 0x1p-53; }

/* ---- Philox4x32-10, written from Salmon et al. (SC'11) ------------------------------ */

static void ref_philox(const uint32_t in_ctr[4], const uint32_t in_key[2], uint32_t out[4]) {
    uint32_t c[4] = {in_ctr[0], in_ctr[1], in_ctr[2], in_ctr[3]};
    uint32_t k0 = in_key[0], k1 = in_key[1];
    for (int r = 0; r < 10; r++) {
        if (r > 0) { k0 += 0x9E3779B9u; k1 += 0xBB67AE85u; } /* key schedule: bump before rounds 2..10 */
        uint64_t p0 = (uint64_t)0xD2511F53u * c[0];
        uint64_t p1 = (uint64_t)0xCD9E8D57u * c[2];
        uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
        uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
        uint32_t n0 = hi1 ^ c[1] ^ k0, n1 = lo1, n2 = hi0 ^ c[3] ^ k1, n3 = lo0;
        c[0] = n0; c[1] = n1; c[2] = n2; c[3] = n3;
    }
    memcpy(out, c, sizeof c);
}

static void test_philox(void) {
    /* Random123 kat_vectors, "philox4x32 10": counter[4] key[2] -> output[4] */
    static const uint32_t kat[3][10] = {
        {0, 0, 0, 0, 0, 0, 0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8},
        {0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff, 0x408f276d,
         0x41c83b0e, 0xa20bc7c6, 0x6d5451fd},
        {0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344, 0xa4093822, 0x299f31d0, 0xd16cfe09,
         0x94fdcceb, 0x5001e420, 0x24126ea1},
    };
    for (int t = 0; t < 3; t++) {
        uint32_t ctr[4] = {kat[t][0], kat[t][1], kat[t][2], kat[t][3]};
        uint32_t key[2] = {kat[t][4], kat[t][5]};
        uint32_t ref[4];
        ref_philox(ctr, key, ref);
        fqt_philox_out o = fqt_philox4x32_10(ctr, key);
        for (int w = 0; w < 4; w++) {
            CHECK_MSG(ref[w] == kat[t][6 + w], "test's own philox, kat %d word %d", t, w);
            CHECK_MSG(o.v[w] == kat[t][6 + w], "kat %d word %d: got 0x%08x want 0x%08x", t, w,
                      o.v[w], kat[t][6 + w]);
        }
        /* the function must not modify its arguments */
        CHECK(ctr[0] == kat[t][0] && ctr[3] == kat[t][3] && key[0] == kat[t][4] &&
              key[1] == kat[t][5]);
    }
    int64_t bad = 0;
    for (int t = 0; t < 10000; t++) {
        uint64_t a = rng_next(), b = rng_next(), c = rng_next();
        uint32_t ctr[4] = {(uint32_t)a, (uint32_t)(a >> 32), (uint32_t)b, (uint32_t)(b >> 32)};
        uint32_t key[2] = {(uint32_t)c, (uint32_t)(c >> 32)};
        uint32_t ref[4];
        ref_philox(ctr, key, ref);
        fqt_philox_out o = fqt_philox4x32_10(ctr, key);
        bad += memcmp(ref, o.v, sizeof ref) != 0;
    }
    CHECK_MSG(bad == 0, "philox differs from the reference on %lld random inputs", (long long)bad);
}

/* §4: key {seed lo, seed hi}, counter {(i/4) lo, (i/4) hi, s lo, s hi}, word i % 4 */
static void test_sr_bits_mapping(void) {
    CHECK(fqt_sr_stream(0, 0, 0) == 0);
    CHECK(fqt_sr_stream(1, 0, 0) == 8);
    CHECK(fqt_sr_stream(0, 7, 0) == 7);
    CHECK(fqt_sr_stream(0, 0, 1) == (UINT64_C(1) << 32));
    CHECK(fqt_sr_stream(0x12345, 5, 0xABCDEF01u) ==
          ((UINT64_C(0xABCDEF01) << 32) | (UINT64_C(0x12345) << 3) | 5));
    const uint64_t seeds[] = {0, 1, 0x123456789ABCDEF0ull, UINT64_MAX, 0xFFFFFFFFull};
    const uint64_t streams[] = {0, 5, fqt_sr_stream(7, 3, 11), 0xFFFFFFFF00000001ull, UINT64_MAX};
    const uint64_t idx[] = {0, 1, 2, 3, 4, 5, 7, 8, 1023, (UINT64_C(1) << 32) + 1,
                            (UINT64_C(1) << 34) + 6, (UINT64_C(1) << 34) - 1, UINT64_MAX,
                            UINT64_MAX - 1, 0x0123456789ABCDEFull};
    int64_t bad = 0;
    for (size_t a = 0; a < sizeof seeds / sizeof seeds[0]; a++)
        for (size_t b = 0; b < sizeof streams / sizeof streams[0]; b++)
            for (size_t c = 0; c < sizeof idx / sizeof idx[0]; c++) {
                uint64_t q = idx[c] / 4, s = streams[b];
                uint32_t ctr[4] = {(uint32_t)q, (uint32_t)(q >> 32), (uint32_t)s,
                                   (uint32_t)(s >> 32)};
                uint32_t key[2] = {(uint32_t)seeds[a], (uint32_t)(seeds[a] >> 32)};
                uint32_t ref[4];
                ref_philox(ctr, key, ref);
                uint32_t got = fqt_sr_bits(seeds[a], s, idx[c]);
                if (got != ref[idx[c] % 4]) {
                    if (bad++ < 5)
                        fprintf(stderr, "  sr_bits(seed %llx, stream %llx, i %llx) = %08x, want %08x\n",
                                (unsigned long long)seeds[a], (unsigned long long)s,
                                (unsigned long long)idx[c], got, ref[idx[c] % 4]);
                }
            }
    CHECK_MSG(bad == 0, "fqt_sr_bits mapping: %lld wrong", (long long)bad);
}

/* ---- scalar SR oracles (§1, §4) ---------------------------------------------------- */

static double e4m3_mag(unsigned c) {
    unsigned e = (c >> 3) & 15, m = c & 7;
    return e == 0 ? ldexp((double)m, -9) : ldexp(1.0 + m / 8.0, (int)e - 7);
}
static double e5m2_mag(unsigned c) {
    unsigned e = (c >> 2) & 31, m = c & 3;
    return e == 0 ? ldexp((double)m, -16) : ldexp(1.0 + m / 4.0, (int)e - 15);
}
static const double E2M1_MAG[8] = {0, 0.5, 1, 1.5, 2, 3, 4, 6};
static const double INT4_MAG[8] = {0, 1, 2, 3, 4, 5, 6, 7};
static const float NF4_TAB[16] = {
    -1.0f,                 -0.6961928009986877f,  -0.5250730514526367f, -0.39491748809814453f,
    -0.28444138169288635f, -0.18477343022823334f, -0.09105003625154495f, 0.0f,
    0.07958029955625534f,  0.16093020141124725f,  0.24611230194568634f, 0.33791524171829224f,
    0.44070982933044434f,  0.5626170039176941f,   0.7229568362236023f,  1.0f};
static double E4M3_MAGS[0x7F], E5M2_MAGS[0x7C];

/* u = (rnd >> 8) * 2^-24 */
static double sr_u(uint32_t rnd) { return (double)(rnd >> 8) * 0x1p-24; }

/* Index into mag[] chosen by SR for magnitude a (saturating at the last entry). The fraction
 * is exact in double for power-of-two-spaced grids, which is what §4 relies on. */
static int sr_index(const double *mag, int n, double a, uint32_t rnd) {
    if (a >= mag[n - 1]) return n - 1;
    int i = 0;
    while (!(mag[i] <= a && a < mag[i + 1])) i++;
    if (a == mag[i]) return i;
    double f = (a - mag[i]) / (mag[i + 1] - mag[i]);
    return sr_u(rnd) < f ? i + 1 : i;
}

static void build_mags(void) {
    for (unsigned c = 0; c < 0x7F; c++) E4M3_MAGS[c] = e4m3_mag(c);
    for (unsigned c = 0; c < 0x7C; c++) E5M2_MAGS[c] = e5m2_mag(c);
}

static uint32_t want_e2m1_sr(float x, uint32_t r) {
    return (signbit(x) ? 8u : 0u) | (uint32_t)sr_index(E2M1_MAG, 8, fabs((double)x), r);
}
static uint32_t want_e4m3_sr(float x, uint32_t r) {
    return (signbit(x) ? 0x80u : 0u) | (uint32_t)sr_index(E4M3_MAGS, 0x7F, fabs((double)x), r);
}
static uint32_t want_e5m2_sr(float x, uint32_t r) {
    return (signbit(x) ? 0x80u : 0u) | (uint32_t)sr_index(E5M2_MAGS, 0x7C, fabs((double)x), r);
}
static uint32_t want_int4_sr(float x, uint32_t r) {
    int k = sr_index(INT4_MAG, 8, fabs((double)x), r);
    return (uint32_t)(signbit(x) ? -k : k) & 0xFu;
}
/* §2.5: between adjacent (signed) table values, f = (x - lo) / (hi - lo) in binary32 */
static uint32_t want_nf4_sr(float x, uint32_t r) {
    if (x <= NF4_TAB[0]) return 0;
    if (x >= NF4_TAB[15]) return 15;
    int i = 0;
    while (!(NF4_TAB[i] <= x && x < NF4_TAB[i + 1])) i++;
    if (x == NF4_TAB[i]) return (uint32_t)i;
    volatile float num = x - NF4_TAB[i], den = NF4_TAB[i + 1] - NF4_TAB[i];
    volatile float f = num / den;
    float u = (float)(r >> 8) * 0x1p-24f;
    return u < f ? (uint32_t)i + 1 : (uint32_t)i;
}

static void test_sr_rule(void) {
    /* the comparison u < f, by hand: 1.25 lies halfway between 1 (code 2) and 1.5 (code 3) */
    CHECK(fqt_e2m1_encode_sr(1.25f, 0x7FFFFFFFu) == 3); /* u = 0.5 - 2^-24 < 0.5: up */
    CHECK(fqt_e2m1_encode_sr(1.25f, 0x80000000u) == 2); /* u = 0.5, not < 0.5: down */
    CHECK(fqt_e2m1_encode_sr(1.25f, 0x800000FFu) == 2); /* the low 8 bits do not count */
    CHECK(fqt_e2m1_encode_sr(1.25f, 0x00000000u) == 3); /* u = 0 < f for any f > 0 */
    CHECK(fqt_e2m1_encode_sr(-1.25f, 0x00000000u) == 0xB); /* sign kept, magnitude rounded */
    CHECK(fqt_e2m1_encode_sr(-1.25f, 0xFFFFFFFFu) == 0xA);
    CHECK(fqt_e2m1_encode_sr(7.0f, 0) == 0x7);            /* saturates at 6 */
    CHECK(fqt_e2m1_encode_sr(-100.0f, 0xFFFFFFFFu) == 0xF);
    CHECK(fqt_e2m1_encode_sr(-0.0f, 0) == 0x8);
    CHECK(fqt_e2m1_encode_sr(-0.1f, 0xFFFFFFFFu) == 0x8);  /* rounds down to -0 */
    /* 4.5 between 4 (code 6) and 6 (code 7): f = 0.25, up iff u < 0.25 */
    CHECK(fqt_e2m1_encode_sr(4.5f, 0x3FFFFFFFu) == 7);
    CHECK(fqt_e2m1_encode_sr(4.5f, 0x40000000u) == 6);
    /* E4M3: 1.03125 between 1 (0x38) and 1.125 (0x39): f = 0.25 */
    CHECK(fqt_e4m3_encode_sr(1.03125f, 0x3FFFFF00u) == 0x39);
    CHECK(fqt_e4m3_encode_sr(1.03125f, 0x40000000u) == 0x38);
    CHECK(fqt_e4m3_encode_sr(500.0f, 0) == 0x7E);          /* saturates at 448 */
    CHECK(fqt_e4m3_encode_sr(INFINITY, 0) == 0x7F);        /* §2.2: Inf never becomes finite */
    CHECK(fqt_e4m3_encode_sr(-INFINITY, 0) == 0xFF);
    CHECK(fqt_e4m3_encode_sr(NAN, 0) == 0x7F);
    /* E5M2: finite above 57344 saturates, Inf stays Inf (§2.3) */
    CHECK(fqt_e5m2_encode_sr(60000.0f, 0) == 0x7B);
    CHECK(fqt_e5m2_encode_sr(1e30f, 0) == 0x7B);
    CHECK(fqt_e5m2_encode_sr(-INFINITY, 0) == 0xFC);
    CHECK(fqt_e5m2_encode_sr(INFINITY, 0xFFFFFFFFu) == 0x7C);
    /* INT4: 2.75 between 2 and 3, f = 0.75 */
    CHECK(fqt_int4_encode_sr(2.75f, 0xBFFFFF00u) == 3);
    CHECK(fqt_int4_encode_sr(2.75f, 0xC0000000u) == 2);
    CHECK(fqt_int4_encode_sr(-2.75f, 0) == 0xD);           /* -3 */
    CHECK(fqt_int4_encode_sr(9.0f, 0) == 7);
    CHECK(fqt_int4_encode_sr(-9.0f, 0) == 9);              /* -7 */
    /* BF16 (§2.6): add rnd >> 16, truncate */
    CHECK(fqt_bf16_encode_sr(f_of(0x3F80FFFFu), 0) == 0x3F80);
    CHECK(fqt_bf16_encode_sr(f_of(0x3F800001u), 0xFFFF0000u) == 0x3F81);
    CHECK(fqt_bf16_encode_sr(f_of(0x3F800000u), 0xFFFFFFFFu) == 0x3F80);
    CHECK(fqt_bf16_encode_sr(f_of(0x7F7F0001u), 0xFFFF0000u) == 0x7F80); /* carries to Inf */
    CHECK(fqt_bf16_encode_sr(INFINITY, 0xFFFFFFFFu) == 0x7F80);
    uint16_t bn = fqt_bf16_encode_sr(f_of(0xFFC00001u), 0xFFFFFFFFu);
    CHECK_MSG((bn & 0xFF80) == 0xFF80 && (bn & 0x7F), "bf16 SR of -NaN gave 0x%04x", bn);

    /* random inputs against the oracles */
    int64_t bad[6] = {0};
    for (int t = 0; t < N_RANDOM_CASES; t++) {
        uint64_t z = rng_next();
        uint32_t r = (uint32_t)(z >> 32);
        uint32_t m = (uint32_t)z & 0x807FFFFFu; /* sign and mantissa */
        float x2 = f_of(m | ((uint32_t)(124 + rng_next() % 6) << 23));  /* 2^-3 .. 2^2 */
        float x4 = f_of(m | ((uint32_t)(114 + rng_next() % 24) << 23)); /* 2^-13 .. 2^10 */
        float x5 = f_of(m | ((uint32_t)(106 + rng_next() % 40) << 23)); /* 2^-21 .. 2^18 */
        float xi = (float)(rng_unit() * 18.0 - 9.0);
        float xn = (float)(rng_unit() * 2.4 - 1.2);
        uint32_t g, w;
        if ((g = fqt_e2m1_encode_sr(x2, r)) != (w = want_e2m1_sr(x2, r)) && bad[0]++ < 3)
            fprintf(stderr, "  e2m1 sr(%.9g, %08x) = 0x%x want 0x%x\n", (double)x2, r, g, w);
        if ((g = fqt_e4m3_encode_sr(x4, r)) != (w = want_e4m3_sr(x4, r)) && bad[1]++ < 3)
            fprintf(stderr, "  e4m3 sr(%.9g, %08x) = 0x%x want 0x%x\n", (double)x4, r, g, w);
        if ((g = fqt_e5m2_encode_sr(x5, r)) != (w = want_e5m2_sr(x5, r)) && bad[2]++ < 3)
            fprintf(stderr, "  e5m2 sr(%.9g, %08x) = 0x%x want 0x%x\n", (double)x5, r, g, w);
        if ((g = fqt_int4_encode_sr(xi, r)) != (w = want_int4_sr(xi, r)) && bad[3]++ < 3)
            fprintf(stderr, "  int4 sr(%.9g, %08x) = 0x%x want 0x%x\n", (double)xi, r, g, w);
        if ((g = fqt_nf4_encode_sr(xn, r)) != (w = want_nf4_sr(xn, r)) && bad[4]++ < 3)
            fprintf(stderr, "  nf4 sr(%.9g, %08x) = 0x%x want 0x%x\n", (double)xn, r, g, w);
        float xb = f_of((uint32_t)(z >> 7) & 0xFF7FFFFFu); /* finite: exponent < 255 */
        uint32_t wb = (u_of(xb) + (r >> 16)) >> 16;
        if ((g = fqt_bf16_encode_sr(xb, r)) != wb && bad[5]++ < 3)
            fprintf(stderr, "  bf16 sr(%.9g, %08x) = 0x%x want 0x%x\n", (double)xb, r, g, wb);
    }
    const char *names[6] = {"e2m1", "e4m3", "e5m2", "int4", "nf4", "bf16"};
    for (int k = 0; k < 6; k++)
        CHECK_MSG(bad[k] == 0, "%s SR: %lld of %d random cases differ from §4", names[k],
                  (long long)bad[k], N_RANDOM_CASES);
}

/* Values on the grid never move, whatever the random bits (§1). */
static void test_grid_fixed(void) {
    const uint32_t rs[] = {0, 1, 0xFF, 0x100, 0x7FFFFFFF, 0x80000000u, 0xFFFFFF00u, 0xFFFFFFFFu,
                           0x12345678, 0xDEADBEEF};
    int64_t bad = 0;
    for (size_t k = 0; k < sizeof rs / sizeof rs[0]; k++) {
        uint32_t r = rs[k];
        for (unsigned c = 0; c < 16; c++) {
            bad += fqt_e2m1_encode_sr(fqt_e2m1_decode((uint8_t)c), r) != c;
            bad += fqt_nf4_encode_sr(fqt_nf4_decode((uint8_t)c), r) != c;
            if (c != 8) bad += fqt_int4_encode_sr(fqt_int4_decode((uint8_t)c), r) != c;
        }
        for (unsigned c = 0; c < 256; c++) {
            if ((c & 0x7F) != 0x7F) bad += fqt_e4m3_encode_sr(fqt_e4m3_decode((uint8_t)c), r) != c;
            if ((c & 0x7F) < 0x7C) bad += fqt_e5m2_encode_sr(fqt_e5m2_decode((uint8_t)c), r) != c;
        }
        for (uint32_t c = 0; c < 0x7F80; c += 37)
            bad += fqt_bf16_encode_sr(f_of(c << 16), r) != c;
    }
    CHECK_MSG(bad == 0, "%lld grid values moved under SR", (long long)bad);
}

/* ---- unbiasedness ------------------------------------------------------------------ */

/* Checks mean and P(up) of n draws against x and f, 5 sigma plus the 2^-24 granularity of u. */
static void check_stats(const char *what, double x, double lo, double hi, int64_t n, int64_t ups,
                        double sum) {
    double f = (x - lo) / (hi - lo);
    double sp = sqrt(f * (1 - f) / (double)n);
    double p = (double)ups / (double)n, mean = sum / (double)n;
    double tol_p = 5 * sp + 0x1p-24, tol_m = (hi - lo) * tol_p;
    CHECK_MSG(fabs(p - f) <= tol_p, "%s x=%.9g: P(up) %.6f, want %.6f +- %.2g (n %lld)", what, x,
              p, f, tol_p, (long long)n);
    CHECK_MSG(fabs(mean - x) <= tol_m, "%s x=%.9g: mean %.9g, want +- %.2g", what, x, mean, tol_m);
}

static void test_unbiased_scalar(void) {
    const float xs2[] = {0.1f, 0.3f, 0.77f, 1.1f, 1.9f, 2.5f, 3.3f, 4.9f, 5.999f, -0.2f, -2.2f,
                         -5.5f};
    const float xs4[] = {0.3f, 1.7f, 100.3f, 300.0f, 447.0f, 0.0013f, -5.55f, -0.017f};
    uint64_t seed = 0xC0FFEE1234ull;
    for (size_t k = 0; k < sizeof xs2 / sizeof xs2[0]; k++) {
        float x = xs2[k];
        int il = 0;
        double a = fabs((double)x);
        while (!(E2M1_MAG[il] <= a && a < E2M1_MAG[il + 1])) il++;
        uint32_t lo_code = (signbit(x) ? 8u : 0u) | (uint32_t)il;
        int64_t ups = 0;
        double sum = 0;
        for (int64_t i = 0; i < N_SCALAR_DRAWS; i++) {
            uint8_t c = fqt_e2m1_encode_sr(x, fqt_sr_bits(seed, fqt_sr_stream(1, 0, (uint32_t)k), (uint64_t)i));
            ups += c != lo_code;
            sum += fqt_e2m1_decode(c);
        }
        /* work in magnitudes, so lo < hi for negative x too */
        check_stats("e2m1", a, E2M1_MAG[il], E2M1_MAG[il + 1], N_SCALAR_DRAWS, ups,
                    signbit(x) ? -sum : sum);
    }
    for (size_t k = 0; k < sizeof xs4 / sizeof xs4[0]; k++) {
        float x = xs4[k];
        int il = 0;
        double a = fabs((double)x);
        while (!(E4M3_MAGS[il] <= a && a < E4M3_MAGS[il + 1])) il++;
        uint32_t lo_code = (signbit(x) ? 0x80u : 0u) | (uint32_t)il;
        int64_t ups = 0;
        double sum = 0;
        for (int64_t i = 0; i < N_SCALAR_DRAWS; i++) {
            uint8_t c = fqt_e4m3_encode_sr(x, fqt_sr_bits(seed, fqt_sr_stream(2, 0, (uint32_t)k), (uint64_t)i));
            ups += c != lo_code;
            sum += fqt_e4m3_decode(c);
        }
        check_stats("e4m3", a, E4M3_MAGS[il], E4M3_MAGS[il + 1], N_SCALAR_DRAWS, ups,
                    signbit(x) ? -sum : sum);
    }
}

/* NVFP4 blocks with exactly known scales (§5.3): row 0 holds amax_t = 5.25, so
 * s_enc = 2688 / 5.25 = 512 and s_dec = 2^-9 exactly. Every other row is one block
 * {3, x_1..x_15}: sb = UE4M3((3 / 6) * 512) = 256, inv = 1 / (256 * 2^-9) = 2, so the element is
 * E2M1_SR(2 x) and dequantizes to v / 2: the grid is E2M1 / 2 = {0, .25, .5, .75, 1, 1.5, 2, 3}.
 * Each column of the row range 1..R-1 holds n = R - 1 independent draws of one x. */
static void test_unbiased_nvfp4(void) {
    const float xs[15] = {0.1f, 0.3f, 0.6f, 0.9f, 1.2f, 1.7f, 2.2f, 2.9f, -0.4f, -2.6f, 0.05f,
                          1.3f, -0.7f, 2.45f, -1.01f};
    const int64_t R = N_BLOCK_ROWS, C = 16;
    float *src = malloc((size_t)(R * C) * sizeof *src), *dst = malloc((size_t)(R * C) * sizeof *dst);
    for (int64_t r = 0; r < R; r++) {
        src[r * C] = r == 0 ? 5.25f : 3.0f;
        for (int j = 1; j < C; j++) src[r * C + j] = xs[j - 1];
    }
    fqt_format f;
    CHECK(fqt_format_parse("nvfp4", &f) == FQT_OK);
    fqt_status st = fqt_qdq(&f, src, dst, R, C, FQT_AXIS_ROWS, FQT_ROUND_SR, 42, fqt_sr_stream(9, 1, 3), NULL);
    CHECK(st == FQT_OK);
    for (int j = 1; j < C; j++) {
        double a = fabs((double)xs[j - 1]);
        int il = 0;
        while (!(E2M1_MAG[il] / 2 <= a && a < E2M1_MAG[il + 1] / 2)) il++;
        double lo = E2M1_MAG[il] / 2, hi = E2M1_MAG[il + 1] / 2;
        int64_t ups = 0, off = 0;
        double sum = 0;
        for (int64_t r = 1; r < R; r++) {
            double d = fabs((double)dst[r * C + j]);
            ups += d == hi;
            off += d != hi && d != lo;
            sum += d;
        }
        CHECK_MSG(off == 0, "nvfp4 SR x=%g: %lld values off the {lo, hi} pair", (double)xs[j - 1],
                  (long long)off);
        check_stats("nvfp4", a, lo, hi, R - 1, ups, sum);
    }
    /* the block maximum 3 is on the grid: it never moves */
    int64_t moved = 0;
    for (int64_t r = 1; r < R; r++) moved += dst[r * C] != 3.0f;
    CHECK_MSG(moved == 0, "nvfp4 SR moved the on-grid 3.0 in %lld blocks", (long long)moved);
    free(src);
    free(dst);
}

/* ---- the element index of fqt_quantize (§4: row-major in the quantized layout) --------- */

/* e2m1:b16:ue4m3 without :tensor has s_enc = s_dec = 1; a block whose amax is 6 gets
 * sb = UE4M3(6 / 6 * 1) = 0x38 (1.0), inv = 1, so every element is exactly
 * E2M1_SR(x, fqt_sr_bits(seed, stream, i)). src [12, 40] has 6 in all of row 0 and in columns
 * 0, 16, 32 of every row, so every row block (cols 0-15, 16-31, 32-39) and every column block
 * (12 rows, one partial block) has amax 6. */
static void test_quantize_index(void) {
    const int64_t R = 12, C = 40;
    float src[12 * 40];
    for (int64_t r = 0; r < R; r++)
        for (int64_t c = 0; c < C; c++)
            src[r * C + c] = (r == 0 || c % 16 == 0) ? 6.0f : (float)(rng_unit() * 11.8 - 5.9);
    fqt_format f;
    CHECK(fqt_format_parse("e2m1:b16:ue4m3", &f) == FQT_OK);
    const uint64_t seed = 0xABCDEF0123ull, stream = fqt_sr_stream(77, 2, 5);
    for (int ax = 0; ax < 2; ax++) {
        int64_t qr = ax ? C : R, qc = ax ? R : C;
        fqt_qtensor q;
        CHECK(fqt_qtensor_alloc(&q, &f, qr, qc) == FQT_OK);
        fqt_status st = fqt_quantize(&q, src, R, C, ax ? FQT_AXIS_COLS : FQT_AXIS_ROWS,
                                     FQT_ROUND_SR, seed, stream, NULL);
        CHECK(st == FQT_OK);
        int64_t bad = 0, bad_scale = 0;
        for (int64_t i = 0; i < qr; i++)
            for (int64_t j = 0; j < qc; j++) {
                float x = ax ? src[j * C + i] : src[i * C + j];
                uint32_t want = fqt_e2m1_encode_sr(x, fqt_sr_bits(seed, stream, (uint64_t)(i * qc + j)));
                uint32_t got = (q.codes[i * q.row_bytes + j / 2] >> (4 * (j & 1))) & 0xF;
                if (got != want && bad++ < 3)
                    fprintf(stderr, "  axis %d [%lld,%lld] x=%g: code 0x%x, want 0x%x\n", ax,
                            (long long)i, (long long)j, (double)x, got, want);
            }
        for (int64_t s = 0; s < q.scale_rows * q.scale_cols; s++) bad_scale += q.scales[s] != 0x38;
        CHECK_MSG(bad == 0, "SR index mapping, axis %d: %lld codes differ", ax, (long long)bad);
        CHECK_MSG(bad_scale == 0, "axis %d: %lld scales not 0x38", ax, (long long)bad_scale);
        CHECK_BITS(q.tensor_scale, 1.0f);
        fqt_qtensor_free(&q);
    }
}

/* ---- reproducibility ---------------------------------------------------------------- */

static float *gauss_tensor(int64_t n, uint64_t salt) {
    float *x = malloc((size_t)n * sizeof *x);
    uint64_t keep = rng_state;
    rng_state = salt;
    for (int64_t i = 0; i < n; i++) {
        double u1 = rng_unit() + 0x1p-60, u2 = rng_unit();
        x[i] = (float)(sqrt(-2 * log(u1)) * cos(6.283185307179586 * u2));
    }
    rng_state = keep;
    return x;
}

typedef struct { fqt_qtensor q; fqt_status st; } qresult;

static qresult quant(const char *fmt, const float *src, int64_t R, int64_t C, fqt_axis ax,
                     fqt_rounding rnd, uint64_t seed, uint64_t stream) {
    qresult res;
    fqt_format f;
    CHECK(fqt_format_parse(fmt, &f) == FQT_OK);
    CHECK(fqt_qtensor_alloc(&res.q, &f, ax ? C : R, ax ? R : C) == FQT_OK);
    res.st = fqt_quantize(&res.q, src, R, C, ax, rnd, seed, stream, NULL);
    return res;
}

static size_t code_bytes(const fqt_qtensor *q) { return (size_t)(q->rows * q->row_bytes); }
static size_t scale_bytes(const fqt_qtensor *q) {
    return (size_t)(q->scale_rows * q->scale_cols) * (q->fmt.scale == FQT_SCALE_FP32 ? 4 : 1);
}
static bool same(const fqt_qtensor *a, const fqt_qtensor *b) {
    return code_bytes(a) == code_bytes(b) && memcmp(a->codes, b->codes, code_bytes(a)) == 0 &&
           scale_bytes(a) == scale_bytes(b) && memcmp(a->scales, b->scales, scale_bytes(a)) == 0 &&
           u_of(a->tensor_scale) == u_of(b->tensor_scale) && a->n_nonfinite == b->n_nonfinite;
}
static int64_t differing_bytes(const fqt_qtensor *a, const fqt_qtensor *b) {
    int64_t d = 0;
    for (size_t i = 0; i < code_bytes(a); i++) d += a->codes[i] != b->codes[i];
    return d;
}

static void test_reproducible(void) {
    const int64_t R = 64, C = 256;
    float *x = gauss_tensor(R * C, 11);
    const uint64_t s0 = fqt_sr_stream(3, 1, 100);
    qresult a = quant("nvfp4", x, R, C, FQT_AXIS_ROWS, FQT_ROUND_SR, 1, s0);
    qresult b = quant("nvfp4", x, R, C, FQT_AXIS_ROWS, FQT_ROUND_SR, 1, s0);
    qresult c = quant("nvfp4", x, R, C, FQT_AXIS_ROWS, FQT_ROUND_SR, 2, s0);
    qresult d = quant("nvfp4", x, R, C, FQT_AXIS_ROWS, FQT_ROUND_SR, 1, fqt_sr_stream(3, 1, 101));
    qresult e = quant("nvfp4", x, R, C, FQT_AXIS_ROWS, FQT_ROUND_SR, 1, fqt_sr_stream(3, 2, 100));
    CHECK(same(&a.q, &b.q));
    /* with 8192 code bytes each holding two off-grid elements, another stream of bits changes
     * a large fraction of them; 1000 is far below the expected ~2000+ */
    CHECK_MSG(differing_bytes(&a.q, &c.q) > 1000, "other seed: only %lld bytes differ",
              (long long)differing_bytes(&a.q, &c.q));
    CHECK_MSG(differing_bytes(&a.q, &d.q) > 1000, "other step: only %lld bytes differ",
              (long long)differing_bytes(&a.q, &d.q));
    CHECK_MSG(differing_bytes(&a.q, &e.q) > 1000, "other role: only %lld bytes differ",
              (long long)differing_bytes(&a.q, &e.q));
    /* scales do not depend on the rounding bits */
    CHECK(memcmp(a.q.scales, c.q.scales, scale_bytes(&a.q)) == 0);
    qresult *all[] = {&a, &b, &c, &d, &e};
    for (int k = 0; k < 5; k++) fqt_qtensor_free(&all[k]->q);
    free(x);
}

static void test_thread_count(void) {
#ifdef _OPENMP
#ifdef FQT_SANITIZE
    const int64_t R = 96, C = 200;
#else
    const int64_t R = 512, C = 1000; /* C not a multiple of any block: partial blocks too */
#endif
    float *x = gauss_tensor(R * C, 12);
    x[5 * C + 17] = NAN;       /* a non-finite block must not depend on threads either */
    x[300 % R * C + 3] *= 1e4f; /* an outlier */
    const char *fmts[] = {"nvfp4", "nvfp4-2d", "mxfp4", "mxfp8", "fp8", "fp8-w", "int4", "nf4",
                          "e2m1:b32:e8m0:ceil"};
    int saved = omp_get_max_threads();
    for (size_t k = 0; k < sizeof fmts / sizeof fmts[0]; k++)
        for (int ax = 0; ax < 2; ax++)
            for (int rnd = 0; rnd < 2; rnd++) {
                omp_set_num_threads(1);
                qresult one = quant(fmts[k], x, R, C, (fqt_axis)ax, (fqt_rounding)rnd, 7, 9);
                for (int nt = 2; nt <= 4; nt += 2) {
                    omp_set_num_threads(nt);
                    qresult many = quant(fmts[k], x, R, C, (fqt_axis)ax, (fqt_rounding)rnd, 7, 9);
                    CHECK_MSG(same(&one.q, &many.q) && one.st == many.st,
                              "%s axis %d rounding %d: 1 vs %d threads differ", fmts[k], ax, rnd, nt);
                    fqt_qtensor_free(&many.q);
                }
                CHECK(one.st == FQT_ERR_NONFINITE && one.q.n_nonfinite == 1);
                fqt_qtensor_free(&one.q);
            }
    omp_set_num_threads(saved);
    free(x);
#else
    printf("SKIP thread-count independence: built without OpenMP\n");
#endif
}

int main(void) {
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    build_mags();
    test_philox();
    test_sr_bits_mapping();
    test_sr_rule();
    test_grid_fixed();
    test_unbiased_scalar();
    test_unbiased_nvfp4();
    test_quantize_index();
    test_reproducible();
    test_thread_count();
    clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("test_sr: %.2f s\n", (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec));
    return check_finish();
}
