/* formats/codec.h — every scalar bit conversion of fqt, defined once.
 *
 * Static inline and FQT_HD so the CPU reference (src/formats/) and the CUDA backend
 * compile the SAME source: the two can never disagree on a bit. docs/FORMATS.md §2-§4
 * is the contract; the section is named at each function. Not for: block logic (quant.c).
 *
 * Requires the default floating-point environment (round to nearest even, no FTZ/DAZ)
 * and no FMA contraction (the Makefile passes -ffp-contract=off). */
#ifndef FQT_FORMATS_CODEC_H
#define FQT_FORMATS_CODEC_H

#include "fqt/formats.h"

#include <math.h>
#include <string.h>

#if defined(__GNUC__) && !defined(__CUDACC__)
#define FQT_INLINE static inline __attribute__((always_inline))
#else
#define FQT_INLINE static inline FQT_HD
#endif

FQT_INLINE uint32_t fqt_f2u(float x) { uint32_t u; memcpy(&u, &x, 4); return u; }
FQT_INLINE float fqt_u2f(uint32_t u) { float x; memcpy(&x, &u, 4); return x; }

/* The uniform variate of §4: the top 24 bits of rnd as a float in [0, 1), exact. */
FQT_INLINE float fqt_sr_uniform(uint32_t rnd) { return (float)(rnd >> 8) * 0x1p-24f; }

/* ---- generic minifloat magnitude rounding (E4M3, E5M2, UE4M3, FP16) -------------------
 * a: finite magnitude >= 0. M mantissa bits, bias B. Returns the magnitude code (exponent
 * field << M | mantissa) of the RNE result, which may run past the format's largest code:
 * the caller saturates or maps to Inf. Carries out of the mantissa bump the exponent, as
 * they should. */
FQT_INLINE uint32_t fqt_mf_rne(float a, int M, int B) {
    if (a == 0.0f) return 0;
    uint32_t u = fqt_f2u(a);
    int e = (int)(u >> 23) - 127;
    if (e < 1 - B) {
        /* Target subnormal (or float subnormal): count units of 2^(1-B-M); the scaling by a
         * power of two is exact, rintf rounds half to even. */
        float q = rintf(ldexpf(a, M + B - 1));
        return (uint32_t)q;
    }
    int shift = 23 - M;
    uint32_t mant = u & 0x7FFFFFu;
    uint32_t rest = mant & ((1u << shift) - 1u), half = 1u << (shift - 1);
    uint32_t code = ((uint32_t)(e + B) << M) | (mant >> shift);
    if (rest > half || (rest == half && (code & 1u))) code++;
    return code;
}

/* SR counterpart (§1, §4): the truncated code plus one with probability equal to the
 * fractional distance, which is exact here (rest / 2^shift, or q - floor(q)). */
FQT_INLINE uint32_t fqt_mf_sr(float a, int M, int B, uint32_t rnd) {
    if (a == 0.0f) return 0;
    float uni = fqt_sr_uniform(rnd);
    uint32_t u = fqt_f2u(a);
    int e = (int)(u >> 23) - 127;
    if (e < 1 - B) {
        float q = ldexpf(a, M + B - 1);
        float lo = floorf(q);
        return (uint32_t)lo + (uni < q - lo ? 1u : 0u);
    }
    int shift = 23 - M;
    uint32_t mant = u & 0x7FFFFFu;
    uint32_t rest = mant & ((1u << shift) - 1u);
    uint32_t code = ((uint32_t)(e + B) << M) | (mant >> shift);
    float frac = ldexpf((float)rest, -shift);
    return code + (uni < frac ? 1u : 0u);
}

/* Decode a minifloat magnitude code with M mantissa bits and bias B (no specials). */
FQT_INLINE float fqt_mf_decode(uint32_t mag, int M, int B) {
    uint32_t e = mag >> M, m = mag & ((1u << M) - 1u);
    if (e == 0) return ldexpf((float)m, 1 - B - M);
    return ldexpf((float)((1u << M) | m), (int)e - B - M);
}

/* ---- §2.1 E2M1 ---------------------------------------------------------------------- */
FQT_INLINE float fqt_e2m1_mag(uint32_t c) {
    /* 0, .5 (subnormal), then (1 + m/2) * 2^(e-1): 1, 1.5, 2, 3, 4, 6 */
    if (c < 2) return 0.5f * (float)c;
    return (1.0f + 0.5f * (float)(c & 1u)) * (float)(1u << ((c >> 1) - 1u));
}

