/* cpu/gemm.c — the FP32 "NT" GEMM of the CPU reference backend and the quantized GEMM
 * built on it.
 *
 * Packed and cache-blocked (KC x MC x NR, BLIS-style loop order: a packed B panel stays in
 * L1 while the MC rows of packed A stream from L2). Four register micro-kernels, picked
 * at run time (fqt_gemm_set_impl, env FQT_GEMM): the plain-C reference (6x16, written so
 * the compiler vectorizes it), AVX2+FMA (6x16) and AVX-512F (12x32), these two in
 * intrinsics under per-function target attributes, so the build's -march does not matter,
 * and on AArch64 NEON (8x12, Advanced SIMD, which every AArch64 CPU has). All of them
 * perform the arithmetic of include/fqt/gemm.h in the same order: one thread computes each
 * element of C for a k block, with fmaf in increasing k, so the bits do not
 * depend on the kernel, the tiling or the thread count. That needs the build's
 * -ffp-contract=off (the C += alpha * acc step must stay a multiply and an add).
 *
 * Operands are read through an `operand`: FP32 rows, or a quantized tensor that is
 * dequantized row segment by row segment straight into the packed panels (the values are
 * those of fqt_dequantize: code value * block scale, then * tensor scale).
 * Oracle: tests/test_gemm.c (double-precision triple loop; kernels against each other). */
#include "fqt/gemm.h"
#include "fqt/par.h"

#include "formats/codec.h"

#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define FQT_GEMM_X86 1
#include <immintrin.h>
#include "formats/transpose_x86.h"
#else
#define FQT_GEMM_X86 0
#endif
#if defined(__GNUC__) && defined(__aarch64__)
#define FQT_GEMM_NEON_ON 1
#include <arm_neon.h>
#else
#define FQT_GEMM_NEON_ON 0
#endif

#define KC 256 /* part of the arithmetic contract (gemm.h): never change it silently */
#define MC 96  /* rows of A per work item; a multiple of every kernel's MR */
#define MR_MAX 12
#define NR_MAX 32
FQT_STATIC_ASSERT(MC % 6 == 0 && MC % 8 == 0 && MC % 12 == 0, "MC must be a multiple of every MR");

/* The C update after a k block: C = C + alpha * acc (UPD_ADD), C = 0 + alpha * acc
 * (UPD_ZERO, the first block when beta == 0) or C = beta * C + alpha * acc (UPD_BETA, the
 * first block otherwise): the same roundings as scaling C by beta in a pass of its own. */
enum { UPD_ADD = 0, UPD_ZERO, UPD_BETA };
typedef void (*kernel_fn)(int64_t kc, const float *restrict Ap, const float *restrict Bp,
                          float *restrict C, int64_t ldc, int mr, int nr, float alpha,
                          float beta, int upd);

/* ---- operands ------------------------------------------------------------------------ */
typedef struct {
    const float *f; /* FP32 rows (when q is NULL), row stride ld */
    int64_t ld;
    const fqt_qtensor *q;
    int bits;
    fqt_gemm_impl isa; /* the dequantization's vector ISA: that of the kernel (REF: scalar) */
    _Alignas(64) float lut[256]; /* 4- and 8-bit element code -> value */
    float slut[256];             /* 1-byte scale code -> value */
} operand;

static void operand_f32(operand *o, const float *x, int64_t ld) {
    o->f = x;
    o->ld = ld;
    o->q = NULL;
}

static void operand_q(operand *o, const fqt_qtensor *q) {
    const fqt_format *f = &q->fmt;
    o->f = NULL;
    o->q = q;
    o->bits = fqt_elem_bits(f->elem);
    o->isa = fqt_gemm_get_impl();
    if (o->bits <= 8)
        for (uint32_t c = 0; c < (1u << o->bits); c++) o->lut[c] = fqt_elem_decode_i(f->elem, c);
    for (uint32_t c = 0; c < 256; c++)
        o->slut[c] = f->scale == FQT_SCALE_E8M0    ? fqt_e8m0_dec_i((uint8_t)c)
                     : f->scale == FQT_SCALE_UE4M3 ? fqt_ue4m3_dec_i((uint8_t)c)
                                                   : 1.0f;
}

/* ---- vector dequantization: out[i] = lut[code i] * s, then * ts when ts_on; the same two
 * roundings as the scalar loop of operand_row. 4-bit codes start on a byte (two per byte,
 * low nibble first); n is a multiple of 16 (AVX-512) or 8 (AVX2). ---------------------- */
