/* cuda/rmsnorm.cu — RMSNorm forward and backward. Oracle: cpu/ops_impl.h rmsnorm_fwd/bwd.
 *
 * One block of RN_THREADS per row; the row's sum of squares (and the backward's row dot) is
 * accumulated in double by a fixed tree, so it differs from the CPU's sequential double sum
 * only in the last bits of a double, and rstd (rounded to float) almost always agrees to the
 * bit. dw is reduced in two fixed stages: partial sums over RN_CHUNK rows (in row order), then
 * the partials in chunk order, added to dw. Deterministic, no atomics. */
#include "cuda/common.cuh"

#define RN_THREADS 256
#define RN_CHUNK 64

template <typename T>
__global__ void rmsnorm_fwd_kernel(T *out, float *rstd, const T *in, const float *w, int64_t C, float eps) {
    __shared__ double sh[RN_THREADS];
    const int64_t n = blockIdx.x;
    const T *x = in + n * C;
    double ss = 0.0;
    for (int64_t j = threadIdx.x; j < C; j += RN_THREADS) {
        const double v = (double)ldf(x, j);
        ss += v * v;
    }
    ss = block_sum<RN_THREADS>(ss, sh);
    const float r = (float)(1.0 / sqrt(ss / (double)C + (double)eps));
    if (threadIdx.x == 0) rstd[n] = r;
    for (int64_t j = threadIdx.x; j < C; j += RN_THREADS) stf(out + n * C, j, ldf(x, j) * r * w[j]);
}

template <typename T>
__global__ void rmsnorm_bwd_din_kernel(T *din, const T *dout, const T *in, const float *w,
                                       const float *rstd, int64_t C) {
    __shared__ double sh[RN_THREADS];
    const int64_t n = blockIdx.x;
    const T *x = in + n * C, *g = dout + n * C;
    double dot = 0.0;
    for (int64_t j = threadIdx.x; j < C; j += RN_THREADS)
        dot += (double)ldf(g, j) * (double)w[j] * (double)ldf(x, j);
    dot = block_sum<RN_THREADS>(dot, sh);
    const float r = rstd[n];
    const double rd = (double)r;
    const float c = (float)(dot * rd * rd * rd / (double)C);
    T *dx = din + n * C;
    for (int64_t j = threadIdx.x; j < C; j += RN_THREADS)
        stf(dx, j, ldf(dx, j) + (r * w[j] * ldf(g, j) - c * ldf(x, j)));
}

template <typename T>
__global__ void rmsnorm_bwd_dw_part_kernel(float *part, const T *dout, const T *in, const float *rstd,
                                           int64_t N, int64_t C) {
    const int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    const int64_t k = blockIdx.y, n0 = k * RN_CHUNK, n1 = n0 + RN_CHUNK < N ? n0 + RN_CHUNK : N;
    if (j >= C) return;
    float s = 0.0f;
    for (int64_t n = n0; n < n1; n++) s = s + ldf(dout, n * C + j) * ldf(in, n * C + j) * rstd[n];
    part[k * C + j] = s;
}

__global__ void rmsnorm_bwd_dw_sum_kernel(float *dw, const float *part, int64_t nchunk, int64_t C) {
    const int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    if (j >= C) return;
    float s = 0.0f;
    for (int64_t k = 0; k < nchunk; k++) s = s + part[k * C + j];
    dw[j] = dw[j] + s;
}

void fqt_cuda_rmsnorm_fwd(void *out, float *rstd, const void *in, const float *w, int64_t N,
                          int64_t C, float eps) {
    if (N <= 0) return;
    FQT_DT_DISPATCH(fqt_cuda.act, T,
                    rmsnorm_fwd_kernel<T><<<(unsigned)N, RN_THREADS>>>((T *)out, rstd, (const T *)in, w, C, eps));
    FQT_CUDA_LAUNCHED();
}

void fqt_cuda_rmsnorm_bwd(void *din, float *dw, const void *dout, const void *in, const float *w,
                          const float *rstd, int64_t N, int64_t C) {
    if (N <= 0 || C <= 0) return;
    const int64_t nchunk = (N + RN_CHUNK - 1) / RN_CHUNK;
    FQT_ASSERT(nchunk < 65536);
    float *part = (float *)fqt_cuda_scratch(FQT_SCR_ROW, (size_t)(nchunk * C) * sizeof(float));
    FQT_DT_DISPATCH(fqt_cuda.act, T, {
        rmsnorm_bwd_din_kernel<T><<<(unsigned)N, RN_THREADS>>>((T *)din, (const T *)dout,
                                                               (const T *)in, w, rstd, C);
        FQT_CUDA_LAUNCHED();
        dim3 grid((unsigned)((C + 127) / 128), (unsigned)nchunk);
        rmsnorm_bwd_dw_part_kernel<T><<<grid, 128>>>(part, (const T *)dout, (const T *)in, rstd, N, C);
        FQT_CUDA_LAUNCHED();
    });
    rmsnorm_bwd_dw_sum_kernel<<<(unsigned)((C + 127) / 128), 128>>>(dw, part, nchunk, C);
    FQT_CUDA_LAUNCHED();
}
