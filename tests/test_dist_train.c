/* tests/test_dist_train.c — data-parallel training is bit-identical to one process
 * (docs/DIST.md): `mpirun -np P fqt train --grad-accum A` against `fqt train --grad-accum P*A`.
 *
 * Runs the fqt CLI ($FQT_BIN, as tests/run.sh sets it) over synthetic shards with a small
 * explicit model, GNR, validation and quantization diagnostics on, and compares the runs'
 * metrics.jsonl (every line, with the timing fields removed), ckpt/model.safetensors (bytes)
 * and the AdamW moments of ckpt/state.safetensors (its metadata holds the wall time):
 *  - P = 2 (A = 3) and P = 3 (A = 2) against one process with A = 6, for bf16, nvfp4, mxfp4,
 *    fp8 and nvfp4-nvidia;
 *  - 2 ranks -> checkpoint -> resume on 1 rank (A = 2 kept), and 1 -> 2, against a run with
 *    no interruption;
 *  - rank 1 killed (SIGKILL, FQT_DIST_FAULT) mid-run: the job fails with a message naming
 *    rank 1, the last checkpoint is intact, and resuming from it ends bit-identically;
 *  - SIGINT reaching rank 1 only: every rank stops after the same step with a checkpoint and
 *    exit status 130, and the resume ends bit-identically; rank 0 alone writes the run dir;
 *  - a fresh 2-rank run over an existing run is refused without --overwrite;
 *  - ranks given different options stop at start-up, naming the configuration;
 *  - train rows carry "comm_s" on P > 1 (not on one process).
 * Prints SKIP without mpirun or without MPI in the build. Not for: the collectives
 * themselves (test_dist.c). */
#include "check.h"

#include "fqt/fileio.h"
#include "fqt/safetensors.h"
#include "fqt/shard.h"
#include "fqt/train.h"

#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static char base[64], fqt_bin[2048], common[4096];

/* Under ASan, LeakSanitizer reports Open MPI's own allocations at exit (libmpi, hwloc and
 * MCA components dlclose'd before the report, so no suppression can name them): leak checks
 * are off for the ranks under mpirun. Single-process runs keep them. */
#ifdef FQT_SANITIZE
#define MPIRUN "ASAN_OPTIONS=detect_leaks=0 mpirun"
#else
#define MPIRUN "mpirun"
#endif

static void synth(uint16_t *tok, int64_t n, uint64_t seed) {
    uint64_t s = seed;
    uint16_t t = 0;
    for (int64_t i = 0; i < n; i++) {
        uint64_t r = fqt_splitmix64(&s);
        t = (r >> 8) % 7 == 0 ? (uint16_t)((r >> 16) % 96) : (uint16_t)((7 * t + 5) % 96);
        tok[i] = t;
    }
}

/* Run a shell command; its output goes to out (when not NULL, up to n bytes). Exit status. */
static int sh(const char *cmd, char *out, size_t n) {
    char full[8192];
    snprintf(full, sizeof full, "%s 2>&1", cmd);
    FILE *p = popen(full, "r");
    if (!p) return -1;
    size_t k = 0;
    char line[2048];
    while (fgets(line, sizeof line, p))
        if (out && k + strlen(line) + 1 < n) {
            memcpy(out + k, line, strlen(line));
            k += strlen(line);
        }
    if (out) out[k] = 0;
    int rc = pclose(p);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : 128;
}

static int train(int P, const char *recipe, const char *run, const char *extra, char *out, size_t n) {
    char cmd[8192];
    if (P == 0)
        snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=1 %s train %s --recipe %s --run-dir %s/%s %s", fqt_bin,
                 common, recipe, base, run, extra);
    else
        snprintf(cmd, sizeof cmd,
                 "OMP_NUM_THREADS=1 " MPIRUN " -np %d --oversubscribe --allow-run-as-root --mca btl self,vader "
                 "%s train %s --recipe %s --run-dir %s/%s %s",
                 P, fqt_bin, common, recipe, base, run, extra);
    return sh(cmd, out, n);
}

static int resume(int P, const char *run, const char *extra, char *out, size_t n) {
    char cmd[8192];
    char launcher[256] = "";
    if (P)
        snprintf(launcher, sizeof launcher, MPIRUN " -np %d --oversubscribe --allow-run-as-root --mca btl self,vader ", P);
    snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=1 %s%s train --resume %s/%s --quiet %s", launcher, fqt_bin,
             base, run, extra);
    return sh(cmd, out, n);
}

