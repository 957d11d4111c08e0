/* cuda/adamw.cu — the fused AdamW step over a range of the parameter slab. Oracle: the CPU
 * reference's loop (core/train.c adamw_step, fqt/backend.h fqt_adamw_args): the same float32
 * operations in the same order; with IEEE division and square root and no FMA contraction
 * (-fmad=false for every kernel of this backend) the result is bit-identical. One launch per
 * run of consecutive segments with the same weight decay. check_only: nothing is written; the
 * number of non-finite new w, m, v values is counted (integer partials per CUDA block, summed
 * on the host: exact) and returned. */
#include "cuda/common.cuh"

#include <vector>

#define AW_THREADS 256
#define AW_MAX_GRID 8192

typedef struct {
    float lr, b1, b2, eps, wd, c1, c2, gs;
} aw_params;

/* One index: the reference's operations in its order. */
template <bool DRY>
__device__ __forceinline__ void aw_one(const aw_params &a, float &w, float g, float &m, float &v,
                                       unsigned long long &bad) {
    const float gj = g * a.gs;
    const float mm = a.b1 * m + (1.0f - a.b1) * gj;
    const float vv = a.b2 * v + (1.0f - a.b2) * gj * gj;
    const float mh = mm / a.c1, vh = vv / a.c2;
    const float wn = w - a.lr * (mh / (sqrtf(vh) + a.eps) + a.wd * w);
    if (DRY) {
        bad += !isfinite(wn) + !isfinite(mm) + !isfinite(vv);
    } else {
        m = mm;
        v = vv;
        w = wn;
    }
}

/* [begin, end): indices [mid0, mid1) four per thread and iteration (float4 loads and stores;
 * the host picks them 16-byte aligned for all four arrays, or mid0 == mid1 == begin), the rest
 * one per thread and iteration. */
template <bool DRY>
__global__ void adamw_kernel(float *w, const float *g, float *m, float *v, int64_t begin, int64_t end,
                             int64_t mid0, int64_t mid1, aw_params a, unsigned long long *bad_part) {
    unsigned long long bad = 0;
    const int64_t tid = blockIdx.x * (int64_t)blockDim.x + threadIdx.x, nth = (int64_t)gridDim.x * blockDim.x;
    float4 *w4 = (float4 *)(w + mid0), *m4 = (float4 *)(m + mid0), *v4 = (float4 *)(v + mid0);
    const float4 *g4 = (const float4 *)(g + mid0);
    for (int64_t q = tid; q < (mid1 - mid0) / 4; q += nth) {
        float4 wq = w4[q], mq = m4[q], vq = v4[q];
        const float4 gq = g4[q];
        aw_one<DRY>(a, wq.x, gq.x, mq.x, vq.x, bad);
        aw_one<DRY>(a, wq.y, gq.y, mq.y, vq.y, bad);
        aw_one<DRY>(a, wq.z, gq.z, mq.z, vq.z, bad);
        aw_one<DRY>(a, wq.w, gq.w, mq.w, vq.w, bad);
        if (!DRY) {
            w4[q] = wq;
            m4[q] = mq;
            v4[q] = vq;
        }
    }
    const int64_t nhead = mid0 - begin, nrest = nhead + (end - mid1);
    for (int64_t t = tid; t < nrest; t += nth) {
        const int64_t j = t < nhead ? begin + t : mid1 + (t - nhead);
        float wj = w[j], mj = m[j], vj = v[j];
        aw_one<DRY>(a, wj, g[j], mj, vj, bad);
        if (!DRY) {
            w[j] = wj;
            m[j] = mj;
            v[j] = vj;
        }
    }
    if (DRY) {
        __shared__ unsigned long long sh[AW_THREADS];
        bad = block_sum<AW_THREADS>(bad, sh);
        if (threadIdx.x == 0) bad_part[blockIdx.x] = bad;
    }
}

/* One launch over [b, e); check_only: its per-block counts go to part[0..nb) (nb returned). */
static unsigned launch(float *w, const float *g, float *m, float *v, int64_t b, int64_t e, float wd,
                       const fqt_adamw_args *a, unsigned long long *part) {
    /* the vector range: w + mid0 16-byte aligned, and g, m, v at the same offset mod 16 */
    const uintptr_t ow = (uintptr_t)w % 16;
    int64_t mid0 = b, mid1 = b;
    if (ow % 4 == 0 && (uintptr_t)g % 16 == ow && (uintptr_t)m % 16 == ow && (uintptr_t)v % 16 == ow) {
        const int64_t base = -(int64_t)(ow / 4); /* index of the aligned address below w */
        mid0 = base + ((b - base + 3) & ~(int64_t)3);
        mid1 = base + ((e - base) & ~(int64_t)3);
        if (mid1 <= mid0) mid0 = mid1 = b;
    }
    unsigned nb = fqt_cuda_blocks((mid1 - mid0) / 4 + (e - b) - (mid1 - mid0), AW_THREADS);
    if (nb > AW_MAX_GRID) nb = AW_MAX_GRID;
    const aw_params p = {a->lr, a->beta1, a->beta2, a->eps, wd, a->bias_corr1, a->bias_corr2, a->grad_scale};
    if (!a->check_only) adamw_kernel<false><<<nb, AW_THREADS>>>(w, g, m, v, b, e, mid0, mid1, p, NULL);
    else adamw_kernel<true><<<nb, AW_THREADS>>>(w, g, m, v, b, e, mid0, mid1, p, part);
    FQT_CUDA_LAUNCHED();
    return nb;
}

/* The segments in [begin, end) as runs of consecutive segments with one weight decay, one
 * launch each; a check's counts from every launch come back in one copy at the end (one
 * synchronisation per call, not one per run). */
int64_t fqt_cuda_adamw(float *w, const float *g, float *m, float *v, int64_t begin, int64_t end,
                       const fqt_adamw_args *a) {
    struct run { int64_t b, e; float wd; };
    std::vector<run> runs;
    for (int s = 0; s < a->n_segs; s++) {
        const fqt_param_segment *sg = &a->segs[s];
        int64_t b = sg->offset > begin ? sg->offset : begin;
        int64_t e = sg->offset + sg->numel < end ? sg->offset + sg->numel : end;
        if (e <= b) continue;
        const float wd = sg->decay ? a->weight_decay : 0.0f;
        if (!runs.empty() && b == runs.back().e && wd == runs.back().wd) runs.back().e = e;
        else runs.push_back({b, e, wd});
    }
    unsigned long long *part = NULL;
    if (a->check_only && !runs.empty())
        part = (unsigned long long *)fqt_cuda_scratch(FQT_SCR_PART, runs.size() * AW_MAX_GRID * sizeof(unsigned long long));
    size_t np = 0;
    for (const run &r : runs) np += launch(w, g, m, v, r.b, r.e, r.wd, a, part ? part + np : NULL);
    if (!part) return 0;
    std::vector<unsigned long long> h(np);
    FQT_CUDA_CHECK(cudaMemcpy(h.data(), part, np * sizeof(unsigned long long), cudaMemcpyDeviceToHost));
    int64_t bad = 0;
    for (size_t i = 0; i < np; i++) bad += (int64_t)h[i];
    return bad;
}
