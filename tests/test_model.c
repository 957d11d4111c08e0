/* tests/test_model.c — the whole model (fqt/model.h): configuration checks, gradients
 * against finite differences, the QAT straight-through pass, learning, determinism.
 *
 *  - config: fqt_model_config_validate on impossible sizes and the named sizes.
 *  - gradients (recipe "fp32", quantization off): the float backward against
 *      (a) central differences of a double-precision re-statement of the forward pass written
 *          here from the architecture (fqt_ops_cpu_f64 for the ops, a double GEMM), whose
 *          loss must also agree with the model's float loss: tight, every parameter;
 *      (b) central differences of the model's own float forward (two float losses per
 *          parameter): looser, with the bound derived below; a sample of every tensor;
 *    and ignored targets (< 0) contributing nothing.
 *  - QAT: forward bit-identical to FQT mode for a recipe whose forward is RTN; backward equal,
 *    bit for bit, to an FP32 model holding deq(Q(W)) whose linear inputs are fake-quantized;
 *    the LM-head gradient equal to dlogitsᵀ·deq(Q(xnf)) recomputed independently.
 *  - learning: fp32 and nvfp4 on a learnable sequence with a small Adam written here.
 *  - determinism: repeated passes and 1 vs 2 OpenMP threads give identical bits.
 * Not for: the linear layer's GEMMs (tests/test_linear.c), the ops (tests/test_ops.c). */
#include "check.h"
#include "cpu/ops_f64.h"
#include "fqt/model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static double urand(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (double)(rng >> 11) * 0x1p-53;
}
static int64_t irand(int64_t n) { return (int64_t)(urand() * (double)n); }

static fqt_recipe recipe(const char *s) {
    fqt_recipe r;
    if (fqt_recipe_parse(s, &r) != FQT_OK) {
        fprintf(stderr, "test bug: recipe '%s': %s\n", s, fqt_last_error());
        abort();
    }
    return r;
}

static fqt_model_config cfg_of(int64_t V, int64_t C, int64_t L, int64_t NH, int64_t NKV,
                               int64_t F, int64_t ctx) {
    fqt_model_config c = {V, C, L, NH, NKV, F, ctx, 10000.0f, 1e-5f};
    return c;
}

static void model_new(fqt_model *m, const fqt_model_config *c, uint64_t seed) {
    fqt_status st = fqt_model_create(m, c);
    if (st) {
        fprintf(stderr, "fqt_model_create: %s\n", fqt_last_error());
        abort();
    }
    fqt_model_init(m, seed);
}

/* ---- configuration -------------------------------------------------------------------- */

static void config_bad(fqt_model_config c, const char *what) {
    fqt_set_error("%s", "");
    fqt_status st = fqt_model_config_validate(&c);
    CHECK_MSG(st == FQT_ERR_ARG, "%s accepted", what);
    CHECK_MSG(strlen(fqt_last_error()) > 10 && strcmp(fqt_last_error(), "no error recorded"),
              "%s: no message", what);
    fqt_model m;
    CHECK_MSG(fqt_model_create(&m, &c) == FQT_ERR_ARG, "create with %s", what);
}

