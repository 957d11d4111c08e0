/* fqt/ops.h — the op interface: forward and backward of every non-GEMM op of the model.
 *
 * The CPU reference backend (src/cpu/ops.c, suffix _cpu) implements each op in plain C +
 * OpenMP; the CUDA backend will implement the same table. Tensors are float32, row-major,
 * shapes in the comments use the glossary of docs/FORMATS.md §1 (N = B*T rows).
 *
 * Gradient conventions: parameter gradients (dw) are ACCUMULATED (+=); input gradients
 * (din, dq, ...) are ACCUMULATED too unless the comment says "written", so a residual
 * branch can add into the stream's gradient directly.
 *
 * These are the float reference implementations behind the CPU backend (fqt/backend.h);
 * the model calls them only through the backend table. Not for: linear layers (GEMMs and
 * their quantization live in core/linear.c) and anything that is not per-op math. */
#ifndef FQT_OPS_H
#define FQT_OPS_H

#include "fqt/common.h"

typedef struct fqt_ops {
    const char *name;

    /* out[N,C] = wte[tok[n], :]  (written). tok values must be < V (caller validates). */
    void (*embedding_fwd)(float *out, const int32_t *tok, const float *wte, int64_t N,
                          int64_t C);
    /* dwte[tok[n], :] += dout[n, :] */
    void (*embedding_bwd)(float *dwte, const float *dout, const int32_t *tok, int64_t N,
                          int64_t C);

    /* RMSNorm: out = in * rstd * w, rstd[n] = 1/sqrt(mean(in[n]^2) + eps). out, rstd written. */
    void (*rmsnorm_fwd)(float *out, float *rstd, const float *in, const float *w, int64_t N,
                        int64_t C, float eps);
    /* din += d/din, dw += d/dw, from dout, in, w and the saved rstd. */
    void (*rmsnorm_bwd)(float *din, float *dw, const float *dout, const float *in,
                        const float *w, const float *rstd, int64_t N, int64_t C);

    /* Rotary embedding in place on x[B,T,H,HS] (H = NH for q, NKV for k), Hugging Face
     * Llama convention ("rotate_half"): pairs (i, i+HS/2), angle t * theta^(-2i/HS). */
    void (*rope_fwd)(float *x, int64_t B, int64_t T, int64_t H, int64_t HS, float theta);
    /* In place: dx <- R^T dx (the inverse rotation). */
    void (*rope_bwd)(float *dx, int64_t B, int64_t T, int64_t H, int64_t HS, float theta);

    /* Causal attention, scale 1/sqrt(HS), grouped-query: head h reads kv head h/(NH/NKV).
     * q[B,T,NH,HS], k,v[B,T,NKV,HS] -> out[B,T,NH,HS] (written); stats[B,NH,T,2] (written)
     * receives per query row the maximum scaled score and the reciprocal of the sum of the
     * exponentials (the log-sum-exp, kept so that backward recomputes the probabilities bit
     * for bit): O(T) saved per row, not the [T, T] probabilities. */
    void (*attention_fwd)(float *out, float *stats, const float *q, const float *k,
                          const float *v, int64_t B, int64_t T, int64_t NH, int64_t NKV,
                          int64_t HS);
    /* dq, dk, dv WRITTEN (not accumulated), same shapes as q, k, v. */
    void (*attention_bwd)(float *dq, float *dk, float *dv, const float *dout, const float *stats,
                          const float *q, const float *k, const float *v, int64_t B,
                          int64_t T, int64_t NH, int64_t NKV, int64_t HS);

    /* SwiGLU: out = silu(gate) * up, elementwise over n (written). */
    void (*swiglu_fwd)(float *out, const float *gate, const float *up, int64_t n);
    /* dgate, dup WRITTEN. */
    void (*swiglu_bwd)(float *dgate, float *dup, const float *dout, const float *gate,
                       const float *up, int64_t n);

    /* Softmax cross-entropy over logits[N,V] with targets[N] (a target < 0 is ignored).
     * Returns the mean loss over counted rows (per-row terms in float, summed in double);
     * losses[N] (written, may be NULL); if dlogits is not NULL it is WRITTEN with dscale * (softmax - onehot) for
     * counted rows and 0 for ignored ones (dscale is typically 1/count). dlogits may alias
     * logits. */
    double (*xent_fwd_bwd)(float *dlogits, float *losses, const float *logits,
                           const int32_t *targets, int64_t N, int64_t V, float dscale);

    /* y += x, n elements. */
    void (*add_inplace)(float *y, const float *x, int64_t n);
} fqt_ops;

extern const fqt_ops fqt_ops_cpu;

/* In place: x[N, C] <- (H·S) x along the rows, in blocks of 16 rows (a partial last block is
 * left as is). H is the orthonormal 16x16 Sylvester Hadamard matrix (entries ±1/4, exact),
 * S a diagonal of random signs from the §4 bits of (seed, stream, row). CPU reference of the
 * backend entry hadamard16_rows. */
void fqt_hadamard16_rows(float *x, int64_t N, int64_t C, uint64_t seed, uint64_t stream);

#endif
