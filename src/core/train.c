/* core/train.c — the run loop of fqt/train.h: configuration, data windows, AdamW with
 * clipping and schedules, QAF, the gradient-to-noise ratio, checkpoints with training
 * state, JSONL metrics and the progress line; one process or P data-parallel ranks
 * (docs/DIST.md: rank 0 writes the run directory, every rank computes the same step). */
#include "fqt/train.h"

#include "fqt/backend.h"
#include "fqt/dist.h"
#include "fqt/fileio.h"
#include "fqt/json.h"
#include "fqt/safetensors.h"
#include "fqt/shard.h"
#include "core/train_extra.h"
#include "core/train_dist.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- configuration ------------------------------------------------------------------- */

void fqt_train_config_default(fqt_train_config *c) {
    memset(c, 0, sizeof *c);
    snprintf(c->model_size, sizeof c->model_size, "tiny");
    FQT_ASSERT(fqt_model_config_named("tiny", &c->model) == FQT_OK);
    c->model.vocab = 0;
    snprintf(c->recipe, sizeof c->recipe, "nvfp4");
    c->mode = FQT_MODE_FQT;
    snprintf(c->train_data, sizeof c->train_data, "data/sotu/train_*.bin");
    snprintf(c->val_data, sizeof c->val_data, "data/sotu/val_*.bin");
    c->batch = 16;
    c->seq = 128;
    c->grad_accum = 1;
    c->steps = 250;
    c->lr = 3e-3;
    c->min_lr_frac = 0.1;
    c->weight_decay = 0.1;
    c->beta1 = 0.9;
    c->beta2 = 0.95;
    c->eps = 1e-8;
    c->grad_clip = 1.0;
    c->warmup = 25;
    c->schedule = FQT_SCHED_COSINE;
    c->wsd_decay_frac = 0.2;
    c->qaf_auto_checks = 3;
    c->qaf_lr_frac = 0.25;
    c->gnr_every = 50;
    c->diag_every = 100;
    c->val_every = 100;
    c->val_tokens = 32768;
    c->ckpt_minutes = 10;
    c->log_every = 25;
    c->max_bad_steps = 5;
    c->sample_tokens = 60;
    c->seed = 1337;
    snprintf(c->run_dir, sizeof c->run_dir, "runs/%s", c->recipe);
    snprintf(c->device, sizeof c->device, "auto");
}

typedef enum { T_I64, T_F64, T_STR, T_U64 } opt_type;
typedef struct {
    const char *key;
    opt_type type;
    size_t off, size;
    const char *help;
} opt_def;

#define OPT(k, t, field, h) {k, t, offsetof(fqt_train_config, field), sizeof(((fqt_train_config *)0)->field), h}
static const opt_def opts[] = {
    OPT("recipe", T_STR, recipe, "quantization recipe (fqt/recipe.h grammar), e.g. nvfp4, bf16, fp8"),
    OPT("train-data", T_STR, train_data, "glob of llm.c token shards for training"),
    OPT("val-data", T_STR, val_data, "glob of validation shards"),
    OPT("vocab", T_STR, vocab, "tokenizer file ('': the one the data's manifest.json names)"),
    OPT("init-from", T_STR, init_from, "start from this Hugging Face Llama checkpoint dir"),
    OPT("batch", T_I64, batch, "sequences per micro-batch (B)"),
    OPT("seq", T_I64, seq, "sequence length (T)"),
    OPT("grad-accum", T_I64, grad_accum, "micro-batches per optimizer step"),
    OPT("steps", T_I64, steps, "optimizer steps"),
    OPT("lr", T_F64, lr, "peak learning rate"),
    OPT("min-lr-frac", T_F64, min_lr_frac, "final learning rate as a fraction of the peak"),
    OPT("warmup", T_I64, warmup, "linear warmup steps"),
    OPT("weight-decay", T_F64, weight_decay, "AdamW weight decay (matrices only)"),
    OPT("beta1", T_F64, beta1, "AdamW beta1"),
    OPT("beta2", T_F64, beta2, "AdamW beta2"),
    OPT("eps", T_F64, eps, "AdamW epsilon"),
    OPT("grad-clip", T_F64, grad_clip, "global gradient-norm clip (0 = off)"),
    OPT("wsd-decay-frac", T_F64, wsd_decay_frac, "WSD schedule: fraction of steps spent decaying"),
    OPT("qaf-steps", T_I64, qaf_steps, "run the last N steps as quantization-aware finetuning"),
    OPT("qaf-frac", T_F64, qaf_frac, "... or the last fraction F of the steps"),
    OPT("qaf-auto-checks", T_I64, qaf_auto_checks, "--qaf auto: consecutive checks with r < sqrt(3)"),
    OPT("qaf-lr-frac", T_F64, qaf_lr_frac, "QAF re-warms to this fraction of the peak lr"),
    OPT("gnr-every", T_I64, gnr_every, "log the gradient-to-noise ratio every N steps (0 = off)"),
    OPT("diag-every", T_I64, diag_every, "log per-layer quantization diagnostics every N steps"),
    OPT("val-every", T_I64, val_every, "validation every N steps"),
    OPT("val-tokens", T_I64, val_tokens, "validation tokens per evaluation"),
    OPT("ckpt-every", T_I64, ckpt_every, "checkpoint every N steps (0 = at the end only)"),
    OPT("ckpt-minutes", T_F64, ckpt_minutes, "also checkpoint every M minutes of wall time (0 = off)"),
    OPT("log-every", T_I64, log_every, "plain progress line every N steps when not a terminal"),
    OPT("max-bad-steps", T_I64, max_bad_steps, "stop after N non-finite steps in a row"),
    OPT("sample-tokens", T_I64, sample_tokens, "tokens of text generated at the end"),
    OPT("stop-at", T_I64, stop_at, "stop after this step, checkpointing (resume later)"),
    OPT("seed", T_U64, seed, "run seed (init, data, stochastic rounding)"),
    OPT("run-dir", T_STR, run_dir, "run directory (checkpoints, metrics.jsonl, run.json)"),
    OPT("name", T_STR, name, "run name in reports (default: the recipe)"),
    OPT("device", T_STR, device, "auto (the GPU when one is present), cpu or cuda"),
};
#undef OPT

void fqt_train_config_help(FILE *f) {
    fqt_train_config d;
    fqt_train_config_default(&d);
    fprintf(f, "  --model SIZE        tiny (default), small, llama-124m, llama-1b; then --dim,\n"
               "                      --layers, --heads, --kv-heads, --ffn, --ctx, --vocab-size\n"
               "                      (vocabulary: from the tokenizer/data when not given)\n"
               "  --mode fqt|qat      fully quantized (default) or quantization-aware training\n"
               "  --qaf auto|N        QAF: switch automatically by the gradient-to-noise ratio,\n"
               "                      or run the last N steps as QAF\n"
               "  --schedule cosine|wsd  learning-rate schedule after warmup\n");
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
        char dflt[96];
        const char *p = (const char *)&d + opts[i].off;
        switch (opts[i].type) {
        case T_I64: snprintf(dflt, sizeof dflt, "%lld", (long long)*(const int64_t *)p); break;
        case T_U64: snprintf(dflt, sizeof dflt, "%llu", (unsigned long long)*(const uint64_t *)p); break;
        case T_F64: snprintf(dflt, sizeof dflt, "%g", *(const double *)p); break;
        default: snprintf(dflt, sizeof dflt, "'%s'", p);
        }
        fprintf(f, "  --%-18s %s (default %s)\n", opts[i].key, opts[i].help, dflt);
    }
}

static fqt_status bad_value(const char *key, const char *value, const char *why) {
    char w[512]; /* why may be fqt_last_error()'s own buffer */
    snprintf(w, sizeof w, "%s", why);
    fqt_set_error("--%s: bad value '%s': %s", key, value, w);
    return FQT_ERR_ARG;
}

const char *fqt_train_config_key(size_t i) {
    static const char *const extra[] = {"model", "dim", "layers", "heads", "kv-heads", "ffn",
                                        "ctx", "vocab-size", "mode", "schedule", "qaf"};
    const size_t ne = sizeof extra / sizeof extra[0], no = sizeof opts / sizeof opts[0];
    return i < ne ? extra[i] : i < ne + no ? opts[i - ne].key : NULL;
}

