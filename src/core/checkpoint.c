/* core/checkpoint.c — model weights as safetensors with Hugging Face Llama names, the
 * config.json that transformers' LlamaConfig reads, and the crash-safe swap of a run's
 * checkpoint directories (ckpt/, ckpt.new/, ckpt.old/). The training state written into a
 * checkpoint lives in train.c. Not for: optimizer math. */
#include "fqt/fileio.h"
#include "fqt/json.h"
#include "fqt/safetensors.h"
#include "fqt/tokenizer_export.h"
#include "fqt/train.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- the swap: ckpt/, ckpt.new/, ckpt.old/ ------------------------------------------------
 *
 * A save writes RUN/ckpt.new completely (every file atomically), then commits:
 *   remove ckpt.old; rename ckpt -> ckpt.old; rename ckpt.new -> ckpt; fsync; remove ckpt.old.
 * A crash can stop this anywhere, and a resume can crash again in its own recovery, so every
 * reader considers all three directories, validates each one (all four files present and
 * parseable, the step readable) and takes the complete one with the highest step (ties:
 * ckpt, then ckpt.new, then ckpt.old). Recovery moves that one to ckpt/ with the same
 * sequence of steps, each of which leaves some complete copy in place: the only complete
 * copy is never removed or overwritten. */

static const char *const slot_name[3] = {"ckpt", "ckpt.new", "ckpt.old"};
enum { SLOT_CKPT, SLOT_NEW, SLOT_OLD };

/* A complete training checkpoint in dir: config.json valid, model.safetensors and
 * state.safetensors well-formed, train.json parseable, a step in the state metadata.
 * On failure the error names the file and the problem. */
static fqt_status ckpt_complete(const char *dir, int64_t *step) {
    char path[4200];
    fqt_model_config cfg;
    fqt_status st = fqt_checkpoint_read_config(dir, &cfg);
    if (st) return st;
    fqt_st_file *f = NULL;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if ((st = fqt_st_open(path, &f))) return st;
    fqt_st_close(f);
    snprintf(path, sizeof path, "%s/train.json", dir);
    void *data;
    size_t n;
    if ((st = fqt_read_file(path, &data, &n))) return st;
    fqt_train_config tc;
    st = fqt_train_config_from_json(&tc, data, n, path);
    free(data);
    if (st) return st;
    snprintf(path, sizeof path, "%s/state.safetensors", dir);
    if ((st = fqt_st_open(path, &f))) return st;
    const char *v = fqt_st_meta(f, "step");
    char *end = NULL;
    long long x = v ? strtoll(v, &end, 10) : -1;
    if (!v || *end || end == v || x < 0) {
        fqt_set_error("%s: training state metadata missing or malformed (no valid \"step\")", path);
        st = FQT_ERR_FORMAT;
    }
    fqt_st_close(f);
    *step = x;
    return st;
}

typedef struct {
    bool present[3], complete[3];
    int64_t step[3];
    fqt_status why_st[3];
    char why[3][1024];
    int best; /* -1: none complete */
} ckpt_slots;

static void slots_scan(const char *run, ckpt_slots *z) {
    memset(z, 0, sizeof *z);
    z->best = -1;
    for (int i = 0; i < 3; i++) {
        char d[4200];
        struct stat sb;
        snprintf(d, sizeof d, "%s/%s", run, slot_name[i]);
        z->present[i] = lstat(d, &sb) == 0;
        if (!z->present[i]) continue;
        if (!S_ISDIR(sb.st_mode)) {
            z->why_st[i] = FQT_ERR_IO;
            snprintf(z->why[i], sizeof z->why[i], "%.990s: not a directory", d);
            continue;
        }
        z->why_st[i] = ckpt_complete(d, &z->step[i]);
        if (z->why_st[i]) {
            snprintf(z->why[i], sizeof z->why[i], "%.1000s", fqt_last_error());
            continue;
        }
        z->complete[i] = true;
        if (z->best < 0 || z->step[i] > z->step[z->best]) z->best = i;
    }
}

/* The error when no slot is complete: the reason of the first present one. */
static fqt_status slots_fail(const char *run, const ckpt_slots *z) {
    for (int i = 0; i < 3; i++)
        if (z->present[i] && z->why_st[i]) {
            fqt_set_error("%s", z->why[i]);
            return z->why_st[i];
        }
    fqt_set_error("%s: no checkpoint here (expected %s/config.json or %s/ckpt/config.json)", run, run, run);
    return FQT_ERR_IO;
}