#if FQT_GEMM_X86
__attribute__((target("avx512f"))) static void deq4_avx512(const uint8_t *codes, int64_t n,
                                                            const float *lut, float s, int ts_on,
                                                            float ts, float *out) {
    const __m512 L = _mm512_loadu_ps(lut), S = _mm512_set1_ps(s), TS = _mm512_set1_ps(ts);
    const __m128i m4 = _mm_set1_epi8(0x0F);
    for (int64_t i = 0; i < n; i += 16) {
        const __m128i b = _mm_loadl_epi64((const __m128i *)(const void *)(codes + i / 2));
        const __m128i nib = _mm_unpacklo_epi8(_mm_and_si128(b, m4), _mm_and_si128(_mm_srli_epi16(b, 4), m4));
        __m512 v = _mm512_mul_ps(_mm512_permutexvar_ps(_mm512_cvtepu8_epi32(nib), L), S);
        if (ts_on) v = _mm512_mul_ps(v, TS);
        _mm512_storeu_ps(out + i, v);
    }
}

__attribute__((target("avx512f"))) static void deq8_avx512(const uint8_t *codes, int64_t n,
                                                            const float *lut, float s, int ts_on,
                                                            float ts, float *out) {
    const __m512 S = _mm512_set1_ps(s), TS = _mm512_set1_ps(ts);
    for (int64_t i = 0; i < n; i += 16) {
        const __m512i idx = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)(const void *)(codes + i)));
        __m512 v = _mm512_mul_ps(_mm512_i32gather_ps(idx, lut, 4), S);
        if (ts_on) v = _mm512_mul_ps(v, TS);
        _mm512_storeu_ps(out + i, v);
    }
}

__attribute__((target("avx2"))) static void deq4_avx2(const uint8_t *codes, int64_t n,
                                                       const float *lut, float s, int ts_on,
                                                       float ts, float *out) {
    /* 16-entry table as two 8-entry permutes, picked by the code's bit 3 */
    const __m256 L0 = _mm256_loadu_ps(lut), L1 = _mm256_loadu_ps(lut + 8);
    const __m256 S = _mm256_set1_ps(s), TS = _mm256_set1_ps(ts);
    const __m128i m4 = _mm_set1_epi8(0x0F);
    for (int64_t i = 0; i < n; i += 8) {
        uint32_t w;
        memcpy(&w, codes + i / 2, 4);
        const __m128i b = _mm_cvtsi32_si128((int)w);
        const __m128i nib = _mm_unpacklo_epi8(_mm_and_si128(b, m4), _mm_and_si128(_mm_srli_epi16(b, 4), m4));
        const __m256i idx = _mm256_cvtepu8_epi32(nib);
        const __m256 hi = _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28));
        __m256 v = _mm256_blendv_ps(_mm256_permutevar8x32_ps(L0, idx), _mm256_permutevar8x32_ps(L1, idx), hi);
        v = _mm256_mul_ps(v, S);
        if (ts_on) v = _mm256_mul_ps(v, TS);
        _mm256_storeu_ps(out + i, v);
    }
}

__attribute__((target("avx2"))) static void deq8_avx2(const uint8_t *codes, int64_t n,
                                                       const float *lut, float s, int ts_on,
                                                       float ts, float *out) {
    const __m256 S = _mm256_set1_ps(s), TS = _mm256_set1_ps(ts);
    for (int64_t i = 0; i < n; i += 8) {
        const __m256i idx = _mm256_cvtepu8_epi32(_mm_loadl_epi64((const __m128i *)(const void *)(codes + i)));
        __m256 v = _mm256_mul_ps(_mm256_i32gather_ps(lut, idx, 4), S);
        if (ts_on) v = _mm256_mul_ps(v, TS);
        _mm256_storeu_ps(out + i, v);
    }
}

/* BF16 codes (2 bytes each) to float32: the code in the upper half of the word, exactly. */
__attribute__((target("avx2"))) static void deqbf16_avx2(const uint8_t *codes, int64_t n, float *out) {
    for (int64_t i = 0; i < n; i += 8) {
        const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(const void *)(codes + 2 * i)));
        _mm256_storeu_ps(out + i, _mm256_castsi256_ps(_mm256_slli_epi32(w, 16)));
    }
}
#endif

/* The vector part of one block segment [c0, c1) of a row: how many leading elements it
 * dequantized into out + c0 (0: none; the caller does the rest in scalar code). */
static int64_t deq_vec(const operand *o, const uint8_t *row, int64_t c0, int64_t c1, float s,
                       float *out) {
#if FQT_GEMM_X86
    const int ts_on = o->q->fmt.tensor_scale;
    const float ts = o->q->tensor_scale;
    if (o->bits == 4 && (c0 & 1)) return 0;
    if (o->isa == FQT_GEMM_AVX512) {
        const int64_t n = (c1 - c0) & ~(int64_t)15;
        if (n && o->bits == 4) deq4_avx512(row + c0 / 2, n, o->lut, s, ts_on, ts, out + c0);
        else if (n && o->bits == 8) deq8_avx512(row + c0, n, o->lut, s, ts_on, ts, out + c0);
        else return 0;
        return n;
    }
    if (o->isa == FQT_GEMM_AVX2) {
        const int64_t n = (c1 - c0) & ~(int64_t)7;
        if (n && o->bits == 4) deq4_avx2(row + c0 / 2, n, o->lut, s, ts_on, ts, out + c0);
        else if (n && o->bits == 8) deq8_avx2(row + c0, n, o->lut, s, ts_on, ts, out + c0);
        else return 0;
        return n;
    }
#endif
    (void)o; (void)row; (void)c0; (void)c1; (void)s; (void)out;
    return 0;
}