fqt_status fqt_train_config_set(fqt_train_config *c, const char *key, const char *value) {
    if (!strcmp(key, "model")) {
        fqt_model_config mc;
        if (fqt_model_config_named(value, &mc)) {
            char msg[512]; /* the model's message names the value already */
            snprintf(msg, sizeof msg, "%s", fqt_last_error());
            fqt_set_error("--model: %s", msg);
            return FQT_ERR_ARG;
        }
        int64_t keep = c->model.vocab;
        c->model = mc;
        if (strcmp(value, "llama-124m")) c->model.vocab = keep;
        snprintf(c->model_size, sizeof c->model_size, "%s", value);
        return FQT_OK;
    }
    static const struct { const char *key; size_t off; } dims[] = {
        {"dim", offsetof(fqt_model_config, dim)},
        {"layers", offsetof(fqt_model_config, n_layers)},
        {"heads", offsetof(fqt_model_config, n_heads)},
        {"kv-heads", offsetof(fqt_model_config, n_kv_heads)},
        {"ffn", offsetof(fqt_model_config, ffn)},
        {"ctx", offsetof(fqt_model_config, ctx)},
        {"vocab-size", offsetof(fqt_model_config, vocab)},
    };
    for (size_t i = 0; i < sizeof dims / sizeof dims[0]; i++) {
        if (strcmp(key, dims[i].key)) continue;
        char *end;
        errno = 0;
        long long v = strtoll(value, &end, 10);
        if (errno || *end || end == value || v <= 0) return bad_value(key, value, "expected a positive integer");
        *(int64_t *)((char *)&c->model + dims[i].off) = v;
        if (!strcmp(key, "heads") && c->model.n_kv_heads > v) c->model.n_kv_heads = v;
        snprintf(c->model_size, sizeof c->model_size, "custom");
        return FQT_OK;
    }
    if (!strcmp(key, "mode")) {
        if (!strcmp(value, "fqt")) c->mode = FQT_MODE_FQT;
        else if (!strcmp(value, "qat")) c->mode = FQT_MODE_QAT;
        else return bad_value(key, value, "must be fqt or qat");
        return FQT_OK;
    }
    if (!strcmp(key, "schedule")) {
        if (!strcmp(value, "cosine")) c->schedule = FQT_SCHED_COSINE;
        else if (!strcmp(value, "wsd")) c->schedule = FQT_SCHED_WSD;
        else return bad_value(key, value, "must be cosine or wsd");
        return FQT_OK;
    }
    if (!strcmp(key, "qaf")) {
        if (!strcmp(value, "auto")) {
            c->qaf_auto = true;
            return FQT_OK;
        }
        if (!strcmp(value, "off")) {
            c->qaf_auto = false;
            c->qaf_steps = 0;
            c->qaf_frac = 0;
            return FQT_OK;
        }
        key = "qaf-steps";
    }
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
        if (strcmp(key, opts[i].key)) continue;
        char *p = (char *)c + opts[i].off, *end;
        errno = 0;
        switch (opts[i].type) {
        case T_I64: {
            long long v = strtoll(value, &end, 10);
            if (errno || *end || end == value || v < 0) return bad_value(key, value, "expected a non-negative integer");
            *(int64_t *)p = v;
            break;
        }
        case T_U64: {
            unsigned long long v = strtoull(value, &end, 0);
            if (errno || *end || end == value || value[0] == '-') return bad_value(key, value, "expected a non-negative integer");
            *(uint64_t *)p = v;
            break;
        }
        case T_F64: {
            double v = strtod(value, &end);
            if (errno || *end || end == value || !isfinite(v) || v < 0) return bad_value(key, value, "expected a non-negative number");
            *(double *)p = v;
            break;
        }
        default:
            if (strlen(value) >= opts[i].size) return bad_value(key, value, "too long");
            strcpy(p, value);
        }
        return FQT_OK;
    }
    fqt_set_error("unknown option --%s (see fqt train --help)", key);
    return FQT_ERR_ARG;
}

char *fqt_train_config_json(const fqt_train_config *c) {
    fqt_buf b = {0};
    fqt_buf_printf(&b, "{\"name\": ");
    fqt_buf_json_str(&b, c->name[0] ? c->name : c->recipe);
    fqt_buf_printf(&b, ", \"model_size\": ");
    fqt_buf_json_str(&b, c->model_size);
    const fqt_model_config *m = &c->model;
    fqt_buf_printf(&b, ", \"model\": {\"vocab\": %lld, \"dim\": %lld, \"n_layers\": %lld, "
                       "\"n_heads\": %lld, \"n_kv_heads\": %lld, \"ffn\": %lld, \"ctx\": %lld, "
                       "\"rope_theta\": ",
                   (long long)m->vocab, (long long)m->dim, (long long)m->n_layers,
                   (long long)m->n_heads, (long long)m->n_kv_heads, (long long)m->ffn,
                   (long long)m->ctx);
    fqt_buf_json_num(&b, m->rope_theta);
    fqt_buf_printf(&b, ", \"norm_eps\": ");
    fqt_buf_json_num(&b, m->norm_eps);
    fqt_buf_printf(&b, "}, \"mode\": \"%s\", \"schedule\": \"%s\", \"qaf_auto\": %s",
                   c->mode == FQT_MODE_QAT ? "qat" : "fqt",
                   c->schedule == FQT_SCHED_WSD ? "wsd" : "cosine", c->qaf_auto ? "true" : "false");
    const int64_t ranks = c->ranks > 0 ? c->ranks : 1;
    fqt_buf_printf(&b, ", \"ranks\": %lld, \"tokens_per_step\": %lld", (long long)ranks,
                   (long long)(c->batch * c->seq * c->grad_accum * ranks));
    fqt_buf_printf(&b, ", \"tokenizer_sha512\": ");
    fqt_buf_json_str(&b, c->tokenizer_sha512);
    fqt_buf_printf(&b, ", \"fqt_version\": ");
    fqt_buf_json_str(&b, fqt_version());
    fqt_buf_printf(&b, ", \"git_commit\": ");
    fqt_buf_json_str(&b, fqt_git_commit());
    fqt_train_json_start_time(&b, c->start_unix);
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
        const char *p = (const char *)c + opts[i].off;
        fqt_buf_printf(&b, ", \"");
        for (const char *k = opts[i].key; *k; k++) fqt_buf_append(&b, *k == '-' ? "_" : k, 1);
        fqt_buf_printf(&b, "\": ");
        switch (opts[i].type) {
        case T_I64: fqt_buf_printf(&b, "%lld", (long long)*(const int64_t *)p); break;
        case T_U64: fqt_buf_printf(&b, "%llu", (unsigned long long)*(const uint64_t *)p); break;
        case T_F64: fqt_buf_json_num(&b, *(const double *)p); break;
        default: fqt_buf_json_str(&b, p);
        }
    }
    fqt_buf_printf(&b, "}\n");
    return b.s;
}

fqt_status fqt_train_config_from_json(fqt_train_config *c, const char *json, size_t n,
                                      const char *what) {
    fqt_json *j = NULL;
    if (fqt_json_parse(json, n, &j)) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", fqt_last_error());
        fqt_set_error("%s: %s", what, msg);
        return FQT_ERR_FORMAT;
    }
    fqt_status st = FQT_OK;
    fqt_train_config_default(c);
    const fqt_json *m = fqt_json_get(j, "model");
    int64_t v[7];
    const char *mk[7] = {"vocab", "dim", "n_layers", "n_heads", "n_kv_heads", "ffn", "ctx"};
    for (int i = 0; i < 7; i++)
        if (!fqt_json_int64(fqt_json_get(m, mk[i]), &v[i])) {
            fqt_set_error("%s: model.%s missing or not an integer", what, mk[i]);
            st = FQT_ERR_FORMAT;
            goto out;
        }
    c->model = (fqt_model_config){v[0], v[1], v[2], v[3], v[4], v[5], v[6],
                                  (float)fqt_json_get_num(m, "rope_theta", 10000),
                                  (float)fqt_json_get_num(m, "norm_eps", 1e-5)};
    snprintf(c->model_size, sizeof c->model_size, "%s", fqt_json_get_str(j, "model_size", "custom"));
    c->mode = !strcmp(fqt_json_get_str(j, "mode", "fqt"), "qat") ? FQT_MODE_QAT : FQT_MODE_FQT;
    c->schedule = !strcmp(fqt_json_get_str(j, "schedule", "cosine"), "wsd") ? FQT_SCHED_WSD : FQT_SCHED_COSINE;
    snprintf(c->tokenizer_sha512, sizeof c->tokenizer_sha512, "%s", fqt_json_get_str(j, "tokenizer_sha512", ""));
    int64_t rk;
    c->ranks = fqt_json_int64(fqt_json_get(j, "ranks"), &rk) && rk > 0 ? rk : 1; /* older runs: 1 */
    int64_t su;
    if (fqt_json_int64(fqt_json_get(j, "start_unix"), &su)) c->start_unix = su;
    const fqt_json *qa = fqt_json_get(j, "qaf_auto");
    c->qaf_auto = qa && qa->type == FQT_JSON_BOOL && qa->b;
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++) {
        char key[64];
        snprintf(key, sizeof key, "%s", opts[i].key);
        for (char *k = key; *k; k++) if (*k == '-') *k = '_';
        const fqt_json *e = fqt_json_get(j, key);
        if (!e) continue;
        char val[1100];
        if (e->type == FQT_JSON_STR) snprintf(val, sizeof val, "%s", e->str);
        else if (e->type == FQT_JSON_NUM) snprintf(val, sizeof val, "%s", e->str);
        else continue;
        if ((st = fqt_train_config_set(c, opts[i].key, val))) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s", fqt_last_error());
            fqt_set_error("%s: %s", what, msg);
            goto out;
        }
    }
out:
    fqt_json_free(j);
    return st;
}

/* ---- data ------------------------------------------------------------------------------ */

fqt_status fqt_tokens_load(fqt_tokens *t, const char *pattern, int64_t vocab) {
    memset(t, 0, sizeof *t);
    fqt_status st = fqt_shards_load(pattern, &t->tok, &t->n);
    if (st) return st;
    for (int64_t i = 0; i < t->n; i++)
        if (t->tok[i] >= vocab) {
            fqt_set_error("%s: token %u at position %lld is outside the model's vocabulary of %lld "
                          "(shards made with another tokenizer?)",
                          pattern, t->tok[i], (long long)i, (long long)vocab);
            fqt_tokens_free(t);
            return FQT_ERR_MISMATCH;
        }
    return FQT_OK;
}

void fqt_tokens_free(fqt_tokens *t) {
    free(t->tok);
    t->tok = NULL;
    t->n = 0;
}

/* B random windows of T+1 tokens: inputs and next-token targets. */
static void sample_batch(const fqt_tokens *d, int64_t B, int64_t T, uint64_t *rng, int32_t *x,
                         int32_t *y) {
    const uint64_t span = (uint64_t)(d->n - T - 1) + 1;
    for (int64_t b = 0; b < B; b++) {
        int64_t p = (int64_t)(fqt_splitmix64(rng) % span);
        for (int64_t t = 0; t < T; t++) {
            x[b * T + t] = d->tok[p + t];
            y[b * T + t] = d->tok[p + t + 1];
        }
    }
}

/* Validation batches are spread over the ranks (batch k on rank k mod P); their loss sums are
 * gathered and added in batch order, so every rank returns the one-process value. */
