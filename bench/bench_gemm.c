/* bench/bench_gemm.c — GFLOP/s of the FP32 GEMM and of the quantized GEMM (quantize both
 * operands + dequantize + FP32 GEMM, i.e. what one training GEMM costs on the CPU), side by
 * side in one run. Usage: bench_gemm [M N K] [reps]. Prints one line per variant. */
#include "fqt/gemm.h"

#include <stdio.h>
#include <stdlib.h>
#ifdef _OPENMP
#include <omp.h>
#endif

int main(int argc, char **argv) {
    int64_t M = argc > 3 ? atoll(argv[1]) : 2048, N = argc > 3 ? atoll(argv[2]) : 768,
            K = argc > 3 ? atoll(argv[3]) : 768;
    int reps = argc > 4 ? atoi(argv[4]) : 5;
    float *A = malloc(sizeof(float) * M * K), *B = malloc(sizeof(float) * N * K),
          *C = malloc(sizeof(float) * M * N);
    uint64_t s = 1;
    for (int64_t i = 0; i < M * K; i++) { s = s * 6364136223846793005ull + 1; A[i] = (float)((s >> 40) * 0x1p-24 - 0.5); }
    for (int64_t i = 0; i < N * K; i++) { s = s * 6364136223846793005ull + 1; B[i] = (float)((s >> 40) * 0x1p-24 - 0.5); }
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    printf("bench_gemm: M=%lld N=%lld K=%lld, %d threads, best of %d\n", (long long)M,
           (long long)N, (long long)K, threads, reps);
    double flops = 2.0 * M * N * K;
    double best = 1e30;
    fqt_sgemm_nt(M, N, K, 1.0f, A, K, B, K, 0.0f, C, N); /* warm-up */
    for (int r = 0; r < reps; r++) {
        double t0 = fqt_prof_now();
        fqt_sgemm_nt(M, N, K, 1.0f, A, K, B, K, 0.0f, C, N);
        double t = fqt_prof_now() - t0;
        if (t < best) best = t;
    }
    double fp32 = flops / best * 1e-9;
    printf("  %-28s %8.2f ms  %7.1f GFLOP/s  (1.00x)\n", "fp32 sgemm_nt", best * 1e3, fp32);
    const char *fmts[] = {"bf16", "fp8", "mxfp4", "nvfp4"};
    for (int f = 0; f < 4; f++) {
        for (int rnd = 0; rnd < 2; rnd++) {
            fqt_format fm;
            fqt_format_parse(fmts[f], &fm);
            best = 1e30;
            for (int r = 0; r <= reps; r++) {
                double t0 = fqt_prof_now();
                fqt_qtensor qa, qb;
                fqt_qtensor_alloc(&qa, &fm, M, K);
                fqt_qtensor_alloc(&qb, &fm, N, K);
                fqt_quantize(&qa, A, M, K, FQT_AXIS_ROWS, rnd ? FQT_ROUND_SR : FQT_ROUND_RNE, 1, 1, NULL);
                fqt_quantize(&qb, B, N, K, FQT_AXIS_ROWS, rnd ? FQT_ROUND_SR : FQT_ROUND_RNE, 1, 2, NULL);
                fqt_qgemm(&qa, &qb, 1.0f, 0.0f, C, N);
                fqt_qtensor_free(&qa);
                fqt_qtensor_free(&qb);
                double t = fqt_prof_now() - t0;
                if (r && t < best) best = t;
            }
            char name[64];
            snprintf(name, sizeof name, "quantize(%s,%s)+qgemm", fmts[f], rnd ? "sr" : "rtn");
            printf("  %-28s %8.2f ms  %7.1f GFLOP/s  (%.2fx of fp32)\n", name, best * 1e3,
                   flops / best * 1e-9, flops / best * 1e-9 / fp32);
        }
    }
    free(A); free(B); free(C);
    return 0;
}
