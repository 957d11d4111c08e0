/* cuda/scale_layout.h — fqt row-major block scales [rows, scols] (one byte each) to the
 * Blackwell cuBLASLt tiled scale layout (docs/FORMATS.md §7): padded to 128 rows x 4 columns,
 * 512-byte tiles stored row-major, inside a tile offset (r%32)*16 + ((r%128)/32)*4 + (c%4).
 * Padding bytes are zero. Host only; not verified on hardware. */
#ifndef FQT_CUDA_SCALE_LAYOUT_H
#define FQT_CUDA_SCALE_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif
size_t fqt_scales_tiled_bytes(int64_t rows, int64_t scols);
int64_t fqt_scales_tiled_offset(int64_t r, int64_t c, int64_t scols);
void fqt_scales_to_tiled(const uint8_t *src, int64_t rows, int64_t scols, uint8_t *dst);
#ifdef __cplusplus
}
#endif

#endif
