/* formats/quant_x86.c — AVX2 and AVX-512F kernels of the block quantizer (quant_vec.h).
 *
 * Each kernel is the lane-parallel form of a scalar function of codec.h, with the same
 * float operations in the same order (x * mul, the threshold comparisons, (a - lo) *
 * inv_step, (rnd >> 8) * 2^-24), so the codes are identical. Compiled under per-function
 * target attributes: the build's -march does not matter, quant.c calls these only after
 * checking the CPU. Oracles: fqt_e2m1_rne_i, fqt_e2m1_sr_i, fqt_sr_block4 and the scalar
 * amax loop of quant.c (tests/test_quant_fast.c); the transpose tile is plain data movement
 * (tests/test_formats_block.c: AXIS_COLS equals ROWS of the transpose). Not for: other
 * element types (scalar). */
#include "quant_vec.h"

#include "codec.h"

#if defined(__GNUC__) && defined(__x86_64__)
#include <immintrin.h>

#include "transpose_x86.h"

#define PHILOX_M0 0xD2511F53u
#define PHILOX_M1 0xCD9E8D57u
#define PHILOX_W0 0x9E3779B9u
#define PHILOX_W1 0xBB67AE85u

/* ================================ AVX2 (8 lanes) ====================================== */
#define T2 __attribute__((target("avx2,fma"), always_inline)) static inline
#define F2 __attribute__((target("avx2,fma"))) static

T2 __m256i mulhi_epu32_avx2(__m256i a, __m256i b) {
    __m256i even = _mm256_srli_epi64(_mm256_mul_epu32(a, b), 32);
    __m256i odd = _mm256_mul_epu32(_mm256_srli_epi64(a, 32), b);
    return _mm256_blend_epi32(even, odd, 0xAA);
}

F2 float amax_avx2(const float *x, int64_t n, int64_t *bad) {
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
    const __m256 fmax = _mm256_set1_ps(3.4028235e38f);
    __m256 m = _mm256_setzero_ps();
    __m256i nb = _mm256_setzero_si256();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256 a = _mm256_and_ps(_mm256_loadu_ps(x + i), absmask);
        __m256 fin = _mm256_cmp_ps(a, fmax, _CMP_LE_OQ);
        nb = _mm256_sub_epi32(nb, _mm256_andnot_si256(_mm256_castps_si256(fin), _mm256_set1_epi32(-1)));
        m = _mm256_max_ps(m, _mm256_and_ps(a, fin));
    }
    float lanes[8];
    int32_t cnt[8];
    _mm256_storeu_ps(lanes, m);
    _mm256_storeu_si256((__m256i *)cnt, nb);
    float r = 0.0f;
    int64_t b = 0;
    for (int j = 0; j < 8; j++) {
        if (lanes[j] > r) r = lanes[j];
        b += cnt[j];
    }
    for (; i < n; i++) {
        float a = fabsf(x[i]);
        if (!(a <= 3.4028235e38f)) b++;
        else if (a > r) r = a;
    }
    *bad = b;
    return r;
}

/* 8 codes (low 4 bits of each 32-bit lane) to 4 bytes, element 2i in the low nibble. */
T2 uint32_t pack8_avx2(__m256i c) {
    __m256i p = _mm256_or_si256(c, _mm256_srli_epi64(c, 28)); /* byte 0 of each qword */
    p = _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7));
    __m128i lo = _mm256_castsi256_si128(p);
    lo = _mm_shuffle_epi8(lo, _mm_setr_epi8(0, 4, 8, 12, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1));
    return (uint32_t)_mm_cvtsi128_si32(lo);
}

T2 __m256i e2m1_rne_lanes_avx2(__m256 v) {
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
    __m256 a = _mm256_and_ps(v, absmask);
    __m256i c = _mm256_setzero_si256();
#define GT(t) c = _mm256_sub_epi32(c, _mm256_castps_si256(_mm256_cmp_ps(a, _mm256_set1_ps(t), _CMP_GT_OQ)))
#define GE(t) c = _mm256_sub_epi32(c, _mm256_castps_si256(_mm256_cmp_ps(a, _mm256_set1_ps(t), _CMP_GE_OQ)))
    GT(0.25f); GE(0.75f); GT(1.25f); GE(1.75f); GT(2.5f); GE(3.5f); GT(5.0f);
#undef GT
#undef GE
    __m256i s = _mm256_srli_epi32(_mm256_castps_si256(v), 31);
    __m256i keep = _mm256_castps_si256(_mm256_cmp_ps(a, a, _CMP_EQ_OQ));
    s = _mm256_and_si256(_mm256_slli_epi32(s, 3), keep);
    return _mm256_or_si256(c, s);
}

