/* core/model.c — parameters, initialisation, forward and backward of the Llama-style model
 * (fqt/model.h). The pass is written out op by op, llm.c style, so every saved activation
 * and every gradient buffer is visible. Every op, quantizer and GEMM goes through the
 * backend table (fqt/backend.h); parameters, gradients and activations live in backend
 * memory, activations in the backend's act_dtype. Oracle: tests/test_model.c (finite
 * differences on the whole model with quantization off; each quantized GEMM recomputed
 * independently). */
#include "fqt/model.h"

#include "linear.h"

#include <math.h>
#include <string.h>

const char *const fqt_model_size_names[] = {"tiny", "small", "llama-124m", "llama-1b", NULL};

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
    } else if (!strcmp(name, "llama-1b")) {
        *c = (fqt_model_config){50304, 2048, 16, 16, 16, 5632, 2048, 10000.0f, 1e-5f};
    } else {
        fqt_set_error("unknown model size '%s' (sizes: tiny, small, llama-124m, llama-1b)", name);
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

enum { WGX_XN1, WGX_XN2, WGX_H, WGX_KINDS }; /* the wgrad-only inputs (struct fqt_acts) */
typedef struct {
    bool quantized;
    size_t bytes;   /* of mem: the activation (N, Cin) or the quantized tensor */
    void *mem;
    fqt_qtensor q;  /* quantized: what the last training forward made */
} wgx_slot;

/* Saved activations and backward scratch, one backend allocation (slab) sized for (B, T).
 * Activation buffers hold act_dtype elements; offsets below are in elements. */
struct fqt_acts {
    int64_t B, T;
    size_t e;       /* bytes per activation element */
    char *slab;
    size_t slab_bytes; /* its size (a new layout of the same B, T reuses it when large enough) */
    void *resid;    /* (L+1, N, C) residual stream at each block boundary */
    void *x_mid;    /* (L, N, C) after attention */
    /* xn1 (input of q/k/v), xn2 (of gate/up) and h (of down) are read again only by their
     * wgrads: per layer and kind (WGX_*), wgx[] keeps each as an activation, or, where the
     * recipe's wgrad.x format takes fewer bytes than act storage, as the quantized operand the
     * wgrad takes, made by the forward (fqt_linear_wgrad_x_into: the same bits); its
     * activation then lives in one layer's scratch (wgx_scratch[kind]). */
    wgx_slot *wgx;      /* [L][WGX_KINDS] */
    void *wgx_scratch[WGX_KINDS];
    const fqt_recipe *lay_recipe; /* the (recipe, mode) the layout was made for */
    fqt_mode lay_mode;
    bool wgx_kept;      /* the last forward filled the quantized wgx (a training pass) */
    float *rstd1, *rstd2; /* (L, N) */
    void *q;        /* (L, N, NH*HS) after RoPE */
    void *k, *v;    /* (L, N, NKV*HS) */
    float *att;     /* (L, B, NH, T, 2) attention row statistics (max, 1/sum) */
    void *y;        /* (L, N, C) attention output before o_proj */
    void *gate, *up; /* (L, N, F) */
    void *xnf;      /* (N, C) */
    float *rstdf;   /* (N) */
    void *logits;   /* (N, V); holds dlogits after backward */
    int32_t *tokens, *targets; /* (N), backend memory */
    int64_t count;  /* targets counted in the loss */
    /* backward scratch */
    void *dx, *dxn, *dq, *dk, *dv, *dy, *dgate, *dup, *dh; /* N*C or N*F sized */
    float *logits_host; /* host copy of the logits for non-host backends (lazy) */
    fqt_ws ws;      /* quantized operands and temporaries of the linear layers */
};

/* Element i of an activation buffer. */
#define AT(a, p, i) ((void *)((char *)(p) + (size_t)(i) * (a)->e))

static const int wgx_linear[WGX_KINDS] = {L_Q, L_G, L_D}; /* the linears they feed */

fqt_status fqt_model_create(fqt_model *m, const fqt_model_config *cfg) {
    return fqt_model_create_on(m, cfg, &fqt_backend_cpu);
}

fqt_status fqt_model_create_on(fqt_model *m, const fqt_model_config *cfg, const fqt_backend *be) {
    memset(m, 0, sizeof *m);
    fqt_status st = fqt_model_config_validate(cfg);
    if (st) return st;
    m->cfg = *cfg;
    m->be = be;
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
    m->params = be->alloc((size_t)off * sizeof(float));
    m->grads = be->alloc((size_t)off * sizeof(float));
    if (!m->params || !m->grads) {
        fqt_model_free(m);
        return FQT_ERR_NOMEM;
    }
    be->zero(m->params, (size_t)off * sizeof(float));
    be->zero(m->grads, (size_t)off * sizeof(float));
    m->n_linears = L * FQT_LINEARS_PER_LAYER + 1;
    m->linear_names = fqt_xcalloc((size_t)m->n_linears, sizeof *m->linear_names);
    for (int64_t l = 0; l < L; l++)
        for (int j = 0; j < FQT_LINEARS_PER_LAYER; j++)
            m->linear_names[l * FQT_LINEARS_PER_LAYER + j] =
                dupf("layers.%lld.%s", (long long)l, layer_tensor_names[linear_tensor[j]]);
    m->linear_names[m->n_linears - 1] = dupf("lm_head");
    return FQT_OK;
}

static void acts_free(const fqt_backend *be, fqt_acts *a) {
    if (!a) return;
    if (a->slab) be->free(a->slab);
    free(a->wgx);
    fqt_ws_free(&a->ws);
    free(a->logits_host);
    free(a);
}

void fqt_model_free(fqt_model *m) {
    if (m->be) acts_free(m->be, m->acts);
    for (int i = 0; i < m->n_tensors && m->names; i++) free(m->names[i]);
    for (int64_t i = 0; i < m->n_linears && m->linear_names; i++) free(m->linear_names[i]);
    free(m->names);
    free(m->linear_names);
    free(m->tensors);
    if (m->params) m->be->free(m->params);
    if (m->grads) m->be->free(m->grads);
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
    /* Generated on the host, then uploaded (in place for host-memory backends). */
    float *host = m->be->host_memory ? m->params : fqt_xmalloc((size_t)m->n_params * sizeof(float));
    for (int t = 0; t < m->n_tensors; t++) {
        const fqt_param_info *p = &m->tensors[t];
        float *w = host + p->offset;
        uint64_t s = seed ^ (0xA0761D6478BD642Full * (uint64_t)(t + 1));
        if (p->ndim == 1) {
            for (int64_t i = 0; i < p->numel; i++) w[i] = 1.0f;
            continue;
        }
        double sd = (strstr(p->name, "o_proj") || strstr(p->name, "down_proj")) ? resid_std : std;
        for (int64_t i = 0; i < p->numel; i++) w[i] = (float)(sd * normal(&s));
    }
    if (host != m->params) {
        m->be->upload(m->params, host, (size_t)m->n_params * sizeof(float));
        free(host);
    }
}

void fqt_model_zero_grad(fqt_model *m) { m->be->zero(m->grads, (size_t)m->n_params * sizeof(float)); }

static const fqt_linear_spec *bwd_spec(const fqt_linear_spec *s, const fqt_pass *pass);

/* The activations for (B, T), laid out for pass's (recipe, mode): laid out again when those
 * change (in the same allocation when it is large enough: a run that alternates recipes
 * allocates nothing once it has seen each), except for a forward-only pass, which keeps
 * whatever layout there is (it keeps nothing for a backward). */
static fqt_acts *acts_get(fqt_model *m, int64_t B, int64_t T, const fqt_pass *pass) {
    fqt_acts *a = m->acts;
    if (a && a->B == B && a->T == T &&
        (pass->no_backward || (a->lay_recipe == pass->recipe && a->lay_mode == pass->mode)))
        return a;
    if (!a || a->B != B || a->T != T) {
        acts_free(m->be, a);
        m->acts = NULL;
        a = fqt_xcalloc(1, sizeof *a);
        a->wgx = fqt_xcalloc((size_t)(m->cfg.n_layers * WGX_KINDS), sizeof *a->wgx);
    }
    const fqt_model_config *c = &m->cfg;
    const int64_t N = B * T, C = c->dim, L = c->n_layers, F = c->ffn, HS = C / c->n_heads;
    const int64_t QD = c->n_heads * HS, KD = c->n_kv_heads * HS;
    a->e = fqt_dtype_size(m->be->act_dtype);
    /* Two passes over the layout: measure, then point into one allocation. */
    struct { void **act; float **f32; int32_t **i32; int64_t n; } lay[] = {
        {&a->resid, NULL, NULL, (L + 1) * N * C}, {&a->x_mid, NULL, NULL, L * N * C},
        {NULL, &a->rstd1, NULL, L * N},           {NULL, &a->rstd2, NULL, L * N},
        {&a->q, NULL, NULL, L * N * QD},          {&a->k, NULL, NULL, L * N * KD},
        {&a->v, NULL, NULL, L * N * KD},          {NULL, &a->att, NULL, L * B * c->n_heads * T * 2},
        {&a->y, NULL, NULL, L * N * QD},          {&a->gate, NULL, NULL, L * N * F},
        {&a->up, NULL, NULL, L * N * F},          {&a->xnf, NULL, NULL, N * C},
        {NULL, &a->rstdf, NULL, N},               {&a->logits, NULL, NULL, N * c->vocab},
        {NULL, NULL, &a->tokens, N},              {NULL, NULL, &a->targets, N},
        {&a->dx, NULL, NULL, N * C},              {&a->dxn, NULL, NULL, N * C},
        {&a->dq, NULL, NULL, N * QD},             {&a->dk, NULL, NULL, N * KD},
        {&a->dv, NULL, NULL, N * KD},             {&a->dy, NULL, NULL, N * QD},
        {&a->dgate, NULL, NULL, N * F},           {&a->dup, NULL, NULL, N * F},
        {&a->dh, NULL, NULL, N * F},
    };
#define ALIGN256(x) (((size_t)(x) + 255) & ~(size_t)255)
    /* The wgrad-only inputs: quantized where wgrad.x's format (of the backward's spec) is
     * smaller than the activation, with a scratch activation of that kind. */
    const int64_t wcin[WGX_KINDS] = {C, C, F};
    size_t total = 0;
    bool any_q[WGX_KINDS] = {false, false, false};
    for (int64_t l = 0; l < L; l++) {
        const fqt_linear_spec *s = bwd_spec(fqt_recipe_layer(pass->recipe, (int)l, (int)L), pass);
        for (int k = 0; k < WGX_KINDS; k++) {
            const size_t raw = (size_t)(N * wcin[k]) * a->e;
            const size_t qb = fqt_backend_qtensor_bytes(&s->op[FQT_OP_WGRAD_X].fmt, wcin[k], N);
            a->wgx[l * WGX_KINDS + k].quantized = qb < raw;
            a->wgx[l * WGX_KINDS + k].bytes = qb < raw ? qb : raw;
            any_q[k] |= qb < raw;
            total += ALIGN256(a->wgx[l * WGX_KINDS + k].bytes);
        }
    }
    for (int k = 0; k < WGX_KINDS; k++)
        if (any_q[k]) total += ALIGN256((size_t)(N * wcin[k]) * a->e);
    for (size_t i = 0; i < sizeof lay / sizeof lay[0]; i++)
        total += ALIGN256((size_t)lay[i].n * (lay[i].act ? a->e : 4));
    if (total > a->slab_bytes) {
        if (a->slab) m->be->free(a->slab);
        a->slab = m->be->alloc(total);
        a->slab_bytes = a->slab ? total : 0;
    }
    if (!a->slab) {
        fprintf(stderr, "fqt: %s: cannot allocate %.1f MB of activations for B=%lld T=%lld\n",
                m->be->name, (double)total / 1e6, (long long)B, (long long)T);
        exit(1);
    }
    size_t off = 0;
    for (size_t i = 0; i < sizeof lay / sizeof lay[0]; i++) {
        void *p = a->slab + off;
        if (lay[i].act) *lay[i].act = p;
        else if (lay[i].f32) *lay[i].f32 = p;
        else *lay[i].i32 = p;
        off += ALIGN256((size_t)lay[i].n * (lay[i].act ? a->e : 4));
    }
    for (int64_t i = 0; i < L * WGX_KINDS; i++) {
        a->wgx[i].mem = a->slab + off;
        off += ALIGN256(a->wgx[i].bytes);
    }
    for (int k = 0; k < WGX_KINDS; k++)
        if (any_q[k]) {
            a->wgx_scratch[k] = a->slab + off;
            off += ALIGN256((size_t)(N * wcin[k]) * a->e);
        }
    FQT_ASSERT(off == total && total <= a->slab_bytes);
    for (int k = 0; k < WGX_KINDS; k++)
        if (!any_q[k]) a->wgx_scratch[k] = NULL;
#undef ALIGN256
    a->lay_recipe = pass->recipe;
    a->lay_mode = pass->mode;
    a->B = B;
    a->T = T;
    m->acts = a;
    return a;
}

/* Layer l's wgrad-only input of kind k as an activation: its own buffer, or the scratch. */
static void *wgx_act(fqt_acts *a, int64_t l, int k) {
    return a->wgx[l * WGX_KINDS + k].quantized ? a->wgx_scratch[k] : a->wgx[l * WGX_KINDS + k].mem;
}

/* Layer l's kind-k wgrad input: its slot, its width Cin and the linear (and Hadamard) id. */
static int64_t wgx_cin(const fqt_model *m, int k) { return k == WGX_H ? m->cfg.ffn : m->cfg.dim; }
static int64_t wgx_id(int64_t l, int k) { return l * FQT_LINEARS_PER_LAYER + wgx_linear[k]; }

/* After the forward of layer l has used X (kind k, [N, Cin]): keep it for the backward as the
 * quantized wgrad operand, where the layout says so (a training pass only). */
static void wgx_keep(const fqt_model *m, fqt_acts *a, int64_t l, int k, const void *X, const fqt_linear_spec *s,
                     const fqt_pass *pass) {
    wgx_slot *w = &a->wgx[l * WGX_KINDS + k];
    if (pass->no_backward || !w->quantized) return;
    fqt_linear_wgrad_x_into(&a->ws, &w->q, w->mem, X, a->B * a->T, wgx_cin(m, k), bwd_spec(s, pass), pass,
                            wgx_id(l, k), wgx_id(l, k));
}

/* The backward's wgrad operand of layer l's kind k (s: the backward's spec): the kept tensor,
 * or X quantized now into the workspace. */
static void wgx_get(const fqt_model *m, fqt_acts *a, fqt_qtensor *QXt, int64_t l, int k, const fqt_linear_spec *s,
                    const fqt_pass *pass) {
    wgx_slot *w = &a->wgx[l * WGX_KINDS + k];
    if (w->quantized) {
        FQT_ASSERT(a->wgx_kept); /* the forward ran with this pass, not as forward-only */
        *QXt = w->q;
        return;
    }
    fqt_linear_wgrad_x(&a->ws, QXt, w->mem, a->B * a->T, wgx_cin(m, k), s, pass, wgx_id(l, k), wgx_id(l, k));
}

/* The fp32 spec of QAT's straight-through backward. */
static const fqt_linear_spec *qat_spec(void) {
    static fqt_linear_spec s;
    static bool done;
    if (!done) {
        fqt_format f32;
        FQT_ASSERT(fqt_format_parse("fp32", &f32) == FQT_OK);
        for (int i = 0; i < FQT_OP_COUNT; i++) {
            s.op[i].fmt = f32;
            s.op[i].rounding = FQT_ROUND_RNE;
        }
        s.hadamard_wgrad = false;
        done = true;
    }
    return &s;
}

/* Workspace for one pass of (recipe, mode) over N tokens: the largest need of any linear. */
static size_t ws_need(const fqt_model *m, const fqt_pass *pass, int64_t N) {
    const fqt_model_config *c = &m->cfg;
    const int64_t C = c->dim, F = c->ffn, HS = C / c->n_heads;
    const int64_t QD = c->n_heads * HS, KD = c->n_kv_heads * HS;
    const int64_t cin[FQT_LINEARS_PER_LAYER] = {C, C, C, QD, C, C, F};
    const int64_t cout[FQT_LINEARS_PER_LAYER] = {QD, KD, KD, C, F, F, C};
    const bool qat = pass->mode == FQT_MODE_QAT;
    size_t need = 0;
    for (int64_t li = 0; li < m->n_linears; li++) {
        const bool head = li == m->n_linears - 1;
        const int j = (int)(li % FQT_LINEARS_PER_LAYER);
        const int64_t ci = head ? C : cin[j], co = head ? c->vocab : cout[j];
        const fqt_linear_spec *fs = head ? fqt_recipe_lm_head(pass->recipe)
                                         : fqt_recipe_layer(pass->recipe, (int)(li / FQT_LINEARS_PER_LAYER),
                                                            (int)c->n_layers);
        size_t f = fqt_linear_ws_fwd(m->be, fs, N, ci, co, pass->diag != NULL);
        size_t b = fqt_linear_ws_bwd(m->be, qat ? qat_spec() : fs, N, ci, co, pass->diag != NULL);
        if (qat) b += fqt_backend_qtensor_bytes(&fs->op[FQT_OP_FPROP_W].fmt, co, ci) + 256 +
                      (size_t)(co * ci) * sizeof(float) + 256;
        if (f > need) need = f;
        if (b > need) need = b;
    }
    return need;
}

/* Quantize a linear input X [N, Cin] as fprop.x into the workspace; in QAT mode X is then
 * replaced by its dequantized value, which the straight-through backward uses as the layer
 * input. */
static void quantize_input(fqt_ws *ws, fqt_qtensor *QX, void *X, int64_t N, int64_t Cin,
                           const fqt_linear_spec *s, const fqt_pass *pass, int64_t id) {
    const fqt_dtype act = ws->be->act_dtype;
    fqt_linear_quantize(ws, QX, s, FQT_OP_FPROP_X, X, act, N, Cin, FQT_AXIS_ROWS, pass, id);
    if (pass->mode == FQT_MODE_QAT) ws->be->dequantize(QX, X, act);
}

/* In QAT mode the backward GEMMs run in FP32 (straight-through estimator) on the weights
 * as the forward quantized them. */
static const fqt_linear_spec *bwd_spec(const fqt_linear_spec *s, const fqt_pass *pass) {
    return pass->mode == FQT_MODE_QAT ? qat_spec() : s;
}

/* The weight the backward GEMMs see: W itself, or in QAT mode deq(Q_fprop.w(W)) in the
 * workspace (released when the caller resets its mark). */
static const float *bwd_weight(fqt_ws *ws, const float *W, int64_t Cout, int64_t Cin,
                               const fqt_linear_spec *s, const fqt_pass *pass, int64_t id) {
    if (pass->mode != FQT_MODE_QAT) return W;
    fqt_qtensor QW;
    fqt_pass p = *pass;
    p.diag = NULL;
    fqt_linear_quantize(ws, &QW, s, FQT_OP_FPROP_W, W, FQT_DT_F32, Cout, Cin, FQT_AXIS_ROWS, &p, id);
    float *w = fqt_ws_take(ws, (size_t)(Cout * Cin) * sizeof(float));
    ws->be->dequantize(&QW, w, FQT_DT_F32);
    return w;
}

double fqt_model_forward(fqt_model *m, const int32_t *tokens, const int32_t *targets, int64_t B,
                         int64_t T, const fqt_pass *pass) {
    const fqt_model_config *c = &m->cfg;
    FQT_ASSERT(B > 0 && T > 0 && T <= c->ctx);
    fqt_acts *a = acts_get(m, B, T, pass);
    a->wgx_kept = !pass->no_backward;
    const fqt_backend *be = m->be;
    const int64_t N = B * T, C = c->dim, L = c->n_layers, F = c->ffn, V = c->vocab;
    const int64_t NH = c->n_heads, NKV = c->n_kv_heads, HS = C / NH, QD = NH * HS, KD = NKV * HS;
    for (int64_t i = 0; i < N; i++) FQT_ASSERT(tokens[i] >= 0 && tokens[i] < V);
    be->upload(a->tokens, tokens, (size_t)N * sizeof(int32_t));
    fqt_ws *ws = &a->ws;
    if (fqt_ws_reserve(ws, be, ws_need(m, pass, N)) || fqt_ws_keep_tscales(ws, m->n_linears)) {
        fprintf(stderr, "fqt: %s: cannot allocate the linear-layer workspace: %s\n", be->name,
                fqt_last_error());
        exit(1);
    }

    be->embedding_fwd(a->resid, a->tokens, P(m, 0), N, C);
    for (int64_t l = 0; l < L; l++) {
        const fqt_linear_spec *s = fqt_recipe_layer(pass->recipe, (int)l, (int)L);
        const int64_t id0 = l * FQT_LINEARS_PER_LAYER;
        void *x = AT(a, a->resid, l * N * C), *xm = AT(a, a->x_mid, l * N * C);
        void *xo = AT(a, a->resid, (l + 1) * N * C);
        void *xn1 = wgx_act(a, l, WGX_XN1), *xn2 = wgx_act(a, l, WGX_XN2);
        void *q = AT(a, a->q, l * N * QD), *k = AT(a, a->k, l * N * KD), *v = AT(a, a->v, l * N * KD);
        void *y = AT(a, a->y, l * N * QD);
        float *att = a->att + l * B * NH * T * 2;
        void *gate = AT(a, a->gate, l * N * F), *up = AT(a, a->up, l * N * F), *h = wgx_act(a, l, WGX_H);
        fqt_qtensor QX;

        be->rmsnorm_fwd(xn1, a->rstd1 + l * N, x, P(m, tidx(l, P_ATTN_NORM)), N, C, c->norm_eps);
        quantize_input(ws, &QX, xn1, N, C, s, pass, id0 + L_Q);
        fqt_linear_fprop(ws, q, &QX, P(m, tidx(l, P_WQ)), QD, s, pass, id0 + L_Q);
        fqt_linear_fprop(ws, k, &QX, P(m, tidx(l, P_WK)), KD, s, pass, id0 + L_K);
        fqt_linear_fprop(ws, v, &QX, P(m, tidx(l, P_WV)), KD, s, pass, id0 + L_V);
        ws->used = 0;
        wgx_keep(m, a, l, WGX_XN1, xn1, s, pass);
        be->rope_fwd(q, B, T, NH, HS, c->rope_theta);
        be->rope_fwd(k, B, T, NKV, HS, c->rope_theta);
        be->attention_fwd(y, att, q, k, v, B, T, NH, NKV, HS);
        quantize_input(ws, &QX, y, N, QD, s, pass, id0 + L_O);
        fqt_linear_fprop(ws, xm, &QX, P(m, tidx(l, P_WO)), C, s, pass, id0 + L_O);
        ws->used = 0;
        be->add_inplace(xm, x, N * C);

        be->rmsnorm_fwd(xn2, a->rstd2 + l * N, xm, P(m, tidx(l, P_MLP_NORM)), N, C, c->norm_eps);
        quantize_input(ws, &QX, xn2, N, C, s, pass, id0 + L_G);
        fqt_linear_fprop(ws, gate, &QX, P(m, tidx(l, P_WG)), F, s, pass, id0 + L_G);
        fqt_linear_fprop(ws, up, &QX, P(m, tidx(l, P_WU)), F, s, pass, id0 + L_U);
        ws->used = 0;
        wgx_keep(m, a, l, WGX_XN2, xn2, s, pass);
        be->swiglu_fwd(h, gate, up, N * F);
        quantize_input(ws, &QX, h, N, F, s, pass, id0 + L_D);
        fqt_linear_fprop(ws, xo, &QX, P(m, tidx(l, P_WD)), C, s, pass, id0 + L_D);
        ws->used = 0;
        wgx_keep(m, a, l, WGX_H, h, s, pass);
        be->add_inplace(xo, xm, N * C);
    }
    const int t_norm = m->n_tensors - 2, t_head = m->n_tensors - 1;
    be->rmsnorm_fwd(a->xnf, a->rstdf, AT(a, a->resid, L * N * C), P(m, t_norm), N, C, c->norm_eps);
    {
        const fqt_linear_spec *s = fqt_recipe_lm_head(pass->recipe);
        fqt_qtensor QX;
        quantize_input(ws, &QX, a->xnf, N, C, s, pass, m->n_linears - 1);
        fqt_linear_fprop(ws, a->logits, &QX, P(m, t_head), V, s, pass, m->n_linears - 1);
        ws->used = 0;
    }
    if (!targets) {
        a->count = 0;
        return 0.0;
    }
    be->upload(a->targets, targets, (size_t)N * sizeof(int32_t));
    int64_t count = 0;
    for (int64_t i = 0; i < N; i++) count += targets[i] >= 0;
    a->count = count;
    /* The loss only; dlogits are formed in backward (the logits stay readable until then). */
    double loss = be->xent_fwd_bwd(NULL, NULL, a->logits, a->targets, N, V, 0.0f);
    return isfinite(loss) ? loss : NAN;
}

const float *fqt_model_logits(const fqt_model *m) {
    fqt_acts *a = m->acts;
    if (!a) return NULL;
    if (m->be->host_memory && m->be->act_dtype == FQT_DT_F32) return a->logits;
    /* Device or non-float32 storage: a host float32 copy, made on request (eval, sampling). */
    const int64_t n = a->B * a->T * m->cfg.vocab;
    if (!a->logits_host) a->logits_host = fqt_xmalloc((size_t)n * sizeof(float));
    if (m->be->act_dtype == FQT_DT_F32) {
        m->be->download(a->logits_host, a->logits, (size_t)n * sizeof(float));
    } else {
        float *tmp = m->be->alloc((size_t)n * sizeof(float));
        FQT_ASSERT(tmp);
        m->be->convert(tmp, FQT_DT_F32, a->logits, m->be->act_dtype, n);
        m->be->download(a->logits_host, tmp, (size_t)n * sizeof(float));
        m->be->free(tmp);
    }
    return a->logits_host;
}

void fqt_model_backward(fqt_model *m, const fqt_pass *pass, float loss_scale) {
    const fqt_model_config *c = &m->cfg;
    fqt_acts *a = m->acts;
    FQT_ASSERT(a && a->count > 0);
    const fqt_backend *be = m->be;
    const int64_t B = a->B, T = a->T, N = B * T, C = c->dim, L = c->n_layers, F = c->ffn;
    const int64_t V = c->vocab, NH = c->n_heads, NKV = c->n_kv_heads, HS = C / NH;
    const int64_t QD = NH * HS, KD = NKV * HS;
    fqt_ws *ws = &a->ws;
    fqt_qtensor QXt;
    const float *W;

    /* Loss -> logits -> LM head -> final norm. */
    be->xent_fwd_bwd(a->logits, NULL, a->logits, a->targets, N, V, loss_scale / (float)a->count);
    {
        const int64_t id = m->n_linears - 1;
        const int t_norm = m->n_tensors - 2, t_head = m->n_tensors - 1;
        const fqt_linear_spec *fs = fqt_recipe_lm_head(pass->recipe), *s = bwd_spec(fs, pass);
        W = bwd_weight(ws, P(m, t_head), V, C, fs, pass, id);
        fqt_linear_dgrad(ws, a->dxn, 0.0f, a->logits, N, W, V, C, s, pass, id);
        ws->used = 0;
        fqt_linear_wgrad_x(ws, &QXt, a->xnf, N, C, s, pass, id, id);
        fqt_linear_wgrad(ws, G(m, t_head), a->logits, N, V, &QXt, s, pass, id, id);
        ws->used = 0;
        be->zero(a->dx, (size_t)(N * C) * a->e);
        be->rmsnorm_bwd(a->dx, G(m, t_norm), a->dxn, AT(a, a->resid, L * N * C), P(m, t_norm), a->rstdf, N, C);
    }

    for (int64_t l = L - 1; l >= 0; l--) {
        const fqt_linear_spec *fs = fqt_recipe_layer(pass->recipe, (int)l, (int)L);
        const fqt_linear_spec *s = bwd_spec(fs, pass);
        const int64_t id0 = l * FQT_LINEARS_PER_LAYER;
        void *x = AT(a, a->resid, l * N * C), *xm = AT(a, a->x_mid, l * N * C);
        void *q = AT(a, a->q, l * N * QD), *k = AT(a, a->k, l * N * KD), *v = AT(a, a->v, l * N * KD);
        void *y = AT(a, a->y, l * N * QD);
        const float *att = a->att + l * B * NH * T * 2;
        void *gate = AT(a, a->gate, l * N * F), *up = AT(a, a->up, l * N * F);

        /* MLP: dx is the gradient of the block output (and of down_proj's output). */
        W = bwd_weight(ws, P(m, tidx(l, P_WD)), C, F, fs, pass, id0 + L_D);
        fqt_linear_dgrad(ws, a->dh, 0.0f, a->dx, N, W, C, F, s, pass, id0 + L_D);
        ws->used = 0;
        wgx_get(m, a, &QXt, l, WGX_H, s, pass);
        fqt_linear_wgrad(ws, G(m, tidx(l, P_WD)), a->dx, N, C, &QXt, s, pass, id0 + L_D, id0 + L_D);
        ws->used = 0;
        be->swiglu_bwd(a->dgate, a->dup, a->dh, gate, up, N * F);
        W = bwd_weight(ws, P(m, tidx(l, P_WG)), F, C, fs, pass, id0 + L_G);
        fqt_linear_dgrad(ws, a->dxn, 0.0f, a->dgate, N, W, F, C, s, pass, id0 + L_G);
        ws->used = 0;
        W = bwd_weight(ws, P(m, tidx(l, P_WU)), F, C, fs, pass, id0 + L_U);
        fqt_linear_dgrad(ws, a->dxn, 1.0f, a->dup, N, W, F, C, s, pass, id0 + L_U);
        ws->used = 0;
        wgx_get(m, a, &QXt, l, WGX_XN2, s, pass);
        fqt_linear_wgrad(ws, G(m, tidx(l, P_WG)), a->dgate, N, F, &QXt, s, pass, id0 + L_G, id0 + L_G);
        fqt_linear_wgrad(ws, G(m, tidx(l, P_WU)), a->dup, N, F, &QXt, s, pass, id0 + L_U, id0 + L_G);
        ws->used = 0;
        be->rmsnorm_bwd(a->dx, G(m, tidx(l, P_MLP_NORM)), a->dxn, xm, P(m, tidx(l, P_MLP_NORM)),
                        a->rstd2 + l * N, N, C);

        /* Attention: dx is now the gradient of x_mid (and of o_proj's output). */
        W = bwd_weight(ws, P(m, tidx(l, P_WO)), C, QD, fs, pass, id0 + L_O);
        fqt_linear_dgrad(ws, a->dy, 0.0f, a->dx, N, W, C, QD, s, pass, id0 + L_O);
        ws->used = 0;
        fqt_linear_wgrad_x(ws, &QXt, y, N, QD, s, pass, id0 + L_O, id0 + L_O);
        fqt_linear_wgrad(ws, G(m, tidx(l, P_WO)), a->dx, N, C, &QXt, s, pass, id0 + L_O, id0 + L_O);
        ws->used = 0;
        be->attention_bwd(a->dq, a->dk, a->dv, a->dy, y, att, q, k, v, B, T, NH, NKV, HS);
        be->rope_bwd(a->dq, B, T, NH, HS, c->rope_theta);
        be->rope_bwd(a->dk, B, T, NKV, HS, c->rope_theta);
        const void *dys[3] = {a->dq, a->dk, a->dv};
        const int64_t outs[3] = {QD, KD, KD};
        const int pts[3] = {P_WQ, P_WK, P_WV};
        for (int j = 0; j < 3; j++) {
            W = bwd_weight(ws, P(m, tidx(l, pts[j])), outs[j], C, fs, pass, id0 + j);
            fqt_linear_dgrad(ws, a->dxn, j ? 1.0f : 0.0f, dys[j], N, W, outs[j], C, s, pass, id0 + j);
            ws->used = 0;
        }
        wgx_get(m, a, &QXt, l, WGX_XN1, s, pass);
        for (int j = 0; j < 3; j++)
            fqt_linear_wgrad(ws, G(m, tidx(l, pts[j])), dys[j], N, outs[j], &QXt, s, pass, id0 + j, id0 + L_Q);
        ws->used = 0;
        be->rmsnorm_bwd(a->dx, G(m, tidx(l, P_ATTN_NORM)), a->dxn, x, P(m, tidx(l, P_ATTN_NORM)),
                        a->rstd1 + l * N, N, C);
    }
    be->embedding_bwd(G(m, 0), a->dx, a->tokens, N, C);
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
