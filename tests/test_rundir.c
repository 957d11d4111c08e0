/* tests/test_rundir.c — a run directory under abuse (issue 13, items 1-5 and 10): crashes at
 * every file-system call of a checkpoint save, twice in a row, each followed by a resume
 * that must end bit-identical to an uninterrupted run; the run lock; fresh runs over an
 * existing run; --resume of a copied directory; a full disk under metrics.jsonl; identical
 * checkpoint bytes for identical runs; diverging runs; damaged training state.
 *
 * Crashes come from the fault hook of fqt/fileio.h (fqt_fault_arm): a forked child runs
 * fqt_train and _exits at the N-th file-system call, exactly as a kill -9 there would leave
 * the directory. Everything runs on a tiny model over synthetic shards in a mkdtemp folder,
 * single-threaded (forked children and OpenMP thread pools do not mix).
 * Not for: the training math (test_train.c, test_digest.c). */
#include "check.h"

#include "fqt/fileio.h"
#include "fqt/json.h"
#include "fqt/safetensors.h"
#include "fqt/shard.h"
#include "fqt/train.h"

#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#ifdef FQT_SANITIZE
#define CRASH_STRIDE 7 /* sanitizer builds: every 7th first-crash point */
#else
#define CRASH_STRIDE 1
#endif

static char base[256], train_glob[600], val_glob[600];

static char *rp(char *buf, size_t n, const char *run, const char *rel) {
    snprintf(buf, n, "%s/%s%s%s", base, run, rel[0] ? "/" : "", rel);
    return buf;
}

static void sh(const char *fmt, const char *a, const char *b) {
    char cmd[3000];
    snprintf(cmd, sizeof cmd, fmt, a, b);
    FQT_ASSERT(system(cmd) == 0);
}

static void copy_run(const char *from, const char *to) {
    char a[600], b[600];
    rp(a, sizeof a, from, "");
    rp(b, sizeof b, to, "");
    sh("rm -rf '%2$s' && cp -a '%1$s' '%2$s'", a, b);
}

static char *slurp(const char *path, size_t *n) {
    void *d = NULL;
    if (fqt_read_file(path, &d, n)) return NULL;
    return d;
}

static bool same_file(const char *a, const char *b) {
    size_t na = 0, nb = 0;
    char *x = slurp(a, &na), *y = slurp(b, &nb);
    bool same = x && y && na == nb && !memcmp(x, y, na);
    free(x);
    free(y);
    return same;
}

static int64_t ckpt_step(const char *dir) {
    char p[1300];
    snprintf(p, sizeof p, "%s/state.safetensors", dir);
    fqt_st_file *f = NULL;
    if (fqt_st_open(p, &f)) return -1;
    const char *v = fqt_st_meta(f, "step");
    int64_t s = v ? strtoll(v, NULL, 10) : -1;
    fqt_st_close(f);
    return s;
}

/* Train losses by step: each step exactly once, in order, all steps 1..n. */
static bool metrics_one_history(const char *run, int64_t n) {
    char p[1300];
    size_t len = 0;
    char *d = slurp(rp(p, sizeof p, run, "metrics.jsonl"), &len);
    if (!d) return false;
    int64_t expect = 1;
    bool ok = true;
    for (char *line = strtok(d, "\n"); line; line = strtok(NULL, "\n")) {
        fqt_json *j = NULL;
        if (fqt_json_parse(line, strlen(line), &j)) { ok = false; break; }
        if (!strcmp(fqt_json_get_str(j, "kind", ""), "train")) {
            int64_t s = -1;
            fqt_json_int64(fqt_json_get(j, "step"), &s);
            ok &= s == expect++;
        }
        fqt_json_free(j);
    }
    free(d);
    return ok && expect == n + 1;
}

static void synth_shard(const char *rel, int64_t n, uint64_t seed) {
    uint16_t *t = malloc((size_t)n * sizeof *t);
    uint64_t s = seed;
    uint16_t x = 0;
    for (int64_t i = 0; i < n; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        x = (s >> 40) % 10 == 0 ? (uint16_t)((s >> 44) % 63) : (uint16_t)((5 * x + 3) % 63);
        t[i] = x;
    }
    char p[800];
    snprintf(p, sizeof p, "%s/%s", base, rel);
    FQT_ASSERT(fqt_shard_write(p, t, n) == FQT_OK);
    free(t);
}