T2 __m256i e2m1_sr_lanes_avx2(__m256 v, __m256i rnd) {
    const __m256 absmask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
    __m256 a = _mm256_and_ps(v, absmask);
    __m256i c = _mm256_setzero_si256();
#define GE(t) c = _mm256_sub_epi32(c, _mm256_castps_si256(_mm256_cmp_ps(a, _mm256_set1_ps(t), _CMP_GE_OQ)))
    GE(0.5f); GE(1.0f); GE(1.5f); GE(2.0f); GE(3.0f); GE(4.0f);
#undef GE
    __m256 lo = _mm256_permutevar8x32_ps(_mm256_setr_ps(0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f), c);
    __m256 inv = _mm256_permutevar8x32_ps(_mm256_setr_ps(2.0f, 2.0f, 2.0f, 2.0f, 1.0f, 1.0f, 0.5f, 0.5f), c);
    __m256 frac = _mm256_mul_ps(_mm256_sub_ps(a, lo), inv);
    __m256 u = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(rnd, 8)), _mm256_set1_ps(0x1p-24f));
    c = _mm256_sub_epi32(c, _mm256_castps_si256(_mm256_cmp_ps(u, frac, _CMP_LT_OQ)));
    __m256 sat = _mm256_cmp_ps(a, _mm256_set1_ps(6.0f), _CMP_GE_OQ);
    c = _mm256_blendv_epi8(c, _mm256_set1_epi32(7), _mm256_castps_si256(sat));
    __m256i s = _mm256_slli_epi32(_mm256_srli_epi32(_mm256_castps_si256(v), 31), 3);
    c = _mm256_or_si256(c, s);
    __m256i keep = _mm256_castps_si256(_mm256_cmp_ps(a, a, _CMP_EQ_OQ)); /* NaN -> 0 */
    return _mm256_and_si256(c, keep);
}

F2 void e2m1_rne_avx2(const float *x, int64_t n, float mul, uint8_t *out) {
    const __m256 vm = _mm256_set1_ps(mul);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint32_t b = pack8_avx2(e2m1_rne_lanes_avx2(_mm256_mul_ps(_mm256_loadu_ps(x + i), vm)));
        memcpy(out + i / 2, &b, 4);
    }
    if (i < n) {
        float t[8] = {0};
        memcpy(t, x + i, (size_t)(n - i) * sizeof(float));
        uint32_t b = pack8_avx2(e2m1_rne_lanes_avx2(_mm256_mul_ps(_mm256_loadu_ps(t), vm)));
        memcpy(out + i / 2, &b, (size_t)(n - i) / 2);
    }
}

F2 void e2m1_sr_avx2(const float *x, int64_t n, float mul, const uint32_t *rnd, uint8_t *out) {
    const __m256 vm = _mm256_set1_ps(mul);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m256i r = _mm256_loadu_si256((const __m256i *)(rnd + i));
        uint32_t b = pack8_avx2(e2m1_sr_lanes_avx2(_mm256_mul_ps(_mm256_loadu_ps(x + i), vm), r));
        memcpy(out + i / 2, &b, 4);
    }
    if (i < n) {
        float t[8] = {0};
        uint32_t tr[8] = {0};
        memcpy(t, x + i, (size_t)(n - i) * sizeof(float));
        memcpy(tr, rnd + i, (size_t)(n - i) * sizeof(uint32_t));
        __m256i r = _mm256_loadu_si256((const __m256i *)tr);
        uint32_t b = pack8_avx2(e2m1_sr_lanes_avx2(_mm256_mul_ps(_mm256_loadu_ps(t), vm), r));
        memcpy(out + i / 2, &b, (size_t)(n - i) / 2);
    }
}

/* 8 Philox blocks per step (one per lane), then a 4x4 transpose per 128-bit half so each
 * block's four words land consecutively. */
