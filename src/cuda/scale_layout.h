/* cuda/scale_layout.h — fqt row-major block scales [rows, scols] (one byte each) to the
 * Blackwell cuBLASLt tiled scale layout (docs/FORMATS.md §7): padded to 128 rows x 4 columns,
 * 512-byte tiles stored row-major, inside a tile offset (r%32)*16 + ((r%128)/32)*4 + (c%4).
 * Padding bytes are zero. The offset and its inverse are FQT_HD: the host conversion
 * (scale_layout.c, tested by tests/test_cuda_host.c) and the device one (qgemm.cu, tested
 * against it by tests/cuda/test_cuda_backend.c) share them. Not verified on a Blackwell GPU. */
#ifndef FQT_CUDA_SCALE_LAYOUT_H
#define FQT_CUDA_SCALE_LAYOUT_H

#include "fqt/common.h"

#include <stddef.h>
#include <stdint.h>

/* Where scale (r, c) goes. */
static inline FQT_HD int64_t fqt_scales_tiled_offset(int64_t r, int64_t c, int64_t scols) {
    const int64_t tiles_per_row = (scols + 3) / 4;
    const int64_t tile = (r / 128) * tiles_per_row + c / 4;
    return tile * 512 + (r % 32) * 16 + ((r % 128) / 32) * 4 + (c % 4);
}

/* The inverse: the row-major index r * scols + c of the scale at tiled offset o, or -1 for a
 * padding byte (r >= rows or c >= scols). */
static inline FQT_HD int64_t fqt_scales_tiled_source(int64_t o, int64_t rows, int64_t scols) {
    const int64_t tiles_per_row = (scols + 3) / 4, tile = o / 512, in = o % 512;
    const int64_t r = (tile / tiles_per_row) * 128 + ((in % 16) / 4) * 32 + in / 16;
    const int64_t c = (tile % tiles_per_row) * 4 + in % 4;
    return r < rows && c < scols ? r * scols + c : -1;
}

#ifdef __cplusplus
extern "C" {
#endif
size_t fqt_scales_tiled_bytes(int64_t rows, int64_t scols);
void fqt_scales_to_tiled(const uint8_t *src, int64_t rows, int64_t scols, uint8_t *dst);
#ifdef __cplusplus
}
#endif

#endif
