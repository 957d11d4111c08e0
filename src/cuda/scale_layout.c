/* cuda/scale_layout.c — host-side conversion of block scales from fqt's row-major layout to
 * the tiled layout of cuBLASLt's block-scaled FP4 GEMMs on Blackwell (VEC16_UE4M3 for NVFP4,
 * VEC32_UE8M0 for MXFP4), docs/FORMATS.md §7. Plain C (no CUDA), so `make test` checks it on
 * any machine (tests/test_cuda_host.c); the oracle of the device conversion that the
 * Blackwell FP4 GEMM path of qgemm.cu runs. Not yet run on a Blackwell GPU: the mapping is to
 * be verified there against cuBLASLt. */
#include "cuda/scale_layout.h"

#include <string.h>

size_t fqt_scales_tiled_bytes(int64_t rows, int64_t scols) {
    const int64_t pr = (rows + 127) / 128 * 128, pc = (scols + 3) / 4 * 4;
    return (size_t)(pr * pc);
}

void fqt_scales_to_tiled(const uint8_t *src, int64_t rows, int64_t scols, uint8_t *dst) {
    memset(dst, 0, fqt_scales_tiled_bytes(rows, scols));
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < scols; c++) dst[fqt_scales_tiled_offset(r, c, scols)] = src[r * scols + c];
}