F2 void philox_avx2(uint64_t seed, uint64_t stream, uint64_t first4, int64_t nblk, uint32_t *out) {
    int64_t b = 0;
    for (; b + 8 <= nblk; b += 8) {
        uint64_t i4 = first4 + (uint64_t)b;
        if ((uint32_t)i4 > UINT32_MAX - 8u) break; /* the low word would carry: scalar */
        __m256i c0 = _mm256_add_epi32(_mm256_set1_epi32((int)(uint32_t)i4), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
        __m256i c1 = _mm256_set1_epi32((int)(uint32_t)(i4 >> 32));
        __m256i c2 = _mm256_set1_epi32((int)(uint32_t)stream);
        __m256i c3 = _mm256_set1_epi32((int)(uint32_t)(stream >> 32));
        uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
        const __m256i m0 = _mm256_set1_epi32((int)PHILOX_M0), m1 = _mm256_set1_epi32((int)PHILOX_M1);
        for (int r = 0; r < 10; r++) {
            if (r) { k0 += PHILOX_W0; k1 += PHILOX_W1; }
            __m256i hi0 = mulhi_epu32_avx2(c0, m0), lo0 = _mm256_mullo_epi32(c0, m0);
            __m256i hi1 = mulhi_epu32_avx2(c2, m1), lo1 = _mm256_mullo_epi32(c2, m1);
            __m256i n0 = _mm256_xor_si256(_mm256_xor_si256(hi1, c1), _mm256_set1_epi32((int)k0));
            __m256i n2 = _mm256_xor_si256(_mm256_xor_si256(hi0, c3), _mm256_set1_epi32((int)k1));
            c0 = n0; c1 = lo1; c2 = n2; c3 = lo0;
        }
        __m256i t0 = _mm256_unpacklo_epi32(c0, c1), t1 = _mm256_unpackhi_epi32(c0, c1);
        __m256i t2 = _mm256_unpacklo_epi32(c2, c3), t3 = _mm256_unpackhi_epi32(c2, c3);
        __m256i u0 = _mm256_unpacklo_epi64(t0, t2), u1 = _mm256_unpackhi_epi64(t0, t2);
        __m256i u2 = _mm256_unpacklo_epi64(t1, t3), u3 = _mm256_unpackhi_epi64(t1, t3);
        /* 128-bit half h of u_k is block 4h + k. */
        uint32_t *o = out + 4 * b;
        _mm256_storeu_si256((__m256i *)o, _mm256_permute2x128_si256(u0, u1, 0x20));
        _mm256_storeu_si256((__m256i *)(o + 8), _mm256_permute2x128_si256(u2, u3, 0x20));
        _mm256_storeu_si256((__m256i *)(o + 16), _mm256_permute2x128_si256(u0, u1, 0x31));
        _mm256_storeu_si256((__m256i *)(o + 24), _mm256_permute2x128_si256(u2, u3, 0x31));
    }
    for (; b < nblk; b++) fqt_sr_block4(seed, stream, first4 + (uint64_t)b, out + 4 * b);
}

/* 8x8 blocks with AVX shuffles, the edges element by element: data movement only. */
F2 void transpose_tile_avx2(const float *src, int64_t lds, float *dst, int64_t ldd, int64_t nr,
                            int64_t nc) {
    int64_t r0 = 0;
    for (; r0 + 8 <= nr; r0 += 8) {
        int64_t c0 = 0;
        for (; c0 + 8 <= nc; c0 += 8) {
            const float *s0 = src + r0 * lds + c0;
            const float *const rows[8] = {s0,           s0 + lds,     s0 + 2 * lds, s0 + 3 * lds,
                                          s0 + 4 * lds, s0 + 5 * lds, s0 + 6 * lds, s0 + 7 * lds};
            fqt_transpose8x8_avx(rows, dst + c0 * ldd + r0, ldd);
        }
        for (int64_t c = c0; c < nc; c++)
            for (int64_t r = r0; r < r0 + 8; r++) dst[c * ldd + r] = src[r * lds + c];
    }
    for (int64_t c = 0; c < nc; c++)
        for (int64_t r = r0; r < nr; r++) dst[c * ldd + r] = src[r * lds + c];
}

/* §5.3 block scales, 8 blocks: sb = fqt_ue4m3_rne_i((amax / emax_val) * s_enc) and the
 * multiplier 1 / (sbf * s_dec) (0 where sbf == 0), as fqt_block_scale_i. amax >= 0 finite,
 * s_enc > 0, so t >= 0 is never NaN (it can be +Inf, which encodes as 0x7F). The E4M3 RNE
 * of a normal t rounds its float bits at bit 20 (carries into the exponent are right);
 * below 2^-6 the code counts units of 2^-9, rounded half to even by cvtps. */
T2 void ue4m3_lanes_avx2(__m256 amax, __m256 emax_v, __m256 s_enc, __m256 s_dec, __m256i *code, __m256 *mul) {
    const __m256i one = _mm256_set1_epi32(1);
    const __m256 t = _mm256_mul_ps(_mm256_div_ps(amax, emax_v), s_enc);
    const __m256i u = _mm256_castps_si256(t);
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 20), one);
    const __m256i rn = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(_mm256_set1_epi32(0x7FFFF), lsb)), 20);
    const __m256i cn = _mm256_sub_epi32(rn, _mm256_set1_epi32(120 << 3));
    const __m256i cs = _mm256_cvtps_epi32(_mm256_mul_ps(t, _mm256_set1_ps(512.0f)));
    const __m256 sub = _mm256_cmp_ps(t, _mm256_set1_ps(0x1p-6f), _CMP_LT_OQ);
    __m256i c = _mm256_min_epi32(_mm256_blendv_epi8(cn, cs, _mm256_castps_si256(sub)), _mm256_set1_epi32(0x7E));
    const __m256 inf = _mm256_cmp_ps(t, _mm256_set1_ps(3.4028235e38f), _CMP_GT_OQ);
    c = _mm256_blendv_epi8(c, _mm256_set1_epi32(0x7F), _mm256_castps_si256(inf));
    /* decode: E = c >> 3, m = c & 7; E == 0: m * 2^-9; 0x7F: NaN */
    const __m256i e = _mm256_srli_epi32(c, 3), m = _mm256_and_si256(c, _mm256_set1_epi32(7));
    const __m256 vn = _mm256_castsi256_ps(_mm256_or_si256(_mm256_slli_epi32(_mm256_add_epi32(e, _mm256_set1_epi32(120)), 23),
                                                          _mm256_slli_epi32(m, 20)));
    const __m256 vs = _mm256_mul_ps(_mm256_cvtepi32_ps(m), _mm256_set1_ps(0x1p-9f));
    __m256 sbf = _mm256_blendv_ps(vn, vs, _mm256_castsi256_ps(_mm256_cmpeq_epi32(e, _mm256_setzero_si256())));
    sbf = _mm256_blendv_ps(sbf, _mm256_set1_ps(NAN), _mm256_castsi256_ps(_mm256_cmpeq_epi32(c, _mm256_set1_epi32(0x7F))));
    const __m256 r = _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_mul_ps(sbf, s_dec));
    *mul = _mm256_andnot_ps(_mm256_cmp_ps(sbf, _mm256_setzero_ps(), _CMP_EQ_OQ), r);
    *code = c;
}

F2 void ue4m3_scales_avx2(const float *amax, int64_t n, float emax_val, float s_enc, float s_dec,
                          uint8_t *code, float *mul) {
    const __m256 ev = _mm256_set1_ps(emax_val), se = _mm256_set1_ps(s_enc), sd = _mm256_set1_ps(s_dec);
    for (int64_t i = 0; i < n; i += 8) {
        float a[8] = {0, 0, 0, 0, 0, 0, 0, 0}, mv[8];
        int32_t cv[8];
        const int64_t k = n - i < 8 ? n - i : 8;
        memcpy(a, amax + i, (size_t)k * sizeof(float));
        __m256i c;
        __m256 ml;
        ue4m3_lanes_avx2(_mm256_loadu_ps(a), ev, se, sd, &c, &ml);
        _mm256_storeu_si256((__m256i *)(void *)cv, c);
        _mm256_storeu_ps(mv, ml);
        for (int64_t j = 0; j < k; j++) {
            code[i + j] = (uint8_t)cv[j];
            mul[i + j] = mv[j];
        }
    }
}