static void tiny(fqt_train_config *c, const char *run) {
    fqt_train_config_default(c);
    c->model = (fqt_model_config){0, 32, 2, 2, 2, 64, 32, 10000.0f, 1e-5f};
    snprintf(c->model_size, sizeof c->model_size, "test");
    snprintf(c->train_data, sizeof c->train_data, "%s", train_glob);
    snprintf(c->val_data, sizeof c->val_data, "%s", val_glob);
    c->vocab[0] = 0;
    c->batch = 2;
    c->seq = 16;
    c->steps = 6;
    c->lr = 1e-2;
    c->warmup = 2;
    c->gnr_every = c->diag_every = c->val_every = c->ckpt_every = 0;
    c->val_tokens = 128;
    c->sample_tokens = 0;
    c->quiet = true;
    rp(c->run_dir, sizeof c->run_dir, run, "");
}

static void resume_cfg(fqt_train_config *r) {
    fqt_train_config_default(r);
    r->steps = 0;
    r->quiet = true;
}

/* Resume run in a forked child that dies at file-system call `fault` (0: never). Returns
 * the child's exit status: FQT_FAULT_EXIT when it died there, 0 when the run finished. */
static int resume_child(const char *run, long fault) {
    fflush(NULL);
    pid_t pid = fork();
    FQT_ASSERT(pid >= 0);
    if (pid == 0) {
        char p[1200];
        fqt_train_config r;
        resume_cfg(&r);
        fqt_fault_arm(fault);
        fqt_status st = fqt_train(&r, rp(p, sizeof p, run, ""));
        if (st) fprintf(stderr, "child (fault %ld): %s\n", fault, fqt_last_error());
        _exit(st ? 1 : 0);
    }
    int ws = 0;
    FQT_ASSERT(waitpid(pid, &ws, 0) == pid);
    return WIFEXITED(ws) ? WEXITSTATUS(ws) : 128 + WTERMSIG(ws);
}

/* The run ended exactly as the reference: model and state bytes, one metrics history. */
static bool same_as_ref(const char *run, char *why, size_t wn) {
    char a[1200], b[1200];
    const char *files[] = {"ckpt/model.safetensors", "ckpt/state.safetensors", "ckpt/config.json"};
    for (int i = 0; i < 3; i++)
        if (!same_file(rp(a, sizeof a, "ref", files[i]), rp(b, sizeof b, run, files[i]))) {
            snprintf(why, wn, "%s differs", files[i]);
            return false;
        }
    if (!metrics_one_history(run, 6)) {
        snprintf(why, wn, "metrics.jsonl is not one history of 6 steps");
        return false;
    }
    return true;
}

/* ---- item 1: two crashes in a row at every file-system call of a save --------------------- */

static void test_double_crash(void) {
    fqt_train_config c;
    tiny(&c, "ref");
    FQT_ASSERT(fqt_train(&c, NULL) == FQT_OK);
    tiny(&c, "base");
    c.stop_at = 3;
    FQT_ASSERT(fqt_train(&c, NULL) == FQT_OK);
    char why[256];
    int first = 0, second = 0, exact = 0;
    for (long n = 1; n < 200; n += CRASH_STRIDE) {
        copy_run("base", "k1");
        int rc = resume_child("k1", n);
        if (rc == 0) {
            /* past the last file-system call: the run finished without a crash */
            CHECK_MSG(same_as_ref("k1", why, sizeof why), "no crash: %s", why);
            break;
        }
        CHECK_MSG(rc == FQT_FAULT_EXIT, "first crash at %ld: exit %d", n, rc);
        first++;
        /* Every second crash point (about a minute in a release build); sanitizer builds
         * take every 42nd unless FQT_CRASH_FULL=1. */
        const long mstride = getenv("FQT_CRASH_FULL") || CRASH_STRIDE == 1 ? 1 : 6 * CRASH_STRIDE;
        for (long m = 1 + n % mstride; m < 400; m += mstride) {
            copy_run("k1", "k2");
            int rc2 = resume_child("k2", m);
            bool crashed = rc2 == FQT_FAULT_EXIT;
            if (crashed) {
                second++;
                rc2 = resume_child("k2", 0);
            }
            bool ok = rc2 == 0 && same_as_ref("k2", why, sizeof why);
            CHECK_MSG(ok, "crash at call %ld, then at call %ld%s: exit %d, %s", n, m,
                      crashed ? "" : " (not reached)", rc2, rc2 ? "resume failed" : why);
            exact += ok;
            if (!crashed || !ok) break; /* past the second run's last call, or a failure */
        }
    }
    CHECK_MSG(first > 20 / CRASH_STRIDE && second > 20 / CRASH_STRIDE, "only %d first and %d second crash points", first, second);
    printf("crash test: %d first crash points, %d second crash points, %d exact resumes\n", first, second, exact);
}

