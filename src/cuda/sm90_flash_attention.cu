/* cuda/sm90_flash_attention.cu — fused causal attention on tensor cores (WMMA bf16 16x16x16,
 * FP32 accumulation) for bf16 activations and head size 64 or 128. Opt-in: FQT_CUDA_ATTN=flash
 * (attention.cu dispatches here); oracle: cpu/ops_impl.h attention_fwd/bwd, and the cuBLAS
 * path of attention.cu.
 *
 * Forward: one CUDA block per (64-query tile, b, h), 4 warps of 16 query rows; key/value tiles
 * of 64 are streamed through shared memory up to the diagonal; online softmax in FP32 (row max
 * m and sum l, rescaled per tile), P rounded to bf16 for the P V product (as flash attention
 * does). stats = (m, 1/l) in the layout of fqt/backend.h.
 * Backward, without atomics: kernel 1 per query tile recomputes P = exp(s - m) / l from the
 * stats, makes the row dot D = sum P dP (pass 1 over the keys), then dS = P (dP - D) scale and
 * dQ = dS K (pass 2); kernel 2 per (key tile, b, kv head) walks the query tiles of its G query
 * heads in a fixed order and accumulates dK = sum dS^T Q and dV = sum P^T dO in shared memory.
 * Every sum has a fixed order: deterministic. Written for this project (flash attention's
 * published algorithm; no code copied). */
#include "cuda/common.cuh"

#include <cuda_bf16.h>
#include <mma.h>

using namespace nvcuda;

#define FA_Q 64  /* query rows per CUDA block */
#define FA_K 64  /* keys per tile */
#define FA_WARPS 4

typedef __nv_bfloat16 fa_bf16;

__device__ __forceinline__ float fa_ld(const fa_bf16 *p) { return __bfloat162float(*p); }

/* Cooperative copy of a [64, HS] bf16 tile (row stride ld elements) into shared memory, rows
 * past `valid` zero. 16-byte loads (HS and ld multiples of 8). */
template <int HS>
__device__ void fa_load_tile(fa_bf16 *dst, const fa_bf16 *src, int64_t ld, int valid) {
    constexpr int V = HS / 8;
    for (int i = threadIdx.x; i < 64 * V; i += blockDim.x) {
        const int r = i / V, c = (i % V) * 8;
        uint4 u = make_uint4(0, 0, 0, 0);
        if (r < valid) u = *(const uint4 *)(src + (int64_t)r * ld + c);
        *(uint4 *)(dst + r * HS + c) = u;
    }
}

/* S[16][64] (float, ld 64) = A[16][HS] (bf16, ld lda) x B[64][HS]^T (bf16, ld HS), one warp. */
template <int HS>
__device__ void fa_mm_abt(float *S, const fa_bf16 *A, int lda, const fa_bf16 *B) {
    for (int n = 0; n < 4; n++) {
        wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
        wmma::fill_fragment(acc, 0.0f);
        for (int k = 0; k < HS / 16; k++) {
            wmma::fragment<wmma::matrix_a, 16, 16, 16, fa_bf16, wmma::row_major> a;
            wmma::fragment<wmma::matrix_b, 16, 16, 16, fa_bf16, wmma::col_major> b;
            wmma::load_matrix_sync(a, A + k * 16, lda);
            wmma::load_matrix_sync(b, B + n * 16 * HS + k * 16, HS);
            wmma::mma_sync(acc, a, b, acc);
        }
        wmma::store_matrix_sync(S + n * 16, acc, 64, wmma::mem_row_major);
    }
}

/* C[16][NC] (float, ld ldc) += A[16][KD] (bf16, ld lda, row-major or its transpose) x B[KD][NC]
 * (bf16, ld ldb, row-major), one warp. TA: A is stored transposed (A^T row-major: col_major). */
template <int KD, int NC, bool TA>
__device__ void fa_mm_acc(float *C, int ldc, const fa_bf16 *A, int lda, const fa_bf16 *B, int ldb) {
    for (int n = 0; n < NC / 16; n++) {
        wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
        wmma::load_matrix_sync(acc, C + n * 16, ldc, wmma::mem_row_major);
        for (int k = 0; k < KD / 16; k++) {
            wmma::fragment<wmma::matrix_b, 16, 16, 16, fa_bf16, wmma::row_major> b;
            wmma::load_matrix_sync(b, B + k * 16 * ldb + n * 16, ldb);
            if (TA) {
                wmma::fragment<wmma::matrix_a, 16, 16, 16, fa_bf16, wmma::col_major> a;
                wmma::load_matrix_sync(a, A + k * 16 * lda, lda);
                wmma::mma_sync(acc, a, b, acc);
            } else {
                wmma::fragment<wmma::matrix_a, 16, 16, 16, fa_bf16, wmma::row_major> a;
                wmma::load_matrix_sync(a, A + k * 16, lda);
                wmma::mma_sync(acc, a, b, acc);
            }
        }
        wmma::store_matrix_sync(C + n * 16, acc, ldc, wmma::mem_row_major);
    }
}

