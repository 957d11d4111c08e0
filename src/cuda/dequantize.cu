/* cuda/dequantize.cu — decode a quantized tensor: (code * block scale) * s_dec in the §5.1
 * order, bit-identical to fqt_dequantize for float32 output (bf16 output is that value
 * rounded to nearest even). The tensor scale is read from the tensor's trailing float.
 * fqt_cuda_dequantize_raw can leave the tensor scale out (the GEMM puts it into alpha).
 *
 * NaN bits: a block with a NaN scale decodes to NaN (§5.1). The GPU's multiply returns its
 * canonical NaN (0x7FFFFFFF), the x86 CPU the first NaN operand, quieted, or the "indefinite"
 * 0xFFC00000 for Inf x 0; fqt_mul_as_cpu (common.cuh) reproduces the CPU's bits so that the two dequantized
 * tensors memcmp equal, NaNs included. */
#include "cuda/common.cuh"

typedef struct {
    int elem, scale, bits, block, block_rows;
    bool tensor_scale;
    int64_t rows, cols, row_bytes, scale_cols;
} dq_params;

__device__ __forceinline__ float dq_scale(int scale, const uint8_t *scales, int64_t i) {
    switch (scale) {
    case FQT_SCALE_E8M0: return fqt_e8m0_dec_i(scales[i]);
    case FQT_SCALE_UE4M3: return fqt_ue4m3_dec_i(scales[i]);
    case FQT_SCALE_FP32: { float s; memcpy(&s, scales + 4 * i, 4); return s; }
    default: return 1.0f;
    }
}

/* Rows over blockIdx.y (grid-stride), columns over x: no 64-bit division per element. */
template <typename TD>
__global__ void dq_kernel(dq_params p, const uint8_t *codes, const uint8_t *scales, const float *slot, TD *dst,
                          fqt_cuda_alpha al) {
    if (al.ab && blockIdx.x == 0 && blockIdx.y == 0 && threadIdx.x == 0) fqt_cuda_alpha_put(al);
    const float s_dec = p.tensor_scale ? *slot : 1.0f;
    const int cols = (int)p.cols;
    for (int64_t r = blockIdx.y; r < p.rows; r += gridDim.y) {
        const uint8_t *row = codes + r * p.row_bytes;
        const uint8_t *srow = scales + (r / p.block_rows) * p.scale_cols * (p.scale == FQT_SCALE_FP32 ? 4 : 1);
        TD *out = dst + r * p.cols;
        for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < cols; c += gridDim.x * blockDim.x) {
            uint32_t code;
            if (p.bits == 4) code = (row[c >> 1] >> ((c & 1) * 4)) & 0xFu;
            else if (p.bits == 8) code = row[c];
            else if (p.bits == 16) code = ((const uint16_t *)row)[c];
            else code = ((const uint32_t *)row)[c];
            float v = fqt_elem_decode_i((fqt_elem)p.elem, code);
            if (p.scale != FQT_SCALE_NONE) {
                v = fqt_mul_as_cpu(v, dq_scale(p.scale, srow, c / p.block));
                if (p.tensor_scale) v = fqt_mul_as_cpu(v, s_dec);
            }
            stf(out, c, v);
        }
    }
}

/* E2M1 codes with 1-D blocks of 16 or 32 along rows (the FP4 formats' layout, cols % 16 == 0):
 * one thread per G = 16 or 32 codes (8- or 16-byte loads; 32 when cols % 32 == 0 and the rows
 * are 16-byte aligned), a scale per 16 codes, the same per-element math as dq_kernel (so the
 * same bits), 16-byte stores. bf16 output without the tensor scale (the GEMM's operands) takes
 * dq_e2m1_bf16_exact for 16 codes whose block scale is finite. */
