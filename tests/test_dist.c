/* tests/test_dist.c — the collectives of fqt/dist.h, bit for bit, on 1, 2 and 3 ranks.
 *
 * Run plainly (as tests/run.sh does), the binary checks the world of one and then starts
 * itself under `mpirun -np P --oversubscribe --allow-run-as-root` for P = 2 and 3 (with small
 * message rounds, FQT_DIST_ROUND, so the round logic is exercised), and counts each rank's
 * result line. Without MPI in the build, or without mpirun, that part prints a SKIP line.
 * Under mpirun (a worker), it runs the checks on its rank and prints "rank R: N passed, N
 * failed". Not for: training across ranks (test_dist_train.c). */
#include "check.h"

#include "fqt/dist.h"

#include <math.h>
#include <stdlib.h>
#include <unistd.h>

/* A float that depends on (rank, i) with magnitudes spread over many binades, so that the
 * order of a sum changes its bits. */
static float val(int q, int64_t i) {
    uint64_t s = (uint64_t)q * 0x9E3779B97F4A7C15ull + (uint64_t)i * 0xBF58476D1CE4E5B9ull + 1;
    uint64_t r = fqt_splitmix64(&s);
    float m = (float)((r >> 40) & 0xFFFFFF) / 16777216.0f - 0.5f;
    int e = (int)((r >> 8) % 24) - 12;
    return ldexpf(m, e);
}

static void checks(void) {
    const fqt_dist_info *w = fqt_dist_world();
    const int P = w->size, me = w->rank;

    /* Shard bounds: cover [0, n), multiples of the alignment, non-decreasing. */
    const int64_t ns[] = {0, 1, 4095, 4096, 4097, 100000, 123457};
    for (size_t k = 0; k < sizeof ns / sizeof ns[0]; k++) {
        int64_t b[8];
        fqt_dist_shard_bounds(ns[k], P, 4096, b);
        bool ok = b[0] == 0 && b[P] == ns[k];
        for (int r = 0; r < P; r++) ok = ok && b[r] <= b[r + 1] && (b[r] % 4096 == 0 || b[r] == ns[k]);
        CHECK_MSG(ok, "bounds of n=%lld over %d ranks", (long long)ns[k], P);
    }

    /* Broadcast and all-gather of bytes. */
    char buf[64];
    snprintf(buf, sizeof buf, "from rank %d", me);
    fqt_dist_bcast(buf, sizeof buf, P - 1);
    char want[64];
    snprintf(want, sizeof want, "from rank %d", P - 1);
    CHECK_MSG(!strcmp(buf, want), "bcast: '%s'", buf);
    int64_t mine = 1000 + me, all[8];
    fqt_dist_allgather(&mine, sizeof mine, all);
    for (int r = 0; r < P; r++) CHECK(all[r] == 1000 + r);

    /* All-gather(v) of uneven ranges (one empty) in place, float and double. */
    const int64_t n = 50001;
    int64_t b[8];
    fqt_dist_shard_bounds(n, P, 1000, b);
    if (P > 1) b[1] = b[0]; /* an empty shard */
    float *x = fqt_xmalloc((size_t)n * sizeof(float));
    double *d = fqt_xmalloc((size_t)n * sizeof(double));
    for (int64_t i = 0; i < n; i++) {
        int owner = 0;
        while (i >= b[owner + 1]) owner++;
        x[i] = owner == me ? val(owner, i) : -1.0f;
        d[i] = owner == me ? (double)val(owner, i) * 3.0 : -1.0;
    }
    fqt_dist_allgatherv_f32(x, b);
    fqt_dist_allgatherv_f64(d, b);
    int64_t bad = 0;
    for (int64_t i = 0; i < n; i++) {
        int owner = 0;
        while (i >= b[owner + 1]) owner++;
        bad += check_bits_(x[i]) != check_bits_(val(owner, i)) || d[i] != (double)val(owner, i) * 3.0;
    }
    CHECK_MSG(bad == 0, "allgatherv: %lld elements wrong", (long long)bad);

    /* Gather to a root. */
    for (int64_t i = 0; i < n; i++) x[i] = (i >= b[me] && i < b[me + 1]) ? val(me, i) : -2.0f;
    fqt_dist_gatherv_f32(x, b, 0);
    bad = 0;
    for (int64_t i = 0; i < n; i++) {
        int owner = 0;
        while (i >= b[owner + 1]) owner++;
        if (me == 0) bad += check_bits_(x[i]) != check_bits_(val(owner, i));
        else bad += owner != me && x[i] != -2.0f; /* untouched off root */
    }
    CHECK_MSG(bad == 0, "gatherv: %lld elements wrong", (long long)bad);

    /* Ordered reduce-scatter: two rounds (first, then accumulate), against the sequential
     * sum in rank order computed here, bit for bit. */
    fqt_dist_shard_bounds(n, P, 4096, b);
    const int64_t len = b[me + 1] - b[me];
    float *acc = fqt_xmalloc((size_t)(len > 0 ? len : 1) * sizeof(float));
    for (int round = 0; round < 2; round++) {
        for (int64_t i = 0; i < n; i++) x[i] = val(me + 7 * round, i);
        fqt_dist_reduce_scatter_ordered(x, acc, b, round == 0);
    }
    bad = 0;
    int64_t order_matters = 0;
    for (int64_t i = b[me]; i < b[me + 1]; i++) {
        float s = val(0, i);
        for (int q = 1; q < P; q++) s += val(q, i);
        for (int q = 0; q < P; q++) s += val(q + 7, i);
        float rev = val(P - 1 + 7, i);
        for (int q = P - 2; q >= 0; q--) rev += val(q + 7, i);
        for (int q = P - 1; q >= 0; q--) rev += val(q, i);
        order_matters += check_bits_(rev) != check_bits_(s);
        bad += check_bits_(acc[i - b[me]]) != check_bits_(s);
    }
    CHECK_MSG(bad == 0, "ordered reduce-scatter: %lld of %lld elements differ from the rank-order sum",
              (long long)bad, (long long)len);
    if (P > 1 && len > 0) CHECK_MSG(order_matters > 0, "test data too tame: order never matters");

    /* A -0 as the first term stays -0. */
    for (int64_t i = 0; i < n; i++) x[i] = me == 0 ? -0.0f : (P > 1 ? -0.0f : 0.0f);
    fqt_dist_reduce_scatter_ordered(x, acc, b, true);
    if (len > 0) CHECK_BITS(acc[0], -0.0f);

    /* Agreement: the same digest passes; one rank differing is named. */
    CHECK(fqt_dist_check_agree("configuration", 0x1234) == FQT_OK);
    fqt_status st = fqt_dist_check_agree("training data", me == P - 1 && P > 1 ? 0x99 : 0x12);
    if (P > 1) {
        char want2[64];
        snprintf(want2, sizeof want2, "rank %d has digest", P - 1);
        CHECK_MSG(st == FQT_ERR_MISMATCH && strstr(fqt_last_error(), want2) &&
                      strstr(fqt_last_error(), "training data"),
                  "disagreement: status %d, '%s'", (int)st, fqt_last_error());
    } else {
        CHECK(st == FQT_OK);
    }
    fqt_dist_barrier();
    free(acc);
    free(x);
    free(d);
}