/* Elements [k0, k0+kc) of row r: a pointer into the FP32 source, or buf filled with the
 * dequantized values (the same arithmetic as fqt_dequantize, §5.1). */
static const float *operand_row(const operand *o, int64_t r, int64_t k0, int64_t kc, float *buf) {
    if (!o->q) return o->f + r * o->ld + k0;
    const fqt_qtensor *q = o->q;
    const fqt_format *f = &q->fmt;
    const uint8_t *row = q->codes + r * q->row_bytes;
    const int64_t k1 = k0 + kc;
    if (f->scale == FQT_SCALE_NONE) {
        switch (o->bits) {
        case 32: memcpy(buf, row + 4 * k0, (size_t)kc * sizeof(float)); break;
        case 16: {
            int64_t c = k0;
#if FQT_GEMM_X86
            if (f->elem == FQT_ELEM_BF16 && o->isa != FQT_GEMM_REF) {
                const int64_t n = kc & ~(int64_t)7;
                deqbf16_avx2(row + 2 * k0, n, buf);
                c += n;
            }
#endif
            for (; c < k1; c++) {
                uint16_t v;
                memcpy(&v, row + 2 * c, 2);
                buf[c - k0] = fqt_elem_decode_i(f->elem, v);
            }
            break;
        }
        case 8: for (int64_t c = k0; c < k1; c++) buf[c - k0] = o->lut[row[c]]; break;
        default:
            for (int64_t c = k0; c < k1; c++) buf[c - k0] = o->lut[(row[c >> 1] >> ((c & 1) * 4)) & 0xF];
        }
        return buf;
    }
    const int64_t srow = (r / f->block_rows) * q->scale_cols;
    for (int64_t c0 = k0; c0 < k1;) {
        const int64_t j = c0 / f->block;
        const int64_t c1 = (j + 1) * f->block < k1 ? (j + 1) * f->block : k1;
        float s;
        if (f->scale == FQT_SCALE_FP32) memcpy(&s, q->scales + 4 * (srow + j), 4);
        else s = o->slut[q->scales[srow + j]];
        float *out = buf - k0;
        const int64_t cv = c0 + deq_vec(o, row, c0, c1, s, out);
        if (o->bits == 4)
            for (int64_t c = cv; c < c1; c++) out[c] = o->lut[(row[c >> 1] >> ((c & 1) * 4)) & 0xF] * s;
        else
            for (int64_t c = cv; c < c1; c++) out[c] = o->lut[row[c]] * s;
        if (f->tensor_scale)
            for (int64_t c = cv; c < c1; c++) out[c] *= q->tensor_scale;
        c0 = c1;
    }
    return buf;
}

/* out[k][i] = rp[i][k] for one panel of P rows; P a constant after inlining, so the rows
 * are read as P sequential streams and the panel is written in order. */
static inline __attribute__((always_inline)) void pack_panel(const float *const *rp, int64_t kc,
                                                             int P, float *restrict op) {
    for (int64_t k = 0; k < kc; k++)
        for (int i = 0; i < P; i++) op[k * P + i] = rp[i][k];
}

#if FQT_GEMM_X86
/* pack_panel with 8x8 (AVX) and 4x4 (SSE) transposes; the same bytes (data movement only). */
__attribute__((target("avx2"))) static void pack_panel_avx2(const float *const *rp, int64_t kc,
                                                             int P, float *restrict op) {
    int i0 = 0;
    for (; i0 + 8 <= P; i0 += 8) {
        const float *const *r = rp + i0;
        int64_t k = 0;
        for (; k + 8 <= kc; k += 8) {
            const float *const rk[8] = {r[0] + k, r[1] + k, r[2] + k, r[3] + k,
                                        r[4] + k, r[5] + k, r[6] + k, r[7] + k};
            fqt_transpose8x8_avx(rk, op + k * P + i0, P);
        }
        for (; k < kc; k++)
            for (int i = 0; i < 8; i++) op[k * P + i0 + i] = r[i][k];
    }
    for (; i0 + 4 <= P; i0 += 4) {
        const float *const *r = rp + i0;
        int64_t k = 0;
        for (; k + 4 <= kc; k += 4) {
            __m128 a0 = _mm_loadu_ps(r[0] + k), a1 = _mm_loadu_ps(r[1] + k);
            __m128 a2 = _mm_loadu_ps(r[2] + k), a3 = _mm_loadu_ps(r[3] + k);
            _MM_TRANSPOSE4_PS(a0, a1, a2, a3);
            float *o = op + k * P + i0;
            _mm_storeu_ps(o, a0);
            _mm_storeu_ps(o + P, a1);
            _mm_storeu_ps(o + 2 * P, a2);
            _mm_storeu_ps(o + 3 * P, a3);
        }
        for (; k < kc; k++)
            for (int i = 0; i < 4; i++) op[k * P + i0 + i] = r[i][k];
    }
    for (; i0 < P; i0++)
        for (int64_t k = 0; k < kc; k++) op[k * P + i0] = rp[i0][k];
}
#endif

