/* tests/test_train.c — end-to-end tests of the run loop (fqt/train.h): what a run writes
 * (run.json, metrics.jsonl, checkpoints), bit-identical resume (nvfp4 with stochastic
 * rounding, gradient accumulation, QAF across the resume point), checkpoint round trips,
 * clear errors without damage for bad data, configurations and checkpoints, non-finite
 * steps, the atomic checkpoint swap, the `fqt train` command line and the lr schedules.
 *
 * Everything runs on a tiny explicit model (C=32, L=2, NH=2, F=64, ctx 32) over synthetic
 * token shards written into a mkdtemp folder, which is removed when every check passed.
 * Not for: model math (test_model.c) or number formats (test_formats_*.c). */
#include "check.h"

#include "fqt/fileio.h"
#include "fqt/json.h"
#include "fqt/safetensors.h"
#include "fqt/shard.h"
#include "fqt/train.h"

#include <math.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifdef FQT_SANITIZE
#define SAN_SHRINK 1 /* shorter runs: ASan/UBSan builds are ~10-20x slower */
#else
#define SAN_SHRINK 0
#endif

#define TRAIN_TOKENS 20000
#define VAL_TOKENS 4000
#define DATA_VOCAB 64 /* tokens 0..62 from the sequence, 63 sprinkled rarely */
#define RARE_TOKEN 63

static char base_dir[256];
static char train_glob[512], val_glob[512];

/* ---- helpers ------------------------------------------------------------------------- */

static char *pathf(char *buf, size_t n, const char *fmt, const char *a, const char *b) {
    snprintf(buf, n, fmt, a, b);
    return buf;
}

static bool contains(const char *hay, const char *needle) { return hay && strstr(hay, needle); }

static void rm_rf(const char *path) {
    char cmd[1300];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", path);
}

static void cp_r(const char *from, const char *to) {
    char cmd[2500];
    snprintf(cmd, sizeof cmd, "cp -r '%s' '%s'", from, to);
    FQT_ASSERT(system(cmd) == 0);
}

static bool is_dir(const char *path) {
    struct stat sb;
    return !stat(path, &sb) && S_ISDIR(sb.st_mode);
}

static bool exists(const char *path) { return access(path, F_OK) == 0; }

/* Whole file or NULL; *n its size. */
static char *slurp(const char *path, size_t *n) {
    void *d;
    size_t len;
    if (fqt_read_file(path, &d, &len)) return NULL;
    if (n) *n = len;
    return d;
}

static void spit(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    FQT_ASSERT(f);
    FQT_ASSERT(fwrite(data, 1, n, f) == n);
    FQT_ASSERT(fclose(f) == 0);
}

/* Every tensor of safetensors file a has the same name, dtype, shape and bytes in b. */
static bool same_tensors(const char *a, const char *b, char *why, size_t wn) {
    fqt_st_file *fa = NULL, *fb = NULL;
    bool ok = false;
    snprintf(why, wn, "cannot open: %s", fqt_last_error());
    if (fqt_st_open(a, &fa) || fqt_st_open(b, &fb)) goto out;
    if (fqt_st_count(fa) != fqt_st_count(fb)) {
        snprintf(why, wn, "%lld vs %lld tensors", (long long)fqt_st_count(fa), (long long)fqt_st_count(fb));
        goto out;
    }
    for (int64_t i = 0; i < fqt_st_count(fa); i++) {
        const fqt_st_info *x = fqt_st_at(fa, i), *y = fqt_st_find(fb, x->name);
        if (!y || x->dtype != y->dtype || x->ndim != y->ndim || x->nbytes != y->nbytes ||
            memcmp(x->shape, y->shape, sizeof x->shape)) {
            snprintf(why, wn, "tensor %s: missing or another dtype/shape", x->name);
            goto out;
        }
        if (memcmp(x->data, y->data, x->nbytes)) {
            const unsigned char *p = x->data, *q = y->data;
            size_t k = 0;
            while (p[k] == q[k]) k++;
            snprintf(why, wn, "tensor %s differs from byte %zu of %zu", x->name, k, x->nbytes);
            goto out;
        }
    }
    ok = true;
out:
    fqt_st_close(fa);
    fqt_st_close(fb);
    return ok;
}

/* metrics.jsonl as parsed lines. */
typedef struct {
    fqt_json **line;
    int n;
    bool all_parsed;
} metrics;

static metrics metrics_read(const char *run_dir) {
    metrics m = {NULL, 0, true};
    char path[1200];
    size_t n;
    char *d = slurp(pathf(path, sizeof path, "%s/metrics.jsonl%s", run_dir, ""), &n);
    if (!d) {
        m.all_parsed = false;
        return m;
    }
    for (char *p = d; p < d + n;) {
        char *nl = memchr(p, '\n', (size_t)(d + n - p));
        if (!nl) {
            m.all_parsed = false; /* a torn last line */
            break;
        }
        fqt_json *j = NULL;
        if (fqt_json_parse(p, (size_t)(nl - p), &j) || j->type != FQT_JSON_OBJ) {
            m.all_parsed = false;
            fqt_json_free(j);
        } else {
            m.line = realloc(m.line, (size_t)(m.n + 1) * sizeof *m.line);
            FQT_ASSERT(m.line);
            m.line[m.n++] = j;
        }
        p = nl + 1;
    }
    free(d);
    return m;
}

static void metrics_free(metrics *m) {
    for (int i = 0; i < m->n; i++) fqt_json_free(m->line[i]);
    free(m->line);
    m->line = NULL;
    m->n = 0;
}

static const char *kind_of(const fqt_json *j) { return fqt_json_get_str(j, "kind", ""); }

static int64_t step_of(const fqt_json *j) {
    int64_t s = -1;
    if (!fqt_json_int64(fqt_json_get(j, "step"), &s)) return -1;
    return s;
}

static int count_kind(const metrics *m, const char *kind) {
    int c = 0;
    for (int i = 0; i < m->n; i++) c += !strcmp(kind_of(m->line[i]), kind);
    return c;
}

/* A training state metadata value of DIR/state.safetensors as an integer (-1 if absent). */
static int64_t state_meta(const char *dir, const char *key) {
    char path[1300];
    fqt_st_file *f = NULL;
    if (fqt_st_open(pathf(path, sizeof path, "%s/%s", dir, "state.safetensors"), &f)) return -1;
    const char *v = fqt_st_meta(f, key);
    int64_t x = v ? strtoll(v, NULL, 10) : -1;
    fqt_st_close(f);
    return x;
}

/* ---- data and configurations ----------------------------------------------------------- */

static uint64_t lcg(uint64_t *s) {
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return *s >> 33;
}

/* A learnable stream: mostly a fixed successor map over 0..62 (t -> 5t+3 mod 63), 10% random
 * tokens, and the rare token 63 about once in `rare_every` positions (0 = never). */
static void synth(uint16_t *tok, int64_t n, uint64_t seed, int rare_every) {
    uint64_t s = seed;
    uint16_t t = 0;
    for (int64_t i = 0; i < n; i++) {
        uint64_t r = lcg(&s);
        if (rare_every && r % (uint64_t)rare_every == 0) {
            tok[i] = RARE_TOKEN;
            continue;
        }
        t = (r >> 8) % 10 == 0 ? (uint16_t)((r >> 12) % 63) : (uint16_t)((5 * t + 3) % 63);
        tok[i] = t;
    }
}

static void write_shard(const char *name, int64_t n, uint64_t seed, int rare_every) {
    uint16_t *tok = malloc((size_t)n * sizeof *tok);
    FQT_ASSERT(tok);
    synth(tok, n, seed, rare_every);
    char path[600];
    FQT_ASSERT(fqt_shard_write(pathf(path, sizeof path, "%s/%s", base_dir, name), tok, n) == FQT_OK);
    free(tok);
}

static void make_data(void) {
    char d[600];
    FQT_ASSERT(fqt_mkdir_p(pathf(d, sizeof d, "%s/%s", base_dir, "data")) == FQT_OK);
    /* Two train shards (the glob concatenates them), one val shard. */
    write_shard("data/train_000.bin", TRAIN_TOKENS / 2, 11, 400);
    write_shard("data/train_001.bin", TRAIN_TOKENS / 2, 12, 400);
    write_shard("data/val_000.bin", VAL_TOKENS, 13, 400);
    write_shard("data/valclean_000.bin", VAL_TOKENS, 13, 0); /* no rare token: (c), (d) below */
    pathf(train_glob, sizeof train_glob, "%s/%s", base_dir, "data/train_*.bin");
    pathf(val_glob, sizeof val_glob, "%s/%s", base_dir, "data/val_*.bin");
}

/* The tiny model and a short run into base_dir/<run>. */
static void tiny_config(fqt_train_config *c, const char *run) {
    fqt_train_config_default(c);
    c->model = (fqt_model_config){0, 32, 2, 2, 2, 64, 32, 10000.0f, 1e-5f};
    snprintf(c->model_size, sizeof c->model_size, "test");
    snprintf(c->recipe, sizeof c->recipe, "nvfp4");
    snprintf(c->train_data, sizeof c->train_data, "%s", train_glob);
    snprintf(c->val_data, sizeof c->val_data, "%s", val_glob);
    c->vocab[0] = 0;
    c->batch = 4;
    c->seq = 16;
    c->steps = 12;
    c->lr = 1e-2;
    c->warmup = 2;
    c->gnr_every = 0;
    c->diag_every = 0;
    c->val_every = 0;
    c->val_tokens = 512;
    c->ckpt_every = 0;
    c->log_every = 1000;
    c->sample_tokens = 0;
    c->quiet = true;
    snprintf(c->run_dir, sizeof c->run_dir, "%s/%s", base_dir, run);
}