/* Under AddressSanitizer the ranks run without leak checks: LeakSanitizer reports Open MPI's
 * own allocations at exit (hwloc, unloaded MCA components), which no suppression can name.
 * The single-process run keeps them. */
#ifdef FQT_SANITIZE
#define DIST_ASAN "ASAN_OPTIONS=detect_leaks=0 "
#else
#define DIST_ASAN ""
#endif

/* Start this binary under mpirun on P ranks; add every rank's counts to ours. */
static void spawn(const char *self, int P) {
    char cmd[2048];
    snprintf(cmd, sizeof cmd,
             "FQT_DIST_ROUND=777 OMP_NUM_THREADS=1 " DIST_ASAN "mpirun -np %d --oversubscribe --allow-run-as-root "
             "--mca btl self,vader %s --worker 2>&1",
             P, self);
    FILE *p = popen(cmd, "r");
    CHECK(p != NULL);
    if (!p) return;
    char line[4096];
    int ranks = 0;
    while (fgets(line, sizeof line, p)) {
        int r;
        long np, nf;
        if (sscanf(line, "rank %d: %ld passed, %ld failed", &r, &np, &nf) == 3) {
            ranks++;
            check_passed_ += np;
            check_failed_ += nf;
            if (nf) fprintf(stderr, "  %d ranks: rank %d had %ld failures\n", P, r, nf);
        } else {
            fputs(line, stderr);
        }
    }
    int rc = pclose(p);
    CHECK_MSG(rc == 0 && ranks == P, "mpirun -np %d: exit %d, %d rank result lines", P, rc, ranks);
}

int main(int argc, char **argv) {
    if (argc > 1 && !strcmp(argv[1], "--worker")) {
        if (fqt_dist_init()) {
            fprintf(stderr, "%s\n", fqt_last_error());
            return 2;
        }
        checks();
        printf("rank %d: %ld passed, %ld failed\n", fqt_dist_world()->rank, check_passed_, check_failed_);
        fflush(stdout);
        fqt_dist_finalize();
        return 0;
    }
    checks(); /* the world of one */
#ifdef FQT_HAVE_NCCL
    /* The NCCL path is compiled and linked; it runs only where a GPU is (issue 11). */
    if (fqt_dist_nccl_init() == FQT_OK) {
        printf("SKIP test_dist: NCCL initialised on one rank; multi-GPU checks are not in this suite\n");
        fqt_dist_nccl_finalize();
    } else {
        printf("SKIP test_dist: NCCL path compiled, not run: %s\n", fqt_last_error());
    }
#endif
#ifdef FQT_HAVE_MPI
    if (system("command -v mpirun >/dev/null 2>&1") == 0) {
        char self[4096];
        ssize_t k = readlink("/proc/self/exe", self, sizeof self - 1);
        FQT_ASSERT(k > 0);
        self[k] = 0;
        spawn(self, 2);
        spawn(self, 3);
    } else {
        printf("SKIP test_dist: mpirun not found (apt-get install openmpi-bin); only the one-rank world tested\n");
    }
#else
    printf("SKIP test_dist: built without MPI (USE_MPI=no); only the one-rank world tested\n");
#endif
    return check_finish();
}