template <int HS> struct fa_fwd_smem {
    fa_bf16 q[FA_Q * HS], k[FA_K * HS], v[FA_K * HS];
    float s[FA_WARPS][16 * 64];
    fa_bf16 p[FA_WARPS][16 * 64];
    float o[FA_WARPS][16 * HS];
    float m[FA_Q], l[FA_Q];
};

template <int HS>
__global__ void __launch_bounds__(128) sm90_flash_fwd_kernel(fa_bf16 *out, float *stats, const fa_bf16 *q,
                                                              const fa_bf16 *k, const fa_bf16 *v, int T, int NH,
                                                              int NKV, float scale) {
    extern __shared__ __align__(128) unsigned char fa_raw[];
    fa_fwd_smem<HS> &sm = *reinterpret_cast<fa_fwd_smem<HS> *>(fa_raw);
    const int qt = blockIdx.x, bh = blockIdx.y, b = bh / NH, h = bh % NH, kh = h / (NH / NKV);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int64_t qs = (int64_t)NH * HS, ks = (int64_t)NKV * HS;
    const int q0 = qt * FA_Q, qvalid = min(FA_Q, T - q0);
    const fa_bf16 *qb = q + ((int64_t)b * T + q0) * qs + (int64_t)h * HS;
    fa_load_tile<HS>(sm.q, qb, qs, qvalid);
    for (int i = threadIdx.x; i < FA_WARPS * 16 * HS; i += blockDim.x) (&sm.o[0][0])[i] = 0.0f;
    if (threadIdx.x < FA_Q) { sm.m[threadIdx.x] = -INFINITY; sm.l[threadIdx.x] = 0.0f; }
    const int row = lane / 2, half = lane % 2, qrow = warp * 16 + row, t = q0 + qrow;
    float *S = sm.s[warp];
    fa_bf16 *P = sm.p[warp];
    float *O = sm.o[warp];
    const int last_kt = (q0 + qvalid - 1) / FA_K;
    for (int kt = 0; kt <= last_kt; kt++) {
        const int k0 = kt * FA_K, kvalid = min(FA_K, T - k0);
        __syncthreads();
        fa_load_tile<HS>(sm.k, k + ((int64_t)b * T + k0) * ks + (int64_t)kh * HS, ks, kvalid);
        fa_load_tile<HS>(sm.v, v + ((int64_t)b * T + k0) * ks + (int64_t)kh * HS, ks, kvalid);
        __syncthreads();
        fa_mm_abt<HS>(S, sm.q + warp * 16 * HS, HS, sm.k);
        __syncwarp();
        /* online softmax: lane (row, half) owns 32 scores of its row */
        float mx = -INFINITY;
        for (int c = half * 32; c < half * 32 + 32; c++) {
            const int s = k0 + c;
            const float x = (s <= t && c < kvalid) ? S[row * 64 + c] * scale : -INFINITY;
            S[row * 64 + c] = x;
            mx = fmaxf(mx, x);
        }
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        const float m_old = sm.m[qrow], m_new = fmaxf(m_old, mx);
        float sum = 0.0f;
        for (int c = half * 32; c < half * 32 + 32; c++) {
            const float x = S[row * 64 + c];
            const float e = x == -INFINITY ? 0.0f : expf(x - m_new);
            P[row * 64 + c] = __float2bfloat16_rn(e);
            sum += e;
        }
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
        const float alpha = m_old == -INFINITY ? 0.0f : expf(m_old - m_new);
        for (int d = half * (HS / 2); d < half * (HS / 2) + HS / 2; d++) O[row * HS + d] *= alpha;
        __syncwarp();
        if (half == 0) {
            sm.m[qrow] = m_new;
            sm.l[qrow] = sm.l[qrow] * alpha + sum;
        }
        __syncwarp();
        fa_mm_acc<64, HS, false>(O, HS, P, 64, sm.v, HS);
        __syncwarp();
    }
    __syncthreads();
    if (t < T) {
        const float l = sm.l[qrow], inv = 1.0f / l;
        fa_bf16 *ob = out + ((int64_t)b * T + t) * qs + (int64_t)h * HS;
        for (int d = half * (HS / 2); d < half * (HS / 2) + HS / 2; d++) ob[d] = __float2bfloat16_rn(O[row * HS + d] * inv);
        if (half == 0) {
            float *st = stats + (((int64_t)b * NH + h) * T + t) * 2;
            st[0] = sm.m[qrow];
            st[1] = inv;
        }
    }
}