/* §2.6 BF16, 8 lanes: RNE as fqt_bf16_rne_i (NaN: quiet bit set), SR (rnd != NULL) as
 * fqt_bf16_sr_i (Inf and NaN take the RNE result). Returns the number of non-finite x. */
T2 __m256i bf16_lanes_avx2(__m256i u, const uint32_t *rnd) {
    const __m256i absu = _mm256_and_si256(u, _mm256_set1_epi32(0x7FFFFFFF));
    const __m256i nan = _mm256_cmpgt_epi32(absu, _mm256_set1_epi32(0x7F800000));
    const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    __m256i r = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(_mm256_set1_epi32(0x7FFF), lsb)), 16);
    r = _mm256_blendv_epi8(r, _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(0x40)), nan);
    if (!rnd) return r;
    const __m256i infnan = _mm256_cmpeq_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7F800000)), _mm256_set1_epi32(0x7F800000));
    const __m256i w = _mm256_srli_epi32(_mm256_loadu_si256((const __m256i *)(const void *)rnd), 16);
    return _mm256_blendv_epi8(_mm256_srli_epi32(_mm256_add_epi32(u, w), 16), r, infnan);
}

F2 int64_t bf16_avx2(const float *x, int64_t n, const uint32_t *rnd, uint16_t *out) {
    int64_t bad = 0, i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256i u = _mm256_loadu_si256((const __m256i *)(const void *)(x + i));
        const __m256i r = bf16_lanes_avx2(u, rnd ? rnd + i : NULL);
        const __m128i p = _mm_packus_epi32(_mm256_castsi256_si128(r), _mm256_extracti128_si256(r, 1));
        _mm_storeu_si128((__m128i *)(void *)(out + i), p);
        const __m256i ex = _mm256_and_si256(u, _mm256_set1_epi32(0x7F800000));
        bad += __builtin_popcount((unsigned)_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(ex, _mm256_set1_epi32(0x7F800000)))));
    }
    for (; i < n; i++) {
        out[i] = rnd ? fqt_bf16_sr_i(x[i], rnd[i]) : fqt_bf16_rne_i(x[i]);
        bad += !isfinite(x[i]);
    }
    return bad;
}

/* §2.2 E4M3 as a block element, 8 lanes: v = x / div (div != 0) or x * mul, then
 * fqt_e4m3_rne_i (rnd NULL) or fqt_e4m3_sr_i. Normal magnitudes (>= 2^-6) round their float
 * bits at bit 20: RNE adds half-minus-one plus the kept lsb; SR rounds up when rnd >> 8 <
 * rest << 4, the integer form of (rnd >> 8) * 2^-24 < rest * 2^-20. Below 2^-6 the code
 * counts units of 2^-9 (a * 2^9 exact): RNE by cvtps, SR by floor and the fraction. */
T2 __m256i e4m3_lanes_avx2(__m256 v, const uint32_t *rnd) {
    const __m256i u = _mm256_castps_si256(v);
    const __m256i sign = _mm256_slli_epi32(_mm256_srli_epi32(u, 31), 7);
    const __m256 a = _mm256_castsi256_ps(_mm256_and_si256(u, _mm256_set1_epi32(0x7FFFFFFF)));
    const __m256i au = _mm256_castps_si256(a);
    const __m256 q = _mm256_mul_ps(a, _mm256_set1_ps(512.0f));
    const __m256 sub = _mm256_cmp_ps(a, _mm256_set1_ps(0x1p-6f), _CMP_LT_OQ);
    __m256i c;
    if (!rnd) {
        const __m256i lsb = _mm256_and_si256(_mm256_srli_epi32(au, 20), _mm256_set1_epi32(1));
        const __m256i cn = _mm256_sub_epi32(_mm256_srli_epi32(_mm256_add_epi32(au, _mm256_add_epi32(_mm256_set1_epi32(0x7FFFF), lsb)), 20),
                                            _mm256_set1_epi32(120 << 3));
        c = _mm256_blendv_epi8(cn, _mm256_cvtps_epi32(q), _mm256_castps_si256(sub));
        c = _mm256_min_epi32(c, _mm256_set1_epi32(0x7E));
    } else {
        const __m256i r8 = _mm256_srli_epi32(_mm256_loadu_si256((const __m256i *)(const void *)rnd), 8);
        const __m256i rest4 = _mm256_slli_epi32(_mm256_and_si256(au, _mm256_set1_epi32(0xFFFFF)), 4);
        const __m256i up = _mm256_cmpgt_epi32(rest4, r8); /* both < 2^24: signed compare is fine */
        const __m256i cn = _mm256_sub_epi32(_mm256_sub_epi32(_mm256_srli_epi32(au, 20), _mm256_set1_epi32(120 << 3)), up);
        const __m256 lo = _mm256_floor_ps(q);
        const __m256 uni = _mm256_mul_ps(_mm256_cvtepi32_ps(r8), _mm256_set1_ps(0x1p-24f));
        const __m256i ups = _mm256_castps_si256(_mm256_cmp_ps(uni, _mm256_sub_ps(q, lo), _CMP_LT_OQ));
        const __m256i cs = _mm256_sub_epi32(_mm256_cvttps_epi32(lo), ups);
        c = _mm256_min_epi32(_mm256_blendv_epi8(cn, cs, _mm256_castps_si256(sub)), _mm256_set1_epi32(0x7E));
        c = _mm256_blendv_epi8(c, _mm256_set1_epi32(0x7E),
                               _mm256_castps_si256(_mm256_cmp_ps(a, _mm256_set1_ps(448.0f), _CMP_GE_OQ)));
    }
    const __m256 fin = _mm256_cmp_ps(a, _mm256_set1_ps(3.4028235e38f), _CMP_LE_OQ);
    c = _mm256_blendv_epi8(_mm256_set1_epi32(0x7F), c, _mm256_castps_si256(fin));
    return _mm256_or_si256(c, sign);
}

