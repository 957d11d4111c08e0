/* cuda/attention.cu — causal grouped-query attention, forward and backward: the dispatch to the
 * fused kernels of sm90_flash_attention.cu (bf16, HS 64 or 128), and for every other case (and
 * with FQT_CUDA_ATTN=cublas) cuBLAS batched GEMMs plus row kernels. Oracle: cpu/ops_impl.h
 * attention_fwd/bwd.
 *
 * Per batch b and per query head offset hh < G = NH/NKV, one strided-batched GEMM over the
 * NKV kv heads (query head h = kh*G + hh) computes the full score block S = Q K^T [T, T] in
 * float32 (the masked half is computed and ignored). A row kernel takes the row max of the
 * scaled scores and the reciprocal of sum exp(score - max) (sum in double, fixed tree), writes
 * them to stats[b, h, t, 0..1] and P = exp(score - max) * inv in act storage (zero above the
 * diagonal); O = P V. Backward recomputes S with the same GEMM (same bits), hence the same P,
 * forms dP = dO V^T, the row dot sum P dP (double), dS = P (dP - dot) scale, and
 * dQ = dS K, dK = sum_hh dS^T Q, dV = sum_hh P^T dO, the sums over the G query heads of a kv
 * head accumulated in hh order (beta = 1): deterministic.
 *
 * Differs from the CPU in the accumulation order of the dot products (cuBLAS tiling) and in
 * expf's last bit: derived tolerances. With bf16 activations P and dS are rounded to bf16 for
 * the tensor-core GEMMs (as flash attention does). Memory: scratch of 3 NH T^2 values per b. */
#include "cuda/common.cuh"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* The fused kernels of sm90_flash_attention.cu where they apply (bf16, HS 64 or 128), unless
 * FQT_CUDA_ATTN=cublas asks for this file's path. */
const char *const fqt_cuda_env_attn[] = {"flash", "cublas", NULL};
static bool use_flash(int64_t HS) {
    return fqt_cuda_env_choice("FQT_CUDA_ATTN", fqt_cuda_env_attn) != 1 && fqt_cuda_flash_supported(HS);
}

#define AT_THREADS 256

/* Row (h, t) of one batch element: S[h][t][:] -> stats, P. */
template <typename T>
__global__ void softmax_fwd_kernel(T *P, float *stats, const float *S, int64_t NH, int64_t Tn, float scale) {
    __shared__ double shd[AT_THREADS];
    __shared__ float shf[AT_THREADS];
    const int64_t row = blockIdx.x, t = row % Tn; /* row = h * T + t */
    const float *s = S + row * Tn;
    T *p = P + row * Tn;
    float mx = -INFINITY;
    for (int64_t j = threadIdx.x; j <= t; j += AT_THREADS) mx = fmaxf(mx, s[j] * scale);
    mx = block_max<AT_THREADS>(mx, shf);
    double sum = 0.0;
    for (int64_t j = threadIdx.x; j <= t; j += AT_THREADS) sum += (double)expf(s[j] * scale - mx);
    sum = block_sum<AT_THREADS>(sum, shd);
    const float inv = (float)(1.0 / sum);
    if (threadIdx.x == 0) {
        stats[2 * row] = mx;
        stats[2 * row + 1] = inv;
    }
    for (int64_t j = threadIdx.x; j < Tn; j += AT_THREADS)
        stf(p, j, j <= t ? expf(s[j] * scale - mx) * inv : 0.0f);
}

/* The same row with its scores read once into registers (T <= NPT * AT_THREADS): thread x
 * holds columns x, x + AT_THREADS, ..., the assignment and the order of softmax_fwd_kernel,
 * so the same max, the same double sum and the same bits; one expf per score, not two. */