/* metrics.jsonl with the timing fields ("tok_per_s", "wall_s", "time", "comm_s") removed. */
static char *metrics(const char *run) {
    char path[1200];
    snprintf(path, sizeof path, "%s/%s/metrics.jsonl", base, run);
    void *d;
    size_t n;
    if (fqt_read_file(path, &d, &n)) return NULL;
    char *s = d, *o = fqt_xmalloc(n + 1);
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        if (!strncmp(s + i, ",\"tok_per_s\":", 13) || !strncmp(s + i, ",\"wall_s\":", 10) ||
            !strncmp(s + i, ",\"time\":", 8) || !strncmp(s + i, ",\"comm_s\":", 10)) {
            i++;
            while (i < n && s[i] != ',' && s[i] != '}') i++;
            continue;
        }
        o[k++] = s[i++];
    }
    o[k] = 0;
    free(d);
    return o;
}

static bool same_file(const char *a, const char *b, const char *name) {
    char pa[1200], pb[1200];
    snprintf(pa, sizeof pa, "%s/%s/ckpt/%s", base, a, name);
    snprintf(pb, sizeof pb, "%s/%s/ckpt/%s", base, b, name);
    void *da, *db;
    size_t na, nb;
    if (fqt_read_file(pa, &da, &na)) return false;
    if (fqt_read_file(pb, &db, &nb)) {
        free(da);
        return false;
    }
    bool same = na == nb && !memcmp(da, db, na);
    free(da);
    free(db);
    return same;
}

static bool same_moments(const char *a, const char *b) {
    char pa[1200], pb[1200];
    snprintf(pa, sizeof pa, "%s/%s/ckpt/state.safetensors", base, a);
    snprintf(pb, sizeof pb, "%s/%s/ckpt/state.safetensors", base, b);
    fqt_st_file *fa = NULL, *fb = NULL;
    bool same = !fqt_st_open(pa, &fa) && !fqt_st_open(pb, &fb);
    const char *names[2] = {"adam.m", "adam.v"};
    for (int i = 0; same && i < 2; i++) {
        const fqt_st_info *ta = fqt_st_find(fa, names[i]), *tb = fqt_st_find(fb, names[i]);
        same = ta && tb && ta->nbytes == tb->nbytes && !memcmp(ta->data, tb->data, ta->nbytes);
    }
    for (int i = 0; same && i < 2; i++) {
        const char *k[] = {"step", "data_rng", "tokens"};
        for (int j = 0; j < 3; j++) {
            const char *va = fqt_st_meta(fa, k[j]), *vb = fqt_st_meta(fb, k[j]);
            same = same && va && vb && !strcmp(va, vb);
        }
    }
    if (fa) fqt_st_close(fa);
    if (fb) fqt_st_close(fb);
    return same;
}

/* Runs a and b agree: metrics, model bytes, moments. */
/* The run's checkpoint is readable and holds step `step`. */
static void check_ckpt_step(const char *run, const char *step, const char *what) {
    char p2[1200];
    snprintf(p2, sizeof p2, "%s/%s/ckpt/state.safetensors", base, run);
    fqt_st_file *f = NULL;
    CHECK_MSG(fqt_st_open(p2, &f) == FQT_OK, "%s: checkpoint unreadable: %s", what, fqt_last_error());
    if (!f) return;
    const char *st = fqt_st_meta(f, "step");
    CHECK_MSG(st && !strcmp(st, step), "%s: checkpoint at step %s, expected %s", what, st ? st : "?", step);
    fqt_st_close(f);
}

static void check_same(const char *a, const char *b, const char *what) {
    char *ma = metrics(a), *mb = metrics(b);
    CHECK_MSG(ma && mb && !strcmp(ma, mb), "%s: metrics.jsonl of %s and %s differ", what, a, b);
    if (ma && mb && strcmp(ma, mb)) {
        size_t i = 0;
        while (ma[i] && ma[i] == mb[i]) i++;
        size_t from = i > 120 ? i - 120 : 0;
        fprintf(stderr, "  first difference at byte %zu:\n  %.240s\n  %.240s\n", i, ma + from, mb + from);
    }
    free(ma);
    free(mb);
    CHECK_MSG(same_file(a, b, "model.safetensors"), "%s: model.safetensors of %s and %s differ", what, a, b);
    CHECK_MSG(same_moments(a, b), "%s: AdamW moments of %s and %s differ", what, a, b);
}

