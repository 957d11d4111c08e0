/* cuda/quantize.cu — block quantization on the GPU, bit-identical to fqt_quantize
 * (formats/quant.c) for every format, both axes and both roundings.
 *
 * One source: the element codecs, the block-scale rule and the Philox bits all come from
 * formats/codec.h, compiled here for the device. Stages (all on the default stream):
 *   1. tensor amax (NVFP4 §5.3): per-block maxima of |x| over the finite inputs, then the
 *      last block to finish combines them; max is exact in any order. s_enc, s_dec, the pre
 *      factor and the stored s_dec_out as fqt_tscale_i (tiny tensors included); s_dec_out goes
 *      to the tensor's trailing float (fqt_backend_qtensor_scale_slot). Formats without a
 *      tensor scale skip the stage: the next kernel writes the trailing 1.
 *   2. one thread per quantization block (1-D or 2-D tile): amax, the §5.1 non-finite rule,
 *      the scale code (fqt_block_scale_i) and its mapping, kept in scratch.
 *   3. one thread per output byte (4-bit: two codes) or element: the codes. SR bits are keyed
 *      by the element's row-major index in the quantized [rows, cols] layout (§4), never by a
 *      thread or block index, so nothing depends on the launch shape.
 * Statistics (§6), when asked, are summed per CUDA block in a fixed tree and merged on the host
 * in block order: integer counts are exact, the double sums agree with the CPU to rounding.
 * The fused kernel below does stages 2 and 3 in one pass for 1-D blocks (the presets other
 * than fp8-w); FQT_CUDA_QUANT_GENERIC=1 forces the staged kernels (tests run both).
 * The 4-bit E2M1 presets have vector kernels (16-byte loads along rows, a shared-memory
 * transpose along columns; codes from codec.h's bit-arithmetic E2M1 encoders, equal to the
 * reference ones for every input), fp8's 1x128 blocks a warp per block (along columns through a
 * shared-memory tile). The E2M1 kernels also
 * write the expanded form of a GEMM operand (fqt_qtensor.expanded: BF16 values code x block
 * scale instead of codes and scales); other formats get it staged. Not yet: the one-read
 * two-copy quantizer for tensors needed in both orientations. */
#include "cuda/common.cuh"

#include <float.h>
#include <stdlib.h>
#include <vector>

#define QZ_THREADS 256
#define QZ_MAX_GRID 4096

typedef struct {
    float mul, div, deq;
    int flags; /* 1: non-finite block, 2: zero block */
} qz_map;

typedef struct {
    int elem, scale, bits, block, block_rows, rounding, axis;
    bool tensor_scale, scale_ceil;
    float emax_val;
    int emax;
    uint64_t seed, stream;
    int64_t rows, cols, row_bytes, scale_rows, scale_cols, src_cols;
    float *slot; /* the tensor's trailing float where a kernel sets it: 1 (no tensor scale) or ... */
    const float *slot_from; /* ... *slot_from (a tensor scale computed before, fqt_cuda_tensor_scale) */
} qz_params;

/* The trailing float of a tensor without a tensor scale is 1 (as the CPU stores it), of one
 * whose scale was computed before the stored s_dec; one thread of the kernel writes it, so no
 * separate launch is needed. */
__device__ __forceinline__ void qz_put_slot(const qz_params &p) {
    if (p.slot && blockIdx.x == 0 && blockIdx.y == 0 && threadIdx.x == 0) *p.slot = p.slot_from ? *p.slot_from : 1.0f;
}

typedef struct {
    double sse, ss;
    unsigned long long n, nonfinite, sat, flush, nblocks, nzero, hist[16];
    float smin, smax;
} qz_part;

struct qz_acc {
    double sse, ss;
    unsigned long long n, nonfinite, sat, flush, nblocks, nzero, hist[16];
    float smin, smax;
    __device__ void init() {
        sse = ss = 0.0;
        n = nonfinite = sat = flush = nblocks = nzero = 0;
        for (int i = 0; i < 16; i++) hist[i] = 0;
        smin = INFINITY;
        smax = 0.0f;
    }
};

/* Fixed-tree reduction of the accumulators of a CUDA block into part[blockIdx.x]. */
__device__ void qz_acc_store(qz_acc &a, qz_part *part) {
    __shared__ double shd[QZ_THREADS];
    __shared__ unsigned long long shu[QZ_THREADS];
    __shared__ float shf[QZ_THREADS];
    qz_part o;
    o.sse = block_sum<QZ_THREADS>(a.sse, shd);
    o.ss = block_sum<QZ_THREADS>(a.ss, shd);
    o.n = block_sum<QZ_THREADS>(a.n, shu);
    o.nonfinite = block_sum<QZ_THREADS>(a.nonfinite, shu);
    o.sat = block_sum<QZ_THREADS>(a.sat, shu);
    o.flush = block_sum<QZ_THREADS>(a.flush, shu);
    o.nblocks = block_sum<QZ_THREADS>(a.nblocks, shu);
    o.nzero = block_sum<QZ_THREADS>(a.nzero, shu);
    for (int i = 0; i < 16; i++) o.hist[i] = block_sum<QZ_THREADS>(a.hist[i], shu);
    o.smax = block_max<QZ_THREADS>(a.smax, shf);
    o.smin = -block_max<QZ_THREADS>(-a.smin, shf);
    if (threadIdx.x == 0) part[blockIdx.x] = o;
}

template <typename TS> __device__ __forceinline__ float qz_load(const qz_params &p, const TS *src, int64_t r, int64_t c) {
    return ldf(src, p.axis == FQT_AXIS_ROWS ? r * p.src_cols + c : c * p.src_cols + r);
}

__device__ __forceinline__ uint32_t qz_bits(const qz_params &p, uint64_t index) {
    uint32_t w[4];
    fqt_sr_block4(p.seed, p.stream, index >> 2, w);
    return w[index & 3];
}

/* The element codec of codec.h, with the E2M1 and E4M3 cases through their bit-arithmetic
 * forms (equal code for code: tests/test_e2m1_fast.c, tests/test_e4m3_fast.c). */
__device__ __forceinline__ uint32_t qz_encode(fqt_elem t, float x, fqt_rounding r, uint32_t rnd) {
    if (t == FQT_ELEM_E4M3) return r == FQT_ROUND_SR ? fqt_e4m3_sr_bits_i(x, rnd) : fqt_e4m3_rne_bits_i(x);
    if (t == FQT_ELEM_E2M1) return r == FQT_ROUND_SR ? fqt_e2m1_sr_bits_i(x, rnd) : fqt_e2m1_rne_bits_i(x);
    return fqt_elem_encode_i(t, x, r, rnd);
}

__device__ float qz_ones[4] = {1.0f, 1.0f, 1.0f, 1.0f}; /* tsc of the formats without a tensor scale */

/* ---- magnitudes as integers ------------------------------------------------------------
 * The float bits of the largest |x| of the 16 bytes u, x float or bf16: non-negative floats
 * (and bf16s) order as their bits do, so the max is an integer max, two bf16 lanes per
 * instruction (Hopper's max.u16x2), and Inf or NaN anywhere shows as a result >= 0x7F800000. */
__device__ __forceinline__ uint32_t qz_max_u16x2(uint32_t a, uint32_t b) {
    uint32_t r;
    asm("max.u16x2 %0, %1, %2;" : "=r"(r) : "r"(a), "r"(b));
    return r;
}

template <typename TS> __device__ __forceinline__ uint32_t qz_absmax_bits16(uint4 u) {
    if (sizeof(TS) == 2) {
        const uint32_t m = 0x7FFF7FFFu;
        const uint32_t x = qz_max_u16x2(qz_max_u16x2(u.x & m, u.y & m), qz_max_u16x2(u.z & m, u.w & m));
        return max(x >> 16, x & 0xFFFFu) << 16;
    }
    const uint32_t m = 0x7FFFFFFFu;
    return max(max(u.x & m, u.y & m), max(u.z & m, u.w & m));
}

/* ---- stage 1: tensor amax ------------------------------------------------------------ */
/* max(m, the largest finite |x| of the 16 bytes u): the integer max where all are finite. */
template <typename TS> __device__ __forceinline__ float qz_amax16(uint4 u, float m) {
    const uint32_t b = qz_absmax_bits16<TS>(u);
    if (b < 0x7F800000u) return fmaxf(m, fqt_u2f(b));
    constexpr int PER16 = 16 / (int)sizeof(TS);
    float v[PER16];
    unpack16<TS>(u, v);
#pragma unroll
    for (int e = 0; e < PER16; e++) {
        const float a = fabsf(v[e]);
        if (a <= FLT_MAX && a > m) m = a;
    }
    return m;
}

