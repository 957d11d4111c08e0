/* fqt/backend.h — the one seam between the math and the machine.
 *
 * Everything above this table (the model, the linear layers, the optimizer step, the run
 * loop, checkpoints, evaluation and sampling) calls only these entries; a new device is a new
 * folder under src/ that fills the table. The CPU backend (src/cpu/, fqt_backend_cpu) is the
 * reference every other backend is tested against (tests/test_backend.c).
 *
 * Memory. Every pointer an entry takes is backend memory (from alloc) unless its comment says
 * "host". Parameters, their gradients and the AdamW moments are float32 slabs; activations
 * and activation gradients are stored in the backend's act_dtype (float32 on the CPU; a
 * device backend may choose bf16), named `act` below; per-row statistics (RMSNorm rstd,
 * attention row stats, losses) are float32. Token ids are int32.
 *
 * Quantized tensors. An fqt_qtensor whose codes and scales live in backend memory: the core
 * sizes it with fqt_qtensor_shape and carves codes, scales and one trailing float (the tensor
 * scale s_dec, where a device backend keeps it) out of a workspace, see
 * fqt_backend_qtensor_bytes. The host field tensor_scale is valid only for host-memory
 * backends.
 *
 * Determinism. No result may depend on the thread count, the launch shape or the device:
 * stochastic rounding is keyed by (seed, stream, element index) exactly as fqt_quantize
 * (docs/FORMATS.md §4); every reduction has a fixed order. Bit-identity with the CPU is the
 * contract for quantize/dequantize; the other entries are compared with derived tolerances.
 *
 * Conventions as fqt/ops.h: parameter gradients ACCUMULATE (+=); input gradients accumulate
 * unless the comment says "written". Shapes use docs/FORMATS.md §1 letters, N = B*T.
 * Not for: choosing formats (recipe.h), the run loop (train.h). */
#ifndef FQT_BACKEND_H
#define FQT_BACKEND_H

#include "fqt/formats.h"

typedef enum { FQT_DT_F32 = 0, FQT_DT_BF16, FQT_DT_COUNT } fqt_dtype;
size_t fqt_dtype_size(fqt_dtype t);

/* One parameter tensor of the slab for the optimizer: [offset, offset + numel) and whether
 * weight decay applies. */
typedef struct {
    int64_t offset, numel;
    bool decay;
} fqt_param_segment;

/* One AdamW step (fused): for every slab index i in [begin, end):
 *   g = grads[i] * grad_scale; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g g;
 *   w -= lr * ((m / bc1) / (sqrt(v / bc2) + eps) + wd * w),  wd = weight_decay or 0
 * in float32 in this order (the CPU reference's order; a device backend must match it to the
 * bit, which IEEE float32 with no contraction gives). Segments (host) cover the slab.
 * With check_only nothing is written: the entry returns how many of the new w, m and v
 * values (three per index) would be non-finite, so a caller can refuse an update that
 * diverges without keeping a copy of the slabs. Otherwise it returns 0. */
typedef struct {
    float lr, beta1, beta2, eps, weight_decay, bias_corr1, bias_corr2, grad_scale;
    const fqt_param_segment *segs; /* host */
    int n_segs;
    bool check_only;
} fqt_adamw_args;

/* Fixed chunk of the deterministic sums of squares: partial sums over [k*CHUNK, (k+1)*CHUNK)
 * in double, combined by the caller in chunk order. A shard boundary that is a multiple of
 * the chunk keeps the reduction order of one process. */
#define FQT_SUMSQ_CHUNK 4096

/* Floats of a tensor scale kept for reuse (fqt_backend.tensor_scale): s_enc, s_dec, the
 * pre-scale of tiny tensors and s_dec as stored (formats/codec.h fqt_tscale). */
#define FQT_TSCALE_FLOATS 4