static void test_config(void) {
    const fqt_model_config ok = cfg_of(100, 64, 2, 4, 2, 96, 32);
    CHECK(fqt_model_config_validate(&ok) == FQT_OK);
    const char *fields[] = {"vocab", "dim", "n_layers", "n_heads", "n_kv_heads", "ffn", "ctx"};
    for (int f = 0; f < 7; f++)
        for (int v = -1; v <= 0; v++) {
            fqt_model_config c = ok;
            int64_t *p[] = {&c.vocab, &c.dim, &c.n_layers, &c.n_heads, &c.n_kv_heads, &c.ffn, &c.ctx};
            *p[f] = v;
            char what[64];
            snprintf(what, sizeof what, "%s = %d", fields[f], v);
            config_bad(c, what);
        }
    fqt_model_config c = ok;
    c.n_heads = 3; /* 64 % 3 != 0 */
    config_bad(c, "heads not dividing dim");
    c = ok;
    c.n_kv_heads = 3; /* 4 % 3 != 0 */
    config_bad(c, "kv heads not dividing heads");
    c = ok;
    c.n_kv_heads = 8; /* more kv heads than heads */
    config_bad(c, "kv heads > heads");
    c = ok;
    c.dim = 36, c.n_heads = 4, c.n_kv_heads = 4; /* head size 9 */
    config_bad(c, "odd head size");
    c = ok;
    c.vocab = 65537;
    config_bad(c, "vocab > 65536");
    c = ok;
    c.vocab = 65536;
    CHECK(fqt_model_config_validate(&c) == FQT_OK);
    c = ok;
    c.norm_eps = 0.0f;
    config_bad(c, "norm_eps 0");
    c = ok;
    c.rope_theta = NAN;
    config_bad(c, "rope_theta NaN");

    int n = 0;
    for (int i = 0; fqt_model_size_names[i]; i++, n++) {
        fqt_model_config nc;
        CHECK_MSG(fqt_model_config_named(fqt_model_size_names[i], &nc) == FQT_OK, "%s",
                  fqt_model_size_names[i]);
        CHECK_MSG(fqt_model_config_validate(&nc) == FQT_OK, "%s: %s", fqt_model_size_names[i],
                  fqt_last_error());
    }
    CHECK(n == 4);
    fqt_model_config l;
    CHECK(fqt_model_config_named("llama-124m", &l) == FQT_OK);
    CHECK(l.dim == 768 && l.n_layers == 12 && l.n_heads == 12 && l.ffn == 2048 && l.ctx == 1024 &&
          l.vocab == 50304);
    /* issue 9's llama-1b: d 2048, 16 layers, 16 heads, FFN 5632, T 2048 */
    CHECK(fqt_model_config_named("llama-1b", &l) == FQT_OK);
    CHECK(l.dim == 2048 && l.n_layers == 16 && l.n_heads == 16 && l.n_kv_heads == 16 && l.ffn == 5632 &&
          l.ctx == 2048 && l.vocab == 50304);
    fqt_model_config t;
    CHECK(fqt_model_config_named("huge", &t) == FQT_ERR_ARG);
    CHECK(strstr(fqt_last_error(), "llama-124m") != NULL);

    /* Parameter table: Hugging Face names, shapes, contiguous non-overlapping layout. */
    fqt_model m;
    model_new(&m, &ok, 1);
    CHECK(m.n_tensors == 3 + 9 * 2 && m.n_linears == 2 * FQT_LINEARS_PER_LAYER + 1);
    int64_t off = 0;
    for (int i = 0; i < m.n_tensors; i++) {
        CHECK_MSG(m.tensors[i].offset == off, "%s", m.tensors[i].name);
        int64_t prod = m.tensors[i].shape[0] * (m.tensors[i].ndim == 2 ? m.tensors[i].shape[1] : 1);
        CHECK_MSG(prod == m.tensors[i].numel, "%s", m.tensors[i].name);
        off += m.tensors[i].numel;
    }
    CHECK(off == m.n_params);
    const fqt_param_info *k = fqt_model_find(&m, "model.layers.1.self_attn.k_proj.weight");
    CHECK(k && k->ndim == 2 && k->shape[0] == 32 && k->shape[1] == 64 && k->decay);
    const fqt_param_info *nrm = fqt_model_find(&m, "model.layers.0.post_attention_layernorm.weight");
    CHECK(nrm && nrm->ndim == 1 && nrm->numel == 64 && !nrm->decay);
    const fqt_param_info *h = fqt_model_find(&m, "lm_head.weight");
    CHECK(h && h->shape[0] == 100 && h->shape[1] == 64);
    CHECK(fqt_model_find(&m, "model.layers.2.mlp.up_proj.weight") == NULL);
    CHECK(!strcmp(m.linear_names[FQT_LINEARS_PER_LAYER + 4], "layers.1.mlp.gate_proj") &&
          !strcmp(m.linear_names[m.n_linears - 1], "lm_head"));
    fqt_model_free(&m);
}

/* ---- the double-precision reference forward ----------------------------------------------- */

static const double *dparam(const fqt_model *m, const double *p, const char *fmt, long long l) {
    char name[128];
    snprintf(name, sizeof name, fmt, l);
    const fqt_param_info *t = fqt_model_find(m, name);
    if (!t) {
        fprintf(stderr, "test bug: no tensor %s\n", name);
        abort();
    }
    return p + t->offset;
}

/* out[N, M] = x[N, K] · w[M, K]ᵀ */
static void dlinear(double *out, const double *x, const double *w, int64_t N, int64_t K, int64_t M) {
    for (int64_t n = 0; n < N; n++)
        for (int64_t j = 0; j < M; j++) {
            double s = 0;
            for (int64_t k = 0; k < K; k++) s += x[n * K + k] * w[j * K + k];
            out[n * M + j] = s;
        }
}

/* The Llama decoder from its definition: embedding, L pre-norm blocks (RMSNorm, q/k/v, RoPE
 * on q and k, causal GQA attention, o_proj, residual; RMSNorm, SwiGLU MLP, residual), final
 * RMSNorm, LM head, mean cross-entropy over targets >= 0. Parameters p use the model's
 * layout and Hugging Face names. */
