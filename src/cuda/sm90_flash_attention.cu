/* cuda/sm90_flash_attention.cu — fused causal grouped-query attention on tensor cores, bf16
 * activations, head size 64 or 128. The default where it applies (attention.cu dispatches here;
 * FQT_CUDA_ATTN=cublas takes attention.cu's cuBLAS path). Oracle: cpu/ops_impl.h
 * attention_fwd/bwd, and the cuBLAS path.
 *
 * Flash attention (the published algorithm; written for this project, no code copied) with the
 * score blocks kept in registers: mma.sync m16n8k16 bf16 with FP32 accumulation; the operands
 * come from shared memory through ldmatrix, the tiles into shared memory through cp.async,
 * double-buffered. Tiles are stored with their 16-byte chunks XOR-swizzled by row, so the
 * eight rows of one 8x8 ldmatrix read fall in eight different bank groups. A warp owns 16
 * rows; the C fragment of a score block, repacked to bf16 pairs, is the A fragment of the next
 * product, so scores never touch memory.
 *
 * Forward: one CUDA block of 4 warps per (64-query tile, b, h), the longest tiles first. Over
 * the key tiles up to the diagonal an online softmax in FP32: running row max m of the raw
 * scores, p = 2^((s scale - m scale) log2 e), O and the sum rescaled when m grows; each thread
 * keeps partial row sums, added over the 4 threads of a row at the end. P is rounded to bf16
 * for P V (as flash attention does). stats = (m scale, 1 / sum), the layout of fqt/backend.h.
 * Backward, no atomics, three kernels. dot: D = rowsum(dO o O), a warp per row (equal to
 * rowsum(P o dP) in exact arithmetic, which the CPU forms). dq: per (64-query tile, b, h), over
 * the keys up to the diagonal, P recomputed from the stats, dP = dO V^T, dS = P (dP - D) scale
 * (rounded to bf16) and dQ += dS K. dkv: per (64-key tile, b, kv head),
 * warp w owning keys 16w..16w+15, over the G query heads and the query tiles from the diagonal
 * on, in that order: S^T = K Q^T, P^T, dP^T = V dO^T, dS^T, then dV += P^T dO, dK += dS^T Q in
 * registers. Every sum has one fixed order: deterministic, independent of timing.
 *
 * Differs from the CPU in the order of the dot products and sums (FP32, not double, for the
 * softmax sums and D), exp2f for expf, and P and dS rounded to bf16 for the tensor cores:
 * derived tolerances in tests/cuda/test_cuda_backend.c. */
#include "cuda/common.cuh"

#include <cuda_bf16.h>
#include <math.h>

#define FA_THREADS 128 /* 4 warps */
#define FA_TILE 64     /* query rows per forward / dq block, keys per dkv block */
#define FA_LOG2E 1.4426950408889634f

namespace {

__device__ __forceinline__ uint32_t fa_smem(const void *p) { return (uint32_t)__cvta_generic_to_shared(p); }

/* 16 (or 4) bytes global -> shared without the registers; zero-filled when !valid (then src is
 * not read). */
__device__ __forceinline__ void fa_cp16(void *dst, const void *src, bool valid) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(fa_smem(dst)), "l"(src),
                 "r"(valid ? 16 : 0));
}
__device__ __forceinline__ void fa_cp4(void *dst, const void *src, bool valid) {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(fa_smem(dst)), "l"(src),
                 "r"(valid ? 4 : 0));
}
__device__ __forceinline__ void fa_commit() { asm volatile("cp.async.commit_group;\n" ::); }
/* Wait until at most N committed groups are still in flight. */
template <int N> __device__ __forceinline__ void fa_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

