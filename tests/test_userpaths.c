/* tests/test_userpaths.c — the paths a user walks with the `fqt` binary (FQT_BIN): own text
 * through `fqt prepare --input` to a trained checkpoint that carries its tokenizer, the
 * tokenizer taken from the data's manifest (and a wrong one refused), `fqt tokenize` shards,
 * --init-from, SIGINT and periodic checkpoints, report outputs, and the CLI conventions
 * (--key=value, shell-expanded globs, did you mean, --version, warnings, one message per
 * error). Everything runs on a tiny explicit model in a mkdtemp folder, removed when all
 * checks passed. SKIPs without FQT_BIN. Not for: the run loop's numerics (test_train.c). */
#include "check.h"

#include "fqt/fileio.h"
#include "fqt/json.h"
#include "fqt/sha512.h"

#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static char base[64];
static char out_s[1 << 16], err_s[1 << 16];
#define TINY "--dim 32 --layers 2 --heads 2 --ffn 64 --ctx 32 --seq 32 --batch 4 --quiet"

static char *slurp(const char *rel) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", base, rel);
    void *d;
    size_t n;
    return fqt_read_file(p, &d, &n) ? NULL : d;
}

static bool has(const char *rel) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", base, rel);
    return access(p, F_OK) == 0;
}

static void spit(const char *rel, const char *text) {
    char p[512];
    snprintf(p, sizeof p, "%s/%s", base, rel);
    FQT_ASSERT(!fqt_write_file_atomic(p, text, strlen(text)));
}

