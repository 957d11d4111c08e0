/* core/linear.h — the three GEMMs of a linear layer Y = X Wᵀ under a recipe (internal).
 *
 * Invariants (fqt/recipe.h, docs/FORMATS.md §5.6):
 *   fprop  Y  = Q(X, rows) · Q(W, rows)ᵀ            reduction over Cin
 *   dgrad  dX = Q(dY, rows) · Q(W, cols)ᵀ           reduction over Cout (W cols -> [Cin, Cout])
 *   wgrad  dW += Q(dY, cols) · Q(X, cols)ᵀ          reduction over the N = B*T tokens
 * Each Q uses the operand's format and rounding; SR bits come from the stream
 * (linear id, operand, pass->sr_step). An input shared by several linears (the normed
 * residual feeding q, k, v; gate and up) is quantized once, under the first linear's id.
 * With hadamard_wgrad, both wgrad operands are multiplied by the same random orthogonal
 * block-diagonal H·S (16x16 Hadamard, random signs) along the token axis first, which
 * leaves dYᵀX unchanged in exact arithmetic. Not for: non-GEMM ops (fqt/ops.h). */
#ifndef FQT_CORE_LINEAR_H
#define FQT_CORE_LINEAR_H

#include "fqt/backend.h"
#include "fqt/model.h"

/* A workspace: one backend allocation, carved with a stack discipline (take, then reset
 * `used` to a mark). Quantized operands and temporaries of the linear layers live here, so
 * the per-step path allocates nothing. Taking more than cap is a programmer error (the
 * model sizes the workspace from its shapes and the pass's recipe before each pass). */
typedef struct {
    const fqt_backend *be;
    char *base;
    size_t cap, used;
    /* Tensor scales kept between the two quantizations of one source (fqt_ws_keep_tscales):
     * per linear and kind (X, W, dY) FQT_TSCALE_FLOATS floats of backend memory, and on the
     * host the source, its dtype, size and element maximum they were taken from. */
    float *tsc;
    struct fqt_ws_tsc_src { const void *src; int64_t n; float elem_max; int dt; } *tsc_src;
    int64_t n_tsc; /* linears */
} fqt_ws;

fqt_status fqt_ws_reserve(fqt_ws *ws, const fqt_backend *be, size_t cap); /* grows, never shrinks */
void fqt_ws_free(fqt_ws *ws);
/* Keep tensor scales for linears 0..n_linears-1 where the backend can (fqt_backend.tensor_scale):
 * the forward's X and W and the backward's dY are each quantized twice (along rows, then
 * along columns for the other GEMM), and the second quantization takes the first one's scale
 * instead of a second amax pass. Needs the workspace's backend (reserved before). */
fqt_status fqt_ws_keep_tscales(fqt_ws *ws, int64_t n_linears);
void *fqt_ws_take(fqt_ws *ws, size_t bytes); /* 256-byte aligned */
/* A quantized tensor [rows, cols] in format f placed in the workspace. */
void fqt_ws_qtensor(fqt_ws *ws, fqt_qtensor *q, const fqt_format *f, int64_t rows, int64_t cols);

/* Workspace bytes that one linear [Cout, Cin] over N tokens needs under spec s, for the
 * forward (fwd) and for the backward (everything live at once there; QAT's dequantized
 * weight is the model's to add); stats: the pass gathers quantization statistics (then no
 * operand is a view of its source). */
size_t fqt_linear_ws_fwd(const fqt_backend *be, const fqt_linear_spec *s, int64_t N, int64_t Cin,
                         int64_t Cout, bool stats);
size_t fqt_linear_ws_bwd(const fqt_backend *be, const fqt_linear_spec *s, int64_t N, int64_t Cin,
                         int64_t Cout, bool stats);

/* Quantize operand `op` of src [R, C] (dtype dt) along axis into q, placed in ws: expanded
 * where the backend's GEMM takes that (fqt_backend.qgemm_expands; not in QAT mode). */
void fqt_linear_quantize(fqt_ws *ws, fqt_qtensor *q, const fqt_linear_spec *s, fqt_operand op,
                         const void *src, fqt_dtype dt, int64_t R, int64_t C, fqt_axis axis,
                         const fqt_pass *pass, int64_t linear_id);

/* Y[N, Cout] (act) = deq(QX) · deq(Q(W))ᵀ. QX is X [N, Cin] quantized as fprop.x. */
void fqt_linear_fprop(fqt_ws *ws, void *Y, const fqt_qtensor *QX, const float *W, int64_t Cout,
                      const fqt_linear_spec *s, const fqt_pass *pass, int64_t linear_id);

/* dX[N, Cin] (act) = beta * dX + Q(dY) · Q(W, cols)ᵀ. */
void fqt_linear_dgrad(fqt_ws *ws, void *dX, float beta, const void *dY, int64_t N, const float *W,
                      int64_t Cout, int64_t Cin, const fqt_linear_spec *s, const fqt_pass *pass,
                      int64_t linear_id);

/* The wgrad X operand: X [N, Cin] (act) quantized along the tokens as wgrad.x (Hadamard first
 * if the spec asks; signs keyed by hadamard_id), placed in ws. */
void fqt_linear_wgrad_x(fqt_ws *ws, fqt_qtensor *QXt, const void *X, int64_t N, int64_t Cin,
                        const fqt_linear_spec *s, const fqt_pass *pass, int64_t linear_id,
                        int64_t hadamard_id);

/* The same operand quantized into mem (fqt_backend_qtensor_bytes of wgrad.x's format for
 * [Cin, N]) instead of the workspace, so that it can outlive it: the forward keeps it for the
 * backward (core/model.c). The Hadamard copy, if any, is taken from ws above its mark. Same
 * bits, statistics and SR stream as fqt_linear_wgrad_x. */
void fqt_linear_wgrad_x_into(fqt_ws *ws, fqt_qtensor *QXt, void *mem, const void *X, int64_t N,
                             int64_t Cin, const fqt_linear_spec *s, const fqt_pass *pass,
                             int64_t linear_id, int64_t hadamard_id);

/* dW[Cout, Cin] (float32) += Q(dY, cols) · QXtᵀ. */
void fqt_linear_wgrad(fqt_ws *ws, float *dW, const void *dY, int64_t N, int64_t Cout,
                      const fqt_qtensor *QXt, const fqt_linear_spec *s, const fqt_pass *pass,
                      int64_t linear_id, int64_t hadamard_id);

#endif