double fqt_eval_loss(fqt_model *m, const fqt_tokens *val, int64_t B, int64_t T,
                     int64_t max_tokens, const fqt_pass *pass) {
    const fqt_dist_info *w = fqt_dist_world();
    fqt_pass fwd = *pass;
    fwd.no_backward = true;
    int32_t *x = fqt_xmalloc((size_t)(B * T) * sizeof(int32_t));
    int32_t *y = fqt_xmalloc((size_t)(B * T) * sizeof(int32_t));
    /* The batches: their count and token counts follow from the data alone. */
    int64_t K = 0, count = 0, pos = 0;
    while (count < max_tokens && pos + 1 < val->n) {
        int64_t c = 0;
        for (int64_t nb = 0; nb < B && pos + 1 < val->n; nb++, pos += T)
            for (int64_t t = 0; t < T; t++) c += pos + t + 1 < val->n;
        count += c;
        K++;
    }
    double *mine = fqt_xcalloc((size_t)K + 1, sizeof(double));
    double *all = fqt_xcalloc((size_t)K * (size_t)w->size + 1, sizeof(double));
    int64_t *cnt = fqt_xcalloc((size_t)K + 1, sizeof(int64_t));
    pos = 0;
    for (int64_t k = 0; k < K; k++) {
        int64_t nb = 0;
        for (; nb < B && pos + 1 < val->n; nb++) {
            for (int64_t t = 0; t < T; t++) {
                int64_t i = pos + t;
                bool ok = i + 1 < val->n;
                x[nb * T + t] = ok ? val->tok[i] : 0;
                y[nb * T + t] = ok ? val->tok[i + 1] : -1;
            }
            pos += T;
        }
        for (int64_t i = nb * T; i < B * T; i++) {
            x[i] = 0;
            y[i] = -1;
        }
        int64_t c = 0;
        for (int64_t i = 0; i < B * T; i++) c += y[i] >= 0;
        cnt[k] = c;
        if (k % w->size == w->rank) mine[k] = fqt_model_forward(m, x, y, B, T, &fwd) * (double)c;
    }
    fqt_dist_allgather(mine, (size_t)K * sizeof(double), all);
    double sum = 0;
    count = 0;
    for (int64_t k = 0; k < K; k++) {
        sum += all[(size_t)(k % w->size) * (size_t)K + (size_t)k];
        count += cnt[k];
    }
    free(x);
    free(y);
    free(mine);
    free(all);
    free(cnt);
    return count ? sum / (double)count : NAN;
}

/* ---- optimizer ------------------------------------------------------------------------- */

double fqt_lr_at(const fqt_train_config *c, int64_t step, int64_t main_steps) {
    const double peak = c->lr, floor_lr = c->lr * c->min_lr_frac;
    if (step < c->warmup) return peak * (double)(step + 1) / (double)c->warmup;
    if (main_steps <= c->warmup) return peak;
    if (step >= main_steps) return floor_lr;
    if (c->schedule == FQT_SCHED_WSD) {
        int64_t decay = (int64_t)ceil(c->wsd_decay_frac * (double)main_steps);
        int64_t start = main_steps - decay;
        if (step < start) return peak;
        return peak + (floor_lr - peak) * (double)(step - start + 1) / (double)decay;
    }
    double prog = (double)(step - c->warmup) / (double)(main_steps - c->warmup);
    return floor_lr + 0.5 * (peak - floor_lr) * (1.0 + cos(M_PI * prog));
}

/* QAF: re-warm from lr0 to qaf_lr_frac * lr over a tenth of the phase, then cosine decay
 * to the floor at the end (the paper's short QAF phase). */
static double qaf_lr(const fqt_train_config *c, int64_t step, int64_t start, double lr0) {
    const double peak = c->lr * c->qaf_lr_frac, floor_lr = c->lr * c->min_lr_frac;
    int64_t len = c->steps - start, warm = len / 10 > 1 ? len / 10 : 1, i = step - start;
    if (i < warm) return lr0 + (peak - lr0) * (double)(i + 1) / (double)warm;
    double prog = len > warm ? (double)(i - warm) / (double)(len - warm) : 1.0;
    return floor_lr + 0.5 * (peak - floor_lr) * (1.0 + cos(M_PI * prog));
}

/* The optimizer's view of the model: one segment per parameter tensor (decay or not), and
 * the host scratch of the chunked sums of squares. Built once per run. */
typedef struct {
    fqt_param_segment *segs;
    int n_segs;
    double *part; /* ceil(n_params / FQT_SUMSQ_CHUNK) partial sums */
} optim_view;

static void optim_view_init(optim_view *o, const fqt_model *m) {
    o->n_segs = m->n_tensors;
    o->segs = fqt_xcalloc((size_t)m->n_tensors, sizeof *o->segs);
    for (int i = 0; i < m->n_tensors; i++)
        o->segs[i] = (fqt_param_segment){m->tensors[i].offset, m->tensors[i].numel, m->tensors[i].decay};
    o->part = fqt_xcalloc((size_t)((m->n_params + FQT_SUMSQ_CHUNK - 1) / FQT_SUMSQ_CHUNK) + 1, sizeof(double));
}

static void optim_view_free(optim_view *o) {
    free(o->segs);
    free(o->part);
}

/* One fused AdamW step on this rank's shard (ZeRO-1: mom and vel hold the shard), then the
 * updated parameters to every rank. With check_only, nothing is written and the count of
 * non-finite values the update would produce over the whole slab (every rank's shard) is
 * returned, the same on every rank (fqt/backend.h). */
static int64_t adamw_step(fqt_model *m, dp_ctx *dp, const optim_view *o, float *mom, float *vel, int64_t t,
                          double lr, const fqt_train_config *c, double gscale, bool check_only) {
    (void)m;
    const double b1c = 1.0 - pow(c->beta1, (double)t), b2c = 1.0 - pow(c->beta2, (double)t);
    const fqt_adamw_args args = {(float)lr, (float)c->beta1, (float)c->beta2, (float)c->eps,
                                 (float)c->weight_decay, (float)b1c, (float)b2c, (float)gscale,
                                 o->segs, o->n_segs, check_only};
    return dp_adamw(dp, m->params, mom, vel, &args);
}

/* ---- training state and checkpoints ------------------------------------------------------ */

typedef struct {
    int64_t step;         /* steps completed */
    uint64_t data_rng;
    int64_t qaf_start;    /* first QAF step, or -1 */
    double qaf_lr0;       /* learning rate when QAF began */
    int64_t gnr_low;      /* consecutive GNR checks below sqrt(3) */
    int64_t bad_steps;    /* consecutive non-finite steps (survives a resume) */
    int64_t tokens;
    double wall;          /* seconds trained before this process (resumes) */
} train_state;

/* Write RUN/ckpt.new completely, then swap it in (checkpoint.c: crash-safe at every step).
 * The wall time goes to ckpt/timing.json, not into state.safetensors: two identical runs
 * write identical model and state bytes. */
static fqt_status write_checkpoint(const fqt_model *m, const float *hm, const float *hv,
                                   const train_state *s, const fqt_train_config *c) {
    char newd[4200], path[4300];
    /* A ckpt.new left by an interrupted save (a directory with stale files, or anything
     * else) must not leak into the new checkpoint or block it. */
    fqt_status st = fqt_checkpoint_begin(c->run_dir, newd, sizeof newd);
    if (st) return st;
    st = fqt_checkpoint_save_model(m, newd);
    if (st) return st;
    if ((st = fqt_checkpoint_save_tokenizer(m, newd, c->vocab))) return st;
    char *cj = fqt_train_config_json(c);
    snprintf(path, sizeof path, "%s/train.json", newd);
    st = fqt_write_file_atomic(path, cj, strlen(cj));
    free(cj);
    if (st) return st;
    char meta_v[7][64];
    snprintf(meta_v[0], 64, "%lld", (long long)s->step);
    snprintf(meta_v[1], 64, "%llu", (unsigned long long)s->data_rng);
    snprintf(meta_v[2], 64, "%lld", (long long)s->qaf_start);
    snprintf(meta_v[3], 64, "%.17g", s->qaf_lr0);
    snprintf(meta_v[4], 64, "%lld", (long long)s->gnr_low);
    snprintf(meta_v[5], 64, "%lld", (long long)s->tokens);
    snprintf(meta_v[6], 64, "%lld", (long long)s->bad_steps);
    const char *meta[] = {"step", meta_v[0], "data_rng", meta_v[1], "qaf_start", meta_v[2],
                          "qaf_lr0", meta_v[3], "gnr_low", meta_v[4], "tokens", meta_v[5], "bad_steps", meta_v[6],
                          "recipe", c->recipe, NULL};
    fqt_st_tensor t[2] = {{"adam.m", FQT_ST_F32, 1, {m->n_params}, (float *)hm},
                          {"adam.v", FQT_ST_F32, 1, {m->n_params}, (float *)hv}};
    snprintf(path, sizeof path, "%s/state.safetensors", newd);
    st = fqt_st_write(path, t, 2, meta);
    if (st) return st;
    {
        fqt_buf b = {0};
        fqt_buf_printf(&b, "{\"wall_s\": ");
        fqt_buf_json_num(&b, s->wall);
        fqt_buf_printf(&b, "}\n");
        snprintf(path, sizeof path, "%s/timing.json", newd);
        st = fqt_write_file_atomic(path, b.s, b.len);
        fqt_buf_free(&b);
        if (st) return st;
    }
    return fqt_checkpoint_commit(c->run_dir);
}

/* Collective: the moments' shards gathered onto rank 0, which writes exactly the files of one
 * process (the other ranks never touch the run directory); every rank returns rank 0's
 * status, so a failed save stops every rank. */
