/* tests/test_gemm.c — fqt_sgemm_nt and fqt_qgemm against a double-precision triple loop,
 * and every micro-kernel this CPU can run (ref, AVX2, AVX-512) against the reference kernel
 * bit for bit (memcmp), on shapes that leave partial tiles and several k blocks, for every
 * beta case; fqt_qgemm bit-identical to fqt_sgemm_nt on the dequantized operands.
 *
 * Tolerance: the classic bound for a K-term dot product in binary32,
 * |fl(s) - s| <= gamma_K * sum_k |a_k b_k|, gamma_K = K u / (1 - K u), u = 2^-24 (Higham,
 * Accuracy and Stability, §3.1), applied per element (plus the alpha/beta roundings). */
#include "check.h"
#include "fqt/gemm.h"

#include <math.h>
#include <stdlib.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static float frand(void) {
    rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17;
    return (float)((double)(rng >> 11) * 0x1p-53 * 2.0 - 1.0);
}

/* Check C against alpha * A B^T + beta * C0 in double, element by element. */
static int check_gemm(int64_t M, int64_t N, int64_t K, float alpha, const float *A,
                      const float *B, float beta, const float *C0, const float *C) {
    int bad = 0;
    double u = 0x1p-24, gamma = (double)(K + 2) * u / (1.0 - (double)(K + 2) * u);
    for (int64_t i = 0; i < M; i++)
        for (int64_t j = 0; j < N; j++) {
            double s = 0, sa = 0;
            for (int64_t k = 0; k < K; k++) {
                s += (double)A[i * K + k] * B[j * K + k];
                sa += fabs((double)A[i * K + k] * B[j * K + k]);
            }
            double ref = alpha * s + (beta != 0.0f ? beta * (double)C0[i * N + j] : 0.0);
            double tol = gamma * (fabs(alpha) * sa + fabs(beta * (double)C0[i * N + j])) + 1e-30;
            if (fabs(C[i * N + j] - ref) > tol) {
                if (bad++ < 3)
                    fprintf(stderr, "  [%lld,%lld] got %.9g want %.9g tol %.3g\n", (long long)i,
                            (long long)j, C[i * N + j], ref, tol);
            }
        }
    return bad;
}

/* Every kernel against the reference, bit for bit, on [M,N,K] with strides > the shape. */
static void check_kernels(int64_t M, int64_t N, int64_t K) {
    const int64_t lda = K + 3, ldb = K + 1, ldc = N + 5;
    float *A = malloc(sizeof(float) * M * lda), *B = malloc(sizeof(float) * N * ldb);
    float *C0 = malloc(sizeof(float) * M * ldc), *R = malloc(sizeof(float) * M * ldc),
          *C = malloc(sizeof(float) * M * ldc);
    for (int64_t i = 0; i < M * lda; i++) A[i] = (i % 11 == 0) ? 0.0f : frand();
    for (int64_t i = 0; i < N * ldb; i++) B[i] = (i % 13 == 0) ? -0.0f : frand() * 1e3f;
    for (int64_t i = 0; i < M * ldc; i++) C0[i] = frand();
    /* {0.7, 1.3}: alpha and beta not powers of two, so a kernel that fused C + alpha * acc
     * (or beta * C) into one rounding would differ */
    const float ab[][2] = {{1.0f, 0.0f}, {0.5f, 1.0f}, {-2.0f, 0.25f}, {0.0f, 0.5f}, {0.7f, 1.3f}};
    for (size_t t = 0; t < sizeof ab / sizeof ab[0]; t++) {
        FQT_ASSERT(fqt_gemm_set_impl(FQT_GEMM_REF) == FQT_OK);
        memcpy(R, C0, sizeof(float) * M * ldc);
        fqt_sgemm_nt(M, N, K, ab[t][0], A, lda, B, ldb, ab[t][1], R, ldc);
        for (int impl = FQT_GEMM_AVX2; impl < FQT_GEMM_IMPL_COUNT; impl++) {
            if (!fqt_gemm_impl_supported((fqt_gemm_impl)impl)) continue;
            CHECK(fqt_gemm_set_impl((fqt_gemm_impl)impl) == FQT_OK);
            memcpy(C, C0, sizeof(float) * M * ldc);
            fqt_sgemm_nt(M, N, K, ab[t][0], A, lda, B, ldb, ab[t][1], C, ldc);
            CHECK_MSG(memcmp(C, R, sizeof(float) * M * ldc) == 0,
                      "kernel %s differs from ref at %lldx%lldx%lld alpha %g beta %g",
                      fqt_gemm_impl_name((fqt_gemm_impl)impl), (long long)M, (long long)N,
                      (long long)K, ab[t][0], ab[t][1]);
        }
    }
    fqt_gemm_set_impl(FQT_GEMM_AUTO);
    free(A); free(B); free(C0); free(R); free(C);
}

