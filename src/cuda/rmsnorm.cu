/* cuda/rmsnorm.cu — RMSNorm forward and backward. Oracle: cpu/ops_impl.h rmsnorm_fwd/bwd.
 *
 * One warp per row; the row's sum of squares (and the backward's row dot) is accumulated in
 * double in a fixed order (each lane's elements in turn, then a butterfly over the lanes), so it
 * differs from the CPU's sequential double sum only in the last bits of a double, and rstd
 * (rounded to float) almost always agrees to the bit. dw is reduced in fixed stages: partial
 * sums over RN_CHUNK rows (in row order), then the partials in a fixed two-level order (every
 * eighth chunk, then the eight sums), added to dw. Deterministic, no atomics. */
#include "cuda/common.cuh"

#define RN_WARPS 8 /* rows per CUDA block */
#define RN_CHUNK 64

/* A warp per row. Lane l takes elements 8l..8l+7 of every 256 (8 at a time through ld8 where
 * V8: C a multiple of 8 and the rows 16-byte aligned; else one by one), accumulates in double
 * in that order, and the lanes' sums are added by a fixed butterfly (every lane gets the same
 * bits). Helpers: the row's f(j) = a(j) b(j) [c(j)] products summed that way. */
template <bool V8, typename T>
__device__ __forceinline__ void rn_ld8(const T *row, int64_t j0, int64_t C, float f[8]) {
    if (V8) {
        ld8(row + j0, f);
    } else {
#pragma unroll
        for (int k = 0; k < 8; k++) f[k] = j0 + k < C ? ldf(row, j0 + k) : 0.0f;
    }
}
__device__ __forceinline__ double rn_warp_sum(double v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

template <typename T, bool V8>
__global__ void rmsnorm_fwd_kernel(T *out, float *rstd, const T *in, const float *w, int64_t N, int64_t C, float eps) {
    const int64_t n = blockIdx.x * (int64_t)(blockDim.x / 32) + threadIdx.x / 32;
    const int lane = threadIdx.x & 31;
    if (n >= N) return;
    const T *x = in + n * C;
    double ss = 0.0;
    for (int64_t j0 = 8 * lane; j0 < C; j0 += 256) {
        float f[8];
        rn_ld8<V8>(x, j0, C, f);
#pragma unroll
        for (int k = 0; k < 8; k++) ss += (double)f[k] * (double)f[k];
    }
    ss = rn_warp_sum(ss);
    const float r = (float)(1.0 / sqrt(ss / (double)C + (double)eps));
    if (lane == 0) rstd[n] = r;
    T *o = out + n * C;
    for (int64_t j0 = 8 * lane; j0 < C; j0 += 256) {
        float f[8];
        rn_ld8<V8>(x, j0, C, f);
#pragma unroll
        for (int k = 0; k < 8; k++) f[k] = f[k] * r * (V8 || j0 + k < C ? w[j0 + k] : 0.0f);
        if (V8) st8(o + j0, f);
        else
            for (int k = 0; k < 8 && j0 + k < C; k++) stf(o, j0 + k, f[k]);
    }
}

template <typename T, bool V8>
__global__ void rmsnorm_bwd_din_kernel(T *din, const T *dout, const T *in, const float *w, const float *rstd,
                                       int64_t N, int64_t C) {
    const int64_t n = blockIdx.x * (int64_t)(blockDim.x / 32) + threadIdx.x / 32;
    const int lane = threadIdx.x & 31;
    if (n >= N) return;
    const T *x = in + n * C, *g = dout + n * C;
    double dot = 0.0;
    for (int64_t j0 = 8 * lane; j0 < C; j0 += 256) {
        float fg[8], fx[8];
        rn_ld8<V8>(g, j0, C, fg);
        rn_ld8<V8>(x, j0, C, fx);
#pragma unroll
        for (int k = 0; k < 8; k++)
            if (V8 || j0 + k < C) dot += (double)fg[k] * (double)w[j0 + k] * (double)fx[k];
    }
    dot = rn_warp_sum(dot);
    const float r = rstd[n];
    const double rd = (double)r;
    const float c = (float)(dot * rd * rd * rd / (double)C);
    T *dx = din + n * C;
    for (int64_t j0 = 8 * lane; j0 < C; j0 += 256) {
        float fg[8], fx[8], fd[8];
        rn_ld8<V8>(g, j0, C, fg);
        rn_ld8<V8>(x, j0, C, fx);
        rn_ld8<V8>(dx, j0, C, fd);
#pragma unroll
        for (int k = 0; k < 8; k++) fd[k] = fd[k] + (r * (V8 || j0 + k < C ? w[j0 + k] : 0.0f) * fg[k] - c * fx[k]);
        if (V8) st8(dx + j0, fd);
        else
            for (int k = 0; k < 8 && j0 + k < C; k++) stf(dx, j0 + k, fd[k]);
    }
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

/* Block (32 columns, 8 lanes): lane y sums the chunks k = y, y + 8, ... in order, then lane 0
 * adds the eight sums in order: a fixed tree, eight loads in flight per column. */
__global__ void rmsnorm_bwd_dw_sum_kernel(float *dw, const float *part, int64_t nchunk, int64_t C) {
    __shared__ float sh[8][33];
    const int64_t j = blockIdx.x * 32 + threadIdx.x;
    float s = 0.0f;
    if (j < C)
        for (int64_t k = threadIdx.y; k < nchunk; k += 8) s = s + part[k * C + j];
    sh[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && j < C) {
        float t = 0.0f;
        for (int y = 0; y < 8; y++) t = t + sh[y][threadIdx.x];
        dw[j] = dw[j] + t;
    }
}

void fqt_cuda_rmsnorm_fwd(void *out, float *rstd, const void *in, const float *w, int64_t N,
                          int64_t C, float eps) {
    if (N <= 0) return;
    const unsigned nb = (unsigned)((N + RN_WARPS - 1) / RN_WARPS);
    const bool v8 = vec8_ok(C, out, in);
    FQT_DT_DISPATCH(fqt_cuda.act, T, {
        if (v8) rmsnorm_fwd_kernel<T, true><<<nb, 32 * RN_WARPS>>>((T *)out, rstd, (const T *)in, w, N, C, eps);
        else rmsnorm_fwd_kernel<T, false><<<nb, 32 * RN_WARPS>>>((T *)out, rstd, (const T *)in, w, N, C, eps);
    });
    FQT_CUDA_LAUNCHED();
}

void fqt_cuda_rmsnorm_bwd(void *din, float *dw, const void *dout, const void *in, const float *w,
                          const float *rstd, int64_t N, int64_t C) {
    if (N <= 0 || C <= 0) return;
    const int64_t nchunk = (N + RN_CHUNK - 1) / RN_CHUNK;
    FQT_ASSERT(nchunk < 65536);
    float *part = (float *)fqt_cuda_scratch(FQT_SCR_ROW, (size_t)(nchunk * C) * sizeof(float));
    FQT_DT_DISPATCH(fqt_cuda.act, T, {
        const unsigned nb = (unsigned)((N + RN_WARPS - 1) / RN_WARPS);
        if (vec8_ok(C, din, dout, in))
            rmsnorm_bwd_din_kernel<T, true><<<nb, 32 * RN_WARPS>>>((T *)din, (const T *)dout, (const T *)in, w, rstd, N, C);
        else
            rmsnorm_bwd_din_kernel<T, false><<<nb, 32 * RN_WARPS>>>((T *)din, (const T *)dout, (const T *)in, w, rstd, N, C);
        FQT_CUDA_LAUNCHED();
        dim3 grid((unsigned)((C + 127) / 128), (unsigned)nchunk);
        rmsnorm_bwd_dw_part_kernel<T><<<grid, 128>>>(part, (const T *)dout, (const T *)in, rstd, N, C);
        FQT_CUDA_LAUNCHED();
    });
    rmsnorm_bwd_dw_sum_kernel<<<(unsigned)((C + 31) / 32), dim3(32, 8)>>>(dw, part, nchunk, C);
    FQT_CUDA_LAUNCHED();
}
