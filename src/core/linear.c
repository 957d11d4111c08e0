/* core/linear.c — fprop, dgrad and wgrad of a linear layer under a recipe (core/linear.h),
 * on the backend table, with every quantized operand and temporary in a workspace.
 * Oracle: tests/test_linear.c recomputes each GEMM as deq(quant(A)) · deq(quant(B))ᵀ with
 * fqt_qdq and a double-precision product. */
#include "linear.h"

#include <string.h>

#define ALIGN_UP(x) (((x) + 255) & ~(size_t)255)

fqt_status fqt_ws_reserve(fqt_ws *ws, const fqt_backend *be, size_t cap) {
    FQT_ASSERT(ws->used == 0);
    if (ws->base && ws->cap >= cap && ws->be == be) return FQT_OK;
    fqt_ws_free(ws);
    ws->be = be;
    ws->base = be->alloc(cap);
    if (!ws->base) return FQT_ERR_NOMEM;
    ws->cap = cap;
    return FQT_OK;
}

void fqt_ws_free(fqt_ws *ws) {
    if (ws->base) ws->be->free(ws->base);
    if (ws->tsc) ws->be->free(ws->tsc);
    free(ws->tsc_src);
    ws->base = NULL;
    ws->tsc = NULL;
    ws->tsc_src = NULL;
    ws->cap = ws->used = 0;
    ws->n_tsc = 0;
}

fqt_status fqt_ws_keep_tscales(fqt_ws *ws, int64_t n_linears) {
    FQT_ASSERT(ws->be);
    if (!ws->be->tensor_scale || ws->n_tsc >= n_linears) return FQT_OK;
    if (ws->tsc) ws->be->free(ws->tsc);
    free(ws->tsc_src);
    ws->n_tsc = 0;
    ws->tsc = ws->be->alloc((size_t)(n_linears * 3 * FQT_TSCALE_FLOATS) * sizeof(float));
    ws->tsc_src = calloc((size_t)(n_linears * 3), sizeof *ws->tsc_src);
    if (!ws->tsc || !ws->tsc_src) return FQT_ERR_NOMEM;
    ws->n_tsc = n_linears;
    return FQT_OK;
}

/* What linear.c needs to know of each operand (docs/FORMATS.md §5.6): the axis it is quantized
 * along, the operand it meets in its GEMM, its source (X, W or dY: a tensor scale kept per
 * source), and whether it is that source's first quantization in a pass (fprop.x, fprop.w,
 * dgrad.dy) or its second (wgrad.x, dgrad.w, wgrad.dy). */
enum { SRC_X = 0, SRC_W, SRC_DY };
static const struct {
    fqt_axis axis;
    fqt_operand partner;
    int src;
    bool first;
} op_role[FQT_OP_COUNT] = {
    [FQT_OP_FPROP_X] = {FQT_AXIS_ROWS, FQT_OP_FPROP_W, SRC_X, true},
    [FQT_OP_FPROP_W] = {FQT_AXIS_ROWS, FQT_OP_FPROP_X, SRC_W, true},
    [FQT_OP_DGRAD_DY] = {FQT_AXIS_ROWS, FQT_OP_DGRAD_W, SRC_DY, true},
    [FQT_OP_DGRAD_W] = {FQT_AXIS_COLS, FQT_OP_DGRAD_DY, SRC_W, false},
    [FQT_OP_WGRAD_DY] = {FQT_AXIS_COLS, FQT_OP_WGRAD_X, SRC_DY, false},
    [FQT_OP_WGRAD_X] = {FQT_AXIS_COLS, FQT_OP_WGRAD_DY, SRC_X, false},
};

/* The tensor scale quantize takes for operand op of linear linear_id from src (NULL: its own
 * amax pass). fprop.x, fprop.w and dgrad.dy quantize a source first: their scale is computed
 * here and kept; wgrad.x, dgrad.w and wgrad.dy quantize the same source again and reuse it
 * when the kept one was taken from the same pointer, size, dtype and element maximum. The
 * model's order makes that safe: nothing writes X between its forward GEMM and its wgrad, W
 * between the forward and the backward, dY between its dgrad and its wgrad (a wgrad Hadamard
 * copy is another pointer). Not in QAT mode, whose forward rewrites X. */
/* The memo slot of (linear, op's source), -1 where none is kept. */
static int64_t tscale_slot(const fqt_ws *ws, fqt_operand op, int64_t linear_id) {
    if (!ws->tsc || linear_id < 0 || linear_id >= ws->n_tsc) return -1;
    return linear_id * 3 + op_role[op].src;
}

