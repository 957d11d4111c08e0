/* cpu/exp_f32.h — exp for the float ops of the CPU reference (softmax, cross-entropy, SiLU),
 * written so that loops over it vectorize (`omp simd`) and give the same bits at every vector
 * width and on every x86-64 or Arm CPU: plain IEEE double arithmetic, no table, no branch
 * that depends on the value, no FMA (the build contracts none).
 *
 * exp(x) = 2^k exp(r), k = nearest integer to x / ln 2, r = x - k ln 2 (|r| <= 0.347, in
 * double: the error of k ln 2 is below 2^-46 relative to exp(x)); exp(r) by its Taylor
 * polynomial of degree 11 in Horner form (truncation below 2^-47); 2^k put into the exponent
 * field of a double, which cannot overflow or underflow for the clamped x; then one rounding
 * to float. The double result is within about 2^-45 of exp(x), so the float is the correctly
 * rounded value except where exp(x) lies within that distance of a rounding boundary: over
 * all 2^32 float inputs it equals libm's double exp rounded to float for all but one
 * (-0x1.03d5bep+0, 1 ulp; glibc's expf differs from that for 170,648 inputs in [-105, 90]).
 * tests/test_exp.c checks a sample of 10^7. Special values: NaN gives NaN, x above
 * 89 (exp overflows float from 88.73) gives +Inf, x below -104 (exp below 2^-150) gives +0,
 * a NaN comes back quieted (as libm's x + x).
 *
 * Not for: anything that must match libm's expf bit for bit (the CUDA backend uses CUDA's
 * expf; tests compare it with tolerances). */
#ifndef FQT_CPU_EXP_F32_H
#define FQT_CPU_EXP_F32_H

#include <stdint.h>
#include <string.h>

static inline float fqt_exp_f32(float xf) {
    /* The clamp and the NaN case in integer arithmetic on the bits: floating-point selects
     * would keep the loop from vectorizing (they may raise exceptions on NaN). */
    uint32_t b;
    memcpy(&b, &xf, sizeof b);
    const uint32_t sign = b & 0x80000000u, mag = b & 0x7FFFFFFFu;
    const uint32_t lim = sign ? 0x42D00000u : 0x42B20000u; /* 104.0f, 89.0f */
    const uint32_t cb = sign | (mag < lim ? mag : lim);
    float xcf;
    memcpy(&xcf, &cb, sizeof xcf);
    const double xc = (double)xcf;
    const double t = xc * 0x1.71547652b82fep+0;      /* x / ln 2 */
    const double shifted = t + 0x1.8p+52;            /* k in the low mantissa bits, ties to even */
    const double kd = shifted - 0x1.8p+52;
    const double r = xc - kd * 0x1.62e42fefa39efp-1; /* x - k ln 2 */
    double p = 0x1.ae64567f544e4p-26;                /* 1/11! */
    p = p * r + 0x1.27e4fb7789f5cp-22;               /* 1/10! */
    p = p * r + 0x1.71de3a556c734p-19;               /* 1/9! */
    p = p * r + 0x1.a01a01a01a01ap-16;               /* 1/8! */
    p = p * r + 0x1.a01a01a01a01ap-13;               /* 1/7! */
    p = p * r + 0x1.6c16c16c16c17p-10;               /* 1/6! */
    p = p * r + 0x1.1111111111111p-7;                /* 1/5! */
    p = p * r + 0x1.5555555555555p-5;                /* 1/4! */
    p = p * r + 0x1.5555555555555p-3;                /* 1/3! */
    p = p * r + 0x1p-1;                              /* 1/2! */
    p = p * r + 0x1p+0;
    p = p * r + 0x1p+0;
    uint64_t u;
    memcpy(&u, &shifted, sizeof u);
    /* shifted = 0x1.8p52 + k: its bits minus those of 0x1.8p52 are k (two's complement) */
    const uint64_t e = (u - UINT64_C(0x4338000000000000) + 1023) << 52;
    double s;
    memcpy(&s, &e, sizeof s);
    const float y = (float)(p * s);
    uint32_t yb;
    memcpy(&yb, &y, sizeof yb);
    /* NaN in: the same NaN, quieted; masks, not a select, for the same reason as above */
    const uint32_t nan_mask = 0u - (uint32_t)(mag > 0x7F800000u);
    yb = (yb & ~nan_mask) | ((b | 0x00400000u) & nan_mask);
    float out;
    memcpy(&out, &yb, sizeof out);
    return out;
}

#endif