F2 void e4m3_avx2(const float *x, int64_t n, float mul, float div, const uint32_t *rnd, uint8_t *out) {
    const __m256 m = _mm256_set1_ps(mul), d = _mm256_set1_ps(div);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 xv = _mm256_loadu_ps(x + i);
        const __m256 v = div != 0.0f ? _mm256_div_ps(xv, d) : _mm256_mul_ps(xv, m);
        const __m256i c = e4m3_lanes_avx2(v, rnd ? rnd + i : NULL);
        const __m128i p16 = _mm_packus_epi32(_mm256_castsi256_si128(c), _mm256_extracti128_si256(c, 1));
        _mm_storel_epi64((__m128i *)(void *)(out + i), _mm_packus_epi16(p16, p16));
    }
    for (; i < n; i++) {
        const float v = div != 0.0f ? x[i] / div : x[i] * mul;
        out[i] = rnd ? fqt_e4m3_sr_i(v, rnd[i]) : fqt_e4m3_rne_i(v);
    }
}

/* Per-block amax_avx2 of one row cut into blocks of blk (the last one partial). */
F2 int64_t block_amax_avx2(const float *x, int64_t n, int64_t blk, float *amax, uint8_t *bad) {
    int64_t nonfinite = 0;
    for (int64_t j = 0, c0 = 0; c0 < n; j++, c0 += blk) {
        int64_t b;
        amax[j] = amax_avx2(x + c0, n - c0 < blk ? n - c0 : blk, &b);
        bad[j] = b != 0;
        nonfinite += b;
    }
    return nonfinite;
}

static const fqt_quant_vec vec_avx2 = {amax_avx2, e2m1_rne_avx2, e2m1_sr_avx2, philox_avx2,
                                       transpose_tile_avx2, ue4m3_scales_avx2, bf16_avx2,
                                       block_amax_avx2, e4m3_avx2};

/* ============================== AVX-512F (16 lanes) =================================== */
#define T5 __attribute__((target("avx512f"), always_inline)) static inline
#define F5 __attribute__((target("avx512f"))) static

T5 __m512i mulhi_epu32_avx512(__m512i a, __m512i b) {
    __m512i even = _mm512_srli_epi64(_mm512_mul_epu32(a, b), 32);
    __m512i odd = _mm512_mul_epu32(_mm512_srli_epi64(a, 32), b);
    return _mm512_mask_blend_epi32(0xAAAA, even, odd);
}

F5 float amax_avx512(const float *x, int64_t n, int64_t *bad) {
    const __m512i absmask = _mm512_set1_epi32(0x7FFFFFFF);
    const __m512 fmax = _mm512_set1_ps(3.4028235e38f);
    __m512 m = _mm512_setzero_ps();
    int64_t b = 0;
    for (int64_t i = 0; i < n; i += 16) {
        __mmask16 ld = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1u);
        __m512 a = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(_mm512_maskz_loadu_ps(ld, x + i)), absmask));
        __mmask16 fin = _mm512_cmp_ps_mask(a, fmax, _CMP_LE_OQ);
        b += __builtin_popcount((unsigned)(ld & ~fin));
        m = _mm512_mask_max_ps(m, fin, m, a);
    }
    *bad = b;
    return _mm512_reduce_max_ps(m);
}

T5 __m512i e2m1_rne_lanes_avx512(__m512 v) {
    __m512 a = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32(0x7FFFFFFF)));
    __m512i c = _mm512_setzero_si512();
    const __m512i one = _mm512_set1_epi32(1);
#define GT(t) c = _mm512_mask_add_epi32(c, _mm512_cmp_ps_mask(a, _mm512_set1_ps(t), _CMP_GT_OQ), c, one)
#define GE(t) c = _mm512_mask_add_epi32(c, _mm512_cmp_ps_mask(a, _mm512_set1_ps(t), _CMP_GE_OQ), c, one)
    GT(0.25f); GE(0.75f); GT(1.25f); GE(1.75f); GT(2.5f); GE(3.5f); GT(5.0f);
#undef GT
#undef GE
    __mmask16 keep = _mm512_cmp_ps_mask(a, a, _CMP_EQ_OQ);
    __m512i s = _mm512_slli_epi32(_mm512_srli_epi32(_mm512_castps_si512(v), 31), 3);
    return _mm512_mask_or_epi32(c, keep, c, s);
}

T5 __m512i e2m1_sr_lanes_avx512(__m512 v, __m512i rnd) {
    __m512 a = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32(0x7FFFFFFF)));
    __m512i c = _mm512_setzero_si512();
    const __m512i one = _mm512_set1_epi32(1);
#define GE(t) c = _mm512_mask_add_epi32(c, _mm512_cmp_ps_mask(a, _mm512_set1_ps(t), _CMP_GE_OQ), c, one)
    GE(0.5f); GE(1.0f); GE(1.5f); GE(2.0f); GE(3.0f); GE(4.0f);
