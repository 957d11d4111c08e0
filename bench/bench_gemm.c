/* bench/bench_gemm.c — GFLOP/s of fqt_sgemm_nt against OpenBLAS sgemm on the tiny model's
 * GEMM shapes at 1 and 2 threads, then the quantized GEMM (quantize both operands +
 * qgemm with dequantization fused into the packing, i.e. what one training GEMM costs on
 * the CPU), all side by side in one run.
 *
 * Usage: bench_gemm [reps]          the tables below, best of reps (default 5)
 *        bench_gemm M N K [reps]    the same for one shape
 * The OpenBLAS column is there when the Makefile found OpenBLAS (USE_BLAS); OpenBLAS runs
 * with openblas_set_num_threads(t), fqt with omp_set_num_threads(t) and, unless
 * OMP_WAIT_POLICY is set, the wait policy the fqt command line uses
 * (fqt_omp_wait_policy_default). */
#include "fqt/gemm.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef FQT_HAVE_OPENBLAS
#include <cblas.h>
void openblas_set_num_threads(int n);
#endif

static void set_threads(int t) {
#ifdef _OPENMP
    omp_set_num_threads(t);
#endif
#ifdef FQT_HAVE_OPENBLAS
    openblas_set_num_threads(t);
#endif
    (void)t;
}

/* Best wall time of reps calls (after one warm-up) of fqt_sgemm_nt or, blas != 0, sgemm. */
static double time_sgemm(int blas, int64_t M, int64_t N, int64_t K, const float *A,
                         const float *B, float *C, int reps) {
    double best = 1e30;
    for (int r = 0; r <= reps; r++) {
        double t0 = fqt_prof_now();
#ifdef FQT_HAVE_OPENBLAS
        if (blas)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)M, (int)N, (int)K, 1.0f, A,
                        (int)K, B, (int)K, 0.0f, C, (int)N);
        else
#endif
            fqt_sgemm_nt(M, N, K, 1.0f, A, K, B, K, 0.0f, C, N);
        double t = fqt_prof_now() - t0;
        if (r && t < best) best = t;
    }
    return best;
}