FQT_INLINE uint8_t fqt_e2m1_rne_i(float x) {
    uint8_t s = (uint8_t)((fqt_f2u(x) >> 31) << 3);
    float a = fabsf(x);
    /* Count the midpoints below a; ">" where the tie goes to the lower (even) code, ">="
     * where it goes up. NaN compares false everywhere and encodes as 0 (§2.1: the block
     * quantizer flags it). Branch-free, so loops over it vectorize. */
    uint8_t c = (uint8_t)((a > 0.25f) + (a >= 0.75f) + (a > 1.25f) + (a >= 1.75f) + (a > 2.5f) +
                          (a >= 3.5f) + (a > 5.0f));
    uint8_t keep_sign = (uint8_t)(0u - (uint8_t)(a == a)); /* a NaN's sign bit is dropped too */
    return (uint8_t)((s & keep_sign) | c);
}

FQT_INLINE uint8_t fqt_e2m1_sr_i(float x, uint32_t rnd) {
    uint8_t s = (uint8_t)((fqt_f2u(x) >> 31) << 3);
    float a = fabsf(x);
    if (a != a) return 0;
    if (a >= 6.0f) return (uint8_t)(s | 7);
    uint8_t c = (uint8_t)((a >= 0.5f) + (a >= 1.0f) + (a >= 1.5f) + (a >= 2.0f) + (a >= 3.0f) +
                          (a >= 4.0f));
    /* (a - lo) / (hi - lo), with the grid step a power of two: multiplying by its exact
     * reciprocal gives the same float, without a division. Exact (Sterbenz). */
    float lo = fqt_e2m1_mag(c), inv_step = c < 4 ? 2.0f : c < 6 ? 1.0f : 0.5f;
    float frac = (a - lo) * inv_step;
    return (uint8_t)(s | (c + (fqt_sr_uniform(rnd) < frac ? 1u : 0u)));
}

/* The same two functions in integer arithmetic on the float's bits, for the GPU's quantizer
 * kernels (where the compare ladders above cost more than the memory traffic). Equal to
 * fqt_e2m1_rne_i / fqt_e2m1_sr_i for every input and every rnd (tests/test_e2m1_fast.c;
 * checked once over all 2^32 inputs). Why they agree: for 1 <= a < 8 the top mantissa bit of
 * a is E2M1's mantissa bit, so the code is the bits from the exponent field down to it, minus
 * 252 (1.0f's 254 less code 2); rounding those bits to nearest-even is adding 2^21 - 1 plus
 * the kept bit, and the 22 bits below are the distance to the grid point under a in units of
 * the grid step, which is SR's fraction. Below 1 the grid step is 0.5: 2a is exact and is
 * rounded half to even (0 up to a = 0.25, 2 from a = 0.75: two compares) or split into floor
 * and fraction. No int-float conversions (a GPU issues those at an eighth of the rate of
 * other arithmetic): SR's 24-bit uniform u24 2^-24 is compared with the fraction m22 2^-22 of
 * a >= 1 as integers, and built as a float for a < 1 from (1 + (u24 >> 1) 2^-23) - 1 plus its
 * low bit's 2^-24 (each step exact). */
FQT_INLINE uint8_t fqt_e2m1_rne_bits_i(float x) {
    const uint32_t u = fqt_f2u(x), ua = u & 0x7FFFFFFFu;
    const uint32_t hi = ((ua + 0x1FFFFFu + ((ua >> 22) & 1u)) >> 22) - 252u; /* a >= 1 */
    const uint32_t lo = (ua > 0x3E800000u ? 1u : 0u) + (ua >= 0x3F400000u ? 1u : 0u); /* a < 1 */
    const uint32_t c = ua >= 0x3F800000u ? (hi > 7u ? 7u : hi) : lo;
    return ua > 0x7F800000u ? 0 : (uint8_t)(((u >> 28) & 8u) | c);
}