__device__ __forceinline__ void fa_ldsm4(uint32_t r[4], uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}
__device__ __forceinline__ void fa_ldsm4t(uint32_t r[4], uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}
/* c[16x8] += a[16x16] b[16x8], bf16 in, FP32 accumulate. */
__device__ __forceinline__ void fa_mma(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
/* Two floats as a bf16 pair (RNE), lo in the low half: the element of the lower column. */
__device__ __forceinline__ uint32_t fa_pack(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t *>(&v);
}

/* Element offset of chunk ch (8 elements) of row r in a swizzled [rows][HS] tile. */
template <int HS> __device__ __forceinline__ int fa_off(int r, int ch) { return r * HS + ((ch ^ (r & 7)) << 3); }

/* Issue the copy of a [R, HS] bf16 tile (global row stride ld elements) into a swizzled shared
 * tile; rows >= valid are zeros. */
template <int R, int HS> __device__ __forceinline__ void fa_load(bf16_t *dst, const bf16_t *src, int64_t ld, int valid) {
    constexpr int CH = HS / 8;
    static_assert((R * CH) % FA_THREADS == 0, "tile copy shape");
#pragma unroll
    for (int j = 0; j < R * CH / FA_THREADS; j++) {
        const int i = threadIdx.x + j * FA_THREADS, r = i / CH, ch = i % CH;
        const bool ok = r < valid;
        fa_cp16(dst + fa_off<HS>(r, ch), ok ? src + (int64_t)r * ld + ch * 8 : src, ok);
    }
}

/* One step of the double-buffered key/value stream: when there is a next tile (R rows from
 * row kn), start its copy into kd, vd; then wait for the current tile's copy and sync. */
template <int R, int HS>
__device__ __forceinline__ void fa_kv_step(bf16_t *kd, bf16_t *vd, const bf16_t *kb, const bf16_t *vb, int64_t ks,
                                           int T, int kn, bool next) {
    if (next) {
        fa_load<R, HS>(kd, kb + (int64_t)kn * ks, ks, T - kn);
        fa_load<R, HS>(vd, vb + (int64_t)kn * ks, ks, T - kn);
        fa_commit();
        fa_wait<1>();
    } else {
        fa_wait<0>();
    }
    __syncthreads();
}

/* Zero an [N][4] accumulator (N C fragments). */
template <int N> __device__ __forceinline__ void fa_zero(float a[N][4]) {
#pragma unroll
    for (int nt = 0; nt < N; nt++) a[nt][0] = a[nt][1] = a[nt][2] = a[nt][3] = 0.0f;
}

/* A fragment of rows r0..r0+15, columns 16kk..16kk+15 of a swizzled [rows][HS] tile. */
template <int HS> __device__ __forceinline__ void fa_ldA(uint32_t a[4], const bf16_t *t, int r0, int kk, int lane) {
    fa_ldsm4(a, fa_smem(t + fa_off<HS>(r0 + (lane & 15), kk * 2 + (lane >> 4))));
}
/* B fragments of the n-tiles n0 and n0+8 at k-step kk, for B^T stored as a [n][HS] tile (the
 * tile's rows are the product's columns: K for Q K^T). b[0..1] tile n0, b[2..3] tile n0+8. */
template <int HS> __device__ __forceinline__ void fa_ldBt(uint32_t b[4], const bf16_t *t, int n0, int kk, int lane) {
    fa_ldsm4(b, fa_smem(t + fa_off<HS>(n0 + (lane & 7) + ((lane >> 4) << 3), kk * 2 + ((lane >> 3) & 1))));
}
/* B fragments of the n-tiles at columns c0 and c0+8, k rows k0..k0+15, for B stored as a
 * [k][HS] tile (V for P V). */
template <int HS> __device__ __forceinline__ void fa_ldB(uint32_t b[4], const bf16_t *t, int k0, int c0, int lane) {
    fa_ldsm4t(b, fa_smem(t + fa_off<HS>(k0 + (lane & 7) + (((lane >> 3) & 1) << 3), (c0 >> 3) + (lane >> 4))));
}

/* s[16][NK] = A[16][HS] B^T, B^T the [NK][HS] tile bt; A from registers (AREG) or from rows
 * ar0.. of the shared tile at. */
template <int HS, int NK, bool AREG>
__device__ __forceinline__ void fa_scores(float s[NK / 8][4], const uint32_t (*a)[4], const bf16_t *at, int ar0,
                                          const bf16_t *bt, int lane) {
    fa_zero<NK / 8>(s);
#pragma unroll
    for (int kk = 0; kk < HS / 16; kk++) {
        uint32_t af[4];
        if (AREG) af[0] = a[kk][0], af[1] = a[kk][1], af[2] = a[kk][2], af[3] = a[kk][3];
        else fa_ldA<HS>(af, at, ar0, kk, lane);
#pragma unroll
        for (int np = 0; np < NK / 16; np++) {
            uint32_t b[4];
            fa_ldBt<HS>(b, bt, np * 16, kk, lane);
            fa_mma(s[2 * np], af, b[0], b[1]);
            fa_mma(s[2 * np + 1], af, b[2], b[3]);
        }
    }
}

/* o[16][HS] += P[16][NK] B, P in C-fragment layout (rounded to bf16 here), B the [NK][HS] tile. */
template <int HS, int NK>
__device__ __forceinline__ void fa_pv(float o[HS / 8][4], const float p[NK / 8][4], const bf16_t *bt, int lane) {
#pragma unroll
    for (int j = 0; j < NK / 16; j++) {
        const uint32_t a[4] = {fa_pack(p[2 * j][0], p[2 * j][1]), fa_pack(p[2 * j][2], p[2 * j][3]),
                               fa_pack(p[2 * j + 1][0], p[2 * j + 1][1]), fa_pack(p[2 * j + 1][2], p[2 * j + 1][3])};
#pragma unroll
        for (int np = 0; np < HS / 16; np++) {
            uint32_t b[4];
            fa_ldB<HS>(b, bt, j * 16, np * 16, lane);
            fa_mma(o[2 * np], a, b[0], b[1]);
            fa_mma(o[2 * np + 1], a, b[2], b[3]);
        }
    }
}

/* Rows r and r+8 of a warp's [16][HS] FP32 accumulator (lane's share) times f[0], f[1], as bf16. */
template <int HS>
__device__ __forceinline__ void fa_store_rows(bf16_t *base, int64_t ld, const float o[HS / 8][4], const float f[2],
                                              int row, int T, int lane) {
#pragma unroll
    for (int i = 0; i < 2; i++) {
        if (row + 8 * i >= T) continue;
        bf16_t *p = base + (int64_t)(row + 8 * i) * ld + 2 * (lane & 3);
#pragma unroll
        for (int nt = 0; nt < HS / 8; nt++)
            *reinterpret_cast<uint32_t *>(p + nt * 8) = fa_pack(o[nt][2 * i] * f[i], o[nt][2 * i + 1] * f[i]);
    }
}

__device__ __forceinline__ float fa_quad_sum(float v) {
    v += __shfl_xor_sync(0xffffffffu, v, 1);
    return v + __shfl_xor_sync(0xffffffffu, v, 2);
}
__device__ __forceinline__ float fa_quad_max(float v) {
    v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 1));
    return fmaxf(v, __shfl_xor_sync(0xffffffffu, v, 2));
}