/* tsc[0] = s_enc, tsc[1] = s_dec, tsc[2] = pre, tsc[3] = *slot = s_dec_out, by the §5.3 rule
 * of codec.h (fqt_tscale_i) for the tensor's amax m and the element's largest magnitude
 * elem_max (all 1 for an empty tensor, !any): the kernels below quantize x * pre (exact), as
 * the CPU does, so tensors with amax below 2^-64 get the CPU's bits too. */
__device__ __forceinline__ void qz_tscale_put(float m, bool any, float elem_max, float *tsc, float *slot) {
    const fqt_tscale t = any ? fqt_tscale_i(m, elem_max) : fqt_tscale{1.0f, 1.0f, 1.0f, 1.0f};
    tsc[0] = t.s_enc;
    tsc[1] = t.s_dec;
    tsc[2] = t.pre;
    tsc[3] = t.s_dec_out;
    *slot = t.s_dec_out;
}

/* Blocks of the running qz_amax_kernel that have finished; 0 between launches (kernels on one
 * stream run one after the other). */
__device__ unsigned int qz_amax_done;

/* Per-block maxima into part[blockIdx.x]; the block that finishes last (an integer counter:
 * which block that is varies, the max of the parts does not) combines them and writes the
 * tensor scale (qz_tscale_put), so the scale costs no launch of its own. */
template <typename TS>
__global__ void qz_amax_kernel(const TS *src, int64_t n, float *part, float elem_max, float *tsc, float *slot) {
    __shared__ float sh[QZ_THREADS];
    __shared__ bool last;
    constexpr int PER16 = 16 / (int)sizeof(TS);
    float m = 0.0f;
    const int64_t nv = ((uintptr_t)src % 16 == 0) ? n / PER16 : 0; /* 16-byte loads where aligned */
    const int64_t tid = blockIdx.x * (int64_t)QZ_THREADS + threadIdx.x, nth = (int64_t)gridDim.x * QZ_THREADS;
    int64_t i = tid;
    for (; i + 3 * nth < nv; i += 4 * nth) { /* four independent 16-byte loads in flight */
        uint4 u[4];
#pragma unroll
        for (int k = 0; k < 4; k++) u[k] = ((const uint4 *)src)[i + k * nth];
#pragma unroll
        for (int k = 0; k < 4; k++) m = qz_amax16<TS>(u[k], m);
    }
    for (; i < nv; i += nth) m = qz_amax16<TS>(((const uint4 *)src)[i], m);
    for (int64_t i = nv * PER16 + tid; i < n; i += nth) {
        const float a = fabsf(ldf(src, i));
        if (a <= FLT_MAX && a > m) m = a;
    }
    m = block_max<QZ_THREADS>(m, sh);
    if (threadIdx.x == 0) {
        part[blockIdx.x] = m;
        __threadfence(); /* the part is visible before the count says so */
        last = atomicAdd(&qz_amax_done, 1u) == gridDim.x - 1;
    }
    __syncthreads();
    if (!last) return;
    __threadfence();
    float mm = 0.0f;
    for (unsigned k = threadIdx.x; k < gridDim.x; k += QZ_THREADS) mm = fmaxf(mm, __ldcg(part + k));
    mm = block_max<QZ_THREADS>(mm, sh);
    if (threadIdx.x == 0) {
        qz_tscale_put(mm, true, elem_max, tsc, slot);
        qz_amax_done = 0;
    }
}

/* The tensor scale of an empty tensor (all 1): one thread. */
__global__ void qz_tscale_one_kernel(float *tsc, float *slot) { qz_tscale_put(0.0f, false, 1.0f, tsc, slot); }

/* ---- stage 2: block scales ------------------------------------------------------------ */
/* A block's scale (written to sp) and its map from the block's amax (of x * pre); a block
 * holding a NaN or Inf gets the NaN scale and flag 1 (§5.1). */
__device__ __forceinline__ qz_map qz_block_map(const qz_params &p, float amax, bool bad, uint8_t *sp,
                                               float s_enc, float s_dec) {
    qz_map mp;
    if (bad) {
        if (p.scale == FQT_SCALE_FP32) {
            const float nan = NAN;
            memcpy(sp, &nan, 4);
        } else {
            *sp = p.scale == FQT_SCALE_E8M0 ? 0xFF : 0x7F;
        }
        mp.mul = 0.0f;
        mp.div = 0.0f;
        mp.deq = 0.0f;
        mp.flags = 1;
        return mp;
    }
    const fqt_block_map m = fqt_block_scale_i((fqt_scale_type)p.scale, p.scale_ceil, p.emax_val, p.emax, amax,
                                              s_enc, s_dec, sp);
    mp.mul = m.mul;
    mp.div = m.div;
    mp.deq = m.deq;
    mp.flags = m.zero ? 2 : 0;
    return mp;
}

/* 2-D blocks (e.g. fp8's 128x128 weight blocks): one CUDA block per scale block, its threads
 * over the elements; the same amax (a max is order-free) and so the same map as
 * qz_scale_kernel, whose one thread per block leaves most of the GPU idle on them. */
template <typename TS>
__global__ void qz_scale2d_kernel(qz_params p, const TS *src, uint8_t *scales, qz_map *maps, const float *tsc) {
    qz_put_slot(p);
    __shared__ float sh[QZ_THREADS];
    const float s_enc = tsc[0], s_dec = tsc[1], pre = tsc[2];
    const int64_t nblk = p.scale_rows * p.scale_cols;
    const int sbytes = p.scale == FQT_SCALE_FP32 ? 4 : 1;
    for (int64_t i = blockIdx.x; i < nblk; i += gridDim.x) {
        const int64_t g = i / p.scale_cols, j = i % p.scale_cols;
        const int64_t r0 = g * p.block_rows, r1 = r0 + p.block_rows < p.rows ? r0 + p.block_rows : p.rows;
        const int64_t c0 = j * p.block, c1 = c0 + p.block < p.cols ? c0 + p.block : p.cols;
        const int64_t w = c1 - c0;
        float amax = 0.0f;
        int bad = 0;
        /* lanes along the source's contiguous dimension, warps across the other; no division */
        const int lane = threadIdx.x % 32, warp = threadIdx.x / 32, nr = (int)(r1 - r0), nc = (int)w;
        const int n_in = p.axis == FQT_AXIS_ROWS ? nc : nr, n_out = p.axis == FQT_AXIS_ROWS ? nr : nc;
        for (int o = warp; o < n_out; o += QZ_THREADS / 32)
            for (int k = lane; k < n_in; k += 32) {
                const int rr = p.axis == FQT_AXIS_ROWS ? o : k, cc = p.axis == FQT_AXIS_ROWS ? k : o;
                const float a = fabsf(qz_load(p, src, r0 + rr, c0 + cc) * pre);
                if (!(a <= FLT_MAX)) bad = 1;
                else if (a > amax) amax = a;
            }
        bad = __syncthreads_or(bad);
        amax = block_max<QZ_THREADS>(amax, sh);
        if (threadIdx.x == 0) maps[i] = qz_block_map(p, amax, bad != 0, scales + i * sbytes, s_enc, s_dec);
        __syncthreads();
    }
}

