/* cuda/dequantize.cu — decode a quantized tensor: (code * block scale) * s_dec in the §5.1
 * order, bit-identical to fqt_dequantize for float32 output (bf16 output is that value
 * rounded to nearest even). The tensor scale is read from the tensor's trailing float.
 * fqt_cuda_dequantize_raw can leave the tensor scale out (the GEMM puts it into alpha).
 *
 * NaN bits: a block with a NaN scale decodes to NaN (§5.1). The GPU's multiply returns its
 * canonical NaN (0x7FFFFFFF), the x86 CPU the first NaN operand, quieted, or the "indefinite"
 * 0xFFC00000 for Inf x 0; mul_as_cpu reproduces the CPU's bits so that the two dequantized
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

/* a * b with x86 SSE NaN propagation. */
__device__ __forceinline__ float mul_as_cpu(float a, float b) {
    const float r = a * b;
    if (!isnan(r)) return r;
    if (isnan(a)) return fqt_u2f(fqt_f2u(a) | 0x00400000u);
    if (isnan(b)) return fqt_u2f(fqt_f2u(b) | 0x00400000u);
    return fqt_u2f(0xFFC00000u);
}

/* Rows over blockIdx.y (grid-stride), columns over x: no 64-bit division per element. */
template <typename TD>
__global__ void dq_kernel(dq_params p, const uint8_t *codes, const uint8_t *scales, const float *slot, TD *dst) {
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
                v = mul_as_cpu(v, dq_scale(p.scale, srow, c / p.block));
                if (p.tensor_scale) v = mul_as_cpu(v, s_dec);
            }
            stf(out, c, v);
        }
    }
}

/* E2M1 codes with 1-D blocks of 16 or 32 along rows (the FP4 formats' layout, cols % 16 == 0):
 * one thread per 16 codes, one 8-byte load, one scale, the same per-element math as dq_kernel
 * (so the same bits), 16-byte stores. */
template <typename TD>
__global__ void dq_e2m1_kernel(dq_params p, const uint8_t *codes, const uint8_t *scales, const float *slot, TD *dst) {
    const float s_dec = p.tensor_scale ? *slot : 1.0f;
    const int64_t cpr = p.cols / 16, n = p.rows * cpr;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t r = i / cpr, j = i - r * cpr;
        const uint2 raw = *(const uint2 *)(codes + r * p.row_bytes + j * 8);
        const float sc = dq_scale(p.scale, scales + r * p.scale_cols, (j * 16) / p.block);
        float v[16];
#pragma unroll
        for (int k = 0; k < 16; k++) {
            const uint32_t word = k < 8 ? raw.x : raw.y;
            const uint32_t code = (word >> ((k & 7) * 4)) & 0xFu;
            float x = mul_as_cpu(fqt_elem_decode_i(FQT_ELEM_E2M1, code), sc);
            if (p.tensor_scale) x = mul_as_cpu(x, s_dec);
            v[k] = x;
        }
        TD *out = dst + r * p.cols + j * 16;
        if (sizeof(TD) == 2) {
            uint32_t w[8];
#pragma unroll
            for (int k = 0; k < 8; k++)
                w[k] = (uint32_t)fqt_bf16_rne_i(v[2 * k]) | ((uint32_t)fqt_bf16_rne_i(v[2 * k + 1]) << 16);
            ((uint4 *)out)[0] = make_uint4(w[0], w[1], w[2], w[3]);
            ((uint4 *)out)[1] = make_uint4(w[4], w[5], w[6], w[7]);
        } else {
#pragma unroll
            for (int k = 0; k < 16; k += 4)
                *(float4 *)((float *)(void *)out + k) = make_float4(v[k], v[k + 1], v[k + 2], v[k + 3]);
        }
    }
}

void fqt_cuda_dequantize_raw(const fqt_qtensor *q, void *dst, fqt_dtype dst_dt, bool with_tensor_scale) {
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
    if (n <= 0) return;
    FQT_ASSERT(q->cols < 2147483647);
    dim3 grid((unsigned)((q->cols + 255) / 256 < 8 ? (q->cols + 255) / 256 : 8),
              (unsigned)(q->rows < 65535 ? q->rows : 65535));
    const float *slot = fqt_backend_qtensor_scale_slot(q);
    const bool vec = f->elem == FQT_ELEM_E2M1 && (f->scale == FQT_SCALE_UE4M3 || f->scale == FQT_SCALE_E8M0) &&
                     (p.block == 16 || p.block == 32) && p.block_rows == 1 && q->cols % 16 == 0 &&
                     q->row_bytes % 8 == 0 && ((uintptr_t)q->codes & 7) == 0 && ((uintptr_t)dst & 15) == 0;
    if (vec) {
        unsigned nb = fqt_cuda_blocks(n / 16, 256);
        if (nb > 65536) nb = 65536;
        FQT_DT_DISPATCH(dst_dt, TD, dq_e2m1_kernel<TD><<<nb, 256>>>(p, q->codes, q->scales, slot, (TD *)dst));
        FQT_CUDA_LAUNCHED();
        return;
    }
    FQT_DT_DISPATCH(dst_dt, TD, dq_kernel<TD><<<grid, 256>>>(p, q->codes, q->scales, slot, (TD *)dst));
    FQT_CUDA_LAUNCHED();
}

void fqt_cuda_dequantize(const fqt_qtensor *q, void *dst, fqt_dtype dst_dt) {
    fqt_cuda_dequantize_raw(q, dst, dst_dt, true);
}
