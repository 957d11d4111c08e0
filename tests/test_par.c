/* tests/test_par.c — the chunk-claiming pool (fqt/par.h): every index of a loop runs exactly
 * once, in chunks of exactly the partition n and grain define, for 1 to 4 threads; slots
 * stay in range; a call from inside a chunk runs inline on the same slot; a second thread
 * calling while the pool runs a loop gets its loop done too; many short loops in a row
 * (the wake-up protocol) lose no chunk and never hang (an alarm fails the run after 120 s). */
#ifndef _DEFAULT_SOURCE
#define _DEFAULT_SOURCE /* usleep */
#endif
#include "check.h"
#include "fqt/par.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

typedef struct {
    int64_t n, grain;
    _Atomic int *hits;      /* per index */
    _Atomic int bad_chunks; /* chunks not on the partition */
    _Atomic int bad_slots;
    int threads;
    _Atomic int nested_bad;
} loop_ctx;

static void count_fn(void *c, int64_t lo, int64_t hi, int slot) {
    loop_ctx *x = c;
    if (lo % x->grain || hi != (lo + x->grain < x->n ? lo + x->grain : x->n)) atomic_fetch_add(&x->bad_chunks, 1);
    if (slot < 0 || slot >= x->threads || slot != fqt_par_slot()) atomic_fetch_add(&x->bad_slots, 1);
    for (int64_t i = lo; i < hi; i++) atomic_fetch_add(&x->hits[i], 1);
}

typedef struct {
    int slot;
    _Atomic int *ran;
} inner_ctx;

static void inner_fn(void *c, int64_t lo, int64_t hi, int slot) {
    inner_ctx *x = c;
    if (slot != x->slot) atomic_fetch_add(&x->ran[0], 1000000); /* must run on the caller's slot */
    for (int64_t i = lo; i < hi; i++) atomic_fetch_add(&x->ran[i + 1], 1);
}

/* Each chunk runs a nested loop of 8 items in chunks of 1: inline, on its own slot. */
static void nest_fn(void *c, int64_t lo, int64_t hi, int slot) {
    loop_ctx *x = c;
    count_fn(c, lo, hi, slot);
    _Atomic int ran[9] = {0};
    inner_ctx in = {slot, ran};
    fqt_par_for(8, 1, inner_fn, &in);
    for (int i = 0; i < 9; i++)
        if (atomic_load(&ran[i]) != (i ? 1 : 0)) atomic_fetch_add(&x->nested_bad, 1);
}

/* Runs one loop; returns the number of problems (no CHECK: the second caller's thread uses
 * it too, and the harness's counters are not atomic). */
static int loop_bad(int64_t n, int64_t grain, int threads, fqt_par_fn fn) {
    loop_ctx x = {.n = n, .grain = grain < 1 ? 1 : grain, .threads = threads};
    x.hits = calloc((size_t)(n > 0 ? n : 1), sizeof *x.hits);
    fqt_par_for(n, grain, fn, &x);
    int bad = 0;
    for (int64_t i = 0; i < n; i++) bad += atomic_load(&x.hits[i]) != 1;
    bad += atomic_load(&x.bad_chunks) + atomic_load(&x.bad_slots) + atomic_load(&x.nested_bad);
    free(x.hits);
    return bad;
}

static int run_loop(int64_t n, int64_t grain, int threads, fqt_par_fn fn) {
    int bad = loop_bad(n, grain, threads, fn);
    CHECK_MSG(bad == 0, "n %lld grain %lld threads %d: %d problems (indices not run exactly once, chunks off "
              "the partition, bad slots, wrong nested loops)", (long long)n, (long long)grain, threads, bad);
    return bad;
}

static void *other_caller(void *arg) {
    int *bad = arg;
    for (int r = 0; r < 200; r++) *bad += loop_bad(5000, 7, fqt_par_threads(), count_fn);
    return NULL;
}

static void set_threads(int t) {
#ifdef _OPENMP
    omp_set_num_threads(t);
#else
    (void)t;
#endif
}

int main(void) {
    alarm(120);
    const int64_t ns[] = {0, 1, 2, 3, 17, 100, 1000, 65537};
    const int64_t grains[] = {0, 1, 3, 16, 1000, 100000};
    for (int t = 1; t <= 4; t++) {
        set_threads(t);
#ifdef _OPENMP
        CHECK(fqt_par_threads() == t);
#endif
        for (size_t a = 0; a < sizeof ns / sizeof *ns; a++)
            for (size_t b = 0; b < sizeof grains / sizeof *grains; b++) run_loop(ns[a], grains[b], fqt_par_threads(), count_fn);
        run_loop(64, 1, fqt_par_threads(), nest_fn);
        run_loop(1000, 100, fqt_par_threads(), nest_fn);
        /* Many short loops back to back: the sleep/wake protocol under churn. */
        int bad = 0;
        for (int r = 0; r < 20000 && !bad; r++) bad += loop_bad(2 + r % 9, 1, fqt_par_threads(), count_fn);
        CHECK_MSG(bad == 0, "threads %d: a short loop lost chunks", t);
        /* Short loops with pauses longer than the workers' spin (they sleep in between). */
        for (int r = 0; r < 200 && !bad; r++) {
            usleep(200);
            bad += loop_bad(64, 4, fqt_par_threads(), count_fn);
        }
        CHECK_MSG(bad == 0, "threads %d: a loop after a sleep lost chunks", t);
        /* A second thread calling at the same time: its loops run (inline) and are whole. */
        int other_bad = 0;
        pthread_t th;
        CHECK(pthread_create(&th, NULL, other_caller, &other_bad) == 0);
        for (int r = 0; r < 200; r++) run_loop(5000, 7, fqt_par_threads(), count_fn);
        pthread_join(th, NULL);
        CHECK_MSG(other_bad == 0, "threads %d: the second caller's loops lost chunks", t);
    }
    /* fqt_par_grain: about per_thread chunks per thread, never below the minimum. */
    set_threads(2);
    CHECK(fqt_par_grain(1000, 4, 1) == 125);
    CHECK(fqt_par_grain(10, 4, 16) == 16);
    CHECK(fqt_par_grain(0, 4, 0) == 1);
    return check_finish();
}