/* p = exp(s scale - m) with m the scaled row max: the one formula of forward and backward. */
__device__ __forceinline__ float fa_exp(float s, float scale, float m) { return exp2f(fmaf(s, scale, -m) * FA_LOG2E); }

} // namespace

/* ---- forward ----------------------------------------------------------------------------- */
template <int HS> struct fa_fwd_smem {
    bf16_t q[FA_TILE * HS], k[2][FA_TILE * HS], v[2][FA_TILE * HS];
};

template <int HS>
__global__ void __launch_bounds__(FA_THREADS) sm90_flash_fwd_kernel(bf16_t *out, float *stats, const bf16_t *q,
                                                                     const bf16_t *k, const bf16_t *v, int T,
                                                                     int NH, int NKV, float scale) {
    extern __shared__ __align__(128) unsigned char fa_raw[];
    fa_fwd_smem<HS> &sm = *reinterpret_cast<fa_fwd_smem<HS> *>(fa_raw);
    const int qt = gridDim.x - 1 - blockIdx.x, bh = blockIdx.y, b = bh / NH, h = bh % NH, kh = h / (NH / NKV);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int64_t qs = (int64_t)NH * HS, ks = (int64_t)NKV * HS;
    const int q0 = qt * FA_TILE, row = q0 + warp * 16 + (lane >> 2); /* this lane's rows: row, row + 8 */
    const bf16_t *kb = k + (int64_t)b * T * ks + (int64_t)kh * HS, *vb = v + (int64_t)b * T * ks + (int64_t)kh * HS;
    fa_load<FA_TILE, HS>(sm.q, q + ((int64_t)b * T + q0) * qs + (int64_t)h * HS, qs, T - q0);
    fa_load<FA_TILE, HS>(sm.k[0], kb, ks, T);
    fa_load<FA_TILE, HS>(sm.v[0], vb, ks, T);
    fa_commit();
    uint32_t qf[HS / 16][4];
    float o[HS / 8][4];
    fa_zero<HS / 8>(o);
    float mraw[2] = {-INFINITY, -INFINITY}, l[2] = {0.0f, 0.0f};
    const int nkt = qt + 1;
    for (int kt = 0; kt < nkt; kt++) {
        const int cur = kt & 1;
        fa_kv_step<FA_TILE, HS>(sm.k[cur ^ 1], sm.v[cur ^ 1], kb, vb, ks, T, (kt + 1) * FA_TILE, kt + 1 < nkt);
        if (kt == 0) {
#pragma unroll
            for (int kk = 0; kk < HS / 16; kk++) fa_ldA<HS>(qf[kk], sm.q, warp * 16, kk, lane);
        }
        float s[FA_TILE / 8][4];
        fa_scores<HS, FA_TILE, true>(s, qf, NULL, 0, sm.k[cur], lane);
        if (kt == nkt - 1) { /* the diagonal tile: keys after the query are -inf */
#pragma unroll
            for (int nt = 0; nt < FA_TILE / 8; nt++)
#pragma unroll
                for (int e = 0; e < 4; e++)
                    if (kt * FA_TILE + nt * 8 + 2 * (lane & 3) + (e & 1) > row + 8 * (e >> 1)) s[nt][e] = -INFINITY;
        }
        float mx[2] = {mraw[0], mraw[1]};
#pragma unroll
        for (int nt = 0; nt < FA_TILE / 8; nt++) {
            mx[0] = fmaxf(mx[0], fmaxf(s[nt][0], s[nt][1]));
            mx[1] = fmaxf(mx[1], fmaxf(s[nt][2], s[nt][3]));
        }
        float alpha[2], ms[2];
#pragma unroll
        for (int i = 0; i < 2; i++) {
            mx[i] = fa_quad_max(mx[i]); /* finite: key 0 of tile 0 precedes every query */
            ms[i] = mx[i] * scale;
            alpha[i] = fa_exp(mraw[i], scale, ms[i]); /* 0 on the first tile (mraw = -inf) */
            mraw[i] = mx[i];
        }
        float ps[2] = {0.0f, 0.0f};
#pragma unroll
        for (int nt = 0; nt < FA_TILE / 8; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                s[nt][e] = fa_exp(s[nt][e], scale, ms[e >> 1]);
                ps[e >> 1] += s[nt][e];
            }
#pragma unroll
        for (int i = 0; i < 2; i++) l[i] = l[i] * alpha[i] + ps[i];
#pragma unroll
        for (int nt = 0; nt < HS / 8; nt++) {
            o[nt][0] *= alpha[0], o[nt][1] *= alpha[0];
            o[nt][2] *= alpha[1], o[nt][3] *= alpha[1];
        }
        fa_pv<HS, FA_TILE>(o, s, sm.v[cur], lane);
        __syncthreads(); /* buffer cur is refilled two iterations on */
    }
    float inv[2];
#pragma unroll
    for (int i = 0; i < 2; i++) inv[i] = 1.0f / fa_quad_sum(l[i]);
    fa_store_rows<HS>(out + (int64_t)b * T * qs + (int64_t)h * HS, qs, o, inv, row, T, lane);
    if ((lane & 3) == 0)
#pragma unroll
        for (int i = 0; i < 2; i++)
            if (row + 8 * i < T) {
                float *st = stats + (((int64_t)b * NH + h) * T + row + 8 * i) * 2;
                st[0] = mraw[i] * scale;
                st[1] = inv[i];
            }
}

