/* cuda/embedding.cu — token embedding forward (row gather) and backward without atomics.
 *
 * Backward: dwte[tok[n], j] += dout[n, j] summed over n in increasing order, exactly as the
 * CPU reference (cpu/ops_impl.h embedding_bwd), so float32 results are bit-identical. Thread
 * (j, bucket) owns the vocabulary rows v with v % BUCKETS == bucket in column j and walks all
 * N tokens in order: no two threads ever touch the same element, no float atomics. Token ids
 * are staged through shared memory in tiles. Cost: N * BUCKETS token reads per column. */
#include "cuda/common.cuh"

#define EMB_BUCKETS 64
#define EMB_TILE 1024

template <typename T>
__global__ void embedding_fwd_kernel(T *out, const int32_t *tok, const float *wte, int64_t N, int64_t C) {
    const int64_t n = blockIdx.x;
    const int64_t row = tok[n];
    for (int64_t j = threadIdx.x; j < C; j += blockDim.x)
        stf(out, n * C + j, wte[row * C + j]);
}

template <typename T>
__global__ void embedding_bwd_kernel(float *dwte, const T *dout, const int32_t *tok, int64_t N, int64_t C) {
    __shared__ int32_t st[EMB_TILE];
    const int64_t j = blockIdx.x * (int64_t)blockDim.x + threadIdx.x;
    const int bucket = blockIdx.y;
    for (int64_t n0 = 0; n0 < N; n0 += EMB_TILE) {
        const int64_t nt = N - n0 < EMB_TILE ? N - n0 : EMB_TILE;
        __syncthreads();
        for (int64_t i = threadIdx.x; i < nt; i += blockDim.x) st[i] = tok[n0 + i];
        __syncthreads();
        if (j < C)
            for (int64_t i = 0; i < nt; i++) {
                const int32_t t = st[i];
                if (t % EMB_BUCKETS == bucket)
                    dwte[(int64_t)t * C + j] = dwte[(int64_t)t * C + j] + ldf(dout, (n0 + i) * C + j);
            }
    }
}

void fqt_cuda_embedding_fwd(void *out, const int32_t *tok, const float *wte, int64_t N, int64_t C) {
    if (N <= 0 || C <= 0) return;
    FQT_ASSERT(N <= 2147483647);
    FQT_DT_DISPATCH(fqt_cuda.act, T, embedding_fwd_kernel<T><<<(unsigned)N, 256>>>((T *)out, tok, wte, N, C));
    FQT_CUDA_LAUNCHED();
}

void fqt_cuda_embedding_bwd(float *dwte, const void *dout, const int32_t *tok, int64_t N, int64_t C) {
    if (N <= 0 || C <= 0) return;
    dim3 grid((unsigned)((C + 127) / 128), EMB_BUCKETS);
    FQT_DT_DISPATCH(fqt_cuda.act, T,
                    embedding_bwd_kernel<T><<<grid, 128>>>(dwte, (const T *)dout, tok, N, C));
    FQT_CUDA_LAUNCHED();
}