static fqt_status do_rename(const char *from, const char *to) {
    fqt_fault_point();
    if (rename(from, to)) {
        fqt_set_error("%s: cannot rename to %s: %s", from, to, strerror(errno));
        return FQT_ERR_IO;
    }
    return FQT_OK;
}

/* Move complete RUN/ckpt.new into RUN/ckpt (the commit sequence above). */
static fqt_status promote_new(const char *run) {
    char dir[4200], newd[4200], oldd[4200];
    struct stat sb;
    snprintf(dir, sizeof dir, "%s/ckpt", run);
    snprintf(newd, sizeof newd, "%s/ckpt.new", run);
    snprintf(oldd, sizeof oldd, "%s/ckpt.old", run);
    fqt_status st = fqt_remove_tree(oldd);
    if (st) return st;
    if (!lstat(dir, &sb) && (st = do_rename(dir, oldd))) return st;
    if ((st = do_rename(newd, dir))) return st;
    fqt_fault_point();
    fqt_fsync_dir_of(dir);
    return fqt_remove_tree(oldd);
}

fqt_status fqt_checkpoint_recover(const char *run, char *dir, size_t n) {
    ckpt_slots z;
    slots_scan(run, &z);
    if (z.best < 0) return slots_fail(run, &z);
    char d[3][4200];
    for (int i = 0; i < 3; i++) snprintf(d[i], sizeof d[i], "%s/%s", run, slot_name[i]);
    fqt_status st = FQT_OK;
    if (z.best == SLOT_CKPT) {
        if ((st = fqt_remove_tree(d[SLOT_NEW])) || (st = fqt_remove_tree(d[SLOT_OLD]))) return st;
    } else if (z.best == SLOT_NEW) {
        if ((st = promote_new(run))) return st;
    } else {
        /* ckpt.old is the newest complete copy: ckpt and ckpt.new are older or broken. */
        if ((st = fqt_remove_tree(d[SLOT_NEW])) || (st = fqt_remove_tree(d[SLOT_CKPT])) ||
            (st = do_rename(d[SLOT_OLD], d[SLOT_CKPT])))
            return st;
        fqt_fsync_dir_of(d[SLOT_CKPT]);
    }
    snprintf(dir, n, "%s", d[SLOT_CKPT]);
    return FQT_OK;
}

fqt_status fqt_checkpoint_commit(const char *run) {
    char newd[4200];
    int64_t step;
    snprintf(newd, sizeof newd, "%s/ckpt.new", run);
    fqt_status st = ckpt_complete(newd, &step);
    if (st) return st;
    return promote_new(run);
}

fqt_status fqt_checkpoint_begin(const char *run, char *newd, size_t n) {
    /* Settle first, so that removing a stale ckpt.new can never remove the newest complete
     * copy (a fresh directory has nothing to settle). */
    ckpt_slots z;
    slots_scan(run, &z);
    fqt_status st;
    char dir[4200];
    if (z.best >= 0 && z.best != SLOT_CKPT && (st = fqt_checkpoint_recover(run, dir, sizeof dir))) return st;
    snprintf(newd, n, "%s/ckpt.new", run);
    return fqt_remove_tree(newd);
}

fqt_status fqt_checkpoint_resolve(const char *path, char *dir, size_t n) {
    struct stat sb;
    char cand[4200];
    snprintf(cand, sizeof cand, "%s/config.json", path);
    if (!stat(cand, &sb)) {
        snprintf(dir, n, "%s", path);
        return FQT_OK;
    }
    /* A run directory: the newest complete of ckpt/, ckpt.new/, ckpt.old/ (read-only). */
    ckpt_slots z;
    slots_scan(path, &z);
    if (z.best < 0) return slots_fail(path, &z);
    snprintf(dir, n, "%s/%s", path, slot_name[z.best]);
    return FQT_OK;
}