/* ---- item 4: the lock ------------------------------------------------------------------ */

static void test_lock(void) {
    char p[1200];
    fqt_train_config c;
    tiny(&c, "locked");
    c.stop_at = 2;
    FQT_ASSERT(fqt_train(&c, NULL) == FQT_OK);
    /* Another process holds the lock (as a running trainer would). */
    int fd = -1;
    int pfd[2];
    FQT_ASSERT(pipe(pfd) == 0);
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        close(pfd[0]);
        if (fqt_rundir_lock(rp(p, sizeof p, "locked", ""), &fd)) _exit(1);
        FQT_ASSERT(write(pfd[1], "x", 1) == 1);
        pause();
        _exit(0);
    }
    close(pfd[1]);
    char x;
    FQT_ASSERT(read(pfd[0], &x, 1) == 1);
    size_t n0 = 0, n1 = 0;
    char *before = slurp(rp(p, sizeof p, "locked", "metrics.jsonl"), &n0);
    fqt_train_config r;
    resume_cfg(&r);
    fqt_status st = fqt_train(&r, rp(p, sizeof p, "locked", ""));
    CHECK_MSG(st != FQT_OK && strstr(fqt_last_error(), "in use by another fqt process") &&
                  strstr(fqt_last_error(), "pid"),
              "resume beside a running trainer: %d %s", st, fqt_last_error());
    tiny(&c, "locked");
    c.overwrite = true;
    st = fqt_train(&c, NULL);
    CHECK_MSG(st != FQT_OK && strstr(fqt_last_error(), "in use"), "fresh run beside a running trainer: %s",
              fqt_last_error());
    char *after = slurp(rp(p, sizeof p, "locked", "metrics.jsonl"), &n1);
    CHECK(before && after && n0 == n1 && !memcmp(before, after, n0));
    free(before);
    free(after);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    /* The holder is gone (killed): the lock went with it. */
    resume_cfg(&r);
    st = fqt_train(&r, rp(p, sizeof p, "locked", ""));
    CHECK_MSG(st == FQT_OK, "resume after the holder died: %s", fqt_last_error());
}

/* ---- items 3 and 5: a copied run, fresh starts over a run, identical bytes, full disk ---- */

static void test_copy_and_fresh(void) {
    char p[1200], q[1200];
    fqt_train_config c;
    tiny(&c, "orig");
    c.stop_at = 3;
    FQT_ASSERT(fqt_train(&c, NULL) == FQT_OK);
    copy_run("orig", "copy");
    size_t n0 = 0;
    char *orig_metrics = slurp(rp(p, sizeof p, "orig", "metrics.jsonl"), &n0);
    fqt_train_config r;
    resume_cfg(&r);
    fqt_status st = fqt_train(&r, rp(p, sizeof p, "copy", ""));
    CHECK_MSG(st == FQT_OK, "%s", fqt_last_error());
    CHECK_MSG(!strcmp(r.run_dir, rp(p, sizeof p, "copy", "")), "resumed into %s", r.run_dir);
    CHECK(ckpt_step(rp(p, sizeof p, "copy", "ckpt")) == 6);
    CHECK_MSG(ckpt_step(rp(p, sizeof p, "orig", "ckpt")) == 3, "the original was written to");
    size_t n1 = 0;
    char *m1 = slurp(rp(p, sizeof p, "orig", "metrics.jsonl"), &n1);
    CHECK(orig_metrics && m1 && n0 == n1 && !memcmp(orig_metrics, m1, n0));
    free(m1);
    /* Resuming RUN/ckpt writes into RUN. */
    copy_run("orig", "copy2");
    resume_cfg(&r);
    st = fqt_train(&r, rp(p, sizeof p, "copy2", "ckpt"));
    CHECK_MSG(st == FQT_OK && ckpt_step(rp(q, sizeof q, "copy2", "ckpt")) == 6, "%s", fqt_last_error());

    /* Identical runs write identical checkpoint bytes (no wall time in state.safetensors). */
    CHECK(same_file(rp(p, sizeof p, "copy", "ckpt/state.safetensors"),
                    rp(q, sizeof q, "copy2", "ckpt/state.safetensors")));
    CHECK(same_file(rp(p, sizeof p, "copy", "ckpt/model.safetensors"),
                    rp(q, sizeof q, "copy2", "ckpt/model.safetensors")));
    CHECK(fqt_file_exists(rp(p, sizeof p, "copy", "ckpt/timing.json"), NULL));

    /* A fresh start that fails (no such data), even with --overwrite, leaves the run alone. */
    tiny(&c, "orig");
    c.overwrite = true;
    snprintf(c.train_data, sizeof c.train_data, "%s/nodata/t_*.bin", base);
    st = fqt_train(&c, NULL);
    CHECK(st != FQT_OK);
    m1 = slurp(rp(p, sizeof p, "orig", "metrics.jsonl"), &n1);
    CHECK_MSG(m1 && n0 == n1 && !memcmp(orig_metrics, m1, n0), "a failed fresh start changed metrics.jsonl");
    CHECK(ckpt_step(rp(p, sizeof p, "orig", "ckpt")) == 3);
    free(m1);
    free(orig_metrics);
}

