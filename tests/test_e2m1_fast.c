/* tests/test_e2m1_fast.c — the bit-arithmetic E2M1 encoders of formats/codec.h (the GPU
 * quantizers' fqt_e2m1_rne_bits_i, fqt_e2m1_sr_bits_i) against the reference encoders
 * fqt_e2m1_rne_i, fqt_e2m1_sr_i, code for code.
 *
 * Inputs: every float in [2^-2, 8) (the binades where the grid, the ties and the saturation
 * are; 41.9 M values), every 5th of their negatives, every 409th bit pattern of all 2^32 (every
 * exponent, subnormals, infinities, NaNs with payloads), and by name the grid points, the
 * midpoints and their neighbours. SR, for each input: the random words just below, at and just
 * above the one where the reference's decision flips (from its own fraction), and the two
 * extremes. `test_e2m1_fast --all` runs every one of the 2^32 patterns instead (minutes). */
#include "check.h"
#include "formats/codec.h"

#include <math.h>
#include <stdlib.h>

static long long bad_rne, bad_sr;

/* The fraction that fqt_e2m1_sr_i compares its uniform variate with, as a count of 2^-24:
 * the reference's own (a - lo) * inv_step, scaled. */
static uint32_t sr_threshold(float x) {
    const float a = fabsf(x);
    if (!(a < 6.0f)) return 0;
    const int c = (a >= 0.5f) + (a >= 1.0f) + (a >= 1.5f) + (a >= 2.0f) + (a >= 3.0f) + (a >= 4.0f);
    const float lo = fqt_e2m1_mag((uint32_t)c), inv = c < 4 ? 2.0f : c < 6 ? 1.0f : 0.5f;
    const double f = (double)((a - lo) * inv) * 0x1p24;
    return f >= 16777215.0 ? 16777215u : (uint32_t)f;
}

static void one(uint32_t u) {
    float x;
    memcpy(&x, &u, 4);
    if (fqt_e2m1_rne_bits_i(x) != fqt_e2m1_rne_i(x) && ++bad_rne <= 10)
        fprintf(stderr, "  rne 0x%08x (%a): bits %u, reference %u\n", u, (double)x, fqt_e2m1_rne_bits_i(x),
                fqt_e2m1_rne_i(x));
    const uint32_t k = sr_threshold(x);
    const uint32_t rnds[5] = {0u, 0xFFFFFFFFu, k ? (k - 1) << 8 | 0xFFu : 0u, k << 8, k < 16777215u ? (k + 1) << 8 : k << 8 | 0xFFu};
    for (int i = 0; i < 5; i++)
        if (fqt_e2m1_sr_bits_i(x, rnds[i]) != fqt_e2m1_sr_i(x, rnds[i]) && ++bad_sr <= 10)
            fprintf(stderr, "  sr 0x%08x (%a) rnd 0x%08x: bits %u, reference %u\n", u, (double)x, rnds[i],
                    fqt_e2m1_sr_bits_i(x, rnds[i]), fqt_e2m1_sr_i(x, rnds[i]));
}

int main(int argc, char **argv) {
    long long n = 0;
    if (argc > 1 && !strcmp(argv[1], "--all")) {
        for (uint64_t u = 0; u < (1ull << 32); u++) one((uint32_t)u);
        n = 1ll << 32;
    } else {
        for (uint32_t u = 0x3E800000u; u < 0x41000000u; u++, n++) one(u); /* [2^-2, 8) */
        for (uint32_t u = 0xBE800000u; u < 0xC1000000u; u += 5, n++) one(u); /* and negated */
        for (uint64_t u = 0; u < (1ull << 32); u += 409, n++) one((uint32_t)u);
        const float named[] = {0.0f, 0.25f, 0.5f, 0.75f, 1.0f, 1.25f, 1.5f, 1.75f, 2.0f, 2.5f, 3.0f,
                               3.5f, 4.0f, 5.0f, 6.0f, 7.0f, 8.0f, 1e30f, INFINITY, NAN, 0x1p-149f, 0x1p-126f};
        for (size_t i = 0; i < sizeof named / sizeof *named; i++)
            for (int d = -2; d <= 2; d++)
                for (int s = 0; s < 2; s++) {
                    uint32_t u;
                    memcpy(&u, &named[i], 4);
                    u = (uint32_t)((int64_t)u + d) | (s ? 0x80000000u : 0u);
                    one(u);
                    n++;
                }
    }
    CHECK_MSG(bad_rne == 0, "%lld inputs where fqt_e2m1_rne_bits_i differs from fqt_e2m1_rne_i", bad_rne);
    CHECK_MSG(bad_sr == 0, "%lld (input, rnd) pairs where fqt_e2m1_sr_bits_i differs from fqt_e2m1_sr_i", bad_sr);
    /* the cases the derivation turns on, by value */
    CHECK(fqt_e2m1_rne_bits_i(1.25f) == 2 && fqt_e2m1_rne_bits_i(1.75f) == 4); /* ties to even */
    CHECK(fqt_e2m1_rne_bits_i(5.0f) == 6 && fqt_e2m1_rne_bits_i(nextafterf(5.0f, 9.0f)) == 7);
    CHECK(fqt_e2m1_rne_bits_i(0.25f) == 0 && fqt_e2m1_rne_bits_i(0.75f) == 2);
    CHECK(fqt_e2m1_rne_bits_i(-INFINITY) == 15 && fqt_e2m1_rne_bits_i(-NAN) == 0);
    CHECK(fqt_e2m1_sr_bits_i(1.25f, 0x7FFFFFFFu) == 3 && fqt_e2m1_sr_bits_i(1.25f, 0x80000000u) == 2); /* up iff u < 1/2 */
    CHECK(fqt_e2m1_sr_bits_i(-0.0f, 0xFFFFFFFFu) == 8 && fqt_e2m1_sr_bits_i(6.0f, 0) == 7);
    printf("  %lld inputs, RNE and SR (5 random words each): the bit forms equal the references\n", n);
    return check_finish();
}
