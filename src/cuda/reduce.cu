/* cuda/reduce.cu — the deterministic reductions of the table: sums of squares per
 * FQT_SUMSQ_CHUNK chunk in double (one block per chunk, fixed tree; the CPU sums each chunk
 * sequentially, so partials agree to the last bits of a double), and the count of non-finite
 * values (integer, exact). */
#include "cuda/common.cuh"

#include <vector>

#define RD_THREADS 256

__global__ void sumsq_kernel(const float *x, const float *y, int64_t n, double *part) {
    __shared__ double sh[RD_THREADS];
    const int64_t k = blockIdx.x, i0 = k * FQT_SUMSQ_CHUNK;
    const int64_t i1 = i0 + FQT_SUMSQ_CHUNK < n ? i0 + FQT_SUMSQ_CHUNK : n;
    double s = 0.0;
    for (int64_t i = i0 + threadIdx.x; i < i1; i += RD_THREADS) {
        const double d = y ? (double)x[i] - (double)y[i] : (double)x[i];
        s += d * d;
    }
    s = block_sum<RD_THREADS>(s, sh);
    if (threadIdx.x == 0) part[k] = s;
}

__global__ void nonfinite_kernel(const float *x, int64_t n, unsigned long long *part) {
    __shared__ unsigned long long sh[RD_THREADS];
    unsigned long long c = 0;
    for (int64_t i = blockIdx.x * (int64_t)RD_THREADS + threadIdx.x; i < n; i += (int64_t)gridDim.x * RD_THREADS)
        c += !isfinite(x[i]);
    c = block_sum<RD_THREADS>(c, sh);
    if (threadIdx.x == 0) part[blockIdx.x] = c;
}

void fqt_cuda_sumsq_partials(const float *x, const float *y, int64_t n, double *part) {
    const int64_t nc = (n + FQT_SUMSQ_CHUNK - 1) / FQT_SUMSQ_CHUNK;
    if (nc <= 0) return;
    double *d = (double *)fqt_cuda_scratch(FQT_SCR_PART, (size_t)nc * sizeof(double));
    sumsq_kernel<<<(unsigned)nc, RD_THREADS>>>(x, y, n, d);
    FQT_CUDA_LAUNCHED();
    FQT_CUDA_CHECK(cudaMemcpy(part, d, (size_t)nc * sizeof(double), cudaMemcpyDeviceToHost));
}

int64_t fqt_cuda_count_nonfinite(const float *x, int64_t n) {
    if (n <= 0) return 0;
    const unsigned nb = 512;
    unsigned long long *d = (unsigned long long *)fqt_cuda_scratch(FQT_SCR_PART, nb * sizeof(unsigned long long));
    nonfinite_kernel<<<nb, RD_THREADS>>>(x, n, d);
    FQT_CUDA_LAUNCHED();
    std::vector<unsigned long long> h(nb);
    FQT_CUDA_CHECK(cudaMemcpy(h.data(), d, nb * sizeof(unsigned long long), cudaMemcpyDeviceToHost));
    int64_t c = 0;
    for (unsigned i = 0; i < nb; i++) c += (int64_t)h[i];
    return c;
}