FQT_INLINE uint8_t fqt_e2m1_sr_bits_i(float x, uint32_t rnd) {
    const uint32_t u = fqt_f2u(x), ua = u & 0x7FFFFFFFu, u24 = rnd >> 8;
    const float q = fqt_u2f(ua) * 2.0f;                             /* a < 1: 2a in [0, 2) */
    const uint32_t lo = q >= 1.0f ? 1u : 0u;
    const float flo = q - (lo ? 1.0f : 0.0f);
    const float uni = (fqt_u2f(0x3F800000u | (u24 >> 1)) - 1.0f) + ((u24 & 1u) ? 0x1p-24f : 0.0f);
    const uint32_t hi = (ua >> 22) - 252u;                           /* 1 <= a < 6 */
    const bool small = ua < 0x3F800000u;
    const bool up = small ? uni < flo : u24 < ((ua & 0x3FFFFFu) << 2);
    const uint32_t c = (small ? lo : hi) + (up ? 1u : 0u);
    const uint32_t s = (u >> 28) & 8u;
    return ua > 0x7F800000u ? 0 : ua >= 0x40C00000u ? (uint8_t)(s | 7u) : (uint8_t)(s | c);
}

/* The same roundings as grid values: the magnitude decode(code) as a float, for a = |x| >= 0
 * (not NaN; +Inf saturates), which the GPU's quantizers multiply by the block scale for the
 * expanded operand (fqt_qtensor.expanded) and turn into a code with fqt_e2m1_grid_code_i, in
 * fewer instructions than the bit forms above plus a decode. Equal to fqt_e2m1_mag of those
 * codes for every input (tests/test_e2m1_fast.c). RNE: a clamped to 6 is added to and taken
 * from c = 2^(e+22), e = max(floor(log2 a), 0), whose ulp 2^(e-1) is the grid step of a's
 * binade (0.5 below 2), so the float addition rounds a to the grid, ties to even (the grid
 * point's parity in steps is its code's mantissa bit). SR: lo, the grid point at or below a,
 * by masking a's bits (one mantissa bit kept from 1 up, none in [0.5, 1), 0 below); up iff
 * the uniform variate u24 2^-24 is below (a - lo) / step, compared as u * step < a - lo (both
 * exact: step is a power of two, a - lo by Sterbenz); u is built from its bits: 0.5 + the low
 * 23 bits 2^-24, less 0.5 if the top bit is clear (exact, no int-float conversion). */
FQT_INLINE float fqt_e2m1_rne_grid_i(float a) {
    const float s = fminf(a, 6.0f);
    const uint32_t e = fqt_f2u(s) & 0x7F800000u;
    const float c = fqt_u2f((e > 0x3F800000u ? e : 0x3F800000u) + 0x0B000000u);
    return (s + c) - c;
}

FQT_INLINE float fqt_e2m1_sr_grid_i(float a, uint32_t rnd) {
    const float s = fminf(a, 6.0f);
    const uint32_t b = fqt_f2u(s), e = b & 0x7F800000u;
    const float step = fqt_u2f((e > 0x3F800000u ? e : 0x3F800000u) - 0x00800000u);
    const float lo = fqt_u2f(b >= 0x3F800000u ? b & 0xFFC00000u : b >= 0x3F000000u ? 0x3F000000u : 0u);
    const float u = fqt_u2f(0x3F000000u | ((rnd >> 8) & 0x7FFFFFu)) - ((rnd >> 31) ? 0.0f : 0.5f);
    const float prod = u * step;
    return s - lo > prod ? lo + step : lo;
}

/* The magnitude code (0..7) of a grid value g (0, 0.5, 1, 1.5, 2, 3, 4, 6). */
FQT_INLINE uint32_t fqt_e2m1_grid_code_i(float g) {
    const uint32_t b = fqt_f2u(g);
    return b >= 0x3F800000u ? (b >> 22) - 252u : b >> 29;
}

FQT_INLINE float fqt_e2m1_dec_i(uint8_t code) {
    float m = fqt_e2m1_mag(code & 7u);
    return (code & 8u) ? -m : m;
}

/* ---- §2.2 E4M3 (FN) and §3.2 UE4M3 ------------------------------------------------------ */
FQT_INLINE uint8_t fqt_e4m3_rne_i(float x) {
    uint8_t s = (uint8_t)((fqt_f2u(x) >> 31) << 7);
    float a = fabsf(x);
    if (!(a <= 3.4028235e38f)) return (uint8_t)(s | 0x7F); /* NaN, Inf -> NaN */
    uint32_t c = fqt_mf_rne(a, 3, 7);
    return (uint8_t)(s | (c > 0x7E ? 0x7E : c));
}