template <typename T, int NPT>
__global__ void softmax_fwd_reg_kernel(T *P, float *stats, const float *S, int64_t NH, int64_t Tn, float scale) {
    __shared__ double shd[AT_THREADS];
    __shared__ float shf[AT_THREADS];
    const int64_t row = blockIdx.x, t = row % Tn;
    const float *s = S + row * Tn;
    T *p = P + row * Tn;
    float e[NPT];
    float mx = -INFINITY;
#pragma unroll
    for (int k = 0; k < NPT; k++) {
        const int64_t j = threadIdx.x + (int64_t)k * AT_THREADS;
        e[k] = j <= t ? s[j] * scale : -INFINITY;
        mx = fmaxf(mx, e[k]);
    }
    mx = block_max<AT_THREADS>(mx, shf);
    double sum = 0.0;
#pragma unroll
    for (int k = 0; k < NPT; k++) {
        const int64_t j = threadIdx.x + (int64_t)k * AT_THREADS;
        if (j <= t) {
            e[k] = expf(e[k] - mx);
            sum += (double)e[k];
        }
    }
    sum = block_sum<AT_THREADS>(sum, shd);
    const float inv = (float)(1.0 / sum);
    if (threadIdx.x == 0) {
        stats[2 * row] = mx;
        stats[2 * row + 1] = inv;
    }
#pragma unroll
    for (int k = 0; k < NPT; k++) {
        const int64_t j = threadIdx.x + (int64_t)k * AT_THREADS;
        if (j < Tn) stf(p, j, j <= t ? e[k] * inv : 0.0f);
    }
}

/* Backward row with S and dP read once (T <= NPT * AT_THREADS); same order, same bits as
 * softmax_bwd_kernel. */
template <typename T, int NPT>
__global__ void softmax_bwd_reg_kernel(T *P, T *dS, const float *S, const float *dP, const float *stats,
                                       int64_t Tn, float scale) {
    __shared__ double shd[AT_THREADS];
    const int64_t row = blockIdx.x, t = row % Tn;
    const float *s = S + row * Tn, *dp = dP + row * Tn;
    const float mx = stats[2 * row], inv = stats[2 * row + 1];
    float pj[NPT], dpj[NPT];
    double dot = 0.0;
#pragma unroll
    for (int k = 0; k < NPT; k++) {
        const int64_t j = threadIdx.x + (int64_t)k * AT_THREADS;
        pj[k] = 0.0f, dpj[k] = 0.0f;
        if (j <= t) {
            pj[k] = expf(s[j] * scale - mx) * inv;
            dpj[k] = dp[j];
            dot += (double)pj[k] * (double)dpj[k];
        }
    }
    dot = block_sum<AT_THREADS>(dot, shd);
    const float rd = (float)dot;
#pragma unroll
    for (int k = 0; k < NPT; k++) {
        const int64_t j = threadIdx.x + (int64_t)k * AT_THREADS;
        if (j < Tn) {
            stf(P + row * Tn, j, j <= t ? pj[k] : 0.0f);
            stf(dS + row * Tn, j, j <= t ? pj[k] * (dpj[k] - rd) * scale : 0.0f);
        }
    }
}

/* Backward row: S (scores) and dP; writes P and dS (act) for the GEMMs. */
template <typename T>
__global__ void softmax_bwd_kernel(T *P, T *dS, const float *S, const float *dP, const float *stats,
                                   int64_t Tn, float scale) {
    __shared__ double shd[AT_THREADS];
    const int64_t row = blockIdx.x, t = row % Tn;
    const float *s = S + row * Tn, *dp = dP + row * Tn;
    const float mx = stats[2 * row], inv = stats[2 * row + 1];
    double dot = 0.0;
    for (int64_t j = threadIdx.x; j <= t; j += AT_THREADS) {
        const float pj = expf(s[j] * scale - mx) * inv;
        dot += (double)pj * (double)dp[j];
    }
    dot = block_sum<AT_THREADS>(dot, shd);
    const float rd = (float)dot;
    for (int64_t j = threadIdx.x; j < Tn; j += AT_THREADS) {
        if (j <= t) {
            const float pj = expf(s[j] * scale - mx) * inv;
            stf(P + row * Tn, j, pj);
            stf(dS + row * Tn, j, pj * (dp[j] - rd) * scale);
        } else {
            stf(P + row * Tn, j, 0.0f);
            stf(dS + row * Tn, j, 0.0f);
        }
    }
}