/* base_dir/run/rel, or base_dir/run when rel is "". */
static char *run_path(char *buf, size_t n, const char *run, const char *rel) {
    snprintf(buf, n, "%s/%s%s%s", base_dir, run, rel[0] ? "/" : "", rel);
    return buf;
}

/* What a resume passes: steps 0 keeps the stored length. */
static void resume_config(fqt_train_config *r) {
    fqt_train_config_default(r);
    r->steps = 0;
    r->quiet = true;
}

/* ---- 1. what a run writes ----------------------------------------------------------------- */

static bool has_num(const fqt_json *j, const char *key) {
    const fqt_json *e = fqt_json_get(j, key);
    return e && e->type == FQT_JSON_NUM && isfinite(e->num);
}

static void test_run_outputs(void) {
    fqt_train_config c;
    tiny_config(&c, "outputs");
    const int64_t steps = SAN_SHRINK ? 24 : 60;
    c.steps = steps;
    c.lr = 2e-2;
    c.gnr_every = 10;
    c.diag_every = 20;
    c.val_every = 20;
    c.qaf_steps = 10;
    fqt_status st = fqt_train(&c, NULL);
    CHECK_MSG(st == FQT_OK, "%s", fqt_last_error());
    if (st) return;
    CHECK_MSG(c.model.vocab == DATA_VOCAB, "vocab from the data: %lld", (long long)c.model.vocab);

    char p[1200];
    /* run.json: the configuration, parseable, with the resolved model. */
    size_t n;
    char *rj = slurp(run_path(p, sizeof p, "outputs", "run.json"), &n);
    fqt_json *j = NULL;
    CHECK(rj && fqt_json_parse(rj, n, &j) == FQT_OK);
    if (j) {
        CHECK(!strcmp(fqt_json_get_str(j, "recipe", ""), "nvfp4"));
        CHECK(fqt_json_get_num(j, "steps", 0) == (double)steps);
        CHECK(fqt_json_get_num(fqt_json_get(j, "model"), "dim", 0) == 32);
        CHECK(fqt_json_get_num(fqt_json_get(j, "model"), "vocab", 0) == DATA_VOCAB);
        CHECK(fqt_json_get_num(j, "tokens_per_step", 0) == 64);
    }
    fqt_json_free(j);
    free(rj);

    const char *ck[] = {"ckpt/model.safetensors", "ckpt/config.json", "ckpt/train.json",
                        "ckpt/state.safetensors"};
    for (int i = 0; i < 4; i++)
        CHECK_MSG(fqt_file_exists(run_path(p, sizeof p, "outputs", ck[i]), NULL), "missing %s", ck[i]);
    CHECK(!exists(run_path(p, sizeof p, "outputs", "ckpt.new")));
    CHECK(!exists(run_path(p, sizeof p, "outputs", "ckpt.old")));
    CHECK(state_meta(run_path(p, sizeof p, "outputs", "ckpt"), "step") == steps);
    CHECK(state_meta(run_path(p, sizeof p, "outputs", "ckpt"), "tokens") == steps * 64);
    CHECK(state_meta(run_path(p, sizeof p, "outputs", "ckpt"), "qaf_start") == steps - 10);

    metrics m = metrics_read(run_path(p, sizeof p, "outputs", ""));
    CHECK(m.all_parsed);
    int64_t next_train = 1;
    bool train_ok = true, val_ok = true, gnr_ok = true, quant_ok = true, phase_ok = true;
    int qaf_events = 0, finals = 0, gnr_all = 0;
    double first_loss = NAN, last_loss = NAN, first_val = NAN, last_val = NAN;
    for (int i = 0; i < m.n; i++) {
        const fqt_json *l = m.line[i];
        const char *k = kind_of(l);
        int64_t s = step_of(l);
        if (!strcmp(k, "train")) {
            train_ok &= s == next_train++;
            train_ok &= has_num(l, "tokens") && fqt_json_get_num(l, "tokens", 0) == (double)(s * 64);
            train_ok &= has_num(l, "loss") && has_num(l, "lr") && has_num(l, "grad_norm") &&
                        has_num(l, "tok_per_s");
            const char *ph = fqt_json_get_str(l, "phase", "");
            phase_ok &= !strcmp(ph, s > steps - 10 ? "qaf" : "fqt");
            if (s == 1) first_loss = fqt_json_get_num(l, "loss", NAN);
            last_loss = fqt_json_get_num(l, "loss", NAN);
        } else if (!strcmp(k, "val")) {
            val_ok &= (s % 20 == 0 || s == steps) && has_num(l, "val_loss") && has_num(l, "val_ppl") && has_num(l, "tokens");
            val_ok &= fabs(exp(fqt_json_get_num(l, "val_loss", 0)) - fqt_json_get_num(l, "val_ppl", 0)) <
                      1e-6 * fqt_json_get_num(l, "val_ppl", 0);
            if (isnan(first_val)) first_val = fqt_json_get_num(l, "val_loss", NAN);
            last_val = fqt_json_get_num(l, "val_loss", NAN);
        } else if (!strcmp(k, "final")) {
            finals++;
            val_ok &= s == steps && has_num(l, "val_loss") && has_num(l, "val_ppl") &&
                      has_num(l, "wall_s") && has_num(l, "tok_per_s") && i == m.n - 1;
            val_ok &= fqt_json_get_num(l, "val_loss", 0) == last_val;
        } else if (!strcmp(k, "gnr")) {
            const char *layer = fqt_json_get_str(l, "layer", NULL);
            gnr_ok &= s % 10 == 0 && layer && fqt_json_get(l, "r") != NULL;
            gnr_all += layer && !strcmp(layer, "all");
        } else if (!strcmp(k, "quant")) {
            const fqt_json *h = fqt_json_get(l, "hist");
            quant_ok &= s % 20 == 0 && fqt_json_get_str(l, "layer", NULL) &&
                        fqt_json_get_str(l, "gemm", NULL) && fqt_json_get_str(l, "operand", NULL) &&
                        fqt_json_get(l, "snr_db") && has_num(l, "saturated") && has_num(l, "flushed") &&
                        has_num(l, "nonfinite") && h && h->type == FQT_JSON_ARR && h->n == 16;
        } else if (!strcmp(k, "event")) {
            if (contains(fqt_json_get_str(l, "msg", ""), "QAF")) {
                qaf_events++;
                CHECK_MSG(s == steps - 10, "QAF event at step %lld", (long long)s);
            }
        } else {
            CHECK_MSG(0, "unknown kind '%s'", k);
        }
    }
    CHECK_MSG(next_train == steps + 1, "train lines up to %lld", (long long)next_train - 1);
    CHECK(train_ok);
    CHECK(phase_ok);
    CHECK(val_ok);
    CHECK_MSG(count_kind(&m, "val") == (int)(steps / 20) + (steps % 20 != 0), "%d val lines", count_kind(&m, "val"));
    CHECK(finals == 1);
    CHECK(gnr_ok);
    /* one "all" line per check, plus one per linear (L*7 + lm_head) */
    CHECK_MSG(gnr_all == (int)(steps / 10), "%d gnr checks", gnr_all);
    CHECK(count_kind(&m, "gnr") == gnr_all * (2 * 7 + 1 + 1));
    CHECK(quant_ok);
    CHECK(count_kind(&m, "quant") > 0);
    CHECK(qaf_events == 1);
    /* Learnable data: the loss falls well below log(V) = 4.16. */
    CHECK_MSG(first_loss > 3.8 && last_loss < first_loss - 0.8, "train loss %.3f -> %.3f", first_loss, last_loss);
    CHECK_MSG(last_val < first_loss - 0.8 && last_val <= first_val, "val loss %.3f -> %.3f (first train loss %.3f)",
              first_val, last_val, first_loss);
    metrics_free(&m);

    /* A fresh run into the same directory is refused (issues 13/14: a finished run is not
     * silently replaced) and changes nothing; with --overwrite it starts metrics.jsonl over. */
    tiny_config(&c, "outputs");
    c.steps = 3;
    fqt_status st2 = fqt_train(&c, NULL);
    CHECK_MSG(st2 == FQT_ERR_ARG && contains(fqt_last_error(), "already holds a run") &&
                  contains(fqt_last_error(), "--overwrite"),
              "fresh run over a run: %d %s", st2, fqt_last_error());
    m = metrics_read(run_path(p, sizeof p, "outputs", ""));
    CHECK_MSG(count_kind(&m, "train") == (int)steps, "refused run changed metrics: %d train lines",
              count_kind(&m, "train"));
    metrics_free(&m);
    c.overwrite = true;
    CHECK(fqt_train(&c, NULL) == FQT_OK);
    m = metrics_read(run_path(p, sizeof p, "outputs", ""));
    CHECK_MSG(count_kind(&m, "train") == 3, "%d train lines", count_kind(&m, "train"));
    metrics_free(&m);
}

/* ---- 2. bit-identical resume ------------------------------------------------------------ */

typedef struct {
    const char *name;
    const char *recipe;
    int64_t steps, stop, grad_accum, qaf_steps, gnr_every, diag_every, ckpt_every;
    fqt_schedule schedule;
    bool qaf_auto;
    bool torn_tail; /* append metrics lines past the checkpoint, as a killed run leaves */
} resume_case;

