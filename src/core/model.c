/* core/model.c — parameters, initialisation, forward and backward of the Llama-style model
 * (fqt/model.h). The pass is written out op by op, llm.c style, so every saved activation
 * and every gradient buffer is visible. Oracle: tests/test_model.c (finite differences on
 * the whole model with quantization off; each quantized GEMM recomputed independently). */
#include "fqt/model.h"

#include "linear.h"

#include <math.h>
#include <string.h>

const char *const fqt_model_size_names[] = {"tiny", "small", "llama-124m", NULL};

fqt_status fqt_model_config_named(const char *name, fqt_model_config *c) {
    memset(c, 0, sizeof *c);
    c->rope_theta = 10000.0f;
    c->norm_eps = 1e-5f;
    if (!strcmp(name, "tiny")) {
        *c = (fqt_model_config){4096, 128, 4, 4, 4, 352, 256, 10000.0f, 1e-5f};
    } else if (!strcmp(name, "small")) {
        *c = (fqt_model_config){4096, 384, 6, 6, 2, 1024, 512, 10000.0f, 1e-5f};
    } else if (!strcmp(name, "llama-124m")) {
        *c = (fqt_model_config){50304, 768, 12, 12, 12, 2048, 1024, 10000.0f, 1e-5f};
    } else {
        fqt_set_error("unknown model size '%s' (sizes: tiny, small, llama-124m)", name);
        return FQT_ERR_ARG;
    }
    return FQT_OK;
}

fqt_status fqt_model_config_validate(const fqt_model_config *c) {
    const char *why = NULL;
    if (c->vocab <= 0 || c->dim <= 0 || c->n_layers <= 0 || c->n_heads <= 0 ||
        c->n_kv_heads <= 0 || c->ffn <= 0 || c->ctx <= 0)
        why = "every size must be positive";
    else if (c->vocab > 65536) why = "vocab must be <= 65536 (tokens are stored as uint16)";
    else if (c->dim % c->n_heads) why = "n_heads must divide dim";
    else if ((c->dim / c->n_heads) % 2) why = "the head size dim/n_heads must be even (RoPE)";
    else if (c->n_heads % c->n_kv_heads) why = "n_kv_heads must divide n_heads";
    else if (c->n_layers > 1000 || c->dim > 65536 || c->ffn > 262144 || c->ctx > 65536)
        why = "a size is unreasonably large";
    else if (!(c->rope_theta > 0) || !(c->norm_eps > 0)) why = "rope_theta and norm_eps must be positive";
    if (why) {
        fqt_set_error("model config (V=%lld C=%lld L=%lld NH=%lld NKV=%lld F=%lld ctx=%lld): %s",
                      (long long)c->vocab, (long long)c->dim, (long long)c->n_layers,
                      (long long)c->n_heads, (long long)c->n_kv_heads, (long long)c->ffn,
                      (long long)c->ctx, why);
        return FQT_ERR_ARG;
    }
    return FQT_OK;
}

/* ---- parameter table ------------------------------------------------------------------ */

/* Per-layer tensors in slab order; their linear index (or -1 for norms). */
enum { P_ATTN_NORM, P_WQ, P_WK, P_WV, P_WO, P_MLP_NORM, P_WG, P_WU, P_WD, P_PER_LAYER };
static const char *const layer_tensor_names[P_PER_LAYER] = {
    "input_layernorm", "self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj",
    "self_attn.o_proj", "post_attention_layernorm", "mlp.gate_proj", "mlp.up_proj",
    "mlp.down_proj"};
/* Linear j of a layer (q k v o gate up down) is tensor linear_tensor[j]. */
static const int linear_tensor[FQT_LINEARS_PER_LAYER] = {P_WQ, P_WK, P_WV, P_WO, P_WG, P_WU, P_WD};
enum { L_Q, L_K, L_V, L_O, L_G, L_U, L_D };

static char *dupf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
#include <stdarg.h>
static char *dupf(const char *fmt, ...) {
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    char *s = fqt_xmalloc(strlen(buf) + 1);
    strcpy(s, buf);
    return s;
}