template <typename T>
static void attn_fwd(T *out, float *stats, const T *q, const T *k, const T *v, int64_t B, int64_t Tn,
                     int64_t NH, int64_t NKV, int64_t HS) {
    const int64_t G = NH / NKV, qs = NH * HS, ks = NKV * HS, TT = Tn * Tn;
    const float scale = (float)(1.0 / sqrt((double)HS));
    const cudaDataType_t at = act_cuda_type<T>::v;
    float *S = (float *)fqt_cuda_scratch(FQT_SCR_ATT_S, (size_t)(NH * TT) * sizeof(float));
    T *P = (T *)fqt_cuda_scratch(FQT_SCR_ATT_P, (size_t)(NH * TT) * sizeof(T));
    for (int64_t b = 0; b < B; b++) {
        const T *qb = q + b * Tn * qs, *kb = k + b * Tn * ks, *vb = v + b * Tn * ks;
        for (int64_t hh = 0; hh < G; hh++)
            fqt_cuda_gemm_rm(false, true, Tn, Tn, HS, 1.0f, qb + hh * HS, at, qs, G * HS, kb, at, ks,
                             HS, 0.0f, S + hh * TT, CUDA_R_32F, Tn, G * TT, (int)NKV);
        float *st = stats + b * NH * Tn * 2;
        if (Tn <= 4 * AT_THREADS) softmax_fwd_reg_kernel<T, 4><<<(unsigned)(NH * Tn), AT_THREADS>>>(P, st, S, NH, Tn, scale);
        else if (Tn <= 8 * AT_THREADS) softmax_fwd_reg_kernel<T, 8><<<(unsigned)(NH * Tn), AT_THREADS>>>(P, st, S, NH, Tn, scale);
        else softmax_fwd_kernel<T><<<(unsigned)(NH * Tn), AT_THREADS>>>(P, st, S, NH, Tn, scale);
        FQT_CUDA_LAUNCHED();
        for (int64_t hh = 0; hh < G; hh++)
            fqt_cuda_gemm_rm(false, false, Tn, HS, Tn, 1.0f, P + hh * TT, at, Tn, G * TT, vb, at, ks,
                             HS, 0.0f, out + b * Tn * qs + hh * HS, at, qs, G * HS, (int)NKV);
    }
}