template <typename TS, bool STATS>
__global__ void qz_scale_kernel(qz_params p, const TS *src, uint8_t *scales, qz_map *maps,
                                const float *tsc, qz_part *part) {
    qz_put_slot(p);
    qz_acc acc;
    if (STATS) acc.init();
    const float s_enc = tsc[0], s_dec = tsc[1], pre = tsc[2], s_dec_out = tsc[3];
    const int64_t nblk = p.scale_rows * p.scale_cols;
    const int sbytes = p.scale == FQT_SCALE_FP32 ? 4 : 1;
    for (int64_t i = blockIdx.x * (int64_t)QZ_THREADS + threadIdx.x; i < nblk; i += (int64_t)gridDim.x * QZ_THREADS) {
        const int64_t g = i / p.scale_cols, j = i % p.scale_cols;
        const int64_t r0 = g * p.block_rows, r1 = r0 + p.block_rows < p.rows ? r0 + p.block_rows : p.rows;
        const int64_t c0 = j * p.block, c1 = c0 + p.block < p.cols ? c0 + p.block : p.cols;
        float amax = 0.0f;
        int64_t bad = 0;
        for (int64_t r = r0; r < r1; r++)
            for (int64_t c = c0; c < c1; c++) {
                const float a = fabsf(qz_load(p, src, r, c) * pre);
                if (!(a <= FLT_MAX)) bad++;
                else if (a > amax) amax = a;
            }
        const qz_map mp = qz_block_map(p, amax, bad != 0, scales + i * sbytes, s_enc, s_dec);
        if (STATS) {
            acc.n += (unsigned long long)((r1 - r0) * (c1 - c0));
            acc.nblocks++;
            if (bad) {
                acc.nonfinite += (unsigned long long)bad;
            } else {
                const float s = (mp.flags & 2) ? 0.0f : mp.deq * s_dec_out;
                if (!(s > 0.0f)) {
                    acc.nzero += s == 0.0f;
                } else {
                    acc.smin = fminf(acc.smin, s);
                    acc.smax = fmaxf(acc.smax, s);
                }
            }
        }
        maps[i] = mp;
    }
    if (STATS) qz_acc_store(acc, part);
}

/* ---- stage 3: codes ------------------------------------------------------------------ */
template <typename TS, bool STATS>
__device__ __forceinline__ uint32_t qz_element(const qz_params &p, const TS *src, const qz_map *maps,
                                               float pre, float s_dec_out, int64_t r, int64_t c,
                                               qz_acc &acc) {
    const float v = qz_load(p, src, r, c);
    const fqt_rounding rd = (fqt_rounding)p.rounding;
    const uint64_t index = (uint64_t)(r * p.cols + c);
    if (p.scale == FQT_SCALE_NONE) {
        const uint32_t rnd = rd == FQT_ROUND_SR ? qz_bits(p, index) : 0u;
        const uint32_t code = qz_encode((fqt_elem)p.elem, v, rd, rnd);
        if (STATS) {
            acc.n++;
            if (!isfinite(v)) {
                acc.nonfinite++;
            } else {
                const float deq = fqt_elem_decode_i((fqt_elem)p.elem, code);
                const double err = (double)deq - (double)v;
                acc.sse += err * err;
                acc.ss += (double)v * (double)v;
                if (fabsf(v) > p.emax_val) acc.sat++;
                if (v != 0.0f && deq == 0.0f) acc.flush++;
                if (p.bits == 4) acc.hist[code & 15]++;
            }
        }
        return code;
    }
    const qz_map m = maps[(r / p.block_rows) * p.scale_cols + c / p.block];
    if (m.flags & 1) return 0u;
    const float scaled = m.div != 0.0f ? v * pre / m.div : v * pre * m.mul;
    const uint32_t rnd = rd == FQT_ROUND_SR ? qz_bits(p, index) : 0u;
    const uint32_t code = qz_encode((fqt_elem)p.elem, scaled, rd, rnd);
    if (STATS) {
        float deq = fqt_elem_decode_i((fqt_elem)p.elem, code) * m.deq;
        if (p.tensor_scale) deq *= s_dec_out;
        const double err = (double)deq - (double)v;
        acc.sse += err * err;
        acc.ss += (double)v * (double)v;
        if (fabsf(scaled) > p.emax_val) acc.sat++;
        if (v != 0.0f && deq == 0.0f) acc.flush++;
        if (p.bits == 4) acc.hist[code & 15]++;
    }
    return code;
}

template <typename TS, bool STATS>
__global__ void qz_codes_kernel(qz_params p, const TS *src, uint8_t *codes, const qz_map *maps,
                                const float *tsc, qz_part *part) {
    qz_put_slot(p);
    qz_acc acc;
    if (STATS) acc.init();
    const float pre = tsc[2], s_dec_out = tsc[3];
    if (p.bits == 4) {
        const int64_t n = p.rows * p.row_bytes;
        for (int64_t i = blockIdx.x * (int64_t)QZ_THREADS + threadIdx.x; i < n; i += (int64_t)gridDim.x * QZ_THREADS) {
            const int64_t r = i / p.row_bytes, c = 2 * (i % p.row_bytes);
            uint32_t b = qz_element<TS, STATS>(p, src, maps, pre, s_dec_out, r, c, acc) & 0xFu;
            if (c + 1 < p.cols) b |= (qz_element<TS, STATS>(p, src, maps, pre, s_dec_out, r, c + 1, acc) & 0xFu) << 4;
            codes[i] = (uint8_t)b;
        }
    } else {
        const int64_t n = p.rows * p.cols;
        for (int64_t i = blockIdx.x * (int64_t)QZ_THREADS + threadIdx.x; i < n; i += (int64_t)gridDim.x * QZ_THREADS) {
            const int64_t r = i / p.cols, c = i % p.cols;
            const uint32_t code = qz_element<TS, STATS>(p, src, maps, pre, s_dec_out, r, c, acc);
            if (p.bits == 8) codes[i] = (uint8_t)code;
            else if (p.bits == 16) ((uint16_t *)codes)[i] = (uint16_t)code;
            else ((uint32_t *)codes)[i] = code;
        }
    }
    if (STATS) qz_acc_store(acc, part);
}

/* ---- the fast path: one thread per 1-D block, scale and codes in one kernel --------------
 * For 1-D blocks (block_rows 1) without statistics, and 4-bit codes only when a block's codes
 * fill whole bytes (even block): each thread reads its block twice (amax, then the codes; the
 * second read hits the cache), so no scale map goes through memory and there is one integer
 * division per block instead of per element. Same bits as stages 2-3 (the same codec.h
 * functions on the same values; tests compare both with the CPU). Consecutive threads take
 * consecutive blocks of a row (AXIS_ROWS: contiguous reads) or consecutive rows of the
 * quantized tensor (AXIS_COLS: each of the block's loads is contiguous across the warp). */
template <typename TS>
__global__ void qz_fused_kernel(qz_params p, const TS *src, uint8_t *codes, uint8_t *scales, const float *tsc) {
    qz_put_slot(p);
    const float s_enc = tsc[0], s_dec = tsc[1], pre = tsc[2];
    const int64_t nblk = p.rows * p.scale_cols;
    const int sbytes = p.scale == FQT_SCALE_FP32 ? 4 : 1;
    const fqt_rounding rd = (fqt_rounding)p.rounding;
    for (int64_t i = blockIdx.x * (int64_t)QZ_THREADS + threadIdx.x; i < nblk; i += (int64_t)gridDim.x * QZ_THREADS) {
        int64_t r, j;
        if (p.axis == FQT_AXIS_COLS) { j = i / p.rows; r = i - j * p.rows; } /* warp: consecutive rows */
        else { r = i / p.scale_cols; j = i - r * p.scale_cols; }
        const int64_t c0 = j * p.block, c1 = c0 + p.block < p.cols ? c0 + p.block : p.cols;
        const TS *base;
        int64_t step;
        if (p.axis == FQT_AXIS_ROWS) { base = src + r * p.src_cols + c0; step = 1; }
        else { base = src + c0 * p.src_cols + r; step = p.src_cols; }
        float amax = 0.0f;
        int bad = 0;
        for (int64_t c = 0; c < c1 - c0; c++) {
            const float a = fabsf(ldf(base, c * step) * pre);
            if (!(a <= FLT_MAX)) bad = 1;
            else if (a > amax) amax = a;
        }
        uint8_t *sp = scales + (r * p.scale_cols + j) * sbytes;
        uint8_t *row = codes + r * p.row_bytes;
        if (bad) {
            if (p.scale == FQT_SCALE_FP32) { const float nan = NAN; memcpy(sp, &nan, 4); }
            else *sp = p.scale == FQT_SCALE_E8M0 ? 0xFF : 0x7F;
            if (p.bits == 4) for (int64_t c = c0; c < c1; c += 2) row[c >> 1] = 0;
            else if (p.bits == 8) for (int64_t c = c0; c < c1; c++) row[c] = 0;
            else if (p.bits == 16) for (int64_t c = c0; c < c1; c++) ((uint16_t *)row)[c] = 0;
            else for (int64_t c = c0; c < c1; c++) ((uint32_t *)row)[c] = 0;
            continue;
        }
        const fqt_block_map m = fqt_block_scale_i((fqt_scale_type)p.scale, p.scale_ceil, p.emax_val,
                                                  p.emax, amax, s_enc, s_dec, sp);
        const uint64_t ibase = (uint64_t)(r * p.cols);
        uint64_t cached = ~0ull;
        uint32_t w[4] = {0, 0, 0, 0};
        uint32_t pending = 0;
        for (int64_t c = c0; c < c1; c++) {
            const float v = ldf(base, (c - c0) * step) * pre;
            const float scaled = m.div != 0.0f ? v / m.div : v * m.mul;
            uint32_t rnd = 0;
            if (rd == FQT_ROUND_SR) {
                const uint64_t idx = ibase + (uint64_t)c;
                if ((idx >> 2) != cached) { cached = idx >> 2; fqt_sr_block4(p.seed, p.stream, cached, w); }
                rnd = w[idx & 3];
            }
            const uint32_t code = qz_encode((fqt_elem)p.elem, scaled, rd, rnd);
            if (p.bits == 4) {
                if (!((c - c0) & 1)) pending = code & 0xFu;
                else row[c >> 1] = (uint8_t)(pending | ((code & 0xFu) << 4));
            } else if (p.bits == 8) row[c] = (uint8_t)code;
            else if (p.bits == 16) ((uint16_t *)row)[c] = (uint16_t)code;
            else ((uint32_t *)row)[c] = code;
        }
        if (p.bits == 4 && ((c1 - c0) & 1)) row[(c1 - 1) >> 1] = (uint8_t)pending;
    }
}