/* ---- backward: D = rowsum(dO o O) ---------------------------------------------------------- */
/* One warp per (b, t, h) row, HS / 32 products per lane, summed over the lanes in a fixed
 * butterfly (every lane gets the same bits). */
template <int HS>
__global__ void sm90_flash_dot_kernel(float *D, const bf16_t *dout, const bf16_t *out, int64_t rows, int T, int NH) {
    const int lane = threadIdx.x & 31;
    const int64_t row = blockIdx.x * (int64_t)(blockDim.x / 32) + threadIdx.x / 32; /* (b T + t) NH + h */
    if (row >= rows) return;
    const bf16_t *g = dout + row * HS + lane * (HS / 32), *o = out + row * HS + lane * (HS / 32);
    float acc = 0.0f;
#pragma unroll
    for (int e = 0; e < HS / 32; e++) acc += fqt_bf16_dec_i(g[e]) * fqt_bf16_dec_i(o[e]);
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, off);
    if (lane == 0) {
        const int64_t bt = row / NH, h = row % NH, b = bt / T, t = bt % T;
        D[(b * NH + h) * T + t] = acc;
    }
}

/* ---- backward: dQ ------------------------------------------------------------------------ */
/* Keys per tile: 64, or 32 at HS 128 (registers: Q, dO and dQ fragments are held throughout). */
template <int HS> struct fa_dq_cfg { static const int NK = HS == 128 ? 32 : 64; };
template <int HS> struct fa_dq_smem {
    bf16_t q[FA_TILE * HS], dO[FA_TILE * HS], k[2][fa_dq_cfg<HS>::NK * HS], v[2][fa_dq_cfg<HS>::NK * HS];
};