/* Pack rows [r0, r0+rows) x k [k0, k0+kc) into panels of P rows: out[panel][k][p], rows
 * past the end zero. */
static void pack(const operand *o, int64_t r0, int64_t rows, int64_t k0, int64_t kc, int P,
                 int vec, float *restrict out) {
    static const float zeros[KC];
    float buf[NR_MAX * KC];
    const float *rp[NR_MAX];
    const int64_t panels = (rows + P - 1) / P;
    for (int64_t p = 0; p < panels; p++) {
        for (int i = 0; i < P; i++) {
            const int64_t r = p * P + i;
            rp[i] = r < rows ? operand_row(o, r0 + r, k0, kc, buf + i * KC) : zeros;
        }
        float *op = out + p * kc * P;
#if FQT_GEMM_X86
        if (vec) {
            pack_panel_avx2(rp, kc, P, op);
            continue;
        }
#else
        (void)vec; /* the vector packer is x86's */
#endif
        switch (P) {
        case 6: pack_panel(rp, kc, 6, op); break;
        case 8: pack_panel(rp, kc, 8, op); break;
        case 12: pack_panel(rp, kc, 12, op); break;
        case 16: pack_panel(rp, kc, 16, op); break;
        case 32: pack_panel(rp, kc, 32, op); break;
        default: pack_panel(rp, kc, P, op);
        }
    }
}

/* ---- micro-kernels: acc[MR][NR] = sum_k Ap[k][i] Bp[k][j] (fmaf, increasing k), then
 * C[i][j] += alpha * acc[i][j] for i < mr, j < nr. ------------------------------------ */
static void tail_update(const float *acc, int NR, float *C, int64_t ldc, int mr, int nr,
                        float alpha, float beta, int upd) {
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nr; j++) {
            float *c = &C[i * ldc + j];
            float c0 = upd == UPD_ADD ? *c : upd == UPD_ZERO ? 0.0f : beta * *c;
            *c = c0 + alpha * acc[i * NR + j];
        }
}

static void kernel_ref(int64_t kc, const float *restrict Ap, const float *restrict Bp,
                       float *restrict C, int64_t ldc, int mr, int nr, float alpha, float beta,
                       int upd) {
    float acc[6][16];
    memset(acc, 0, sizeof acc);
    for (int64_t k = 0; k < kc; k++) {
        const float *b = Bp + k * 16;
        const float *a = Ap + k * 6;
        for (int i = 0; i < 6; i++)
            for (int j = 0; j < 16; j++) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
    tail_update(&acc[0][0], 16, C, ldc, mr, nr, alpha, beta, upd);
}

#if FQT_GEMM_X86
__attribute__((target("avx2,fma"))) static void
kernel_avx2(int64_t kc, const float *restrict Ap, const float *restrict Bp, float *restrict C,
            int64_t ldc, int mr, int nr, float alpha, float beta, int upd) {
    __m256 c[6][2];
#pragma GCC unroll 6
    for (int i = 0; i < 6; i++) c[i][0] = c[i][1] = _mm256_setzero_ps();
    for (int64_t k = 0; k < kc; k++) {
        const __m256 b0 = _mm256_load_ps(Bp + k * 16), b1 = _mm256_load_ps(Bp + k * 16 + 8);
#pragma GCC unroll 6
        for (int i = 0; i < 6; i++) {
            const __m256 a = _mm256_broadcast_ss(Ap + k * 6 + i);
            c[i][0] = _mm256_fmadd_ps(a, b0, c[i][0]);
            c[i][1] = _mm256_fmadd_ps(a, b1, c[i][1]);
        }
    }
    const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta), z = _mm256_setzero_ps();
    if (mr == 6 && nr == 16) {
#pragma GCC unroll 6
        for (int i = 0; i < 6; i++) {
            float *ci = C + i * ldc;
            __m256 c0 = z, c1 = z;
            if (upd != UPD_ZERO) c0 = _mm256_loadu_ps(ci), c1 = _mm256_loadu_ps(ci + 8);
            if (upd == UPD_BETA) c0 = _mm256_mul_ps(vb, c0), c1 = _mm256_mul_ps(vb, c1);
            _mm256_storeu_ps(ci, _mm256_add_ps(c0, _mm256_mul_ps(va, c[i][0])));
            _mm256_storeu_ps(ci + 8, _mm256_add_ps(c1, _mm256_mul_ps(va, c[i][1])));
        }
        return;
    }
    float acc[6 * 16];
#pragma GCC unroll 6
    for (int i = 0; i < 6; i++) {
        _mm256_storeu_ps(acc + i * 16, c[i][0]);
        _mm256_storeu_ps(acc + i * 16 + 8, c[i][1]);
    }
    tail_update(acc, 16, C, ldc, mr, nr, alpha, beta, upd);
}

