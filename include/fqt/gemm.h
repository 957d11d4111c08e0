/* fqt/gemm.h — the GEMMs of the CPU reference backend.
 *
 * All GEMMs here are "NT": C[M,N] = sum_k A[m,k] * B[n,k], both operands K-contiguous,
 * which is the layout fqt_quantize produces for every operand of the three training
 * GEMMs (fprop, dgrad, wgrad). FP32 accumulation. Not for: choosing formats (recipe.h).
 *
 * The arithmetic is fixed, whatever the kernel (docs/FORMATS.md §8): C is first scaled
 * by beta (or zeroed), then for each block of 256 consecutive k (k0 = 0, 256, ...) one
 * FP32 accumulator per element starts at 0 and takes fused multiply-adds in increasing
 * k, and C += alpha * acc is applied with two roundings (multiply, then add). Every
 * kernel below follows it, so the reference kernel, the AVX2, AVX-512 and NEON kernels
 * give the same bits on every machine and for every thread count. */
#ifndef FQT_GEMM_H
#define FQT_GEMM_H

#include "fqt/formats.h"

/* Which micro-kernel runs. AUTO picks the widest one the CPU supports at run time
 * (AVX-512F, else AVX2+FMA, else the reference; NEON on AArch64). REF is the plain-C
 * fixed-order kernel the oracle tests and the recorded digests were made with. Append only. */
typedef enum {
    FQT_GEMM_AUTO = 0,
    FQT_GEMM_REF,
    FQT_GEMM_AVX2,
    FQT_GEMM_AVX512,
    FQT_GEMM_NEON, /* AArch64 Advanced SIMD (every AArch64 CPU has it) */
    FQT_GEMM_IMPL_COUNT
} fqt_gemm_impl;

/* Select the kernel for later calls (process-wide; not to be called while a GEMM runs).
 * Returns FQT_ERR_ARG, keeping the current choice, if this CPU or build cannot run it.
 * Without a call the choice comes from the environment variable FQT_GEMM
 * (ref|avx2|avx512|neon|auto), read on the first GEMM; unset or unknown means auto. */
fqt_status fqt_gemm_set_impl(fqt_gemm_impl impl);
/* The kernel that runs now (never AUTO) and its name ("ref", "avx2", "avx512", "neon"). */
fqt_gemm_impl fqt_gemm_get_impl(void);
const char *fqt_gemm_impl_name(fqt_gemm_impl impl);
/* Whether this CPU and build can run impl (AUTO and REF: always). */
bool fqt_gemm_impl_supported(fqt_gemm_impl impl);

/* C = alpha * A B^T + beta * C. A [M,K] row stride lda, B [N,K] stride ldb, C [M,N]
 * stride ldc. beta == 0 overwrites C (NaNs in C are not propagated). OpenMP parallel,
 * cache blocked; the result does not depend on the thread count or the kernel.
 * Oracle: tests/test_gemm.c compares against a double-precision triple loop. */
void fqt_sgemm_nt(int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                  const float *B, int64_t ldb, float beta, float *C, int64_t ldc);

/* Quantized GEMM: C = alpha * deq(A) deq(B)^T + beta * C, A->cols == B->cols == K,
 * A->rows == M, B->rows == N, FP32 accumulation. The operands are dequantized straight
 * into the GEMM's packed panels (no dequantized copy of a whole tensor), with the same
 * values fqt_dequantize gives. Products of dequantized E2M1/E4M3 values and their scales
 * are exact in FP32, so this is exact emulation of a block-scaled FP4 tensor-core GEMM
 * up to the order of accumulation; the result is bit-identical to fqt_sgemm_nt on
 * fqt_dequantize(A), fqt_dequantize(B).
 * Oracle: double-precision GEMM of fqt_dequantize(A), fqt_dequantize(B). */
void fqt_qgemm(const fqt_qtensor *A, const fqt_qtensor *B, float alpha, float beta, float *C,
               int64_t ldc);

#endif