template <typename T>
static void attn_bwd(T *dq, T *dk, T *dv, const T *dout, const float *stats, const T *q, const T *k,
                     const T *v, int64_t B, int64_t Tn, int64_t NH, int64_t NKV, int64_t HS) {
    const int64_t G = NH / NKV, qs = NH * HS, ks = NKV * HS, TT = Tn * Tn;
    const float scale = (float)(1.0 / sqrt((double)HS));
    const cudaDataType_t at = act_cuda_type<T>::v;
    float *S = (float *)fqt_cuda_scratch(FQT_SCR_ATT_S, (size_t)(2 * NH * TT) * sizeof(float));
    float *dP = S + NH * TT;
    T *P = (T *)fqt_cuda_scratch(FQT_SCR_ATT_P, (size_t)(NH * TT) * sizeof(T));
    T *dS = (T *)fqt_cuda_scratch(FQT_SCR_ATT_DS, (size_t)(NH * TT) * sizeof(T));
    /* dK and dV sum G query heads: with bf16 storage the sum is kept in float32 and rounded
     * once, not after every head (a partial sum rounded to bf16 loses 2^-9 of itself, which
     * is far more than the result where the heads cancel). */
    const bool acc32 = sizeof(T) != sizeof(float) && G > 1;
    float *dk32 = acc32 ? (float *)fqt_cuda_scratch(FQT_SCR_ATT_DKV, (size_t)(2 * Tn * ks) * sizeof(float)) : NULL;
    float *dv32 = acc32 ? dk32 + Tn * ks : NULL;
    for (int64_t b = 0; b < B; b++) {
        const T *qb = q + b * Tn * qs, *kb = k + b * Tn * ks, *vb = v + b * Tn * ks;
        const T *gb = dout + b * Tn * qs;
        for (int64_t hh = 0; hh < G; hh++) {
            fqt_cuda_gemm_rm(false, true, Tn, Tn, HS, 1.0f, qb + hh * HS, at, qs, G * HS, kb, at, ks,
                             HS, 0.0f, S + hh * TT, CUDA_R_32F, Tn, G * TT, (int)NKV);
            fqt_cuda_gemm_rm(false, true, Tn, Tn, HS, 1.0f, gb + hh * HS, at, qs, G * HS, vb, at, ks,
                             HS, 0.0f, dP + hh * TT, CUDA_R_32F, Tn, G * TT, (int)NKV);
        }
        const float *st = stats + b * NH * Tn * 2;
        if (Tn <= 4 * AT_THREADS) softmax_bwd_reg_kernel<T, 4><<<(unsigned)(NH * Tn), AT_THREADS>>>(P, dS, S, dP, st, Tn, scale);
        else if (Tn <= 8 * AT_THREADS) softmax_bwd_reg_kernel<T, 8><<<(unsigned)(NH * Tn), AT_THREADS>>>(P, dS, S, dP, st, Tn, scale);
        else softmax_bwd_kernel<T><<<(unsigned)(NH * Tn), AT_THREADS>>>(P, dS, S, dP, st, Tn, scale);
        FQT_CUDA_LAUNCHED();
        for (int64_t hh = 0; hh < G; hh++) {
            const float beta = hh ? 1.0f : 0.0f;
            fqt_cuda_gemm_rm(false, false, Tn, HS, Tn, 1.0f, dS + hh * TT, at, Tn, G * TT, kb, at, ks,
                             HS, 0.0f, dq + b * Tn * qs + hh * HS, at, qs, G * HS, (int)NKV);
            fqt_cuda_gemm_rm(true, false, Tn, HS, Tn, 1.0f, dS + hh * TT, at, Tn, G * TT, qb + hh * HS,
                             at, qs, G * HS, beta, acc32 ? (void *)dk32 : (void *)(dk + b * Tn * ks),
                             acc32 ? CUDA_R_32F : at, ks, HS, (int)NKV);
            fqt_cuda_gemm_rm(true, false, Tn, HS, Tn, 1.0f, P + hh * TT, at, Tn, G * TT, gb + hh * HS,
                             at, qs, G * HS, beta, acc32 ? (void *)dv32 : (void *)(dv + b * Tn * ks),
                             acc32 ? CUDA_R_32F : at, ks, HS, (int)NKV);
        }
        if (acc32) {
            fqt_cuda_convert(dk + b * Tn * ks, fqt_cuda.act, dk32, FQT_DT_F32, Tn * ks);
            fqt_cuda_convert(dv + b * Tn * ks, fqt_cuda.act, dv32, FQT_DT_F32, Tn * ks);
        }
    }
}

void fqt_cuda_attention_fwd(void *out, float *stats, const void *q, const void *k, const void *v,
                            int64_t B, int64_t T, int64_t NH, int64_t NKV, int64_t HS) {
    FQT_ASSERT(NKV > 0 && NH % NKV == 0);
    if (B <= 0 || T <= 0) return;
    if (use_flash(HS)) {
        fqt_cuda_flash_fwd(out, stats, q, k, v, B, T, NH, NKV, HS);
        return;
    }
    FQT_DT_DISPATCH(fqt_cuda.act, A, attn_fwd<A>((A *)out, stats, (const A *)q, (const A *)k,
                                                 (const A *)v, B, T, NH, NKV, HS));
}

void fqt_cuda_attention_bwd(void *dq, void *dk, void *dv, const void *dout, const void *out,
                            const float *stats, const void *q, const void *k, const void *v, int64_t B,
                            int64_t T, int64_t NH, int64_t NKV, int64_t HS) {
    FQT_ASSERT(NKV > 0 && NH % NKV == 0);
    if (B <= 0 || T <= 0) return;
    if (use_flash(HS)) {
        fqt_cuda_flash_bwd(dq, dk, dv, dout, out, stats, q, k, v, B, T, NH, NKV, HS);
        return;
    }
    FQT_DT_DISPATCH(fqt_cuda.act, A, attn_bwd<A>((A *)dq, (A *)dk, (A *)dv, (const A *)dout, stats,
                                                 (const A *)q, (const A *)k, (const A *)v, B, T, NH,
                                                 NKV, HS));
}