__attribute__((target("avx512f"))) static void
kernel_avx512(int64_t kc, const float *restrict Ap, const float *restrict Bp, float *restrict C,
              int64_t ldc, int mr, int nr, float alpha, float beta, int upd) {
    __m512 c[12][2];
#pragma GCC unroll 12
    for (int i = 0; i < 12; i++) c[i][0] = c[i][1] = _mm512_setzero_ps();
    for (int64_t k = 0; k < kc; k++) {
        const __m512 b0 = _mm512_load_ps(Bp + k * 32), b1 = _mm512_load_ps(Bp + k * 32 + 16);
#pragma GCC unroll 12
        for (int i = 0; i < 12; i++) {
            const __m512 a = _mm512_set1_ps(Ap[k * 12 + i]);
            c[i][0] = _mm512_fmadd_ps(a, b0, c[i][0]);
            c[i][1] = _mm512_fmadd_ps(a, b1, c[i][1]);
        }
    }
    const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta), z = _mm512_setzero_ps();
    if (mr == 12 && nr == 32) {
#pragma GCC unroll 12
        for (int i = 0; i < 12; i++) {
            float *ci = C + i * ldc;
            __m512 c0 = z, c1 = z;
            if (upd != UPD_ZERO) c0 = _mm512_loadu_ps(ci), c1 = _mm512_loadu_ps(ci + 16);
            if (upd == UPD_BETA) c0 = _mm512_mul_ps(vb, c0), c1 = _mm512_mul_ps(vb, c1);
            _mm512_storeu_ps(ci, _mm512_add_ps(c0, _mm512_mul_ps(va, c[i][0])));
            _mm512_storeu_ps(ci + 16, _mm512_add_ps(c1, _mm512_mul_ps(va, c[i][1])));
        }
        return;
    }
    float acc[12 * 32];
#pragma GCC unroll 12
    for (int i = 0; i < 12; i++) {
        _mm512_storeu_ps(acc + i * 32, c[i][0]);
        _mm512_storeu_ps(acc + i * 32 + 16, c[i][1]);
    }
    tail_update(acc, 32, C, ldc, mr, nr, alpha, beta, upd);
}
#endif

#if FQT_GEMM_NEON_ON
/* 8x12: 24 accumulators, the 12 columns of B in three registers, the 8 rows of A in two,
 * each product by FMLA (by element): one rounding, as fmaf. */
static void kernel_neon(int64_t kc, const float *restrict Ap, const float *restrict Bp, float *restrict C,
                        int64_t ldc, int mr, int nr, float alpha, float beta, int upd) {
    float32x4_t c[8][3];
    for (int i = 0; i < 8; i++) c[i][0] = c[i][1] = c[i][2] = vdupq_n_f32(0.0f);
    for (int64_t k = 0; k < kc; k++) {
        const float32x4_t b0 = vld1q_f32(Bp + k * 12), b1 = vld1q_f32(Bp + k * 12 + 4), b2 = vld1q_f32(Bp + k * 12 + 8);
        const float32x4_t a0 = vld1q_f32(Ap + k * 8), a1 = vld1q_f32(Ap + k * 8 + 4);
#define NEON_ROW(i, a, l)                                 \
    c[i][0] = vfmaq_laneq_f32(c[i][0], b0, a, l);         \
    c[i][1] = vfmaq_laneq_f32(c[i][1], b1, a, l);         \
    c[i][2] = vfmaq_laneq_f32(c[i][2], b2, a, l)
        NEON_ROW(0, a0, 0); NEON_ROW(1, a0, 1); NEON_ROW(2, a0, 2); NEON_ROW(3, a0, 3);
        NEON_ROW(4, a1, 0); NEON_ROW(5, a1, 1); NEON_ROW(6, a1, 2); NEON_ROW(7, a1, 3);
#undef NEON_ROW
    }
    const float32x4_t va = vdupq_n_f32(alpha), vb = vdupq_n_f32(beta);
    if (mr == 8 && nr == 12) {
        for (int i = 0; i < 8; i++)
            for (int j = 0; j < 3; j++) {
                float *cij = C + i * ldc + 4 * j;
                float32x4_t c0 = upd == UPD_ZERO ? vdupq_n_f32(0.0f) : vld1q_f32(cij);
                if (upd == UPD_BETA) c0 = vmulq_f32(vb, c0);
                vst1q_f32(cij, vaddq_f32(c0, vmulq_f32(va, c[i][j])));
            }
        return;
    }
    float acc[8 * 12];
    for (int i = 0; i < 8; i++)
        for (int j = 0; j < 3; j++) vst1q_f32(acc + i * 12 + 4 * j, c[i][j]);
    tail_update(acc, 12, C, ldc, mr, nr, alpha, beta, upd);
}
#endif