/* A first quantization that keeps no scale (its format has none, a view, QAT) forgets the
 * slot's, so that a second one can never take a scale of an earlier pass (another recipe on
 * the same buffers, say). */
static void tscale_forget(fqt_ws *ws, fqt_operand op, int64_t linear_id) {
    const int64_t slot = tscale_slot(ws, op, linear_id);
    if (slot >= 0 && op_role[op].first) ws->tsc_src[slot].src = NULL;
}

static const float *tscale_for(fqt_ws *ws, const fqt_format *f, fqt_operand op, const void *src, fqt_dtype dt,
                               int64_t n, const fqt_pass *pass, int64_t linear_id) {
    const int64_t slot = tscale_slot(ws, op, linear_id);
    if (slot < 0) return NULL;
    if (!f->tensor_scale || pass->mode == FQT_MODE_QAT) {
        tscale_forget(ws, op, linear_id);
        return NULL;
    }
    float *t = ws->tsc + slot * FQT_TSCALE_FLOATS;
    struct fqt_ws_tsc_src *k = &ws->tsc_src[slot];
    const float emax = fqt_elem_max(f->elem);
    if (op_role[op].first) {
        ws->be->tensor_scale(t, src, dt, n, f);
        *k = (struct fqt_ws_tsc_src){src, n, emax, (int)dt};
        return t;
    }
    return k->src == src && k->n == n && k->elem_max == emax && k->dt == (int)dt ? t : NULL;
}

void *fqt_ws_take(fqt_ws *ws, size_t bytes) {
    bytes = ALIGN_UP(bytes);
    FQT_ASSERT(ws->base && ws->used + bytes <= ws->cap);
    void *p = ws->base + ws->used;
    ws->used += bytes;
    return p;
}

void fqt_ws_qtensor(fqt_ws *ws, fqt_qtensor *q, const fqt_format *f, int64_t rows, int64_t cols) {
    fqt_backend_qtensor_bind(q, f, rows, cols, fqt_ws_take(ws, fqt_backend_qtensor_bytes(f, rows, cols)));
}

/* Whether operand op is quantized expanded (fqt_backend.qgemm_expands, asked with its GEMM
 * partner's format: only a GEMM that takes the BF16 path reads expanded operands): outside QAT,
 * whose forward dequantizes its operands. */
static bool expands(const fqt_backend *be, const fqt_linear_spec *s, fqt_operand op, const fqt_pass *pass) {
    return be->qgemm_expands && be->qgemm_expands(&s->op[op].fmt, &s->op[op_role[op].partner].fmt) &&
           (!pass || pass->mode != FQT_MODE_QAT);
}

/* Whether an operand in format f of a source of dtype dt is the source itself, needing no
 * storage: bf16 storage into the plain bf16 format along rows is the identity (RNE and SR
 * alike: every value is representable; only NaN payloads could differ), and along columns
 * that identity is the transpose, a column-major view (row-major [R, C] is the [C, R] operand
 * stored column by column) where the backend's GEMM reads those. Not when statistics are
 * asked (the quantizer gathers them). The GEMMs only read their operands, and the source
 * outlives them (the saved activation, or dY until its wgrad). fqt_linear_quantize and the
 * workspace sizes below both decide by this, so they agree. */
static bool is_view(const fqt_backend *be, const fqt_format *f, fqt_axis axis, fqt_dtype dt, bool stats) {
    if (dt != FQT_DT_BF16 || stats || f->elem != FQT_ELEM_BF16 || f->scale != FQT_SCALE_NONE || f->tensor_scale)
        return false;
    return axis == FQT_AXIS_ROWS || be->qgemm_colmajor_bf16;
}

/* Workspace bytes of an operand as fqt_linear_quantize places it: none for a view of a bf16
 * activation (X and dY; the weights are float32), else the expanded form where the backend may
 * use it, else the packed one. stats: the pass gathers quantization statistics. */
static size_t qb(const fqt_backend *be, const fqt_linear_spec *s, fqt_operand op, int64_t rows, int64_t cols,
                 bool stats) {
    const fqt_format *f = &s->op[op].fmt;
    if (op_role[op].src != SRC_W && is_view(be, f, op_role[op].axis, be->act_dtype, stats)) return 0;
    return ALIGN_UP(expands(be, s, op, NULL) ? fqt_backend_qtensor_bytes_expanded(f, rows, cols)
                                         : fqt_backend_qtensor_bytes(f, rows, cols));
}