int main(void) {
#ifndef FQT_HAVE_MPI
    printf("SKIP test_dist_train: built without MPI (USE_MPI=no)\n");
    return check_finish();
#else
    if (system("command -v mpirun >/dev/null 2>&1")) {
        printf("SKIP test_dist_train: mpirun not found (apt-get install openmpi-bin)\n");
        return check_finish();
    }
    const char *bin = getenv("FQT_BIN");
    snprintf(fqt_bin, sizeof fqt_bin, "%s", bin ? bin : "./fqt");
    if (access(fqt_bin, X_OK)) {
        printf("SKIP test_dist_train: no fqt binary at %s (set FQT_BIN)\n", fqt_bin);
        return check_finish();
    }
    snprintf(base, sizeof base, "/tmp/fqt_dist_XXXXXX");
    FQT_ASSERT(mkdtemp(base));
    char path[1200];
    uint16_t *tok = fqt_xmalloc(20000 * sizeof *tok);
    synth(tok, 20000, 31);
    snprintf(path, sizeof path, "%s/train_000.bin", base);
    FQT_ASSERT(fqt_shard_write(path, tok, 20000) == FQT_OK);
    synth(tok, 3000, 32);
    snprintf(path, sizeof path, "%s/val_000.bin", base);
    FQT_ASSERT(fqt_shard_write(path, tok, 3000) == FQT_OK);
    free(tok);
    /* 4 steps; GNR at 2 and 4, validation at 2 and 4, diagnostics at 4; a decayed matrix and
     * undecayed norms; a model whose slab spans several FQT_SUMSQ_CHUNKs, so shards differ. */
    snprintf(common, sizeof common,
             "--train-data '%s/train_*.bin' --val-data '%s/val_*.bin' --vocab '' --dim 64 --layers 2 "
             "--heads 4 --kv-heads 2 --ffn 128 --ctx 32 --vocab-size 96 --batch 2 --seq 32 --steps 4 "
             "--warmup 2 --lr 3e-3 --gnr-every 2 --val-every 2 --val-tokens 256 --diag-every 4 "
             "--sample-tokens 0 --quiet",
             base, base);
    static char out[1 << 16];
    const char *recipes[] = {"bf16", "nvfp4", "mxfp4", "fp8", "nvfp4-nvidia"};
    for (size_t i = 0; i < sizeof recipes / sizeof recipes[0]; i++) {
        const char *r = recipes[i];
        char one[64], two[64], three[64], what[96];
        snprintf(one, sizeof one, "%s_p1a6", r);
        snprintf(two, sizeof two, "%s_p2a3", r);
        snprintf(three, sizeof three, "%s_p3a2", r);
        int rc = train(0, r, one, "--grad-accum 6", out, sizeof out);
        CHECK_MSG(rc == 0, "%s, 1 process: exit %d\n%s", r, rc, out);
        rc = train(2, r, two, "--grad-accum 3", out, sizeof out);
        CHECK_MSG(rc == 0, "%s, 2 ranks: exit %d\n%s", r, rc, out);
        rc = train(3, r, three, "--grad-accum 2", out, sizeof out);
        CHECK_MSG(rc == 0, "%s, 3 ranks: exit %d\n%s", r, rc, out);
        snprintf(what, sizeof what, "%s P=2 A=3 vs P=1 A=6", r);
        check_same(one, two, what);
        snprintf(what, sizeof what, "%s P=3 A=2 vs P=1 A=6", r);
        check_same(one, three, what);
        printf("  %-13s P=2 x A=3 and P=3 x A=2 vs P=1 x A=6: compared\n", r);
    }

    /* Resume on another rank count: 2 ranks (A=1) stop at step 2, 1 rank continues (A=2 kept
     * by the global batch); and 1 rank (A=2) stops, 2 ranks continue. */
    int rc = train(0, "nvfp4", "ref_a2", "--grad-accum 2", out, sizeof out);
    CHECK_MSG(rc == 0, "reference: exit %d\n%s", rc, out);
    rc = train(2, "nvfp4", "r21", "--grad-accum 1 --stop-at 2", out, sizeof out);
    CHECK_MSG(rc == 0, "2 ranks to step 2: exit %d\n%s", rc, out);
    rc = resume(0, "r21", "--grad-accum 2", out, sizeof out);
    CHECK_MSG(rc == 0, "resume on 1 rank: exit %d\n%s", rc, out);
    check_same("ref_a2", "r21", "2 ranks -> resume on 1 rank with --grad-accum 2");
    rc = train(0, "nvfp4", "r12", "--grad-accum 2 --stop-at 2", out, sizeof out);
    CHECK_MSG(rc == 0, "1 rank to step 2: exit %d\n%s", rc, out);
    rc = resume(2, "r12", "", out, sizeof out);
    CHECK_MSG(rc == 0, "resume on 2 ranks: exit %d\n%s", rc, out);
    check_same("ref_a2", "r12", "1 rank -> resume on 2 ranks (global batch kept)");
    rc = resume(3, "r12", "", out, sizeof out);
    CHECK_MSG(rc != 0 && strstr(out, "grad-accum"), "global batch 2 on 3 ranks must be refused: exit %d\n%s", rc, out);

    /* A killed rank: rank 1 dies after step 3 (checkpoints every 2 steps). */
    {
        char cmd[8192];
        snprintf(cmd, sizeof cmd,
                 "FQT_DIST_FAULT=1:3 OMP_NUM_THREADS=1 " MPIRUN " -np 2 --oversubscribe --allow-run-as-root "
                 "--mca btl self,vader %s train %s --recipe nvfp4 --run-dir %s/killed --grad-accum 1 "
                 "--ckpt-every 2",
                 fqt_bin, common, base);
        rc = sh(cmd, out, sizeof out);
    }
    CHECK_MSG(rc != 0, "killed rank: the job must fail (exit %d)", rc);
    CHECK_MSG(strstr(out, "rank 1") != NULL, "killed rank: no message naming rank 1:\n%s", out);
    check_ckpt_step("killed", "2", "killed rank");
    rc = resume(2, "killed", "", out, sizeof out);
    CHECK_MSG(rc == 0, "resume after the kill: exit %d\n%s", rc, out);
    check_same("ref_a2", "killed", "killed rank 1 after step 3 -> resume from step 2 on 2 ranks");

    /* SIGINT reaching rank 1 only, during step 3: all ranks checkpoint step 3 and stop. */
    {
        char cmd[8192];
        snprintf(cmd, sizeof cmd,
                 "FQT_DIST_FAULT=1:3:INT OMP_NUM_THREADS=1 " MPIRUN " -np 2 --oversubscribe --allow-run-as-root "
                 "--mca btl self,vader %s train %s --recipe nvfp4 --run-dir %s/sigint --grad-accum 1",
                 fqt_bin, common, base);
        rc = sh(cmd, out, sizeof out);
    }
    CHECK_MSG(rc == 130, "SIGINT on rank 1: exit %d, expected 130\n%s", rc, out);
    CHECK_MSG(strstr(out, "interrupted (SIGINT) after step 3") != NULL, "SIGINT on rank 1: message\n%s", out);
    check_ckpt_step("sigint", "3", "SIGINT");
    rc = resume(2, "sigint", "", out, sizeof out);
    CHECK_MSG(rc == 0, "resume after SIGINT: exit %d\n%s", rc, out);
    check_same("ref_a2", "sigint", "SIGINT on rank 1 at step 3 -> resume on 2 ranks");
    {
        /* Rank 0 alone writes the run directory: nothing but the single-process files. */
        char cmd[2048];
        snprintf(cmd, sizeof cmd, "ls -A %s/sigint | tr '\\n' ' '", base);
        sh(cmd, out, sizeof out);
        CHECK_MSG(!strcmp(out, ".lock ckpt metrics.jsonl run.json "), "run dir of a 2-rank run holds: %s", out);
        /* comm_s on the train rows of a 2-rank run, not of one process. */
        char *m2 = NULL, *m1 = NULL;
        void *d;
        size_t n;
        char p2[1200];
        snprintf(p2, sizeof p2, "%s/sigint/metrics.jsonl", base);
        if (!fqt_read_file(p2, &d, &n)) m2 = d;
        snprintf(p2, sizeof p2, "%s/ref_a2/metrics.jsonl", base);
        if (!fqt_read_file(p2, &d, &n)) m1 = d;
        CHECK_MSG(m2 && strstr(m2, "\"kind\":\"train\"") && strstr(m2, ",\"comm_s\":"), "no comm_s in a 2-rank run");
        CHECK_MSG(m1 && !strstr(m1, "comm_s"), "comm_s in a 1-process run");
        free(m1);
        free(m2);
    }

    /* A fresh 2-rank run over an existing run is refused (rank 0 decides) without --overwrite. */
    rc = train(2, "nvfp4", "sigint", "--grad-accum 1", out, sizeof out);
    CHECK_MSG(rc != 0 && strstr(out, "already holds a run"), "2 ranks over an existing run: exit %d\n%s", rc, out);
    CHECK_MSG(same_file("ref_a2", "sigint", "model.safetensors"), "the refused run changed the existing one");

    /* Ranks given different options stop at start-up. */
    {
        char cmd[16384];
        snprintf(cmd, sizeof cmd,
                 "OMP_NUM_THREADS=1 " MPIRUN " --oversubscribe --allow-run-as-root --mca btl self,vader "
                 "-np 1 %s train %s --recipe nvfp4 --run-dir %s/disagree : -np 1 %s train %s --recipe nvfp4 "
                 "--run-dir %s/disagree --lr 0.002",
                 fqt_bin, common, base, fqt_bin, common, base);
        rc = sh(cmd, out, sizeof out);
    }
    CHECK_MSG(rc != 0 && strstr(out, "ranks disagree on the configuration") && strstr(out, "rank 1"),
              "different options: exit %d\n%s", rc, out);

    if (!check_failed_) (void)fqt_remove_tree(base);
    else fprintf(stderr, "  runs kept in %s\n", base);
    return check_finish();
#endif
}
