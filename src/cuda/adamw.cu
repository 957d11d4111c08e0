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

template <bool DRY>
__global__ void adamw_kernel(float *w, const float *g, float *m, float *v, int64_t begin, int64_t end,
                             float lr, float b1, float b2, float eps, float wd, float c1, float c2,
                             float gs, unsigned long long *bad_part) {
    unsigned long long bad = 0;
    for (int64_t j = begin + blockIdx.x * (int64_t)blockDim.x + threadIdx.x; j < end;
         j += (int64_t)gridDim.x * blockDim.x) {
        const float gj = g[j] * gs;
        const float mm = b1 * m[j] + (1.0f - b1) * gj;
        const float vv = b2 * v[j] + (1.0f - b2) * gj * gj;
        const float mh = mm / c1, vh = vv / c2;
        const float wj = w[j];
        const float wn = wj - lr * (mh / (sqrtf(vh) + eps) + wd * wj);
        if (DRY) {
            bad += !isfinite(wn) + !isfinite(mm) + !isfinite(vv);
        } else {
            m[j] = mm;
            v[j] = vv;
            w[j] = wn;
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
    unsigned nb = fqt_cuda_blocks(e - b, AW_THREADS);
    if (nb > AW_MAX_GRID) nb = AW_MAX_GRID;
    if (!a->check_only)
        adamw_kernel<false><<<nb, AW_THREADS>>>(w, g, m, v, b, e, a->lr, a->beta1, a->beta2, a->eps, wd,
                                                a->bias_corr1, a->bias_corr2, a->grad_scale, NULL);
    else
        adamw_kernel<true><<<nb, AW_THREADS>>>(w, g, m, v, b, e, a->lr, a->beta1, a->beta2, a->eps, wd,
                                               a->bias_corr1, a->bias_corr2, a->grad_scale, part);
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
