/* cuda/add.cu — y += x over act storage (the residual adds). Oracle: cpu/ops_impl.h
 * add_inplace; bit-identical for float32 activations. 8 elements per step where n and the
 * pointers allow (ld8/st8), else one. */
#include "cuda/common.cuh"

template <typename T> __global__ void add_kernel(T *y, const T *x, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        stf(y, i, ldf(y, i) + ldf(x, i));
}

template <typename T> __global__ void add8_kernel(T *y, const T *x, int64_t n8) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n8;
         i += (int64_t)gridDim.x * blockDim.x) {
        float a[8], b[8];
        ld8(y + 8 * i, a);
        ld8(x + 8 * i, b);
#pragma unroll
        for (int k = 0; k < 8; k++) a[k] = a[k] + b[k];
        st8(y + 8 * i, a);
    }
}

void fqt_cuda_add_inplace(void *y, const void *x, int64_t n) {
    if (n <= 0) return;
    const bool v8 = vec8_ok(n, y, x);
    unsigned nb = fqt_cuda_blocks(v8 ? n / 8 : n, 256);
    if (nb > 65536) nb = 65536;
    FQT_DT_DISPATCH(fqt_cuda.act, T, {
        if (v8) add8_kernel<T><<<nb, 256>>>((T *)y, (const T *)x, n / 8);
        else add_kernel<T><<<nb, 256>>>((T *)y, (const T *)x, n);
    });
    FQT_CUDA_LAUNCHED();
}