/* ---- dispatch --------------------------------------------------------------------------- */
typedef struct {
    int mr, nr;
    kernel_fn fn;
    const char *name;
} kernel_desc;

static const kernel_desc kernels[FQT_GEMM_IMPL_COUNT] = {
    [FQT_GEMM_AUTO] = {0, 0, NULL, "auto"},
    [FQT_GEMM_REF] = {6, 16, kernel_ref, "ref"},
#if FQT_GEMM_X86
    [FQT_GEMM_AVX2] = {6, 16, kernel_avx2, "avx2"},
    [FQT_GEMM_AVX512] = {12, 32, kernel_avx512, "avx512"},
#else
    [FQT_GEMM_AVX2] = {0, 0, NULL, "avx2"},
    [FQT_GEMM_AVX512] = {0, 0, NULL, "avx512"},
#endif
#if FQT_GEMM_NEON_ON
    [FQT_GEMM_NEON] = {8, 12, kernel_neon, "neon"},
#else
    [FQT_GEMM_NEON] = {0, 0, NULL, "neon"},
#endif
};
FQT_STATIC_ASSERT(FQT_GEMM_IMPL_COUNT == 5, "one kernel_desc per fqt_gemm_impl");

bool fqt_gemm_impl_supported(fqt_gemm_impl impl) {
    switch (impl) {
    case FQT_GEMM_AUTO:
    case FQT_GEMM_REF: return true;
#if FQT_GEMM_X86
    case FQT_GEMM_AVX2: return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case FQT_GEMM_AVX512: return __builtin_cpu_supports("avx512f");
#endif
#if FQT_GEMM_NEON_ON
    case FQT_GEMM_NEON: return true;
#endif
    default: return false;
    }
}

const char *fqt_gemm_impl_name(fqt_gemm_impl impl) {
    return (unsigned)impl < FQT_GEMM_IMPL_COUNT ? kernels[impl].name : "?";
}

static int g_impl = -1; /* resolved choice, never AUTO; -1 until the first use */

static fqt_gemm_impl best_impl(void) {
    if (fqt_gemm_impl_supported(FQT_GEMM_NEON)) return FQT_GEMM_NEON;
    if (fqt_gemm_impl_supported(FQT_GEMM_AVX512)) return FQT_GEMM_AVX512;
    if (fqt_gemm_impl_supported(FQT_GEMM_AVX2)) return FQT_GEMM_AVX2;
    return FQT_GEMM_REF;
}

fqt_status fqt_gemm_set_impl(fqt_gemm_impl impl) {
    if ((unsigned)impl >= FQT_GEMM_IMPL_COUNT || !fqt_gemm_impl_supported(impl)) {
        fqt_set_error("GEMM kernel '%s' is not supported on this CPU or build", fqt_gemm_impl_name(impl));
        return FQT_ERR_ARG;
    }
    g_impl = impl == FQT_GEMM_AUTO ? (int)best_impl() : (int)impl;
    return FQT_OK;
}

fqt_gemm_impl fqt_gemm_get_impl(void) {
    if (g_impl < 0) {
        const char *e = getenv("FQT_GEMM");
        fqt_gemm_impl want = FQT_GEMM_AUTO;
        for (int i = 1; e && i < FQT_GEMM_IMPL_COUNT; i++)
            if (!strcmp(e, kernels[i].name)) want = (fqt_gemm_impl)i;
        if (fqt_gemm_set_impl(want)) g_impl = (int)best_impl();
    }
    return (fqt_gemm_impl)g_impl;
}

/* ---- the blocked driver -------------------------------------------------------------- */
/* The packed B of one k block: reusable scratch of the calling thread (fqt_scratch), so a
 * step's GEMMs allocate nothing once the first step has sized it. */
static float *bp_buffer(size_t n) { return fqt_scratch(FQT_SCRATCH_GEMM_B, n * sizeof(float)); }

/* One GEMM's work, shared by its parallel phases (the fields as gemm_run computes them). */
typedef struct {
    int64_t M, N, K;
    float alpha, beta;
    const operand *A, *B;
    float *C;
    int64_t ldc;
    const kernel_desc *kd;
    int vec, MR, NR;
    int64_t npanels, mcb, ngroups, gp;
    int first_upd, full_b;
    float *Bp;  /* shared packed B: one k block's panels, or every k block's (full_b) */
    int64_t k0; /* the k block of the per-k-block phases */
} gemm_job;

/* C = beta * C when nothing is computed (K = 0 or alpha = 0). */
static void gemm_scale_rows(void *ctx, int64_t lo, int64_t hi, int slot) {
    const gemm_job *j = ctx;
    (void)slot;
    for (int64_t i = lo; i < hi; i++) {
        float *c = j->C + i * j->ldc;
        if (j->beta == 0.0f) memset(c, 0, (size_t)j->N * sizeof(float));
        else if (j->beta != 1.0f)
            for (int64_t x = 0; x < j->N; x++) c[x] *= j->beta;
    }
}