static double ref_loss(const fqt_model *m, const double *p, const int32_t *tok, const int32_t *tgt,
                       int64_t B, int64_t T) {
    const fqt_ops_f64 *D = &fqt_ops_cpu_f64;
    const fqt_model_config *c = &m->cfg;
    const int64_t N = B * T, C = c->dim, F = c->ffn, V = c->vocab, NH = c->n_heads;
    const int64_t NKV = c->n_kv_heads, HS = C / NH, KD = NKV * HS;
    double *x = calloc((size_t)(N * C), sizeof(double)), *xn = calloc((size_t)(N * C), sizeof(double));
    double *rs = calloc((size_t)N, sizeof(double)), *q = calloc((size_t)(N * C), sizeof(double));
    double *k = calloc((size_t)(N * KD), sizeof(double)), *v = calloc((size_t)(N * KD), sizeof(double));
    double *y = calloc((size_t)(N * C), sizeof(double)), *o = calloc((size_t)(N * C), sizeof(double));
    double *att = calloc((size_t)(B * NH * T * T), sizeof(double));
    double *g = calloc((size_t)(N * F), sizeof(double)), *u = calloc((size_t)(N * F), sizeof(double));
    double *h = calloc((size_t)(N * F), sizeof(double)), *lg = calloc((size_t)(N * V), sizeof(double));
    D->embedding_fwd(x, tok, dparam(m, p, "model.embed_tokens.weight", 0), N, C);
    for (long long l = 0; l < c->n_layers; l++) {
        D->rmsnorm_fwd(xn, rs, x, dparam(m, p, "model.layers.%lld.input_layernorm.weight", l), N, C,
                       (double)c->norm_eps);
        dlinear(q, xn, dparam(m, p, "model.layers.%lld.self_attn.q_proj.weight", l), N, C, C);
        dlinear(k, xn, dparam(m, p, "model.layers.%lld.self_attn.k_proj.weight", l), N, C, KD);
        dlinear(v, xn, dparam(m, p, "model.layers.%lld.self_attn.v_proj.weight", l), N, C, KD);
        D->rope_fwd(q, B, T, NH, HS, (double)c->rope_theta);
        D->rope_fwd(k, B, T, NKV, HS, (double)c->rope_theta);
        D->attention_fwd(y, att, q, k, v, B, T, NH, NKV, HS);
        dlinear(o, y, dparam(m, p, "model.layers.%lld.self_attn.o_proj.weight", l), N, C, C);
        D->add_inplace(x, o, N * C);
        D->rmsnorm_fwd(xn, rs, x, dparam(m, p, "model.layers.%lld.post_attention_layernorm.weight", l),
                       N, C, (double)c->norm_eps);
        dlinear(g, xn, dparam(m, p, "model.layers.%lld.mlp.gate_proj.weight", l), N, C, F);
        dlinear(u, xn, dparam(m, p, "model.layers.%lld.mlp.up_proj.weight", l), N, C, F);
        D->swiglu_fwd(h, g, u, N * F);
        dlinear(o, h, dparam(m, p, "model.layers.%lld.mlp.down_proj.weight", l), N, F, C);
        D->add_inplace(x, o, N * C);
    }
    D->rmsnorm_fwd(xn, rs, x, dparam(m, p, "model.norm.weight", 0), N, C, (double)c->norm_eps);
    dlinear(lg, xn, dparam(m, p, "lm_head.weight", 0), N, C, V);
    double loss = D->xent_fwd_bwd(NULL, NULL, lg, tgt, N, V, 0.0);
    free(x), free(xn), free(rs), free(q), free(k), free(v), free(y), free(o), free(att);
    free(g), free(u), free(h), free(lg);
    return loss;
}

/* ---- gradient check --------------------------------------------------------------------- */

