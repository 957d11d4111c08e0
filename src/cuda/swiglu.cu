/* cuda/swiglu.cu — SwiGLU forward and backward, elementwise, in the CPU reference's operation
 * order (cpu/ops_impl.h swiglu_fwd/bwd; no FMA contraction). expf is CUDA's (within 2 ulp),
 * so results agree with the CPU to a few ulp, not to the bit. */
#include "cuda/common.cuh"

template <typename T> __global__ void swiglu_fwd_kernel(T *out, const T *gate, const T *up, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        const float g = ldf(gate, i), u = ldf(up, i);
        const float sg = 1.0f / (1.0f + expf(-g));
        stf(out, i, g * sg * u);
    }
}

template <typename T>
__global__ void swiglu_bwd_kernel(T *dgate, T *dup, const T *dout, const T *gate, const T *up, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x) {
        const float g = ldf(gate, i), u = ldf(up, i), d = ldf(dout, i);
        const float sg = 1.0f / (1.0f + expf(-g));
        stf(dgate, i, d * u * sg * (1.0f + g * (1.0f - sg)));
        stf(dup, i, d * (g * sg));
    }
}

void fqt_cuda_swiglu_fwd(void *out, const void *gate, const void *up, int64_t n) {
    if (n <= 0) return;
    unsigned nb = fqt_cuda_blocks(n, 256);
    if (nb > 65536) nb = 65536;
    FQT_DT_DISPATCH(fqt_cuda.act, T,
                    swiglu_fwd_kernel<T><<<nb, 256>>>((T *)out, (const T *)gate, (const T *)up, n));
    FQT_CUDA_LAUNCHED();
}

void fqt_cuda_swiglu_bwd(void *dgate, void *dup, const void *dout, const void *gate,
                         const void *up, int64_t n) {
    if (n <= 0) return;
    unsigned nb = fqt_cuda_blocks(n, 256);
    if (nb > 65536) nb = 65536;
    FQT_DT_DISPATCH(fqt_cuda.act, T,
                    swiglu_bwd_kernel<T><<<nb, 256>>>((T *)dgate, (T *)dup, (const T *)dout,
                                                      (const T *)gate, (const T *)up, n));
    FQT_CUDA_LAUNCHED();
}