/* ---- one E2M1 block of the vector kernels -------------------------------------------------
 * BLK values v (already times pre), amax their largest |v| (bad: a non-finite among them): the
 * scale code, then either the packed codes (BLK / 2 bytes at dst, the scale code at *sp) or,
 * EXP, the expanded operand (fqt_qtensor.expanded): the BF16 values code x block scale at ev,
 * which is what fqt_cuda_dequantize_raw without the tensor scale makes of the packed codes, NaN
 * bits of a non-finite block included. ibase: the row-major index of v[0] in the quantized
 * layout, a multiple of 4 (SR keys).
 * A block whose amax and multiplier are finite takes the grid forms (fqt_e2m1_rne_grid_i,
 * fqt_e2m1_sr_grid_i: the rounded magnitude as a float, about a third of the instructions of
 * code, then decode), its sign taken from v; every |v| * mul is then finite, where the grid
 * forms equal the encoders. Any other block (non-finite, or a multiplier that overflowed)
 * goes through the encoders themselves, as the CPU does. */
template <int BLK>
__device__ __forceinline__ void qz_e2m1_store(uint8_t sc, const uint32_t *packed, uint8_t *sp, uint8_t *dst) {
    *sp = sc;
    if (BLK == 16) *(uint2 *)dst = make_uint2(packed[0], packed[BLK / 8 > 1 ? 1 : 0]);
    else *(uint4 *)dst = make_uint4(packed[0], packed[1 % (BLK / 8)], packed[2 % (BLK / 8)], packed[3 % (BLK / 8)]);
}

template <int BLK, bool EXP>
__device__ __forceinline__ void qz_e2m1_block(const qz_params &p, const float *v, float amax, bool bad, uint64_t ibase,
                                              float s_enc, float s_dec, uint8_t *sp, uint8_t *dst, bf16_t *ev) {
    const bool sr = (fqt_rounding)p.rounding == FQT_ROUND_SR;
    uint8_t sc = p.scale == FQT_SCALE_E8M0 ? 0xFF : 0x7F; /* a non-finite block's NaN scale */
    fqt_block_map m = {1.0f, 0.0f, 1.0f, 0};
    if (!bad) m = fqt_block_scale_i((fqt_scale_type)p.scale, p.scale_ceil, p.emax_val, p.emax, amax, s_enc, s_dec, &sc);
    const float deq = p.scale == FQT_SCALE_E8M0 ? fqt_e8m0_dec_i(sc) : fqt_ue4m3_dec_i(sc);
    if (!bad && amax <= FLT_MAX && m.mul <= FLT_MAX) { /* the grid forms */
        uint32_t packed[BLK / 8], ew[BLK / 2]; /* the codes, or the expanded bf16 pairs */
#pragma unroll
        for (int k = 0; k < BLK / 8; k++) packed[k] = 0;
#pragma unroll
        for (int q4 = 0; q4 < BLK / 4; q4++) {
            uint32_t w[4] = {0, 0, 0, 0};
            if (sr) fqt_sr_block4(p.seed, p.stream, (ibase >> 2) + (uint64_t)q4, w);
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int k = q4 * 4 + e;
                const float a = fabsf(v[k]) * m.mul;
                const float g = sr ? fqt_e2m1_sr_grid_i(a, w[e]) : fqt_e2m1_rne_grid_i(a);
                if (EXP) { /* code x scale, exact in float and in bf16 (common.cuh, fqt_e2m1_bf16_exact) */
                    const uint32_t x = fqt_f2u(copysignf(g, v[k]) * deq);
                    ew[k / 2] = k % 2 ? __byte_perm(ew[k / 2], x, 0x7632) : x;
                } else {
                    packed[k / 8] |= (fqt_e2m1_grid_code_i(g) | ((fqt_f2u(v[k]) >> 28) & 8u)) << (4 * (k % 8));
                }
            }
        }
        if (EXP)
#pragma unroll
            for (int g = 0; g < BLK / 8; g++) ((uint4 *)ev)[g] = make_uint4(ew[4 * g], ew[4 * g + 1], ew[4 * g + 2], ew[4 * g + 3]);
        if (!EXP) qz_e2m1_store<BLK>(sc, packed, sp, dst);
        return;
    }
    uint32_t packed[BLK / 8];
#pragma unroll
    for (int k = 0; k < BLK / 8; k++) packed[k] = 0;
    if (!bad) {
#pragma unroll
        for (int q4 = 0; q4 < BLK / 4; q4++) {
            uint32_t w[4] = {0, 0, 0, 0};
            if (sr) fqt_sr_block4(p.seed, p.stream, (ibase >> 2) + (uint64_t)q4, w);
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const int k = q4 * 4 + e;
                const float scaled = v[k] * m.mul;
                const uint32_t code = sr ? fqt_e2m1_sr_bits_i(scaled, w[e]) : fqt_e2m1_rne_bits_i(scaled);
                packed[k / 8] |= (code & 0xFu) << (4 * (k % 8));
            }
        }
    }
    if (!EXP) {
        qz_e2m1_store<BLK>(sc, packed, sp, dst);
        return;
    }
    const uint32_t nan2 = (uint32_t)fqt_bf16_rne_i(fqt_mul_as_cpu(0.0f, deq)) * 0x10001u; /* codes of a bad block are 0 */
#pragma unroll
    for (int g = 0; g < BLK / 8; g++) { /* 8 values: 16 bytes */
        uint32_t w[4];
#pragma unroll
        for (int k = 0; k < 4; k++) {
            const uint32_t word = packed[g] >> (8 * k);
            w[k] = deq == deq ? fqt_e2m1_bf16_exact(word, deq) | (fqt_e2m1_bf16_exact(word >> 4, deq) << 16) : nan2;
        }
        ((uint4 *)ev)[g] = make_uint4(w[0], w[1], w[2], w[3]);
    }
}

/* ---- the vector path: 4-bit codes, BLK-element blocks along contiguous rows -----------------
 * AXIS_ROWS, block 16 or 32, cols a multiple of BLK and of 16 (aligned 16-byte loads of the
 * source and 8- or 16-byte stores of a block's packed codes). A thread per block, held in
 * registers: one read of the source. Same arithmetic as qz_fused_kernel. (A lane-contiguous
 * form, a lane per 16 source bytes and the block amax by shuffles, coalesced every access and
 * ran slower on the H200: 79.1 against 74.6 us for nvfp4 16384x2048 RNE, 54.3 against 47.4 for
 * mxfp4: the kernel is bound by its instructions, and each lane then computed its block's
 * scale again; PERF.md, 2026-12-03.) */