static void test_gradients(void) {
    const fqt_model_config c = cfg_of(23, 16, 2, 4, 2, 24, 8);
    const int64_t B = 2, T = 5, N = B * T;
    fqt_model m;
    model_new(&m, &c, 42);
    /* Larger weights than the training init, so every nonlinearity is exercised well away
     * from its linear regime, and norm weights away from 1. */
    for (int t = 0; t < m.n_tensors; t++) {
        float *w = m.params + m.tensors[t].offset;
        for (int64_t i = 0; i < m.tensors[t].numel; i++)
            w[i] = m.tensors[t].ndim == 1 ? (float)(1.0 + 0.5 * (urand() - 0.5)) : 12.0f * w[i];
    }
    int32_t tok[10], tgt[10];
    for (int64_t i = 0; i < N; i++) tok[i] = (int32_t)irand(c.vocab);
    for (int64_t i = 0; i < N; i++) tgt[i] = (int32_t)irand(c.vocab);
    tgt[3] = -1; /* ignored targets, one per sequence */
    tgt[9] = -100;
    const fqt_recipe r = recipe("fp32");
    const fqt_pass pass = {&r, FQT_MODE_FQT, 1, 0, NULL, false};

    const double loss = fqt_model_forward(&m, tok, tgt, B, T, &pass);
    /* Ignored targets: dlogits (left in the logits buffer by backward) are zero on their rows,
     * and the loss is the mean of -log softmax over the 8 counted rows only. */
    double want = 0;
    {
        const float *lg = fqt_model_logits(&m);
        for (int64_t n = 0; n < N; n++) {
            if (tgt[n] < 0) continue;
            double mx = -INFINITY, s = 0;
            for (int64_t j = 0; j < c.vocab; j++) mx = fmax(mx, lg[n * c.vocab + j]);
            for (int64_t j = 0; j < c.vocab; j++) s += exp(lg[n * c.vocab + j] - mx);
            want += mx + log(s) - lg[n * c.vocab + tgt[n]];
        }
        want /= 8;
    }
    /* xent sums float exps in double: each term is off by a few u (exp and x - max in float). */
    CHECK_MSG(fabs(loss - want) <= 8 * 0x1p-24 * want, "loss %.17g, mean over counted rows %.17g",
              loss, want);
    fqt_model_zero_grad(&m);
    fqt_model_backward(&m, &pass, 1.0f);
    {
        const float *dl = fqt_model_logits(&m);
        int nz = 0;
        for (int64_t j = 0; j < c.vocab; j++) nz += dl[3 * c.vocab + j] != 0.0f || dl[9 * c.vocab + j] != 0.0f;
        CHECK_MSG(nz == 0, "%d nonzero dlogits on ignored rows", nz);
    }
    float *g = malloc(sizeof(float) * (size_t)m.n_params);
    memcpy(g, m.grads, sizeof(float) * (size_t)m.n_params);
    /* loss_scale multiplies every gradient exactly when it is a power of two (each stage of
     * the backward is linear in dlogits); a second backward accumulates (+=). */
    {
        fqt_model_forward(&m, tok, tgt, B, T, &pass);
        fqt_model_zero_grad(&m);
        fqt_model_backward(&m, &pass, 2.0f);
        int bad2 = 0;
        for (int64_t i = 0; i < m.n_params; i++) bad2 += m.grads[i] != 2.0f * g[i];
        CHECK_MSG(bad2 == 0, "backward(loss_scale 2) != 2 x backward(1) in %d entries", bad2);
        fqt_model_forward(&m, tok, tgt, B, T, &pass);
        fqt_model_backward(&m, &pass, 1.0f);
        double gmax = 0;
        for (int64_t i = 0; i < m.n_params; i++) gmax = fmax(gmax, fabs(g[i]));
        int bad3 = 0;
        for (int64_t i = 0; i < m.n_params; i++)
            bad3 += fabs(m.grads[i] - 3.0 * g[i]) > 16 * 0x1p-24 * gmax;
        CHECK_MSG(bad3 == 0, "grads do not accumulate: %d entries != 3 x", bad3);
    }
    /* The ignored targets' values do not matter. */
    {
        int32_t tgt2[10];
        memcpy(tgt2, tgt, sizeof tgt);
        tgt2[3] = -7;
        tgt2[9] = -1;
        double l2 = fqt_model_forward(&m, tok, tgt2, B, T, &pass);
        CHECK(memcmp(&l2, &loss, sizeof l2) == 0);
        fqt_model_zero_grad(&m);
        fqt_model_backward(&m, &pass, 1.0f);
        CHECK(memcmp(m.grads, g, sizeof(float) * (size_t)m.n_params) == 0);
    }

    /* (a) Against the double reference. Its loss agrees with the float loss to ~ the float
     * forward's rounding (checked loosely: 1e-5 relative, ~170 u). Central differences in
     * double with h = 1e-6 have truncation error h^2/6 |f'''| ~ 1e-13 and rounding error
     * ~ 1e-16 |L| / h ~ 1e-10: exact for our purpose. The float backward's own rounding
     * error: every gradient is a chain of <= 9L + 4 float stages (GEMMs with K <= 24, norms,
     * softmax), each contributing a relative error of at most gamma_24 ~ 24 u of the scale
     * of the terms it sums; with cancellation the error is relative to the size of the
     * tensor's gradient, not to the entry. So: tol = (9L+4) * gamma_24 * (|g| + rms(tensor)),
     * ~ 22 * 1.4e-6 ~ 3e-5 relative. */
    double *pd = malloc(sizeof(double) * (size_t)m.n_params);
    for (int64_t i = 0; i < m.n_params; i++) pd[i] = m.params[i];
    const double lref = ref_loss(&m, pd, tok, tgt, B, T);
    CHECK_MSG(fabs(lref - loss) <= 1e-5 * fabs(lref), "float loss %.9g, double reference %.9g", loss, lref);
    const double u = 0x1p-24, g24 = 24 * u / (1 - 24 * u), stages = 9.0 * (double)c.n_layers + 4;
    double worst_a = 0, worst_b = 0;
#ifdef FQT_SANITIZE
    const int64_t stride_a = 7; /* every 7th parameter under the sanitizers */
#else
    const int64_t stride_a = 1;
#endif
    for (int t = 0; t < m.n_tensors; t++) {
        const fqt_param_info *pi = &m.tensors[t];
        double rms = 0;
        for (int64_t i = 0; i < pi->numel; i++) rms += (double)g[pi->offset + i] * g[pi->offset + i];
        rms = sqrt(rms / (double)pi->numel);
        int bad = 0, nchk = 0;
        for (int64_t i = (t % (int)stride_a); i < pi->numel; i += stride_a) {
            const int64_t j = pi->offset + i;
            const double p0 = pd[j], h = 1e-6;
            pd[j] = p0 + h;
            double lp = ref_loss(&m, pd, tok, tgt, B, T);
            pd[j] = p0 - h;
            double lm = ref_loss(&m, pd, tok, tgt, B, T);
            pd[j] = p0;
            const double fd = (lp - lm) / (2 * h);
            const double tol = stages * g24 * (fabs(fd) + rms) + 1e-9;
            const double e = fabs(g[j] - fd);
            if (e / tol > worst_a) worst_a = e / tol;
            nchk++;
            if (!(e <= tol) && bad++ < 3)
                fprintf(stderr, "  %s[%lld]: backward %.9g, double FD %.9g (tol %.2g)\n", pi->name,
                        (long long)i, g[j], fd, tol);
        }
        CHECK_MSG(bad == 0 && nchk > 0, "%s: %d of %d gradients off the double FD", pi->name, bad, nchk);
        CHECK_MSG(rms > 0, "%s: zero gradient", pi->name);
    }

    /* (b) Central differences of the model's own float forward, 6 random entries per tensor.
     * Error of FD_f = (L_f(p+h) - L_f(p-h)) / (2h'), h' the step actually taken in float:
     *   truncation  h'^2/6 |f'''|, measured here as |FD_d(h') - FD_d(1e-6)| on the double
     *               reference (the same function), times 1.5 for safety;
     *   rounding    (|e+| + |e-|) / (2h'), e = L_f - L_true. The float forward rounds in
     *               about 9L+4 stages with gamma_24 each, on logits of size |z| ~ 1-3;
     *               the loss inherits |e| <= stages * gamma_24 * max|z|, bounded here by
     *               stages * gamma_24 * 4 ~ 1.2e-4 (pessimistic: worst case, all errors
     *               aligned).
     * With h = 2^-6 the rounding term is ~ 8e-3 and truncation ~ 1e-5 |f'''|: a loose but
     * honest check; (a) above is the tight one. */
    const double eL = stages * g24 * 4.0;
    for (int t = 0; t < m.n_tensors; t++) {
        const fqt_param_info *pi = &m.tensors[t];
        int bad = 0;
        for (int s = 0; s < 6; s++) {
            const int64_t j = pi->offset + irand(pi->numel);
            const float p0 = m.params[j];
            const float pp = p0 + 0x1p-6f, pm = p0 - 0x1p-6f;
            m.params[j] = pp;
            double lp = fqt_model_forward(&m, tok, tgt, B, T, &pass);
            m.params[j] = pm;
            double lm = fqt_model_forward(&m, tok, tgt, B, T, &pass);
            m.params[j] = p0;
            const double hh = ((double)pp - (double)pm) / 2;
            const double fd = (lp - lm) / (2 * hh);
            pd[j] = (double)pp;
            double dp = ref_loss(&m, pd, tok, tgt, B, T);
            pd[j] = (double)pm;
            double dm = ref_loss(&m, pd, tok, tgt, B, T);
            pd[j] = (double)p0 + 1e-6;
            double ep = ref_loss(&m, pd, tok, tgt, B, T);
            pd[j] = (double)p0 - 1e-6;
            double em = ref_loss(&m, pd, tok, tgt, B, T);
            pd[j] = (double)p0;
            const double trunc = fabs((dp - dm) / (2 * hh) - (ep - em) / 2e-6);
            const double tol = 1.5 * trunc + 2 * eL / (2 * hh) + stages * g24 * fabs(fd) + 1e-9;
            const double e = fabs(g[j] - fd);
            if (e / tol > worst_b) worst_b = e / tol;
            if (!(e <= tol) && bad++ < 3)
                fprintf(stderr, "  %s[%lld]: backward %.9g, float FD %.9g (tol %.2g)\n", pi->name,
                        (long long)(j - pi->offset), g[j], fd, tol);
        }
        CHECK_MSG(bad == 0, "%s: %d gradients off the float FD", pi->name, bad);
    }
    printf("  gradients: worst error/bound %.3f vs double FD (every %lld-th parameter), %.3f vs float FD\n",
           worst_a, (long long)stride_a, worst_b);
    free(pd);
    free(g);
    fqt_model_free(&m);
}