size_t fqt_linear_ws_fwd(const fqt_backend *be, const fqt_linear_spec *s, int64_t N, int64_t Cin,
                         int64_t Cout, bool stats) {
    return qb(be, s, FQT_OP_FPROP_X, N, Cin, stats) + qb(be, s, FQT_OP_FPROP_W, Cout, Cin, stats);
}

size_t fqt_linear_ws_bwd(const fqt_backend *be, const fqt_linear_spec *s, int64_t N, int64_t Cin,
                         int64_t Cout, bool stats) {
    /* Live together at the peak: QXt and its Hadamard copy, then QdY and QWt of dgrad or
     * QdYt and its copy in wgrad. */
    const size_t e = fqt_dtype_size(be->act_dtype);
    size_t dg = qb(be, s, FQT_OP_DGRAD_DY, N, Cout, stats) + qb(be, s, FQT_OP_DGRAD_W, Cin, Cout, stats);
    size_t wg = qb(be, s, FQT_OP_WGRAD_DY, Cout, N, stats) + (s->hadamard_wgrad ? ALIGN_UP((size_t)(N * Cout) * e) : 0);
    size_t n = qb(be, s, FQT_OP_WGRAD_X, Cin, N, stats) + (s->hadamard_wgrad ? ALIGN_UP((size_t)(N * Cin) * e) : 0) +
               (dg > wg ? dg : wg);
    return n;
}

static fqt_qstats *stats_for(const fqt_pass *pass, int64_t linear_id, fqt_operand op) {
    if (!pass->diag || linear_id >= pass->diag->n_linears) return NULL;
    return &pass->diag->st[linear_id][op];
}

/* src into q, shaped and bound by the caller: the SR stream of (linear, operand, step). */
static void quantize_bound(fqt_ws *ws, fqt_qtensor *q, const fqt_linear_spec *s, fqt_operand op,
                           const void *src, fqt_dtype dt, int64_t R, int64_t C, fqt_axis axis,
                           const fqt_pass *pass, int64_t linear_id, fqt_qstats *st, double t0) {
    const float *ts = tscale_for(ws, &s->op[op].fmt, op, src, dt, R * C, pass, linear_id);
    ws->be->quantize(q, src, dt, R, C, axis, s->op[op].rounding, pass->seed,
                 fqt_sr_stream((uint32_t)linear_id, (uint32_t)op, pass->sr_step), st, ts);
    fqt_prof_add(FQT_PROF_QUANTIZE, fqt_prof_now() - t0);
}

void fqt_linear_quantize(fqt_ws *ws, fqt_qtensor *q, const fqt_linear_spec *s, fqt_operand op,
                         const void *src, fqt_dtype dt, int64_t R, int64_t C, fqt_axis axis,
                         const fqt_pass *pass, int64_t linear_id) {
    const fqt_operand_spec *o = &s->op[op];
    int64_t qr = axis == FQT_AXIS_ROWS ? R : C, qc = axis == FQT_AXIS_ROWS ? C : R;
    double t0 = fqt_prof_now();
    fqt_qstats *st = stats_for(pass, linear_id, op);
    if (is_view(ws->be, &o->fmt, axis, dt, st != NULL)) {
        tscale_forget(ws, op, linear_id);
        FQT_ASSERT(fqt_qtensor_shape(q, &o->fmt, qr, qc) == FQT_OK);
        q->codes = (uint8_t *)(uintptr_t)src;
        q->scales = NULL;
        q->colmajor = axis == FQT_AXIS_COLS;
        return;
    }
    if (expands(ws->be, s, op, pass)) /* read once by the GEMMs that follow: no dequantize pass */
        fqt_backend_qtensor_bind_expanded(q, &o->fmt, qr, qc,
                                          fqt_ws_take(ws, fqt_backend_qtensor_bytes_expanded(&o->fmt, qr, qc)));
    else
        fqt_ws_qtensor(ws, q, &o->fmt, qr, qc);
    quantize_bound(ws, q, s, op, src, dt, R, C, axis, pass, linear_id, st, t0);
}

void fqt_linear_fprop(fqt_ws *ws, void *Y, const fqt_qtensor *QX, const float *W, int64_t Cout,
                      const fqt_linear_spec *s, const fqt_pass *pass, int64_t linear_id) {
    const size_t mark = ws->used;
    fqt_qtensor QW;
    fqt_linear_quantize(ws, &QW, s, FQT_OP_FPROP_W, W, FQT_DT_F32, Cout, QX->cols, FQT_AXIS_ROWS,
                        pass, linear_id);
    ws->be->qgemm(QX, &QW, 1.0f, 0.0f, Y, ws->be->act_dtype, Cout);
    ws->used = mark;
}