template <int HS>
__global__ void __launch_bounds__(FA_THREADS) sm90_flash_dq_kernel(bf16_t *dq, const float *Dq, const bf16_t *dout,
                                                                    const float *stats, const bf16_t *q,
                                                                    const bf16_t *k, const bf16_t *v, int T, int NH,
                                                                    int NKV, float scale) {
    constexpr int NK = fa_dq_cfg<HS>::NK;
    extern __shared__ __align__(128) unsigned char fa_raw[];
    fa_dq_smem<HS> &sm = *reinterpret_cast<fa_dq_smem<HS> *>(fa_raw);
    const int qt = gridDim.x - 1 - blockIdx.x, bh = blockIdx.y, b = bh / NH, h = bh % NH, kh = h / (NH / NKV);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int64_t qs = (int64_t)NH * HS, ks = (int64_t)NKV * HS;
    const int q0 = qt * FA_TILE, row = q0 + warp * 16 + (lane >> 2);
    const bf16_t *kb = k + (int64_t)b * T * ks + (int64_t)kh * HS, *vb = v + (int64_t)b * T * ks + (int64_t)kh * HS;
    const int64_t qoff = ((int64_t)b * T + q0) * qs + (int64_t)h * HS;
    fa_load<FA_TILE, HS>(sm.q, q + qoff, qs, T - q0);
    fa_load<FA_TILE, HS>(sm.dO, dout + qoff, qs, T - q0);
    fa_load<NK, HS>(sm.k[0], kb, ks, T);
    fa_load<NK, HS>(sm.v[0], vb, ks, T);
    fa_commit();
    float m[2], inv[2], D[2];
#pragma unroll
    for (int i = 0; i < 2; i++) { /* rows past T: inv 0, so P = 0 */
        const bool ok = row + 8 * i < T;
        const int64_t sr = ((int64_t)b * NH + h) * T + (ok ? row + 8 * i : 0);
        m[i] = ok ? stats[2 * sr] : 0.0f;
        inv[i] = ok ? stats[2 * sr + 1] : 0.0f;
        D[i] = ok ? Dq[sr] : 0.0f;
    }
    uint32_t qf[HS / 16][4], df[HS / 16][4];
    float acc[HS / 8][4];
    fa_zero<HS / 8>(acc);
    const int nkt = (min(q0 + FA_TILE, T) + NK - 1) / NK;
    for (int kt = 0; kt < nkt; kt++) {
        const int cur = kt & 1;
        fa_kv_step<NK, HS>(sm.k[cur ^ 1], sm.v[cur ^ 1], kb, vb, ks, T, (kt + 1) * NK, kt + 1 < nkt);
        if (kt == 0) {
#pragma unroll
            for (int kk = 0; kk < HS / 16; kk++) {
                fa_ldA<HS>(qf[kk], sm.q, warp * 16, kk, lane);
                fa_ldA<HS>(df[kk], sm.dO, warp * 16, kk, lane);
            }
        }
        float s[NK / 8][4], dp[NK / 8][4];
        fa_scores<HS, NK, true>(s, qf, NULL, 0, sm.k[cur], lane);
        fa_scores<HS, NK, true>(dp, df, NULL, 0, sm.v[cur], lane);
        const bool diag = kt * NK + NK - 1 > q0 + warp * 16;
#pragma unroll
        for (int nt = 0; nt < NK / 8; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int i = e >> 1;
                const bool on = !diag || kt * NK + nt * 8 + 2 * (lane & 3) + (e & 1) <= row + 8 * i;
                const float p = on ? fa_exp(s[nt][e], scale, m[i]) * inv[i] : 0.0f;
                s[nt][e] = p * (dp[nt][e] - D[i]) * scale;
            }
        fa_pv<HS, NK>(acc, s, sm.k[cur], lane);
        __syncthreads();
    }
    const float one[2] = {1.0f, 1.0f};
    fa_store_rows<HS>(dq + (int64_t)b * T * qs + (int64_t)h * HS, qs, acc, one, row, T, lane);
}