/* ---- QAT ---------------------------------------------------------------------------------- */

static const char *const linear_fmt[FQT_LINEARS_PER_LAYER] = {
    "model.layers.%lld.self_attn.q_proj.weight", "model.layers.%lld.self_attn.k_proj.weight",
    "model.layers.%lld.self_attn.v_proj.weight", "model.layers.%lld.self_attn.o_proj.weight",
    "model.layers.%lld.mlp.gate_proj.weight",    "model.layers.%lld.mlp.up_proj.weight",
    "model.layers.%lld.mlp.down_proj.weight"};

static const fqt_param_info *tensor_of(const fqt_model *m, const char *fmt, long long l) {
    char name[128];
    snprintf(name, sizeof name, fmt, l);
    const fqt_param_info *t = fqt_model_find(m, name);
    if (!t) abort();
    return t;
}

/* Replaces every linear weight W of m by deq(Q(W)) with its layer's fprop.w format and
 * rounding under r (RTN here, so the keys only matter for form's sake). */
static void fake_quant_weights(fqt_model *m, const fqt_recipe *r, const fqt_pass *pass) {
    const long long L = m->cfg.n_layers;
    for (long long l = 0; l <= L; l++) {
        const fqt_linear_spec *s = l < L ? fqt_recipe_layer(r, (int)l, (int)L) : fqt_recipe_lm_head(r);
        const int nj = l < L ? FQT_LINEARS_PER_LAYER : 1;
        for (int j = 0; j < nj; j++) {
            const fqt_param_info *t = l < L ? tensor_of(m, linear_fmt[j], l) : fqt_model_find(m, "lm_head.weight");
            const int64_t id = l * FQT_LINEARS_PER_LAYER + j;
            float *w = m->params + t->offset;
            CHECK(fqt_qdq(&s->op[FQT_OP_FPROP_W].fmt, w, w, t->shape[0], t->shape[1], FQT_AXIS_ROWS,
                          s->op[FQT_OP_FPROP_W].rounding, pass->seed,
                          fqt_sr_stream((uint32_t)id, FQT_OP_FPROP_W, pass->sr_step), NULL) == FQT_OK);
        }
    }
}

static void scale_matrices(fqt_model *m, float f) {
    for (int t = 0; t < m->n_tensors; t++)
        if (m->tensors[t].ndim == 2)
            for (int64_t i = 0; i < m->tensors[t].numel; i++) m->params[m->tensors[t].offset + i] *= f;
}

