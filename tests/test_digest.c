/* tests/test_digest.c — recorded digests of whole training runs: the bits a change of the
 * backend, the op order or the file layout must not move without saying so.
 *
 * For each of bf16, nvfp4, mxfp4, fp8 and nvfp4-nvidia, a 60-step run of a small explicit
 * model (C=64, L=3, NH=4, NKV=2, F=128, ctx 32; B=4, T=32, 2 micro-batches a step, a
 * gradient-to-noise check and validation every 20 steps) over synthetic shards, then three
 * 64-bit FNV-1a digests: the "loss" and "val_loss" numbers of metrics.jsonl as written,
 * the bytes of ckpt/model.safetensors, and the AdamW moments of ckpt/state.safetensors
 * (its metadata holds the wall time and is not hashed). The recorded values below were
 * made by the CPU backend on 2026-12-01 before the backend interface (issue 7) landed;
 * FQT_DIGEST_PRINT=1 prints the current values in the table's form.
 *
 * The bits depend only on the C code and glibc's libm (expf, logf, sinf, cosf); the build
 * has no fast-math and no FMA contraction, so they do not depend on vector width or thread
 * count. Not for: what the numbers mean (test_train.c, test_model.c). */
#include "check.h"

#include "fqt/fileio.h"
#include "fqt/gemm.h"
#include "fqt/safetensors.h"
#include "fqt/shard.h"
#include "fqt/train.h"

#include <stdlib.h>
#include <unistd.h>

static uint64_t fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) h = (h ^ b[i]) * 0x100000001b3ull;
    return h;
}
#define FNV0 0xcbf29ce484222325ull

/* Digest of the text of every "loss": and "val_loss": value in metrics.jsonl. */
static uint64_t metrics_digest(const char *run_dir, int *n_found) {
    char path[1200];
    snprintf(path, sizeof path, "%s/metrics.jsonl", run_dir);
    void *d;
    size_t n;
    *n_found = 0;
    if (fqt_read_file(path, &d, &n)) return 0;
    uint64_t h = FNV0;
    const char *keys[2] = {"\"loss\":", "\"val_loss\":"};
    for (const char *p = d, *end = (const char *)d + n; p < end;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl) break;
        for (int k = 0; k < 2; k++) {
            const char *s = strstr(p, keys[k]);
            if (!s || s > nl) continue;
            s += strlen(keys[k]);
            size_t len = strcspn(s, ",}");
            h = fnv(h, s, len);
            h = fnv(h, "|", 1);
            (*n_found)++;
        }
        p = nl + 1;
    }
    free(d);
    return h;
}

static uint64_t file_digest(const char *path) {
    void *d;
    size_t n;
    if (fqt_read_file(path, &d, &n)) return 0;
    uint64_t h = fnv(FNV0, d, n);
    free(d);
    return h;
}

static uint64_t moments_digest(const char *path) {
    fqt_st_file *f = NULL;
    if (fqt_st_open(path, &f)) return 0;
    uint64_t h = FNV0;
    const char *names[2] = {"adam.m", "adam.v"};
    for (int i = 0; i < 2; i++) {
        const fqt_st_info *t = fqt_st_find(f, names[i]);
        if (t) h = fnv(h, t->data, t->nbytes);
    }
    fqt_st_close(f);
    return h;
}

static void synth(uint16_t *tok, int64_t n, uint64_t seed) {
    uint64_t s = seed;
    uint16_t t = 0;
    for (int64_t i = 0; i < n; i++) {
        uint64_t r = fqt_splitmix64(&s);
        t = (r >> 8) % 7 == 0 ? (uint16_t)((r >> 16) % 96) : (uint16_t)((7 * t + 5) % 96);
        tok[i] = t;
    }
}

typedef struct {
    const char *recipe;
    uint64_t metrics, model, moments;
} digest_row;

/* Recorded 2026-12-01 (CPU backend, before issue 7). */
static const digest_row recorded[] = {
    {"bf16", 0x90028ac1a34a5b77ull, 0x30a97e7889e28b28ull, 0xc6a247e2bc488909ull},
    {"nvfp4", 0x73fc9328c17a8618ull, 0xc2cd262b6d3350a0ull, 0x04fa6448c96e5b7cull},
    {"mxfp4", 0xd484827fd4ce0bffull, 0xf8c1c43a6c71f4abull, 0xc5a8c5443d310201ull},
    {"fp8", 0x9745367ea421952full, 0x9a62a12e83f5326bull, 0x1289fc5671cd3a38ull},
    {"nvfp4-nvidia", 0xa0328122d4709d03ull, 0xa5c3087756cfa1b7ull, 0xe8717670cdb3a760ull},
};

