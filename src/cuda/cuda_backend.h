/* cuda/cuda_backend.h — the C-visible entry points of the CUDA backend (no CUDA types).
 *
 * fqt_backend_cuda_open: the backend that core/backend.c hands out for "cuda"; activations in
 * bf16, or in float32 when the environment has FQT_CUDA_ACT=f32 (or fp32). NULL with
 * fqt_last_error() set when no GPU is usable or a FQT_CUDA_* variable has an unknown value.
 * fqt_backend_cuda_open_act: the same with the activation storage chosen by the caller (tests
 * run both). fqt_backend_cuda_env_valid(device): whether every FQT_CUDA_* variable has a known
 * value (checked before looking for a GPU, so also on machines without one; the message names
 * --device `device`).
 * fqt_cuda_mx_e4m3_expand: the GPU's fqt_mx_e4m3_expand on a device tensor into device buffers
 * (exposed for tests/cuda); likewise fqt_cuda_scales_to_tiled (fqt_scales_to_tiled, the
 * Blackwell FP4 GEMM's scale layout, on device buffers), fqt_cuda_fp4_native (whether NVFP4 and
 * MXFP4 GEMMs go to FP4 tensor cores on this GPU) and fqt_cuda_qgemm_ran (how many qgemm calls
 * took each path). Not for: anything else (the table is the interface). */
#ifndef FQT_CUDA_BACKEND_H
#define FQT_CUDA_BACKEND_H

#include "fqt/backend.h"

#ifdef __cplusplus
extern "C" {
#endif
const fqt_backend *fqt_backend_cuda_open(void);
const fqt_backend *fqt_backend_cuda_open_act(fqt_dtype act);
bool fqt_backend_cuda_env_valid(const char *device); /* false, with fqt_last_error() naming
                                                        --device `device`, for an unknown value */
void fqt_cuda_mx_e4m3_expand(const fqt_qtensor *q, uint8_t *e4m3, float *gscale);
void fqt_cuda_scales_to_tiled(uint8_t *dst, const uint8_t *src, int64_t rows, int64_t scols);
bool fqt_cuda_fp4_native(void);
/* The GEMM paths of cuda/qgemm.cu (FORMATS.md §7.1). */
typedef enum {
    FQT_CUDA_QG_BF16 = 0, /* exact, BF16 tensor cores */
    FQT_CUDA_QG_F32,      /* dequantized to FP32, CUDA cores */
    FQT_CUDA_QG_FP8,      /* block-scaled FP8 (fp8, fp8-w) */
    FQT_CUDA_QG_MX_FP8,   /* MXFP4 expanded to block-scaled FP8 (FQT_CUDA_MXFP4=fp8) */
    FQT_CUDA_QG_FP4,      /* block-scaled FP4 (Blackwell: NVFP4, MXFP4) */
    FQT_CUDA_QG_PATHS
} fqt_cuda_qg_path;
unsigned long long fqt_cuda_qgemm_ran(fqt_cuda_qg_path p);
#ifdef __cplusplus
}
#endif

#endif