static void test_qat(void) {
    const fqt_model_config c = cfg_of(29, 32, 2, 2, 1, 48, 16);
    const int64_t B = 2, T = 16, N = B * T;
    int32_t tok[32], tgt[32];
    for (int64_t i = 0; i < N; i++) tok[i] = (int32_t)irand(c.vocab), tgt[i] = (int32_t)irand(c.vocab);
    tgt[5] = -1;
    fqt_model m, mc;
    model_new(&m, &c, 7);
    scale_matrices(&m, 5.0f);
    const size_t gbytes = sizeof(float) * (size_t)m.n_params;

    /* The forward pass is the same in both modes: bit for bit. */
    const fqt_recipe r = recipe("nvfp4,lm_head=quant");
    const fqt_pass pf = {&r, FQT_MODE_FQT, 11, 1, NULL, false}, pq = {&r, FQT_MODE_QAT, 11, 1, NULL, false};
    const double lf = fqt_model_forward(&m, tok, tgt, B, T, &pf);
    float *logits_f = malloc(sizeof(float) * (size_t)(N * c.vocab));
    memcpy(logits_f, fqt_model_logits(&m), sizeof(float) * (size_t)(N * c.vocab));
    const double lq = fqt_model_forward(&m, tok, tgt, B, T, &pq);
    CHECK_MSG(memcmp(&lf, &lq, sizeof lf) == 0, "QAT loss %.17g != FQT loss %.17g", lq, lf);
    CHECK(memcmp(logits_f, fqt_model_logits(&m), sizeof(float) * (size_t)(N * c.vocab)) == 0);
    fqt_model_zero_grad(&m);
    fqt_model_backward(&m, &pq, 1.0f);
    float *gq = malloc(gbytes);
    memcpy(gq, m.grads, gbytes);
    /* ... and differs from the unquantized model (the recipe did something). */
    const fqt_recipe r32 = recipe("fp32");
    const fqt_pass p32 = {&r32, FQT_MODE_FQT, 11, 1, NULL, false};
    const double l32 = fqt_model_forward(&m, tok, tgt, B, T, &p32);
    CHECK_MSG(l32 != lq, "nvfp4 QAT loss equals the fp32 loss");

    /* The QAT backward is FP32 (no SR): another sr_step gives the same gradients. */
    const fqt_pass pq2 = {&r, FQT_MODE_QAT, 11, 2, NULL, false};
    fqt_model_forward(&m, tok, tgt, B, T, &pq2);
    fqt_model_zero_grad(&m);
    fqt_model_backward(&m, &pq2, 1.0f);
    CHECK_MSG(memcmp(m.grads, gq, gbytes) == 0, "QAT gradients depend on sr_step");

    /* Straight-through: the same as an FP32 model holding deq(Q(W)) with fake-quantized linear
     * inputs (recipe fp32 with fprop.x = nvfp4/rtn; W is already on the grid). Forward and all
     * input gradients (dgrad) coincide bit for bit, so the embedding and norm gradients do; the
     * weight gradients differ, as QAT takes them against deq(Q(X)), not X. */
    model_new(&mc, &c, 7);
    memcpy(mc.params, m.params, gbytes);
    fake_quant_weights(&mc, &r, &pq);
    const fqt_recipe rc = recipe("fp32,fprop.x=nvfp4,lm_head=quant");
    const fqt_pass pc = {&rc, FQT_MODE_FQT, 11, 1, NULL, false};
    const double lc = fqt_model_forward(&mc, tok, tgt, B, T, &pc);
    CHECK_MSG(memcmp(&lc, &lq, sizeof lc) == 0, "fake-quantized fp32 model loss %.17g != QAT %.17g", lc, lq);
    fqt_model_zero_grad(&mc);
    fqt_model_backward(&mc, &pc, 1.0f);
    int n_lin_diff = 0;
    for (int t = 0; t < m.n_tensors; t++) {
        const fqt_param_info *pi = &m.tensors[t];
        const int same = memcmp(gq + pi->offset, mc.grads + pi->offset, sizeof(float) * (size_t)pi->numel) == 0;
        const int is_linear = pi->ndim == 2 && strcmp(pi->name, "model.embed_tokens.weight");
        if (!is_linear) CHECK_MSG(same, "QAT gradient of %s differs from the STE model's", pi->name);
        n_lin_diff += is_linear && !same;
    }
    CHECK_MSG(n_lin_diff == 15, "%d of 15 linear weight gradients differ (QAT wgrad must use deq(Q(X)))",
              n_lin_diff);
    fqt_model_free(&mc);
    fqt_model_free(&m);

    /* LM head: with o_proj and down_proj zero every block is the identity, so the final normed
     * input is xnf = rmsnorm(embedding rows), recomputable here; the QAT gradient of the head
     * must be dlogitsᵀ · deq(Q(xnf)) (fprop.x format, RTN, along C), up to FP32 accumulation. */
    const fqt_model_config c1 = cfg_of(29, 32, 1, 2, 1, 48, 16);
    model_new(&m, &c1, 8);
    scale_matrices(&m, 5.0f);
    memset(m.params + tensor_of(&m, linear_fmt[3], 0)->offset, 0, sizeof(float) * 32 * 32);
    memset(m.params + tensor_of(&m, linear_fmt[6], 0)->offset, 0, sizeof(float) * 32 * 48);
    fqt_model_forward(&m, tok, tgt, B, T, &pq);
    fqt_model_zero_grad(&m);
    fqt_model_backward(&m, &pq, 1.0f);
    const float *dl = fqt_model_logits(&m);
    const float *E = m.params + fqt_model_find(&m, "model.embed_tokens.weight")->offset;
    const float *wf = m.params + fqt_model_find(&m, "model.norm.weight")->offset;
    const float *gh = m.grads + fqt_model_find(&m, "lm_head.weight")->offset;
    float *x = malloc(sizeof(float) * (size_t)(N * 32)), *xn = malloc(sizeof(float) * (size_t)(N * 32));
    float *xq = malloc(sizeof(float) * (size_t)(N * 32)), rs[32];
    for (int64_t n = 0; n < N; n++) memcpy(x + n * 32, E + tok[n] * 32, sizeof(float) * 32);
    fqt_ops_cpu.rmsnorm_fwd(xn, rs, x, wf, N, 32, c1.norm_eps);
    const fqt_operand_spec *ox = &fqt_recipe_lm_head(&r)->op[FQT_OP_FPROP_X];
    CHECK(fqt_qdq(&ox->fmt, xn, xq, N, 32, FQT_AXIS_ROWS, ox->rounding, pq.seed,
                  fqt_sr_stream((uint32_t)(m.n_linears - 1), FQT_OP_FPROP_X, pq.sr_step), NULL) == FQT_OK);
    const double gN = (double)(N + 1) * 0x1p-24 / (1 - (double)(N + 1) * 0x1p-24);
    int bad = 0, unq_far = 0;
    for (int64_t v = 0; v < c1.vocab; v++)
        for (int64_t k = 0; k < 32; k++) {
            double s = 0, sa = 0, s_unq = 0;
            for (int64_t n = 0; n < N; n++) {
                s += (double)dl[n * c1.vocab + v] * xq[n * 32 + k];
                sa += fabs((double)dl[n * c1.vocab + v] * xq[n * 32 + k]);
                s_unq += (double)dl[n * c1.vocab + v] * xn[n * 32 + k];
            }
            const double tol = gN * sa + 0x1p-140, got = gh[v * 32 + k];
            if (!(fabs(got - s) <= tol) && bad++ < 3)
                fprintf(stderr, "  lm_head grad [%lld,%lld] %.9g, dlogitsᵀ deq(Q(xnf)) %.9g\n",
                        (long long)v, (long long)k, got, s);
            unq_far += fabs(got - s_unq) > tol;
        }
    CHECK_MSG(bad == 0, "QAT lm_head gradient off dlogitsᵀ·deq(Q(xnf)) in %d entries", bad);
    CHECK_MSG(unq_far > 0, "QAT lm_head gradient equals dlogitsᵀ·xnf: the check is blind");
    free(x), free(xn), free(xq), free(gq), free(logits_f);
    fqt_model_free(&m);
}

