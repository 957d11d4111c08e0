/* core/train_data.c — what a run checks before its first step: the tokenizer that belongs to
 * the data (through the data's manifest.json), the architecture of an --init-from checkpoint,
 * and settings that contradict each other. Not for: the loop itself (train.c). */
#include "core/train_extra.h"
#include "fqt/bpe.h"
#include "fqt/corpus.h"
#include "fqt/fileio.h"
#include "fqt/shard.h"
#include "fqt/train.h"

#include <string.h>
#include <time.h>

void fqt_train_json_start_time(fqt_buf *b, int64_t start_unix) {
    if (!start_unix) return;
    time_t t = (time_t)start_unix;
    struct tm tm;
    char iso[32] = "";
    if (gmtime_r(&t, &tm)) strftime(iso, sizeof iso, "%Y-%m-%dT%H:%M:%SZ", &tm);
    fqt_buf_printf(b, ", \"start_unix\": %lld, \"started_at\": ", (long long)start_unix);
    fqt_buf_json_str(b, iso);
}

/* Largest token id in the shards of pattern (-1 on error, message set). */
static int64_t max_token(const char *pattern) {
    uint16_t *tok = NULL;
    int64_t n = 0, mx = 0;
    if (fqt_shards_load(pattern, &tok, &n)) return -1;
    for (int64_t i = 0; i < n; i++) if (tok[i] > mx) mx = tok[i];
    free(tok);
    return mx;
}

fqt_status fqt_train_resolve_tokenizer(fqt_train_config *c) {
    fqt_data_manifest tm, vm;
    int tfound = 0, vfound = 0;
    fqt_status st;
    c->tokenizer_sha512[0] = '\0';
    if ((st = fqt_data_manifest_find(c->train_data, &tm, &tfound))) return st;
    if ((st = fqt_data_manifest_find(c->val_data, &vm, &vfound))) return st;
    if (tfound && vfound && strcmp(tm.sha512, vm.sha512)) {
        fqt_set_error("the training data (%s/manifest.json, tokenizer %s) and the validation data "
                      "(%s/manifest.json, tokenizer %s) were made with different tokenizers",
                      tm.dir, tm.tokenizer, vm.dir, vm.tokenizer);
        return FQT_ERR_MISMATCH;
    }
    if (!tfound && vfound) {
        tm = vm;
        tfound = 1;
    }
    char hex[2 * 64 + 1];
    if (tfound) {
        if ((st = fqt_file_sha512_hex(tm.tokenizer, hex))) return st;
        if (strcmp(hex, tm.sha512)) {
            fqt_set_error("%s: its SHA-512 is not the one %s/manifest.json records: the tokenizer "
                          "was changed after the data was made (re-run fqt prepare)", tm.tokenizer, tm.dir);
            return FQT_ERR_MISMATCH;
        }
        if (!c->vocab[0]) {
            if (strlen(tm.tokenizer) >= sizeof c->vocab) {
                fqt_set_error("%s: path too long", tm.tokenizer);
                return FQT_ERR_ARG;
            }
            snprintf(c->vocab, sizeof c->vocab, "%s", tm.tokenizer);
        } else {
            char given[2 * 64 + 1];
            if ((st = fqt_file_sha512_hex(c->vocab, given))) return st;
            if (strcmp(given, tm.sha512)) {
                fqt_set_error("--vocab %s is not the tokenizer the data was made with (%s/manifest.json "
                              "names %s); leave out --vocab to use the data's tokenizer, or tokenize "
                              "the text again with this one", c->vocab, tm.dir, tm.tokenizer);
                return FQT_ERR_MISMATCH;
            }
        }
    }
    if (!c->vocab[0]) return FQT_OK; /* no tokenizer: no samples, no exported tokenizer */
    fqt_bpe *bpe = NULL;
    if ((st = fqt_bpe_load(c->vocab, &bpe))) return st;
    const int64_t vs = fqt_bpe_vocab_size(bpe);
    fqt_bpe_free(bpe);
    if (!tfound) {
        /* No manifest: at least the sizes must fit. */
        int64_t mx = max_token(c->train_data);
        if (mx < 0) return FQT_ERR_IO;
        if (mx >= vs) {
            fqt_set_error("--vocab %s has %lld tokens but %s holds token %lld: the shards were made "
                          "with another tokenizer (use the one they were tokenized with)",
                          c->vocab, (long long)vs, c->train_data, (long long)mx);
            return FQT_ERR_MISMATCH;
        }
    }
    if (c->model.vocab && vs > c->model.vocab) {
        fqt_set_error("tokenizer %s has %lld tokens, more than the model's vocabulary of %lld%s",
                      c->vocab, (long long)vs, (long long)c->model.vocab,
                      c->init_from[0] ? " (the --init-from checkpoint was trained with another tokenizer?)" : "");
        return FQT_ERR_MISMATCH;
    }
    if ((st = fqt_file_sha512_hex(c->vocab, hex))) return st;
    snprintf(c->tokenizer_sha512, sizeof c->tokenizer_sha512, "%s", hex);
    return FQT_OK;
}