/* ---- backward --------------------------------------------------------------------------- */
template <int HS> struct fa_dq_smem {
    fa_bf16 q[FA_Q * HS], dO[FA_Q * HS], k[FA_K * HS], v[FA_K * HS];
    float s[FA_WARPS][16 * 64], dp[FA_WARPS][16 * 64];
    fa_bf16 ds[FA_WARPS][16 * 64];
    float dq[FA_WARPS][16 * HS];
    float D[FA_Q];
};

/* Scores of the warp's 16 rows against a key tile: S = scale q k^T (masked to -inf), P = exp(S-m) inv. */
template <int HS>
__global__ void __launch_bounds__(128) sm90_flash_dq_kernel(fa_bf16 *dq, float *Dout, const fa_bf16 *dout,
                                                             const float *stats, const fa_bf16 *q, const fa_bf16 *k,
                                                             const fa_bf16 *v, int T, int NH, int NKV, float scale) {
    extern __shared__ __align__(128) unsigned char fa_raw[];
    fa_dq_smem<HS> &sm = *reinterpret_cast<fa_dq_smem<HS> *>(fa_raw);
    const int qt = blockIdx.x, bh = blockIdx.y, b = bh / NH, h = bh % NH, kh = h / (NH / NKV);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int64_t qs = (int64_t)NH * HS, ks = (int64_t)NKV * HS;
    const int q0 = qt * FA_Q, qvalid = min(FA_Q, T - q0);
    fa_load_tile<HS>(sm.q, q + ((int64_t)b * T + q0) * qs + (int64_t)h * HS, qs, qvalid);
    fa_load_tile<HS>(sm.dO, dout + ((int64_t)b * T + q0) * qs + (int64_t)h * HS, qs, qvalid);
    for (int i = threadIdx.x; i < FA_WARPS * 16 * HS; i += blockDim.x) (&sm.dq[0][0])[i] = 0.0f;
    const int row = lane / 2, half = lane % 2, qrow = warp * 16 + row, t = q0 + qrow;
    const float *st = stats + (((int64_t)b * NH + h) * T + min(t, T - 1)) * 2;
    const float mrow = st[0], inv = st[1];
    float *S = sm.s[warp], *dP = sm.dp[warp];
    fa_bf16 *dS = sm.ds[warp];
    const int last_kt = (q0 + qvalid - 1) / FA_K;
    float Dsum = 0.0f;
    for (int pass = 0; pass < 2; pass++) {
        if (pass == 1) {
            Dsum += __shfl_xor_sync(0xffffffffu, Dsum, 1);
            if (half == 0) sm.D[qrow] = Dsum;
        }
        for (int kt = 0; kt <= last_kt; kt++) {
            const int k0 = kt * FA_K, kvalid = min(FA_K, T - k0);
            __syncthreads();
            fa_load_tile<HS>(sm.k, k + ((int64_t)b * T + k0) * ks + (int64_t)kh * HS, ks, kvalid);
            fa_load_tile<HS>(sm.v, v + ((int64_t)b * T + k0) * ks + (int64_t)kh * HS, ks, kvalid);
            __syncthreads();
            fa_mm_abt<HS>(S, sm.q + warp * 16 * HS, HS, sm.k);
            fa_mm_abt<HS>(dP, sm.dO + warp * 16 * HS, HS, sm.v);
            __syncwarp();
            const float Drow = pass ? sm.D[qrow] : 0.0f;
            for (int c = half * 32; c < half * 32 + 32; c++) {
                const int s = k0 + c;
                const bool on = s <= t && c < kvalid && t < T;
                const float p = on ? expf(S[row * 64 + c] * scale - mrow) * inv : 0.0f;
                if (!pass) Dsum += p * dP[row * 64 + c];
                else dS[row * 64 + c] = __float2bfloat16_rn(p * (dP[row * 64 + c] - Drow) * scale);
            }
            __syncwarp();
            if (pass) fa_mm_acc<64, HS, false>(sm.dq[warp], HS, dS, 64, sm.k, HS);
            __syncwarp();
        }
    }
    __syncthreads();
    if (t < T) {
        fa_bf16 *o = dq + ((int64_t)b * T + t) * qs + (int64_t)h * HS;
        for (int d = half * (HS / 2); d < half * (HS / 2) + HS / 2; d++) o[d] = __float2bfloat16_rn(sm.dq[warp][row * HS + d]);
        if (half == 0) Dout[((int64_t)b * NH + h) * T + t] = sm.D[qrow];
    }
}

