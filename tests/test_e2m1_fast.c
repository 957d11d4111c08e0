/* tests/test_e2m1_fast.c — the bit-arithmetic E2M1 encoders of formats/codec.h (the GPU
 * quantizers' fqt_e2m1_rne_bits_i, fqt_e2m1_sr_bits_i, and their grid-value forms
 * fqt_e2m1_rne_grid_i, fqt_e2m1_sr_grid_i with fqt_e2m1_grid_code_i) against the reference
 * encoders fqt_e2m1_rne_i, fqt_e2m1_sr_i, code for code; a grid form also has to give exactly
 * the decoded magnitude of its code.
 *
 * Inputs: every float in [2^-2, 8) (the binades where the grid, the ties and the saturation
 * are; 41.9 M values), every 5th of their negatives, every 409th bit pattern of all 2^32 (every
 * exponent, subnormals, infinities, NaNs with payloads), and by name the grid points, the
 * midpoints and their neighbours. SR, for each input: the random words just below, at and just
 * above the one where the reference's decision flips (from its own fraction), and the two
 * extremes. `test_e2m1_fast --all` runs every one of the 2^32 patterns instead (minutes). */
#include "encoder_check.h"
#include "formats/codec.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>


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

/* A grid form as an encoder: the sign and the code of the grid value, NaN to 0 as the
 * reference (the quantizer kernels send non-finite blocks elsewhere); 0xFF, which no encoder
 * returns, where the grid value is not exactly its code's magnitude. */
static uint8_t grid_encode(float x, float g) {
    const uint32_t u = fqt_f2u(x), c = fqt_e2m1_grid_code_i(g);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return 0;
    if (c > 7 || fqt_f2u(g) != fqt_f2u(fqt_e2m1_mag(c))) return 0xFF;
    return (uint8_t)(((u >> 28) & 8u) | c);
}
static uint8_t grid_rne(float x) { return grid_encode(x, fqt_e2m1_rne_grid_i(fabsf(x))); }
static uint8_t grid_sr(float x, uint32_t rnd) { return grid_encode(x, fqt_e2m1_sr_grid_i(fabsf(x), rnd)); }

static void check_inputs(enc_check *c, bool all) {
    if (all) {
        enc_check_all(c);
    } else {
        for (uint32_t u = 0x3E800000u; u < 0x41000000u; u++) enc_check_one(c, u); /* [2^-2, 8) */
        for (uint32_t u = 0xBE800000u; u < 0xC1000000u; u += 5) enc_check_one(c, u); /* and negated */
        const float named[] = {0.0f, 0.25f, 0.5f, 0.75f, 1.0f, 1.25f, 1.5f, 1.75f, 2.0f, 2.5f, 3.0f,
                               3.5f, 4.0f, 5.0f, 6.0f, 7.0f, 8.0f, 1e30f, INFINITY, NAN, 0x1p-149f, 0x1p-126f};
        enc_check_sampled(c, named, sizeof named / sizeof *named);
    }
    enc_check_report(c);
}

int main(int argc, char **argv) {
    const bool all = argc > 1 && !strcmp(argv[1], "--all");
    enc_check c = {"E2M1", fqt_e2m1_rne_bits_i, fqt_e2m1_rne_i, fqt_e2m1_sr_bits_i, fqt_e2m1_sr_i, sr_threshold, 0, 0, 0};
    enc_check g = {"E2M1 grid", grid_rne, fqt_e2m1_rne_i, grid_sr, fqt_e2m1_sr_i, sr_threshold, 0, 0, 0};
    check_inputs(&c, all);
    check_inputs(&g, all);
    /* the cases the derivation turns on, by value */
    CHECK(fqt_e2m1_rne_bits_i(1.25f) == 2 && fqt_e2m1_rne_bits_i(1.75f) == 4); /* ties to even */
    CHECK(fqt_e2m1_rne_bits_i(5.0f) == 6 && fqt_e2m1_rne_bits_i(nextafterf(5.0f, 9.0f)) == 7);
    CHECK(fqt_e2m1_rne_bits_i(0.25f) == 0 && fqt_e2m1_rne_bits_i(0.75f) == 2);
    CHECK(fqt_e2m1_rne_bits_i(-INFINITY) == 15 && fqt_e2m1_rne_bits_i(-NAN) == 0);
    CHECK(fqt_e2m1_sr_bits_i(1.25f, 0x7FFFFFFFu) == 3 && fqt_e2m1_sr_bits_i(1.25f, 0x80000000u) == 2); /* up iff u < 1/2 */
    CHECK(fqt_e2m1_sr_bits_i(-0.0f, 0xFFFFFFFFu) == 8 && fqt_e2m1_sr_bits_i(6.0f, 0) == 7);
    CHECK(fqt_e2m1_rne_grid_i(1.25f) == 1.0f && fqt_e2m1_rne_grid_i(1.75f) == 2.0f && fqt_e2m1_rne_grid_i(5.0f) == 4.0f);
    CHECK(fqt_e2m1_rne_grid_i(0.25f) == 0.0f && fqt_e2m1_rne_grid_i(0.75f) == 1.0f && fqt_e2m1_rne_grid_i(INFINITY) == 6.0f);
    CHECK(fqt_e2m1_sr_grid_i(0.25f, 0x7FFFFFFFu) == 0.5f && fqt_e2m1_sr_grid_i(0.25f, 0x80000000u) == 0.0f);
    CHECK(fqt_e2m1_grid_code_i(0.5f) == 1 && fqt_e2m1_grid_code_i(6.0f) == 7 && fqt_e2m1_grid_code_i(0.0f) == 0);
    printf("  %lld inputs, RNE and SR (5 random words each): the bit and grid forms equal the references\n", c.n);
    return check_finish();
}