/* Index of tensor p of layer l in the table. */
static int tidx(int64_t l, int p) { return 1 + (int)l * P_PER_LAYER + p; }

static float *P(const fqt_model *m, int t) { return m->params + m->tensors[t].offset; }
static float *G(const fqt_model *m, int t) { return m->grads + m->tensors[t].offset; }

struct fqt_acts {
    int64_t B, T;
    float *resid;   /* (L+1, N, C) residual stream at each block boundary */
    float *x_mid;   /* (L, N, C) after attention */
    float *xn1, *xn2; /* (L, N, C) normed inputs of attention and MLP */
    float *rstd1, *rstd2; /* (L, N) */
    float *q;       /* (L, N, NH*HS) after RoPE */
    float *k, *v;   /* (L, N, NKV*HS) */
    float *att;     /* (L, B, NH, T, T) */
    float *y;       /* (L, N, C) attention output before o_proj */
    float *gate, *up, *h; /* (L, N, F) */
    float *xnf;     /* (N, C) */
    float *rstdf;   /* (N) */
    float *logits;  /* (N, V); holds dlogits after backward */
    int32_t *tokens, *targets; /* (N) */
    int64_t count;  /* targets counted in the loss */
    /* backward scratch */
    float *dx, *dxn, *dq, *dk, *dv, *dy, *dgate, *dup, *dh; /* N*C or N*F sized */
};

fqt_status fqt_model_create(fqt_model *m, const fqt_model_config *cfg) {
    memset(m, 0, sizeof *m);
    fqt_status st = fqt_model_config_validate(cfg);
    if (st) return st;
    m->cfg = *cfg;
    m->ops = &fqt_ops_cpu;
    const int64_t V = cfg->vocab, C = cfg->dim, L = cfg->n_layers, F = cfg->ffn;
    const int64_t HS = C / cfg->n_heads, QD = cfg->n_heads * HS, KD = cfg->n_kv_heads * HS;
    m->n_tensors = (int)(3 + L * P_PER_LAYER);
    m->tensors = fqt_xcalloc((size_t)m->n_tensors, sizeof *m->tensors);
    m->names = fqt_xcalloc((size_t)m->n_tensors, sizeof *m->names);
    int64_t off = 0;
    int t = 0;
#define ADD(nm, r, c, dec)                                                                   \
    do {                                                                                   \
        m->names[t] = nm;                                                                  \
        m->tensors[t] = (fqt_param_info){m->names[t], off, (r) * (c), (c) == 1 ? 1 : 2,     \
                                         {(r), (c) == 1 ? 0 : (c)}, dec};                   \
        if ((c) == 1) m->tensors[t].shape[0] = (r);                                        \
        off += (r) * (c);                                                                  \
        t++;                                                                               \
    } while (0)
    ADD(dupf("model.embed_tokens.weight"), V, C, true);
    for (int64_t l = 0; l < L; l++) {
        const int64_t rows[P_PER_LAYER] = {C, QD, KD, KD, C, C, F, F, C};
        const int64_t cols[P_PER_LAYER] = {1, C, C, C, QD, 1, C, C, F};
        for (int p = 0; p < P_PER_LAYER; p++)
            ADD(dupf("model.layers.%lld.%s.weight", (long long)l, layer_tensor_names[p]), rows[p],
                cols[p], cols[p] != 1);
    }
    ADD(dupf("model.norm.weight"), C, 1, false);
    ADD(dupf("lm_head.weight"), V, C, true);
#undef ADD
    FQT_ASSERT(t == m->n_tensors);
    m->n_params = off;
    m->params = fqt_xcalloc((size_t)off, sizeof(float));
    m->grads = fqt_xcalloc((size_t)off, sizeof(float));
    m->n_linears = L * FQT_LINEARS_PER_LAYER + 1;
    m->linear_names = fqt_xcalloc((size_t)m->n_linears, sizeof *m->linear_names);
    for (int64_t l = 0; l < L; l++)
        for (int j = 0; j < FQT_LINEARS_PER_LAYER; j++)
            m->linear_names[l * FQT_LINEARS_PER_LAYER + j] =
                dupf("layers.%lld.%s", (long long)l, layer_tensor_names[linear_tensor[j]]);
    m->linear_names[m->n_linears - 1] = dupf("lm_head");
    return FQT_OK;
}

