/* cuda/mx_fp8.cu — MXFP4 on FP8 tensor cores, the device half: the 1x128 E4M3 expansion of an
 * E2M1/E8M0 tensor (FORMATS.md §9), bit-identical to fqt_mx_e4m3_expand (formats/mx_fp8.c,
 * the oracle; tests/cuda/test_cuda_backend.c compares them with memcmp). qgemm.cu feeds two
 * such expansions to cuBLASLt's block-scaled FP8 GEMM when FQT_CUDA_MXFP4=fp8.
 *
 * One thread per (row, 128-column group): the group's largest block exponent, its scale, then
 * per block the 16 possible E4M3 bytes of code x 2^d (the same codec.h calls as the oracle, 16
 * per block instead of one per element), looked up per code with two byte permutes. */
#include "cuda/common.cuh"

#include <math.h>

typedef struct {
    int64_t rows, cols, row_bytes, scale_cols;
    int block;
} mx_params;

/* Byte `code` (0..15) of the 16-byte table t[0..3]. */
__device__ __forceinline__ uint32_t mx_lut(const uint32_t t[4], uint32_t code) {
    const uint32_t lo = __byte_perm(t[0], t[1], code & 7u), hi = __byte_perm(t[2], t[3], code & 7u);
    return (code & 8u ? hi : lo) & 0xFFu;
}

__global__ void mx_e4m3_expand_kernel(mx_params p, const uint8_t *codes, const uint8_t *scales, uint8_t *e4m3,
                                      float *gscale) {
    const int64_t ngroups = (p.cols + 127) / 128, n = p.rows * ngroups, bpg = 128 / p.block;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t r = i / ngroups, g = i - r * ngroups;
        const uint8_t *sc = scales + r * p.scale_cols, *row = codes + r * p.row_bytes;
        uint8_t *out = e4m3 + r * p.cols;
        const int64_t b0 = g * bpg, b1 = b0 + bpg < p.scale_cols ? b0 + bpg : p.scale_cols;
        int emax = -127, nan = 0;
        for (int64_t b = b0; b < b1; b++) {
            if (sc[b] == 0xFF) nan = 1;
            else if ((int)sc[b] - 127 > emax) emax = (int)sc[b] - 127;
        }
        gscale[i] = nan ? NAN : ldexpf(1.0f, emax - 6);
        for (int64_t b = b0; b < b1; b++) {
            const int d = sc[b] == 0xFF ? 0 : (int)sc[b] - 127 - emax + 6;
            const float m = ldexpf(1.0f, d);
            uint32_t t[4] = {0, 0, 0, 0};
#pragma unroll
            for (int k = 0; k < 16; k++)
                t[k >> 2] |= (uint32_t)fqt_e4m3_rne_i(fqt_e2m1_dec_i((uint8_t)k) * m) << (8 * (k & 3));
            const int64_t c0 = b * p.block, c1 = c0 + p.block < p.cols ? c0 + p.block : p.cols;
            int64_t c = c0;
            if (p.cols % 16 == 0) /* whole 16-code runs: one 8-byte load, one 16-byte store */
                for (; c + 16 <= c1; c += 16) {
                    const uint2 raw = *(const uint2 *)(row + (c >> 1));
                    uint32_t w[4];
#pragma unroll
                    for (int q = 0; q < 4; q++) {
                        const uint32_t word = q < 2 ? raw.x : raw.y, sh = (uint32_t)(q & 1) * 16;
                        w[q] = mx_lut(t, (word >> sh) & 0xFu) | mx_lut(t, (word >> (sh + 4)) & 0xFu) << 8 |
                               mx_lut(t, (word >> (sh + 8)) & 0xFu) << 16 | mx_lut(t, (word >> (sh + 12)) & 0xFu) << 24;
                    }
                    *(uint4 *)(out + c) = make_uint4(w[0], w[1], w[2], w[3]);
                }
            for (; c < c1; c++) out[c] = (uint8_t)mx_lut(t, (row[c >> 1] >> ((c & 1) * 4)) & 0xFu);
        }
    }
}

void fqt_cuda_mx_e4m3_expand_raw(const fqt_qtensor *q, uint8_t *e4m3, float *gscale) {
    const fqt_format *f = &q->fmt;
    FQT_ASSERT(f->elem == FQT_ELEM_E2M1 && f->scale == FQT_SCALE_E8M0 && !f->tensor_scale && f->block_rows == 1 &&
               f->block > 0 && 128 % f->block == 0 && !q->colmajor);
    mx_params p = {q->rows, q->cols, q->row_bytes, q->scale_cols, f->block};
    const int64_t n = q->rows * ((q->cols + 127) / 128);
    if (n <= 0) return;
    unsigned nb = fqt_cuda_blocks(n, 128);
    if (nb > 65536) nb = 65536;
    mx_e4m3_expand_kernel<<<nb, 128>>>(p, q->codes, q->scales, e4m3, gscale);
    FQT_CUDA_LAUNCHED();
}

extern "C" void fqt_cuda_mx_e4m3_expand(const fqt_qtensor *q, uint8_t *e4m3, float *gscale) {
    fqt_cuda_mx_e4m3_expand_raw(q, e4m3, gscale);
}
