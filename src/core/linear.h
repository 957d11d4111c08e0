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

#include "fqt/model.h"

/* Quantize operand `op` of src [R, C] along axis into q (allocated here, caller frees). */
void fqt_linear_quantize(fqt_qtensor *q, const fqt_linear_spec *s, fqt_operand op,
                         const float *src, int64_t R, int64_t C, fqt_axis axis,
                         const fqt_pass *pass, int64_t linear_id);

/* Y[N, Cout] = deq(QX) · deq(Q(W))ᵀ. QX is X [N, Cin] quantized as fprop.x. */
void fqt_linear_fprop(float *Y, const fqt_qtensor *QX, const float *W, int64_t Cout,
                      const fqt_linear_spec *s, const fqt_pass *pass, int64_t linear_id);

/* dX[N, Cin] = beta * dX + Q(dY) · Q(W, cols)ᵀ. */
void fqt_linear_dgrad(float *dX, float beta, const float *dY, int64_t N, const float *W,
                      int64_t Cout, int64_t Cin, const fqt_linear_spec *s, const fqt_pass *pass,
                      int64_t linear_id);

/* The wgrad X operand: X [N, Cin] quantized along the tokens as wgrad.x (Hadamard first if
 * the spec asks; signs keyed by hadamard_id). */
void fqt_linear_wgrad_x(fqt_qtensor *QXt, const float *X, int64_t N, int64_t Cin,
                        const fqt_linear_spec *s, const fqt_pass *pass, int64_t linear_id,
                        int64_t hadamard_id);

/* dW[Cout, Cin] += Q(dY, cols) · QXtᵀ. */
void fqt_linear_wgrad(float *dW, const float *dY, int64_t N, int64_t Cout,
                      const fqt_qtensor *QXt, const fqt_linear_spec *s, const fqt_pass *pass,
                      int64_t linear_id, int64_t hadamard_id);

/* In place: x[N, C] <- (H·S) x along the rows, in blocks of 16 rows (a partial last block is
 * left as is). H is the orthonormal 16x16 Sylvester Hadamard matrix (entries ±1/4, exact),
 * S a diagonal of random signs from the §4 bits of (seed, stream, row). */
void fqt_hadamard16_rows(float *x, int64_t N, int64_t C, uint64_t seed, uint64_t stream);

#endif