int main(void) {
    printf("kernels here:");
    for (int i = FQT_GEMM_REF; i < FQT_GEMM_IMPL_COUNT; i++)
        if (fqt_gemm_impl_supported((fqt_gemm_impl)i)) printf(" %s", fqt_gemm_impl_name((fqt_gemm_impl)i));
    printf("; auto = %s\n", fqt_gemm_impl_name(fqt_gemm_get_impl()));
    CHECK(fqt_gemm_set_impl(FQT_GEMM_IMPL_COUNT) == FQT_ERR_ARG);
    /* {300, 70, 600}: few row blocks with more work items than threads, B packed whole once */
    const int64_t kshapes[][3] = {{1, 1, 1}, {12, 32, 256}, {13, 33, 257}, {97, 70, 600},
                                  {200, 31, 5}, {5, 200, 513}, {96, 64, 0}, {300, 70, 600}};
    for (size_t s = 0; s < sizeof kshapes / sizeof kshapes[0]; s++)
        check_kernels(kshapes[s][0], kshapes[s][1], kshapes[s][2]);

    const int64_t shapes[][3] = {{1, 1, 1}, {7, 5, 3}, {6, 16, 256}, {97, 33, 300},
                                 {13, 130, 17}, {200, 64, 513}, {300, 70, 600}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int64_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * N * K);
        float *C0 = malloc(sizeof(float) * M * N), *C = malloc(sizeof(float) * M * N);
        for (int64_t i = 0; i < M * K; i++) A[i] = frand();
        for (int64_t i = 0; i < N * K; i++) B[i] = frand();
        for (int64_t i = 0; i < M * N; i++) C0[i] = frand();
        const float ab[][2] = {{1.0f, 0.0f}, {0.5f, 1.0f}, {-2.0f, 0.25f}};
        for (int t = 0; t < 3; t++) {
            memcpy(C, C0, sizeof(float) * M * N);
            fqt_sgemm_nt(M, N, K, ab[t][0], A, K, B, K, ab[t][1], C, N);
            CHECK_MSG(check_gemm(M, N, K, ab[t][0], A, B, ab[t][1], C0, C) == 0,
                      "sgemm %lldx%lldx%lld alpha %g beta %g", (long long)M, (long long)N,
                      (long long)K, ab[t][0], ab[t][1]);
        }
        /* beta == 0 must overwrite, even NaN garbage. */
        for (int64_t i = 0; i < M * N; i++) C[i] = NAN;
        fqt_sgemm_nt(M, N, K, 1.0f, A, K, B, K, 0.0f, C, N);
        CHECK(check_gemm(M, N, K, 1.0f, A, B, 0.0f, C0, C) == 0);

        /* Quantized GEMM equals the GEMM of the dequantized operands. */
        const char *fmts[] = {"nvfp4", "mxfp4", "fp8", "bf16", "nvfp4-2d", "int4", "fp32", "mxfp8"};
        for (int f = 0; f < 8; f++) {
            fqt_format fm;
            CHECK(fqt_format_parse(fmts[f], &fm) == FQT_OK);
            fqt_qtensor qa, qb;
            CHECK(fqt_qtensor_alloc(&qa, &fm, M, K) == FQT_OK);
            CHECK(fqt_qtensor_alloc(&qb, &fm, N, K) == FQT_OK);
            CHECK(fqt_quantize(&qa, A, M, K, FQT_AXIS_ROWS, FQT_ROUND_RNE, 1, 1, NULL) == FQT_OK);
            CHECK(fqt_quantize(&qb, B, N, K, FQT_AXIS_ROWS, FQT_ROUND_SR, 1, 2, NULL) == FQT_OK);
            float *da = malloc(sizeof(float) * M * K), *db = malloc(sizeof(float) * N * K);
            fqt_dequantize(&qa, da);
            fqt_dequantize(&qb, db);
            fqt_qgemm(&qa, &qb, 1.0f, 0.0f, C, N);
            CHECK_MSG(check_gemm(M, N, K, 1.0f, da, db, 0.0f, C0, C) == 0, "qgemm %s", fmts[f]);
            /* Dequantizing into the panels gives the bits of the GEMM of fqt_dequantize. */
            float *C2 = malloc(sizeof(float) * M * N);
            memcpy(C, C0, sizeof(float) * M * N);
            memcpy(C2, C0, sizeof(float) * M * N);
            fqt_qgemm(&qa, &qb, -0.5f, 0.75f, C, N);
            fqt_sgemm_nt(M, N, K, -0.5f, da, K, db, K, 0.75f, C2, N);
            CHECK_MSG(memcmp(C, C2, sizeof(float) * M * N) == 0, "qgemm %s != sgemm of dequantized", fmts[f]);
            free(C2);
            free(da); free(db);
            fqt_qtensor_free(&qa);
            fqt_qtensor_free(&qb);
        }
        free(A); free(B); free(C0); free(C);
    }
#ifdef _OPENMP
    /* Same bits with 1 and 2 threads. */
    {
        int64_t M = 150, N = 70, K = 700;
        float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * N * K);
        float *C1 = malloc(sizeof(float) * M * N), *C2 = malloc(sizeof(float) * M * N);
        for (int64_t i = 0; i < M * K; i++) A[i] = frand();
        for (int64_t i = 0; i < N * K; i++) B[i] = frand();
        int nt = omp_get_max_threads();
        omp_set_num_threads(1);
        fqt_sgemm_nt(M, N, K, 1.0f, A, K, B, K, 0.0f, C1, N);
        omp_set_num_threads(nt > 1 ? nt : 2);
        fqt_sgemm_nt(M, N, K, 1.0f, A, K, B, K, 0.0f, C2, N);
        CHECK(memcmp(C1, C2, sizeof(float) * M * N) == 0);
        free(A); free(B); free(C1); free(C2);
    }
#endif
    return check_finish();
}