#undef GE
    const __m512 lot = _mm512_setr_ps(0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m512 invt = _mm512_setr_ps(2.0f, 2.0f, 2.0f, 2.0f, 1.0f, 1.0f, 0.5f, 0.5f, 0, 0, 0, 0, 0, 0, 0, 0);
    __m512 lo = _mm512_permutexvar_ps(c, lot), inv = _mm512_permutexvar_ps(c, invt);
    __m512 frac = _mm512_mul_ps(_mm512_sub_ps(a, lo), inv);
    __m512 u = _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_srli_epi32(rnd, 8)), _mm512_set1_ps(0x1p-24f));
    c = _mm512_mask_add_epi32(c, _mm512_cmp_ps_mask(u, frac, _CMP_LT_OQ), c, one);
    c = _mm512_mask_mov_epi32(c, _mm512_cmp_ps_mask(a, _mm512_set1_ps(6.0f), _CMP_GE_OQ), _mm512_set1_epi32(7));
    c = _mm512_or_si512(c, _mm512_slli_epi32(_mm512_srli_epi32(_mm512_castps_si512(v), 31), 3));
    return _mm512_maskz_mov_epi32(_mm512_cmp_ps_mask(a, a, _CMP_EQ_OQ), c); /* NaN -> 0 */
}

/* 16 codes to 8 bytes (element 2i in the low nibble), the first nb bytes stored. */
T5 void pack16_avx512(__m512i c, uint8_t *out, int nb) {
    __m512i p = _mm512_or_si512(c, _mm512_srli_epi64(c, 28));
    _mm512_mask_cvtepi64_storeu_epi8(out, (__mmask8)((1u << nb) - 1u), p);
}

F5 void e2m1_rne_avx512(const float *x, int64_t n, float mul, uint8_t *out) {
    const __m512 vm = _mm512_set1_ps(mul);
    for (int64_t i = 0; i < n; i += 16) {
        int64_t k = n - i < 16 ? n - i : 16;
        __m512 v = _mm512_maskz_loadu_ps((__mmask16)((1u << k) - 1u), x + i);
        pack16_avx512(e2m1_rne_lanes_avx512(_mm512_mul_ps(v, vm)), out + i / 2, (int)(k / 2));
    }
}

F5 void e2m1_sr_avx512(const float *x, int64_t n, float mul, const uint32_t *rnd, uint8_t *out) {
    const __m512 vm = _mm512_set1_ps(mul);
    for (int64_t i = 0; i < n; i += 16) {
        int64_t k = n - i < 16 ? n - i : 16;
        __mmask16 ld = (__mmask16)((1u << k) - 1u);
        __m512 v = _mm512_maskz_loadu_ps(ld, x + i);
        __m512i r = _mm512_maskz_loadu_epi32(ld, rnd + i);
        pack16_avx512(e2m1_sr_lanes_avx512(_mm512_mul_ps(v, vm), r), out + i / 2, (int)(k / 2));
    }
}

F5 void philox_avx512(uint64_t seed, uint64_t stream, uint64_t first4, int64_t nblk, uint32_t *out) {
    int64_t b = 0;
    for (; b + 16 <= nblk; b += 16) {
        uint64_t i4 = first4 + (uint64_t)b;
        if ((uint32_t)i4 > UINT32_MAX - 16u) break; /* the low word would carry: scalar */
        __m512i c0 = _mm512_add_epi32(_mm512_set1_epi32((int)(uint32_t)i4),
                                      _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15));
        __m512i c1 = _mm512_set1_epi32((int)(uint32_t)(i4 >> 32));
        __m512i c2 = _mm512_set1_epi32((int)(uint32_t)stream);
        __m512i c3 = _mm512_set1_epi32((int)(uint32_t)(stream >> 32));
        uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
        const __m512i m0 = _mm512_set1_epi32((int)PHILOX_M0), m1 = _mm512_set1_epi32((int)PHILOX_M1);
        for (int r = 0; r < 10; r++) {
            if (r) { k0 += PHILOX_W0; k1 += PHILOX_W1; }
            __m512i hi0 = mulhi_epu32_avx512(c0, m0), lo0 = _mm512_mullo_epi32(c0, m0);
            __m512i hi1 = mulhi_epu32_avx512(c2, m1), lo1 = _mm512_mullo_epi32(c2, m1);
            __m512i n0 = _mm512_xor_si512(_mm512_xor_si512(hi1, c1), _mm512_set1_epi32((int)k0));
            __m512i n2 = _mm512_xor_si512(_mm512_xor_si512(hi0, c3), _mm512_set1_epi32((int)k1));
            c0 = n0; c1 = lo1; c2 = n2; c3 = lo0;
        }
        __m512i t0 = _mm512_unpacklo_epi32(c0, c1), t1 = _mm512_unpackhi_epi32(c0, c1);
        __m512i t2 = _mm512_unpacklo_epi32(c2, c3), t3 = _mm512_unpackhi_epi32(c2, c3);
        __m512i u[4] = {_mm512_unpacklo_epi64(t0, t2), _mm512_unpackhi_epi64(t0, t2),
                        _mm512_unpacklo_epi64(t1, t3), _mm512_unpackhi_epi64(t1, t3)};
        /* 128-bit lane L of u[k] is block 4L + k: a 4 x 4 transpose of lanes puts blocks
         * 4L .. 4L + 3 in one register. */
        __m512i a01 = _mm512_shuffle_i32x4(u[0], u[1], 0x44), a23 = _mm512_shuffle_i32x4(u[2], u[3], 0x44);
        __m512i b01 = _mm512_shuffle_i32x4(u[0], u[1], 0xEE), b23 = _mm512_shuffle_i32x4(u[2], u[3], 0xEE);
        uint32_t *o = out + 4 * b;
        _mm512_storeu_si512(o, _mm512_shuffle_i32x4(a01, a23, 0x88));
        _mm512_storeu_si512(o + 16, _mm512_shuffle_i32x4(a01, a23, 0xDD));
        _mm512_storeu_si512(o + 32, _mm512_shuffle_i32x4(b01, b23, 0x88));
        _mm512_storeu_si512(o + 48, _mm512_shuffle_i32x4(b01, b23, 0xDD));
    }
    for (; b < nblk; b++) fqt_sr_block4(seed, stream, first4 + (uint64_t)b, out + 4 * b);
}