static fqt_status save_checkpoint(const fqt_model *m, dp_ctx *dp, const float *mom, const float *vel,
                                  const train_state *s, const fqt_train_config *c) {
    float *hm = dp_gather_shards(dp, mom), *hv = dp_gather_shards(dp, vel);
    int32_t st = dp->rank == 0 ? (int32_t)write_checkpoint(m, hm, hv, s, c) : 0;
    free(hm);
    free(hv);
    int32_t st0 = st;
    fqt_dist_bcast(&st0, sizeof st0, 0);
    if (st0 && dp->rank != 0) fqt_set_error("rank 0 could not write the checkpoint in %s/ckpt", c->run_dir);
    return (fqt_status)st0;
}

static int64_t meta_i64(const fqt_st_file *f, const char *key, bool *ok) {
    const char *v = fqt_st_meta(f, key);
    char *end;
    if (!v) { *ok = false; return 0; }
    errno = 0;
    long long x = strtoll(v, &end, 10);
    if (*end || end == v || errno) *ok = false;
    return x;
}

/* Every rank reads the whole moments and keeps its shard; *digest gets their FNV-1a (the
 * start-up agreement). */
static fqt_status load_state(const char *dir, fqt_model *m, dp_ctx *dp, float *mom, float *vel,
                             train_state *s, uint64_t *digest) {
    char path[1200];
    snprintf(path, sizeof path, "%s/state.safetensors", dir);
    fqt_st_file *f = NULL;
    fqt_status st = fqt_st_open(path, &f);
    if (st) return st;
    int64_t shape[1] = {m->n_params};
    float *hm = fqt_xmalloc((size_t)m->n_params * sizeof(float) + 1);
    float *hv = fqt_xmalloc((size_t)m->n_params * sizeof(float) + 1);
    if (!(st = fqt_st_read_f32(f, "adam.m", 1, shape, hm))) st = fqt_st_read_f32(f, "adam.v", 1, shape, hv);
    for (int64_t i = 0; i < m->n_params && !st; i++)
        if (!isfinite(hm[i]) || !isfinite(hv[i]) || hv[i] < 0) {
            fqt_set_error("%s: AdamW moment %lld is %g / %g (non-finite or negative): a damaged or "
                          "diverged checkpoint", path, (long long)i, (double)hm[i], (double)hv[i]);
            st = FQT_ERR_FORMAT;
        }
    if (!st) {
        dp_take_shard(dp, hm, mom);
        dp_take_shard(dp, hv, vel);
        *digest = dp_fnv(dp_fnv(DP_FNV0, hm, (size_t)m->n_params * sizeof(float)), hv,
                         (size_t)m->n_params * sizeof(float));
    }
    free(hm);
    free(hv);
    if (st) goto out;
    bool ok = true;
    s->step = meta_i64(f, "step", &ok);
    const char *rng = fqt_st_meta(f, "data_rng");
    char *end = NULL;
    errno = 0;
    s->data_rng = rng && rng[0] >= '0' && rng[0] <= '9' ? strtoull(rng, &end, 10) : 0;
    if (!rng || !end || *end || errno) ok = false;
    s->qaf_start = meta_i64(f, "qaf_start", &ok);
    const char *lr0 = fqt_st_meta(f, "qaf_lr0");
    end = NULL;
    s->qaf_lr0 = lr0 ? strtod(lr0, &end) : 0;
    if (!lr0 || !end || end == lr0 || *end || !isfinite(s->qaf_lr0) || s->qaf_lr0 < 0) ok = false;
    s->gnr_low = meta_i64(f, "gnr_low", &ok);
    bool have_bad = true;
    s->bad_steps = meta_i64(f, "bad_steps", &have_bad); /* absent in older checkpoints: 0 */
    if (!have_bad) s->bad_steps = 0;
    s->tokens = meta_i64(f, "tokens", &ok);
    if (!ok || s->step < 0 || s->qaf_start < -1 || s->gnr_low < 0 || s->bad_steps < 0 || s->tokens < 0) {
        fqt_set_error("%s: training state metadata missing or malformed (step, data_rng, qaf_start, "
                      "qaf_lr0, gnr_low, tokens, bad_steps)", path);
        st = FQT_ERR_FORMAT;
        goto out;
    }
    /* Seconds trained so far: ckpt/timing.json; older checkpoints kept it in the metadata. */
    s->wall = 0;
    const char *w = fqt_st_meta(f, "wall_s");
    if (w) s->wall = strtod(w, NULL);
    {
        char tp[1200];
        void *data;
        size_t n;
        snprintf(tp, sizeof tp, "%s/timing.json", dir);
        if (fqt_file_exists(tp, NULL) && !fqt_read_file(tp, &data, &n)) {
            fqt_json *j = NULL;
            if (!fqt_json_parse(data, n, &j)) s->wall = fqt_json_get_num(j, "wall_s", 0);
            fqt_json_free(j);
            free(data);
        }
        if (!isfinite(s->wall) || s->wall < 0) s->wall = 0;
    }
out:
    fqt_st_close(f);
    return st;
}

/* ---- metrics and progress ------------------------------------------------------------- */

/* Every metrics row carries "time": seconds since the run started (earlier processes of a
 * resumed run included), set by the loop through metrics_t0. */
static double metrics_t0 = NAN;
/* One metrics line, flushed. A failed write is remembered (metrics_errno) and ends the run
 * at the end of the step (metrics_check): a full disk must not silently drop lines. */
static int metrics_errno;

/* f is NULL on ranks other than 0: they compute every row and write none. */
static void emit(FILE *f, fqt_buf *b) {
    if (!f) {
        fqt_buf_free(b);
        return;
    }
    if (isfinite(metrics_t0) && b->len && b->s[b->len - 1] == '}') {
        b->len--;
        fqt_buf_printf(b, ",\"time\":%.3f}", fqt_prof_now() - metrics_t0);
    }
    fqt_buf_append(b, "\n", 1);
    if ((fwrite(b->s, 1, b->len, f) != b->len || fflush(f)) && !metrics_errno) metrics_errno = errno ? errno : EIO;
    fqt_buf_free(b);
}

static fqt_status metrics_check(const fqt_train_config *c) {
    if (!metrics_errno) return FQT_OK;
    if (fqt_dist_world()->rank != 0) {
        fqt_set_error("rank 0 could not write %s/metrics.jsonl (%s); stopping", c->run_dir, strerror(metrics_errno));
        return FQT_ERR_IO;
    }
    fqt_set_error("%s/metrics.jsonl: write failed: %s (disk full?); stopping, the last checkpoint in "
                  "%s/ckpt is intact", c->run_dir, strerror(metrics_errno), c->run_dir);
    return FQT_ERR_IO;
}

static void fmt_eta(char *buf, size_t n, double s) {
    if (!isfinite(s) || s < 0) snprintf(buf, n, "?");
    else if (s >= 3600) snprintf(buf, n, "%dh%02dm", (int)(s / 3600), (int)fmod(s / 60, 60));
    else snprintf(buf, n, "%dm%02ds", (int)(s / 60), (int)fmod(s, 60));
}

/* Per-layer diagnostics lines from one pass's statistics. */
static void log_diag(FILE *mf, const fqt_model *m, const fqt_diag *d, int64_t step) {
    for (int64_t i = 0; i < d->n_linears; i++)
        for (int o = 0; o < FQT_OP_COUNT; o++) {
            const fqt_qstats *s = &d->st[i][o];
            if (!s->n) continue;
            fqt_buf b = {0};
            const char *gemm = o < 2 ? "fprop" : o < 4 ? "dgrad" : "wgrad";
            const char *opn = strchr(fqt_operand_names[o], '.') + 1;
            double n = (double)s->n;
            fqt_buf_printf(&b, "{\"kind\":\"quant\",\"step\":%lld,\"layer\":\"%s\",\"gemm\":\"%s\","
                               "\"operand\":\"%s\",\"snr_db\":",
                           (long long)step, m->linear_names[i], gemm, opn);
            fqt_buf_json_num(&b, fqt_qstats_snr_db(s));
            fqt_buf_printf(&b, ",\"saturated\":");
            fqt_buf_json_num(&b, s->n_saturated / n);
            fqt_buf_printf(&b, ",\"flushed\":");
            fqt_buf_json_num(&b, s->n_flushed / n);
            fqt_buf_printf(&b, ",\"nonfinite\":%lld,\"scale_min\":", (long long)s->n_nonfinite);
            fqt_buf_json_num(&b, s->scale_min);
            fqt_buf_printf(&b, ",\"scale_max\":");
            fqt_buf_json_num(&b, s->scale_max);
            fqt_buf_printf(&b, ",\"hist\":[");
            for (int k = 0; k < 16; k++) fqt_buf_printf(&b, "%s%lld", k ? "," : "", (long long)s->code_hist[k]);
            fqt_buf_printf(&b, "]}");
            emit(mf, &b);
        }
}

/* ---- the loop ----------------------------------------------------------------------------- */

static fqt_status run_exists_error(const char *run);

typedef struct {
    int32_t *x, *y; /* (accum, B*T) */
} batch_buf;

/* One forward+backward over the step's M = grad_accum * P micro-batches under (recipe, mode)
 * (docs/DIST.md). This rank computes micro-batches j = a*P + rank (bb holds them in a order,
 * SR keyed by step*M + j); each micro-batch's gradient is formed in the zeroed m->grads and
 * added onto the running sum dp->gacc in j order (dp_reduce: one addition after another, also
 * for one process). Returns the mean loss over all M micro-batches added in j order (NaN if
 * any was non-finite), the same on every rank. diag: each micro-batch's statistics, merged in
 * j order. */