typedef struct fqt_backend {
    const char *name;
    fqt_dtype act_dtype;  /* storage of activations and their gradients */
    bool host_memory;     /* backend memory is host memory (pointers usable directly) */
    bool qgemm_colmajor_bf16; /* qgemm takes plain bf16 operands with colmajor set: a bf16
                                 source quantized to plain bf16 along columns is then that
                                 source itself, no transposed copy (core/linear.c) */
    /* Non-NULL where qgemm would dequantize operands of some formats to BF16 itself: true for
     * an operand in format f whose GEMM partner is in format other (either side) when quantize
     * also writes the expanded form (fqt_qtensor.expanded, bound by
     * fqt_backend_qtensor_bind_expanded: the BF16 values code x block scale, which are
     * exact, and the tensor scale in its slot) and qgemm then reads it, one pass less per
     * operand (core/linear.c quantizes every transient GEMM operand so). dequantize does not
     * take expanded tensors. */
    bool (*qgemm_expands)(const fqt_format *f, const fqt_format *other);

    /* ---- buffers ---------------------------------------------------------------------- */
    /* NULL with fqt_last_error() set when out of memory. Alignment at least 256 bytes. */
    void *(*alloc)(size_t bytes);
    void (*free)(void *p);
    void (*upload)(void *dst, const void *host_src, size_t bytes);
    void (*download)(void *host_dst, const void *src, size_t bytes);
    void (*copy)(void *dst, const void *src, size_t bytes);
    void (*zero)(void *dst, size_t bytes);
    /* dst[i] = (dst_dt) src[i] for n elements between float32 and act storage. */
    void (*convert)(void *dst, fqt_dtype dst_dt, const void *src, fqt_dtype src_dt, int64_t n);

    /* ---- ops (contracts of the same names in fqt/ops.h, act for float) ----------------- */
    void (*embedding_fwd)(void *out, const int32_t *tok, const float *wte, int64_t N, int64_t C);
    void (*embedding_bwd)(float *dwte, const void *dout, const int32_t *tok, int64_t N, int64_t C);
    void (*rmsnorm_fwd)(void *out, float *rstd, const void *in, const float *w, int64_t N,
                        int64_t C, float eps);
    void (*rmsnorm_bwd)(void *din, float *dw, const void *dout, const void *in, const float *w,
                        const float *rstd, int64_t N, int64_t C);
    void (*rope_fwd)(void *x, int64_t B, int64_t T, int64_t H, int64_t HS, float theta);
    void (*rope_bwd)(void *dx, int64_t B, int64_t T, int64_t H, int64_t HS, float theta);
    /* Causal grouped-query attention; stats[B, NH, T, 2] (written) keeps, per query row, the
     * row maximum of the scaled scores and the reciprocal of the sum of exp(score - max): the
     * log-sum-exp in the form that lets backward recompute the forward's probabilities bit
     * for bit. O(T) memory per row instead of the [T, T] probabilities. */
    void (*attention_fwd)(void *out, float *stats, const void *q, const void *k, const void *v,
                          int64_t B, int64_t T, int64_t NH, int64_t NKV, int64_t HS);
    /* dq, dk, dv WRITTEN; probabilities recomputed from q, k and stats. out is attention_fwd's
     * output for these inputs: a backend may take the row dots sum_j P dP as sum_d dout out
     * (equal in exact arithmetic; the fused CUDA kernels do, the CPU does not). */
    void (*attention_bwd)(void *dq, void *dk, void *dv, const void *dout, const void *out,
                          const float *stats, const void *q, const void *k, const void *v,
                          int64_t B, int64_t T, int64_t NH, int64_t NKV, int64_t HS);
    void (*swiglu_fwd)(void *out, const void *gate, const void *up, int64_t n);
    void (*swiglu_bwd)(void *dgate, void *dup, const void *dout, const void *gate,
                       const void *up, int64_t n);
    /* Mean loss over counted rows (returned to the host; a synchronisation point). */
    double (*xent_fwd_bwd)(void *dlogits, float *losses, const void *logits,
                           const int32_t *targets, int64_t N, int64_t V, float dscale);
    void (*add_inplace)(void *y, const void *x, int64_t n);
    /* In place on x[N, C] (act): rows in blocks of 16 times the orthonormal Sylvester
     * Hadamard matrix after random signs from the §4 bits of (seed, stream, row); a partial
     * last block is left as is (core/linear.h). */
    void (*hadamard16_rows)(void *x, int64_t N, int64_t C, uint64_t seed, uint64_t stream);

    /* ---- quantization (bit-identical to fqt_quantize / fqt_dequantize) ------------------ */
    /* src [R, C] of dtype src_dt (float32 weights or act) into q (shaped and bound by the
     * caller). stats: host, may be NULL (then no statistics are gathered). NaN/Inf inputs
     * follow §5.1 and are counted in stats; nothing is returned. */
    /* tscale: NULL, or what tensor_scale wrote for this source and an element type of the
     * same largest magnitude (backend memory): then the tensor scale is taken from there, no
     * amax pass (the bits are the same: the amax is). Formats without a tensor scale ignore it. */
    void (*quantize)(fqt_qtensor *q, const void *src, fqt_dtype src_dt, int64_t R, int64_t C,
                     fqt_axis axis, fqt_rounding rounding, uint64_t seed, uint64_t stream,
                     fqt_qstats *stats, const float *tscale);
    /* The §5.3 tensor scale of src [n] (dtype src_dt) for format f (which has one), as
     * FQT_TSCALE_FLOATS floats of backend memory at tscale, for quantizations of the same
     * source (a tensor quantized along rows and along columns; core/linear.c). NULL where
     * that saves nothing (the CPU: its quantize then always gets tscale NULL). */
    void (*tensor_scale)(float *tscale, const void *src, fqt_dtype src_dt, int64_t n,
                         const fqt_format *f);
    /* dst [q->rows, q->cols] of dtype dst_dt. */
    void (*dequantize)(const fqt_qtensor *q, void *dst, fqt_dtype dst_dt);

    /* ---- GEMMs ----------------------------------------------------------------------- */
    /* C[M, N] = alpha * deq(A) deq(B)^T + beta * C (beta 0 overwrites), M = A->rows,
     * N = B->rows, K = A->cols = B->cols, float32 accumulation; C of dtype c_dt, row stride
     * ldc. Exact products for the block formats (fqt/gemm.h). */
    void (*qgemm)(const fqt_qtensor *A, const fqt_qtensor *B, float alpha, float beta, void *C,
                  fqt_dtype c_dt, int64_t ldc);

    /* ---- optimizer and reductions ------------------------------------------------------ */
    int64_t (*adamw)(float *w, const float *g, float *m, float *v, int64_t begin, int64_t end,
                     const fqt_adamw_args *a);
    /* part[k] (host) = sum over chunk k of x^2, or of (x - y)^2 when y is not NULL, in
     * double; ceil(n / FQT_SUMSQ_CHUNK) entries. */
    void (*sumsq_partials)(const float *x, const float *y, int64_t n, double *part);
    /* Number of non-finite values of x[0..n) (host result; a synchronisation point). */
    int64_t (*count_nonfinite)(const float *x, int64_t n);

    /* ---- synchronisation --------------------------------------------------------------- */
    void (*sync)(void); /* all queued work done (timers read after it) */
} fqt_backend;