static void test_full_disk(void) {
    char p[1200];
    fqt_train_config c;
    tiny(&c, "full");
    c.steps = 400;
    c.ckpt_every = 0;
    fflush(NULL);
    pid_t pid = fork();
    if (pid == 0) {
        /* Files may not grow past 6000 bytes: run.json fits, metrics.jsonl soon does not. */
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = {6000, 6000};
        setrlimit(RLIMIT_FSIZE, &rl);
        fqt_status st = fqt_train(&c, NULL);
        const char *e = fqt_last_error();
        _exit(st == FQT_ERR_IO && strstr(e, "metrics.jsonl") && strstr(e, "write failed") ? 0 : 1);
    }
    int ws = 0;
    waitpid(pid, &ws, 0);
    CHECK_MSG(WIFEXITED(ws) && WEXITSTATUS(ws) == 0, "a metrics write error was not reported as such");
    CHECK(!fqt_file_exists(rp(p, sizeof p, "full", "ckpt/model.safetensors"), NULL));
}

/* ---- item 2: a diverging run neither checkpoints nor claims success ------------------------ */

static bool all_finite_small(const char *dir, double bound) {
    char p[1300];
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    fqt_st_file *f = NULL;
    if (fqt_st_open(p, &f)) return false;
    bool ok = true;
    for (int64_t i = 0; i < fqt_st_count(f) && ok; i++) {
        const fqt_st_info *t = fqt_st_at(f, i);
        const float *x = t->data;
        for (int64_t j = 0; j < t->numel && ok; j++) ok = isfinite(x[j]) && fabs(x[j]) < bound;
    }
    fqt_st_close(f);
    return ok;
}

static void test_diverge(void) {
    char p[1200];
    fqt_train_config c;
    /* lr 1e30: the run must fail, and no checkpoint with exploded weights is written. */
    tiny(&c, "div_lr");
    c.lr = 1e30;
    c.steps = 4;
    fqt_status st = fqt_train(&c, NULL);
    CHECK_MSG(st == FQT_ERR_NONFINITE, "lr 1e30: status %d (%s)", st, fqt_last_error());
    CHECK(!fqt_file_exists(rp(p, sizeof p, "div_lr", "ckpt/model.safetensors"), NULL) ||
          all_finite_small(rp(p, sizeof p, "div_lr", "ckpt"), 1e3));
    /* QAF re-warm to 1e30 x lr with periodic checkpoints: ckpt/ keeps the last good model. */
    tiny(&c, "div_qaf");
    c.steps = 20;
    c.warmup = 2;
    c.qaf_steps = 10;
    c.qaf_lr_frac = 1e30;
    c.ckpt_every = 2;
    c.max_bad_steps = 3;
    st = fqt_train(&c, NULL);
    CHECK_MSG(st == FQT_ERR_NONFINITE, "qaf lr 1e30: status %d", st);
    CHECK_MSG(all_finite_small(rp(p, sizeof p, "div_qaf", "ckpt"), 1e3), "diverged weights in ckpt/ (step %lld)",
              (long long)ckpt_step(p));
}

/* ---- item 10: damaged training state --------------------------------------------------- */