/* ---- learning ------------------------------------------------------------------------------ */

/* A batch of sequences walking a fixed permutation cycle from random starts: token t+1 is
 * perm[token t], fully predictable from the current token. */
static void perm_batch(int32_t *tok, int32_t *tgt, const int32_t *perm, int64_t B, int64_t T, int64_t V) {
    for (int64_t b = 0; b < B; b++) {
        int32_t x = (int32_t)irand(V);
        for (int64_t t = 0; t < T; t++) {
            tok[b * T + t] = x;
            x = perm[x];
            tgt[b * T + t] = x;
        }
    }
}

/* Adam (beta 0.9, 0.999, eps 1e-8, no decay) for `steps` steps; returns the first loss and
 * the mean of the last five. */
static void train(const char *rname, int steps, double *first, double *last) {
    const fqt_model_config c = cfg_of(32, 32, 2, 4, 2, 64, 16);
    const int64_t B = 8, T = 16, V = c.vocab;
    int32_t perm[32], tok[128], tgt[128];
    for (int i = 0; i < V; i++) perm[i] = i;
    for (int i = (int)V - 1; i > 0; i--) { /* a single cycle (Sattolo) */
        int j = (int)irand(i), tmp = perm[i];
        perm[i] = perm[j], perm[j] = tmp;
    }
    fqt_model m;
    model_new(&m, &c, 3);
    const fqt_recipe r = recipe(rname);
    float *am = calloc((size_t)m.n_params, sizeof(float)), *av = calloc((size_t)m.n_params, sizeof(float));
    const double lr = 1e-2, b1 = 0.9, b2 = 0.999;
    *last = 0;
    for (int s = 0; s < steps; s++) {
        perm_batch(tok, tgt, perm, B, T, V);
        const fqt_pass pass = {&r, FQT_MODE_FQT, 5, (uint32_t)s, NULL, false};
        double loss = fqt_model_forward(&m, tok, tgt, B, T, &pass);
        if (s == 0) *first = loss;
        if (s >= steps - 5) *last += loss / 5;
        fqt_model_zero_grad(&m);
        fqt_model_backward(&m, &pass, 1.0f);
        const double c1 = 1 - pow(b1, s + 1), c2 = 1 - pow(b2, s + 1);
        for (int64_t i = 0; i < m.n_params; i++) {
            const double g = m.grads[i];
            am[i] = (float)(b1 * am[i] + (1 - b1) * g);
            av[i] = (float)(b2 * av[i] + (1 - b2) * g * g);
            m.params[i] -= (float)(lr * (am[i] / c1) / (sqrt(av[i] / c2) + 1e-8));
        }
    }
    free(am), free(av);
    fqt_model_free(&m);
}