/* The CPU reference backend (always present). */
extern const fqt_backend fqt_backend_cpu;

/* "cpu", "cuda" or "auto" (the GPU when one is compiled in and present, else the CPU).
 * NULL with fqt_last_error() set: unknown name, CUDA not compiled in, or no GPU found. */
const fqt_backend *fqt_backend_get(const char *name);

/* The profiling wrapper (core/backend_profile.c): a table with inner's behaviour, bit for bit,
 * that times every op entry between two inner->sync() calls and keeps a row per op and shape.
 * fqt_backend_get returns it when the environment has FQT_PROFILE other than "0" ("1": the
 * table goes to stderr at exit; else a file path, opened then). One inner backend per process. */
const fqt_backend *fqt_backend_profiled(const fqt_backend *inner);
/* Where the table goes at exit: "1" for stderr, else a file opened (truncated) now. false
 * with fqt_last_error() naming the file when it cannot be opened; later calls keep the first. */
bool fqt_backend_profile_open(const char *dest);
void fqt_backend_profile_report(FILE *out); /* the table so far, largest total first */
void fqt_backend_profile_reset(void);       /* forget every row (e.g. after warm-up steps) */

/* Bytes of backend memory a quantized tensor needs: codes, scales, the trailing tensor-scale
 * float, each part 256-byte aligned. */
size_t fqt_backend_qtensor_bytes(const fqt_format *f, int64_t rows, int64_t cols);
/* Shape q as [rows, cols] in f and point codes and scales into mem (that many bytes). */
void fqt_backend_qtensor_bind(fqt_qtensor *q, const fqt_format *f, int64_t rows, int64_t cols,
                              void *mem);
/* The same for the expanded form (fqt_qtensor.expanded): rows * cols BF16 values, then the
 * parts as above (the scale part unused), so the scale slot is where it is for the packed form. */
size_t fqt_backend_qtensor_bytes_expanded(const fqt_format *f, int64_t rows, int64_t cols);
void fqt_backend_qtensor_bind_expanded(fqt_qtensor *q, const fqt_format *f, int64_t rows,
                                       int64_t cols, void *mem);
/* The trailing float of a bound tensor (backend memory): where a device backend's quantize
 * writes s_dec and its GEMM reads it. */
float *fqt_backend_qtensor_scale_slot(const fqt_qtensor *q);
/* Host access to n floats of backend memory x (checkpoints, tests). fqt_backend_host_get
 * returns x itself on host-memory backends, else a host buffer, filled from x when fill is
 * true; fqt_backend_host_put uploads it back to x when store is true and frees it. */
float *fqt_backend_host_get(const fqt_backend *be, const float *x, int64_t n, bool fill);
void fqt_backend_host_put(const fqt_backend *be, float *host, float *x, int64_t n, bool store);
/* Ordered sum of the partials of sumsq_partials over x[0..n). */
double fqt_backend_sumsq(const fqt_backend *be, const float *x, const float *y, int64_t n,
                         double *part_scratch);

#endif
