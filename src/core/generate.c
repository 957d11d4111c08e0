/* core/generate.c — sampling (temperature, top-k) and the model comparison of fqt eval
 * (fqt/generate.h), plus the samples printed at the end of a training run. */
#include "fqt/generate.h"

#include "fqt/bpe.h"
#include "fqt/train.h"

#include <math.h>
#include <string.h>

/* Draw from softmax(logits / temperature) restricted to the top_k largest. */
static int32_t sample_row(const float *logits, int64_t V, const fqt_sample_opts *o, uint64_t *rng,
                          double *p, int32_t *idx) {
    int64_t best = 0;
    for (int64_t i = 1; i < V; i++)
        if (logits[i] > logits[best]) best = i;
    if (o->temperature <= 0) return (int32_t)best;
    int64_t k = o->top_k > 0 && o->top_k < V ? o->top_k : V;
    /* Partial selection of the k largest (k is small, or k == V and we take all). */
    for (int64_t i = 0; i < V; i++) idx[i] = (int32_t)i;
    if (k < V)
        for (int64_t i = 0; i < k; i++) {
            int64_t m = i;
            for (int64_t j = i + 1; j < V; j++)
                if (logits[idx[j]] > logits[idx[m]]) m = j;
            int32_t t = idx[i]; idx[i] = idx[m]; idx[m] = t;
        }
    double mx = logits[best], sum = 0;
    for (int64_t i = 0; i < k; i++) {
        p[i] = exp(((double)logits[idx[i]] - mx) / o->temperature);
        sum += p[i];
    }
    double u = (double)(fqt_splitmix64(rng) >> 11) * 0x1p-53 * sum, acc = 0;
    for (int64_t i = 0; i < k; i++) {
        acc += p[i];
        if (u < acc) return idx[i];
    }
    return idx[k - 1];
}

fqt_status fqt_generate(fqt_model *m, const fqt_pass *pass, const int32_t *prompt, int64_t np,
                        int64_t n_new, const fqt_sample_opts *o, int32_t stop_token,
                        int32_t **out, int64_t *nout) {
    const int64_t V = m->cfg.vocab;
    int64_t W = o->window > 0 && o->window <= m->cfg.ctx ? o->window : m->cfg.ctx;
    fqt_pass fwd = *pass;
    fwd.no_backward = true;
    if (np < 1) {
        fqt_set_error("generate: the prompt is empty");
        return FQT_ERR_ARG;
    }
    for (int64_t i = 0; i < np; i++)
        if (prompt[i] < 0 || prompt[i] >= V) {
            fqt_set_error("generate: prompt token %d is outside the vocabulary of %lld", prompt[i], (long long)V);
            return FQT_ERR_ARG;
        }
    if (!(o->temperature >= 0) || !isfinite(o->temperature) || o->top_k < 0) {
        fqt_set_error("generate: temperature %g (must be finite and >= 0), top-k %d (must be >= 0)",
                      (double)o->temperature, o->top_k);
        return FQT_ERR_ARG;
    }
    if (n_new < 0 || np > INT32_MAX || n_new > INT32_MAX - np) {
        fqt_set_error("generate: %lld new tokens after a prompt of %lld: at most %lld in all", (long long)n_new,
                      (long long)np, (long long)INT32_MAX);
        return FQT_ERR_ARG;
    }
    int32_t *seq = fqt_xmalloc((size_t)(np + n_new) * sizeof(int32_t));
    memcpy(seq, prompt, (size_t)np * sizeof(int32_t));
    int32_t *ctx = fqt_xmalloc((size_t)W * sizeof(int32_t));
    double *p = fqt_xmalloc((size_t)V * sizeof(double));
    int32_t *idx = fqt_xmalloc((size_t)V * sizeof(int32_t));
    uint64_t rng = o->seed;
    int64_t n = np;
    for (int64_t i = 0; i < n_new; i++) {
        /* Causal attention: padding after the last real token cannot change its logits, so
         * every forward has the same shape [1, W]. */
        int64_t start = n > W ? n - W : 0, len = n - start;
        memcpy(ctx, seq + start, (size_t)len * sizeof(int32_t));
        for (int64_t j = len; j < W; j++) ctx[j] = 0;
        fqt_model_forward(m, ctx, NULL, 1, W, &fwd);
        const float *row = fqt_model_logits(m) + (len - 1) * V;
        int32_t t = sample_row(row, V, o, &rng, p, idx);
        seq[n++] = t;
        if (t == stop_token) break;
    }
    free(ctx);
    free(p);
    free(idx);
    *out = seq;
    *nout = n;
    return FQT_OK;
}

