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

static int64_t launch(float *w, const float *g, float *m, float *v, int64_t b, int64_t e, float wd,
                      const fqt_adamw_args *a) {
    if (e <= b) return 0;
    unsigned nb = fqt_cuda_blocks(e - b, AW_THREADS);
    if (nb > 8192) nb = 8192;
    if (!a->check_only) {
        adamw_kernel<false><<<nb, AW_THREADS>>>(w, g, m, v, b, e, a->lr, a->beta1, a->beta2, a->eps, wd,
                                                a->bias_corr1, a->bias_corr2, a->grad_scale, NULL);
        FQT_CUDA_LAUNCHED();
        return 0;
    }
    unsigned long long *part =
        (unsigned long long *)fqt_cuda_scratch(FQT_SCR_PART, nb * sizeof(unsigned long long));
    adamw_kernel<true><<<nb, AW_THREADS>>>(w, g, m, v, b, e, a->lr, a->beta1, a->beta2, a->eps, wd,
                                           a->bias_corr1, a->bias_corr2, a->grad_scale, part);
    FQT_CUDA_LAUNCHED();
    std::vector<unsigned long long> h(nb);
    FQT_CUDA_CHECK(cudaMemcpy(h.data(), part, nb * sizeof(unsigned long long), cudaMemcpyDeviceToHost));
    int64_t bad = 0;
    for (unsigned i = 0; i < nb; i++) bad += (int64_t)h[i];
    return bad;
}

int64_t fqt_cuda_adamw(float *w, const float *g, float *m, float *v, int64_t begin, int64_t end,
                       const fqt_adamw_args *a) {
    int64_t bad = 0;
    int64_t run_b = -1, run_e = -1;
    float run_wd = 0.0f;
    for (int s = 0; s < a->n_segs; s++) {
        const fqt_param_segment *sg = &a->segs[s];
        int64_t b = sg->offset > begin ? sg->offset : begin;
        int64_t e = sg->offset + sg->numel < end ? sg->offset + sg->numel : end;
        if (e <= b) continue;
        const float wd = sg->decay ? a->weight_decay : 0.0f;
        if (run_b >= 0 && b == run_e && wd == run_wd) {
            run_e = e;
            continue;
        }
        if (run_b >= 0) bad += launch(w, g, m, v, run_b, run_e, run_wd, a);
        run_b = b;
        run_e = e;
        run_wd = wd;
    }
    if (run_b >= 0) bad += launch(w, g, m, v, run_b, run_e, run_wd, a);
    return bad;
}