static void test_learning(void) {
    const char *rs[] = {"fp32", "nvfp4"};
#ifdef FQT_SANITIZE
    const int steps = 40;
#else
    const int steps = 60;
#endif
    for (int i = 0; i < 2; i++) {
        double first = 0, last = 0;
        train(rs[i], steps, &first, &last);
        printf("  learning %-6s loss %.3f -> %.3f in %d Adam steps\n", rs[i], first, last, steps);
        CHECK_MSG(isfinite(first) && fabs(first - log(32.0)) < 0.5, "%s: first loss %.3f, ln V = %.3f",
                  rs[i], first, log(32.0));
        CHECK_MSG(last < 0.5 * first, "%s: loss %.3f -> %.3f", rs[i], first, last);
    }
}

/* ---- determinism ---------------------------------------------------------------------------- */

static double fwd_bwd(fqt_model *m, const int32_t *tok, const int32_t *tgt, int64_t B, int64_t T,
                      const fqt_pass *p) {
    double l = fqt_model_forward(m, tok, tgt, B, T, p);
    fqt_model_zero_grad(m);
    fqt_model_backward(m, p, 1.0f);
    return l;
}

static void test_determinism(void) {
    const fqt_model_config c = cfg_of(64, 64, 2, 4, 2, 128, 32);
    const int64_t B = 4, T = 30, N = B * T; /* N = 120: a partial Hadamard block */
    int32_t tok[120], tgt[120];
    for (int64_t i = 0; i < N; i++) tok[i] = (int32_t)irand(c.vocab), tgt[i] = (int32_t)irand(c.vocab);
    /* nvfp4-nvidia,hp=last: block 0 in NVFP4 with 2-D weight scales, SR and the Hadamard
     * transform over a partial last block; block 1 and the head in BF16. */
    const char *rs[] = {"fp32", "nvfp4", "nvfp4-nvidia,hp=last", "mxfp4,lm_head=quant"};
    fqt_model m;
    model_new(&m, &c, 9);
    const size_t gbytes = sizeof(float) * (size_t)m.n_params;
    float *g0 = malloc(gbytes);
#ifdef _OPENMP
    const int nt0 = omp_get_max_threads();
#endif
    for (int i = 0; i < 4; i++) {
        const fqt_recipe r = recipe(rs[i]);
        const fqt_pass p = {&r, FQT_MODE_FQT, 21, 4, NULL, false};
        const double l0 = fwd_bwd(&m, tok, tgt, B, T, &p);
        memcpy(g0, m.grads, gbytes);
        double l1 = fwd_bwd(&m, tok, tgt, B, T, &p);
        CHECK_MSG(memcmp(&l0, &l1, sizeof l0) == 0 && memcmp(g0, m.grads, gbytes) == 0,
                  "%s: repeated pass differs", rs[i]);
#ifdef _OPENMP
        for (int nt = 1; nt <= 2; nt++) {
            omp_set_num_threads(nt);
            l1 = fwd_bwd(&m, tok, tgt, B, T, &p);
            CHECK_MSG(memcmp(&l0, &l1, sizeof l0) == 0 && memcmp(g0, m.grads, gbytes) == 0,
                      "%s: %d threads differ", rs[i], nt);
        }
        omp_set_num_threads(nt0);
#endif
        if (i > 0) { /* SR in the backward: another step draws other bits */
            const fqt_pass p2 = {&r, FQT_MODE_FQT, 21, 5, NULL, false};
            fwd_bwd(&m, tok, tgt, B, T, &p2);
            CHECK_MSG(memcmp(g0, m.grads, gbytes) != 0, "%s: gradients ignore sr_step", rs[i]);
        }
    }

    /* With 2 blocks plain nvfp4-nvidia keeps everything in BF16 (first and last blocks, the
     * head): the pass must equal the bf16 recipe's bit for bit, SR keys and all. */
    const fqt_recipe rn = recipe("nvfp4-nvidia"), rb = recipe("bf16");
    const fqt_pass pn = {&rn, FQT_MODE_FQT, 21, 4, NULL, false}, pb = {&rb, FQT_MODE_FQT, 33, 9, NULL, false};
    const double ln = fwd_bwd(&m, tok, tgt, B, T, &pn);
    memcpy(g0, m.grads, gbytes);
    const double lb = fwd_bwd(&m, tok, tgt, B, T, &pb);
    CHECK_MSG(memcmp(&ln, &lb, sizeof ln) == 0 && memcmp(g0, m.grads, gbytes) == 0,
              "nvfp4-nvidia with every block high precision != bf16 (loss %.17g vs %.17g)", ln, lb);
    free(g0);
    fqt_model_free(&m);
}

#include <time.h>
static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

int main(void) {
    double t0 = now();
    test_config();
    test_gradients();
    printf("  [grad %.2fs]\n", now() - t0), t0 = now();
    test_qat();
    printf("  [qat %.2fs]\n", now() - t0), t0 = now();
    test_learning();
    printf("  [learn %.2fs]\n", now() - t0), t0 = now();
    test_determinism();
    printf("  [det %.2fs]\n", now() - t0), t0 = now();
    return check_finish();
}
