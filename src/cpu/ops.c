/* cpu/ops.c — the CPU reference op tables: fqt_ops_cpu (float, include/fqt/ops.h) and
 * fqt_ops_cpu_f64 (double, src/cpu/ops_f64.h), two instantiations of cpu/ops_impl.h.
 *
 * Not for: the op math itself (ops_impl.h), GEMMs. */
#include "fqt/ops.h"
#include "cpu/exp_f32.h"
#include "cpu/ops_f64.h"

#define REAL float
#define SUFFIX(name) name##_f32
#define REXP(x) fqt_exp_f32(x)
#include "cpu/ops_impl.h"
#undef REAL
#undef SUFFIX
#undef REXP

#define REAL double
#define SUFFIX(name) name##_f64
#define REXP(x) exp(x)
#include "cpu/ops_impl.h"
#undef REAL
#undef SUFFIX
#undef REXP

const fqt_ops fqt_ops_cpu = {
    .name = "cpu",
    .embedding_fwd = embedding_fwd_f32,
    .embedding_bwd = embedding_bwd_f32,
    .rmsnorm_fwd = rmsnorm_fwd_f32,
    .rmsnorm_bwd = rmsnorm_bwd_f32,
    .rope_fwd = rope_fwd_f32,
    .rope_bwd = rope_bwd_f32,
    .attention_fwd = attention_fwd_f32,
    .attention_bwd = attention_bwd_f32,
    .swiglu_fwd = swiglu_fwd_f32,
    .swiglu_bwd = swiglu_bwd_f32,
    .xent_fwd_bwd = xent_fwd_bwd_f32,
    .add_inplace = add_inplace_f32,
};

const fqt_ops_f64 fqt_ops_cpu_f64 = {
    .name = "cpu_f64",
    .embedding_fwd = embedding_fwd_f64,
    .embedding_bwd = embedding_bwd_f64,
    .rmsnorm_fwd = rmsnorm_fwd_f64,
    .rmsnorm_bwd = rmsnorm_bwd_f64,
    .rope_fwd = rope_fwd_f64,
    .rope_bwd = rope_bwd_f64,
    .attention_fwd = attention_fwd_f64,
    .attention_bwd = attention_bwd_f64,
    .swiglu_fwd = swiglu_fwd_f64,
    .swiglu_bwd = swiglu_bwd_f64,
    .xent_fwd_bwd = xent_fwd_bwd_f64,
    .add_inplace = add_inplace_f64,
};