FQT_INLINE uint8_t fqt_e4m3_sr_i(float x, uint32_t rnd) {
    uint8_t s = (uint8_t)((fqt_f2u(x) >> 31) << 7);
    float a = fabsf(x);
    if (!(a <= 3.4028235e38f)) return (uint8_t)(s | 0x7F);
    if (a >= 448.0f) return (uint8_t)(s | 0x7E);
    uint32_t c = fqt_mf_sr(a, 3, 7, rnd);
    return (uint8_t)(s | (c > 0x7E ? 0x7E : c));
}

/* The same two encoders in bit arithmetic (no ldexpf, no branches on the exponent beyond one
 * compare), for the GPU quantizers; equal to fqt_e4m3_rne_i / fqt_e4m3_sr_i for every input
 * (tests/test_e4m3_fast.c, `--all`: every float and the SR decision's edge words). Normal
 * range (|x| >= 2^-6): the code is the float's bits rebased to E4M3's bias, 20 mantissa bits
 * dropped with round-half-even by an integer add; below it, units of 2^-9 counted exactly by
 * a power-of-two multiply and rintf / floorf (single instructions on the GPU). */
FQT_INLINE uint8_t fqt_e4m3_rne_bits_i(float x) {
    const uint32_t u = fqt_f2u(x), ua = u & 0x7FFFFFFFu, s = (u >> 24) & 0x80u;
    if (ua >= 0x7F800000u) return (uint8_t)(s | 0x7Fu); /* NaN, Inf -> NaN */
    const uint32_t c = ua >= 0x3C800000u ? (ua + 0x7FFFFu + ((ua >> 20) & 1u) - (120u << 23)) >> 20
                                         : (uint32_t)rintf(fqt_u2f(ua) * 512.0f);
    return (uint8_t)(s | (c > 0x7Eu ? 0x7Eu : c));
}

FQT_INLINE uint8_t fqt_e4m3_sr_bits_i(float x, uint32_t rnd) {
    const uint32_t u = fqt_f2u(x), ua = u & 0x7FFFFFFFu, s = (u >> 24) & 0x80u;
    if (ua >= 0x7F800000u) return (uint8_t)(s | 0x7Fu);
    if (ua >= 0x43E00000u) return (uint8_t)(s | 0x7Eu); /* >= 448 */
    uint32_t c;
    if (ua >= 0x3C800000u) { /* the fraction rest / 2^20 against the uniform (rnd >> 8) / 2^24 */
        c = ((ua - (120u << 23)) >> 20) + ((rnd >> 8) < ((ua & 0xFFFFFu) << 4) ? 1u : 0u);
    } else {
        const float q = fqt_u2f(ua) * 512.0f, lo = floorf(q);
        c = (uint32_t)lo + (fqt_sr_uniform(rnd) < q - lo ? 1u : 0u);
    }
    return (uint8_t)(s | (c > 0x7Eu ? 0x7Eu : c));
}

FQT_INLINE float fqt_e4m3_dec_i(uint8_t code) {
    /* fqt_mf_decode(mag, 3, 7) without ldexpf: the normal codes' fields moved to float's
     * (exponent rebased by 127 - 7), the subnormals m * 2^-9 (exact) */
    const uint32_t mag = code & 0x7Fu, e = mag >> 3;
    const float v = mag == 0x7F ? NAN : e ? fqt_u2f((e + 120u) << 23 | (mag & 7u) << 20) : (float)(mag & 7u) * 0x1p-9f;
    return (code & 0x80u) ? -v : v;
}

/* ---- §2.3 E5M2 ---------------------------------------------------------------------- */
FQT_INLINE uint8_t fqt_e5m2_rne_i(float x) {
    uint8_t s = (uint8_t)((fqt_f2u(x) >> 31) << 7);
    float a = fabsf(x);
    if (a != a) return (uint8_t)(s | 0x7E);
    if (a > 3.4028235e38f) return (uint8_t)(s | 0x7C);
    uint32_t c = fqt_mf_rne(a, 2, 15);
    return (uint8_t)(s | (c > 0x7C ? 0x7C : c));
}

/* §2.3 as an element of a block format (§5.1): finite inputs whose RNE result would
 * overflow saturate to ±57344 (0x7B/0xFB), as OCP MX v1.0 asks; Inf and NaN as above (a
 * block quantizer never passes them: their blocks take the NaN scale). */
