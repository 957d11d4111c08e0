/* cuda/add.cu — y += x over act storage (the residual adds). Oracle: cpu/ops_impl.h
 * add_inplace; bit-identical for float32 activations. */
#include "cuda/common.cuh"

template <typename T> __global__ void add_kernel(T *y, const T *x, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        stf(y, i, ldf(y, i) + ldf(x, i));
}

void fqt_cuda_add_inplace(void *y, const void *x, int64_t n) {
    if (n <= 0) return;
    unsigned nb = fqt_cuda_blocks(n, 256);
    if (nb > 65536) nb = 65536;
    FQT_DT_DISPATCH(fqt_cuda.act, T, add_kernel<T><<<nb, 256>>>((T *)y, (const T *)x, n));
    FQT_CUDA_LAUNCHED();
}
