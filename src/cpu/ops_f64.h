/* cpu/ops_f64.h — the double-precision instantiation of the CPU reference ops (internal).
 *
 * fqt_ops_cpu_f64 runs exactly the code of fqt_ops_cpu (src/cpu/ops_impl.h) with REAL =
 * double. It exists for finite-difference gradient checks (tests/test_ops.c, whole-model
 * checks): every member has the contract of the fqt_ops member of the same name in
 * include/fqt/ops.h, with float replaced by double for tensors and scalar parameters
 * (token ids and targets stay int32_t). Not for training, and not part of the public API. */
#ifndef FQT_CPU_OPS_F64_H
#define FQT_CPU_OPS_F64_H

#include "fqt/common.h"

typedef struct fqt_ops_f64 {
    const char *name;

    void (*embedding_fwd)(double *out, const int32_t *tok, const double *wte, int64_t N,
                          int64_t C);
    void (*embedding_bwd)(double *dwte, const double *dout, const int32_t *tok, int64_t N,
                          int64_t C);

    void (*rmsnorm_fwd)(double *out, double *rstd, const double *in, const double *w,
                        int64_t N, int64_t C, double eps);
    void (*rmsnorm_bwd)(double *din, double *dw, const double *dout, const double *in,
                        const double *w, const double *rstd, int64_t N, int64_t C);

    void (*rope_fwd)(double *x, int64_t B, int64_t T, int64_t H, int64_t HS, double theta);
    void (*rope_bwd)(double *dx, int64_t B, int64_t T, int64_t H, int64_t HS, double theta);

    void (*attention_fwd)(double *out, double *stats, const double *q, const double *k,
                          const double *v, int64_t B, int64_t T, int64_t NH, int64_t NKV,
                          int64_t HS);
    void (*attention_bwd)(double *dq, double *dk, double *dv, const double *dout,
                          const double *stats, const double *q, const double *k,
                          const double *v, int64_t B, int64_t T, int64_t NH, int64_t NKV,
                          int64_t HS);

    void (*swiglu_fwd)(double *out, const double *gate, const double *up, int64_t n);
    void (*swiglu_bwd)(double *dgate, double *dup, const double *dout, const double *gate,
                       const double *up, int64_t n);

    double (*xent_fwd_bwd)(double *dlogits, double *losses, const double *logits,
                           const int32_t *targets, int64_t N, int64_t V, double dscale);

    void (*add_inplace)(double *y, const double *x, int64_t n);
} fqt_ops_f64;

extern const fqt_ops_f64 fqt_ops_cpu_f64;

#endif