static void apply_case(fqt_train_config *c, const resume_case *rc) {
    snprintf(c->recipe, sizeof c->recipe, "%s", rc->recipe);
    c->steps = rc->steps;
    c->grad_accum = rc->grad_accum;
    c->qaf_steps = rc->qaf_steps;
    c->gnr_every = rc->gnr_every;
    c->diag_every = rc->diag_every;
    c->ckpt_every = rc->ckpt_every;
    c->schedule = rc->schedule;
    c->qaf_auto = rc->qaf_auto;
    c->qaf_auto_checks = 1;
    c->val_every = 4;
}

/* The train-line losses (as their JSON text) by step, 1..steps; NULL where absent. */
static void losses_by_step(const metrics *m, int64_t steps, const char **out, int *dups) {
    for (int64_t s = 0; s <= steps; s++) out[s] = NULL;
    *dups = 0;
    for (int i = 0; i < m->n; i++) {
        if (strcmp(kind_of(m->line[i]), "train")) continue;
        int64_t s = step_of(m->line[i]);
        const fqt_json *l = fqt_json_get(m->line[i], "loss");
        if (s < 1 || s > steps || !l) continue;
        if (out[s]) (*dups)++;
        out[s] = l->str;
    }
}

static void test_resume_case(const resume_case *rc) {
    char ra[64], rb[64], pa[1200], pb[1200], why[256];
    snprintf(ra, sizeof ra, "resume_%s_A", rc->name);
    snprintf(rb, sizeof rb, "resume_%s_B", rc->name);
    fqt_train_config a, b;
    tiny_config(&a, ra);
    apply_case(&a, rc);
    fqt_status st = fqt_train(&a, NULL);
    CHECK_MSG(st == FQT_OK, "%s A: %s", rc->name, fqt_last_error());

    tiny_config(&b, rb);
    apply_case(&b, rc);
    b.stop_at = rc->stop;
    st = fqt_train(&b, NULL);
    CHECK_MSG(st == FQT_OK, "%s B: %s", rc->name, fqt_last_error());
    CHECK_MSG(state_meta(run_path(pb, sizeof pb, rb, "ckpt"), "step") == rc->stop, "%s: stopped at %lld",
              rc->name, (long long)state_meta(pb, "step"));
    metrics mb = metrics_read(run_path(pb, sizeof pb, rb, ""));
    CHECK_MSG(count_kind(&mb, "train") == rc->stop && count_kind(&mb, "final") == 0, "%s: %d train lines",
              rc->name, count_kind(&mb, "train"));
    metrics_free(&mb);
    if (rc->torn_tail) {
        /* A run killed after its checkpoint: lines past the checkpoint, the last one torn. */
        FILE *f = fopen(run_path(pb, sizeof pb, rb, "metrics.jsonl"), "a");
        FQT_ASSERT(f);
        fprintf(f, "{\"kind\":\"train\",\"step\":%lld,\"tokens\":1,\"loss\":9,\"lr\":0,\"grad_norm\":0,"
                   "\"tok_per_s\":0,\"phase\":\"fqt\"}\n{\"kind\":\"val\",\"step\":%lld,\"tok",
                (long long)rc->stop + 1, (long long)rc->stop + 2);
        fclose(f);
    }

    /* Resume with a fresh config: the stored one wins, steps and stop_at come from here. */
    fqt_train_config r;
    resume_config(&r);
    r.steps = rc->steps;
    st = fqt_train(&r, run_path(pb, sizeof pb, rb, ""));
    CHECK_MSG(st == FQT_OK, "%s resume: %s", rc->name, fqt_last_error());
    CHECK(!strcmp(r.recipe, rc->recipe) && r.grad_accum == rc->grad_accum);

    CHECK_MSG(same_tensors(run_path(pa, sizeof pa, ra, "ckpt/model.safetensors"),
                           run_path(pb, sizeof pb, rb, "ckpt/model.safetensors"), why, sizeof why),
              "%s: model after resume: %s", rc->name, why);
    CHECK_MSG(same_tensors(run_path(pa, sizeof pa, ra, "ckpt/state.safetensors"),
                           run_path(pb, sizeof pb, rb, "ckpt/state.safetensors"), why, sizeof why),
              "%s: optimizer state after resume: %s", rc->name, why);
    const char *keys[] = {"step", "data_rng", "qaf_start", "tokens", "gnr_low"};
    for (int i = 0; i < 5; i++) {
        int64_t va = state_meta(run_path(pa, sizeof pa, ra, "ckpt"), keys[i]);
        int64_t vb = state_meta(run_path(pb, sizeof pb, rb, "ckpt"), keys[i]);
        CHECK_MSG(va == vb, "%s: state %s %lld vs %lld", rc->name, keys[i], (long long)va, (long long)vb);
    }

    /* metrics.jsonl of B: one history, the same losses as A, no step twice. */
    metrics ma = metrics_read(run_path(pa, sizeof pa, ra, ""));
    mb = metrics_read(run_path(pb, sizeof pb, rb, ""));
    CHECK(ma.all_parsed && mb.all_parsed);
    const char *la[64], *lb[64];
    int da, db;
    FQT_ASSERT(rc->steps < 64);
    losses_by_step(&ma, rc->steps, la, &da);
    losses_by_step(&mb, rc->steps, lb, &db);
    CHECK_MSG(da == 0 && db == 0, "%s: duplicated train steps (%d, %d)", rc->name, da, db);
    bool same = true;
    for (int64_t s = 1; s <= rc->steps; s++)
        same &= la[s] && lb[s] && !strcmp(la[s], lb[s]);
    CHECK_MSG(same, "%s: train losses differ between the one-go and the resumed run", rc->name);
    CHECK_MSG(count_kind(&ma, "train") == count_kind(&mb, "train"), "%s: %d vs %d train lines", rc->name,
              count_kind(&ma, "train"), count_kind(&mb, "train"));
    CHECK_MSG(count_kind(&ma, "val") == count_kind(&mb, "val") && count_kind(&mb, "final") == 1,
              "%s: val lines %d vs %d", rc->name, count_kind(&ma, "val"), count_kind(&mb, "val"));
    CHECK_MSG(count_kind(&ma, "event") == count_kind(&mb, "event"), "%s: events %d vs %d", rc->name,
              count_kind(&ma, "event"), count_kind(&mb, "event"));
    CHECK_MSG(count_kind(&ma, "gnr") == count_kind(&mb, "gnr"), "%s: gnr lines %d vs %d", rc->name,
              count_kind(&ma, "gnr"), count_kind(&mb, "gnr"));
    metrics_free(&ma);
    metrics_free(&mb);
}

static void test_resume(void) {
    static const resume_case cases[] = {
        {"nvfp4", "nvfp4", 12, 5, 1, 0, 0, 0, 0, FQT_SCHED_COSINE, false, false},
        {"accum2", "nvfp4", 10, 4, 2, 0, 3, 4, 0, FQT_SCHED_COSINE, false, true},
        /* QAF from step 6 re-warms over steps 6-8 from the lr it began at: resuming at 7
         * needs that lr from the checkpoint */
        {"qaf_before", "nvfp4", 36, 7, 1, 30, 0, 0, 0, FQT_SCHED_COSINE, false, false},
        {"qaf_at", "nvfp4", 12, 6, 2, 6, 0, 0, 0, FQT_SCHED_COSINE, false, false},
        {"qaf_auto", "nvfp4", 12, 5, 1, 0, 1, 0, 0, FQT_SCHED_COSINE, true, false},
        {"wsd_mxfp4", "mxfp4", 12, 7, 1, 0, 0, 0, 3, FQT_SCHED_WSD, false, true},
    };
    /* Under sanitizers: plain nvfp4, accumulation with QAF starting at the resume point,
     * and the automatic QAF switch. */
    static const int san[] = {0, 3, 4};
    const int n = SAN_SHRINK ? 3 : (int)(sizeof cases / sizeof cases[0]);
    for (int i = 0; i < n; i++) test_resume_case(&cases[SAN_SHRINK ? san[i] : i]);
}

/* ---- 3. checkpoint round trip ----------------------------------------------------------- */