FQT_INLINE uint8_t fqt_e5m2_rne_sat_i(float x) {
    uint8_t c = fqt_e5m2_rne_i(x);
    float a = fabsf(x);
    return (uint8_t)((c & 0x7Fu) == 0x7Cu && a <= 3.4028235e38f ? (c & 0x80u) | 0x7Bu : c);
}

FQT_INLINE uint8_t fqt_e5m2_sr_i(float x, uint32_t rnd) {
    uint8_t s = (uint8_t)((fqt_f2u(x) >> 31) << 7);
    float a = fabsf(x);
    if (a != a) return (uint8_t)(s | 0x7E);
    if (a > 3.4028235e38f) return (uint8_t)(s | 0x7C);
    if (a >= 57344.0f) return (uint8_t)(s | 0x7B);
    uint32_t c = fqt_mf_sr(a, 2, 15, rnd);
    return (uint8_t)(s | (c > 0x7B ? 0x7B : c));
}

FQT_INLINE float fqt_e5m2_dec_i(uint8_t code) {
    uint32_t mag = code & 0x7Fu;
    float v = mag == 0x7C ? INFINITY : mag > 0x7C ? NAN : fqt_mf_decode(mag, 2, 15);
    return (code & 0x80u) ? -v : v;
}

/* ---- §2.4 INT4 ---------------------------------------------------------------------- */
FQT_INLINE uint8_t fqt_int4_rne_i(float x) {
    if (x != x) return 0;
    float q = rintf(x);
    q = q > 7.0f ? 7.0f : q < -7.0f ? -7.0f : q;
    return (uint8_t)((int)q & 0xF);
}

FQT_INLINE uint8_t fqt_int4_sr_i(float x, uint32_t rnd) {
    if (x != x) return 0;
    float a = fabsf(x);
    float q = a >= 7.0f ? 7.0f : floorf(a);
    if (a < 7.0f && fqt_sr_uniform(rnd) < a - q) q += 1.0f;
    int v = x < 0 ? -(int)q : (int)q;
    return (uint8_t)(v & 0xF);
}

FQT_INLINE float fqt_int4_dec_i(uint8_t code) {
    int v = (int)(code & 0xF);
    return (float)(v >= 8 ? v - 16 : v);
}

/* ---- §2.5 NF4 ----------------------------------------------------------------------- */
FQT_INLINE float fqt_nf4_value(uint32_t c) {
    /* The QLoRA NormalFloat4 levels, ascending (docs/FORMATS.md §2.5). */
    switch (c & 15u) {
    case 0: return -1.0f;
    case 1: return -0.6961928009986877f;
    case 2: return -0.5250730514526367f;
    case 3: return -0.39491748809814453f;
    case 4: return -0.28444138169288635f;
    case 5: return -0.18477343022823334f;
    case 6: return -0.09105003625154495f;
    case 7: return 0.0f;
    case 8: return 0.07958029955625534f;
    case 9: return 0.16093020141124725f;
    case 10: return 0.24611230194568634f;
    case 11: return 0.33791524171829224f;
    case 12: return 0.44070982933044434f;
    case 13: return 0.5626170039176941f;
    case 14: return 0.7229568362236023f;
    default: return 1.0f;
    }
}

/* Index of the largest level <= x, for x in [-1, 1). */
FQT_INLINE uint32_t fqt_nf4_floor_index(float x) {
    uint32_t c = 0;
    for (uint32_t i = 1; i < 16; i++) c += (x >= fqt_nf4_value(i)) ? 1u : 0u;
    return c;
}

FQT_INLINE uint8_t fqt_nf4_rne_i(float x) {
    if (x != x) return 7;
    if (x >= 1.0f) return 15;
    if (x <= -1.0f) return 0;
    uint32_t lo = fqt_nf4_floor_index(x);
    if (lo == 15) return 15;
    double dl = (double)x - (double)fqt_nf4_value(lo);
    double dh = (double)fqt_nf4_value(lo + 1) - (double)x;
    return (uint8_t)(dh < dl ? lo + 1 : lo); /* exact tie -> the lower code */
}

FQT_INLINE uint8_t fqt_nf4_sr_i(float x, uint32_t rnd) {
    if (x != x) return 7;
    if (x >= 1.0f) return 15;
    if (x <= -1.0f) return 0;
    uint32_t lo = fqt_nf4_floor_index(x);
    float vl = fqt_nf4_value(lo), vh = fqt_nf4_value(lo + 1);
    float frac = (x - vl) / (vh - vl);
    return (uint8_t)(lo + (fqt_sr_uniform(rnd) < frac ? 1u : 0u));
}

