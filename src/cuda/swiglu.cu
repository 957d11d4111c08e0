/* cuda/swiglu.cu — SwiGLU forward and backward, elementwise, in the CPU reference's operation
 * order (cpu/ops_impl.h swiglu_fwd/bwd; no FMA contraction). expf is CUDA's (within 2 ulp),
 * so results agree with the CPU to a few ulp, not to the bit. Each thread takes 8 consecutive
 * elements per step where n and the pointers allow (ld8/st8: the same values), else one. */
#include "cuda/common.cuh"

__device__ __forceinline__ float sw_fwd(float g, float u) {
    const float sg = 1.0f / (1.0f + expf(-g));
    return g * sg * u;
}
/* dgate and dup of one element. */
__device__ __forceinline__ void sw_bwd(float g, float u, float d, float &dg, float &du) {
    const float sg = 1.0f / (1.0f + expf(-g));
    dg = d * u * sg * (1.0f + g * (1.0f - sg));
    du = d * (g * sg);
}

/* W elements per index: W == 8 through ld8/st8, W == 1 through ldf/stf; n counts indices. */
template <typename T, int W> __global__ void swiglu_fwd_kernel(T *out, const T *gate, const T *up, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        if (W == 8) {
            float g[8], u[8];
            ld8(gate + 8 * i, g);
            ld8(up + 8 * i, u);
#pragma unroll
            for (int k = 0; k < 8; k++) g[k] = sw_fwd(g[k], u[k]);
            st8(out + 8 * i, g);
        } else {
            stf(out, i, sw_fwd(ldf(gate, i), ldf(up, i)));
        }
    }
}

template <typename T, int W>
__global__ void swiglu_bwd_kernel(T *dgate, T *dup, const T *dout, const T *gate, const T *up, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        if (W == 8) {
            float g[8], u[8], d[8];
            ld8(gate + 8 * i, g);
            ld8(up + 8 * i, u);
            ld8(dout + 8 * i, d);
#pragma unroll
            for (int k = 0; k < 8; k++) sw_bwd(g[k], u[k], d[k], g[k], u[k]);
            st8(dgate + 8 * i, g);
            st8(dup + 8 * i, u);
        } else {
            float dg, du;
            sw_bwd(ldf(gate, i), ldf(up, i), ldf(dout, i), dg, du);
            stf(dgate, i, dg);
            stf(dup, i, du);
        }
    }
}

static unsigned sw_grid(int64_t n) {
    unsigned nb = fqt_cuda_blocks(n, 256);
    return nb > 65536 ? 65536 : nb;
}

void fqt_cuda_swiglu_fwd(void *out, const void *gate, const void *up, int64_t n) {
    if (n <= 0) return;
    const bool v8 = vec8_ok(n, out, gate, up);
    FQT_DT_DISPATCH(fqt_cuda.act, T, {
        if (v8) swiglu_fwd_kernel<T, 8><<<sw_grid(n / 8), 256>>>((T *)out, (const T *)gate, (const T *)up, n / 8);
        else swiglu_fwd_kernel<T, 1><<<sw_grid(n), 256>>>((T *)out, (const T *)gate, (const T *)up, n);
    });
    FQT_CUDA_LAUNCHED();
}

void fqt_cuda_swiglu_bwd(void *dgate, void *dup, const void *dout, const void *gate,
                         const void *up, int64_t n) {
    if (n <= 0) return;
    const bool v8 = vec8_ok(n, dgate, dup, dout, gate) && vec8_ok(n, up);
    FQT_DT_DISPATCH(fqt_cuda.act, T, {
        if (v8)
            swiglu_bwd_kernel<T, 8><<<sw_grid(n / 8), 256>>>((T *)dgate, (T *)dup, (const T *)dout,
                                                             (const T *)gate, (const T *)up, n / 8);
        else
            swiglu_bwd_kernel<T, 1><<<sw_grid(n), 256>>>((T *)dgate, (T *)dup, (const T *)dout,
                                                         (const T *)gate, (const T *)up, n);
    });
    FQT_CUDA_LAUNCHED();
}
