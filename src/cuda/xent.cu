/* cuda/xent.cu — softmax cross-entropy forward and backward, one block per row, no [N, V]
 * probability copy beyond dlogits itself. Oracle: cpu/ops_impl.h xent_fwd_bwd.
 *
 * Per row: the max (exact in any order), sum of expf(x - max) in double by a fixed tree (the
 * CPU sums sequentially: last-bit differences in a double), the loss in double, dlogits
 * written in the CPU's operation order. dlogits may alias logits: every thread reads its
 * elements before it writes them, and x[y] is read by all threads before any write. The mean
 * is summed on the host in row order, as on the CPU. bf16 rows of a vocabulary that is a
 * multiple of 8 (up to 65536) take xent_reg_kernel, which reads each row once. */
#include "cuda/common.cuh"

#include <vector>

#define XE_THREADS 512

/* Row n's loss, written by thread 0. */
__device__ __forceinline__ void xe_store_loss(double *rowloss, float *losses, int64_t n, double l) {
    if (threadIdx.x != 0) return;
    rowloss[n] = l;
    if (losses) losses[n] = (float)l;
}

template <typename T>
__global__ void xent_kernel(T *dlogits, float *losses, double *rowloss, const T *logits,
                            const int32_t *targets, int64_t V, float dscale) {
    __shared__ double shd[XE_THREADS];
    __shared__ float shf[XE_THREADS];
    const int64_t n = blockIdx.x;
    const T *x = logits + n * V;
    T *dl = dlogits ? dlogits + n * V : NULL;
    const int32_t y = targets[n];
    if (y < 0) {
        xe_store_loss(rowloss, losses, n, 0.0);
        if (dl)
            for (int64_t j = threadIdx.x; j < V; j += XE_THREADS) stf(dl, j, 0.0f);
        return;
    }
    float mx = -INFINITY;
    for (int64_t j = threadIdx.x; j < V; j += XE_THREADS) mx = fmaxf(mx, ldf(x, j));
    mx = block_max<XE_THREADS>(mx, shf);
    const float xy = ldf(x, y);
    double sum = 0.0;
    for (int64_t j = threadIdx.x; j < V; j += XE_THREADS) sum += (double)expf(ldf(x, j) - mx);
    sum = block_sum<XE_THREADS>(sum, shd); /* ends with a barrier: all reads of x are done */
    const double l = log(sum) + (double)mx - (double)xy;
    xe_store_loss(rowloss, losses, n, l);
    if (dl) {
        const float inv = (float)(1.0 / sum);
        for (int64_t j = threadIdx.x; j < V; j += XE_THREADS) {
            const float e = expf(ldf(x, j) - mx);
            stf(dl, j, j == y ? dscale * (e * inv - 1.0f) : dscale * (e * inv));
        }
    }
}

/* bf16 rows with V % 8 == 0 and at most NV * 8 * XE_THREADS entries: the same arithmetic with
 * the row read once. Thread t keeps 16-byte vectors t, t + XE_THREADS, ... of the row in
 * registers for the max, the sum and dlogits (the kernel above reads the row three times;
 * the 16384 x 50304 logits of llama-124m took 4.1 ms). Its own fixed summation order. */
