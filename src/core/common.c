/* core/common.c — status strings, the last-error buffer and checked allocation. */
#include "fqt/common.h"
#include "fqt/par.h"

#include <stdarg.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

static const char *const status_names[] = {
    "ok", "bad argument", "I/O error", "malformed file", "out of memory",
    "non-finite value", "mismatch", "unsupported", "interrupted",
};
FQT_STATIC_ASSERT(sizeof status_names / sizeof status_names[0] == FQT_ERR_COUNT,
                  "status_names must cover fqt_status");

const char *fqt_status_str(fqt_status s) {
    return (unsigned)s < FQT_ERR_COUNT ? status_names[s] : "unknown status";
}

/* One message per thread: library errors are reported from the calling thread. */
static _Thread_local char last_error[1024];

void fqt_set_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
}

const char *fqt_last_error(void) { return last_error[0] ? last_error : "no error recorded"; }

void *fqt_xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) {
        fprintf(stderr, "fqt: out of memory allocating %zu bytes\n", n);
        abort();
    }
    return p;
}

void *fqt_xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) {
        fprintf(stderr, "fqt: out of memory allocating %zu x %zu bytes\n", n, size);
        abort();
    }
    return p;
}

char *fqt_xstrdup(const char *s) {
    if (!s) return NULL;
    size_t n = strlen(s) + 1;
    char *d = fqt_xmalloc(n);
    memcpy(d, s, n);
    return d;
}

void *fqt_xgrow(void *p, int64_t *cap, int64_t n, size_t size) {
    if (n < *cap) return p;
    int64_t c = *cap ? *cap * 2 : 8;
    void *q = realloc(p, (size_t)c * size);
    if (!q) {
        fprintf(stderr, "fqt: out of memory growing an array to %lld elements\n", (long long)c);
        abort();
    }
    *cap = c;
    return q;
}

static double prof_seconds[FQT_PROF_COUNT];

double fqt_prof_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void fqt_prof_add(fqt_prof_kind k, double seconds) {
#pragma omp atomic
    prof_seconds[k] += seconds;
}

double fqt_prof_get(fqt_prof_kind k) { return prof_seconds[k]; }

void fqt_prof_reset(void) {
    for (int i = 0; i < FQT_PROF_COUNT; i++) prof_seconds[i] = 0;
}

uint64_t fqt_splitmix64(uint64_t *state) {
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* The scratch table: slot x thread. Its pointers stay reachable (static), so leak checkers do
 * not report the buffers, which live until exit by design. */
#define FQT_SCRATCH_THREADS 512
static struct {
    void *p;
    size_t n;
} scratch_tab[FQT_SCRATCH_COUNT][FQT_SCRATCH_THREADS];

void *fqt_scratch(fqt_scratch_slot slot, size_t bytes) {
#ifdef _OPENMP
    const int tid = omp_in_parallel() ? omp_get_thread_num() : fqt_par_slot();
#else
    const int tid = fqt_par_slot();
#endif
    FQT_ASSERT((unsigned)slot < FQT_SCRATCH_COUNT && tid >= 0 && tid < FQT_SCRATCH_THREADS);
    if (scratch_tab[slot][tid].n < bytes || !scratch_tab[slot][tid].p) {
        free(scratch_tab[slot][tid].p);
        void *p = NULL;
        if (posix_memalign(&p, 64, bytes ? (bytes + 63) & ~(size_t)63 : 64)) {
            fprintf(stderr, "fqt: out of memory (scratch of %zu bytes)\n", bytes);
            abort();
        }
        scratch_tab[slot][tid].p = p;
        scratch_tab[slot][tid].n = bytes;
    }
    return scratch_tab[slot][tid].p;
}

void fqt_omp_wait_policy_default(char **argv) {
#ifdef _OPENMP
    if (getenv("OMP_WAIT_POLICY") || getenv("GOMP_SPINCOUNT")) return;
    if (setenv("GOMP_SPINCOUNT", FQT_OMP_SPINCOUNT, 1)) return;
    execv("/proc/self/exe", argv);
    unsetenv("GOMP_SPINCOUNT");
#else
    (void)argv;
#endif
}
