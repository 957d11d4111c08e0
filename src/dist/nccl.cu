/* dist/nccl.cu — the collectives of fqt/dist.h on device memory over NCCL, for the CUDA
 * backend: all-gather of slab ranges, the ordered reduce-scatter, broadcast.
 *
 * Bootstrap: rank 0 makes an ncclUniqueId, MPI broadcasts it (fqt_dist_bcast), every rank
 * binds the GPU of its local rank and joins with ncclCommInitRank. As on the host, NCCL never
 * adds floats for us (ncclReduceScatter's order is NCCL's choice): the all-to-all is grouped
 * ncclSend/ncclRecv moving bytes, and ordered_sum_kernel adds the P pieces of each element in
 * rank order, one float32 addition after another, exactly as fqt_dist_reduce_scatter_ordered
 * does on the CPU (its oracle). Compiled only with FQT_HAVE_NCCL (nvcc, NCCL and MPI found).
 * Not for: when to reduce (core/train.c); host memory (dist/comm.c). */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
extern "C" {
#include "fqt/common.h" /* a C header without C++ guards */
}
#include "fqt/dist.h"

#include <cuda_runtime.h>
#include <nccl.h>

#include <stdio.h>
#include <stdlib.h>

#define CUDA_CHECK(call)                                                                      \
    do {                                                                                      \
        cudaError_t e_ = (call);                                                              \
        if (e_ != cudaSuccess)                                                                \
            fqt_dist_abort(4, "%s failed at %s:%d: %s", #call, __FILE__, __LINE__,           \
                           cudaGetErrorString(e_));                                           \
    } while (0)
#define NCCL_CHECK(call)                                                                      \
    do {                                                                                      \
        ncclResult_t r_ = (call);                                                             \
        if (r_ != ncclSuccess)                                                                \
            fqt_dist_abort(4, "%s failed at %s:%d: %s (another rank may have died)", #call,  \
                           __FILE__, __LINE__, ncclGetErrorString(r_));                       \
    } while (0)

static ncclComm_t comm;
static bool have_comm;
static float *rs_buf;   /* device: P pieces of one round of my shard */
static int64_t rs_cap;  /* floats */

/* Rounds keep each message's count well inside size_t and the buffer bounded. */
static const int64_t ROUND = (int64_t)1 << 26;

extern "C" fqt_status fqt_dist_nccl_init(void) {
    const fqt_dist_info *w = fqt_dist_world();
    if (have_comm) return FQT_OK;
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
        fqt_set_error("rank %d: no CUDA device for NCCL", w->rank);
        return FQT_ERR_UNSUPPORTED;
    }
    if (w->local_rank >= ndev) {
        fqt_set_error("rank %d: local rank %d but only %d GPU(s) on this host (one GPU per rank)",
                      w->rank, w->local_rank, ndev);
        return FQT_ERR_UNSUPPORTED;
    }
    CUDA_CHECK(cudaSetDevice(w->local_rank));
    ncclUniqueId id;
    if (w->rank == 0) NCCL_CHECK(ncclGetUniqueId(&id));
    fqt_dist_bcast(&id, sizeof id, 0);
    NCCL_CHECK(ncclCommInitRank(&comm, w->size, id, w->rank));
    have_comm = true;
    return FQT_OK;
}

extern "C" void fqt_dist_nccl_finalize(void) {
    if (!have_comm) return;
    ncclCommDestroy(comm);
    have_comm = false;
    if (rs_buf) cudaFree(rs_buf);
    rs_buf = NULL;
    rs_cap = 0;
}

extern "C" void fqt_dist_nccl_bcast(void *buf, size_t bytes, int root, void *stream) {
    if (fqt_dist_world()->size == 1) return;
    NCCL_CHECK(ncclBroadcast(buf, buf, bytes, ncclUint8, root, comm, (cudaStream_t)stream));
}