static void rewrite_state(const char *run, const char *key, const char *val, bool nan_moment) {
    char p[1200];
    rp(p, sizeof p, run, "ckpt/state.safetensors");
    fqt_st_file *f = NULL;
    FQT_ASSERT(fqt_st_open(p, &f) == FQT_OK);
    const fqt_st_info *mo = fqt_st_find(f, "adam.m"), *ve = fqt_st_find(f, "adam.v");
    float *buf = malloc(mo->nbytes + ve->nbytes);
    memcpy(buf, mo->data, mo->nbytes);
    memcpy((char *)buf + mo->nbytes, ve->data, ve->nbytes);
    if (nan_moment) buf[5] = NAN;
    const char *keys[] = {"step", "data_rng", "qaf_start", "qaf_lr0", "gnr_low", "tokens", "bad_steps", "recipe"};
    char vals[8][128];
    const char *meta[17];
    for (int i = 0; i < 8; i++) {
        const char *v = fqt_st_meta(f, keys[i]);
        snprintf(vals[i], sizeof vals[i], "%s", !strcmp(keys[i], key) ? val : v ? v : "");
        meta[2 * i] = keys[i];
        meta[2 * i + 1] = vals[i];
    }
    meta[16] = NULL;
    fqt_st_tensor t[2] = {{"adam.m", FQT_ST_F32, 1, {mo->numel}, buf},
                          {"adam.v", FQT_ST_F32, 1, {ve->numel}, buf + mo->numel}};
    int64_t numel = mo->numel;
    (void)numel;
    fqt_st_close(f);
    FQT_ASSERT(fqt_st_write(p, t, 2, meta) == FQT_OK);
    free(buf);
}

static void test_bad_state(void) {
    char p[1200];
    fqt_train_config c;
    tiny(&c, "st_base");
    c.stop_at = 3;
    FQT_ASSERT(fqt_train(&c, NULL) == FQT_OK);
    struct { const char *key, *val; bool nan; const char *msg; } cases[] = {
        {"step", "999999", false, "past the run"},
        {"data_rng", "banana", false, "metadata"},
        {"qaf_lr0", "nan", false, "metadata"},
        {"tokens", "-5", false, "metadata"},
        {"", "", true, "moment"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        copy_run("st_base", "st_bad");
        rewrite_state("st_bad", cases[i].key, cases[i].val, cases[i].nan);
        fqt_train_config r;
        resume_cfg(&r);
        fqt_status st = fqt_train(&r, rp(p, sizeof p, "st_bad", ""));
        CHECK_MSG(st == FQT_ERR_FORMAT && strstr(fqt_last_error(), "state.safetensors") &&
                      strstr(fqt_last_error(), cases[i].msg),
                  "%s=%s: %d %s", cases[i].key, cases[i].val, st, fqt_last_error());
    }
    /* train.json with seq > ctx names the file. */
    copy_run("st_base", "st_bad");
    char cmd[1400];
    rp(p, sizeof p, "st_bad", "ckpt/train.json");
    snprintf(cmd, sizeof cmd, "sed -i 's/\"seq\": 16/\"seq\": 64/' '%s'", p);
    FQT_ASSERT(system(cmd) == 0);
    fqt_train_config r;
    resume_cfg(&r);
    fqt_status st = fqt_train(&r, rp(p, sizeof p, "st_bad", ""));
    CHECK_MSG(st != FQT_OK && strstr(fqt_last_error(), "train.json"), "seq > ctx: %s", fqt_last_error());
}

int main(void) {
    /* One thread before any parallel region: no OpenMP pool for forked children to inherit. */
#ifdef _OPENMP
    omp_set_num_threads(1);
#endif
    snprintf(base, sizeof base, "/tmp/fqt_test_rundir_XXXXXX");
    if (!mkdtemp(base)) {
        perror("mkdtemp");
        return 1;
    }
    char d[600];
    snprintf(d, sizeof d, "%s/data", base);
    FQT_ASSERT(fqt_mkdir_p(d) == FQT_OK);
    synth_shard("data/train_000.bin", 8000, 11);
    synth_shard("data/val_000.bin", 2000, 13);
    snprintf(train_glob, sizeof train_glob, "%s/data/train_*.bin", base);
    snprintf(val_glob, sizeof val_glob, "%s/data/val_*.bin", base);
    test_lock();
    test_copy_and_fresh();
    test_full_disk();
    test_diverge();
    test_bad_state();
    test_double_crash();
    if (check_failed_ == 0) sh("rm -rf '%s'%s", base, "");
    else fprintf(stderr, "left the test runs in %s\n", base);
    return check_finish();
}