int main(int argc, char **argv) {
    fqt_omp_wait_policy_default(argv);
    /* The tiny model (C=128, F=352, V=4096) at B*T = 2048: fprop, dgrad, wgrad shapes. */
    int64_t shapes[16][3] = {{2048, 128, 128},  {2048, 352, 128},  {2048, 128, 352},
                           {2048, 4096, 128}, {2048, 128, 4096}, {128, 128, 2048},
                           {352, 128, 2048},  {4096, 128, 2048}, {2048, 768, 768}};
    int nshapes = 9;
    int reps = 5;
    if (argc > 3) {
        shapes[0][0] = atoll(argv[1]);
        shapes[0][1] = atoll(argv[2]);
        shapes[0][2] = atoll(argv[3]);
        nshapes = 1;
        if (argc > 4) reps = atoi(argv[4]);
    } else if (argc > 1) {
        reps = atoi(argv[1]);
    }
    int64_t maxa = 0, maxb = 0, maxc = 0;
    for (int s = 0; s < nshapes; s++) {
        int64_t M = shapes[s][0], N = shapes[s][1], K = shapes[s][2];
        if (M * K > maxa) maxa = M * K;
        if (N * K > maxb) maxb = N * K;
        if (M * N > maxc) maxc = M * N;
    }
    float *A = malloc(sizeof(float) * maxa), *B = malloc(sizeof(float) * maxb),
          *C = malloc(sizeof(float) * maxc);
    uint64_t s = 1;
    for (int64_t i = 0; i < maxa; i++) { s = s * 6364136223846793005ull + 1; A[i] = (float)((s >> 40) * 0x1p-24 - 0.5); }
    for (int64_t i = 0; i < maxb; i++) { s = s * 6364136223846793005ull + 1; B[i] = (float)((s >> 40) * 0x1p-24 - 0.5); }
    int maxthreads = 1;
#ifdef _OPENMP
    maxthreads = omp_get_max_threads();
#endif
    const fqt_gemm_impl impl = fqt_gemm_get_impl();
    printf("bench_gemm: fqt_sgemm_nt kernel %s vs %s, best of %d\n", fqt_gemm_impl_name(impl),
#ifdef FQT_HAVE_OPENBLAS
           "OpenBLAS cblas_sgemm",
#else
           "(no OpenBLAS in this build)",
#endif
           reps);
    printf("  %-16s %3s %10s %10s %10s %10s %8s\n", "M x N x K", "thr", "fqt GF/s", "avx2 GF/s",
           "ref GF/s", "BLAS GF/s", "fqt/BLAS");
    /* Per thread count and shape, fqt's timings and then OpenBLAS's side by side, then a
     * pause (OpenBLAS's own threads spin after a call and would steal the cores from the
     * next fqt timing); the sweep runs three times and each figure is its best, so a slow spell of
     * the machine does not land on one side only. */
    double tf[16][3], tb[16];
    for (int thr = 1; thr <= (maxthreads > 1 ? 2 : 1); thr++) {
        set_threads(thr);
        for (int si = 0; si < nshapes; si++) tf[si][0] = tf[si][1] = tf[si][2] = tb[si] = 1e30;
        for (int sweep = 0; sweep < 3; sweep++)
            for (int si = 0; si < nshapes; si++) {
                int64_t M = shapes[si][0], N = shapes[si][1], K = shapes[si][2];
                double t = time_sgemm(0, M, N, K, A, B, C, reps);
                if (t < tf[si][0]) tf[si][0] = t;
                if (fqt_gemm_impl_supported(FQT_GEMM_AVX2) && impl != FQT_GEMM_AVX2) {
                    fqt_gemm_set_impl(FQT_GEMM_AVX2);
                    t = time_sgemm(0, M, N, K, A, B, C, reps);
                    if (t < tf[si][1]) tf[si][1] = t;
                }
                fqt_gemm_set_impl(FQT_GEMM_REF);
                t = time_sgemm(0, M, N, K, A, B, C, reps);
                if (t < tf[si][2]) tf[si][2] = t;
                fqt_gemm_set_impl(impl);
#ifdef FQT_HAVE_OPENBLAS
                t = time_sgemm(1, M, N, K, A, B, C, reps);
                if (t < tb[si]) tb[si] = t;
                usleep(300000);
#endif
            }
        for (int si = 0; si < nshapes; si++) {
            if (tf[si][1] >= 1e30) tf[si][1] = 0;
            if (tb[si] >= 1e30) tb[si] = 0;
        }
        for (int si = 0; si < nshapes; si++) {
            int64_t M = shapes[si][0], N = shapes[si][1], K = shapes[si][2];
            double gf = 2.0 * M * N * K * 1e-9;
            char shape[48], c2[16] = "-", cb[16] = "-", cr[16] = "-";
            snprintf(shape, sizeof shape, "%lldx%lldx%lld", (long long)M, (long long)N, (long long)K);
            if (tf[si][1] > 0) snprintf(c2, sizeof c2, "%.1f", gf / tf[si][1]);
            if (tb[si] > 0) snprintf(cb, sizeof cb, "%.1f", gf / tb[si]);
            if (tb[si] > 0) snprintf(cr, sizeof cr, "%.2fx", tb[si] / tf[si][0]);
            printf("  %-16s %3d %10.1f %10s %10.1f %10s %8s\n", shape, thr, gf / tf[si][0], c2,
                   gf / tf[si][2], cb, cr);
        }
    }
    set_threads(maxthreads);
#ifdef FQT_HAVE_OPENBLAS
    sleep(2); /* OpenBLAS's threads stop spinning before the timings below */
#endif

    /* What a training GEMM costs: quantize both operands, then qgemm. */
    int64_t M = shapes[nshapes - 1][0], N = shapes[nshapes - 1][1], K = shapes[nshapes - 1][2];
    double flops = 2.0 * M * N * K, fp32 = flops / time_sgemm(0, M, N, K, A, B, C, reps) * 1e-9;
    printf("quantize + qgemm at %lldx%lldx%lld, %d threads (vs fp32 sgemm_nt %.1f GFLOP/s)\n",
           (long long)M, (long long)N, (long long)K, maxthreads, fp32);
    const char *fmts[] = {"fp32", "bf16", "fp8", "mxfp4", "nvfp4"};
    for (int f = 0; f < 5; f++) {
        for (int rnd = 0; rnd < 2; rnd++) {
            fqt_format fm;
            fqt_format_parse(fmts[f], &fm);
            double best = 1e30;
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