/* eot < 0: no tokenizer known, so no bos/eos ids (transformers then assumes 1 and 2). */
static char *config_json(const fqt_model_config *c, int64_t eot) {
    fqt_buf b = {0};
    fqt_buf_printf(&b,
                   "{\n  \"architectures\": [\"LlamaForCausalLM\"],\n  \"model_type\": \"llama\",\n"
                   "  \"vocab_size\": %lld,\n  \"hidden_size\": %lld,\n  \"intermediate_size\": %lld,\n"
                   "  \"num_hidden_layers\": %lld,\n  \"num_attention_heads\": %lld,\n"
                   "  \"num_key_value_heads\": %lld,\n  \"head_dim\": %lld,\n"
                   "  \"max_position_embeddings\": %lld,\n  \"hidden_act\": \"silu\",\n"
                   "  \"rms_norm_eps\": ",
                   (long long)c->vocab, (long long)c->dim, (long long)c->ffn,
                   (long long)c->n_layers, (long long)c->n_heads, (long long)c->n_kv_heads,
                   (long long)(c->dim / c->n_heads), (long long)c->ctx);
    fqt_buf_json_num(&b, (double)c->norm_eps);
    fqt_buf_printf(&b, ",\n  \"rope_theta\": ");
    fqt_buf_json_num(&b, (double)c->rope_theta);
    fqt_buf_printf(&b, ",\n  \"tie_word_embeddings\": false,\n  \"attention_bias\": false,\n"
                       "  \"mlp_bias\": false,\n  \"torch_dtype\": \"float32\",\n"
                       "  \"initializer_range\": 0.02");
    if (eot >= 0) fqt_buf_printf(&b, ",\n  \"bos_token_id\": %lld,\n  \"eos_token_id\": %lld", (long long)eot, (long long)eot);
    fqt_buf_printf(&b, "\n}\n");
    return b.s;
}

fqt_status fqt_checkpoint_save_model(const fqt_model *m, const char *dir) {
    fqt_status st = fqt_mkdir_p(dir);
    if (st) return st;
    fqt_st_tensor *t = fqt_xcalloc((size_t)m->n_tensors, sizeof *t);
    float *w = fqt_backend_host_get(m->be, m->params, m->n_params, true);
    for (int i = 0; i < m->n_tensors; i++) {
        const fqt_param_info *p = &m->tensors[i];
        t[i].name = p->name;
        t[i].dtype = FQT_ST_F32;
        t[i].ndim = p->ndim;
        t[i].shape[0] = p->shape[0];
        t[i].shape[1] = p->shape[1];
        t[i].data = w + p->offset;
    }
    const char *meta[] = {"format", "pt", "producer", "fqt", NULL};
    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    st = fqt_st_write(path, t, m->n_tensors, meta);
    fqt_backend_host_put(m->be, w, m->params, m->n_params, false);
    free(t);
    if (st) return st;
    char *cj = config_json(&m->cfg, -1);
    snprintf(path, sizeof path, "%s/config.json", dir);
    st = fqt_write_file_atomic(path, cj, strlen(cj));
    free(cj);
    return st;
}

fqt_status fqt_checkpoint_save_tokenizer(const fqt_model *m, const char *dir, const char *vocab) {
    if (!vocab || !vocab[0]) return FQT_OK;
    fqt_bpe *bpe = NULL;
    fqt_status st = fqt_bpe_load(vocab, &bpe);
    if (st) return st;
    if ((st = fqt_tokenizer_export(bpe, dir, m->cfg.ctx))) goto out;
    char *cj = config_json(&m->cfg, fqt_bpe_eot(bpe));
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    st = fqt_write_file_atomic(path, cj, strlen(cj));
    free(cj);
out:
    fqt_bpe_free(bpe);
    return st;
}

static fqt_status need_int(const fqt_json *j, const char *key, const char *path, int64_t *out) {
    if (!fqt_json_int64(fqt_json_get(j, key), out)) {
        fqt_set_error("%s: missing or non-integer \"%s\"", path, key);
        return FQT_ERR_FORMAT;
    }
    return FQT_OK;
}

