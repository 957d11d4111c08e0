/* core/checkpoint.c — model weights as safetensors with Hugging Face Llama names, and the
 * config.json that transformers' LlamaConfig reads. Training state lives in train.c, which
 * owns the directory-level atomicity (DIR.new, then rename). Not for: optimizer math. */
#include "fqt/fileio.h"
#include "fqt/json.h"
#include "fqt/safetensors.h"
#include "fqt/tokenizer_export.h"
#include "fqt/train.h"

#include <string.h>
#include <sys/stat.h>

fqt_status fqt_checkpoint_resolve(const char *path, char *dir, size_t n) {
    struct stat sb;
    char cand[4200];
    snprintf(cand, sizeof cand, "%s/config.json", path);
    if (!stat(cand, &sb)) {
        snprintf(dir, n, "%s", path);
        return FQT_OK;
    }
    /* A run directory: its ckpt/, or ckpt.old/ if a save was interrupted mid-swap. */
    const char *subs[] = {"ckpt", "ckpt.old"};
    for (int i = 0; i < 2; i++) {
        snprintf(cand, sizeof cand, "%s/%s/config.json", path, subs[i]);
        if (!stat(cand, &sb)) {
            snprintf(dir, n, "%s/%s", path, subs[i]);
            return FQT_OK;
        }
    }
    fqt_set_error("%s: no checkpoint here (expected %s/config.json or %s/ckpt/config.json)", path,
                  path, path);
    return FQT_ERR_IO;
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
    char dir[4200];
    fqt_model_config cfg;
    fqt_status st;
    memset(m, 0, sizeof *m);
    if ((st = fqt_checkpoint_resolve(path, dir, sizeof dir)) || (st = fqt_checkpoint_read_config(dir, &cfg)) ||
        (st = fqt_model_create(m, &cfg)))
        return st;
    if ((st = fqt_checkpoint_load_model(m, dir))) {
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