/* ---- §2.6 BF16, FP16 -------------------------------------------------------------------- */
FQT_INLINE uint16_t fqt_bf16_rne_i(float x) {
    uint32_t u = fqt_f2u(x);
    if ((u & 0x7FFFFFFFu) > 0x7F800000u) return (uint16_t)((u >> 16) | 0x40u);
    return (uint16_t)((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

FQT_INLINE uint16_t fqt_bf16_sr_i(float x, uint32_t rnd) {
    uint32_t u = fqt_f2u(x);
    if ((u & 0x7F800000u) == 0x7F800000u) return fqt_bf16_rne_i(x);
    return (uint16_t)((u + (rnd >> 16)) >> 16);
}

FQT_INLINE float fqt_bf16_dec_i(uint16_t c) { return fqt_u2f((uint32_t)c << 16); }

FQT_INLINE uint16_t fqt_fp16_rne_i(float x) {
    uint16_t s = (uint16_t)((fqt_f2u(x) >> 31) << 15);
    float a = fabsf(x);
    if (a != a) return (uint16_t)(s | 0x7E00u);
    if (a > 3.4028235e38f) return (uint16_t)(s | 0x7C00u);
    uint32_t c = fqt_mf_rne(a, 10, 15);
    return (uint16_t)(s | (c > 0x7C00u ? 0x7C00u : c));
}

/* §2.6 FP16 SR, the E5M2 rule with FP16's grid: §1 on the magnitude, finite inputs above
 * 65504 saturate to 65504, Inf stays Inf, NaN stays NaN (sign kept). */
FQT_INLINE uint16_t fqt_fp16_sr_i(float x, uint32_t rnd) {
    uint16_t s = (uint16_t)((fqt_f2u(x) >> 31) << 15);
    float a = fabsf(x);
    if (a != a) return (uint16_t)(s | 0x7E00u);
    if (a > 3.4028235e38f) return (uint16_t)(s | 0x7C00u);
    if (a >= 65504.0f) return (uint16_t)(s | 0x7BFFu);
    uint32_t c = fqt_mf_sr(a, 10, 15, rnd);
    return (uint16_t)(s | (c > 0x7BFFu ? 0x7BFFu : c));
}

FQT_INLINE float fqt_fp16_dec_i(uint16_t c) {
    uint32_t mag = c & 0x7FFFu;
    float v = mag == 0x7C00u ? INFINITY : mag > 0x7C00u ? NAN : fqt_mf_decode(mag, 10, 15);
    return (c & 0x8000u) ? -v : v;
}

/* ---- §3.1 E8M0, §3.2 UE4M3 ----------------------------------------------------------------- */
/* floor(log2 a) for finite a > 0, exact (frexpf handles subnormals). */
FQT_INLINE int fqt_floor_log2(float a) {
    int k;
    frexpf(a, &k);
    return k - 1;
}

FQT_INLINE uint8_t fqt_e8m0_floor_i(float x) {
    if (!(x >= 0.0f) || x > 3.4028235e38f) return 0xFF; /* NaN, negative, Inf */
    if (x == 0.0f) return 0;
    int e = fqt_floor_log2(x);
    e = e < -127 ? -127 : e > 127 ? 127 : e;
    return (uint8_t)(e + 127);
}

FQT_INLINE float fqt_e8m0_dec_i(uint8_t c) { return c == 0xFF ? NAN : ldexpf(1.0f, (int)c - 127); }

FQT_INLINE uint8_t fqt_ue4m3_rne_i(float x) { return (uint8_t)(fqt_e4m3_rne_bits_i(fabsf(x)) & 0x7F); }
FQT_INLINE float fqt_ue4m3_dec_i(uint8_t c) { return fqt_e4m3_dec_i((uint8_t)(c & 0x7F)); }

/* ---- §5.2-§5.4 block scales, §5.3 tensor scale (shared by the CPU and CUDA quantizers) ---- */
/* ---- §5.2, §5.3 scales -------------------------------------------------------------------- */
/* The E8M0 block-scale exponent of §5.2 for a finite block amax > 0: floor(log2 amax) - emax,
 * or with ceil the smallest e with elem_max * 2^e >= amax; clamped to [-127, 127 - emax] so
 * that elem_max * 2^e, the largest dequantized magnitude, stays finite. */
FQT_INLINE int fqt_e8m0_exp_i(float amax, float elem_max, int emax, int ceil_) {
    int e = fqt_floor_log2(amax) - emax;
    if (ceil_ && (double)amax > ldexp((double)elem_max, e)) e++;
    return e < -127 ? -127 : e > 127 - emax ? 127 - emax : e;
}


/* How one block maps x to the element grid and back. */
typedef struct {
    float mul;      /* element input = x * mul (E8M0, UE4M3) ... */
    float div;      /* ... or x / div (FP32 scales, §5.4), when div != 0 */
    float deq;      /* dequantized = decode(code) * deq (then * s_dec for tensor scales) */
    int zero;       /* block quantizes to zeros */
} fqt_block_map;

/* The block's scale code (stored at *scale_out: 1 byte, or 4 for FP32) and its mapping from
 * the block's finite amax, §5.2-§5.4. emax_val, emax: fqt_elem_max / fqt_elem_emax of the
 * element type (passed in so that device code needs no host tables). */
FQT_INLINE fqt_block_map fqt_block_scale_i(fqt_scale_type scale, bool scale_ceil,
                                           float emax_val, int emax, float amax, float s_enc,
                                           float s_dec, uint8_t *scale_out) {
    fqt_block_map m = {1.0f, 0.0f, 1.0f, 0};
    switch (scale) {
    case FQT_SCALE_E8M0: {
        int e;
        if (amax == 0.0f) {
            e = -127;
            m.zero = 1;
        } else {
            e = fqt_e8m0_exp_i(amax, emax_val, emax, scale_ceil);
        }
        *scale_out = (uint8_t)(e + 127);
        m.mul = ldexpf(1.0f, -e);
        m.deq = ldexpf(1.0f, e);
        break;
    }
    case FQT_SCALE_UE4M3: {
        uint8_t sb = fqt_ue4m3_rne_i((amax / emax_val) * s_enc);
        float sbf = fqt_ue4m3_dec_i(sb);
        *scale_out = sb;
        m.deq = sbf;
        if (sbf == 0.0f) {
            m.mul = 0.0f;
            m.zero = 1;
        } else {
            m.mul = 1.0f / (sbf * s_dec);
        }
        break;
    }
    case FQT_SCALE_FP32: {
        float s = amax / emax_val;
        memcpy(scale_out, &s, 4);
        m.deq = s;
        if (s == 0.0f) {
            m.mul = 0.0f;
            m.zero = 1;
        } else {
            m.div = s;
        }
        break;
    }
    default: break;
    }
    return m;
}

/* ---- generic element codec --------------------------------------------------------------- */
/* The element codec of the quantizers (§5.1): every element type saturates its finite
 * inputs, E5M2 included (fqt_e5m2_rne_sat_i; the plain §2.3 codec keeps IEEE overflow). */
FQT_INLINE uint32_t fqt_elem_encode_i(fqt_elem t, float x, fqt_rounding r, uint32_t rnd) {
    int sr = r == FQT_ROUND_SR;
    switch (t) {
    case FQT_ELEM_E2M1: return sr ? fqt_e2m1_sr_i(x, rnd) : fqt_e2m1_rne_i(x);
    case FQT_ELEM_E4M3: return sr ? fqt_e4m3_sr_i(x, rnd) : fqt_e4m3_rne_i(x);
    case FQT_ELEM_E5M2: return sr ? fqt_e5m2_sr_i(x, rnd) : fqt_e5m2_rne_sat_i(x);
    case FQT_ELEM_INT4: return sr ? fqt_int4_sr_i(x, rnd) : fqt_int4_rne_i(x);
    case FQT_ELEM_NF4: return sr ? fqt_nf4_sr_i(x, rnd) : fqt_nf4_rne_i(x);
    case FQT_ELEM_BF16: return sr ? fqt_bf16_sr_i(x, rnd) : fqt_bf16_rne_i(x);
    case FQT_ELEM_FP16: return sr ? fqt_fp16_sr_i(x, rnd) : fqt_fp16_rne_i(x);
    default: return fqt_f2u(x);
    }
}

FQT_INLINE float fqt_elem_decode_i(fqt_elem t, uint32_t c) {
    switch (t) {
    case FQT_ELEM_E2M1: return fqt_e2m1_dec_i((uint8_t)c);
    case FQT_ELEM_E4M3: return fqt_e4m3_dec_i((uint8_t)c);
    case FQT_ELEM_E5M2: return fqt_e5m2_dec_i((uint8_t)c);
    case FQT_ELEM_INT4: return fqt_int4_dec_i((uint8_t)c);
    case FQT_ELEM_NF4: return fqt_nf4_value(c);
    case FQT_ELEM_BF16: return fqt_bf16_dec_i((uint16_t)c);
    case FQT_ELEM_FP16: return fqt_fp16_dec_i((uint16_t)c);
    default: return fqt_u2f(c);
    }
}

/* The §5.3 tensor scale of a UE4M3 `:tensor` format, from amax_t (the largest finite |x|) and
 * the element's largest magnitude. The quantizer multiplies its inputs by pre (exact) and
 * works on them with s_enc and s_dec; s_dec_out is the tensor scale it stores, and
 * s_dec == s_dec_out * pre exactly, so elements are encoded against the scale they decode
 * with. pre = 1 for amax_t >= 2^-64, where this is the plain formula s_enc =
 * (elem_max * 448) / amax_t, s_dec = 1 / s_enc. Below, pre = 2^64, s_enc is the same formula
 * on amax_t * 2^64, capped at 2^85 so that s_dec_out >= 2^-149 stays representable; where
 * s_dec_out = s_dec * 2^-64 is subnormal (rounded), s_enc becomes 1 / s_dec, so block scales
 * fit the scale that decodes. Where nothing is subnormal all of this gives the plain formula's
 * bits scaled by powers of two: the codes are those of x * 2^k for any k. */
typedef struct { float pre, s_enc, s_dec, s_dec_out; } fqt_tscale;

FQT_INLINE float fqt_tensor_s_enc_i(float amax, float elem_max) {
    if (!(amax > 0.0f)) return 1.0f;
    float s = (elem_max * 448.0f) / amax;
    return s > 3.4028235e38f ? 3.4028235e38f : s;
}

FQT_INLINE fqt_tscale fqt_tscale_i(float amax, float elem_max) {
    fqt_tscale t = {1.0f, 1.0f, 1.0f, 1.0f};
    if (!(amax > 0.0f)) return t;
    if (amax >= 0x1p-64f) {
        t.s_enc = fqt_tensor_s_enc_i(amax, elem_max);
        t.s_dec = t.s_dec_out = 1.0f / t.s_enc;
        return t;
    }
    t.pre = 0x1p64f;
    t.s_enc = fqt_tensor_s_enc_i(amax * t.pre, elem_max); /* amax * 2^64 in [2^-85, 1) */
    if (t.s_enc > 0x1p85f) t.s_enc = 0x1p85f;
    t.s_dec_out = (1.0f / t.s_enc) * 0x1p-64f; /* rounds only where subnormal */
    t.s_dec = t.s_dec_out * t.pre;
    if (t.s_dec_out < 0x1p-126f) t.s_enc = 1.0f / t.s_dec;
    return t;
}

/* ---- §4 Philox4x32-10 ------------------------------------------------------------------- */
FQT_INLINE void fqt_philox_i(uint32_t c[4], uint32_t k0, uint32_t k1) {
    for (int i = 0; i < 10; i++) {
        if (i) { k0 += 0x9E3779B9u; k1 += 0xBB67AE85u; }
        uint64_t p0 = (uint64_t)0xD2511F53u * c[0];
        uint64_t p1 = (uint64_t)0xCD9E8D57u * c[2];
        uint32_t n0 = (uint32_t)(p1 >> 32) ^ c[1] ^ k0;
        uint32_t n2 = (uint32_t)(p0 >> 32) ^ c[3] ^ k1;
        c[0] = n0;
        c[1] = (uint32_t)p1;
        c[2] = n2;
        c[3] = (uint32_t)p0;
    }
}

/* The four random words of counter block index/4 (§4); the element uses word index%4. */
FQT_INLINE void fqt_sr_block4(uint64_t seed, uint64_t stream, uint64_t index4, uint32_t out[4]) {
    out[0] = (uint32_t)index4;
    out[1] = (uint32_t)(index4 >> 32);
    out[2] = (uint32_t)stream;
    out[3] = (uint32_t)(stream >> 32);
    fqt_philox_i(out, (uint32_t)seed, (uint32_t)(seed >> 32));
}

#endif