template <typename TD, int G>
__global__ void dq_e2m1_kernel(dq_params p, const uint8_t *codes, const uint8_t *scales, const float *slot, TD *dst,
                               fqt_cuda_alpha al) {
    if (al.ab && blockIdx.x == 0 && threadIdx.x == 0) fqt_cuda_alpha_put(al);
    const float s_dec = p.tensor_scale ? *slot : 1.0f;
    const int64_t cpr = p.cols / G, n = p.rows * cpr;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t j;
        const int64_t r = fqt_divmod(i, cpr, &j);
        uint32_t raw[G / 8];
        if (G == 32) {
            const uint4 u = *(const uint4 *)(codes + r * p.row_bytes + j * 16);
            raw[0] = u.x, raw[1] = u.y, raw[2 % (G / 8)] = u.z, raw[3 % (G / 8)] = u.w;
        } else {
            const uint2 u = *(const uint2 *)(codes + r * p.row_bytes + j * 8);
            raw[0] = u.x, raw[1] = u.y;
        }
#pragma unroll
        for (int h = 0; h < G / 16; h++) { /* 16 codes: words raw[2h], raw[2h + 1] */
            const float sc = dq_scale(p.scale, scales + r * p.scale_cols, (j * G + 16 * h) / p.block);
            TD *out = dst + r * p.cols + j * G + 16 * h;
            if (sizeof(TD) == 2 && !p.tensor_scale && sc == sc) {
                uint32_t w[8];
#pragma unroll
                for (int k = 0; k < 8; k++) {
                    const uint32_t word = raw[2 * h + k / 4], sh = (uint32_t)(k & 3) * 8;
                    w[k] = fqt_e2m1_bf16_exact(word >> sh, sc) | (fqt_e2m1_bf16_exact(word >> (sh + 4), sc) << 16);
                }
                ((uint4 *)out)[0] = make_uint4(w[0], w[1], w[2], w[3]);
                ((uint4 *)out)[1] = make_uint4(w[4], w[5], w[6], w[7]);
                continue;
            }
            float v[16];
#pragma unroll
            for (int k = 0; k < 16; k++) {
                const uint32_t code = (raw[2 * h + k / 8] >> ((k & 7) * 4)) & 0xFu;
                float x = fqt_mul_as_cpu(fqt_elem_decode_i(FQT_ELEM_E2M1, code), sc);
                if (p.tensor_scale) x = fqt_mul_as_cpu(x, s_dec);
                v[k] = x;
            }
            st8(out, v); /* (bf16: rounded to nearest even) */
            st8(out + 8, v + 8);
        }
    }
}

void fqt_cuda_dequantize_raw(const fqt_qtensor *q, void *dst, fqt_dtype dst_dt, bool with_tensor_scale,
                             const fqt_cuda_alpha *alpha) {
    FQT_ASSERT(!q->colmajor && !q->expanded); /* views and expanded tensors are GEMM operands only */
    fqt_cuda_alpha al = {NULL, NULL, NULL, 0.0f, 0.0f};
    if (alpha) al = *alpha;
    const fqt_format *f = &q->fmt;
    dq_params p;
    p.elem = f->elem;
    p.scale = f->scale;
    p.bits = fqt_elem_bits(f->elem);
    p.block = f->block > 0 ? f->block : 1;
    p.block_rows = f->block_rows > 0 ? f->block_rows : 1;
    p.tensor_scale = f->tensor_scale && with_tensor_scale;
    p.rows = q->rows;
    p.cols = q->cols;
    p.row_bytes = q->row_bytes;
    p.scale_cols = q->scale_cols;
    const int64_t n = q->rows * q->cols;
    if (n <= 0) {
        FQT_ASSERT(!al.ab);
        return;
    }
    FQT_ASSERT(q->cols < 2147483647);
    dim3 grid((unsigned)((q->cols + 255) / 256 < 8 ? (q->cols + 255) / 256 : 8),
              (unsigned)(q->rows < 65535 ? q->rows : 65535));
    const float *slot = fqt_backend_qtensor_scale_slot(q);
    const bool vec = f->elem == FQT_ELEM_E2M1 && (f->scale == FQT_SCALE_UE4M3 || f->scale == FQT_SCALE_E8M0) &&
                     (p.block == 16 || p.block == 32) && p.block_rows == 1 && q->cols % 16 == 0 &&
                     q->row_bytes % 8 == 0 && ((uintptr_t)q->codes & 7) == 0 && ((uintptr_t)dst & 15) == 0;
    if (vec) {
        const bool g32 = q->cols % 32 == 0 && q->row_bytes % 16 == 0 && ((uintptr_t)q->codes & 15) == 0;
        unsigned nb = fqt_cuda_blocks(n / (g32 ? 32 : 16), 256);
        if (nb > 65536) nb = 65536;
        if (g32) FQT_DT_DISPATCH(dst_dt, TD, dq_e2m1_kernel<TD, 32><<<nb, 256>>>(p, q->codes, q->scales, slot, (TD *)dst, al));
        else FQT_DT_DISPATCH(dst_dt, TD, dq_e2m1_kernel<TD, 16><<<nb, 256>>>(p, q->codes, q->scales, slot, (TD *)dst, al));
        FQT_CUDA_LAUNCHED();
        return;
    }
    FQT_DT_DISPATCH(dst_dt, TD, dq_kernel<TD><<<grid, 256>>>(p, q->codes, q->scales, slot, (TD *)dst, al));
    FQT_CUDA_LAUNCHED();
}

void fqt_cuda_dequantize(const fqt_qtensor *q, void *dst, fqt_dtype dst_dt) {
    fqt_cuda_dequantize_raw(q, dst, dst_dt, true, NULL);
}
