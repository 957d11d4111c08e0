/* cpu/gemm.c — the FP32 "NT" GEMM of the CPU reference backend and the quantized GEMM
 * built on it.
 *
 * Packed, cache-blocked (KC x MC x NR) with a 6x16 register micro-kernel written so the
 * compiler vectorizes it (fmaf maps to FMA instructions where the target has them). Each
 * element of C is accumulated by one thread in a fixed k order, so the result does not
 * depend on the thread count. Oracle: tests/test_gemm.c (double-precision triple loop). */
#include "fqt/gemm.h"

#include <math.h>
#include <string.h>

#define MR 6
#define NR 16
#define KC 256
#define MC 96

/* acc[MR][NR] = sum_k Ap[k][i] * Bp[k][j]; then C[i][j] += alpha * acc. */
static void micro_kernel(int64_t kc, const float *restrict Ap, const float *restrict Bp,
                         float *restrict C, int64_t ldc, int mr, int nr, float alpha) {
    float acc[MR][NR];
    memset(acc, 0, sizeof acc);
    for (int64_t k = 0; k < kc; k++) {
        const float *b = Bp + k * NR;
        const float *a = Ap + k * MR;
        for (int i = 0; i < MR; i++)
            for (int j = 0; j < NR; j++) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nr; j++) C[i * ldc + j] += alpha * acc[i][j];
}

/* Pack rows [r0, r0+rows) x k [k0, k0+kc) of X (row stride ld) into panels of P rows:
 * out[panel][k][p], zero padded. */
static void pack(const float *X, int64_t ld, int64_t r0, int64_t rows, int64_t k0, int64_t kc,
                 int P, float *out) {
    int64_t panels = (rows + P - 1) / P;
    for (int64_t p = 0; p < panels; p++) {
        float *o = out + p * kc * P;
        for (int i = 0; i < P; i++) {
            int64_t r = p * P + i;
            if (r < rows) {
                const float *x = X + (r0 + r) * ld + k0;
                for (int64_t k = 0; k < kc; k++) o[k * P + i] = x[k];
            } else {
                for (int64_t k = 0; k < kc; k++) o[k * P + i] = 0.0f;
            }
        }
    }
}

void fqt_sgemm_nt(int64_t M, int64_t N, int64_t K, float alpha, const float *A, int64_t lda,
                  const float *B, int64_t ldb, float beta, float *C, int64_t ldc) {
    if (M <= 0 || N <= 0) return;
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < M; i++) {
        float *c = C + i * ldc;
        if (beta == 0.0f) memset(c, 0, (size_t)N * sizeof(float));
        else if (beta != 1.0f)
            for (int64_t j = 0; j < N; j++) c[j] *= beta;
    }
    if (K <= 0 || alpha == 0.0f) return;
    const int64_t npanels = (N + NR - 1) / NR;
    float *Bp = fqt_xmalloc((size_t)(npanels * NR * KC) * sizeof(float));
    const int64_t mblocks = (M + MC - 1) / MC;
    for (int64_t k0 = 0; k0 < K; k0 += KC) {
        int64_t kc = K - k0 < KC ? K - k0 : KC;
#pragma omp parallel
        {
#pragma omp for schedule(static)
            for (int64_t p = 0; p < npanels; p++) {
                int64_t n0 = p * NR, nr = N - n0 < NR ? N - n0 : NR;
                pack(B, ldb, n0, nr, k0, kc, NR, Bp + p * kc * NR);
            }
            float Ap[MC * KC];
            /* Work items: (row block, column panel group) so small M still spreads. */
            const int64_t ngroups = (npanels + 7) / 8;
#pragma omp for schedule(dynamic, 1)
            for (int64_t w = 0; w < mblocks * ngroups; w++) {
                int64_t mb = w / ngroups, gq = w % ngroups;
                int64_t m0 = mb * MC, mc = M - m0 < MC ? M - m0 : MC;
                pack(A, lda, m0, mc, k0, kc, MR, Ap);
                int64_t p1 = (gq + 1) * 8 < npanels ? (gq + 1) * 8 : npanels;
                for (int64_t p = gq * 8; p < p1; p++) {
                    int64_t n0 = p * NR;
                    int nr = (int)(N - n0 < NR ? N - n0 : NR);
                    for (int64_t i0 = 0; i0 < mc; i0 += MR) {
                        int mr = (int)(mc - i0 < MR ? mc - i0 : MR);
                        micro_kernel(kc, Ap + (i0 / MR) * kc * MR, Bp + p * kc * NR,
                                     C + (m0 + i0) * ldc + n0, ldc, mr, nr, alpha);
                    }
                }
            }
        }
    }
    free(Bp);
}

void fqt_qgemm(const fqt_qtensor *A, const fqt_qtensor *B, float alpha, float beta, float *C,
               int64_t ldc) {
    FQT_ASSERT(A->cols == B->cols);
    const int64_t M = A->rows, N = B->rows, K = A->cols;
    /* Dequantize once (O((M+N)K)), then the O(MNK) FP32 GEMM: products of E2M1/E4M3 values
     * and their block scales are exact in FP32, so only the accumulation order differs
     * from a block-scaled tensor-core GEMM. */
    float *a = fqt_xmalloc((size_t)(M * K) * sizeof(float) + 1);
    float *b = fqt_xmalloc((size_t)(N * K) * sizeof(float) + 1);
    double t0 = fqt_prof_now();
    fqt_dequantize(A, a);
    fqt_dequantize(B, b);
    double t1 = fqt_prof_now();
    fqt_sgemm_nt(M, N, K, alpha, a, K, b, K, beta, C, ldc);
    fqt_prof_add(FQT_PROF_DEQUANTIZE, t1 - t0);
    fqt_prof_add(FQT_PROF_GEMM, fqt_prof_now() - t1);
    free(a);
    free(b);
}