/* Run `fqt ARGS` in base; stdout/stderr into out_s/err_s; the exit status (128+sig if killed). */
static int fqt(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fqt(const char *fmt, ...) {
    char args[4096], cmd[5000];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    snprintf(cmd, sizeof cmd, "cd '%s' && OMP_NUM_THREADS=1 '%s' %s >out.txt 2>err.txt", base, getenv("FQT_BIN"), args);
    int rc = system(cmd);
    char *o = slurp("out.txt"), *e = slurp("err.txt");
    snprintf(out_s, sizeof out_s, "%s", o ? o : "");
    snprintf(err_s, sizeof err_s, "%s", e ? e : "");
    free(o);
    free(e);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128 + WTERMSIG(rc);
}

static int count(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

static fqt_json *json_of(const char *rel) {
    char *d = slurp(rel);
    fqt_json *j = NULL;
    if (d && fqt_json_parse(d, strlen(d), &j)) j = NULL;
    free(d);
    return j;
}

static void corpus(void) {
    FQT_ASSERT(system("true") == 0);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s/texts'", base);
    FQT_ASSERT(system(cmd) == 0);
    const char *w[] = {"the", "people", "of", "congress", "nation", "our", "economy", "will", "we",
                       "must", "free", "work", "year", "law", "state", "it's", "1787,", "peace."};
    uint64_t s = 7;
    for (int d = 0; d < 24; d++) {
        fqt_buf b = {0};
        for (int k = 0; k < 300; k++) fqt_buf_printf(&b, "%s%s", w[fqt_splitmix64(&s) % 18], k % 17 == 16 ? "\n" : " ");
        char rel[64];
        snprintf(rel, sizeof rel, "texts/speech_%02d.txt", d);
        spit(rel, b.s);
        fqt_buf_free(&b);
    }
}

static void test_prepare(void) {
    CHECK_MSG(fqt("prepare --input texts --vocab-size 320 --out d") == 0, "%s", err_s);
    fqt_json *m = json_of("d/manifest.json");
    CHECK_MSG(m != NULL, "d/manifest.json missing or not JSON");
    if (m) {
        const fqt_json *t = fqt_json_get(m, "tokenizer");
        CHECK(!strcmp(fqt_json_get_str(t, "file", ""), "tokenizer.bpe"));
        char *tokf = slurp("d/tokenizer.bpe");
        unsigned char dig[64];
        char hex[129] = "";
        if (tokf) { fqt_sha512(tokf, strlen(tokf), dig); fqt_hex(dig, 64, hex); }
        CHECK_MSG(!strcmp(fqt_json_get_str(t, "sha512", ""), hex), "manifest digest is the tokenizer's SHA-512");
        free(tokf);
        const fqt_json *docs = fqt_json_get(m, "documents");
        CHECK(fqt_json_get_num(docs, "train", 0) == 23 && fqt_json_get_num(docs, "val", 0) == 1);
        fqt_json_free(m);
    }
    CHECK(has("d/train_000.bin") && has("d/val_000.bin"));
    /* Re-running into a prepared folder is refused without --force. */
    CHECK(fqt("prepare --input texts --out d") != 0 && strstr(err_s, "--force"));
    /* JSONL: one document per line; a bad line names file and line, nothing is written. */
    spit("c.jsonl", "{\"text\": \"first document, it's short.\"}\n\n{\"text\": \"second one\\nwith a newline\"}\n"
                    "{\"text\": \"third\"}\n");
    CHECK_MSG(fqt("prepare --input c.jsonl --vocab-size 260 --out j") == 0, "%s", err_s);
    m = json_of("j/manifest.json");
    CHECK(m && fqt_json_get_num(fqt_json_get(m, "documents"), "train", 0) == 2);
    fqt_json_free(m);
    spit("bad.jsonl", "{\"text\": \"fine\"}\n{\"txt\": \"no text field\"}\n");
    CHECK(fqt("prepare --input bad.jsonl --out jb") != 0 && strstr(err_s, "bad.jsonl:2") && strstr(err_s, "\"text\""));
    CHECK(!has("jb"));
    spit("latin1.txt", "caf\xe9 au lait\n");
    CHECK(fqt("prepare --input latin1.txt --out l1") != 0 && strstr(err_s, "latin1.txt") && strstr(err_s, "UTF-8") &&
          strstr(err_s, "offset 3"));
    CHECK(!has("l1"));
    CHECK(fqt("prepare --input 'nothere/*.txt' --out n") != 0 && strstr(err_s, "no file matches"));
    /* One document: its tail is validation. */
    CHECK_MSG(fqt("prepare --input texts/speech_00.txt --vocab-size 260 --out one") == 0, "%s", err_s);
    CHECK(has("one/val_000.bin") && strstr(out_s, "tail"));
}

static int64_t metric_rows(const char *run, const char *kind, const char *field) {
    char rel[256];
    snprintf(rel, sizeof rel, "%s/metrics.jsonl", run);
    char *d = slurp(rel);
    int64_t n = 0, with = 0;
    char k[64];
    snprintf(k, sizeof k, "\"kind\":\"%s\"", kind);
    for (char *line = d ? strtok(d, "\n") : NULL; line; line = strtok(NULL, "\n"))
        if (strstr(line, k)) { n++; with += strstr(line, field) != NULL; }
    free(d);
    return n == with ? n : -1;
}

static void test_train_own_text(void) {
    /* The tokenizer comes from the data's manifest: no --vocab, no SOTU tokenizer. */
    int rc = fqt("train --train-data 'd/train_*.bin' --val-data=d/val_000.bin " TINY " --steps 6 --warmup 2 "
                 "--val-every 3 --run-dir r1 --sample-tokens 8");
    CHECK_MSG(rc == 0, "rc %d: %s", rc, err_s);
    fqt_json *r = json_of("r1/run.json");
    CHECK(r && !strcmp(fqt_json_get_str(r, "vocab", ""), "d/tokenizer.bpe"));
    CHECK(r && strlen(fqt_json_get_str(r, "tokenizer_sha512", "")) == 128);
    CHECK(r && fqt_json_get_num(fqt_json_get(r, "model"), "vocab", 0) == 320);
    /* Version, commit and start time in run.json. */
    CHECK(r && strlen(fqt_json_get_str(r, "git_commit", "")) > 0 && strlen(fqt_json_get_str(r, "fqt_version", "")) > 0);
    CHECK(r && fqt_json_get_num(r, "start_unix", 0) > 1.6e9 && strlen(fqt_json_get_str(r, "started_at", "")) == 20);
    fqt_json_free(r);
    /* Every metrics row carries "time". */
    CHECK(metric_rows("r1", "train", "\"time\":") == 6 && metric_rows("r1", "val", "\"time\":") == 2);
    CHECK(!strstr(err_s, "cannot decode"));
    /* The checkpoint carries its tokenizer. */
    const char *files[] = {"tokenizer.json", "tokenizer_config.json", "generation_config.json", "tokenizer.bpe"};
    for (int i = 0; i < 4; i++) {
        char rel[128];
        snprintf(rel, sizeof rel, "r1/ckpt/%s", files[i]);
        CHECK_MSG(has(rel), "%s missing", rel);
    }
    fqt_json *cfg = json_of("r1/ckpt/config.json");
    CHECK(cfg && fqt_json_get_num(cfg, "bos_token_id", -1) == 319 && fqt_json_get_num(cfg, "eos_token_id", -1) == 319);
    fqt_json_free(cfg);
    /* fqt sample finds the checkpoint's tokenizer even when the data folder is gone. */
    FQT_ASSERT(system("true") == 0);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "mv '%s/d/tokenizer.bpe' '%s/d/tokenizer.moved'", base, base);
    FQT_ASSERT(system(cmd) == 0);
    CHECK_MSG(fqt("sample --ckpt r1 --prompt 'the people' --max-tokens 5") == 0, "%s", err_s);
    snprintf(cmd, sizeof cmd, "mv '%s/d/tokenizer.moved' '%s/d/tokenizer.bpe'", base, base);
    FQT_ASSERT(system(cmd) == 0);
    /* A tokenizer that is not the data's is refused. */
    CHECK(fqt("train --train-data 'd/train_*.bin' --val-data 'd/val_*.bin' " TINY " --steps 2 --run-dir r2 "
              "--vocab j/tokenizer.bpe") != 0 && strstr(err_s, "is not the tokenizer the data was made with"));
    CHECK(!has("r2/ckpt"));
}

/* The reported bug: shards from `fqt tokenize` with another tokenizer decoded with the
 * default one. Now the shards' folder names its tokenizer, and shell-expanded file lists
 * are accepted. */
static void test_tokenize_path(void) {
    char *all = slurp("texts/speech_01.txt");
    fqt_buf b = {0};
    for (int i = 0; i < 4; i++) fqt_buf_printf(&b, "%s", all);
    spit("mine.txt", b.s);
    spit("more.txt", all);
    fqt_buf_free(&b);
    free(all);
    CHECK_MSG(fqt("tokenize --vocab j/tokenizer.bpe mine.txt t") == 0, "%s", err_s);
    CHECK_MSG(fqt("tokenize --vocab=j/tokenizer.bpe --prefix zval more.txt t") == 0, "%s", err_s);
    CHECK(has("t/manifest.json") && has("t/tokenizer.bpe"));
    CHECK(fqt("tokenize --vocab d/tokenizer.bpe more.txt t") != 0 && strstr(err_s, "another tokenizer"));
    int rc = fqt("train --train-data t/mine_000.bin t/zval_000.bin --val-data t/zval_000.bin " TINY
                 " --steps 2 --run-dir r3 --sample-tokens 4");
    CHECK_MSG(rc == 0, "rc %d: %s", rc, err_s);
    fqt_json *r = json_of("r3/run.json");
    CHECK(r && !strcmp(fqt_json_get_str(r, "vocab", ""), "t/tokenizer.bpe"));
    CHECK(r && !strcmp(fqt_json_get_str(r, "train_data", ""), "{t/mine_000.bin,t/zval_000.bin}"));
    fqt_json_free(r);
    CHECK(!strstr(err_s, "cannot decode"));
}

static void test_init_from(void) {
    /* lr 0: the weights stay those of r1, so the validation loss is r1's. */
    int rc = fqt("train --init-from r1 --train-data 'd/train_*.bin' --val-data 'd/val_*.bin' --seq 32 --batch 4 "
                 "--quiet --steps 1 --lr 0 --warmup 0 --run-dir r4");
    CHECK_MSG(rc == 0, "rc %d: %s", rc, err_s);
    char *a = slurp("r1/metrics.jsonl"), *b = slurp("r4/metrics.jsonl");
    char *fa = a ? strstr(a, "\"kind\":\"final\"") : NULL, *fb = b ? strstr(b, "\"kind\":\"final\"") : NULL;
    char *la = fa ? strstr(fa, "\"val_loss\":") : NULL, *lb = fb ? strstr(fb, "\"val_loss\":") : NULL;
    CHECK_MSG(la && lb && !strncmp(la, lb, 30), "init-from r1 with lr 0 keeps r1's val loss");
    free(a);
    free(b);
    CHECK(fqt("train --init-from r1 --train-data 'd/train_*.bin' --val-data 'd/val_*.bin' --dim 64 --layers 2 "
              "--heads 2 --ffn 64 --ctx 32 --seq 32 --batch 4 --steps 1 --run-dir r5") != 0 &&
          strstr(err_s, "hidden_size 32") && count(err_s, "hidden_size") == 1);
    CHECK(fqt("train --init-from r1 --train-data 't/mine_*.bin' --val-data 't/zval_*.bin' --seq 32 --batch 4 "
              "--steps 1 --run-dir r6") != 0 && strstr(err_s, "another tokenizer"));
    CHECK(fqt("train --init-from nowhere --steps 1 --run-dir r7") != 0 && strstr(err_s, "nowhere"));
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Start a long run in the background, signal it once some steps are logged. */
static int signalled_run(const char *run, const char *extra, int sig) {
    char cmd[3000];
    snprintf(cmd, sizeof cmd, "cd '%s' && OMP_NUM_THREADS=1 exec '%s' train --train-data 'd/train_*.bin' --val-data "
             "'d/val_*.bin' " TINY " --steps 1000000 --val-every 0 --gnr-every 0 --diag-every 0 --run-dir %s %s "
             "2>err.txt", base, getenv("FQT_BIN"), run, extra);
    pid_t pid = fork();
    FQT_ASSERT(pid >= 0);
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    char rel[128];
    snprintf(rel, sizeof rel, "%s/metrics.jsonl", run);
    double t0 = now();
    for (;;) {
        char *m = slurp(rel);
        int rows = m ? count(m, "\"kind\":\"train\"") : 0;
        free(m);
        if (rows >= 3 || now() - t0 > 60) break;
        usleep(20000);
    }
    usleep(200000);
    kill(pid, sig);
    int status;
    waitpid(pid, &status, 0);
    char *e = slurp("err.txt");
    snprintf(err_s, sizeof err_s, "%s", e ? e : "");
    free(e);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int64_t ckpt_step(const char *run) {
    char rel[128];
    snprintf(rel, sizeof rel, "%s/ckpt/train.json", run);
    if (!has(rel)) return -1;
    CHECK(fqt("train --resume %s --stop-at 1 --quiet", run) == 0 || 1);
    /* the state's step from the metadata */
    snprintf(rel, sizeof rel, "%s/ckpt/state.safetensors", run);
    char *d = slurp(rel);
    const char *p = d ? strstr(d + 8, "\"step\":\"") : NULL;
    int64_t s = p ? strtoll(p + 8, NULL, 10) : -1;
    free(d);
    return s;
}

static void test_signals(void) {
    int rc = signalled_run("s1", "", SIGINT);
    CHECK_MSG(rc == 130, "SIGINT: exit %d: %s", rc, err_s);
    CHECK_MSG(strstr(err_s, "resume with: fqt train --resume s1"), "%s", err_s);
    CHECK(has("s1/ckpt/state.safetensors"));
    rc = signalled_run("s2", "", SIGTERM);
    CHECK_MSG(rc == 143 && strstr(err_s, "SIGTERM"), "SIGTERM: exit %d", rc);
    /* Periodic checkpoints: killed hard, the run still has one. */
    rc = signalled_run("s3", "--ckpt-minutes 0.0001", SIGKILL);
    CHECK(rc == 137);
    char *d = slurp("s3/ckpt/state.safetensors");
    const char *p = d ? strstr(d + 8, "\"step\":\"") : NULL;
    CHECK_MSG(p && strtoll(p + 8, NULL, 10) > 0, "a time-based checkpoint exists after SIGKILL");
    free(d);
    (void)ckpt_step;
    /* And the default is on. */
    CHECK(fqt("train --help") == 0 && strstr(out_s, "--ckpt-minutes") && strstr(out_s, "(default 10)"));
}

static void test_report(void) {
    char cmd[400];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s/rep' && cp -r '%s/r1' '%s/rep/a' && cp -r '%s/r1' '%s/rep/b'", base, base,
             base, base, base);
    FQT_ASSERT(system(cmd) == 0);
    CHECK_MSG(fqt("report rep/a rep/b --csv rep/t.csv") == 0, "%s", err_s);
    /* Same recipe twice: named by directory. */
    CHECK(strstr(out_s, "rep/a") && strstr(out_s, "rep/b"));
    char *csv = slurp("rep/t.csv");
    CHECK(csv && !strncmp(csv, "run,recipe,steps,tokens,val_loss", 32) && count(csv, "\r\n") == 3 && strstr(csv, "rep/a,nvfp4,6,"));
    free(csv);
    /* Short runs are not smoothed, and the label says so. */
    char *svg = slurp("rep/report.svg");
    CHECK(svg && !strstr(svg, "EMA") && strstr(svg, "not smoothed"));
    free(svg);
    spit("rep/report.svg", "mine");
    CHECK(fqt("report rep/a rep/b") == 2 && strstr(err_s, "--out"));
    svg = slurp("rep/report.svg");
    CHECK(svg && !strcmp(svg, "mine"));
    free(svg);
    CHECK(fqt("report rep/a --force") == 0);
    svg = slurp("rep/report.svg");
    CHECK(svg && strcmp(svg, "mine"));
    free(svg);
}

static void test_cli(void) {
    CHECK(fqt("--version") == 0 && !strncmp(out_s, "fqt ", 4) && strstr(out_s, "commit"));
    CHECK(fqt("train --steps=ten") == 2 && strstr(err_s, "ten"));
    CHECK(fqt("train --val-evry 3") == 2 && strstr(err_s, "did you mean --val-every?"));
    CHECK(fqt("sample --ckpt=r1 --promt x") == 2 && strstr(err_s, "did you mean --prompt?"));
    CHECK(fqt("report --csvv x r1") == 2 && strstr(err_s, "did you mean --csv?"));
    CHECK(fqt("trian") == 2 && strstr(err_s, "did you mean 'train'?"));
    CHECK(fqt("train --model huge") == 2 && count(err_s, "huge") == 1 && count(err_s, "\n") == 1);
    CHECK(fqt("train --lr") == 2 && strstr(err_s, "needs a value"));
    /* Contradicting settings: a warning, then the run. */
    int rc = fqt("train --train-data=d/train_000.bin --val-data=d/val_000.bin " TINY " --steps=3 --warmup=5 --run-dir r8");
    CHECK_MSG(rc == 0 && strstr(err_s, "warning: --warmup 5 >= --steps 3"), "rc %d: %s", rc, err_s);
    fqt_json *r = json_of("r8/run.json");
    CHECK(r && fqt_json_get_num(r, "steps", 0) == 3 && fqt_json_get_num(r, "warmup", 0) == 5);
    fqt_json_free(r);
    CHECK(fqt("train --train-data d/train_000.bin d/nothere.bin --steps 1 --run-dir r9") == 2 && strstr(err_s, "nothere"));
    CHECK(fqt("train stray") == 2 && strstr(err_s, "stray"));
}

int main(void) {
    if (!getenv("FQT_BIN")) {
        printf("SKIP user paths (FQT_BIN not set)\n");
        return check_finish();
    }
    snprintf(base, sizeof base, "/tmp/fqt_userpaths_XXXXXX");
    FQT_ASSERT(mkdtemp(base));
    corpus();
    test_prepare();
    test_train_own_text();
    test_tokenize_path();
    test_init_from();
    test_signals();
    test_report();
    test_cli();
    if (!check_failed_) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", base);
        if (system(cmd)) fprintf(stderr, "could not remove %s\n", base);
    } else {
        fprintf(stderr, "kept %s for inspection\n", base);
    }
    return check_finish();
}