/* Packs B into the shared buffer: with full_b, tasks t = (k block, panel) over every k
 * block; otherwise t = the panels of k block j->k0. */
static void gemm_pack_b(void *ctx, int64_t lo, int64_t hi, int slot) {
    const gemm_job *j = ctx;
    (void)slot;
    for (int64_t t = lo; t < hi; t++) {
        const int64_t kb = j->full_b ? t / j->npanels : j->k0 / KC, p = j->full_b ? t % j->npanels : t;
        const int64_t k0 = kb * KC, kc = j->K - k0 < KC ? j->K - k0 : KC;
        const int64_t n0 = p * j->NR, nr = j->N - n0 < j->NR ? j->N - n0 : j->NR;
        pack(j->B, n0, nr, k0, kc, j->NR, j->vec,
             j->full_b ? j->Bp + (kb * j->npanels + p) * KC * j->NR : j->Bp + p * kc * j->NR);
    }
}

/* The micro-kernel over one work item's tile for one k block: rows m0..m0+mc of packed A,
 * panels p0..p1 of packed B (Bk: panel p0's, stride bstride floats per panel). */
static void gemm_tile(const gemm_job *j, const float *Ap, const float *Bk, int64_t bstride, int64_t m0,
                      int64_t mc, int64_t p0, int64_t p1, int64_t k0, int64_t kc) {
    for (int64_t p = p0; p < p1; p++) {
        const int64_t n0 = p * j->NR;
        const int nr = (int)(j->N - n0 < j->NR ? j->N - n0 : j->NR);
        for (int64_t i0 = 0; i0 < mc; i0 += j->MR) {
            const int mr = (int)(mc - i0 < j->MR ? mc - i0 : j->MR);
            j->kd->fn(kc, Ap + (i0 / j->MR) * kc * j->MR, Bk + (p - p0) * bstride, j->C + (m0 + i0) * j->ldc + n0,
                      j->ldc, mr, nr, j->alpha, j->beta, k0 ? UPD_ADD : j->first_upd);
        }
    }
}

/* Work item w = (row block, group of column panels): its rows, panels and k extent. */
#define GEMM_ITEM(j, w)                                                                          \
    const int64_t mb = (w) / (j)->ngroups, g = (w) % (j)->ngroups;                               \
    const int64_t m0 = mb * (j)->mcb, mc = (j)->M - m0 < (j)->mcb ? (j)->M - m0 : (j)->mcb;      \
    const int64_t p0 = g * (j)->gp, p1 = (g + 1) * (j)->gp < (j)->npanels ? (g + 1) * (j)->gp : (j)->npanels

/* Each work item runs all of K for its tile, with no barrier per k block: B packed whole
 * beforehand (full_b: the item's C tile stays hot), or packed by the item itself per k block
 * (own_k, few row blocks: the B packing is repeated once per row block, mblocks <= 4). */
static void gemm_items_all_k(void *ctx, int64_t lo, int64_t hi, int slot) {
    const gemm_job *j = ctx;
    (void)slot;
    _Alignas(64) float Ap[MC * KC];
    float *Bq = j->full_b ? NULL : fqt_scratch(FQT_SCRATCH_GEMM_A, (size_t)(j->gp * j->NR * KC) * sizeof(float));
    for (int64_t w = lo; w < hi; w++) {
        GEMM_ITEM(j, w);
        for (int64_t k0 = 0; k0 < j->K; k0 += KC) {
            const int64_t kc = j->K - k0 < KC ? j->K - k0 : KC;
            pack(j->A, m0, mc, k0, kc, j->MR, j->vec, Ap);
            if (j->full_b) {
                gemm_tile(j, Ap, j->Bp + ((k0 / KC) * j->npanels + p0) * KC * j->NR, KC * j->NR, m0, mc, p0, p1, k0, kc);
                continue;
            }
            const int64_t n0 = p0 * j->NR, nr = (p1 * j->NR < j->N ? p1 * j->NR : j->N) - n0;
            pack(j->B, n0, nr, k0, kc, j->NR, j->vec, Bq);
            gemm_tile(j, Ap, Bq, kc * j->NR, m0, mc, p0, p1, k0, kc);
        }
    }
}

/* One k block (j->k0), its B panels packed beforehand. */
static void gemm_items_k_block(void *ctx, int64_t lo, int64_t hi, int slot) {
    const gemm_job *j = ctx;
    (void)slot;
    _Alignas(64) float Ap[MC * KC];
    const int64_t k0 = j->k0, kc = j->K - k0 < KC ? j->K - k0 : KC;
    for (int64_t w = lo; w < hi; w++) {
        GEMM_ITEM(j, w);
        pack(j->A, m0, mc, k0, kc, j->MR, j->vec, Ap);
        gemm_tile(j, Ap, j->Bp + p0 * kc * j->NR, kc * j->NR, m0, mc, p0, p1, k0, kc);
    }
}