template <int HS> struct fa_dkv_smem {
    fa_bf16 k[FA_K * HS], v[FA_K * HS], q[FA_Q * HS], dO[FA_Q * HS];
    float s[FA_WARPS][16 * 64], dp[FA_WARPS][16 * 64];
    fa_bf16 pT[FA_WARPS][16 * 64], dsT[FA_WARPS][16 * 64];
    float dk[FA_WARPS][16 * HS], dv[FA_WARPS][16 * HS];
};

/* Warp w owns keys 16w..16w+15 of the tile: it computes the transposed blocks S^T = k q^T for
 * its keys against each query tile, P^T, dP^T = v dO^T, dS^T, and accumulates
 * dV += P^T dO, dK += dS^T Q, over the G query heads and the query tiles in order. */
template <int HS>
__global__ void __launch_bounds__(128) sm90_flash_dkv_kernel(fa_bf16 *dk, fa_bf16 *dv, const float *Dq,
                                                              const fa_bf16 *dout, const float *stats,
                                                              const fa_bf16 *q, const fa_bf16 *k,
                                                              const fa_bf16 *v, int T, int NH, int NKV, float scale) {
    extern __shared__ __align__(128) unsigned char fa_raw[];
    fa_dkv_smem<HS> &sm = *reinterpret_cast<fa_dkv_smem<HS> *>(fa_raw);
    const int kt = blockIdx.x, bk = blockIdx.y, b = bk / NKV, kh = bk % NKV, G = NH / NKV;
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    const int64_t qs = (int64_t)NH * HS, ks = (int64_t)NKV * HS;
    const int k0 = kt * FA_K, kvalid = min(FA_K, T - k0);
    fa_load_tile<HS>(sm.k, k + ((int64_t)b * T + k0) * ks + (int64_t)kh * HS, ks, kvalid);
    fa_load_tile<HS>(sm.v, v + ((int64_t)b * T + k0) * ks + (int64_t)kh * HS, ks, kvalid);
    for (int i = threadIdx.x; i < FA_WARPS * 16 * HS; i += blockDim.x) {
        (&sm.dk[0][0])[i] = 0.0f;
        (&sm.dv[0][0])[i] = 0.0f;
    }
    const int krow = lane / 2, half = lane % 2, s = k0 + warp * 16 + krow;
    float *ST = sm.s[warp], *dPT = sm.dp[warp];
    const int nqt = (T + FA_Q - 1) / FA_Q;
    for (int hh = 0; hh < G; hh++) {
        const int h = kh * G + hh;
        for (int qt = k0 / FA_Q; qt < nqt; qt++) {
            const int q0 = qt * FA_Q, qvalid = min(FA_Q, T - q0);
            __syncthreads();
            fa_load_tile<HS>(sm.q, q + ((int64_t)b * T + q0) * qs + (int64_t)h * HS, qs, qvalid);
            fa_load_tile<HS>(sm.dO, dout + ((int64_t)b * T + q0) * qs + (int64_t)h * HS, qs, qvalid);
            __syncthreads();
            fa_mm_abt<HS>(ST, sm.k + warp * 16 * HS, HS, sm.q);   /* [16 keys][64 queries] */
            fa_mm_abt<HS>(dPT, sm.v + warp * 16 * HS, HS, sm.dO);
            __syncwarp();
            for (int c = half * 32; c < half * 32 + 32; c++) {
                const int t = q0 + c;
                const bool on = s <= t && t < T && s < T;
                float p = 0.0f, ds = 0.0f;
                if (on) {
                    const float *st = stats + (((int64_t)b * NH + h) * T + t) * 2;
                    p = expf(ST[krow * 64 + c] * scale - st[0]) * st[1];
                    ds = p * (dPT[krow * 64 + c] - Dq[((int64_t)b * NH + h) * T + t]) * scale;
                }
                sm.pT[warp][krow * 64 + c] = __float2bfloat16_rn(p);
                sm.dsT[warp][krow * 64 + c] = __float2bfloat16_rn(ds);
            }
            __syncwarp();
            fa_mm_acc<64, HS, false>(sm.dv[warp], HS, sm.pT[warp], 64, sm.dO, HS);
            fa_mm_acc<64, HS, false>(sm.dk[warp], HS, sm.dsT[warp], 64, sm.q, HS);
            __syncwarp();
        }
    }
    __syncthreads();
    if (s < T) {
        fa_bf16 *okk = dk + ((int64_t)b * T + s) * ks + (int64_t)kh * HS;
        fa_bf16 *ovv = dv + ((int64_t)b * T + s) * ks + (int64_t)kh * HS;
        for (int d = half * (HS / 2); d < half * (HS / 2) + HS / 2; d++) {
            okk[d] = __float2bfloat16_rn(sm.dk[warp][krow * HS + d]);
            ovv[d] = __float2bfloat16_rn(sm.dv[warp][krow * HS + d]);
        }
    }
}