template <typename TS, int BLK, bool EXP>
__global__ void qz_rows4_kernel(qz_params p, const TS *src, uint8_t *codes, uint8_t *scales, const float *tsc) {
    qz_put_slot(p);
    const float s_enc = tsc[0], s_dec = tsc[1], pre = tsc[2];
    const int64_t nblk = p.rows * p.scale_cols;
    constexpr int PER16 = 16 / (int)sizeof(TS); /* elements per 16-byte load */
    for (int64_t i = blockIdx.x * (int64_t)QZ_THREADS + threadIdx.x; i < nblk; i += (int64_t)gridDim.x * QZ_THREADS) {
        int64_t j;
        const int64_t r = fqt_divmod(i, p.scale_cols, &j), c0 = j * BLK;
        const uint4 *in = (const uint4 *)(src + r * p.src_cols + c0);
        float v[BLK];
        uint32_t abits = 0; /* the block's largest |x|, as float bits (x * pre: exact) */
#pragma unroll
        for (int k = 0; k < BLK / PER16; k++) {
            const uint4 u = in[k];
            abits = max(abits, qz_absmax_bits16<TS>(u));
            unpack16<TS>(u, v + k * PER16);
        }
        if (pre != 1.0f)
#pragma unroll
            for (int k = 0; k < BLK; k++) v[k] *= pre;
        qz_e2m1_block<BLK, EXP>(p, v, fqt_u2f(abits) * pre, abits >= 0x7F800000u, (uint64_t)(r * p.cols + c0), s_enc,
                                s_dec, scales + i, codes + r * p.row_bytes + c0 / 2,
                                (bf16_t *)(void *)codes + r * p.cols + c0);
    }
}

/* ---- AXIS_COLS, 4-bit: a shared-memory transpose ------------------------------------------
 * A CUDA block loads a 64 x 64 tile of the source (rows r0.., columns j0..) with coalesced
 * reads; quantized row j (source column j) takes its blocks from the tile's column. Thread
 * (j, b) makes block b of row j; four consecutive threads write adjacent blocks of one row.
 * Needs q->cols (source rows) a multiple of BLK, so a block never leaves the tile. */
#define QZ_TILE 64
template <typename TS, int BLK, bool EXP>
__global__ void qz_cols4_kernel(qz_params p, const TS *src, uint8_t *codes, uint8_t *scales, const float *tsc) {
    qz_put_slot(p);
    __shared__ float tile[QZ_TILE][QZ_TILE + 1];
    constexpr int NB = QZ_TILE / BLK; /* blocks per tile column */
    const float s_enc = tsc[0], s_dec = tsc[1], pre = tsc[2];
    const int64_t srows = p.cols, scols = p.rows; /* source [srows, scols] */
    const int64_t r0 = (int64_t)blockIdx.y * QZ_TILE, j0 = (int64_t)blockIdx.x * QZ_TILE;
    constexpr int PER16 = 16 / (int)sizeof(TS), V = QZ_TILE / PER16; /* 16-byte loads per tile row */
    if (r0 + QZ_TILE <= srows && j0 + QZ_TILE <= scols && p.src_cols % PER16 == 0 && (uintptr_t)src % 16 == 0) {
        for (int e = threadIdx.x; e < QZ_TILE * V; e += blockDim.x) { /* a whole tile: 16-byte loads */
            const int rr = e / V, jj = (e % V) * PER16;
            float t[PER16];
            unpack16<TS>(*(const uint4 *)(src + (r0 + rr) * p.src_cols + j0 + jj), t);
#pragma unroll
            for (int k = 0; k < PER16; k++) tile[rr][jj + k] = t[k] * pre;
        }
    } else {
        for (int e = threadIdx.x; e < QZ_TILE * QZ_TILE; e += blockDim.x) {
            const int rr = e / QZ_TILE, jj = e % QZ_TILE;
            const int64_t r = r0 + rr, j = j0 + jj;
            tile[rr][jj] = (r < srows && j < scols) ? ldf(src, r * p.src_cols + j) * pre : 0.0f;
        }
    }
    __syncthreads();
    const int b = threadIdx.x % NB, jj = threadIdx.x / NB;
    const int64_t j = j0 + jj, c0 = r0 + (int64_t)b * BLK;
    if (j >= scols || c0 >= srows) return;
    float v[BLK];
    uint32_t abits = 0;
#pragma unroll
    for (int k = 0; k < BLK; k++) {
        v[k] = tile[b * BLK + k][jj];
        abits = max(abits, fqt_f2u(v[k]) & 0x7FFFFFFFu);
    }
    qz_e2m1_block<BLK, EXP>(p, v, fqt_u2f(abits), abits >= 0x7F800000u, (uint64_t)(j * p.cols + c0), s_enc, s_dec,
                            scales + j * p.scale_cols + c0 / BLK, codes + j * p.row_bytes + c0 / 2,
                            (bf16_t *)(void *)codes + j * p.cols + c0);
}

/* ---- 8-bit codes with FP32 1x128 scales (the fp8 preset): a warp per block -----------------
 * Lane l holds elements 4l..4l+3 of the block; the block amax is a warp max (exact in any
 * order); one Philox call per lane gives its four SR words (element index ibase of its first
 * element in the quantized layout, a multiple of 4); the lane's 4 codes come back packed. */
__device__ __forceinline__ uint32_t qz_fp8_block(const qz_params &p, const float v[4], float s_enc, float s_dec,
                                                 uint64_t ibase, uint8_t *scale, int lane, const qz_map *mp) {
    const fqt_rounding rd = (fqt_rounding)p.rounding;
    float mul, div;
    int bad = 0;
    if (mp) { /* a 2-D block: its map from qz_scale2d_kernel, which also wrote the scale */
        bad = mp->flags & 1;
        mul = mp->mul;
        div = mp->div;
    } else {
        float amax = 0.0f;
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const float a = fabsf(v[e]);
            if (!(a <= FLT_MAX)) bad = 1;
            else if (a > amax) amax = a;
        }
        for (int o = 16; o > 0; o >>= 1) {
            amax = fmaxf(amax, __shfl_xor_sync(0xffffffffu, amax, o));
            bad |= __shfl_xor_sync(0xffffffffu, bad, o);
        }
        uint8_t sc[4];
        const fqt_block_map m = fqt_block_scale_i((fqt_scale_type)p.scale, p.scale_ceil, p.emax_val, p.emax, amax,
                                                  s_enc, s_dec, sc);
        if (lane == 0) {
            if (bad) { const float nan = NAN; memcpy(scale, &nan, 4); }
            else memcpy(scale, sc, 4);
        }
        mul = m.mul;
        div = m.div;
    }
    uint32_t w[4] = {0, 0, 0, 0};
    if (rd == FQT_ROUND_SR && !bad) fqt_sr_block4(p.seed, p.stream, ibase >> 2, w);
    uint32_t out = 0;
    if (!bad)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const float scaled = div != 0.0f ? v[e] / div : v[e] * mul;
            out |= (qz_encode((fqt_elem)p.elem, scaled, rd, w[e]) & 0xFFu) << (8 * e);
        }
    return out;
}

/* AXIS_ROWS (cols a multiple of 128, source 16-byte aligned): warp i takes block i. */
template <typename TS>
__global__ void qz_rows8_kernel(qz_params p, const TS *src, uint8_t *codes, uint8_t *scales, const float *tsc,
                                const qz_map *maps) {
    qz_put_slot(p);
    const float s_enc = tsc[0], s_dec = tsc[1], pre = tsc[2];
    const int lane = threadIdx.x & 31;
    const int64_t nblk = p.rows * p.scale_cols;
    const int64_t warps = (int64_t)gridDim.x * (QZ_THREADS / 32);
    for (int64_t i = blockIdx.x * (int64_t)(QZ_THREADS / 32) + threadIdx.x / 32; i < nblk; i += warps) {
        int64_t j;
        const int64_t r = fqt_divmod(i, p.scale_cols, &j), c = j * 128 + 4 * lane;
        float v[4];
        ld4(src + r * p.src_cols + c, v);
#pragma unroll
        for (int e = 0; e < 4; e++) v[e] *= pre;
        const uint32_t out = qz_fp8_block(p, v, s_enc, s_dec, (uint64_t)(r * p.cols + c), scales + 4 * i, lane,
                                          maps ? maps + (r / p.block_rows) * p.scale_cols + j : NULL);
        *(uint32_t *)(codes + r * p.row_bytes + c) = out;
    }
}

/* AXIS_COLS (q->cols, the source rows, a multiple of 128): a CUDA block stages a 128 x 64 tile
 * of the source (128 source rows = one quantization block of each of 64 quantized rows) in
 * shared memory with coalesced reads; then each warp quantizes 8 of the 64 quantized rows,
 * lane l taking elements 4l..4l+3 of the block as qz_rows8_kernel, and a warp's stores are 128
 * contiguous bytes. Before this, one thread per block wrote its 128 codes alone: 4% of copy. */