fqt_status fqt_compare_models(fqt_model *a, const fqt_pass *pa, fqt_model *b, const fqt_pass *pb,
                              const uint16_t *tok, int64_t n, int64_t B, int64_t T,
                              int64_t max_tokens, fqt_compare *out) {
    if (a->cfg.vocab != b->cfg.vocab) {
        fqt_set_error("compare: vocabularies differ (%lld vs %lld)", (long long)a->cfg.vocab,
                      (long long)b->cfg.vocab);
        return FQT_ERR_MISMATCH;
    }
    const int64_t V = a->cfg.vocab;
    fqt_pass fa = *pa, fb = *pb; /* forward only */
    fa.no_backward = fb.no_backward = true;
    memset(out, 0, sizeof *out);
    int32_t *x = fqt_xmalloc((size_t)(B * T) * sizeof(int32_t)), *y = fqt_xmalloc((size_t)(B * T) * sizeof(int32_t));
    float *la = fqt_xmalloc((size_t)(B * T * V) * sizeof(float));
    double kl = 0, agree = 0, lossa = 0, lossb = 0;
    int64_t count = 0, pos = 0;
    while (count < max_tokens && pos + T + 1 <= n) {
        int64_t nb = 0;
        for (; nb < B && pos + T + 1 <= n; nb++, pos += T)
            for (int64_t t = 0; t < T; t++) {
                x[nb * T + t] = tok[pos + t];
                y[nb * T + t] = tok[pos + t + 1];
            }
        if (!nb) break;
        fqt_model_forward(a, x, NULL, nb, T, &fa);
        memcpy(la, fqt_model_logits(a), (size_t)(nb * T * V) * sizeof(float));
        fqt_model_forward(b, x, NULL, nb, T, &fb);
        const float *lb = fqt_model_logits(b);
        for (int64_t r = 0; r < nb * T; r++) {
            const float *ra = la + r * V, *rb = lb + r * V;
            double ma = ra[0], mb = rb[0];
            int64_t ia = 0, ib = 0;
            for (int64_t v = 1; v < V; v++) {
                if (ra[v] > ma) { ma = ra[v]; ia = v; }
                if (rb[v] > mb) { mb = rb[v]; ib = v; }
            }
            double sa = 0, sb = 0;
            for (int64_t v = 0; v < V; v++) {
                sa += exp(ra[v] - ma);
                sb += exp(rb[v] - mb);
            }
            double lsa = log(sa) + ma, lsb = log(sb) + mb, k = 0;
            for (int64_t v = 0; v < V; v++) {
                double lpa = ra[v] - lsa, lpb = rb[v] - lsb;
                k += exp(lpa) * (lpa - lpb);
            }
            kl += k;
            agree += ia == ib;
            lossa += lsa - ra[y[r]];
            lossb += lsb - rb[y[r]];
            count++;
        }
    }
    free(x);
    free(y);
    free(la);
    if (!count) {
        fqt_set_error("compare: not enough tokens (%lld) for one window of %lld", (long long)n, (long long)T + 1);
        return FQT_ERR_ARG;
    }
    out->kl = kl / (double)count;
    out->top1 = agree / (double)count;
    out->loss_a = lossa / (double)count;
    out->loss_b = lossb / (double)count;
    out->tokens = count;
    return FQT_OK;
}

int64_t fqt_vocab_size_of_file(const char *path) {
    fqt_bpe *bpe = NULL;
    if (fqt_bpe_load(path, &bpe)) return 0;
    int64_t v = fqt_bpe_vocab_size(bpe);
    fqt_bpe_free(bpe);
    return v;
}

void fqt_train_print_samples(fqt_model *m, const fqt_train_config *c, const fqt_recipe *r) {
    if (!c->vocab[0] || c->sample_tokens <= 0) return;
    fqt_bpe *bpe = NULL;
    if (fqt_bpe_load(c->vocab, &bpe)) {
        fprintf(stderr, "fqt train: no samples: %s\n", fqt_last_error());
        return;
    }
    if (fqt_bpe_vocab_size(bpe) > m->cfg.vocab) {
        fprintf(stderr, "fqt train: no samples: %s has %d tokens, the model %lld\n", c->vocab,
                fqt_bpe_vocab_size(bpe), (long long)m->cfg.vocab);
        fqt_bpe_free(bpe);
        return;
    }
    const char *prompts[] = {"Fellow citizens", "The Congress", "Our economy"};
    fqt_pass pass = {r, c->mode, c->seed, 0, NULL, false};
    fqt_sample_opts o = {0.8f, 40, c->seed, c->seq};
    printf("\nSamples (temperature 0.8, top-k 40, %lld tokens):\n", (long long)c->sample_tokens);
    for (int i = 0; i < 3; i++) {
        int32_t *ids = NULL, *outp = NULL;
        int64_t nids = 0, nout = 0;
        unsigned char *text = NULL;
        size_t nt = 0;
        if (fqt_bpe_encode(bpe, prompts[i], strlen(prompts[i]), 0, &ids, &nids) || !nids ||
            fqt_generate(m, &pass, ids, nids, c->sample_tokens, &o, fqt_bpe_eot(bpe), &outp, &nout) ||
            fqt_bpe_decode(bpe, outp, nout, &text, &nt)) {
            fprintf(stderr, "fqt train: sample failed: %s\n", fqt_last_error());
        } else {
            printf("--- %s\n", (const char *)text);
        }
        free(ids);
        free(outp);
        free(text);
        o.seed++;
    }
    fqt_bpe_free(bpe);
}
