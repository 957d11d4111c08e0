/* formats/transpose_x86.h — the one 8x8 float32 transpose with AVX shuffles, shared by the
 * quantizer's column-axis transposes (formats/quant_x86.c) and the GEMM's panel packing
 * (cpu/gemm.c). Data movement only: the output holds the input's bytes.
 * x86-64 only; include from code compiled with the AVX2 target attribute. */
#ifndef FQT_FORMATS_TRANSPOSE_X86_H
#define FQT_FORMATS_TRANSPOSE_X86_H

#include <immintrin.h>
#include <stdint.h>

/* dst[j * ldd + i] = rows[i][j] for i, j < 8. */
__attribute__((target("avx2"), always_inline)) static inline void
fqt_transpose8x8_avx(const float *const rows[8], float *dst, int64_t ldd) {
    __m256 a0 = _mm256_loadu_ps(rows[0]), a1 = _mm256_loadu_ps(rows[1]);
    __m256 a2 = _mm256_loadu_ps(rows[2]), a3 = _mm256_loadu_ps(rows[3]);
    __m256 a4 = _mm256_loadu_ps(rows[4]), a5 = _mm256_loadu_ps(rows[5]);
    __m256 a6 = _mm256_loadu_ps(rows[6]), a7 = _mm256_loadu_ps(rows[7]);
    __m256 t0 = _mm256_unpacklo_ps(a0, a1), t1 = _mm256_unpackhi_ps(a0, a1);
    __m256 t2 = _mm256_unpacklo_ps(a2, a3), t3 = _mm256_unpackhi_ps(a2, a3);
    __m256 t4 = _mm256_unpacklo_ps(a4, a5), t5 = _mm256_unpackhi_ps(a4, a5);
    __m256 t6 = _mm256_unpacklo_ps(a6, a7), t7 = _mm256_unpackhi_ps(a6, a7);
    __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE);
    __m256 u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE);
    __m256 u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE);
    __m256 u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
    _mm256_storeu_ps(dst + 0 * ldd, _mm256_permute2f128_ps(u0, u4, 0x20));
    _mm256_storeu_ps(dst + 1 * ldd, _mm256_permute2f128_ps(u1, u5, 0x20));
    _mm256_storeu_ps(dst + 2 * ldd, _mm256_permute2f128_ps(u2, u6, 0x20));
    _mm256_storeu_ps(dst + 3 * ldd, _mm256_permute2f128_ps(u3, u7, 0x20));
    _mm256_storeu_ps(dst + 4 * ldd, _mm256_permute2f128_ps(u0, u4, 0x31));
    _mm256_storeu_ps(dst + 5 * ldd, _mm256_permute2f128_ps(u1, u5, 0x31));
    _mm256_storeu_ps(dst + 6 * ldd, _mm256_permute2f128_ps(u2, u6, 0x31));
    _mm256_storeu_ps(dst + 7 * ldd, _mm256_permute2f128_ps(u3, u7, 0x31));
}

#endif
