/* core/linear.c — fprop, dgrad and wgrad of a linear layer under a recipe (core/linear.h).
 * Oracle: tests/test_model.c recomputes each GEMM as deq(quant(A)) · deq(quant(B))ᵀ with
 * fqt_qdq and a double-precision product. */
#include "linear.h"

#include "fqt/gemm.h"

#include <stdlib.h>
#include <string.h>

static fqt_qstats *stats_for(const fqt_pass *pass, int64_t linear_id, fqt_operand op) {
    if (!pass->diag || linear_id >= pass->diag->n_linears) return NULL;
    return &pass->diag->st[linear_id][op];
}

void fqt_linear_quantize(fqt_qtensor *q, const fqt_linear_spec *s, fqt_operand op,
                         const float *src, int64_t R, int64_t C, fqt_axis axis,
                         const fqt_pass *pass, int64_t linear_id) {
    const fqt_operand_spec *o = &s->op[op];
    int64_t qr = axis == FQT_AXIS_ROWS ? R : C, qc = axis == FQT_AXIS_ROWS ? C : R;
    double t0 = fqt_prof_now();
    FQT_ASSERT(fqt_qtensor_alloc(q, &o->fmt, qr, qc) == FQT_OK);
    /* A NaN/Inf input is kept as NaN (§5.1) and surfaces in the loss or the gradient norm,
     * where the trainer skips the step; nothing to do here. */
    (void)fqt_quantize(q, src, R, C, axis, o->rounding, pass->seed,
                       fqt_sr_stream((uint32_t)linear_id, (uint32_t)op, pass->sr_step),
                       stats_for(pass, linear_id, op));
    fqt_prof_add(FQT_PROF_QUANTIZE, fqt_prof_now() - t0);
}

void fqt_linear_fprop(float *Y, const fqt_qtensor *QX, const float *W, int64_t Cout,
                      const fqt_linear_spec *s, const fqt_pass *pass, int64_t linear_id) {
    fqt_qtensor QW;
    fqt_linear_quantize(&QW, s, FQT_OP_FPROP_W, W, Cout, QX->cols, FQT_AXIS_ROWS, pass, linear_id);
    fqt_qgemm(QX, &QW, 1.0f, 0.0f, Y, Cout);
    fqt_qtensor_free(&QW);
}

void fqt_linear_dgrad(float *dX, float beta, const float *dY, int64_t N, const float *W,
                      int64_t Cout, int64_t Cin, const fqt_linear_spec *s, const fqt_pass *pass,
                      int64_t linear_id) {
    fqt_qtensor QdY, QWt;
    fqt_linear_quantize(&QdY, s, FQT_OP_DGRAD_DY, dY, N, Cout, FQT_AXIS_ROWS, pass, linear_id);
    fqt_linear_quantize(&QWt, s, FQT_OP_DGRAD_W, W, Cout, Cin, FQT_AXIS_COLS, pass, linear_id);
    fqt_qgemm(&QdY, &QWt, 1.0f, beta, dX, Cin);
    fqt_qtensor_free(&QdY);
    fqt_qtensor_free(&QWt);
}

static uint64_t hadamard_stream(const fqt_pass *pass, int64_t hadamard_id) {
    return fqt_sr_stream((uint32_t)hadamard_id, 7u, pass->sr_step);
}

void fqt_linear_wgrad_x(fqt_qtensor *QXt, const float *X, int64_t N, int64_t Cin,
                        const fqt_linear_spec *s, const fqt_pass *pass, int64_t linear_id,
                        int64_t hadamard_id) {
    if (!s->hadamard_wgrad) {
        fqt_linear_quantize(QXt, s, FQT_OP_WGRAD_X, X, N, Cin, FQT_AXIS_COLS, pass, linear_id);
        return;
    }
    float *t = fqt_xmalloc((size_t)(N * Cin) * sizeof(float));
    memcpy(t, X, (size_t)(N * Cin) * sizeof(float));
    fqt_hadamard16_rows(t, N, Cin, pass->seed, hadamard_stream(pass, hadamard_id));
    fqt_linear_quantize(QXt, s, FQT_OP_WGRAD_X, t, N, Cin, FQT_AXIS_COLS, pass, linear_id);
    free(t);
}

void fqt_linear_wgrad(float *dW, const float *dY, int64_t N, int64_t Cout,
                      const fqt_qtensor *QXt, const fqt_linear_spec *s, const fqt_pass *pass,
                      int64_t linear_id, int64_t hadamard_id) {
    fqt_qtensor QdYt;
    if (s->hadamard_wgrad) {
        float *t = fqt_xmalloc((size_t)(N * Cout) * sizeof(float));
        memcpy(t, dY, (size_t)(N * Cout) * sizeof(float));
        fqt_hadamard16_rows(t, N, Cout, pass->seed, hadamard_stream(pass, hadamard_id));
        fqt_linear_quantize(&QdYt, s, FQT_OP_WGRAD_DY, t, N, Cout, FQT_AXIS_COLS, pass, linear_id);
        free(t);
    } else {
        fqt_linear_quantize(&QdYt, s, FQT_OP_WGRAD_DY, dY, N, Cout, FQT_AXIS_COLS, pass, linear_id);
    }
    fqt_qgemm(&QdYt, QXt, 1.0f, 1.0f, dW, QXt->rows);
    fqt_qtensor_free(&QdYt);
}

void fqt_hadamard16_rows(float *x, int64_t N, int64_t C, uint64_t seed, uint64_t stream) {
    const int64_t nb = N / 16;
#pragma omp parallel for schedule(static)
    for (int64_t b = 0; b < nb; b++) {
        float *blk = x + b * 16 * C;
        for (int i = 0; i < 16; i++) {
            if (fqt_sr_bits(seed, stream, (uint64_t)(b * 16 + i)) & 1u) {
                float *row = blk + i * C;
                for (int64_t c = 0; c < C; c++) row[c] = -row[c];
            }
        }
        /* Fast Walsh-Hadamard butterflies over the 16 rows, then the 1/4 normalisation
         * (exact: a power of two). */
        for (int h = 1; h < 16; h <<= 1)
            for (int i = 0; i < 16; i += 2 * h)
                for (int j = i; j < i + h; j++) {
                    float *a = blk + j * C, *bb = blk + (j + h) * C;
                    for (int64_t c = 0; c < C; c++) {
                        float u = a[c], v = bb[c];
                        a[c] = u + v;
                        bb[c] = u - v;
                    }
                }
        for (int64_t i = 0; i < 16 * C; i++) blk[i] *= 0.25f;
    }
}