static void acts_free(fqt_acts *a) {
    if (!a) return;
    float **bufs[] = {&a->resid, &a->x_mid, &a->xn1, &a->xn2, &a->rstd1, &a->rstd2, &a->q,
                      &a->k, &a->v, &a->att, &a->y, &a->gate, &a->up, &a->h, &a->xnf,
                      &a->rstdf, &a->logits, &a->dx, &a->dxn, &a->dq, &a->dk, &a->dv,
                      &a->dy, &a->dgate, &a->dup, &a->dh};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(*bufs[i]);
    free(a->tokens);
    free(a->targets);
    free(a);
}

void fqt_model_free(fqt_model *m) {
    acts_free(m->acts);
    for (int i = 0; i < m->n_tensors; i++) free(m->names[i]);
    for (int64_t i = 0; i < m->n_linears; i++) free(m->linear_names[i]);
    free(m->names);
    free(m->linear_names);
    free(m->tensors);
    free(m->params);
    free(m->grads);
    memset(m, 0, sizeof *m);
}

const fqt_param_info *fqt_model_find(const fqt_model *m, const char *name) {
    for (int i = 0; i < m->n_tensors; i++)
        if (!strcmp(m->tensors[i].name, name)) return &m->tensors[i];
    return NULL;
}

const fqt_param_info *fqt_model_linear_param(const fqt_model *m, int64_t li) {
    FQT_ASSERT(li >= 0 && li < m->n_linears);
    if (li == m->n_linears - 1) return &m->tensors[m->n_tensors - 1];
    return &m->tensors[tidx(li / FQT_LINEARS_PER_LAYER, linear_tensor[li % FQT_LINEARS_PER_LAYER])];
}

/* Box-Muller on splitmix64: a deterministic normal generator for initialisation. */
static double normal(uint64_t *s) {
    double u1 = ((fqt_splitmix64(s) >> 11) + 1) * 0x1p-53, u2 = (fqt_splitmix64(s) >> 11) * 0x1p-53;
    return sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2);
}

void fqt_model_init(fqt_model *m, uint64_t seed) {
    const double std = 0.02, resid_std = 0.02 / sqrt(2.0 * (double)m->cfg.n_layers);
    for (int t = 0; t < m->n_tensors; t++) {
        const fqt_param_info *p = &m->tensors[t];
        float *w = m->params + p->offset;
        uint64_t s = seed ^ (0xA0761D6478BD642Full * (uint64_t)(t + 1));
        if (p->ndim == 1) {
            for (int64_t i = 0; i < p->numel; i++) w[i] = 1.0f;
            continue;
        }
        double sd = (strstr(p->name, "o_proj") || strstr(p->name, "down_proj")) ? resid_std : std;
        for (int64_t i = 0; i < p->numel; i++) w[i] = (float)(sd * normal(&s));
    }
}

void fqt_model_zero_grad(fqt_model *m) { memset(m->grads, 0, (size_t)m->n_params * sizeof(float)); }

