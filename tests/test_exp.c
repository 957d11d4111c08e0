/* tests/test_exp.c — cpu/exp_f32.h, the exp of the CPU reference's float ops.
 *
 * Checks, over a sample of about 10^7 float bit patterns spread over all 2^32 (a stride of
 * 409 from 0, so every exponent and both signs, NaNs, infinities and subnormals included) and
 * the edge cases by name:
 *  - the vector loop (`omp simd`, as the ops run it) gives the bits of the scalar function,
 *    which is what makes the ops' results independent of the vector width;
 *  - against libm's double exp rounded to float, at most 1 ulp, and equal but for a handful
 *    (an exhaustive run over all 2^32 inputs found one difference: -0x1.03d5bep+0);
 *  - NaN in, a quiet NaN out with the payload kept; exp(+-0) = 1; +Inf -> +Inf; -Inf -> +0;
 *    the overflow and underflow thresholds where float's range ends. */
#include "check.h"
#include "cpu/exp_f32.h"

#include <math.h>
#include <stdlib.h>

static uint32_t bits(float x) {
    uint32_t u;
    memcpy(&u, &x, 4);
    return u;
}
static float from_bits(uint32_t u) {
    float x;
    memcpy(&x, &u, 4);
    return x;
}

/* Kept out of line so that the compiler vectorizes it as the ops' loops are. */
__attribute__((noinline)) static void exp_vec(float *restrict y, const float *restrict x, int64_t n) {
#ifdef _OPENMP
#pragma omp simd
#endif
    for (int64_t i = 0; i < n; i++) y[i] = fqt_exp_f32(x[i]);
}
__attribute__((noinline)) static float exp_one(float x) { return fqt_exp_f32(x); }

int main(void) {
    const int64_t n = (int64_t)((1ull << 32) / 409) + 1;
    float *x = malloc((size_t)n * 4), *y = malloc((size_t)n * 4);
    for (int64_t i = 0; i < n; i++) x[i] = from_bits((uint32_t)((uint64_t)i * 409));
    exp_vec(y, x, n);
    int64_t vec_diff = 0, off = 0, far = 0, nan_bad = 0;
    for (int64_t i = 0; i < n; i++) {
        const float s = exp_one(x[i]);
        if (bits(s) != bits(y[i])) vec_diff++;
        if (isnan(x[i])) {
            nan_bad += bits(y[i]) != (bits(x[i]) | 0x00400000u);
            continue;
        }
        const float r = (float)exp((double)x[i]);
        if (bits(r) != bits(y[i])) {
            off++;
            const int64_t d = (int64_t)bits(r) - (int64_t)bits(y[i]);
            if (d > 1 || d < -1) far++;
        }
    }
    CHECK_MSG(vec_diff == 0, "vector loop and scalar function differ for %lld inputs", (long long)vec_diff);
    CHECK_MSG(far == 0, "%lld inputs more than 1 ulp from exp rounded to float", (long long)far);
    CHECK_MSG(off <= 2, "%lld inputs differ from exp rounded to float (expected at most a few)", (long long)off);
    CHECK_MSG(nan_bad == 0, "%lld NaN inputs not returned as the quieted NaN", (long long)nan_bad);
    printf("  %lld inputs: %lld differ from (float)exp((double)x), each by at most 1 ulp\n", (long long)n, (long long)off);

    /* the one known difference of the exhaustive run, 1 ulp */
    CHECK(bits(fqt_exp_f32(-0x1.03d5bep+0f)) + 1 == bits((float)exp((double)-0x1.03d5bep+0f)));
    CHECK(fqt_exp_f32(0.0f) == 1.0f && fqt_exp_f32(-0.0f) == 1.0f);
    CHECK(fqt_exp_f32(INFINITY) == INFINITY);
    CHECK(bits(fqt_exp_f32(-INFINITY)) == 0u);
    CHECK(isnan(fqt_exp_f32(NAN)));
    CHECK(bits(fqt_exp_f32(from_bits(0x7F800001u))) == 0x7FC00001u); /* signalling NaN quieted */
    CHECK(bits(fqt_exp_f32(from_bits(0xFFC12345u))) == 0xFFC12345u); /* payload and sign kept */
    /* float's range: exp(88.72283) is the largest finite, exp(88.72284) overflows; the
     * smallest subnormal 2^-149 from about -103.28 down to -103.97 */
    CHECK(fqt_exp_f32(88.72283f) == (float)exp((double)88.72283f) && isfinite(fqt_exp_f32(88.72283f)));
    CHECK(fqt_exp_f32(88.72284f) == INFINITY && fqt_exp_f32(1e30f) == INFINITY);
    CHECK(fqt_exp_f32(-103.97f) == 0x1p-149f && fqt_exp_f32(-103.98f) == 0.0f);
    CHECK(fqt_exp_f32(-104.5f) == 0.0f && fqt_exp_f32(-1e30f) == 0.0f);
    CHECK(fqt_exp_f32(-87.5f) == (float)exp(-87.5)); /* a subnormal result */
    CHECK(fqt_exp_f32(1.0f) == (float)exp(1.0) && fqt_exp_f32(-1.0f) == (float)exp(-1.0));
    free(x);
    free(y);
    return check_finish();
}
