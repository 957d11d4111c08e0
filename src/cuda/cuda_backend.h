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
 * (exposed for tests/cuda). Not for: anything else (the table is the interface). */
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
#ifdef __cplusplus
}
#endif

#endif
