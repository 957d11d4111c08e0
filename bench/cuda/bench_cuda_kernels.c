/* bench/cuda/bench_cuda_kernels.c — speed of the CUDA backend's kernels on llama-124m shapes
 * (built and run by `make bench-cuda`): device copy bandwidth (the ceiling of the
 * quantizers), the quantizers in GB/s and as a fraction of copy, the quantized GEMM per
 * format in TFLOP/s (dequantize + cuBLASLt included), attention forward + backward, the
 * cross-entropy and the AdamW step.
 * Timing: be->sync() around REPS repetitions after one warm-up, wall clock. Prints one table.
 * FQT_BENCH_ONLY=quant runs the quantizers only, FQT_BENCH_REPS=n sets their repetitions (both
 * for Nsight Compute: `FQT_BENCH_ONLY=quant FQT_BENCH_REPS=1 ncu ... bench_cuda_kernels`).
 * Not for: correctness (tests/cuda/). */
#include "cuda/cuda_backend.h"
#include "fqt/backend.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>


static const fqt_backend *be;
static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}
#define TIME(reps, stmt)                                                              \
    ({                                                                                \
        stmt;                                                                         \
        be->sync();                                                                   \
        double t0_ = now();                                                           \
        for (int r_ = 0; r_ < (reps); r_++) { stmt; }                                 \
        be->sync();                                                                   \
        (now() - t0_) / (reps);                                                       \
    })

static void *dev_rand(int64_t n, float scale, fqt_dtype dt) {
    float *h = malloc((size_t)n * 4);
    uint64_t s = 42;
    for (int64_t i = 0; i < n; i++) h[i] = ((float)(fqt_splitmix64(&s) >> 40) * 0x1p-24f - 0.5f) * scale;
    void *f = be->alloc((size_t)n * 4);
    be->upload(f, h, (size_t)n * 4);
    free(h);
    if (dt == FQT_DT_F32) return f;
    void *d = be->alloc((size_t)n * 2);
    be->convert(d, dt, f, FQT_DT_F32, n);
    be->free(f);
    return d;
}