fqt_status fqt_checkpoint_read_config(const char *dir, fqt_model_config *c) {
    char path[4200];
    snprintf(path, sizeof path, "%s/config.json", dir);
    void *data;
    size_t n;
    fqt_status st = fqt_read_file(path, &data, &n);
    if (st) return st;
    fqt_json *j = NULL;
    st = fqt_json_parse(data, n, &j);
    free(data);
    if (st) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", fqt_last_error());
        fqt_set_error("%s: %s", path, msg);
        return st;
    }
    memset(c, 0, sizeof *c);
    if ((st = need_int(j, "vocab_size", path, &c->vocab)) ||
        (st = need_int(j, "hidden_size", path, &c->dim)) ||
        (st = need_int(j, "intermediate_size", path, &c->ffn)) ||
        (st = need_int(j, "num_hidden_layers", path, &c->n_layers)) ||
        (st = need_int(j, "num_attention_heads", path, &c->n_heads)) ||
        (st = need_int(j, "max_position_embeddings", path, &c->ctx)))
        goto out;
    if (!fqt_json_int64(fqt_json_get(j, "num_key_value_heads"), &c->n_kv_heads))
        c->n_kv_heads = c->n_heads;
    c->rope_theta = (float)fqt_json_get_num(j, "rope_theta", 10000.0);
    c->norm_eps = (float)fqt_json_get_num(j, "rms_norm_eps", 1e-5);
    int64_t hd;
    if (fqt_json_int64(fqt_json_get(j, "head_dim"), &hd) && c->n_heads > 0 &&
        hd * c->n_heads != c->dim) {
        fqt_set_error("%s: head_dim %lld * heads %lld != hidden_size %lld (unsupported)", path,
                      (long long)hd, (long long)c->n_heads, (long long)c->dim);
        st = FQT_ERR_UNSUPPORTED;
        goto out;
    }
    if ((st = fqt_model_config_validate(c))) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", fqt_last_error());
        fqt_set_error("%s: %s", path, msg);
    }
out:
    fqt_json_free(j);
    return st;
}

fqt_status fqt_checkpoint_load_model(fqt_model *m, const char *dir) {
    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    fqt_st_file *f = NULL;
    fqt_status st = fqt_st_open(path, &f);
    if (st) return st;
    float *w = fqt_backend_host_get(m->be, m->params, m->n_params, false);
    for (int i = 0; i < m->n_tensors && !st; i++) {
        const fqt_param_info *p = &m->tensors[i];
        st = fqt_st_read_f32(f, p->name, p->ndim, p->shape, w + p->offset);
    }
    fqt_backend_host_put(m->be, w, m->params, m->n_params, !st);
    if (!st && fqt_st_count(f) != m->n_tensors) {
        fqt_set_error("%s: holds %lld tensors, the model has %d (a checkpoint of another model?)",
                      path, (long long)fqt_st_count(f), m->n_tensors);
        st = FQT_ERR_MISMATCH;
    }
    fqt_st_close(f);
    return st;
}

fqt_status fqt_checkpoint_open(const char *path, fqt_model *m, fqt_train_config *tc) {
    return fqt_checkpoint_open_on(path, m, tc, &fqt_backend_cpu);
}

fqt_status fqt_checkpoint_open_on(const char *path, fqt_model *m, fqt_train_config *tc,
                                  const fqt_backend *be) {
    char dir[4200];
    fqt_model_config cfg;
    fqt_status st;
    memset(m, 0, sizeof *m);
    if ((st = fqt_checkpoint_resolve(path, dir, sizeof dir)) || (st = fqt_checkpoint_read_config(dir, &cfg)) ||
        (st = fqt_model_create_on(m, &cfg, be)))
        return st;
    if ((st = fqt_checkpoint_load_model(m, dir))) {
        fqt_model_free(m);
        return st;
    }
    /* Inference on NaN/Inf weights gives no answer worth printing: refuse the checkpoint. */
    const float *w = fqt_backend_host_get(m->be, m->params, m->n_params, true);
    for (int i = 0; i < m->n_tensors && !st; i++) {
        const fqt_param_info *p = &m->tensors[i];
        for (int64_t j = 0; j < p->numel; j++)
            if (!isfinite(w[p->offset + j])) {
                fqt_set_error("%s/model.safetensors: tensor %s holds %g at element %lld (a diverged or "
                              "damaged checkpoint)", dir, p->name, (double)w[p->offset + j], (long long)j);
                st = FQT_ERR_NONFINITE;
                break;
            }
    }
    fqt_backend_host_put(m->be, (float *)w, m->params, m->n_params, false);
    if (st) {
        fqt_model_free(m);
        return st;
    }
    char tpath[4300];
    snprintf(tpath, sizeof tpath, "%s/train.json", dir);
    void *data;
    size_t n;
    if (!fqt_read_file(tpath, &data, &n)) {
        st = fqt_train_config_from_json(tc, data, n, tpath);
        free(data);
        if (st) {
            fqt_model_free(m);
            return st;
        }
    } else {
        fqt_train_config_default(tc);
        snprintf(tc->recipe, sizeof tc->recipe, "bf16");
        tc->model = cfg;
    }
    return FQT_OK;
}