#define QZ_C8_COLS 64
template <typename TS>
__global__ void qz_cols8_kernel(qz_params p, const TS *src, uint8_t *codes, uint8_t *scales, const float *tsc,
                                const qz_map *maps) {
    qz_put_slot(p);
    __shared__ float tile[128][QZ_C8_COLS + 1];
    const float s_enc = tsc[0], s_dec = tsc[1], pre = tsc[2];
    const int64_t scols = p.rows; /* source [p.cols, p.rows] */
    const int64_t kb = blockIdx.y, r0 = kb * 128, j0 = (int64_t)blockIdx.x * QZ_C8_COLS;
    for (int e = threadIdx.x; e < 128 * QZ_C8_COLS; e += QZ_THREADS) {
        const int rr = e / QZ_C8_COLS, jj = e % QZ_C8_COLS;
        tile[rr][jj] = j0 + jj < scols ? ldf(src, (r0 + rr) * p.src_cols + j0 + jj) * pre : 0.0f;
    }
    __syncthreads();
    const int lane = threadIdx.x & 31, warp = threadIdx.x / 32;
    for (int jj = warp; jj < QZ_C8_COLS; jj += QZ_THREADS / 32) {
        const int64_t j = j0 + jj;
        if (j >= scols) break;
        float v[4];
#pragma unroll
        for (int e = 0; e < 4; e++) v[e] = tile[4 * lane + e][jj];
        const int64_t c = r0 + 4 * lane;
        const uint32_t out = qz_fp8_block(p, v, s_enc, s_dec, (uint64_t)(j * p.cols + c),
                                          scales + 4 * (j * p.scale_cols + kb), lane,
                                          maps ? maps + (j / p.block_rows) * p.scale_cols + kb : NULL);
        *(uint32_t *)(codes + j * p.row_bytes + c) = out;
    }
}

/* ---- unscaled formats along rows: the quantized layout is the source layout -------------- */
template <typename TS>
__global__ void qz_plain_rows_kernel(qz_params p, const TS *src, uint8_t *codes, int64_t n) {
    qz_put_slot(p);
    const fqt_rounding rd = (fqt_rounding)p.rounding;
    for (int64_t i = blockIdx.x * (int64_t)QZ_THREADS + threadIdx.x; i < n; i += (int64_t)gridDim.x * QZ_THREADS) {
        const uint32_t rnd = rd == FQT_ROUND_SR ? qz_bits(p, (uint64_t)i) : 0u;
        const uint32_t code = qz_encode((fqt_elem)p.elem, ldf(src, i), rd, rnd);
        if (p.bits == 8) codes[i] = (uint8_t)code;
        else if (p.bits == 16) ((uint16_t *)codes)[i] = (uint16_t)code;
        else ((uint32_t *)codes)[i] = code;
    }
}

/* ---- unscaled formats along columns: a transpose through a 32x32 shared tile ---------------
 * q[r][c] = encode(src[c][r]) with the SR bits of q's element index r * cols + c, as the
 * generic path; coalesced loads of src rows and stores of q rows. blockDim (32, 8). */
template <typename TS>
__global__ void qz_plain_cols_kernel(qz_params p, const TS *src, uint8_t *codes) {
    qz_put_slot(p);
    __shared__ float tile[32][33];
    const fqt_rounding rd = (fqt_rounding)p.rounding;
    const int tx = threadIdx.x, ty = threadIdx.y;
    for (int64_t qr0 = blockIdx.x * 32ll; qr0 < p.rows; qr0 += gridDim.x * 32ll)
        for (int64_t qc0 = blockIdx.y * 32ll; qc0 < p.cols; qc0 += gridDim.y * 32ll) {
            for (int k = ty; k < 32; k += 8) { /* src row qc0 + k, src column qr0 + tx */
                const int64_t sr = qc0 + k, sc = qr0 + tx;
                tile[k][tx] = sr < p.cols && sc < p.rows ? ldf(src, sr * p.src_cols + sc) : 0.0f;
            }
            __syncthreads();
            for (int k = ty; k < 32; k += 8) { /* q row qr0 + k, q column qc0 + tx */
                const int64_t r = qr0 + k, c = qc0 + tx;
                if (r < p.rows && c < p.cols) {
                    const int64_t i = r * p.cols + c;
                    const uint32_t rnd = rd == FQT_ROUND_SR ? qz_bits(p, (uint64_t)i) : 0u;
                    const uint32_t code = qz_encode((fqt_elem)p.elem, tile[tx][k], rd, rnd);
                    if (p.bits == 8) codes[i] = (uint8_t)code;
                    else if (p.bits == 16) ((uint16_t *)codes)[i] = (uint16_t)code;
                    else ((uint32_t *)codes)[i] = code;
                }
            }
            __syncthreads();
        }
}

/* The same for 16-bit codes from bf16 storage with every dimension a multiple of 8 (the
 * activations' case): 64x64 tiles, 16-byte loads of src rows and 16-byte stores of q rows,
 * the SR bits of 8 consecutive elements from two Philox blocks. 256 threads. BF16: the
 * format is bf16 itself, where RNE and SR alike give the source code back (SR adds fewer than
 * 2^16 to a float whose low 16 bits are zero: no carry) and RNE quiets a NaN (fqt_bf16_rne_i's
 * 0x40): a transpose, without Philox bits or the element codec. */
__device__ __forceinline__ uint32_t qz_bf16_same(uint32_t c) { return (c & 0x7FFFu) > 0x7F80u ? c | 0x40u : c; }

template <bool BF16>
__global__ void qz_plain_cols16_kernel(qz_params p, const bf16_t *src, uint16_t *codes) {
    qz_put_slot(p);
    __shared__ uint16_t tile[64][66]; /* [src row][src column]; 66: 2-way bank conflicts at most */
    const fqt_rounding rd = (fqt_rounding)p.rounding;
    const int t = threadIdx.x;
    for (int64_t qr0 = blockIdx.x * 64ll; qr0 < p.rows; qr0 += gridDim.x * 64ll)
        for (int64_t qc0 = blockIdx.y * 64ll; qc0 < p.cols; qc0 += gridDim.y * 64ll) {
            for (int k = t; k < 512; k += 256) { /* src row qc0 + lr, src columns qr0 + lc .. + 7 */
                const int lr = k >> 3, lc = (k & 7) * 8;
                const int64_t sr = qc0 + lr, sc = qr0 + lc;
                uint4 v = make_uint4(0u, 0u, 0u, 0u);
                if (sr < p.cols && sc < p.rows) v = *(const uint4 *)(src + sr * p.src_cols + sc);
                const uint32_t w[4] = {v.x, v.y, v.z, v.w};
#pragma unroll
                for (int e = 0; e < 8; e++) tile[lr][lc + e] = (uint16_t)(w[e >> 1] >> ((e & 1) * 16));
            }
            __syncthreads();
            for (int k = t; k < 512; k += 256) { /* q row qr0 + lq, q columns qc0 + lj .. + 7 */
                const int lq = k >> 3, lj = (k & 7) * 8;
                const int64_t r = qr0 + lq, c = qc0 + lj;
                if (r < p.rows && c < p.cols) {
                    const int64_t i = r * p.cols + c; /* a multiple of 8 */
                    uint32_t bits[8] = {0, 0, 0, 0, 0, 0, 0, 0};
                    if (!BF16 && rd == FQT_ROUND_SR) {
                        fqt_sr_block4(p.seed, p.stream, (uint64_t)i >> 2, bits);
                        fqt_sr_block4(p.seed, p.stream, ((uint64_t)i >> 2) + 1, bits + 4);
                    }
                    uint32_t w[4];
#pragma unroll
                    for (int e = 0; e < 8; e += 2) {
                        uint32_t lo, hi;
                        if (BF16) {
                            lo = qz_bf16_same(tile[lj + e][lq]), hi = qz_bf16_same(tile[lj + e + 1][lq]);
                        } else {
                            lo = qz_encode((fqt_elem)p.elem, fqt_bf16_dec_i(tile[lj + e][lq]), rd, bits[e]);
                            hi = qz_encode((fqt_elem)p.elem, fqt_bf16_dec_i(tile[lj + e + 1][lq]), rd, bits[e + 1]);
                        }
                        w[e >> 1] = (lo & 0xFFFFu) | (hi << 16);
                    }
                    *(uint4 *)(codes + i) = make_uint4(w[0], w[1], w[2], w[3]);
                }
            }
            __syncthreads();
        }
}

