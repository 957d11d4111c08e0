/* fqt/gemm.h — the GEMMs of the CPU reference backend.
 *
 * All GEMMs here are "NT": C[M,N] = sum_k A[m,k] * B[n,k], both operands K-contiguous,
 * which is the layout fqt_quantize produces for every operand of the three training
 * GEMMs (fprop, dgrad, wgrad). FP32 accumulation. Not for: choosing formats (recipe.h). */
#ifndef FQT_GEMM_H
#define FQT_GEMM_H

#include "fqt/formats.h"

/* C = alpha * A B^T + beta * C. A [M,K] row stride lda, B [N,K] stride ldb, C [M,N]
 * stride ldc. beta == 0 overwrites C (NaNs in C are not propagated). OpenMP parallel,
 * cache blocked; the result does not depend on the thread count.
 * Oracle: tests/test_gemm.c compares against a double-precision triple loop. */
void fqt_sgemm_nt(int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                  const float *B, int64_t ldb, float beta, float *C, int64_t ldc);

/* Quantized GEMM: C = alpha * deq(A) deq(B)^T + beta * C, A->cols == B->cols == K,
 * A->rows == M, B->rows == N, FP32 accumulation. Products of dequantized E2M1/E4M3
 * values and their scales are exact in FP32, so this is exact emulation of a block-
 * scaled FP4 tensor-core GEMM up to the order of accumulation.
 * Oracle: double-precision GEMM of fqt_dequantize(A), fqt_dequantize(B). */
void fqt_qgemm(const fqt_qtensor *A, const fqt_qtensor *B, float alpha, float beta, float *C,
               int64_t ldc);

#endif