static void gemm_run(int64_t M, int64_t N, int64_t K, float alpha, const operand *A,
                     const operand *B, float beta, float *C, int64_t ldc) {
    if (M <= 0 || N <= 0) return;
    const fqt_gemm_impl impl = fqt_gemm_get_impl();
    const kernel_desc *kd = &kernels[impl];
    /* The reference kernel keeps its plain-C packing too (it is the oracle). */
    const int vec = impl != FQT_GEMM_REF && fqt_gemm_impl_supported(FQT_GEMM_AVX2);
    const int MR = kd->mr, NR = kd->nr;
    const int compute = K > 0 && alpha != 0.0f;
    const int64_t npanels = (N + NR - 1) / NR;
    const int nthreads = fqt_par_threads();
    /* B packed whole (every k block, once) when that fits in half an L2 of 2 MiB (1 MiB,
     * a whole L2 of some CPUs): each work item then runs all of K for its tile, with no
     * barrier per k block and its C tile hot. At 2 MiB, 2048x128x4096 streamed all of B
     * from L3 for every row block: 127-129 GFLOP/s at 1 thread, 134 per k block (PERF.md). */
    const int64_t nkb = (K + KC - 1) / KC;
    const int b_fits = compute && nkb > 1 && (size_t)(npanels * NR * K) * sizeof(float) <= ((size_t)1 << 20);
    /* Few row blocks (the wgrad shapes): the rows split into work items of equal size (a
     * multiple of MR, at most MC), as many as a multiple of the threads, and no column
     * split, which would pack each A row block again for every column group. With one item
     * per thread, or B too large to pack whole, each item packs its own B (own_k: no shared
     * data, B packed once per item); with more items B is packed whole once and shared.
     * The tiling never changes the arithmetic (gemm.h: only KC does). */
    const int few_rows = compute && (M + MC - 1) / MC <= 4 && K > KC;
    int64_t mcb = MC;
    if (few_rows && nthreads > 1)
        for (int64_t items = nthreads;; items += nthreads) {
            const int64_t per = ((M + items - 1) / items + MR - 1) / MR * MR;
            if (per <= MC) {
                mcb = per;
                break;
            }
        }
    const int64_t mblocks = (M + mcb - 1) / mcb;
    const int own_k = few_rows && (!b_fits || mblocks <= nthreads);
    /* Work items are (row block, group of column panels); split the columns only as far
     * as needed to give every thread a few items, since each item packs its rows of A. */
    int64_t ngroups = few_rows && mblocks >= nthreads ? 1 : (4 * nthreads + mblocks - 1) / mblocks;
    if (ngroups > npanels) ngroups = npanels;
    const int64_t gp = (npanels + ngroups - 1) / ngroups;
    ngroups = (npanels + gp - 1) / gp;
    const int full_b = b_fits && !own_k;
    float *Bp = compute && !own_k ? bp_buffer((size_t)(npanels * NR * KC * (full_b ? nkb : 1))) : NULL;
    const int first_upd = beta == 0.0f ? UPD_ZERO : beta == 1.0f ? UPD_ADD : UPD_BETA;
    gemm_job j = {M, N, K, alpha, beta, A, B, C, ldc, kd, vec, MR, NR, npanels, mcb, ngroups, gp, first_upd, full_b, Bp, 0};
    /* Each phase is one fqt_par_for (par.h): work items are claimed one at a time, so a
     * thread that lost its core holds up at most the item it is running. */
    const int64_t items = mblocks * ngroups;
    if (!compute) fqt_par_for(M, fqt_par_grain(M, 4, 16), gemm_scale_rows, &j);
    else if (own_k || full_b) {
        if (full_b) fqt_par_for(nkb * npanels, fqt_par_grain(nkb * npanels, 4, 1), gemm_pack_b, &j);
        fqt_par_for(items, 1, gemm_items_all_k, &j);
    } else
        for (int64_t k0 = 0; k0 < K; k0 += KC) {
            j.k0 = k0;
            fqt_par_for(npanels, fqt_par_grain(npanels, 4, 1), gemm_pack_b, &j);
            fqt_par_for(items, 1, gemm_items_k_block, &j);
        }
}

void fqt_sgemm_nt(int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                  const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    operand a, b;
    operand_f32(&a, A, lda);
    operand_f32(&b, B, ldb);
    gemm_run(M, N, K, alpha, &a, &b, beta, C, ldc);
}

void fqt_qgemm(const fqt_qtensor *A, const fqt_qtensor *B, float alpha, float beta, float *C,
               int64_t ldc) {
    FQT_ASSERT(A->cols == B->cols);
    /* Dequantization happens inside the packing, so it is part of the GEMM's time. */
    double t0 = fqt_prof_now();
    operand a, b;
    operand_q(&a, A);
    operand_q(&b, B);
    gemm_run(A->rows, B->rows, A->cols, alpha, &a, &b, beta, C, ldc);
    fqt_prof_add(FQT_PROF_GEMM, fqt_prof_now() - t0);
}