static void test_checkpoint_roundtrip(void) {
    const fqt_model_config cfgs[2] = {
        {50, 32, 2, 2, 2, 64, 32, 10000.0f, 1e-5f},
        {70, 48, 1, 4, 2, 96, 24, 500000.0f, 1e-6f}, /* grouped-query attention */
    };
    for (int k = 0; k < 2; k++) {
        fqt_model m = {0}, m2 = {0};
        FQT_ASSERT(fqt_model_create(&m, &cfgs[k]) == FQT_OK);
        fqt_model_init(&m, 99 + (uint64_t)k);
        char dir[600], p[1200];
        snprintf(dir, sizeof dir, "%s/roundtrip%d/ck", base_dir, k);
        fqt_status st = fqt_checkpoint_save_model(&m, dir);
        CHECK_MSG(st == FQT_OK, "%s", fqt_last_error());
        fqt_model_config rc;
        st = fqt_checkpoint_read_config(dir, &rc);
        CHECK_MSG(st == FQT_OK, "%s", fqt_last_error());
        CHECK_MSG(!memcmp(&rc, &cfgs[k], sizeof rc), "config %d does not round-trip", k);
        if (st || fqt_model_create(&m2, &rc)) {
            fqt_model_free(&m);
            continue;
        }
        st = fqt_checkpoint_load_model(&m2, dir);
        CHECK_MSG(st == FQT_OK, "%s", fqt_last_error());
        CHECK(m2.n_params == m.n_params &&
              !memcmp(m.params, m2.params, (size_t)m.n_params * sizeof(float)));

        /* config.json: what transformers' LlamaConfig reads. */
        size_t n;
        char *txt = slurp(pathf(p, sizeof p, "%s/%s", dir, "config.json"), &n);
        fqt_json *j = NULL;
        CHECK(txt && fqt_json_parse(txt, n, &j) == FQT_OK);
        const struct { const char *key; double v; } ints[] = {
            {"vocab_size", (double)cfgs[k].vocab},
            {"hidden_size", (double)cfgs[k].dim},
            {"intermediate_size", (double)cfgs[k].ffn},
            {"num_hidden_layers", (double)cfgs[k].n_layers},
            {"num_attention_heads", (double)cfgs[k].n_heads},
            {"num_key_value_heads", (double)cfgs[k].n_kv_heads},
            {"head_dim", (double)(cfgs[k].dim / cfgs[k].n_heads)},
            {"max_position_embeddings", (double)cfgs[k].ctx},
            {"rope_theta", cfgs[k].rope_theta},
            {"rms_norm_eps", cfgs[k].norm_eps},
        };
        for (size_t i = 0; j && i < sizeof ints / sizeof ints[0]; i++)
            CHECK_MSG(fqt_json_get_num(j, ints[i].key, -1) == ints[i].v, "config.json %s", ints[i].key);
        if (j) {
            CHECK(!strcmp(fqt_json_get_str(j, "model_type", ""), "llama"));
            CHECK(!strcmp(fqt_json_get_str(j, "hidden_act", ""), "silu"));
            const fqt_json *arch = fqt_json_get(j, "architectures");
            CHECK(arch && arch->type == FQT_JSON_ARR && arch->n == 1 &&
                  !strcmp(arch->items[0].str, "LlamaForCausalLM"));
            const fqt_json *tie = fqt_json_get(j, "tie_word_embeddings");
            CHECK(tie && tie->type == FQT_JSON_BOOL && !tie->b);
        }
        fqt_json_free(j);
        free(txt);

        /* Weights under Hugging Face names, F32. */
        fqt_st_file *f = NULL;
        CHECK(fqt_st_open(pathf(p, sizeof p, "%s/%s", dir, "model.safetensors"), &f) == FQT_OK);
        if (f) {
            const fqt_st_info *e = fqt_st_find(f, "model.embed_tokens.weight");
            CHECK(e && e->dtype == FQT_ST_F32 && e->shape[0] == cfgs[k].vocab && e->shape[1] == cfgs[k].dim);
            CHECK(fqt_st_find(f, "lm_head.weight") && fqt_st_find(f, "model.norm.weight") &&
                  fqt_st_find(f, "model.layers.0.self_attn.q_proj.weight"));
            fqt_st_close(f);
        }

        /* The other model's checkpoint does not load into this one. */
        fqt_model other = {0};
        FQT_ASSERT(fqt_model_create(&other, &cfgs[1 - k]) == FQT_OK);
        st = fqt_checkpoint_load_model(&other, dir);
        CHECK_MSG(st == FQT_ERR_MISMATCH && contains(fqt_last_error(), "model.safetensors"), "%d: %s", st,
                  fqt_last_error());
        fqt_model_free(&other);
        fqt_model_free(&m);
        fqt_model_free(&m2);
    }
}

/* ---- 4. faults and bad input ---------------------------------------------------------- */

/* Train with c; expect status want and an error naming `names` (and `also`, if given). */
static void expect_fail(fqt_train_config *c, const char *resume, fqt_status want, const char *names,
                        const char *also, const char *what) {
    fqt_status st = fqt_train(c, resume);
    const char *e = fqt_last_error();
    CHECK_MSG(st == want, "%s: status %s, expected %s (%s)", what, fqt_status_str(st),
              fqt_status_str(want), e);
    CHECK_MSG(contains(e, names) && (!also || contains(e, also)), "%s: error '%s' should name '%s'%s%s",
              what, e, names, also ? " and " : "", also ? also : "");
}

static void write_raw(const char *rel, const void *data, size_t n) {
    char p[600];
    spit(pathf(p, sizeof p, "%s/%s", base_dir, rel), data, n);
}