int main(void) {
    /* The digests were recorded with the reference GEMM kernel; select it explicitly. */
    FQT_ASSERT(fqt_gemm_set_impl(FQT_GEMM_REF) == FQT_OK);
    char base[] = "/tmp/fqt_digest_XXXXXX";
    FQT_ASSERT(mkdtemp(base));
    char path[1200], train_glob[600], val_glob[600];
    uint16_t *tok = malloc(30000 * sizeof *tok);
    FQT_ASSERT(tok);
    synth(tok, 30000, 21);
    snprintf(path, sizeof path, "%s/train_000.bin", base);
    FQT_ASSERT(fqt_shard_write(path, tok, 30000) == FQT_OK);
    synth(tok, 4000, 22);
    snprintf(path, sizeof path, "%s/val_000.bin", base);
    FQT_ASSERT(fqt_shard_write(path, tok, 4000) == FQT_OK);
    free(tok);
    snprintf(train_glob, sizeof train_glob, "%s/train_*.bin", base);
    snprintf(val_glob, sizeof val_glob, "%s/val_*.bin", base);
    const bool print = getenv("FQT_DIGEST_PRINT") != NULL;
    bool all_ok = true;

    for (size_t i = 0; i < sizeof recorded / sizeof recorded[0]; i++) {
        const digest_row *r = &recorded[i];
        fqt_train_config c;
        fqt_train_config_default(&c);
        c.model = (fqt_model_config){96, 64, 3, 4, 2, 128, 32, 10000.0f, 1e-5f};
        snprintf(c.model_size, sizeof c.model_size, "test");
        snprintf(c.recipe, sizeof c.recipe, "%s", r->recipe);
        snprintf(c.train_data, sizeof c.train_data, "%s", train_glob);
        snprintf(c.val_data, sizeof c.val_data, "%s", val_glob);
        c.vocab[0] = 0;
        c.batch = 4;
        c.seq = 32;
        c.grad_accum = 2;
        c.steps = 60;
        c.lr = 3e-3;
        c.warmup = 6;
        c.gnr_every = 20;
        c.diag_every = 0;
        c.val_every = 20;
        c.val_tokens = 1024;
        c.log_every = 1000;
        c.sample_tokens = 0;
        c.quiet = true;
        snprintf(c.run_dir, sizeof c.run_dir, "%s/%s", base, r->recipe);
        fqt_status st = fqt_train(&c, NULL);
        CHECK_MSG(st == FQT_OK, "%s: %s", r->recipe, fqt_last_error());
        int n_found;
        digest_row got = {r->recipe, metrics_digest(c.run_dir, &n_found), 0, 0};
        snprintf(path, sizeof path, "%s/ckpt/model.safetensors", c.run_dir);
        got.model = file_digest(path);
        snprintf(path, sizeof path, "%s/ckpt/state.safetensors", c.run_dir);
        got.moments = moments_digest(path);
        CHECK_MSG(n_found == 60 + 3 + 1, "%s: %d loss values in metrics.jsonl (60 train, 3 val, 1 final)", r->recipe, n_found);
        if (print)
            printf("    {\"%s\", 0x%016llxull, 0x%016llxull, 0x%016llxull},\n", r->recipe,
                   (unsigned long long)got.metrics, (unsigned long long)got.model,
                   (unsigned long long)got.moments);
        CHECK_MSG(got.metrics == r->metrics, "%s: losses digest 0x%016llx, recorded 0x%016llx",
                  r->recipe, (unsigned long long)got.metrics, (unsigned long long)r->metrics);
        CHECK_MSG(got.model == r->model, "%s: model.safetensors digest 0x%016llx, recorded 0x%016llx",
                  r->recipe, (unsigned long long)got.model, (unsigned long long)r->model);
        CHECK_MSG(got.moments == r->moments, "%s: AdamW moments digest 0x%016llx, recorded 0x%016llx",
                  r->recipe, (unsigned long long)got.moments, (unsigned long long)r->moments);
        all_ok = all_ok && got.metrics == r->metrics && got.model == r->model && got.moments == r->moments;
    }
    if (all_ok) (void)fqt_remove_tree(base);
    return check_finish();
}