static unsigned qz_grid(int64_t n) {
    unsigned g = fqt_cuda_blocks(n, QZ_THREADS);
    return g > QZ_MAX_GRID ? QZ_MAX_GRID : g;
}

/* The tensor amax of src [n] and its scale into tsc and *slot (apart: QZ_MAX_GRID floats). */
template <typename TS>
static void qz_amax_launch(const TS *src, int64_t n, float elem_max, float *apart, float *tsc, float *slot) {
    unsigned nparts = qz_grid(n / 32 + 1); /* at most 1024 blocks: enough loads per thread to hide latency */
    if (nparts > 1024) nparts = 1024;
    qz_amax_kernel<TS><<<nparts, QZ_THREADS>>>(src, n, apart, elem_max, tsc, slot);
    FQT_CUDA_LAUNCHED();
}

static void qz_merge(fqt_qstats *stats, const qz_part *d, unsigned n) {
    std::vector<qz_part> h(n);
    FQT_CUDA_CHECK(cudaMemcpy(h.data(), d, n * sizeof(qz_part), cudaMemcpyDeviceToHost));
    fqt_qstats s;
    memset(&s, 0, sizeof s);
    float smin = INFINITY, smax = 0.0f;
    for (unsigned i = 0; i < n; i++) {
        s.sum_sq_err += h[i].sse;
        s.sum_sq += h[i].ss;
        s.n += (int64_t)h[i].n;
        s.n_nonfinite += (int64_t)h[i].nonfinite;
        s.n_saturated += (int64_t)h[i].sat;
        s.n_flushed += (int64_t)h[i].flush;
        s.n_blocks += (int64_t)h[i].nblocks;
        s.n_zero_blocks += (int64_t)h[i].nzero;
        for (int k = 0; k < 16; k++) s.code_hist[k] += (int64_t)h[i].hist[k];
        if (h[i].smax > 0.0f) {
            smin = fminf(smin, h[i].smin);
            smax = fmaxf(smax, h[i].smax);
        }
    }
    if (smax > 0.0f) {
        s.scale_min = smin;
        s.scale_max = smax;
    }
    fqt_qstats_merge(stats, &s);
}

/* The fp8 kernels for 1x128 FP32-scaled runs of q (a warp per run; along columns through the
 * 128 x 64 tile), each run's map from maps (fp8-w's 2-D blocks, made by qz_scale2d_kernel) or
 * from its own amax (maps NULL); false, launching nothing, where they do not apply. */
template <typename TS>
static bool qz_fp8_launch(const qz_params &p, const TS *src, fqt_qtensor *q, fqt_axis axis, const float *tsc,
                          const qz_map *maps) {
    if (p.bits != 8 || p.block != 128 || p.scale != FQT_SCALE_FP32 || p.cols % 128 != 0 ||
        getenv("FQT_CUDA_QUANT_SCALAR"))
        return false;
    if (axis == FQT_AXIS_ROWS && (uintptr_t)src % 16 == 0) {
        qz_rows8_kernel<TS><<<qz_grid(q->rows * q->scale_cols * 32), QZ_THREADS>>>(p, src, q->codes, q->scales, tsc, maps);
    } else if (axis == FQT_AXIS_COLS && p.cols / 128 < 65535 && q->rows < 65535LL * QZ_C8_COLS) {
        dim3 grid((unsigned)((q->rows + QZ_C8_COLS - 1) / QZ_C8_COLS), (unsigned)(p.cols / 128));
        qz_cols8_kernel<TS><<<grid, QZ_THREADS>>>(p, src, q->codes, q->scales, tsc, maps);
    } else {
        return false;
    }
    FQT_CUDA_LAUNCHED();
    return true;
}

/* The E2M1 vector kernel that takes q (1: along rows, 2: the column transpose), else 0. */
enum { QZ_E2M1_NONE = 0, QZ_E2M1_ROWS, QZ_E2M1_COLS };
static int qz_e2m1_path(const fqt_qtensor *q, const void *src, fqt_axis axis, const fqt_qstats *stats) {
    const fqt_format *f = &q->fmt;
    if (stats || f->elem != FQT_ELEM_E2M1 || (f->block != 16 && f->block != 32) || f->block_rows != 1 ||
        (f->scale != FQT_SCALE_E8M0 && f->scale != FQT_SCALE_UE4M3) || getenv("FQT_CUDA_QUANT_GENERIC") ||
        getenv("FQT_CUDA_QUANT_SCALAR"))
        return QZ_E2M1_NONE;
    if (axis == FQT_AXIS_ROWS)
        return q->cols % f->block == 0 && q->cols % 16 == 0 && (uintptr_t)src % 16 == 0 ? QZ_E2M1_ROWS : QZ_E2M1_NONE;
    return q->cols % 32 == 0 && q->rows < 65535LL * QZ_TILE && q->cols < 65535LL * QZ_TILE ? QZ_E2M1_COLS
                                                                                             : QZ_E2M1_NONE;
}

template <typename TS>
static void quantize_t(fqt_qtensor *q, const TS *src, int64_t R, int64_t C, fqt_axis axis,
                       fqt_rounding rounding, uint64_t seed, uint64_t stream, fqt_qstats *stats,
                       const float *tscale);

/* An expanded operand that no E2M1 vector kernel makes: the packed form into scratch, then
 * its dequantization without the tensor scale (the same values the kernels' EXP form writes)
 * and the tensor scale into q's slot. */
template <typename TS>
static void quantize_expanded_staged(fqt_qtensor *q, const TS *src, int64_t R, int64_t C, fqt_axis axis,
                                     fqt_rounding rounding, uint64_t seed, uint64_t stream, fqt_qstats *stats,
                                     const float *tscale) {
    fqt_qtensor t;
    const size_t bytes = fqt_backend_qtensor_bytes(&q->fmt, q->rows, q->cols);
    fqt_backend_qtensor_bind(&t, &q->fmt, q->rows, q->cols, fqt_cuda_scratch(FQT_SCR_EXPAND, bytes));
    quantize_t<TS>(&t, src, R, C, axis, rounding, seed, stream, stats, tscale);
    fqt_cuda_dequantize_raw(&t, q->codes, FQT_DT_BF16, false, NULL);
    FQT_CUDA_CHECK(cudaMemcpyAsync(fqt_backend_qtensor_scale_slot(q), fqt_backend_qtensor_scale_slot(&t),
                                   sizeof(float), cudaMemcpyDeviceToDevice, 0));
}