/* ---- backward: dK and dV ----------------------------------------------------------------- */
/* Queries per tile: 64, or 32 at HS 128, where the K and V fragments are read from shared
 * memory each time instead of being held (registers: dK and dV accumulate throughout). */
template <int HS> struct fa_dkv_cfg {
    static const int NQ = HS == 128 ? 32 : 64;
    static const bool KV_REGS = HS != 128;
};
template <int HS> struct fa_dkv_smem {
    bf16_t k[FA_TILE * HS], v[FA_TILE * HS], q[2][fa_dkv_cfg<HS>::NQ * HS], dO[2][fa_dkv_cfg<HS>::NQ * HS];
    float st[2][2 * fa_dkv_cfg<HS>::NQ], D[2][fa_dkv_cfg<HS>::NQ];
};

template <int HS>
__global__ void __launch_bounds__(FA_THREADS) sm90_flash_dkv_kernel(bf16_t *dk, bf16_t *dv, const float *Dq,
                                                                     const bf16_t *dout, const float *stats,
                                                                     const bf16_t *q, const bf16_t *k,
                                                                     const bf16_t *v, int T, int NH, int NKV,
                                                                     float scale) {
    constexpr int NQ = fa_dkv_cfg<HS>::NQ;
    constexpr bool KVR = fa_dkv_cfg<HS>::KV_REGS;
    extern __shared__ __align__(128) unsigned char fa_raw[];
    fa_dkv_smem<HS> &sm = *reinterpret_cast<fa_dkv_smem<HS> *>(fa_raw);
    const int kt = blockIdx.x, bk = blockIdx.y, b = bk / NKV, kh = bk % NKV, G = NH / NKV;
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    const int64_t qs = (int64_t)NH * HS, ks = (int64_t)NKV * HS;
    const int k0 = kt * FA_TILE, key = k0 + warp * 16 + (lane >> 2); /* this lane's keys: key, key + 8 */
    const int64_t koff = ((int64_t)b * T + k0) * ks + (int64_t)kh * HS;
    fa_load<FA_TILE, HS>(sm.k, k + koff, ks, T - k0);
    fa_load<FA_TILE, HS>(sm.v, v + koff, ks, T - k0);
    const int qt0 = k0 / NQ, nq = (T + NQ - 1) / NQ - qt0, nit = G * nq;
    /* Query tile it: head kh G + it / nq, rows from (qt0 + it % nq) NQ; with its stats and D. */
    auto load_q = [&](int it, int buf) {
        const int h = kh * G + it / nq, qa = (qt0 + it % nq) * NQ;
        const int64_t qoff = ((int64_t)b * T + qa) * qs + (int64_t)h * HS, srow = ((int64_t)b * NH + h) * T + qa;
        fa_load<NQ, HS>(sm.q[buf], q + qoff, qs, T - qa);
        fa_load<NQ, HS>(sm.dO[buf], dout + qoff, qs, T - qa);
        for (int i = threadIdx.x; i < 3 * NQ; i += FA_THREADS) {
            const bool st = i < 2 * NQ, ok = qa + (st ? i / 2 : i - 2 * NQ) < T;
            if (st) fa_cp4(&sm.st[buf][i], ok ? stats + 2 * srow + i : stats, ok);
            else fa_cp4(&sm.D[buf][i - 2 * NQ], ok ? Dq + srow + (i - 2 * NQ) : Dq, ok);
        }
        fa_commit();
    };
    load_q(0, 0);
    uint32_t kf[KVR ? HS / 16 : 1][4], vf[KVR ? HS / 16 : 1][4];
    float dka[HS / 8][4], dva[HS / 8][4];
    fa_zero<HS / 8>(dka);
    fa_zero<HS / 8>(dva);
    for (int it = 0; it < nit; it++) {
        const int cur = it & 1, qa = (qt0 + it % nq) * NQ;
        if (it + 1 < nit) {
            load_q(it + 1, cur ^ 1);
            fa_wait<1>();
        } else {
            fa_wait<0>();
        }
        __syncthreads();
        if (KVR && it == 0) {
#pragma unroll
            for (int kk = 0; kk < (KVR ? HS / 16 : 0); kk++) {
                fa_ldA<HS>(kf[kk], sm.k, warp * 16, kk, lane);
                fa_ldA<HS>(vf[kk], sm.v, warp * 16, kk, lane);
            }
        }
        float s[NQ / 8][4], dp[NQ / 8][4]; /* S^T, dP^T: [16 keys][NQ queries] */
        fa_scores<HS, NQ, KVR>(s, kf, sm.k, warp * 16, sm.q[cur], lane);
        fa_scores<HS, NQ, KVR>(dp, vf, sm.v, warp * 16, sm.dO[cur], lane);
        const bool diag = qa < k0 + warp * 16 + 15;
#pragma unroll
        for (int nt = 0; nt < NQ / 8; nt++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int c = nt * 8 + 2 * (lane & 3) + (e & 1); /* query qa + c; rows past T: inv 0 */
                const bool on = !diag || key + 8 * (e >> 1) <= qa + c;
                const float p = on ? fa_exp(s[nt][e], scale, sm.st[cur][2 * c]) * sm.st[cur][2 * c + 1] : 0.0f;
                s[nt][e] = p;
                dp[nt][e] = p * (dp[nt][e] - sm.D[cur][c]) * scale;
            }
        fa_pv<HS, NQ>(dva, s, sm.dO[cur], lane);
        fa_pv<HS, NQ>(dka, dp, sm.q[cur], lane);
        __syncthreads();
    }
    const float one[2] = {1.0f, 1.0f};
    fa_store_rows<HS>(dk + (int64_t)b * T * ks + (int64_t)kh * HS, ks, dka, one, key, T, lane);
    fa_store_rows<HS>(dv + (int64_t)b * T * ks + (int64_t)kh * HS, ks, dva, one, key, T, lane);
}

