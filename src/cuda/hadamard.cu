/* cuda/hadamard.cu — x[N, C] in place: each block of 16 rows gets the random row signs of §4
 * (bit 0 of fqt_sr_bits(seed, stream, row)) and the orthonormal 16x16 Sylvester Hadamard
 * transform; a partial last block is left as is. Oracle: fqt_hadamard16_rows (core/linear.c),
 * whose butterfly order this follows exactly: bit-identical for float32 activations. One
 * thread per (block, column). */
#include "cuda/common.cuh"

template <typename T>
__global__ void hadamard16_kernel(T *x, int64_t nb, int64_t C, uint64_t seed, uint64_t stream) {
    const int64_t total = nb * C;
    for (int64_t e = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; e < total;
         e += (int64_t)gridDim.x * blockDim.x) {
        const int64_t b = e / C, c = e % C;
        float v[16];
        uint32_t w[4];
        for (int i = 0; i < 16; i++) {
            if ((i & 3) == 0) fqt_sr_block4(seed, stream, (uint64_t)(b * 16 + i) >> 2, w);
            const float a = ldf(x, (b * 16 + i) * C + c);
            v[i] = (w[(b * 16 + i) & 3] & 1u) ? -a : a;
        }
        for (int h = 1; h < 16; h <<= 1)
            for (int i = 0; i < 16; i += 2 * h)
                for (int j = i; j < i + h; j++) {
                    const float u = v[j], t = v[j + h];
                    v[j] = u + t;
                    v[j + h] = u - t;
                }
        for (int i = 0; i < 16; i++) stf(x, (b * 16 + i) * C + c, v[i] * 0.25f);
    }
}

void fqt_cuda_hadamard16_rows(void *x, int64_t N, int64_t C, uint64_t seed, uint64_t stream) {
    const int64_t nb = N / 16;
    if (nb <= 0 || C <= 0) return;
    unsigned g = fqt_cuda_blocks(nb * C, 256);
    if (g > 65536) g = 65536;
    FQT_DT_DISPATCH(fqt_cuda.act, T, hadamard16_kernel<T><<<g, 256>>>((T *)x, nb, C, seed, stream));
    FQT_CUDA_LAUNCHED();
}