static double run_step(fqt_model *m, dp_ctx *dp, const batch_buf *bb, const fqt_train_config *c,
                       const fqt_recipe *r, fqt_mode mode, int64_t step, fqt_diag *diag) {
    const int64_t A = c->grad_accum, P = dp->P, M = A * P;
    double *ls = fqt_xmalloc((size_t)A * sizeof(double)), *all = fqt_xmalloc((size_t)M * sizeof(double));
    fqt_diag mine = {0};
    const size_t dsz = diag ? (size_t)diag->n_linears * sizeof *diag->st : 0;
    char *dloc = NULL, *dall = NULL;
    if (diag) {
        fqt_diag_alloc(&mine, diag->n_linears);
        dloc = fqt_xmalloc(dsz * (size_t)A + 1);
        dall = fqt_xmalloc(dsz * (size_t)M + 1);
    }
    for (int64_t a = 0; a < A; a++) {
        const int64_t j = a * P + dp->rank;
        if (diag) memset(mine.st, 0, dsz);
        fqt_pass pass = {r, mode, c->seed, (uint32_t)(step * M + j), diag ? &mine : NULL, false};
        const int64_t off = a * c->batch * c->seq;
        fqt_model_zero_grad(m);
        ls[a] = fqt_model_forward(m, bb->x + off, bb->y + off, c->batch, c->seq, &pass);
        /* A non-finite loss skips the step on every rank; its (zero) gradient still takes part
         * in the reduction, which every rank runs in lockstep. */
        if (isfinite(ls[a])) fqt_model_backward(m, &pass, 1.0f / (float)M);
        dp_reduce(dp, m->grads, a == 0);
        if (diag) memcpy(dloc + (size_t)a * dsz, mine.st, dsz);
    }
    fqt_dist_allgather(ls, (size_t)A * sizeof(double), all); /* all[q*A + a] = l of j = a*P + q */
    double loss = 0;
    for (int64_t j = 0; j < M; j++) {
        const double l = all[(j % P) * A + j / P];
        if (!isfinite(l)) {
            loss = NAN;
            break;
        }
        loss += l / (double)M;
    }
    if (diag) {
        fqt_dist_allgather(dloc, dsz * (size_t)A, dall);
        for (int64_t j = 0; j < M; j++) {
            const fqt_qstats *from = (const fqt_qstats *)(void *)(dall + (size_t)((j % P) * A + j / P) * dsz);
            for (int64_t i = 0; i < diag->n_linears; i++)
                for (int o = 0; o < FQT_OP_COUNT; o++) fqt_qstats_merge(&diag->st[i][o], &from[i * FQT_OP_COUNT + o]);
        }
        fqt_diag_free(&mine);
        free(dloc);
        free(dall);
    }
    free(ls);
    free(all);
    return loss;
}

/* Whether linear li (fqt_model.linear_names order: per block q k v o gate up down, then the
 * LM head) is quantized in a pass of (r, mode): any of the operands the pass quantizes has a
 * format other than fp32, bf16 or fp16. In QAT mode only the forward operands are (the
 * backward GEMMs run in FP32). */
static bool linear_quantized(const fqt_model *m, const fqt_recipe *r, fqt_mode mode, int64_t li) {
    const fqt_linear_spec *s = li == m->n_linears - 1
                                   ? fqt_recipe_lm_head(r)
                                   : fqt_recipe_layer(r, (int)(li / FQT_LINEARS_PER_LAYER), (int)m->cfg.n_layers);
    const int n_ops = mode == FQT_MODE_QAT ? 2 : FQT_OP_COUNT;
    for (int o = 0; o < n_ops; o++) {
        const fqt_elem e = s->op[o].fmt.elem;
        if (e != FQT_ELEM_FP32 && e != FQT_ELEM_BF16 && e != FQT_ELEM_FP16) return true;
    }
    return false;
}

static fqt_status prepare_run_dir(const fqt_train_config *c, int64_t resume_step, int *lock_fd) {
    fqt_status st = fqt_mkdir_p(c->run_dir);
    if (st) return st;
    if (*lock_fd < 0 && (st = fqt_rundir_lock(c->run_dir, lock_fd))) return st;
    /* A fresh run: only now, with data and model set up, may an old run be replaced. */
    if (resume_step < 0 && fqt_rundir_has_run(c->run_dir)) {
        if (!c->overwrite) return run_exists_error(c->run_dir);
        if ((st = fqt_rundir_clear(c->run_dir))) return st;
    }
    char path[1100];
    char *cj = fqt_train_config_json(c);
    snprintf(path, sizeof path, "%s/run.json", c->run_dir);
    st = fqt_write_file_atomic(path, cj, strlen(cj));
    free(cj);
    if (st) return st;
    /* metrics.jsonl: fresh, or on resume cut back to the lines up to the checkpoint's step
     * so the file describes exactly one history. */
    snprintf(path, sizeof path, "%s/metrics.jsonl", c->run_dir);
    fqt_buf keep = {0};
    if (resume_step >= 0) {
        void *data;
        size_t n;
        if (!fqt_read_file(path, &data, &n)) {
            char *p = data, *end = p + n;
            while (p < end) {
                char *nl = memchr(p, '\n', (size_t)(end - p));
                if (!nl) break;
                const char *sp = strstr(p, "\"step\":");
                long long stp = sp && sp < nl ? strtoll(sp + 7, NULL, 10) : 0;
                if (stp <= resume_step) fqt_buf_append(&keep, p, (size_t)(nl - p + 1));
                p = nl + 1;
            }
            free(data);
        }
    }
    st = fqt_write_file_atomic(path, keep.s ? keep.s : "", keep.len);
    fqt_buf_free(&keep);
    return st;
}


static fqt_status run_exists_error(const char *run) {
    fqt_set_error("%s already holds a run (run.json, metrics.jsonl or a checkpoint): continue it with "
                  "--resume %s, or replace it with --overwrite", run, run);
    return FQT_ERR_ARG;
}

static int64_t qaf_steps_of(const fqt_train_config *c) {
    if (c->qaf_frac > 0 && !c->qaf_steps) return (int64_t)llround(c->qaf_frac * (double)c->steps);
    return c->qaf_steps;
}

fqt_status fqt_train_config_check(const fqt_train_config *c) {
    fqt_recipe r;
    if (fqt_recipe_parse(c->recipe, &r)) return FQT_ERR_ARG;
    if (c->batch <= 0 || c->seq <= 0 || c->grad_accum <= 0 || c->steps <= 0) {
        fqt_set_error("batch, seq, grad-accum and steps must be positive");
        return FQT_ERR_ARG;
    }
    if (c->log_every <= 0) {
        fqt_set_error("--log-every must be positive (got %lld)", (long long)c->log_every);
        return FQT_ERR_ARG;
    }
    if (!(c->beta1 < 1) || !(c->beta2 < 1)) {
        fqt_set_error("--beta1 and --beta2 must be in [0, 1) (got %g and %g)", c->beta1, c->beta2);
        return FQT_ERR_ARG;
    }
    /* Sizes: the tokens of a step and the model must fit in memory, checked in double so
     * that no product can wrap (--batch 2^62 would otherwise allocate a few bytes). */
    const double tok = (double)c->batch * (double)c->seq * (double)c->grad_accum;
    if (tok > (double)(1ll << 31)) {
        fqt_set_error("batch x seq x grad-accum = %.3g tokens per step: more than 2^31", tok);
        return FQT_ERR_ARG;
    }
    const fqt_model_config *mc = &c->model;
    const double C = (double)mc->dim, F = (double)mc->ffn, L = (double)mc->n_layers;
    const double V = mc->vocab > 0 ? (double)mc->vocab : 65536.0;
    const double params = 2 * V * C + L * (4 * C * C + 3 * C * F + 2 * C);
    if (params > 4e9) {
        fqt_set_error("the model would have %.3g parameters (%.0f GB for weights, gradients and AdamW "
                      "moments): more than fqt's CPU trainer can hold; use a smaller --dim, --layers or --ffn",
                      params, params * 20 / 1e9);
        return FQT_ERR_ARG;
    }
    const int64_t qaf = qaf_steps_of(c);
    if (qaf >= c->steps) {
        fqt_set_error("--qaf-steps %lld must be smaller than --steps %lld", (long long)qaf, (long long)c->steps);
        return FQT_ERR_ARG;
    }
    if (c->seq > c->model.ctx) {
        fqt_set_error("--seq %lld exceeds the model's context %lld", (long long)c->seq, (long long)c->model.ctx);
        return FQT_ERR_ARG;
    }
    return FQT_OK;
}