/* ue4m3_lanes_avx2 in 16 lanes, with masked loads and stores for the tail. */
F5 void ue4m3_scales_avx512(const float *amax, int64_t n, float emax_val, float s_enc, float s_dec,
                            uint8_t *code, float *mul) {
    const __m512 ev = _mm512_set1_ps(emax_val), se = _mm512_set1_ps(s_enc), sd = _mm512_set1_ps(s_dec);
    const __m512i one = _mm512_set1_epi32(1);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 ld = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1u);
        const __m512 t = _mm512_mul_ps(_mm512_div_ps(_mm512_maskz_loadu_ps(ld, amax + i), ev), se);
        const __m512i u = _mm512_castps_si512(t);
        const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 20), one);
        const __m512i rn = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7FFFF), lsb)), 20);
        const __m512i cn = _mm512_sub_epi32(rn, _mm512_set1_epi32(120 << 3));
        const __m512i cs = _mm512_cvtps_epi32(_mm512_mul_ps(t, _mm512_set1_ps(512.0f)));
        const __mmask16 sub = _mm512_cmp_ps_mask(t, _mm512_set1_ps(0x1p-6f), _CMP_LT_OQ);
        __m512i c = _mm512_min_epi32(_mm512_mask_blend_epi32(sub, cn, cs), _mm512_set1_epi32(0x7E));
        const __mmask16 inf = _mm512_cmp_ps_mask(t, _mm512_set1_ps(3.4028235e38f), _CMP_GT_OQ);
        c = _mm512_mask_blend_epi32(inf, c, _mm512_set1_epi32(0x7F));
        const __m512i e = _mm512_srli_epi32(c, 3), m = _mm512_and_si512(c, _mm512_set1_epi32(7));
        const __m512 vn = _mm512_castsi512_ps(_mm512_or_si512(_mm512_slli_epi32(_mm512_add_epi32(e, _mm512_set1_epi32(120)), 23),
                                                              _mm512_slli_epi32(m, 20)));
        const __m512 vs = _mm512_mul_ps(_mm512_cvtepi32_ps(m), _mm512_set1_ps(0x1p-9f));
        __m512 sbf = _mm512_mask_blend_ps(_mm512_cmpeq_epi32_mask(e, _mm512_setzero_si512()), vn, vs);
        sbf = _mm512_mask_blend_ps(_mm512_cmpeq_epi32_mask(c, _mm512_set1_epi32(0x7F)), sbf, _mm512_set1_ps(NAN));
        const __m512 r = _mm512_div_ps(_mm512_set1_ps(1.0f), _mm512_mul_ps(sbf, sd));
        const __mmask16 nz = _mm512_cmp_ps_mask(sbf, _mm512_setzero_ps(), _CMP_NEQ_UQ);
        _mm512_mask_storeu_ps(mul + i, ld, _mm512_maskz_mov_ps(nz, r));
        _mm512_mask_cvtepi32_storeu_epi8(code + i, ld, c);
    }
}

/* bf16_avx2 in 16 lanes, masked tail. */
F5 int64_t bf16_avx512(const float *x, int64_t n, const uint32_t *rnd, uint16_t *out) {
    const __m512i expm = _mm512_set1_epi32(0x7F800000);
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 ld = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1u);
        const __m512i u = _mm512_maskz_loadu_epi32(ld, x + i);
        const __mmask16 nan = _mm512_cmpgt_epi32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7FFFFFFF)), expm);
        const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
        __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7FFF), lsb)), 16);
        r = _mm512_mask_or_epi32(r, nan, _mm512_srli_epi32(u, 16), _mm512_set1_epi32(0x40));
        const __mmask16 infnan = _mm512_cmpeq_epi32_mask(_mm512_and_si512(u, expm), expm);
        if (rnd) {
            const __m512i w = _mm512_srli_epi32(_mm512_maskz_loadu_epi32(ld, rnd + i), 16);
            r = _mm512_mask_blend_epi32(infnan, _mm512_srli_epi32(_mm512_add_epi32(u, w), 16), r);
        }
        _mm512_mask_cvtepi32_storeu_epi16(out + i, ld, r);
        bad += __builtin_popcount((unsigned)(infnan & ld));
    }
    return bad;
}