void fqt_linear_dgrad(fqt_ws *ws, void *dX, float beta, const void *dY, int64_t N, const float *W,
                      int64_t Cout, int64_t Cin, const fqt_linear_spec *s, const fqt_pass *pass,
                      int64_t linear_id) {
    const size_t mark = ws->used;
    const fqt_dtype act = ws->be->act_dtype;
    fqt_qtensor QdY, QWt;
    fqt_linear_quantize(ws, &QdY, s, FQT_OP_DGRAD_DY, dY, act, N, Cout, FQT_AXIS_ROWS, pass, linear_id);
    fqt_linear_quantize(ws, &QWt, s, FQT_OP_DGRAD_W, W, FQT_DT_F32, Cout, Cin, FQT_AXIS_COLS, pass, linear_id);
    ws->be->qgemm(&QdY, &QWt, 1.0f, beta, dX, act, Cin);
    ws->used = mark;
}

static uint64_t hadamard_stream(const fqt_pass *pass, int64_t hadamard_id) {
    return fqt_sr_stream((uint32_t)hadamard_id, 7u, pass->sr_step);
}

/* src [N, C] (act) with the wgrad Hadamard applied when the spec asks: a copy in ws, else src. */
static const void *hadamard_copy(fqt_ws *ws, const void *src, int64_t N, int64_t C,
                                 const fqt_linear_spec *s, const fqt_pass *pass, int64_t hid) {
    if (!s->hadamard_wgrad) return src;
    const size_t bytes = (size_t)(N * C) * fqt_dtype_size(ws->be->act_dtype);
    void *t = fqt_ws_take(ws, bytes);
    ws->be->copy(t, src, bytes);
    ws->be->hadamard16_rows(t, N, C, pass->seed, hadamard_stream(pass, hid));
    return t;
}

void fqt_linear_wgrad_x(fqt_ws *ws, fqt_qtensor *QXt, const void *X, int64_t N, int64_t Cin,
                        const fqt_linear_spec *s, const fqt_pass *pass, int64_t linear_id,
                        int64_t hadamard_id) {
    /* QXt stays live across several wgrads; the Hadamard copy under it is released with it
     * (the caller resets the workspace mark it took before this call). */
    const void *x = hadamard_copy(ws, X, N, Cin, s, pass, hadamard_id);
    fqt_linear_quantize(ws, QXt, s, FQT_OP_WGRAD_X, x, ws->be->act_dtype, N, Cin, FQT_AXIS_COLS,
                        pass, linear_id);
}

void fqt_linear_wgrad_x_into(fqt_ws *ws, fqt_qtensor *QXt, void *mem, const void *X, int64_t N,
                             int64_t Cin, const fqt_linear_spec *s, const fqt_pass *pass,
                             int64_t linear_id, int64_t hadamard_id) {
    const size_t mark = ws->used;
    const void *x = hadamard_copy(ws, X, N, Cin, s, pass, hadamard_id);
    const double t0 = fqt_prof_now();
    fqt_backend_qtensor_bind(QXt, &s->op[FQT_OP_WGRAD_X].fmt, Cin, N, mem);
    quantize_bound(ws, QXt, s, FQT_OP_WGRAD_X, x, ws->be->act_dtype, N, Cin, FQT_AXIS_COLS, pass,
                   linear_id, stats_for(pass, linear_id, FQT_OP_WGRAD_X), t0);
    ws->used = mark;
}

void fqt_linear_wgrad(fqt_ws *ws, float *dW, const void *dY, int64_t N, int64_t Cout,
                      const fqt_qtensor *QXt, const fqt_linear_spec *s, const fqt_pass *pass,
                      int64_t linear_id, int64_t hadamard_id) {
    const size_t mark = ws->used;
    fqt_qtensor QdYt;
    const void *dy = hadamard_copy(ws, dY, N, Cout, s, pass, hadamard_id);
    fqt_linear_quantize(ws, &QdYt, s, FQT_OP_WGRAD_DY, dy, ws->be->act_dtype, N, Cout,
                        FQT_AXIS_COLS, pass, linear_id);
    ws->be->qgemm(&QdYt, QXt, 1.0f, 1.0f, dW, FQT_DT_F32, QXt->rows);
    ws->used = mark;
}
