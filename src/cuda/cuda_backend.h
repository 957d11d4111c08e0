/* cuda/cuda_backend.h — the C-visible entry points of the CUDA backend (no CUDA types).
 *
 * fqt_backend_cuda_open: the backend that core/backend.c hands out for "cuda"; activations in
 * float32, or in bf16 when the environment has FQT_CUDA_ACT=bf16. NULL with fqt_last_error()
 * set when no GPU is usable. fqt_backend_cuda_open_act: the same with the activation storage
 * chosen by the caller (tests run both). Not for: anything else (the table is the interface). */
#ifndef FQT_CUDA_BACKEND_H
#define FQT_CUDA_BACKEND_H

#include "fqt/backend.h"

#ifdef __cplusplus
extern "C" {
#endif
const fqt_backend *fqt_backend_cuda_open(void);
const fqt_backend *fqt_backend_cuda_open_act(fqt_dtype act);
#ifdef __cplusplus
}
#endif

#endif