template <int HS> static void fa_fwd(void *out, float *stats, const void *q, const void *k, const void *v,
                                     int64_t B, int64_t T, int64_t NH, int64_t NKV) {
    const size_t sm = sizeof(fa_fwd_smem<HS>);
    FQT_CUDA_CHECK(cudaFuncSetAttribute(sm90_flash_fwd_kernel<HS>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)sm));
    dim3 grid((unsigned)((T + FA_Q - 1) / FA_Q), (unsigned)(B * NH));
    sm90_flash_fwd_kernel<HS><<<grid, 128, sm>>>((fa_bf16 *)out, stats, (const fa_bf16 *)q, (const fa_bf16 *)k,
                                                 (const fa_bf16 *)v, (int)T, (int)NH, (int)NKV,
                                                 (float)(1.0 / sqrt((double)HS)));
    FQT_CUDA_LAUNCHED();
}

template <int HS> static void fa_bwd(void *dq, void *dk, void *dv, const void *dout, const float *stats,
                                     const void *q, const void *k, const void *v, int64_t B, int64_t T,
                                     int64_t NH, int64_t NKV) {
    const float scale = (float)(1.0 / sqrt((double)HS));
    float *D = (float *)fqt_cuda_scratch(FQT_SCR_ATT_DS, (size_t)(B * NH * T) * sizeof(float));
    const size_t s1 = sizeof(fa_dq_smem<HS>), s2 = sizeof(fa_dkv_smem<HS>);
    FQT_CUDA_CHECK(cudaFuncSetAttribute(sm90_flash_dq_kernel<HS>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)s1));
    FQT_CUDA_CHECK(cudaFuncSetAttribute(sm90_flash_dkv_kernel<HS>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)s2));
    dim3 g1((unsigned)((T + FA_Q - 1) / FA_Q), (unsigned)(B * NH));
    sm90_flash_dq_kernel<HS><<<g1, 128, s1>>>((fa_bf16 *)dq, D, (const fa_bf16 *)dout, stats, (const fa_bf16 *)q,
                                              (const fa_bf16 *)k, (const fa_bf16 *)v, (int)T, (int)NH, (int)NKV, scale);
    FQT_CUDA_LAUNCHED();
    dim3 g2((unsigned)((T + FA_K - 1) / FA_K), (unsigned)(B * NKV));
    sm90_flash_dkv_kernel<HS><<<g2, 128, s2>>>((fa_bf16 *)dk, (fa_bf16 *)dv, D, (const fa_bf16 *)dout, stats,
                                               (const fa_bf16 *)q, (const fa_bf16 *)k, (const fa_bf16 *)v, (int)T,
                                               (int)NH, (int)NKV, scale);
    FQT_CUDA_LAUNCHED();
}

bool fqt_cuda_flash_supported(int64_t HS) {
    return fqt_cuda.act == FQT_DT_BF16 && fqt_cuda.cc_major >= 8 && (HS == 64 || HS == 128);
}

void fqt_cuda_flash_fwd(void *out, float *stats, const void *q, const void *k, const void *v, int64_t B,
                        int64_t T, int64_t NH, int64_t NKV, int64_t HS) {
    if (HS == 64) fa_fwd<64>(out, stats, q, k, v, B, T, NH, NKV);
    else fa_fwd<128>(out, stats, q, k, v, B, T, NH, NKV);
}

void fqt_cuda_flash_bwd(void *dq, void *dk, void *dv, const void *dout, const float *stats, const void *q,
                        const void *k, const void *v, int64_t B, int64_t T, int64_t NH, int64_t NKV, int64_t HS) {
    if (HS == 64) fa_bwd<64>(dq, dk, dv, dout, stats, q, k, v, B, T, NH, NKV);
    else fa_bwd<128>(dq, dk, dv, dout, stats, q, k, v, B, T, NH, NKV);
}