/* Every rank's range to every other rank, in place: grouped sends and receives per round. */
extern "C" void fqt_dist_nccl_allgatherv_f32(float *x, const int64_t *bounds, void *stream) {
    const fqt_dist_info *w = fqt_dist_world();
    const int P = w->size, me = w->rank;
    if (P == 1) return;
    int64_t longest = 0;
    for (int r = 0; r < P; r++)
        if (bounds[r + 1] - bounds[r] > longest) longest = bounds[r + 1] - bounds[r];
    for (int64_t off = 0; off < longest; off += ROUND) {
        NCCL_CHECK(ncclGroupStart());
        for (int r = 0; r < P; r++) {
            if (r == me) continue;
            int64_t lo = bounds[r] + off, hi = bounds[r + 1];
            if (lo < hi)
                NCCL_CHECK(ncclRecv(x + lo, (size_t)(hi - lo < ROUND ? hi - lo : ROUND), ncclFloat32, r,
                                    comm, (cudaStream_t)stream));
            int64_t mlo = bounds[me] + off, mhi = bounds[me + 1];
            if (mlo < mhi)
                NCCL_CHECK(ncclSend(x + mlo, (size_t)(mhi - mlo < ROUND ? mhi - mlo : ROUND), ncclFloat32, r,
                                    comm, (cudaStream_t)stream));
        }
        NCCL_CHECK(ncclGroupEnd());
    }
}

/* a[i] = ((first ? in_0[i] : a[i] + in_0[i]) + in_1[i]) + ... + in_{P-1}[i]; pieces of n
 * floats one after another in `in`. Plain float adds, no contraction possible (no multiply). */
__global__ void ordered_sum_kernel(float *a, const float *in, int64_t n, int P, int first) {
    int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n) return;
    float s = first ? in[i] : __fadd_rn(a[i], in[i]);
    for (int q = 1; q < P; q++) s = __fadd_rn(s, in[(int64_t)q * n + i]);
    a[i] = s;
}

extern "C" void fqt_dist_nccl_reduce_scatter_ordered(const float *x, float *acc, const int64_t *bounds,
                                                     bool first, void *stream) {
    const fqt_dist_info *w = fqt_dist_world();
    const int P = w->size, me = w->rank;
    cudaStream_t s = (cudaStream_t)stream;
    const int64_t b = bounds[me], e = bounds[me + 1];
    int64_t longest = 0;
    for (int r = 0; r < P; r++)
        if (bounds[r + 1] - bounds[r] > longest) longest = bounds[r + 1] - bounds[r];
    const int64_t cap = (longest < ROUND ? longest : ROUND) * P;
    if (cap > rs_cap) {
        if (rs_buf) CUDA_CHECK(cudaFree(rs_buf));
        CUDA_CHECK(cudaMalloc((void **)&rs_buf, (size_t)(cap > 0 ? cap : 1) * sizeof(float)));
        rs_cap = cap;
    }
    for (int64_t off = 0; off < longest; off += ROUND) {
        const int64_t lo = b + off, n = lo < e ? (e - lo < ROUND ? e - lo : ROUND) : 0;
        NCCL_CHECK(ncclGroupStart());
        for (int q = 0; q < P; q++) {
            if (q == me) continue;
            if (n > 0) NCCL_CHECK(ncclRecv(rs_buf + (int64_t)q * n, (size_t)n, ncclFloat32, q, comm, s));
            const int64_t slo = bounds[q] + off, shi = bounds[q + 1];
            if (slo < shi)
                NCCL_CHECK(ncclSend(x + slo, (size_t)(shi - slo < ROUND ? shi - slo : ROUND), ncclFloat32, q,
                                    comm, s));
        }
        NCCL_CHECK(ncclGroupEnd());
        if (n == 0) continue;
        CUDA_CHECK(cudaMemcpyAsync(rs_buf + (int64_t)me * n, x + lo, (size_t)n * sizeof(float),
                                   cudaMemcpyDeviceToDevice, s));
        const int threads = 256;
        const unsigned blocks = (unsigned)((n + threads - 1) / threads);
        ordered_sum_kernel<<<blocks, threads, 0, s>>>(acc + off, rs_buf, n, P, first ? 1 : 0);
        CUDA_CHECK(cudaGetLastError());
    }
}