/* ---- launchers --------------------------------------------------------------------------- */
/* The kernel's dynamic shared-memory limit, raised once per kernel (its size is a constant of
 * the kernel; kernels of one signature share a type, so the record is by address). */
template <typename K> static void fa_smem_attr(K kernel, size_t bytes) {
    static const void *done[8];
    static int ndone;
    for (int i = 0; i < ndone; i++)
        if (done[i] == (const void *)kernel) return;
    FQT_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
    if (ndone < 8) done[ndone++] = (const void *)kernel;
}

template <int HS> static void fa_fwd(void *out, float *stats, const void *q, const void *k, const void *v,
                                     int64_t B, int64_t T, int64_t NH, int64_t NKV) {
    const size_t sm = sizeof(fa_fwd_smem<HS>);
    fa_smem_attr(sm90_flash_fwd_kernel<HS>, sm);
    dim3 grid((unsigned)((T + FA_TILE - 1) / FA_TILE), (unsigned)(B * NH));
    sm90_flash_fwd_kernel<HS><<<grid, FA_THREADS, sm>>>((bf16_t *)out, stats, (const bf16_t *)q, (const bf16_t *)k,
                                                        (const bf16_t *)v, (int)T, (int)NH, (int)NKV,
                                                        (float)(1.0 / sqrt((double)HS)));
    FQT_CUDA_LAUNCHED();
}