static fqt_acts *acts_get(fqt_model *m, int64_t B, int64_t T) {
    fqt_acts *a = m->acts;
    if (a && a->B == B && a->T == T) return a;
    acts_free(a);
    a = fqt_xcalloc(1, sizeof *a);
    const fqt_model_config *c = &m->cfg;
    const int64_t N = B * T, C = c->dim, L = c->n_layers, F = c->ffn, HS = C / c->n_heads;
    const int64_t QD = c->n_heads * HS, KD = c->n_kv_heads * HS;
#define ALLOC(x, n) a->x = fqt_xmalloc((size_t)(n) * sizeof(float))
    ALLOC(resid, (L + 1) * N * C);
    ALLOC(x_mid, L * N * C);
    ALLOC(xn1, L * N * C);
    ALLOC(xn2, L * N * C);
    ALLOC(rstd1, L * N);
    ALLOC(rstd2, L * N);
    ALLOC(q, L * N * QD);
    ALLOC(k, L * N * KD);
    ALLOC(v, L * N * KD);
    ALLOC(att, L * B * c->n_heads * T * T);
    ALLOC(y, L * N * QD);
    ALLOC(gate, L * N * F);
    ALLOC(up, L * N * F);
    ALLOC(h, L * N * F);
    ALLOC(xnf, N * C);
    ALLOC(rstdf, N);
    ALLOC(logits, N * c->vocab);
    ALLOC(dx, N * C);
    ALLOC(dxn, N * C);
    ALLOC(dq, N * QD);
    ALLOC(dk, N * KD);
    ALLOC(dv, N * KD);
    ALLOC(dy, N * QD);
    ALLOC(dgate, N * F);
    ALLOC(dup, N * F);
    ALLOC(dh, N * F);
#undef ALLOC
    a->tokens = fqt_xmalloc((size_t)N * sizeof(int32_t));
    a->targets = fqt_xmalloc((size_t)N * sizeof(int32_t));
    a->B = B;
    a->T = T;
    m->acts = a;
    return a;
}

/* Quantize a linear input X [N, Cin] as fprop.x; in QAT mode X is then replaced by its
 * dequantized value, which the straight-through backward uses as the layer input. */
static void quantize_input(fqt_qtensor *QX, float *X, int64_t N, int64_t Cin,
                           const fqt_linear_spec *s, const fqt_pass *pass, int64_t id) {
    fqt_linear_quantize(QX, s, FQT_OP_FPROP_X, X, N, Cin, FQT_AXIS_ROWS, pass, id);
    if (pass->mode == FQT_MODE_QAT) fqt_dequantize(QX, X);
}

/* In QAT mode the backward GEMMs run in FP32 (straight-through estimator) on the weights
 * as the forward quantized them. */
static const fqt_linear_spec *bwd_spec(const fqt_linear_spec *s, const fqt_pass *pass,
                                       fqt_linear_spec *tmp) {
    if (pass->mode != FQT_MODE_QAT) return s;
    fqt_format f32;
    FQT_ASSERT(fqt_format_parse("fp32", &f32) == FQT_OK);
    for (int i = 0; i < FQT_OP_COUNT; i++) {
        tmp->op[i].fmt = f32;
        tmp->op[i].rounding = FQT_ROUND_RNE;
    }
    tmp->hadamard_wgrad = false;
    return tmp;
}

/* The weight the backward GEMMs see: W itself, or in QAT mode deq(Q_fprop.w(W)). */
static const float *bwd_weight(const float *W, int64_t Cout, int64_t Cin,
                               const fqt_linear_spec *s, const fqt_pass *pass, int64_t id,
                               float **owned) {
    *owned = NULL;
    if (pass->mode != FQT_MODE_QAT) return W;
    fqt_qtensor QW;
    fqt_pass p = *pass;
    p.diag = NULL;
    fqt_linear_quantize(&QW, s, FQT_OP_FPROP_W, W, Cout, Cin, FQT_AXIS_ROWS, &p, id);
    *owned = fqt_xmalloc((size_t)(Cout * Cin) * sizeof(float));
    fqt_dequantize(&QW, *owned);
    fqt_qtensor_free(&QW);
    return *owned;
}