static void test_bad_data_and_config(void) {
    fqt_train_config c;
    char p[1200], glob[700];

    /* Missing shards: the pattern matches nothing; no run directory appears. */
    tiny_config(&c, "bad_missing");
    snprintf(c.train_data, sizeof c.train_data, "%s/nodata/train_*.bin", base_dir);
    expect_fail(&c, NULL, FQT_ERR_IO, "nodata/train_*.bin", NULL, "missing train shards");
    CHECK(!exists(run_path(p, sizeof p, "bad_missing", "")));
    tiny_config(&c, "bad_missing");
    snprintf(c.val_data, sizeof c.val_data, "%s/nodata/val_*.bin", base_dir);
    expect_fail(&c, NULL, FQT_ERR_IO, "nodata/val_*.bin", NULL, "missing val shards");
    CHECK(!exists(run_path(p, sizeof p, "bad_missing", "")));

    /* Corrupt shards: bad magic, truncated, header-only garbage. */
    FQT_ASSERT(fqt_mkdir_p(pathf(p, sizeof p, "%s/%s", base_dir, "corrupt")) == FQT_OK);
    write_shard("corrupt/magic_000.bin", 1000, 5, 0);
    write_shard("corrupt/trunc_000.bin", 1000, 5, 0);
    {
        size_t n;
        char *d = slurp(pathf(p, sizeof p, "%s/%s", base_dir, "corrupt/magic_000.bin"), &n);
        FQT_ASSERT(d);
        d[0] ^= 0x5a;
        write_raw("corrupt/magic_000.bin", d, n);
        write_raw("corrupt/trunc_000.bin", d, 0);
        d[0] ^= 0x5a;
        write_raw("corrupt/trunc_000.bin", d, n - 7);
        write_raw("corrupt/short_000.bin", d, 100);
        free(d);
    }
    const char *bad[] = {"magic", "trunc", "short"};
    for (int i = 0; i < 3; i++) {
        tiny_config(&c, "bad_corrupt");
        snprintf(glob, sizeof glob, "%s/corrupt/%s_*.bin", base_dir, bad[i]);
        snprintf(c.train_data, sizeof c.train_data, "%s", glob);
        char name[64];
        snprintf(name, sizeof name, "corrupt/%s_000.bin", bad[i]);
        expect_fail(&c, NULL, FQT_ERR_FORMAT, name, NULL, bad[i]);
        /* ... also as validation data, with the vocabulary given */
        tiny_config(&c, "bad_corrupt");
        c.model.vocab = DATA_VOCAB;
        snprintf(c.val_data, sizeof c.val_data, "%s", glob);
        expect_fail(&c, NULL, FQT_ERR_FORMAT, name, NULL, bad[i]);
    }
    CHECK(!exists(run_path(p, sizeof p, "bad_corrupt", "")));

    /* Tokens outside the model's vocabulary (shards of another tokenizer). */
    tiny_config(&c, "bad_vocab");
    c.model.vocab = 50;
    expect_fail(&c, NULL, FQT_ERR_MISMATCH, "train_*.bin", "vocabulary of 50", "train tokens >= vocab");
    {
        uint16_t tok[600];
        for (int i = 0; i < 600; i++) tok[i] = (uint16_t)(i % 100);
        FQT_ASSERT(fqt_mkdir_p(pathf(p, sizeof p, "%s/%s", base_dir, "bigvocab")) == FQT_OK);
        FQT_ASSERT(fqt_shard_write(pathf(p, sizeof p, "%s/%s", base_dir, "bigvocab/val_000.bin"), tok, 600) == FQT_OK);
    }
    tiny_config(&c, "bad_vocab");
    snprintf(c.val_data, sizeof c.val_data, "%s/bigvocab/val_*.bin", base_dir);
    expect_fail(&c, NULL, FQT_ERR_MISMATCH, "bigvocab/val_*.bin", "vocabulary of 64", "val tokens >= vocab");
    CHECK(!exists(run_path(p, sizeof p, "bad_vocab", "")));

    /* Too little data for one window. */
    {
        uint16_t tok[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
        FQT_ASSERT(fqt_shard_write(pathf(p, sizeof p, "%s/%s", base_dir, "bigvocab/tiny_000.bin"), tok, 10) == FQT_OK);
    }
    tiny_config(&c, "bad_small");
    snprintf(c.train_data, sizeof c.train_data, "%s/bigvocab/tiny_*.bin", base_dir);
    c.model.vocab = DATA_VOCAB;
    expect_fail(&c, NULL, FQT_ERR_ARG, "tiny_*.bin", "too few", "too few tokens");

    /* Impossible configurations. */
    struct { const char *what; fqt_model_config m; int64_t batch, seq, accum, steps; const char *msg; } cfgs[] = {
        {"heads not dividing dim", {0, 30, 2, 4, 4, 64, 32, 1e4f, 1e-5f}, 4, 16, 1, 5, "divide"},
        {"kv heads not dividing heads", {0, 32, 2, 4, 3, 64, 32, 1e4f, 1e-5f}, 4, 16, 1, 5, "divide"},
        {"zero dim", {0, 0, 2, 2, 2, 64, 32, 1e4f, 1e-5f}, 4, 16, 1, 5, "positive"},
        {"zero layers", {0, 32, 0, 2, 2, 64, 32, 1e4f, 1e-5f}, 4, 16, 1, 5, "positive"},
        {"zero ffn", {0, 32, 2, 2, 2, 0, 32, 1e4f, 1e-5f}, 4, 16, 1, 5, "positive"},
        {"odd head size", {0, 30, 2, 2, 2, 64, 32, 1e4f, 1e-5f}, 4, 16, 1, 5, "even"},
        {"zero batch", {0, 32, 2, 2, 2, 64, 32, 1e4f, 1e-5f}, 0, 16, 1, 5, "positive"},
        {"zero seq", {0, 32, 2, 2, 2, 64, 32, 1e4f, 1e-5f}, 4, 0, 1, 5, "positive"},
        {"zero grad accum", {0, 32, 2, 2, 2, 64, 32, 1e4f, 1e-5f}, 4, 16, 0, 5, "positive"},
        {"zero steps", {0, 32, 2, 2, 2, 64, 32, 1e4f, 1e-5f}, 4, 16, 1, 0, "positive"},
        {"seq > ctx", {0, 32, 2, 2, 2, 64, 32, 1e4f, 1e-5f}, 4, 33, 1, 5, "context"},
    };
    for (size_t i = 0; i < sizeof cfgs / sizeof cfgs[0]; i++) {
        tiny_config(&c, "bad_config");
        c.model = cfgs[i].m;
        c.batch = cfgs[i].batch;
        c.seq = cfgs[i].seq;
        c.grad_accum = cfgs[i].accum;
        c.steps = cfgs[i].steps;
        expect_fail(&c, NULL, FQT_ERR_ARG, cfgs[i].msg, NULL, cfgs[i].what);
    }
    tiny_config(&c, "bad_config");
    c.qaf_steps = c.steps;
    expect_fail(&c, NULL, FQT_ERR_ARG, "qaf-steps", NULL, "qaf-steps >= steps");
    tiny_config(&c, "bad_config");
    snprintf(c.recipe, sizeof c.recipe, "nvfp5");
    expect_fail(&c, NULL, FQT_ERR_ARG, "nvfp5", NULL, "unknown recipe");
    tiny_config(&c, "bad_config");
    snprintf(c.recipe, sizeof c.recipe, "nvfp4,fprop.x=nope");
    expect_fail(&c, NULL, FQT_ERR_ARG, "nope", NULL, "unknown recipe override");
    CHECK(!exists(run_path(p, sizeof p, "bad_config", "")));

    /* Option parsing. */
    fqt_train_config_default(&c);
    const int64_t default_steps = c.steps;
    CHECK(fqt_train_config_set(&c, "grad-accum", "3") == FQT_OK && c.grad_accum == 3);
    CHECK(fqt_train_config_set(&c, "qaf", "auto") == FQT_OK && c.qaf_auto);
    CHECK(fqt_train_config_set(&c, "qaf", "7") == FQT_OK && c.qaf_steps == 7);
    CHECK(fqt_train_config_set(&c, "frobnicate", "1") == FQT_ERR_ARG && contains(fqt_last_error(), "frobnicate"));
    CHECK(fqt_train_config_set(&c, "steps", "-3") == FQT_ERR_ARG && contains(fqt_last_error(), "steps"));
    CHECK(fqt_train_config_set(&c, "steps", "12x") == FQT_ERR_ARG);
    CHECK(fqt_train_config_set(&c, "lr", "nan") == FQT_ERR_ARG);
    CHECK(fqt_train_config_set(&c, "lr", "") == FQT_ERR_ARG);
    CHECK(fqt_train_config_set(&c, "schedule", "linear") == FQT_ERR_ARG);
    CHECK(fqt_train_config_set(&c, "model", "huge") == FQT_ERR_ARG);
    CHECK(c.grad_accum == 3 && c.steps == default_steps); /* failed sets change nothing */

    /* The configuration survives JSON (run.json / train.json). */
    tiny_config(&c, "json");
    c.qaf_auto = true;
    c.schedule = FQT_SCHED_WSD;
    c.mode = FQT_MODE_QAT;
    c.lr = 3.3e-3;
    c.seed = 0xFFFFFFFFFFFFFFFFull;
    c.model.vocab = 64;
    char *js = fqt_train_config_json(&c);
    fqt_train_config back;
    CHECK(fqt_train_config_from_json(&back, js, strlen(js), "x.json") == FQT_OK);
    CHECK(!memcmp(&back.model, &c.model, sizeof c.model));
    CHECK(back.qaf_auto && back.schedule == FQT_SCHED_WSD && back.mode == FQT_MODE_QAT);
    CHECK(back.lr == c.lr && back.seed == c.seed && back.steps == c.steps && back.batch == c.batch);
    CHECK(!strcmp(back.train_data, c.train_data) && !strcmp(back.run_dir, c.run_dir));
    free(js);
    CHECK(fqt_train_config_from_json(&back, "{\"model\": {\"dim\": 3", 19, "cut.json") == FQT_ERR_FORMAT &&
          contains(fqt_last_error(), "cut.json"));
}

/* Copy run `from` to `to` (replacing it); the copy's run_dir in train.json still names
 * `from`, so resumes of copies write into... `from`. Rewrite it to name the copy. */
static void copy_run(const char *from, const char *to) {
    char a[1200], b[1200];
    rm_rf(run_path(b, sizeof b, to, ""));
    cp_r(run_path(a, sizeof a, from, ""), run_path(b, sizeof b, to, ""));
    const char *files[] = {"ckpt/train.json", "run.json"};
    for (int i = 0; i < 2; i++) {
        size_t n;
        char *d = slurp(run_path(b, sizeof b, to, files[i]), &n);
        FQT_ASSERT(d);
        fqt_train_config c;
        FQT_ASSERT(fqt_train_config_from_json(&c, d, n, files[i]) == FQT_OK);
        free(d);
        snprintf(c.run_dir, sizeof c.run_dir, "%s/%s", base_dir, to);
        char *js = fqt_train_config_json(&c);
        spit(b, js, strlen(js));
        free(js);
    }
}

/* Replace the first occurrence of `from` by `to` in a file. */
static void edit_file(const char *path, const char *from, const char *to) {
    void *data;
    size_t n;
    FQT_ASSERT(fqt_read_file(path, &data, &n) == FQT_OK);
    const char *d = data, *at = strstr(d, from);
    FQT_ASSERT(at);
    const size_t off = (size_t)(at - d), nf = strlen(from);
    fqt_buf b = {0};
    fqt_buf_append(&b, d, off);
    fqt_buf_append(&b, to, strlen(to));
    fqt_buf_append(&b, d + off + nf, n - off - nf);
    spit(path, b.s, b.len);
    fqt_buf_free(&b);
    free(data);
}

static void truncate_file(const char *path, size_t keep) {
    size_t n;
    char *d = slurp(path, &n);
    FQT_ASSERT(d && keep <= n);
    spit(path, d, keep);
    free(d);
}

/* The files a failed resume must leave alone. */
static const char *const run_files[] = {"run.json", "metrics.jsonl", "ckpt/model.safetensors",
                                        "ckpt/config.json", "ckpt/train.json", "ckpt/state.safetensors"};
#define N_RUN_FILES 6

typedef struct {
    char *data[N_RUN_FILES];
    size_t n[N_RUN_FILES];
} run_snapshot;

static void snapshot(run_snapshot *s, const char *run) {
    char p[1200];
    for (int i = 0; i < N_RUN_FILES; i++) s->data[i] = slurp(run_path(p, sizeof p, run, run_files[i]), &s->n[i]);
}

/* Files [first, N_RUN_FILES) are as snapshot (frees the snapshot); no ckpt.new is left. */
static bool unchanged_from(run_snapshot *s, int first, const char *run, const char *what) {
    char p[1200];
    bool ok = true;
    for (int i = 0; i < N_RUN_FILES; i++) {
        if (i >= first) {
            size_t n;
            char *d = slurp(run_path(p, sizeof p, run, run_files[i]), &n);
            bool same = (!d && !s->data[i]) || (d && s->data[i] && n == s->n[i] && !memcmp(d, s->data[i], n));
            if (!same) fprintf(stderr, "%s: %s changed\n", what, run_files[i]);
            ok &= same;
            free(d);
        }
        free(s->data[i]);
        s->data[i] = NULL;
    }
    ok &= !exists(run_path(p, sizeof p, run, "ckpt.new"));
    return ok;
}

static bool unchanged(run_snapshot *s, const char *run, const char *what) {
    return unchanged_from(s, 0, run, what);
}

static void test_bad_resume(void) {
    char p[1200], q[1200];
    fqt_train_config c;
    tiny_config(&c, "base");
    c.steps = 8;
    c.stop_at = 4;
    fqt_status st = fqt_train(&c, NULL);
    CHECK_MSG(st == FQT_OK, "%s", fqt_last_error());
    tiny_config(&c, "other_dim");
    c.model.dim = 48;
    c.steps = 2;
    st = fqt_train(&c, NULL);
    CHECK_MSG(st == FQT_OK, "%s", fqt_last_error());
    if (st) return;

    struct {
        const char *what;
        fqt_status want;
        const char *names, *also;
    } cases[] = {
        {"config.json of another width", FQT_ERR_MISMATCH, "config.json", NULL},
        {"model.safetensors of another width", FQT_ERR_MISMATCH, "model.safetensors", "shape"},
        {"state.safetensors of another width", FQT_ERR_MISMATCH, "state.safetensors", "adam"},
        {"truncated model.safetensors", FQT_ERR_FORMAT, "model.safetensors", NULL},
        {"garbage model.safetensors header", FQT_ERR_FORMAT, "model.safetensors", NULL},
        {"truncated state.safetensors", FQT_ERR_FORMAT, "state.safetensors", NULL},
        {"state.safetensors without metadata", FQT_ERR_FORMAT, "state.safetensors", "metadata"},
        {"missing state.safetensors", FQT_ERR_IO, "state.safetensors", NULL},
        {"truncated train.json", FQT_ERR_FORMAT, "train.json", NULL},
        {"config.json with heads not dividing the width", FQT_ERR_ARG, "config.json", "divide"},
    };
    for (int i = 0; i < (int)(sizeof cases / sizeof cases[0]); i++) {
        copy_run("base", "fault");
        switch (i) {
        case 0:
            edit_file(run_path(p, sizeof p, "fault", "ckpt/config.json"), "\"hidden_size\": 32",
                      "\"hidden_size\": 48");
            edit_file(p, "\"head_dim\": 16", "\"head_dim\": 24");
            break;
        case 1:
            cp_r(run_path(q, sizeof q, "other_dim", "ckpt/model.safetensors"),
                 run_path(p, sizeof p, "fault", "ckpt/model.safetensors"));
            break;
        case 2:
            cp_r(run_path(q, sizeof q, "other_dim", "ckpt/state.safetensors"),
                 run_path(p, sizeof p, "fault", "ckpt/state.safetensors"));
            break;
        case 3: {
            int64_t sz = 0;
            fqt_file_exists(run_path(p, sizeof p, "fault", "ckpt/model.safetensors"), &sz);
            truncate_file(p, (size_t)sz - 100);
            break;
        }
        case 4: {
            size_t n = 0;
            char *d = slurp(run_path(p, sizeof p, "fault", "ckpt/model.safetensors"), &n);
            FQT_ASSERT(d && n > 48);
            memset(d + 8, '#', 40);
            spit(p, d, n);
            free(d);
            break;
        }
        case 5:
            truncate_file(run_path(p, sizeof p, "fault", "ckpt/state.safetensors"), 200);
            break;
        case 6: {
            /* the right moments, no metadata */
            fqt_st_file *f = NULL;
            FQT_ASSERT(fqt_st_open(run_path(p, sizeof p, "fault", "ckpt/state.safetensors"), &f) == FQT_OK);
            const fqt_st_info *mo = fqt_st_find(f, "adam.m"), *ve = fqt_st_find(f, "adam.v");
            FQT_ASSERT(mo && ve);
            float *buf = malloc(mo->nbytes + ve->nbytes);
            FQT_ASSERT(buf);
            memcpy(buf, mo->data, mo->nbytes);
            memcpy((char *)buf + mo->nbytes, ve->data, ve->nbytes);
            fqt_st_tensor t[2] = {{"adam.m", FQT_ST_F32, 1, {mo->numel}, buf},
                                  {"adam.v", FQT_ST_F32, 1, {ve->numel}, buf + mo->numel}};
            fqt_st_close(f);
            FQT_ASSERT(fqt_st_write(p, t, 2, NULL) == FQT_OK);
            free(buf);
            break;
        }
        case 7:
            FQT_ASSERT(unlink(run_path(p, sizeof p, "fault", "ckpt/state.safetensors")) == 0);
            break;
        case 8:
            truncate_file(run_path(p, sizeof p, "fault", "ckpt/train.json"), 50);
            break;
        case 9:
            edit_file(run_path(p, sizeof p, "fault", "ckpt/config.json"), "\"num_attention_heads\": 2",
                      "\"num_attention_heads\": 3");
            edit_file(p, "\"head_dim\": 16,", "");
            break;
        }
        run_snapshot snap;
        snapshot(&snap, "fault");
        fqt_train_config r;
        resume_config(&r);
        expect_fail(&r, run_path(p, sizeof p, "fault", ""), cases[i].want, cases[i].names, cases[i].also,
                    cases[i].what);
        CHECK_MSG(unchanged(&snap, "fault", cases[i].what), "%s: a failed resume changed the run", cases[i].what);
    }
    /* A missing checkpoint directory; a run directory without a checkpoint. */
    fqt_train_config r;
    resume_config(&r);
    expect_fail(&r, run_path(p, sizeof p, "no_such_run", ""), FQT_ERR_IO, "no_such_run", "no checkpoint",
                "missing checkpoint dir");
    FQT_ASSERT(fqt_mkdir_p(run_path(p, sizeof p, "empty_run", "")) == FQT_OK);
    expect_fail(&r, p, FQT_ERR_IO, "empty_run", "no checkpoint", "run dir without ckpt");
    CHECK(!exists(run_path(p, sizeof p, "empty_run", "metrics.jsonl")));

    /* The untouched copy still resumes. */
    copy_run("base", "fault");
    resume_config(&r);
    st = fqt_train(&r, run_path(p, sizeof p, "fault", ""));
    CHECK_MSG(st == FQT_OK, "%s", fqt_last_error());
    CHECK(state_meta(run_path(p, sizeof p, "fault", "ckpt"), "step") == 8);
    snprintf(q, sizeof q, "%s/fault", base_dir);
    CHECK_MSG(!strcmp(r.run_dir, q), "resumed into %s", r.run_dir);
}

/* ---- 5. non-finite steps -------------------------------------------------------------- */

/* Rewrite DIR/model.safetensors with tensor `name` (all of it, or only row `row`) set to NaN. */
static void poison_weights(const char *dir, const char *name, int64_t row) {
    char path[1200];
    fqt_st_file *f = NULL;
    FQT_ASSERT(fqt_st_open(pathf(path, sizeof path, "%s/%s", dir, "model.safetensors"), &f) == FQT_OK);
    const int64_t n = fqt_st_count(f);
    fqt_st_tensor *t = calloc((size_t)n, sizeof *t);
    float **bufs = calloc((size_t)n, sizeof *bufs);
    FQT_ASSERT(t && bufs);
    for (int64_t i = 0; i < n; i++) {
        const fqt_st_info *e = fqt_st_at(f, i);
        bufs[i] = malloc(e->nbytes);
        FQT_ASSERT(bufs[i] && fqt_st_read_f32(f, e->name, e->ndim, e->shape, bufs[i]) == FQT_OK);
        if (!strcmp(e->name, name)) {
            const int64_t cols = e->ndim == 2 ? e->shape[1] : e->numel;
            for (int64_t k = 0; k < e->numel; k++)
                if (row < 0 || k / cols == row) bufs[i][k] = NAN;
        }
        t[i] = (fqt_st_tensor){e->name, FQT_ST_F32, e->ndim, {e->shape[0], e->shape[1]}, bufs[i]};
    }
    FQT_ASSERT(fqt_st_write(path, t, n, NULL) == FQT_OK);
    fqt_st_close(f);
    for (int64_t i = 0; i < n; i++) free(bufs[i]);
    free(bufs);
    free(t);
}

/* Events that say a step's update was skipped. */
static int skipped_events(const metrics *m, int64_t after) {
    int c = 0;
    for (int i = 0; i < m->n; i++)
        c += !strcmp(kind_of(m->line[i]), "event") && step_of(m->line[i]) > after &&
             contains(fqt_json_get_str(m->line[i], "msg", ""), "update skipped");
    return c;
}

static bool ckpt_loads_finite(const char *dir) {
    fqt_model_config mc;
    fqt_model m = {0};
    if (fqt_checkpoint_read_config(dir, &mc) || fqt_model_create(&m, &mc)) return false;
    bool ok = fqt_checkpoint_load_model(&m, dir) == FQT_OK;
    for (int64_t i = 0; ok && i < m.n_params; i++) ok &= isfinite(m.params[i]);
    fqt_model_free(&m);
    return ok;
}

static void test_nonfinite(void) {
    char p[1200];
    const int64_t steps = 20, stop = 4;
    fqt_train_config c;
    tiny_config(&c, "nan_base");
    c.steps = steps;
    c.stop_at = stop;
    c.val_every = 4;
    c.max_bad_steps = 3;
    fqt_status st = fqt_train(&c, NULL);
    CHECK_MSG(st == FQT_OK, "%s", fqt_last_error());
    if (st) return;

    /* (a) NaN weights everywhere: every step is skipped and logged; after max_bad_steps the run
     * stops with FQT_ERR_NONFINITE and the checkpoint it resumed from is untouched. */
    copy_run("nan_base", "nan_all");
    poison_weights(run_path(p, sizeof p, "nan_all", "ckpt"), "model.norm.weight", -1);
    run_snapshot snap;
    snapshot(&snap, "nan_all");
    fqt_train_config r;
    resume_config(&r);
    expect_fail(&r, run_path(p, sizeof p, "nan_all", ""), FQT_ERR_NONFINITE, "3 non-finite steps in a row",
                "nan_all/ckpt", "NaN weights");
    metrics m = metrics_read(run_path(p, sizeof p, "nan_all", ""));
    CHECK_MSG(skipped_events(&m, stop) == 3, "%d skipped-update events", skipped_events(&m, stop));
    CHECK_MSG(count_kind(&m, "train") == stop, "%d train lines", count_kind(&m, "train"));
    metrics_free(&m);
    /* the checkpoint's files are byte for byte as before (run.json and metrics.jsonl grow) */
    CHECK(unchanged_from(&snap, 2, "nan_all", "NaN weights"));

    /* (b) A learning rate that blows the weights up (edited into the stored configuration):
     * the run stops, and ckpt/ is still the good step-4 checkpoint, loadable and finite. */
    copy_run("nan_base", "nan_lr");
    edit_file(run_path(p, sizeof p, "nan_lr", "ckpt/train.json"), "\"lr\": 0.01", "\"lr\": 1e+30");
    snapshot(&snap, "nan_lr");
    resume_config(&r);
    expect_fail(&r, run_path(p, sizeof p, "nan_lr", ""), FQT_ERR_NONFINITE, "non-finite", "nan_lr/ckpt",
                "huge lr");
    CHECK(unchanged_from(&snap, 2, "nan_lr", "huge lr"));
    CHECK(ckpt_loads_finite(run_path(p, sizeof p, "nan_lr", "ckpt")));
    CHECK(state_meta(p, "step") == stop);
    m = metrics_read(run_path(p, sizeof p, "nan_lr", ""));
    CHECK_MSG(skipped_events(&m, stop) == 3, "%d skipped-update events", skipped_events(&m, stop));
    metrics_free(&m);

    /* (c) Occasional non-finite steps: one embedding row (the rare token) is NaN, so exactly
     * the batches that contain that token fail. Those updates are skipped, the others train,
     * and the run finishes with its final checkpoint, validation and final line. */
    copy_run("nan_base", "nan_rare");
    poison_weights(run_path(p, sizeof p, "nan_rare", "ckpt"), "model.embed_tokens.weight", RARE_TOKEN);
    resume_config(&r);
    edit_file(run_path(p, sizeof p, "nan_rare", "ckpt/train.json"), "\"max_bad_steps\": 3", "\"max_bad_steps\": 100");
    /* validation without the rare token: a NaN validation loss at the end fails the run */
    edit_file(p, "data/val_", "data/valclean_");
    st = fqt_train(&r, run_path(p, sizeof p, "nan_rare", ""));
    CHECK_MSG(st == FQT_OK, "%s", fqt_last_error());
    m = metrics_read(run_path(p, sizeof p, "nan_rare", ""));
    const int skipped = skipped_events(&m, stop), trained = count_kind(&m, "train") - (int)stop;
    CHECK_MSG(skipped > 0 && trained > 0 && skipped + trained == (int)(steps - stop),
              "%d skipped + %d trained != %d", skipped, trained, (int)(steps - stop));
    CHECK_MSG(count_kind(&m, "final") == 1, "%d final lines", count_kind(&m, "final"));
    int64_t last_bad = -1;
    for (int i = 0; i < m.n; i++)
        if (!strcmp(kind_of(m.line[i]), "event") && contains(fqt_json_get_str(m.line[i], "msg", ""), "skipped"))
            last_bad = step_of(m.line[i]);
    metrics_free(&m);
    CHECK_MSG(state_meta(run_path(p, sizeof p, "nan_rare", "ckpt"), "step") == steps, "checkpoint at step %lld",
              (long long)state_meta(p, "step"));

    /* (d) Stopping exactly on a skipped step still checkpoints there, and resuming from that
     * checkpoint ends bit-identical to (c). */
    CHECK_MSG(last_bad > stop, "no skipped step to stop at (%lld)", (long long)last_bad);
    if (last_bad <= stop) return;
    copy_run("nan_base", "nan_stop");
    poison_weights(run_path(p, sizeof p, "nan_stop", "ckpt"), "model.embed_tokens.weight", RARE_TOKEN);
    edit_file(run_path(p, sizeof p, "nan_stop", "ckpt/train.json"), "\"max_bad_steps\": 3", "\"max_bad_steps\": 100");
    edit_file(p, "data/val_", "data/valclean_");
    resume_config(&r);
    r.stop_at = last_bad;
    st = fqt_train(&r, run_path(p, sizeof p, "nan_stop", ""));
    /* Item 2 of issue 13: no checkpoint right after a skipped step (the weights may be what
     * diverged); the stop says so and the step-4 checkpoint stays. */
    CHECK_MSG(st == FQT_ERR_NONFINITE && contains(fqt_last_error(), "not checkpointed"), "%d %s", st,
              fqt_last_error());
    CHECK_MSG(state_meta(run_path(p, sizeof p, "nan_stop", "ckpt"), "step") == stop,
              "stop_at %lld on a skipped step: checkpoint at step %lld", (long long)last_bad,
              (long long)state_meta(p, "step"));
    resume_config(&r);
    st = fqt_train(&r, run_path(p, sizeof p, "nan_stop", ""));
    CHECK_MSG(st == FQT_OK, "%s", fqt_last_error());
    char q[1200], why[256];
    CHECK_MSG(same_tensors(run_path(p, sizeof p, "nan_rare", "ckpt/model.safetensors"),
                           run_path(q, sizeof q, "nan_stop", "ckpt/model.safetensors"), why, sizeof why),
              "resume across a skipped step: %s", why);
    m = metrics_read(run_path(p, sizeof p, "nan_stop", ""));
    CHECK_MSG(skipped_events(&m, stop) == skipped, "%d vs %d skipped", skipped_events(&m, stop), skipped);
    metrics_free(&m);
}

/* ---- 6. the atomic checkpoint swap -------------------------------------------------------- */

static void test_ckpt_swap(void) {
    char p[1200], q[1200], why[256];
    fqt_train_config c;
    /* The reference: 8 steps in one go. */
    tiny_config(&c, "swap_ref");
    c.steps = 8;
    fqt_status st = fqt_train(&c, NULL);
    CHECK_MSG(st == FQT_OK, "%s", fqt_last_error());
    tiny_config(&c, "swap_base");
    c.steps = 8;
    c.stop_at = 4;
    st = fqt_train(&c, NULL);
    CHECK_MSG(st == FQT_OK, "%s", fqt_last_error());
    if (st) return;

    /* A junk ckpt.new directory from an interrupted save: the next save replaces it, and
     * none of its junk ends up in the checkpoint. */
    copy_run("swap_base", "swap_junkdir");
    FQT_ASSERT(fqt_mkdir_p(run_path(p, sizeof p, "swap_junkdir", "ckpt.new")) == FQT_OK);
    spit(run_path(p, sizeof p, "swap_junkdir", "ckpt.new/model.safetensors"), "junk", 4);
    spit(run_path(p, sizeof p, "swap_junkdir", "ckpt.new/stale.bin"), "junk", 4);
    fqt_train_config r;
    resume_config(&r);
    st = fqt_train(&r, run_path(p, sizeof p, "swap_junkdir", ""));
    CHECK_MSG(st == FQT_OK, "junk ckpt.new dir: %s", fqt_last_error());
    CHECK(!exists(run_path(p, sizeof p, "swap_junkdir", "ckpt.new")));
    CHECK(!exists(run_path(p, sizeof p, "swap_junkdir", "ckpt/stale.bin")));
    CHECK_MSG(same_tensors(run_path(p, sizeof p, "swap_ref", "ckpt/model.safetensors"),
                           run_path(q, sizeof q, "swap_junkdir", "ckpt/model.safetensors"), why, sizeof why),
              "junk ckpt.new dir: %s", why);

    /* A junk ckpt.new file. */
    copy_run("swap_base", "swap_junkfile");
    spit(run_path(p, sizeof p, "swap_junkfile", "ckpt.new"), "junk", 4);
    resume_config(&r);
    st = fqt_train(&r, run_path(p, sizeof p, "swap_junkfile", ""));
    CHECK_MSG(st == FQT_OK, "junk ckpt.new file: %s", fqt_last_error());
    CHECK(is_dir(run_path(p, sizeof p, "swap_junkfile", "ckpt")));
    CHECK(!exists(run_path(p, sizeof p, "swap_junkfile", "ckpt.new")));
    CHECK(state_meta(run_path(p, sizeof p, "swap_junkfile", "ckpt"), "step") == 8);

    /* A crash between the two renames leaves only ckpt.old (and a complete or partial
     * ckpt.new): resolve finds ckpt.old, and the resume from it is still exact. */
    copy_run("swap_base", "swap_old");
    FQT_ASSERT(rename(run_path(p, sizeof p, "swap_old", "ckpt"), run_path(q, sizeof q, "swap_old", "ckpt.old")) == 0);
    char dir[1200];
    st = fqt_checkpoint_resolve(run_path(p, sizeof p, "swap_old", ""), dir, sizeof dir);
    CHECK_MSG(st == FQT_OK && contains(dir, "swap_old/ckpt.old"), "%s -> %s (%s)", p, dir, fqt_last_error());
    /* a checkpoint directory resolves to itself */
    st = fqt_checkpoint_resolve(run_path(p, sizeof p, "swap_ref", "ckpt"), dir, sizeof dir);
    CHECK(st == FQT_OK && !strcmp(dir, p));
    /* ckpt/ wins over ckpt.old/ */
    cp_r(run_path(p, sizeof p, "swap_ref", "ckpt"), run_path(q, sizeof q, "swap_ref", "ckpt.old"));
    st = fqt_checkpoint_resolve(run_path(p, sizeof p, "swap_ref", ""), dir, sizeof dir);
    CHECK(st == FQT_OK && contains(dir, "swap_ref/ckpt") && !contains(dir, "ckpt.old"));
    rm_rf(q);

    FQT_ASSERT(fqt_mkdir_p(run_path(p, sizeof p, "swap_old", "ckpt.new")) == FQT_OK);
    spit(run_path(p, sizeof p, "swap_old", "ckpt.new/model.safetensors"), "partial", 7);
    resume_config(&r);
    st = fqt_train(&r, run_path(p, sizeof p, "swap_old", ""));
    CHECK_MSG(st == FQT_OK, "resume from ckpt.old: %s", fqt_last_error());
    CHECK(is_dir(run_path(p, sizeof p, "swap_old", "ckpt")));
    CHECK(!exists(run_path(p, sizeof p, "swap_old", "ckpt.old")));
    CHECK(!exists(run_path(p, sizeof p, "swap_old", "ckpt.new")));
    CHECK_MSG(same_tensors(run_path(p, sizeof p, "swap_ref", "ckpt/model.safetensors"),
                           run_path(q, sizeof q, "swap_old", "ckpt/model.safetensors"), why, sizeof why),
              "resume from ckpt.old: %s", why);

    /* Periodic checkpoints replace each other; the last one is the end. */
    tiny_config(&c, "swap_every");
    c.steps = 7;
    c.ckpt_every = 2;
    st = fqt_train(&c, NULL);
    CHECK_MSG(st == FQT_OK, "%s", fqt_last_error());
    CHECK(state_meta(run_path(p, sizeof p, "swap_every", "ckpt"), "step") == 7);
    CHECK(!exists(run_path(p, sizeof p, "swap_every", "ckpt.old")));
}

/* ---- 7. the command line --------------------------------------------------------------- */

/* Run `fqt train ARGS`, stderr and stdout into files; returns the exit status (-1 if it
 * did not exit normally) and the captured stderr in err. */
static int run_cli(const char *args, char *err, size_t errn) {
    char cmd[4096], ep[700], op[700];
    snprintf(ep, sizeof ep, "%s/cli.err", base_dir);
    snprintf(op, sizeof op, "%s/cli.out", base_dir);
    snprintf(cmd, sizeof cmd, "cd '%s' && OMP_NUM_THREADS=1 '%s' train %s >'%s' 2>'%s'", base_dir, getenv("FQT_BIN"),
             args, op, ep);
    int rc = system(cmd);
    size_t n = 0;
    char *d = slurp(ep, &n);
    snprintf(err, errn, "%s", d ? d : "");
    free(d);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

static void test_cli(void) {
    if (!getenv("FQT_BIN")) {
        printf("SKIP fqt train CLI (FQT_BIN not set)\n");
        return;
    }
    char err[4096], args[3000], data[2200], p[1200];
    snprintf(data, sizeof data, "--train-data '%s' --val-data '%s' --vocab '' --run-dir '%s/cli_run'", train_glob,
             val_glob, base_dir);
    int rc = run_cli("--help", err, sizeof err);
    CHECK_MSG(rc == 0, "--help: exit %d", rc);
    {
        size_t n;
        char *out = slurp(pathf(p, sizeof p, "%s/%s", base_dir, "cli.out"), &n);
        CHECK(contains(out, "usage: fqt train") && contains(out, "--grad-accum") && contains(out, "--qaf-steps"));
        free(out);
    }
    struct { const char *args, *msg; } bad[] = {
        {"--frobnicate 3", "frobnicate"},
        {"--steps ten", "ten"},
        {"--steps -5", "-5"},
        {"--lr", "needs a value"},
        {"stray", "stray"},
        {"--schedule linear", "linear"},
        {"--mode fp4", "fp4"},
        {"--model huge", "huge"},
        {"--recipe nvfp5", "nvfp5"},
        {"--recipe nvfp5 --train-data /nonexistent/x_*.bin", "nvfp5"},
        {"--steps 10 --qaf-steps 10", "qaf-steps"},
        {"--steps 10 --qaf 12", "qaf-steps"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        snprintf(args, sizeof args, "%s %s", data, bad[i].args);
        rc = run_cli(args, err, sizeof err);
        CHECK_MSG(rc == 2 && contains(err, bad[i].msg), "'%s': exit %d, stderr '%s'", bad[i].args, rc, err);
    }
    CHECK(!exists(pathf(p, sizeof p, "%s/%s", base_dir, "cli_run")));
    /* Runtime failures exit 1 with the reason. */
    snprintf(args, sizeof args, "%s --train-data '%s/nodata/t_*.bin'", data, base_dir);
    rc = run_cli(args, err, sizeof err);
    CHECK_MSG(rc == 1 && contains(err, "nodata/t_*.bin"), "missing data: exit %d, '%s'", rc, err);
    snprintf(args, sizeof args, "--resume '%s/no_such_run'", base_dir);
    rc = run_cli(args, err, sizeof err);
    CHECK_MSG(rc == 1 && contains(err, "no_such_run"), "missing resume dir: exit %d, '%s'", rc, err);
    /* A real (tiny) run, then a resume that extends it. */
    snprintf(args, sizeof args, "%s --model tiny --steps 3 --stop-at 1 --batch 1 --seq 8 --val-tokens 8 --quiet", data);
    rc = run_cli(args, err, sizeof err);
    CHECK_MSG(rc == 0, "tiny run: exit %d, '%s'", rc, err);
    CHECK(state_meta(pathf(p, sizeof p, "%s/%s", base_dir, "cli_run/ckpt"), "step") == 1);
    /* --resume without --steps keeps the run's 3 steps */
    snprintf(args, sizeof args, "--resume '%s/cli_run' --quiet", base_dir);
    rc = run_cli(args, err, sizeof err);
    CHECK_MSG(rc == 0, "resume: exit %d, '%s'", rc, err);
    CHECK(state_meta(pathf(p, sizeof p, "%s/%s", base_dir, "cli_run/ckpt"), "step") == 3);
}

/* ---- learning-rate schedules ---------------------------------------------------------- */

static void test_lr_schedule(void) {
    fqt_train_config c;
    fqt_train_config_default(&c);
    c.lr = 1.0;
    c.min_lr_frac = 0.1;
    c.warmup = 10;
    const int64_t S = 100;
    /* warmup: linear from lr/warmup to lr */
    for (int64_t s = 0; s < 10; s++)
        CHECK_MSG(fabs(fqt_lr_at(&c, s, S) - (double)(s + 1) / 10.0) < 1e-15, "warmup step %lld", (long long)s);
    /* cosine: peak after warmup, half way at the middle, the floor at the end, monotone */
    c.schedule = FQT_SCHED_COSINE;
    CHECK(fabs(fqt_lr_at(&c, 10, S) - 1.0) < 1e-15);
    CHECK_MSG(fabs(fqt_lr_at(&c, 55, S) - 0.55) < 1e-12, "%.17g", fqt_lr_at(&c, 55, S));
    CHECK_MSG(fabs(fqt_lr_at(&c, S - 1, S) - 0.1) < 1e-3, "last step %.17g", fqt_lr_at(&c, S - 1, S));
    CHECK(fqt_lr_at(&c, S, S) == 0.1 && fqt_lr_at(&c, S + 50, S) == 0.1);
    bool mono = true, bounded = true;
    for (int64_t s = 10; s < S; s++) {
        mono &= fqt_lr_at(&c, s + 1, S) <= fqt_lr_at(&c, s, S);
        bounded &= fqt_lr_at(&c, s, S) >= 0.1 && fqt_lr_at(&c, s, S) <= 1.0;
    }
    CHECK(mono && bounded);
    /* WSD: flat at the peak, then linear decay over the last 20% to exactly the floor */
    c.schedule = FQT_SCHED_WSD;
    c.wsd_decay_frac = 0.2;
    for (int64_t s = 10; s < 80; s++) CHECK_MSG(fqt_lr_at(&c, s, S) == 1.0, "WSD stable step %lld", (long long)s);
    for (int64_t s = 80; s < S; s++)
        CHECK_MSG(fabs(fqt_lr_at(&c, s, S) - (1.0 - 0.9 * (double)(s - 79) / 20.0)) < 1e-12, "WSD decay step %lld: %.17g",
                  (long long)s, fqt_lr_at(&c, s, S));
    CHECK(fabs(fqt_lr_at(&c, S - 1, S) - 0.1) < 1e-15 && fqt_lr_at(&c, S, S) == 0.1);
    /* edge cases: no warmup, warmup longer than the run, zero decay fraction */
    c.warmup = 0;
    CHECK(fqt_lr_at(&c, 0, S) == 1.0);
    c.schedule = FQT_SCHED_COSINE;
    CHECK(fqt_lr_at(&c, 0, S) == 1.0 && isfinite(fqt_lr_at(&c, S - 1, S)));
    c.warmup = 200;
    CHECK(fabs(fqt_lr_at(&c, 99, S) - 0.5) < 1e-15);
    c.warmup = 10;
    c.schedule = FQT_SCHED_WSD;
    c.wsd_decay_frac = 0;
    CHECK(fqt_lr_at(&c, S - 1, S) == 1.0 && fqt_lr_at(&c, S, S) == 0.1);
}

/* ---------------------------------------------------------------------------------------- */

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

#define TIMED(call)                                                                          \
    do {                                                                                     \
        double t0_ = now();                                                                  \
        call;                                                                                \
        if (getenv("FQT_TEST_TIMES")) fprintf(stderr, "  %-28s %.2f s\n", #call, now() - t0_); \
    } while (0)

int main(void) {
    snprintf(base_dir, sizeof base_dir, "/tmp/fqt_test_train_XXXXXX");
    if (!mkdtemp(base_dir)) {
        perror("mkdtemp");
        return 1;
    }
    make_data();
    TIMED(test_lr_schedule());
    TIMED(test_checkpoint_roundtrip());
    TIMED(test_run_outputs());
    TIMED(test_resume());
    TIMED(test_bad_data_and_config());
    TIMED(test_bad_resume());
    TIMED(test_nonfinite());
    TIMED(test_ckpt_swap());
    TIMED(test_cli());
    if (check_failed_ == 0) {
        rm_rf(base_dir);
    } else {
        fprintf(stderr, "left the test runs in %s\n", base_dir);
    }
    return check_finish();
}