template <int NV>
__global__ void __launch_bounds__(XE_THREADS) xent_reg_kernel(bf16_t *dlogits, float *losses, double *rowloss,
                                                                const bf16_t *logits, const int32_t *targets,
                                                                int64_t V, float dscale) {
    __shared__ double shd[XE_THREADS];
    __shared__ float shf[XE_THREADS];
    const int64_t n = blockIdx.x, nv = V / 8;
    const bf16_t *x = logits + n * V;
    bf16_t *dl = dlogits ? dlogits + n * V : NULL;
    const int32_t y = targets[n];
    if (y < 0) {
        xe_store_loss(rowloss, losses, n, 0.0);
        if (dl)
            for (int64_t j = threadIdx.x; j < nv; j += XE_THREADS) ((uint4 *)dl)[j] = make_uint4(0u, 0u, 0u, 0u);
        return;
    }
    uint4 r[NV];
    float mx = -INFINITY;
#pragma unroll
    for (int k = 0; k < NV; k++) {
        const int64_t j = threadIdx.x + (int64_t)k * XE_THREADS;
        r[k] = j < nv ? ((const uint4 *)x)[j] : make_uint4(0u, 0u, 0u, 0u);
        if (j < nv) {
            float f[8];
            ld8((const bf16_t *)&r[k], f);
#pragma unroll
            for (int e = 0; e < 8; e++) mx = fmaxf(mx, f[e]);
        }
    }
    mx = block_max<XE_THREADS>(mx, shf);
    const float xy = ldf(x, y);
    double sum = 0.0;
#pragma unroll
    for (int k = 0; k < NV; k++)
        if (threadIdx.x + (int64_t)k * XE_THREADS < nv) {
            float f[8];
            ld8((const bf16_t *)&r[k], f);
#pragma unroll
            for (int e = 0; e < 8; e++) sum += (double)expf(f[e] - mx);
        }
    sum = block_sum<XE_THREADS>(sum, shd); /* ends with a barrier: all reads of x are done */
    const double l = log(sum) + (double)mx - (double)xy;
    xe_store_loss(rowloss, losses, n, l);
    if (!dl) return;
    const float inv = (float)(1.0 / sum);
#pragma unroll
    for (int k = 0; k < NV; k++) {
        const int64_t j = threadIdx.x + (int64_t)k * XE_THREADS;
        if (j >= nv) continue;
        float f[8];
        ld8((const bf16_t *)&r[k], f);
#pragma unroll
        for (int e = 0; e < 8; e++) {
            const float ex = expf(f[e] - mx);
            f[e] = j * 8 + e == y ? dscale * (ex * inv - 1.0f) : dscale * (ex * inv);
        }
        st8(dl + j * 8, f);
    }
}

/* Launches the register kernel if one fits the row; false otherwise. */
template <int NV, int... MORE>
static bool xent_reg(bf16_t *dl, float *losses, double *rowloss, const bf16_t *x, const int32_t *tg, int64_t N,
                     int64_t V, float dscale) {
    if (V / 8 <= (int64_t)NV * XE_THREADS) {
        xent_reg_kernel<NV><<<(unsigned)N, XE_THREADS>>>(dl, losses, rowloss, x, tg, V, dscale);
        return true;
    }
    if constexpr (sizeof...(MORE) > 0) return xent_reg<MORE...>(dl, losses, rowloss, x, tg, N, V, dscale);
    return false;
}

double fqt_cuda_xent_fwd_bwd(void *dlogits, float *losses, const void *logits,
                             const int32_t *targets, int64_t N, int64_t V, float dscale) {
    if (N <= 0) return 0.0;
    FQT_ASSERT(N <= 2147483647);
    double *rowloss = (double *)fqt_cuda_scratch(FQT_SCR_ROW, (size_t)N * sizeof(double));
    const bool reg = fqt_cuda.act == FQT_DT_BF16 && V % 8 == 0 && (uintptr_t)logits % 16 == 0 &&
                     (uintptr_t)dlogits % 16 == 0 &&
                     xent_reg<1, 2, 4, 8, 13, 16>((bf16_t *)dlogits, losses, rowloss, (const bf16_t *)logits, targets, N,
                                                  V, dscale);
    if (!reg)
        FQT_DT_DISPATCH(fqt_cuda.act, T,
                        xent_kernel<T><<<(unsigned)N, XE_THREADS>>>((T *)dlogits, losses, rowloss,
                                                                    (const T *)logits, targets, V, dscale));
    FQT_CUDA_LAUNCHED();
    std::vector<double> rl((size_t)N);
    std::vector<int32_t> tg((size_t)N);
    FQT_CUDA_CHECK(cudaMemcpy(rl.data(), rowloss, (size_t)N * sizeof(double), cudaMemcpyDeviceToHost));
    FQT_CUDA_CHECK(cudaMemcpy(tg.data(), targets, (size_t)N * sizeof(int32_t), cudaMemcpyDeviceToHost));
    double total = 0.0;
    int64_t count = 0;
    for (int64_t n = 0; n < N; n++) {
        if (tg[(size_t)n] < 0) continue;
        total += rl[(size_t)n];
        count++;
    }
    return count > 0 ? total / (double)count : 0.0;
}