fqt_status fqt_train(fqt_train_config *c, const char *resume) {
    fqt_status st;
    fqt_recipe recipe, fp32;
    fqt_model m = {0};
    fqt_tokens train = {0}, val = {0};
    float *mom = NULL, *vel = NULL, *ghat = NULL;
    FILE *mf = NULL;
    batch_buf bb = {0};
    fqt_diag diag = {0};
    optim_view ov = {0};
    dp_ctx dp = {0};
    train_state s = {.data_rng = c->seed ^ 0x5DEECE66Dull, .qaf_start = -1};
    char ckdir[4200] = "";
    int lock_fd = -1;
    int64_t nonfinite = 0, saved_steps = 0;
    uint64_t ckpt_digest = DP_FNV0;
    const fqt_dist_info *world = fqt_dist_world();
    metrics_errno = 0;

    if (resume) {
        /* The directory resumed is the one written (not the run_dir stored in train.json);
         * it is locked for the life of the run, and an interrupted checkpoint swap is
         * settled first. Only rank 0 locks and settles; the others read the settled
         * checkpoint (RUN/ckpt) once rank 0 says it is there. */
        char run[1024];
        if ((st = fqt_rundir_of_resume(resume, run, sizeof run))) return st;
        int32_t st0 = 0;
        if (world->rank == 0 && !(st0 = (int32_t)fqt_rundir_lock(run, &lock_fd)))
            st0 = (int32_t)fqt_checkpoint_recover(run, ckdir, sizeof ckdir);
        fqt_dist_bcast(&st0, sizeof st0, 0);
        if ((st = (fqt_status)st0)) {
            if (world->rank != 0) fqt_set_error("rank 0 could not lock %s or settle its checkpoint", run);
            goto out;
        }
        if (world->rank != 0) snprintf(ckdir, sizeof ckdir, "%s/ckpt", run);
        char path[4300];
        snprintf(path, sizeof path, "%s/train.json", ckdir);
        void *data;
        size_t n;
        if ((st = fqt_read_file(path, &data, &n))) goto out;
        fqt_train_config saved;
        st = fqt_train_config_from_json(&saved, data, n, path);
        free(data);
        if (st) goto out;
        if ((st = fqt_train_config_check(&saved))) {
            char msg[512];
            snprintf(msg, sizeof msg, "%s", fqt_last_error());
            fqt_set_error("%s: %s", path, msg);
            goto out;
        }
        saved_steps = saved.steps;
        /* The stored configuration wins; only the length and the stop point may change. */
        saved.steps = c->steps > saved.steps ? c->steps : saved.steps;
        saved.stop_at = c->stop_at;
        saved.quiet = c->quiet;
        memcpy(saved.device, c->device, sizeof saved.device); /* a run may move between devices */
        snprintf(saved.run_dir, sizeof saved.run_dir, "%s", run);
        /* Another rank count: the global batch is kept unless --grad-accum is given. */
        const int64_t saved_ranks = saved.ranks > 0 ? saved.ranks : 1, M = saved.grad_accum * saved_ranks;
        if (c->resume_grad_accum > 0) saved.grad_accum = c->resume_grad_accum;
        else if (M % world->size) {
            fqt_set_error("%s: a global batch of %lld micro-batches (%lld ranks x --grad-accum %lld) cannot be "
                          "split over %d ranks: give --grad-accum for this rank count", path, (long long)M,
                          (long long)saved_ranks, (long long)saved.grad_accum, world->size);
            st = FQT_ERR_ARG;
            goto out;
        } else saved.grad_accum = M / world->size;
        *c = saved;
    } else {
        /* The refusal of a directory that holds a run: rank 0 looks, every rank follows. */
        int32_t st0 = world->rank == 0 && fqt_rundir_has_run(c->run_dir) && !c->overwrite
                          ? (int32_t)run_exists_error(c->run_dir) : 0;
        fqt_dist_bcast(&st0, sizeof st0, 0);
        if (st0) {
            if (world->rank != 0) run_exists_error(c->run_dir);
            return (fqt_status)st0;
        }
    }
    c->ranks = world->size;
    if ((st = fqt_train_config_check(c))) goto out;
    FQT_ASSERT(fqt_recipe_parse(c->recipe, &recipe) == FQT_OK);
    FQT_ASSERT(fqt_recipe_parse("fp32", &fp32) == FQT_OK);
    c->qaf_steps = qaf_steps_of(c);
    if (!c->name[0]) snprintf(c->name, sizeof c->name, "%s", c->recipe);
    if (!resume) {
        c->start_unix = (int64_t)time(NULL);
        fqt_dist_bcast(&c->start_unix, sizeof c->start_unix, 0); /* rank 0's clock (the digest) */
        if ((st = fqt_train_resolve_tokenizer(c))) goto out;
    }

    /* Data first: its vocabulary must fit the model. */
    if (!c->model.vocab) {
        if ((st = fqt_shards_load(c->train_data, &train.tok, &train.n))) goto out;
        int64_t mx = 0;
        for (int64_t i = 0; i < train.n; i++) if (train.tok[i] > mx) mx = train.tok[i];
        /* Vocabulary from the tokenizer file's size when given, else from the data. */
        c->model.vocab = mx + 1;
        int64_t vs = c->vocab[0] ? fqt_vocab_size_of_file(c->vocab) : 0;
        if (vs > mx) c->model.vocab = vs;
        fqt_tokens_free(&train);
    }
    {
        const fqt_backend *be = fqt_backend_get(c->device);
        if (!be) {
            st = FQT_ERR_UNSUPPORTED;
            goto out;
        }
        if ((st = fqt_model_create_on(&m, &c->model, be))) goto out;
    }
    if ((st = fqt_tokens_load(&train, c->train_data, c->model.vocab))) goto out;
    if ((st = fqt_tokens_load(&val, c->val_data, c->model.vocab))) goto out;
    if (train.n < c->seq + 2 || val.n < 2) {
        bool tr = train.n < c->seq + 2;
        fqt_set_error("%s: %lld tokens, too few for %s", tr ? c->train_data : c->val_data,
                      (long long)(tr ? train.n : val.n), tr ? "one training sequence" : "validation");
        st = FQT_ERR_ARG;
        goto out;
    }
    const size_t slab_bytes = (size_t)m.n_params * sizeof(float);
    optim_view_init(&ov, &m);
    if ((st = dp_init(&dp, m.be, m.n_params, ov.segs, ov.n_segs))) goto out;
    /* ZeRO-1: this rank's moments are its shard only. */
    const size_t shard_bytes = (size_t)(dp.e - dp.b) * sizeof(float);
    mom = m.be->alloc(shard_bytes + sizeof(float));
    vel = m.be->alloc(shard_bytes + sizeof(float));
    ghat = m.be->alloc(slab_bytes);
    if (!mom || !vel || !ghat) {
        st = FQT_ERR_NOMEM;
        goto out;
    }
    m.be->zero(mom, shard_bytes);
    m.be->zero(vel, shard_bytes);
    fqt_model_init(&m, c->seed);
    if (!resume && c->init_from[0] && (st = fqt_train_init_from(&m, c))) goto out;
    if (resume) {
        fqt_model_config saved_cfg;
        if ((st = fqt_checkpoint_read_config(ckdir, &saved_cfg))) goto out;
        if (memcmp(&saved_cfg, &c->model, sizeof saved_cfg)) {
            const fqt_model_config *a = &saved_cfg, *b = &c->model;
            fqt_set_error("%s/config.json: model (V=%lld C=%lld L=%lld NH=%lld NKV=%lld F=%lld ctx=%lld) "
                          "differs from %s/train.json (V=%lld C=%lld L=%lld NH=%lld NKV=%lld F=%lld ctx=%lld): "
                          "a checkpoint of another model?",
                          ckdir, (long long)a->vocab, (long long)a->dim, (long long)a->n_layers,
                          (long long)a->n_heads, (long long)a->n_kv_heads, (long long)a->ffn, (long long)a->ctx,
                          ckdir, (long long)b->vocab, (long long)b->dim, (long long)b->n_layers,
                          (long long)b->n_heads, (long long)b->n_kv_heads, (long long)b->ffn, (long long)b->ctx);
            st = FQT_ERR_MISMATCH;
            goto out;
        }
        if ((st = fqt_checkpoint_load_model(&m, ckdir)) ||
            (st = load_state(ckdir, &m, &dp, mom, vel, &s, &ckpt_digest)))
            goto out;
        if (s.step > saved_steps) {
            fqt_set_error("%s/state.safetensors: step %lld is past the run's %lld steps (train.json): a "
                          "damaged checkpoint", ckdir, (long long)s.step, (long long)saved_steps);
            st = FQT_ERR_FORMAT;
            goto out;
        }
    }
    /* Every rank must run the same job: compare digests of what each was given (the
     * configuration, the data, the tokenizer file, the starting weights and, on a resume,
     * the moments). */
    if (world->size > 1) {
        char *cj = fqt_train_config_json(c);
        st = fqt_dist_check_agree("configuration", dp_fnv(DP_FNV0, cj, strlen(cj)));
        free(cj);
        if (!st) st = fqt_dist_check_agree("training data", dp_fnv(DP_FNV0, train.tok, (size_t)train.n * sizeof *train.tok));
        if (!st) st = fqt_dist_check_agree("validation data", dp_fnv(DP_FNV0, val.tok, (size_t)val.n * sizeof *val.tok));
        if (!st) {
            void *vd = NULL;
            size_t vn = 0;
            uint64_t h = DP_FNV0;
            if (c->vocab[0] && !fqt_read_file(c->vocab, &vd, &vn)) h = dp_fnv(h, vd, vn);
            free(vd);
            st = fqt_dist_check_agree("vocabulary (tokenizer file)", h);
        }
        if (!st) {
            float *hp = fqt_backend_host_get(m.be, m.params, m.n_params, true);
            ckpt_digest = dp_fnv(ckpt_digest, hp, slab_bytes);
            fqt_backend_host_put(m.be, hp, m.params, m.n_params, false);
            st = fqt_dist_check_agree(resume ? "checkpoint (weights and moments)" : "initial weights", ckpt_digest);
        }
        if (st) goto out;
    }
    /* The run directory (lock, refusal or replacement, run.json, metrics.jsonl) is rank 0's;
     * the other ranks learn its status. */
    {
        int32_t st0 = 0;
        if (world->rank == 0 && !(st0 = (int32_t)prepare_run_dir(c, resume ? s.step : -1, &lock_fd))) {
            char path[1100];
            snprintf(path, sizeof path, "%s/metrics.jsonl", c->run_dir);
            mf = fopen(path, "a");
            if (!mf) {
                fqt_set_error("%s: cannot open: %s", path, strerror(errno));
                st0 = FQT_ERR_IO;
            }
        }
        fqt_dist_bcast(&st0, sizeof st0, 0);
        if ((st = (fqt_status)st0)) {
            if (world->rank != 0) fqt_set_error("rank 0 could not prepare the run directory %s", c->run_dir);
            goto out;
        }
    }
    /* Global step: M = grad_accum * P micro-batches; this rank holds grad_accum of them. */
    const int64_t BT = c->batch * c->seq, M = c->grad_accum * world->size, tok_step = BT * M;
    bb.x = fqt_xmalloc((size_t)(BT * c->grad_accum) * sizeof(int32_t));
    bb.y = fqt_xmalloc((size_t)(BT * c->grad_accum) * sizeof(int32_t));
    int64_t fault_rank = -1, fault_step = -1;
    int fault_sig = SIGKILL;
    {
        /* "R:S": rank R kills itself (SIGKILL) after step S; "R:S:INT" (or TERM): rank R
         * sends itself SIGINT (SIGTERM) during step S. For tests. */
        const char *f = getenv("FQT_DIST_FAULT");
        long long fr, fs;
        char sg[8] = "";
        if (f && sscanf(f, "%lld:%lld:%7s", &fr, &fs, sg) >= 2) {
            fault_rank = fr;
            fault_step = fs;
            fault_sig = !strcmp(sg, "INT") ? SIGINT : !strcmp(sg, "TERM") ? SIGTERM : SIGKILL;
        }
    }
    fqt_diag_alloc(&diag, m.n_linears);
    nonfinite = dp_count_nonfinite(&dp, m.params, mom, vel);
    const int64_t fixed_qaf_start = c->qaf_steps ? c->steps - c->qaf_steps : -1;
    const bool tty = isatty(2) && !c->quiet;
    if (!c->quiet) {
        char desc[600];
        fqt_recipe_describe(&recipe, desc, sizeof desc);
        fprintf(stderr, "fqt train: %s model (%lld params: C=%lld L=%lld NH=%lld NKV=%lld F=%lld V=%lld), "
                        "%lld steps x %lld tokens, %s mode, on %s\n  %s\n  data: %lld train / %lld val tokens; run dir %s%s\n",
                c->model_size, (long long)m.n_params, (long long)c->model.dim, (long long)c->model.n_layers,
                (long long)c->model.n_heads, (long long)c->model.n_kv_heads, (long long)c->model.ffn,
                (long long)c->model.vocab, (long long)c->steps, (long long)tok_step,
                c->mode == FQT_MODE_QAT ? "qat" : "fqt", m.be->name, desc, (long long)train.n, (long long)val.n,
                c->run_dir, resume ? " (resumed)" : "");
        if (resume) fprintf(stderr, "  resuming at step %lld from %s\n", (long long)s.step, ckdir);
        if (world->size > 1) {
            int64_t big = 0; /* the largest shard: the most AdamW memory a rank allocates */
            for (int r = 0; r < world->size; r++)
                if (dp.bounds[r + 1] - dp.bounds[r] > big) big = dp.bounds[r + 1] - dp.bounds[r];
            fprintf(stderr, "  data parallel: %s, %lld micro-batches of %lld tokens per rank per step; ZeRO-1: "
                            "AdamW moments of at most %lld parameters (%.2f MiB) per rank, of %lld (%.2f MiB)\n",
                    fqt_dist_describe(), (long long)c->grad_accum, (long long)BT, (long long)big,
                    (double)big * 8.0 / 1048576.0, (long long)m.n_params, (double)m.n_params * 8.0 / 1048576.0);
        }
    }

    double t_start = fqt_prof_now(), t_last = t_start;
    const double t_begin = t_start;
    double t_ckpt = t_start;
    metrics_t0 = t_start - s.wall;
    const int64_t step_begin = s.step;
    int64_t tokens_since = 0;
    const int64_t end = c->stop_at && c->stop_at < c->steps ? c->stop_at : c->steps;
    const double sqrt3 = sqrt(3.0);
    bool ckpt_pending = false;
    const int64_t first_step = s.step;
    for (int64_t step = s.step; step < end; step++) {
        /* Phase: the main phase runs in c->mode; QAF (fixed or automatic) in QAT mode. */
        if (fixed_qaf_start >= 0 && step == fixed_qaf_start && s.qaf_start < 0) {
            s.qaf_start = step;
            s.qaf_lr0 = fqt_lr_at(c, step, fixed_qaf_start);
        }
        const bool in_qaf = s.qaf_start >= 0 && step >= s.qaf_start;
        if (in_qaf && step == s.qaf_start) {
            fqt_buf b = {0};
            fqt_buf_printf(&b, "{\"kind\":\"event\",\"step\":%lld,\"tokens\":%lld,\"msg\":\"switch to QAF\"}",
                           (long long)step, (long long)s.tokens);
            emit(mf, &b);
            if (!c->quiet) fprintf(stderr, "%sstep %lld: switching to quantization-aware finetuning (QAF)\n",
                                   tty ? "\n" : "", (long long)step);
        }
        const fqt_mode mode = in_qaf ? FQT_MODE_QAT : c->mode;
        const int64_t main_steps = s.qaf_start >= 0 ? s.qaf_start : (fixed_qaf_start >= 0 ? fixed_qaf_start : c->steps);
        const double lr = in_qaf ? qaf_lr(c, step, s.qaf_start, s.qaf_lr0) : fqt_lr_at(c, step, main_steps);

        /* Every rank draws all M windows in order and keeps micro-batches j = a*P + rank. */
        for (int64_t j = 0; j < M; j++) {
            if (j % world->size == world->rank) {
                const int64_t a = j / world->size;
                sample_batch(&train, c->batch, c->seq, &s.data_rng, bb.x + a * BT, bb.y + a * BT);
            } else {
                for (int64_t b = 0; b < c->batch; b++) (void)fqt_splitmix64(&s.data_rng);
            }
        }
        const bool do_diag = c->diag_every && (step + 1) % c->diag_every == 0;
        const bool do_gnr = c->gnr_every && (step + 1) % c->gnr_every == 0;
        if (do_diag) memset(diag.st, 0, (size_t)diag.n_linears * sizeof *diag.st);
        /* FQT_PROFILE: the first step's one-time costs (heuristics, scratch growth) left out. */
        if (step == first_step + 1) fqt_backend_profile_reset();
        double loss = run_step(&m, &dp, &bb, c, &recipe, mode, step, do_diag ? &diag : NULL);
        double gn2 = isfinite(loss) ? dp_grad_norm2(&dp) : NAN;
        double gnorm = sqrt(gn2);
        s.tokens += tok_step;
        tokens_since += tok_step;
        bool bad_update = false;
        if (!isfinite(loss) || !isfinite(gnorm)) {
        skip_step:
            s.bad_steps++;
            fqt_buf b = {0};
            const char *what = bad_update ? "update" : isfinite(loss) ? "gradient" : "loss";
            fqt_buf_printf(&b, "{\"kind\":\"event\",\"step\":%lld,\"tokens\":%lld,\"msg\":\"non-finite %s, update skipped\"}",
                           (long long)step + 1, (long long)s.tokens, what);
            emit(mf, &b);
            if (!c->quiet) fprintf(stderr, "%sstep %lld: non-finite %s, update skipped (%lld in a row)\n",
                                   tty ? "\n" : "", (long long)step + 1, what, (long long)s.bad_steps);
            if (s.bad_steps >= c->max_bad_steps) {
                fqt_set_error("stopping: %lld non-finite steps in a row (last at step %lld); the last good "
                              "checkpoint in %s/ckpt is intact (try a lower --lr or another recipe)",
                              (long long)s.bad_steps, (long long)step + 1, c->run_dir);
                st = FQT_ERR_NONFINITE;
                goto out;
            }
            /* The step happened (its data is consumed), only its update is skipped: it
             * still counts, validates and checkpoints like any other. */
            s.step = step + 1;
            goto step_done;
        }
        s.bad_steps = 0;
        if (do_diag) log_diag(mf, &m, &diag, step + 1);

        if (do_gnr) {
            /* r = |g| / |ĝ - g|: ĝ is this step's (quantized) gradient, g the same batch's
             * gradient with no quantization at all. */
            dp_gather_grads(&dp);
            m.be->copy(ghat, dp.gacc, (size_t)m.n_params * sizeof(float));
            double l32 = run_step(&m, &dp, &bb, c, &fp32, FQT_MODE_FQT, step, NULL);
            dp_gather_grads(&dp);
            /* Two pools: every linear ("all") and the quantized ones only ("quantized": the
             * paper's criterion; the high-precision LM head and BF16 blocks would inflate it). */
            double tot_g = 0, tot_e = 0, q_g = 0, q_e = 0;
            int64_t n_q = 0;
            for (int64_t li = 0; li < m.n_linears && isfinite(l32); li++) {
                const char *nm = m.linear_names[li];
                const fqt_param_info *p = fqt_model_linear_param(&m, li);
                const double g2 = fqt_backend_sumsq(m.be, dp.gacc + p->offset, NULL, p->numel, ov.part);
                const double e2 = fqt_backend_sumsq(m.be, ghat + p->offset, dp.gacc + p->offset, p->numel, ov.part);
                tot_g += g2;
                tot_e += e2;
                if (linear_quantized(&m, &recipe, mode, li)) {
                    q_g += g2;
                    q_e += e2;
                    n_q++;
                }
                fqt_buf b = {0};
                fqt_buf_printf(&b, "{\"kind\":\"gnr\",\"step\":%lld,\"tokens\":%lld,\"layer\":\"%s\",\"r\":",
                               (long long)step + 1, (long long)s.tokens, nm);
                fqt_buf_json_num(&b, e2 > 0 ? sqrt(g2 / e2) : INFINITY);
                fqt_buf_printf(&b, "}");
                emit(mf, &b);
            }
            const double r_all = tot_e > 0 ? sqrt(tot_g / tot_e) : INFINITY;
            const double r_q = q_e > 0 ? sqrt(q_g / q_e) : INFINITY;
            fqt_buf b = {0};
            fqt_buf_printf(&b, "{\"kind\":\"gnr\",\"step\":%lld,\"tokens\":%lld,\"layer\":\"all\",\"r\":",
                           (long long)step + 1, (long long)s.tokens);
            fqt_buf_json_num(&b, r_all);
            fqt_buf_printf(&b, "}");
            emit(mf, &b);
            if (n_q > 0 && isfinite(l32)) {
                fqt_buf bq = {0};
                fqt_buf_printf(&bq, "{\"kind\":\"gnr\",\"step\":%lld,\"tokens\":%lld,\"layer\":\"quantized\",\"r\":",
                               (long long)step + 1, (long long)s.tokens);
                fqt_buf_json_num(&bq, r_q);
                fqt_buf_printf(&bq, ",\"linears\":%lld}", (long long)n_q);
                emit(mf, &bq);
            }
            m.be->copy(dp.gacc, ghat, (size_t)m.n_params * sizeof(float));
            if (c->qaf_auto && s.qaf_start < 0 && mode == FQT_MODE_FQT) {
                /* The criterion: the quantized pool; a recipe that quantizes no linear has only
                 * the "all" pool (its noise is the high-precision formats'). */
                const double r = n_q > 0 ? r_q : r_all;
                s.gnr_low = r < sqrt3 ? s.gnr_low + 1 : 0;
                if (s.gnr_low >= c->qaf_auto_checks && step + 2 < c->steps) {
                    s.qaf_start = step + 1;
                    s.qaf_lr0 = lr;
                }
            }
        }

        const double scale = c->grad_clip > 0 && gnorm > c->grad_clip ? c->grad_clip / gnorm : 1.0;
        /* An update that would make weights or moments non-finite is skipped like a
         * non-finite loss (entries that were non-finite already, as in a resumed damaged
         * model, do not count): a dry run of the fused update counts them first, so no copy
         * of the slabs is kept. */
        if (adamw_step(&m, &dp, &ov, mom, vel, step + 1, lr, c, scale, true) > nonfinite) {
            bad_update = true;
            goto skip_step;
        }
        adamw_step(&m, &dp, &ov, mom, vel, step + 1, lr, c, scale, false);
        s.step = step + 1;

        double t = fqt_prof_now();
        const double comm_s = fqt_dist_comm_seconds_take(); /* this step's collectives */
        double tps = tokens_since / (t - t_last > 1e-9 ? t - t_last : 1e-9);
        t_last = t;
        tokens_since = 0;
        {
            fqt_buf b = {0};
            fqt_buf_printf(&b, "{\"kind\":\"train\",\"step\":%lld,\"tokens\":%lld,\"loss\":", (long long)s.step,
                           (long long)s.tokens);
            fqt_buf_json_num(&b, loss);
            fqt_buf_printf(&b, ",\"lr\":");
            fqt_buf_json_num(&b, lr);
            fqt_buf_printf(&b, ",\"grad_norm\":");
            fqt_buf_json_num(&b, gnorm);
            fqt_buf_printf(&b, ",\"tok_per_s\":");
            fqt_buf_json_num(&b, round(tps * 10) / 10);
            if (world->size > 1) {
                /* Rank 0's seconds inside collectives since the previous train row (GNR
                 * checks, validation and checkpoints of the previous step included). */
                fqt_buf_printf(&b, ",\"comm_s\":");
                fqt_buf_json_num(&b, round(comm_s * 1e4) / 1e4);
            }
            fqt_buf_printf(&b, ",\"phase\":\"%s\"}", in_qaf ? "qaf" : mode == FQT_MODE_QAT ? "qat" : "fqt");
            emit(mf, &b);
        }
        if (!c->quiet && (tty || s.step % c->log_every == 0 || s.step == end)) {
            /* Rates and ETA over this process's steps (checkpoints, validation and GNR checks
             * included), not the last step's instantaneous rate. */
            double elapsed = t - t_begin;
            int64_t done = s.step - step_begin;
            char etas[32];
            fmt_eta(etas, sizeof etas, done > 0 ? (double)(end - s.step) * elapsed / (double)done : NAN);
            fprintf(stderr, "%sstep %5lld/%lld | loss %.4f | %7.0f tok/s | lr %.2e | ETA %s%s",
                    tty ? "\r" : "", (long long)s.step, (long long)c->steps, loss,
                    elapsed > 0 ? (double)(done * tok_step) / elapsed : 0.0, lr, etas, tty ? "   " : "\n");
        }
    step_done:
        if ((c->val_every && s.step % c->val_every == 0) || s.step == c->steps) {
            fqt_pass ep = {&recipe, mode, c->seed, 0, NULL, false};
            double vl = fqt_eval_loss(&m, &val, c->batch, c->seq, c->val_tokens, &ep);
            fqt_buf b = {0};
            fqt_buf_printf(&b, "{\"kind\":\"val\",\"step\":%lld,\"tokens\":%lld,\"val_loss\":", (long long)s.step,
                           (long long)s.tokens);
            fqt_buf_json_num(&b, vl);
            fqt_buf_printf(&b, ",\"val_ppl\":");
            fqt_buf_json_num(&b, exp(vl));
            fqt_buf_printf(&b, "}");
            emit(mf, &b);
            if (!c->quiet) fprintf(stderr, "%sstep %lld: val loss %.4f, perplexity %.2f\n", tty ? "\n" : "",
                                   (long long)s.step, vl, exp(vl));
            if (s.step == c->steps && (!isfinite(vl) || s.bad_steps > 0)) {
                /* A diverged model is no result: it is not checkpointed and the run fails. */
                fqt_set_error("the model diverged: %s at the last step %lld; it was not checkpointed, the last "
                              "good checkpoint in %s/ckpt is intact (try a lower --lr or another recipe)",
                              s.bad_steps > 0 ? "non-finite updates" : "non-finite validation loss",
                              (long long)s.step, c->run_dir);
                st = FQT_ERR_NONFINITE;
                goto out;
            }
            if (s.step == c->steps) {
                double wall = s.wall + (fqt_prof_now() - t_start);
                fqt_buf f = {0};
                fqt_buf_printf(&f, "{\"kind\":\"final\",\"step\":%lld,\"tokens\":%lld,\"val_loss\":",
                               (long long)s.step, (long long)s.tokens);
                fqt_buf_json_num(&f, vl);
                fqt_buf_printf(&f, ",\"val_ppl\":");
                fqt_buf_json_num(&f, exp(vl));
                fqt_buf_printf(&f, ",\"wall_s\":");
                fqt_buf_json_num(&f, round(wall * 100) / 100);
                fqt_buf_printf(&f, ",\"tok_per_s\":");
                fqt_buf_json_num(&f, round((double)s.tokens / wall));
                fqt_buf_printf(&f, "}");
                emit(mf, &f);
            }
        }
        if (world->rank == fault_rank && step + 1 == fault_step && fault_sig != SIGKILL) raise(fault_sig);
        /* Every rank stops and checkpoints together: the ranks agree each step on a pending
         * signal (the first in rank order; it may have reached only some of them), on a failed
         * metrics write and on a checkpoint due by wall time (both rank 0's). */
        int sig = fqt_interrupt_pending();
        bool timed = c->ckpt_minutes > 0 && fqt_prof_now() - t_ckpt >= 60.0 * c->ckpt_minutes;
        if (world->size > 1) {
            int32_t mine[3] = {sig, metrics_errno, timed}, *all = fqt_xmalloc((size_t)world->size * sizeof mine);
            fqt_dist_allgather(mine, sizeof mine, all);
            sig = 0;
            for (int r = 0; r < world->size && !sig; r++) sig = all[3 * r];
            if (world->rank != 0 && all[1]) metrics_errno = all[1];
            timed = all[2] != 0;
            free(all);
            if (sig) fqt_interrupt_set(sig);
        }
        if ((st = metrics_check(c))) goto out;
        /* No checkpoint right after a skipped step: the weights may be what diverged, and
         * the last good checkpoint must survive. The save is deferred to the next good step. */
        const bool due = (c->ckpt_every && s.step % c->ckpt_every == 0) || s.step == end || timed || sig;
        if (due && s.bad_steps > 0) ckpt_pending = true;
        if ((due || ckpt_pending) && s.bad_steps == 0) {
            s.wall += fqt_prof_now() - t_start;
            t_start = fqt_prof_now();
            if ((st = save_checkpoint(&m, &dp, mom, vel, &s, c))) goto out;
            ckpt_pending = false;
            t_ckpt = fqt_prof_now();
        }
        if (world->rank == fault_rank && s.step == fault_step && fault_sig == SIGKILL) {
            fprintf(stderr, "fqt: rank %d: FQT_DIST_FAULT: killing myself after step %lld\n", world->rank,
                    (long long)s.step);
            fflush(stderr);
            raise(SIGKILL);
        }
        if (sig && s.step < end) {
            if (!c->quiet && tty) fputc('\n', stderr);
            fqt_set_error("%s after step %lld of %lld; %s in %s/ckpt; resume with: fqt train --resume %s",
                          sig == 2 ? "interrupted (SIGINT)" : "terminated (SIGTERM)", (long long)s.step,
                          (long long)c->steps, ckpt_pending ? "the last good checkpoint (before the skipped steps) is"
                                                            : "checkpoint saved",
                          c->run_dir, c->run_dir);
            st = FQT_ERR_INTERRUPTED;
            goto out;
        }
    }
    if (ckpt_pending) {
        fqt_set_error("stopped at step %lld right after non-finite steps: not checkpointed there; the last good "
                      "checkpoint in %s/ckpt is intact", (long long)s.step, c->run_dir);
        st = FQT_ERR_NONFINITE;
        goto out;
    }
    if (s.step == c->steps && !c->quiet && world->rank == 0) {
        fqt_train_print_samples(&m, c, &recipe);
    }
    st = FQT_OK;
out:
    metrics_t0 = NAN;
    if (mf && fclose(mf) && !st) {
        fqt_set_error("%s/metrics.jsonl: close failed: %s", c->run_dir, strerror(errno));
        st = FQT_ERR_IO;
    }
    fqt_rundir_unlock(lock_fd);
    fqt_diag_free(&diag);
    free(bb.x);
    free(bb.y);
    if (m.be) {
        if (mom) m.be->free(mom);
        if (vel) m.be->free(vel);
        if (ghat) m.be->free(ghat);
    }
    optim_view_free(&ov);
    if (dp.be) dp_free(&dp);
    fqt_tokens_free(&train);
    fqt_tokens_free(&val);
    fqt_model_free(&m);
    return st;
}