fqt_status fqt_train_init_from(fqt_model *m, const fqt_train_config *c) {
    char dir[4200];
    fqt_model_config cc;
    fqt_status st;
    if ((st = fqt_checkpoint_resolve(c->init_from, dir, sizeof dir))) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", fqt_last_error());
        fqt_set_error("--init-from: %s", msg);
        return st;
    }
    if ((st = fqt_checkpoint_read_config(dir, &cc))) return st;
    const fqt_model_config *a = &cc, *b = &m->cfg;
    const struct { const char *hf, *opt; int64_t ck, mo; } f[] = {
        {"vocab_size", "--vocab-size", a->vocab, b->vocab},
        {"hidden_size", "--dim", a->dim, b->dim},
        {"num_hidden_layers", "--layers", a->n_layers, b->n_layers},
        {"num_attention_heads", "--heads", a->n_heads, b->n_heads},
        {"num_key_value_heads", "--kv-heads", a->n_kv_heads, b->n_kv_heads},
        {"intermediate_size", "--ffn", a->ffn, b->ffn},
        {"max_position_embeddings", "--ctx", a->ctx, b->ctx},
    };
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (f[i].ck != f[i].mo) {
            fqt_set_error("--init-from %s: config.json has %s %lld but the model to train has %lld (%s); "
                          "leave out the model options to take the checkpoint's architecture%s",
                          dir, f[i].hf, (long long)f[i].ck, (long long)f[i].mo, f[i].opt,
                          i == 0 ? ", and tokenize the data with the checkpoint's tokenizer" : "");
            return FQT_ERR_MISMATCH;
        }
    if (a->rope_theta != b->rope_theta || a->norm_eps != b->norm_eps) {
        fqt_set_error("--init-from %s: rope_theta %g / rms_norm_eps %g differ from the model's %g / %g",
                      dir, (double)a->rope_theta, (double)a->norm_eps, (double)b->rope_theta, (double)b->norm_eps);
        return FQT_ERR_MISMATCH;
    }
    /* The checkpoint's own tokenizer (fqt writes one into every checkpoint) must be the
     * data's: same size is not enough, the ids must mean the same text. */
    const char *names[] = {"tokenizer.bpe", "r50k_base.tiktoken"};
    for (int i = 0; i < 2 && c->tokenizer_sha512[0]; i++) {
        char path[4300], hex[2 * 64 + 1];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (!fqt_file_exists(path, NULL)) continue;
        if ((st = fqt_file_sha512_hex(path, hex))) return st;
        if (strcmp(hex, c->tokenizer_sha512)) {
            fqt_set_error("--init-from %s was trained with another tokenizer (%s) than the data's (%s); "
                          "tokenize the data with %s", dir, path, c->vocab, path);
            return FQT_ERR_MISMATCH;
        }
        break;
    }
    return fqt_checkpoint_load_model(m, dir);
}

void fqt_train_config_warnings(const fqt_train_config *c, fqt_buf *out) {
    if (c->warmup >= c->steps)
        fqt_buf_printf(out, "--warmup %lld >= --steps %lld: the learning rate never reaches its peak "
                            "--lr %g\n", (long long)c->warmup, (long long)c->steps, c->lr);
    if (c->qaf_auto && !c->gnr_every)
        fqt_buf_printf(out, "--qaf auto needs the gradient-to-noise ratio, but --gnr-every is 0: QAF will "
                            "never start\n");
    if (c->qaf_auto && (c->qaf_steps || c->qaf_frac > 0))
        fqt_buf_printf(out, "--qaf auto and a fixed QAF length are both set: the fixed length starts QAF "
                            "unless the ratio switches earlier\n");
    if (c->qaf_steps && c->qaf_frac > 0)
        fqt_buf_printf(out, "--qaf-steps and --qaf-frac are both set: --qaf-steps %lld wins\n",
                       (long long)c->qaf_steps);
    if (c->qaf_auto && c->gnr_every && c->gnr_every * c->qaf_auto_checks >= c->steps)
        fqt_buf_printf(out, "--qaf auto: %lld checks every %lld steps do not fit in %lld steps: QAF will "
                            "never start\n", (long long)c->qaf_auto_checks, (long long)c->gnr_every,
                       (long long)c->steps);
    if (c->val_every > c->steps)
        fqt_buf_printf(out, "--val-every %lld > --steps %lld: validation only at the end\n",
                       (long long)c->val_every, (long long)c->steps);
    if (c->ckpt_every > c->steps)
        fqt_buf_printf(out, "--ckpt-every %lld > --steps %lld: a checkpoint only at the end\n",
                       (long long)c->ckpt_every, (long long)c->steps);
    if (c->stop_at && c->stop_at >= c->steps)
        fqt_buf_printf(out, "--stop-at %lld >= --steps %lld: the run ends before it would stop\n",
                       (long long)c->stop_at, (long long)c->steps);
    if (c->min_lr_frac > 1)
        fqt_buf_printf(out, "--min-lr-frac %g > 1: the learning rate rises after warmup\n", c->min_lr_frac);
}
