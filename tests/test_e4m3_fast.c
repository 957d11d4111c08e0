/* tests/test_e4m3_fast.c — the bit-arithmetic E4M3 encoders of formats/codec.h (the GPU fp8
 * quantizers' fqt_e4m3_rne_bits_i, fqt_e4m3_sr_bits_i) against the reference encoders
 * fqt_e4m3_rne_i, fqt_e4m3_sr_i, code for code.
 *
 * Inputs: every 3rd float of [2^-11, 512) (E4M3's subnormals, every binade of its grid, the
 * saturation at 448 and the ties below it), every 7th of their negatives, every 409th bit
 * pattern of all 2^32 (every exponent, float subnormals, infinities, NaNs with payloads), and
 * by name the grid edges and their neighbours. SR, for each input: the random words just
 * below, at and just above the one where the reference's decision flips, and the two
 * extremes. `test_e4m3_fast --all` runs every one of the 2^32 patterns instead (minutes). */
#include "encoder_check.h"
#include "formats/codec.h"

#include <math.h>
#include <stdlib.h>


/* The reference's SR fraction as a count of 2^-24 (rounded down): fqt_mf_sr's own terms. */
static uint32_t sr_threshold(float x) {
    const float a = fabsf(x);
    if (!(a < 448.0f) || a == 0.0f) return 0;
    uint32_t u;
    memcpy(&u, &a, 4);
    double f;
    if (a >= 0x1p-6f) {
        f = (double)(u & 0xFFFFFu) * 0x1p-20;
    } else {
        const float q = ldexpf(a, 9);
        f = (double)(q - floorf(q));
    }
    f *= 0x1p24;
    return f >= 16777215.0 ? 16777215u : (uint32_t)f;
}

int main(int argc, char **argv) {
    enc_check c = {"E4M3", fqt_e4m3_rne_bits_i, fqt_e4m3_rne_i, fqt_e4m3_sr_bits_i, fqt_e4m3_sr_i, sr_threshold, 0, 0, 0};
    if (argc > 1 && !strcmp(argv[1], "--all")) {
        enc_check_all(&c);
    } else {
        for (uint32_t u = 0x3A000000u; u < 0x44000000u; u += 3) enc_check_one(&c, u); /* [2^-11, 512) */
        for (uint32_t u = 0xBA000000u; u < 0xC4000000u; u += 7) enc_check_one(&c, u); /* and negated */
        const float named[] = {0.0f, 0x1p-10f, 0x1p-9f, 1.5f * 0x1p-9f, 0x1p-7f, 0x1p-6f, 0.015625f * 1.0625f,
                               1.0f, 1.0625f, 1.125f, 1.1875f, 240.0f, 416.0f, 432.0f, 448.0f, 464.0f, 480.0f,
                               1e30f, INFINITY, NAN, 0x1p-149f, 0x1p-126f};
        enc_check_sampled(&c, named, sizeof named / sizeof *named);
    }
    enc_check_report(&c);
    /* the decoder (bit arithmetic since the GPU quantizers decode a block scale per block):
     * every code against the definition, 2^(e-7) (1 + m/8), m 2^-9 for e = 0, 0x7F NaN */
    int bad_dec = 0;
    for (int code = 0; code < 256; code++) {
        const int e = (code >> 3) & 15, m = code & 7;
        double want = e ? ldexp(1.0 + m / 8.0, e - 7) : ldexp((double)m, -9);
        if (code & 0x80) want = -want;
        const float got = fqt_e4m3_dec_i((uint8_t)code);
        if ((code & 0x7F) == 0x7F ? !isnan(got) : (double)got != want || !!signbit(got) != !!(code & 0x80)) bad_dec++;
    }
    CHECK_MSG(bad_dec == 0, "%d E4M3 codes decode wrongly", bad_dec);
    /* the cases the derivation turns on, by value */
    CHECK(fqt_e4m3_rne_bits_i(448.0f) == 0x7E && fqt_e4m3_rne_bits_i(464.0f) == 0x7E && fqt_e4m3_rne_bits_i(1e9f) == 0x7E);
    CHECK(fqt_e4m3_rne_bits_i(1.0625f) == 0x38 && fqt_e4m3_rne_bits_i(1.1875f) == 0x3A); /* ties to even */
    CHECK(fqt_e4m3_rne_bits_i(0x1p-10f) == 0x00 && fqt_e4m3_rne_bits_i(1.5f * 0x1p-9f) == 0x02); /* subnormal ties */
    CHECK(fqt_e4m3_rne_bits_i(-INFINITY) == 0xFF && fqt_e4m3_rne_bits_i(-0.0f) == 0x80);
    CHECK(fqt_e4m3_sr_bits_i(1.0625f, 0x7FFFFFFFu) == 0x39 && fqt_e4m3_sr_bits_i(1.0625f, 0x80000000u) == 0x38);
    CHECK(fqt_e4m3_sr_bits_i(500.0f, 0) == 0x7E && fqt_e4m3_sr_bits_i(-0.0f, 0xFFFFFFFFu) == 0x80);
    printf("  %lld inputs, RNE and SR (5 random words each): the bit forms equal the references\n", c.n);
    return check_finish();
}