template <int HS> static void fa_bwd(void *dq, void *dk, void *dv, const void *dout, const void *out,
                                     const float *stats, const void *q, const void *k, const void *v, int64_t B,
                                     int64_t T, int64_t NH, int64_t NKV) {
    const float scale = (float)(1.0 / sqrt((double)HS));
    float *D = (float *)fqt_cuda_scratch(FQT_SCR_ATT_DS, (size_t)(B * NH * T) * sizeof(float));
    const int64_t rows = B * T * NH;
    sm90_flash_dot_kernel<HS><<<fqt_cuda_blocks(rows * 32, 256), 256>>>(D, (const bf16_t *)dout, (const bf16_t *)out,
                                                                      rows, (int)T, (int)NH);
    FQT_CUDA_LAUNCHED();
    const size_t s1 = sizeof(fa_dq_smem<HS>), s2 = sizeof(fa_dkv_smem<HS>);
    fa_smem_attr(sm90_flash_dq_kernel<HS>, s1);
    fa_smem_attr(sm90_flash_dkv_kernel<HS>, s2);
    const unsigned nt = (unsigned)((T + FA_TILE - 1) / FA_TILE);
    sm90_flash_dq_kernel<HS><<<dim3(nt, (unsigned)(B * NH)), FA_THREADS, s1>>>(
        (bf16_t *)dq, D, (const bf16_t *)dout, stats, (const bf16_t *)q, (const bf16_t *)k, (const bf16_t *)v,
        (int)T, (int)NH, (int)NKV, scale);
    FQT_CUDA_LAUNCHED();
    sm90_flash_dkv_kernel<HS><<<dim3(nt, (unsigned)(B * NKV)), FA_THREADS, s2>>>(
        (bf16_t *)dk, (bf16_t *)dv, D, (const bf16_t *)dout, stats, (const bf16_t *)q, (const bf16_t *)k,
        (const bf16_t *)v, (int)T, (int)NH, (int)NKV, scale);
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

void fqt_cuda_flash_bwd(void *dq, void *dk, void *dv, const void *dout, const void *out, const float *stats,
                        const void *q, const void *k, const void *v, int64_t B, int64_t T, int64_t NH, int64_t NKV,
                        int64_t HS) {
    if (HS == 64) fa_bwd<64>(dq, dk, dv, dout, out, stats, q, k, v, B, T, NH, NKV);
    else fa_bwd<128>(dq, dk, dv, dout, out, stats, q, k, v, B, T, NH, NKV);
}