/* e4m3_avx2 in 16 lanes, masked tail. */
F5 void e4m3_avx512(const float *x, int64_t n, float mul, float div, const uint32_t *rnd, uint8_t *out) {
    const __m512 m = _mm512_set1_ps(mul), d = _mm512_set1_ps(div);
    const __m512i absmask = _mm512_set1_epi32(0x7FFFFFFF);
    for (int64_t i = 0; i < n; i += 16) {
        const __mmask16 ld = n - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (n - i)) - 1u);
        const __m512 xv = _mm512_maskz_loadu_ps(ld, x + i);
        const __m512 v = div != 0.0f ? _mm512_div_ps(xv, d) : _mm512_mul_ps(xv, m);
        const __m512i u = _mm512_castps_si512(v);
        const __m512i sign = _mm512_slli_epi32(_mm512_srli_epi32(u, 31), 7);
        const __m512i au = _mm512_and_si512(u, absmask);
        const __m512 a = _mm512_castsi512_ps(au);
        const __m512 q = _mm512_mul_ps(a, _mm512_set1_ps(512.0f));
        const __mmask16 sub = _mm512_cmp_ps_mask(a, _mm512_set1_ps(0x1p-6f), _CMP_LT_OQ);
        __m512i c;
        if (!rnd) {
            const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(au, 20), _mm512_set1_epi32(1));
            const __m512i cn = _mm512_sub_epi32(_mm512_srli_epi32(_mm512_add_epi32(au, _mm512_add_epi32(_mm512_set1_epi32(0x7FFFF), lsb)), 20),
                                                _mm512_set1_epi32(120 << 3));
            c = _mm512_min_epi32(_mm512_mask_blend_epi32(sub, cn, _mm512_cvtps_epi32(q)), _mm512_set1_epi32(0x7E));
        } else {
            const __m512i r8 = _mm512_srli_epi32(_mm512_maskz_loadu_epi32(ld, rnd + i), 8);
            const __m512i rest4 = _mm512_slli_epi32(_mm512_and_si512(au, _mm512_set1_epi32(0xFFFFF)), 4);
            const __mmask16 up = _mm512_cmpgt_epi32_mask(rest4, r8);
            __m512i cn = _mm512_sub_epi32(_mm512_srli_epi32(au, 20), _mm512_set1_epi32(120 << 3));
            cn = _mm512_mask_add_epi32(cn, up, cn, _mm512_set1_epi32(1));
            const __m512 lo = _mm512_roundscale_ps(q, _MM_FROUND_TO_NEG_INF | _MM_FROUND_NO_EXC);
            const __m512 uni = _mm512_mul_ps(_mm512_cvtepi32_ps(r8), _mm512_set1_ps(0x1p-24f));
            const __mmask16 ups = _mm512_cmp_ps_mask(uni, _mm512_sub_ps(q, lo), _CMP_LT_OQ);
            __m512i cs = _mm512_cvttps_epi32(lo);
            cs = _mm512_mask_add_epi32(cs, ups, cs, _mm512_set1_epi32(1));
            c = _mm512_min_epi32(_mm512_mask_blend_epi32(sub, cn, cs), _mm512_set1_epi32(0x7E));
            c = _mm512_mask_mov_epi32(c, _mm512_cmp_ps_mask(a, _mm512_set1_ps(448.0f), _CMP_GE_OQ), _mm512_set1_epi32(0x7E));
        }
        const __mmask16 fin = _mm512_cmp_ps_mask(a, _mm512_set1_ps(3.4028235e38f), _CMP_LE_OQ);
        c = _mm512_mask_blend_epi32(fin, _mm512_set1_epi32(0x7F), c);
        _mm512_mask_cvtepi32_storeu_epi8(out + i, ld, _mm512_or_si512(c, sign));
    }
}

/* Per-block amax of one row: blocks of 16 (and 32, as two halves) one vector each, reduced
 * in registers; other sizes through amax_avx512. Max is exact in any order. */
F5 int64_t block_amax_avx512(const float *x, int64_t n, int64_t blk, float *amax, uint8_t *bad) {
    const __m512i absmask = _mm512_set1_epi32(0x7FFFFFFF);
    const __m512 fmax = _mm512_set1_ps(3.4028235e38f);
    int64_t nonfinite = 0, j = 0, c0 = 0;
    if (blk == 16 || blk == 32)
        for (; c0 + blk <= n; j++, c0 += blk) {
            __m512 m = _mm512_setzero_ps();
            int nb = 0;
            for (int64_t h = 0; h < blk; h += 16) {
                const __m512 a = _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(_mm512_loadu_ps(x + c0 + h)), absmask));
                const __mmask16 fin = _mm512_cmp_ps_mask(a, fmax, _CMP_LE_OQ);
                nb += 16 - __builtin_popcount((unsigned)fin);
                m = _mm512_mask_max_ps(m, fin, m, a);
            }
            amax[j] = _mm512_reduce_max_ps(m);
            bad[j] = nb != 0;
            nonfinite += nb;
        }
    for (; c0 < n; j++, c0 += blk) {
        int64_t b;
        amax[j] = amax_avx512(x + c0, n - c0 < blk ? n - c0 : blk, &b);
        bad[j] = b != 0;
        nonfinite += b;
    }
    return nonfinite;
}

static const fqt_quant_vec vec_avx512 = {amax_avx512, e2m1_rne_avx512, e2m1_sr_avx512, philox_avx512,
                                         transpose_tile_avx2, ue4m3_scales_avx512, bf16_avx512,
                                         block_amax_avx512, e4m3_avx512};

const fqt_quant_vec *const fqt_quant_vec_avx2 = &vec_avx2;
const fqt_quant_vec *const fqt_quant_vec_avx512 = &vec_avx512;
#else
const fqt_quant_vec *const fqt_quant_vec_avx2 = NULL;
const fqt_quant_vec *const fqt_quant_vec_avx512 = NULL;
#endif