double fqt_model_forward(fqt_model *m, const int32_t *tokens, const int32_t *targets, int64_t B,
                         int64_t T, const fqt_pass *pass) {
    const fqt_model_config *c = &m->cfg;
    FQT_ASSERT(B > 0 && T > 0 && T <= c->ctx);
    fqt_acts *a = acts_get(m, B, T);
    const fqt_ops *ops = m->ops;
    const int64_t N = B * T, C = c->dim, L = c->n_layers, F = c->ffn, V = c->vocab;
    const int64_t NH = c->n_heads, NKV = c->n_kv_heads, HS = C / NH, QD = NH * HS, KD = NKV * HS;
    memcpy(a->tokens, tokens, (size_t)N * sizeof(int32_t));
    for (int64_t i = 0; i < N; i++) FQT_ASSERT(tokens[i] >= 0 && tokens[i] < V);

    ops->embedding_fwd(a->resid, tokens, P(m, 0), N, C);
    for (int64_t l = 0; l < L; l++) {
        const fqt_linear_spec *s = fqt_recipe_layer(pass->recipe, (int)l, (int)L);
        const int64_t id0 = l * FQT_LINEARS_PER_LAYER;
        float *x = a->resid + l * N * C, *xm = a->x_mid + l * N * C, *xo = a->resid + (l + 1) * N * C;
        float *xn1 = a->xn1 + l * N * C, *xn2 = a->xn2 + l * N * C;
        float *q = a->q + l * N * QD, *k = a->k + l * N * KD, *v = a->v + l * N * KD;
        float *y = a->y + l * N * QD, *att = a->att + l * B * NH * T * T;
        float *gate = a->gate + l * N * F, *up = a->up + l * N * F, *h = a->h + l * N * F;
        fqt_qtensor QX;

        ops->rmsnorm_fwd(xn1, a->rstd1 + l * N, x, P(m, tidx(l, P_ATTN_NORM)), N, C, c->norm_eps);
        quantize_input(&QX, xn1, N, C, s, pass, id0 + L_Q);
        fqt_linear_fprop(q, &QX, P(m, tidx(l, P_WQ)), QD, s, pass, id0 + L_Q);
        fqt_linear_fprop(k, &QX, P(m, tidx(l, P_WK)), KD, s, pass, id0 + L_K);
        fqt_linear_fprop(v, &QX, P(m, tidx(l, P_WV)), KD, s, pass, id0 + L_V);
        fqt_qtensor_free(&QX);
        ops->rope_fwd(q, B, T, NH, HS, c->rope_theta);
        ops->rope_fwd(k, B, T, NKV, HS, c->rope_theta);
        ops->attention_fwd(y, att, q, k, v, B, T, NH, NKV, HS);
        quantize_input(&QX, y, N, QD, s, pass, id0 + L_O);
        fqt_linear_fprop(xm, &QX, P(m, tidx(l, P_WO)), C, s, pass, id0 + L_O);
        fqt_qtensor_free(&QX);
        ops->add_inplace(xm, x, N * C);

        ops->rmsnorm_fwd(xn2, a->rstd2 + l * N, xm, P(m, tidx(l, P_MLP_NORM)), N, C, c->norm_eps);
        quantize_input(&QX, xn2, N, C, s, pass, id0 + L_G);
        fqt_linear_fprop(gate, &QX, P(m, tidx(l, P_WG)), F, s, pass, id0 + L_G);
        fqt_linear_fprop(up, &QX, P(m, tidx(l, P_WU)), F, s, pass, id0 + L_U);
        fqt_qtensor_free(&QX);
        ops->swiglu_fwd(h, gate, up, N * F);
        quantize_input(&QX, h, N, F, s, pass, id0 + L_D);
        fqt_linear_fprop(xo, &QX, P(m, tidx(l, P_WD)), C, s, pass, id0 + L_D);
        fqt_qtensor_free(&QX);
        ops->add_inplace(xo, xm, N * C);
    }
    const int t_norm = m->n_tensors - 2, t_head = m->n_tensors - 1;
    ops->rmsnorm_fwd(a->xnf, a->rstdf, a->resid + L * N * C, P(m, t_norm), N, C, c->norm_eps);
    {
        const fqt_linear_spec *s = fqt_recipe_lm_head(pass->recipe);
        fqt_qtensor QX;
        quantize_input(&QX, a->xnf, N, C, s, pass, m->n_linears - 1);
        fqt_linear_fprop(a->logits, &QX, P(m, t_head), V, s, pass, m->n_linears - 1);
        fqt_qtensor_free(&QX);
    }
    if (!targets) {
        a->count = 0;
        return 0.0;
    }
    memcpy(a->targets, targets, (size_t)N * sizeof(int32_t));
    int64_t count = 0;
    for (int64_t i = 0; i < N; i++) count += targets[i] >= 0;
    a->count = count;
    /* The loss only; dlogits are formed in backward (the logits stay readable until then). */
    double loss = ops->xent_fwd_bwd(NULL, NULL, a->logits, targets, N, V, 0.0f);
    return isfinite(loss) ? loss : NAN;
}