template <typename TS>
static void quantize_t(fqt_qtensor *q, const TS *src, int64_t R, int64_t C, fqt_axis axis,
                       fqt_rounding rounding, uint64_t seed, uint64_t stream, fqt_qstats *stats,
                       const float *tscale) {
    const fqt_format *f = &q->fmt;
    const int e2m1 = qz_e2m1_path(q, src, axis, stats);
    if (q->expanded && !e2m1) {
        quantize_expanded_staged<TS>(q, src, R, C, axis, rounding, seed, stream, stats, tscale);
        return;
    }
    qz_params p;
    p.elem = f->elem;
    p.scale = f->scale;
    p.bits = fqt_elem_bits(f->elem);
    p.block = f->block > 0 ? f->block : 1;
    p.block_rows = f->scale == FQT_SCALE_NONE ? 1 : f->block_rows;
    p.rounding = rounding;
    p.axis = axis;
    p.tensor_scale = f->tensor_scale;
    p.scale_ceil = f->scale_ceil;
    p.emax_val = fqt_elem_max(f->elem);
    p.emax = fqt_elem_emax(f->elem);
    p.seed = seed;
    p.stream = stream;
    p.rows = q->rows;
    p.cols = q->cols;
    p.row_bytes = q->row_bytes;
    p.scale_rows = q->scale_rows;
    p.scale_cols = q->scale_cols;
    p.src_cols = C;

    float *tsc = (float *)fqt_cuda_scratch(FQT_SCR_TSCALE, 4 * sizeof(float) + QZ_MAX_GRID * sizeof(float));
    float *apart = tsc + 4;
    float *slot = fqt_backend_qtensor_scale_slot(q);
    const int64_t n = R * C;
    p.slot = NULL;
    p.slot_from = NULL;
    if (!f->tensor_scale && n > 0) { /* s_enc = s_dec = pre = 1: no amax, no tscale launch */
        static float *ones;
        if (!ones) FQT_CUDA_CHECK(cudaGetSymbolAddress((void **)&ones, qz_ones));
        tsc = ones;
        p.slot = slot;
    }
    if (f->tensor_scale && n > 0 && tscale) { /* computed before for this source: no amax pass */
        tsc = (float *)tscale;
        p.slot = slot;
        p.slot_from = tscale + 3;
    } else if (f->tensor_scale && n > 0) {
        qz_amax_launch<TS>(src, n, fqt_elem_max(f->elem), apart, tsc, slot);
    } else if (!p.slot) {
        qz_tscale_one_kernel<<<1, 1>>>(tsc, slot);
        FQT_CUDA_LAUNCHED();
    }
    if (n == 0) return;

    const int64_t nblk = f->scale == FQT_SCALE_NONE ? 0 : q->scale_rows * q->scale_cols;
    const bool fused = !stats && nblk && p.block_rows == 1 && (p.bits != 4 || !(p.block & 1)) &&
                       !getenv("FQT_CUDA_QUANT_GENERIC");
    if (!stats && !nblk && axis == FQT_AXIS_ROWS && p.bits >= 8 && !getenv("FQT_CUDA_QUANT_GENERIC")) {
        qz_plain_rows_kernel<TS><<<qz_grid(n), QZ_THREADS>>>(p, src, q->codes, n);
        FQT_CUDA_LAUNCHED();
        return;
    }
    if (!stats && !nblk && axis == FQT_AXIS_COLS && p.bits >= 8 && !getenv("FQT_CUDA_QUANT_GENERIC")) {
        if (sizeof(TS) == 2 && p.bits == 16 && q->rows % 8 == 0 && q->cols % 8 == 0 && (uintptr_t)src % 16 == 0 &&
            (uintptr_t)q->codes % 16 == 0 && !getenv("FQT_CUDA_QUANT_SCALAR")) {
            const int64_t tr = (q->rows + 63) / 64, tc = (q->cols + 63) / 64;
            dim3 grid((unsigned)(tr < 65535 ? tr : 65535), (unsigned)(tc < 65535 ? tc : 65535));
            if (p.elem == FQT_ELEM_BF16)
                qz_plain_cols16_kernel<true><<<grid, 256>>>(p, (const bf16_t *)(const void *)src, (uint16_t *)(void *)q->codes);
            else
                qz_plain_cols16_kernel<false><<<grid, 256>>>(p, (const bf16_t *)(const void *)src, (uint16_t *)(void *)q->codes);
            FQT_CUDA_LAUNCHED();
            return;
        }
        const int64_t tr = (q->rows + 31) / 32, tc = (q->cols + 31) / 32;
        dim3 grid((unsigned)(tr < 65535 ? tr : 65535), (unsigned)(tc < 65535 ? tc : 65535));
        qz_plain_cols_kernel<TS><<<grid, dim3(32, 8)>>>(p, src, q->codes);
        FQT_CUDA_LAUNCHED();
        return;
    }
    if (e2m1 == QZ_E2M1_ROWS) {
#define QZ_ROWS4(BLK, EXP) qz_rows4_kernel<TS, BLK, EXP><<<qz_grid(nblk), QZ_THREADS>>>(p, src, q->codes, q->scales, tsc)
        if (p.block == 16 && q->expanded) QZ_ROWS4(16, true);
        else if (p.block == 16) QZ_ROWS4(16, false);
        else if (q->expanded) QZ_ROWS4(32, true);
        else QZ_ROWS4(32, false);
#undef QZ_ROWS4
        FQT_CUDA_LAUNCHED();
        return;
    }
    if (e2m1 == QZ_E2M1_COLS) {
        dim3 grid((unsigned)((q->rows + QZ_TILE - 1) / QZ_TILE), (unsigned)((q->cols + QZ_TILE - 1) / QZ_TILE));
#define QZ_COLS4(BLK, EXP) qz_cols4_kernel<TS, BLK, EXP><<<grid, QZ_TILE * (QZ_TILE / BLK)>>>(p, src, q->codes, q->scales, tsc)
        if (p.block == 16 && q->expanded) QZ_COLS4(16, true);
        else if (p.block == 16) QZ_COLS4(16, false);
        else if (q->expanded) QZ_COLS4(32, true);
        else QZ_COLS4(32, false);
#undef QZ_COLS4
        FQT_CUDA_LAUNCHED();
        return;
    }
    if (fused && qz_fp8_launch<TS>(p, src, q, axis, tsc, NULL)) return;
    if (fused) {
        qz_fused_kernel<TS><<<qz_grid(nblk), QZ_THREADS>>>(p, src, q->codes, q->scales, tsc);
        FQT_CUDA_LAUNCHED();
        return;
    }
    const unsigned g2 = nblk ? qz_grid(nblk) : 0;
    const int64_t nwork = p.bits == 4 ? q->rows * q->row_bytes : q->rows * q->cols;
    const unsigned g3 = qz_grid(nwork);
    qz_map *maps = (qz_map *)fqt_cuda_scratch(FQT_SCR_QMAP, (size_t)(nblk > 0 ? nblk : 1) * sizeof(qz_map));
    qz_part *part = stats ? (qz_part *)fqt_cuda_scratch(FQT_SCR_PART, (size_t)(g2 + g3) * sizeof(qz_part)) : NULL;
    if (nblk && !stats && p.block_rows * p.block >= 1024) {
        qz_scale2d_kernel<TS><<<(unsigned)(nblk < QZ_MAX_GRID ? nblk : QZ_MAX_GRID), QZ_THREADS>>>(p, src, q->scales, maps, tsc);
        FQT_CUDA_LAUNCHED();
        /* fp8-w's 128x128 blocks: the codes by the fp8 kernels, each 1x128 run mapped by its
         * 2-D block's map (the same arithmetic as qz_element, a warp per run) */
        if (!getenv("FQT_CUDA_QUANT_GENERIC") && qz_fp8_launch<TS>(p, src, q, axis, tsc, maps)) return;
    } else if (nblk) {
        if (stats) qz_scale_kernel<TS, true><<<g2, QZ_THREADS>>>(p, src, q->scales, maps, tsc, part);
        else qz_scale_kernel<TS, false><<<g2, QZ_THREADS>>>(p, src, q->scales, maps, tsc, NULL);
        FQT_CUDA_LAUNCHED();
    }
    if (stats) qz_codes_kernel<TS, true><<<g3, QZ_THREADS>>>(p, src, q->codes, maps, tsc, part + g2);
    else qz_codes_kernel<TS, false><<<g3, QZ_THREADS>>>(p, src, q->codes, maps, tsc, NULL);
    FQT_CUDA_LAUNCHED();
    if (stats) qz_merge(stats, part, g2 + g3);
}

void fqt_cuda_quantize(fqt_qtensor *q, const void *src, fqt_dtype src_dt, int64_t R, int64_t C,
                       fqt_axis axis, fqt_rounding rounding, uint64_t seed, uint64_t stream,
                       fqt_qstats *stats, const float *tscale) {
    FQT_ASSERT(q->rows == (axis == FQT_AXIS_ROWS ? R : C) && q->cols == (axis == FQT_AXIS_ROWS ? C : R));
    FQT_DT_DISPATCH(src_dt, TS, quantize_t<TS>(q, (const TS *)src, R, C, axis, rounding, seed, stream, stats, tscale));
}

/* The amax pass alone, its tensor scale into tscale (the layout of the kernels' tsc; the last
 * float doubles as the slot qz_amax_kernel writes). */
void fqt_cuda_tensor_scale(float *tscale, const void *src, fqt_dtype src_dt, int64_t n, const fqt_format *f) {
    FQT_ASSERT(f->tensor_scale);
    if (n <= 0) {
        qz_tscale_one_kernel<<<1, 1>>>(tscale, tscale + 3);
        FQT_CUDA_LAUNCHED();
        return;
    }
    float *apart = (float *)fqt_cuda_scratch(FQT_SCR_TSCALE, 4 * sizeof(float) + QZ_MAX_GRID * sizeof(float)) + 4;
    FQT_DT_DISPATCH(src_dt, TS, qz_amax_launch<TS>((const TS *)src, n, fqt_elem_max(f->elem), apart, tscale, tscale + 3));
}