int main(void) {
    be = fqt_backend_cuda_open_act(FQT_DT_BF16);
    if (!be) {
        printf("SKIP no GPU: %s\n", fqt_last_error());
        return 0;
    }
    /* copy ceiling: 1 GiB each way */
    const size_t cb = (size_t)1 << 30;
    void *ca = be->alloc(cb), *cbuf = be->alloc(cb);
    be->zero(ca, cb);
    double tc = TIME(20, be->copy(cbuf, ca, cb));
    const double copy_gbs = 2.0 * (double)cb / tc / 1e9;
    printf("device copy: %.0f GB/s (read + write)\n", copy_gbs);
    be->free(ca);
    be->free(cbuf);

    const char *only = getenv("FQT_BENCH_ONLY");
    const int qreps = getenv("FQT_BENCH_REPS") ? atoi(getenv("FQT_BENCH_REPS")) : 10;
    /* quantizers on activations [16384, 768] and [16384, 2048], bf16 source */
    printf("\n%-8s %-14s %-5s %-4s %9s %8s %8s\n", "format", "shape", "axis", "rnd", "us", "GB/s", "of copy");
    const char *qf[] = {"nvfp4", "mxfp4", "fp8", "bf16", NULL};
    const int64_t qs[][2] = {{16384, 768}, {16384, 2048}};
    for (int fi = 0; qf[fi]; fi++)
        for (int si = 0; si < 2; si++)
            for (int ex = 0; ex < 2; ex++) /* ex 1: the expanded GEMM operand (bf16 values out) */
            for (int axis = 0; axis < 2; axis++)
                for (int rd = 0; rd < 2; rd++) {
                    fqt_format f;
                    fqt_format_parse(qf[fi], &f);
                    if (ex && !(be->qgemm_expands && be->qgemm_expands(&f, &f))) continue;
                    const int64_t R = qs[si][0], C = qs[si][1];
                    void *x = dev_rand(R * C, 4.0f, FQT_DT_BF16);
                    const int64_t qr = axis ? C : R, qc = axis ? R : C;
                    fqt_qtensor q;
                    void *mem = be->alloc(ex ? fqt_backend_qtensor_bytes_expanded(&f, qr, qc)
                                             : fqt_backend_qtensor_bytes(&f, qr, qc));
                    if (ex) fqt_backend_qtensor_bind_expanded(&q, &f, qr, qc, mem);
                    else fqt_backend_qtensor_bind(&q, &f, qr, qc, mem);
                    double t = TIME(qreps > 0 ? qreps : 1, be->quantize(&q, x, FQT_DT_BF16, R, C, (fqt_axis)axis,
                                                     (fqt_rounding)rd, 1, 2, NULL, NULL));
                    const double bytes = (double)(R * C) * 2 + (ex ? (double)(R * C) * 2
                                                                   : (double)fqt_qtensor_code_bytes(&q) +
                                                                         (double)fqt_qtensor_scale_bytes(&q));
                    char lab[32];
                    snprintf(lab, sizeof lab, "%s%s", qf[fi], ex ? "+ex" : "");
                    printf("%-8s %6lldx%-7lld %-5s %-4s %9.1f %8.0f %7.0f%%\n", lab, (long long)R,
                           (long long)C, axis ? "cols" : "rows", rd ? "sr" : "rne", t * 1e6, bytes / t / 1e9,
                           100.0 * bytes / t / 1e9 / copy_gbs);
                    be->free(mem);
                    be->free(x);
                }
    if (only && !strcmp(only, "quant")) return 0;

    /* GEMMs: fprop, dgrad and wgrad shapes of llama-124m (N = 16 x 1024 tokens) */
    printf("\n%-8s %-22s %9s %8s\n", "format", "M x N x K", "us", "TFLOP/s");
    const char *gf[] = {"bf16", "nvfp4", "mxfp4", "fp8", "fp8", "mxfp4", NULL};
    const int64_t gs[][3] = {{16384, 2304, 768}, {16384, 768, 768}, {16384, 4096, 768}, {16384, 768, 2048},
                             {16384, 50304, 768}, {768, 768, 16384}, {2048, 768, 16384}};
    for (int fi = 0; gf[fi]; fi++)
        for (int si = 0; si < 7; si++) {
            /* fp8 twice: the FP32 path (FQT_CUDA_FP8=fp32), then the default, cuBLASLt block-scaled FP8 */
            if (fi == 3) setenv("FQT_CUDA_FP8", "fp32", 1);
            if (fi == 4) unsetenv("FQT_CUDA_FP8");
            if (fi == 5) setenv("FQT_CUDA_MXFP4", "fp8", 1); /* mxfp4 again, on the FP8 tensor cores */
            fqt_format f;
            fqt_format_parse(gf[fi], &f);
            const int64_t M = gs[si][0], N = gs[si][1], K = gs[si][2];
            void *a = dev_rand(M * K, 2.0f, FQT_DT_BF16), *b = dev_rand(N * K, 2.0f, FQT_DT_BF16);
            fqt_qtensor qa, qb;
            void *ma = be->alloc(fqt_backend_qtensor_bytes(&f, M, K)), *mb = be->alloc(fqt_backend_qtensor_bytes(&f, N, K));
            fqt_backend_qtensor_bind(&qa, &f, M, K, ma);
            fqt_backend_qtensor_bind(&qb, &f, N, K, mb);
            be->quantize(&qa, a, FQT_DT_BF16, M, K, FQT_AXIS_ROWS, FQT_ROUND_RNE, 1, 1, NULL, NULL);
            be->quantize(&qb, b, FQT_DT_BF16, N, K, FQT_AXIS_ROWS, FQT_ROUND_RNE, 1, 2, NULL, NULL);
            void *c = be->alloc((size_t)(M * N) * 2);
            double t = TIME(5, be->qgemm(&qa, &qb, 1.0f, 0.0f, c, FQT_DT_BF16, N));
            printf("%-8s %6lld x %5lld x %5lld %9.1f %8.1f\n", fi == 5 ? "mxfp4-f8" : fi == 4 ? "fp8-bs" : fi == 3 ? "fp8-f32" : gf[fi], (long long)M, (long long)N, (long long)K,
                   t * 1e6, 2.0 * (double)M * (double)N * (double)K / t / 1e12);
            be->free(a); be->free(b); be->free(ma); be->free(mb); be->free(c);
        }

    unsetenv("FQT_CUDA_MXFP4");

    /* attention, bf16, at the shapes of llama-124m (B 16, T 1024, NH 12, HS 64) and llama-1b
     * (B 8, T 2048, NH 16, HS 128). TFLOP/s count the causal half only: forward 2 products of
     * B NH T^2 HS multiply-adds halved, backward 2.5x that (the useful products of dQ, dK, dV
     * and the recomputed P), whatever each path actually computes. */
    static const int64_t as[][4] = {{16, 1024, 12, 64}, {8, 2048, 16, 128}};
    for (int ai = 0; ai < 2; ai++) {
        const int64_t B = as[ai][0], T = as[ai][1], NH = as[ai][2], HS = as[ai][3], n = B * T * NH * HS;
        void *q = dev_rand(n, 1.0f, FQT_DT_BF16), *k = dev_rand(n, 1.0f, FQT_DT_BF16), *v = dev_rand(n, 1.0f, FQT_DT_BF16);
        void *o = be->alloc((size_t)n * 2), *dq = be->alloc((size_t)n * 2), *dk = be->alloc((size_t)n * 2), *dv = be->alloc((size_t)n * 2);
        float *st = be->alloc((size_t)(B * NH * T * 2) * 4);
        const double fl = 2.0 * (double)B * NH * T * T * HS;
        for (int flash = 0; flash < 2; flash++) {
            setenv("FQT_CUDA_ATTN", flash ? "flash" : "cublas", 1);
            double tf = TIME(3, be->attention_fwd(o, st, q, k, v, B, T, NH, NH, HS));
            double tb = TIME(3, be->attention_bwd(dq, dk, dv, o, o, st, q, k, v, B, T, NH, NH, HS));
            printf("%sattention %-6s bf16 B%lld T%lld NH%lld HS%lld: fwd %.3f ms (%.0f TFLOP/s causal), bwd %.3f ms (%.0f)\n",
                   ai + flash ? "" : "\n", flash ? "flash" : "cuBLAS", (long long)B, (long long)T, (long long)NH,
                   (long long)HS, tf * 1e3, fl / tf / 1e12, tb * 1e3, 2.5 * fl / tb / 1e12);
        }
        unsetenv("FQT_CUDA_ATTN");
        be->free(q); be->free(k); be->free(v); be->free(o); be->free(dq); be->free(dk); be->free(dv); be->free(st);
    }

    /* cross-entropy over llama-124m's logits (16384 x 50304 bf16, dlogits in place) and the
     * AdamW step over its 124 M parameters in two segments (check, then update); GB/s count
     * the bytes each must move at least (xent: read + write the logits; AdamW check: w, g, m, v
     * read; update: those read, w, m, v written) */
    {
        const int64_t N = 16384, V = 50304;
        void *x = dev_rand(N * V, 8.0f, FQT_DT_BF16);
        int32_t *tg = malloc((size_t)N * 4);
        for (int64_t i = 0; i < N; i++) tg[i] = (int32_t)((i * 7919) % V);
        int32_t *td = be->alloc((size_t)N * 4);
        be->upload(td, tg, (size_t)N * 4);
        double t = TIME(3, be->xent_fwd_bwd(x, NULL, x, td, N, V, 1.0f / (float)N));
        printf("\nxent bf16 %lldx%lld: %.3f ms, %.0f GB/s\n", (long long)N, (long long)V, t * 1e3,
               4.0 * (double)(N * V) / t / 1e9);
        be->free(x); be->free(td); free(tg);
        const int64_t P = 124000000;
        float *w = dev_rand(P, 0.1f, FQT_DT_F32), *g = dev_rand(P, 0.01f, FQT_DT_F32);
        float *m = dev_rand(P, 0.001f, FQT_DT_F32), *v = be->alloc((size_t)P * 4);
        be->zero(v, (size_t)P * 4);
        const fqt_param_segment segs[2] = {{0, P / 2, true}, {P / 2, P - P / 2, false}};
        fqt_adamw_args a = {1e-4f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.5f, 0.25f, 1.0f, segs, 2, true};
        double tcheck = TIME(3, be->adamw(w, g, m, v, 0, P, &a));
        a.check_only = false;
        double tup = TIME(3, be->adamw(w, g, m, v, 0, P, &a));
        printf("adamw %lld params: check %.3f ms (%.0f GB/s), update %.3f ms (%.0f GB/s)\n", (long long)P,
               tcheck * 1e3, 16.0 * (double)P / tcheck / 1e9, tup * 1e3, 28.0 * (double)P / tup / 1e9);
        be->free(w); be->free(g); be->free(m); be->free(v);
    }
    return 0;
}