const float *fqt_model_logits(const fqt_model *m) { return m->acts ? m->acts->logits : NULL; }

void fqt_model_backward(fqt_model *m, const fqt_pass *pass, float loss_scale) {
    const fqt_model_config *c = &m->cfg;
    fqt_acts *a = m->acts;
    FQT_ASSERT(a && a->count > 0);
    const fqt_ops *ops = m->ops;
    const int64_t B = a->B, T = a->T, N = B * T, C = c->dim, L = c->n_layers, F = c->ffn;
    const int64_t V = c->vocab, NH = c->n_heads, NKV = c->n_kv_heads, HS = C / NH;
    const int64_t QD = NH * HS, KD = NKV * HS;
    fqt_linear_spec tmp;
    float *owned;
    fqt_qtensor QXt;

    /* Loss -> logits -> LM head -> final norm. */
    ops->xent_fwd_bwd(a->logits, NULL, a->logits, a->targets, N, V, loss_scale / (float)a->count);
    {
        const int64_t id = m->n_linears - 1;
        const int t_norm = m->n_tensors - 2, t_head = m->n_tensors - 1;
        const fqt_linear_spec *s = bwd_spec(fqt_recipe_lm_head(pass->recipe), pass, &tmp);
        const float *W = bwd_weight(P(m, t_head), V, C, fqt_recipe_lm_head(pass->recipe), pass, id, &owned);
        fqt_linear_dgrad(a->dxn, 0.0f, a->logits, N, W, V, C, s, pass, id);
        fqt_linear_wgrad_x(&QXt, a->xnf, N, C, s, pass, id, id);
        fqt_linear_wgrad(G(m, t_head), a->logits, N, V, &QXt, s, pass, id, id);
        fqt_qtensor_free(&QXt);
        free(owned);
        memset(a->dx, 0, (size_t)(N * C) * sizeof(float));
        ops->rmsnorm_bwd(a->dx, G(m, t_norm), a->dxn, a->resid + L * N * C, P(m, t_norm), a->rstdf, N, C);
    }

    for (int64_t l = L - 1; l >= 0; l--) {
        const fqt_linear_spec *fs = fqt_recipe_layer(pass->recipe, (int)l, (int)L);
        const fqt_linear_spec *s = bwd_spec(fs, pass, &tmp);
        const int64_t id0 = l * FQT_LINEARS_PER_LAYER;
        float *x = a->resid + l * N * C, *xm = a->x_mid + l * N * C;
        float *xn1 = a->xn1 + l * N * C, *xn2 = a->xn2 + l * N * C;
        float *q = a->q + l * N * QD, *k = a->k + l * N * KD, *v = a->v + l * N * KD;
        float *y = a->y + l * N * QD, *att = a->att + l * B * NH * T * T;
        float *gate = a->gate + l * N * F, *up = a->up + l * N * F, *h = a->h + l * N * F;
        const float *W;

        /* MLP: dx is the gradient of the block output (and of down_proj's output). */
        W = bwd_weight(P(m, tidx(l, P_WD)), C, F, fs, pass, id0 + L_D, &owned);
        fqt_linear_dgrad(a->dh, 0.0f, a->dx, N, W, C, F, s, pass, id0 + L_D);
        free(owned);
        fqt_linear_wgrad_x(&QXt, h, N, F, s, pass, id0 + L_D, id0 + L_D);
        fqt_linear_wgrad(G(m, tidx(l, P_WD)), a->dx, N, C, &QXt, s, pass, id0 + L_D, id0 + L_D);
        fqt_qtensor_free(&QXt);
        ops->swiglu_bwd(a->dgate, a->dup, a->dh, gate, up, N * F);
        W = bwd_weight(P(m, tidx(l, P_WG)), F, C, fs, pass, id0 + L_G, &owned);
        fqt_linear_dgrad(a->dxn, 0.0f, a->dgate, N, W, F, C, s, pass, id0 + L_G);
        free(owned);
        W = bwd_weight(P(m, tidx(l, P_WU)), F, C, fs, pass, id0 + L_U, &owned);
        fqt_linear_dgrad(a->dxn, 1.0f, a->dup, N, W, F, C, s, pass, id0 + L_U);
        free(owned);
        fqt_linear_wgrad_x(&QXt, xn2, N, C, s, pass, id0 + L_G, id0 + L_G);
        fqt_linear_wgrad(G(m, tidx(l, P_WG)), a->dgate, N, F, &QXt, s, pass, id0 + L_G, id0 + L_G);
        fqt_linear_wgrad(G(m, tidx(l, P_WU)), a->dup, N, F, &QXt, s, pass, id0 + L_U, id0 + L_G);
        fqt_qtensor_free(&QXt);
        ops->rmsnorm_bwd(a->dx, G(m, tidx(l, P_MLP_NORM)), a->dxn, xm, P(m, tidx(l, P_MLP_NORM)),
                         a->rstd2 + l * N, N, C);

        /* Attention: dx is now the gradient of x_mid (and of o_proj's output). */
        W = bwd_weight(P(m, tidx(l, P_WO)), C, QD, fs, pass, id0 + L_O, &owned);
        fqt_linear_dgrad(a->dy, 0.0f, a->dx, N, W, C, QD, s, pass, id0 + L_O);
        free(owned);
        fqt_linear_wgrad_x(&QXt, y, N, QD, s, pass, id0 + L_O, id0 + L_O);
        fqt_linear_wgrad(G(m, tidx(l, P_WO)), a->dx, N, C, &QXt, s, pass, id0 + L_O, id0 + L_O);
        fqt_qtensor_free(&QXt);
        ops->attention_bwd(a->dq, a->dk, a->dv, a->dy, att, q, k, v, B, T, NH, NKV, HS);
        ops->rope_bwd(a->dq, B, T, NH, HS, c->rope_theta);
        ops->rope_bwd(a->dk, B, T, NKV, HS, c->rope_theta);
        const float *dys[3] = {a->dq, a->dk, a->dv};
        const int64_t outs[3] = {QD, KD, KD};
        const int pts[3] = {P_WQ, P_WK, P_WV};
        for (int j = 0; j < 3; j++) {
            W = bwd_weight(P(m, tidx(l, pts[j])), outs[j], C, fs, pass, id0 + j, &owned);
            fqt_linear_dgrad(a->dxn, j ? 1.0f : 0.0f, dys[j], N, W, outs[j], C, s, pass, id0 + j);
            free(owned);
        }
        fqt_linear_wgrad_x(&QXt, xn1, N, C, s, pass, id0 + L_Q, id0 + L_Q);
        for (int j = 0; j < 3; j++)
            fqt_linear_wgrad(G(m, tidx(l, pts[j])), dys[j], N, outs[j], &QXt, s, pass, id0 + j, id0 + L_Q);
        fqt_qtensor_free(&QXt);
        ops->rmsnorm_bwd(a->dx, G(m, tidx(l, P_ATTN_NORM)), a->dxn, x, P(m, tidx(l, P_ATTN_NORM)),
                         a->rstd1 + l * N, N, C);
    }
    ops->embedding_bwd(G(m, 0), a->dx, a->tokens, N, C);
}

fqt_status fqt_diag_alloc(fqt_diag *d, int64_t n_linears) {
    d->n_linears = n_linears;
    d->st = fqt_xcalloc((size_t)n_linears, sizeof *d->st);
    return FQT_OK;
}

void fqt_diag_free(fqt_diag *d) {
    free(d->st);
    d->st = NULL;
    d->n_linears = 0;
}
