/* The chunk-claiming thread pool of include/fqt/par.h.
 *
 * One loop at a time. Its state is one 64-bit word, `work`: the thread count (8 bits), the
 * chunk count (28) and the next unclaimed chunk (28). A thread claims chunk i by a
 * compare-and-swap of the whole word from (t, c, i) to (t, c, i + 1); only then does it read
 * the loop's function and context, which cannot change before the loop ends, since the loop
 * ends only when its chunks are done. A worker holding a word of an earlier loop either fails
 * the swap or, if the word equals the current one, claims a real chunk of the current loop:
 * either way it runs nothing it should not. `done` counts finished chunks; the caller returns
 * when it reaches the chunk count. Workers learn of a new loop from `gen` (a futex word).
 *
 * Memory order: the caller writes the loop's description, then stores `work` (release) and
 * bumps `gen`; a claim is an acquire, so the description is visible to the claimer; each
 * finished chunk is a release on `done`, which the caller reads with acquire before it
 * returns, so every chunk's writes are visible to the code after the loop. */
#define _GNU_SOURCE
#include "fqt/par.h"

#include <limits.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#ifdef _OPENMP
#include <omp.h>
#endif
#ifdef __linux__
#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#define MAX_THREADS 255
#define CHUNK_BITS 28
#define CHUNK_MASK ((UINT64_C(1) << CHUNK_BITS) - 1)
#define CALLER_SPIN_NS 20000L

static struct {
    _Atomic uint64_t work;
    _Atomic uint32_t gen;     /* bumped once per loop; workers sleep on it */
    _Atomic uint32_t done;    /* chunks finished in the current loop; the caller sleeps on it */
    _Atomic uint32_t waiting; /* the caller is (about to be) asleep on done */
    _Atomic int sleepers;     /* workers asleep (or about to be) on gen */
    _Atomic int caller_cpu;   /* the CPU the last loop's caller ran on (-1: unknown) */
    atomic_flag busy;         /* held by the thread running a loop */
    fqt_par_fn fn;
    void *ctx;
    int64_t n, grain;
    int nworkers;
    long spin_ns;
} P = {.busy = ATOMIC_FLAG_INIT, .spin_ns = -1, .caller_cpu = -1};

static _Thread_local int tl_slot;   /* 0 for every thread that is not a worker */
static _Thread_local int tl_worker; /* a worker: calls from its chunks run inline */

static inline void cpu_relax(void) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#elif defined(__aarch64__)
    __asm__ __volatile__("yield");
#endif
}

static long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long)ts.tv_sec * 1000000000L + ts.tv_nsec;
}

/* Sleeps while *w == v (or returns at once if it is not); wakes up to n sleepers of w. */
static void wait_word(_Atomic uint32_t *w, uint32_t v) {
#ifdef __linux__
    syscall(SYS_futex, (uint32_t *)w, FUTEX_WAIT_PRIVATE, v, NULL, NULL, 0);
#else
    if (atomic_load(w) == v) sched_yield();
#endif
}

static void wake_word(_Atomic uint32_t *w, int n) {
#ifdef __linux__
    syscall(SYS_futex, (uint32_t *)w, FUTEX_WAKE_PRIVATE, n, NULL, NULL, 0);
#else
    (void)w, (void)n;
#endif
}

/* Spins up to spin_ns while *w == v; returns the last value read. */
static uint32_t spin_while(_Atomic uint32_t *w, uint32_t v, memory_order mo, long spin_ns) {
    uint32_t x = atomic_load_explicit(w, mo);
    if (x != v || spin_ns <= 0) return x;
    const long t0 = now_ns();
    for (unsigned i = 1;; i++) {
        cpu_relax();
        if ((x = atomic_load_explicit(w, mo)) != v) return x;
        if (!(i & 63) && now_ns() - t0 > spin_ns) return x;
    }
}

/* Claims and runs chunks of the current loop until none is left (or the loop has fewer
 * threads than this slot). */
static void run_chunks(int slot) {
    uint64_t v = atomic_load_explicit(&P.work, memory_order_acquire);
    for (;;) {
        const uint64_t threads = v >> (2 * CHUNK_BITS), count = (v >> CHUNK_BITS) & CHUNK_MASK, i = v & CHUNK_MASK;
        if (i >= count || (uint64_t)slot >= threads) return;
        if (!atomic_compare_exchange_weak_explicit(&P.work, &v, v + 1, memory_order_acq_rel, memory_order_acquire))
            continue;
        const int64_t lo = (int64_t)i * P.grain, hi = lo + P.grain < P.n ? lo + P.grain : P.n;
        P.fn(P.ctx, lo, hi, slot);
        /* seq_cst here and in the caller's waiting-then-done check: either this sees the
         * caller waiting, or the caller sees the last chunk done. */
        if (atomic_fetch_add(&P.done, 1) + 1 == count && atomic_load(&P.waiting))
            wake_word(&P.done, 1);
        v = atomic_load_explicit(&P.work, memory_order_acquire);
    }
}

static int current_cpu(void) {
#ifdef __linux__
    return sched_getcpu();
#else
    return -1;
#endif
}

static int own_cpu(void) {
    const int c = atomic_load_explicit(&P.caller_cpu, memory_order_relaxed);
    return c < 0 || current_cpu() != c;
}

static void *worker_main(void *arg) {
    tl_slot = (int)(intptr_t)arg;
    tl_worker = 1;
    uint32_t seen = atomic_load(&P.gen);
    for (;;) {
        /* Spin only on a CPU of its own: on the caller's CPU (beside a busy process the
         * scheduler may put both there) spinning takes the time the caller needs. */
        uint32_t g = own_cpu() ? spin_while(&P.gen, seen, memory_order_acquire, P.spin_ns) : atomic_load(&P.gen);
        if (g == seen) {
            atomic_fetch_add(&P.sleepers, 1);
            wait_word(&P.gen, seen);
            atomic_fetch_sub(&P.sleepers, 1);
            continue;
        }
        seen = g;
        run_chunks(tl_slot);
    }
    return NULL;
}

int fqt_par_threads(void) {
#ifdef _OPENMP
    int t = omp_get_max_threads();
    return t < 1 ? 1 : t > MAX_THREADS ? MAX_THREADS : t;
#else
    return 1;
#endif
}

int fqt_par_slot(void) { return tl_slot; }

int64_t fqt_par_grain(int64_t n, int per_thread, int64_t min_grain) {
    const int64_t parts = (int64_t)fqt_par_threads() * (per_thread > 0 ? per_thread : 1);
    int64_t g = (n + parts - 1) / parts;
    if (g < min_grain) g = min_grain;
    return g < 1 ? 1 : g;
}

/* Starts workers up to slot threads-1; returns the thread count the pool can run (fewer if
 * a thread could not be created). Called with P.busy held. */
static int ensure_workers(int threads) {
    if (P.spin_ns < 0) {
        const char *e = getenv("FQT_PAR_SPIN_US");
        long us = e && *e ? strtol(e, NULL, 10) : FQT_PAR_SPIN_US_DEFAULT;
        P.spin_ns = us < 0 ? 0 : us > 1000000 ? 1000000000L : us * 1000L; /* at most 1 s */
    }
    while (P.nworkers < threads - 1) {
        pthread_t t;
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setstacksize(&a, (size_t)8 << 20); /* the GEMM keeps a packed A panel on the stack */
        int rc = pthread_create(&t, &a, worker_main, (void *)(intptr_t)(P.nworkers + 1));
        pthread_attr_destroy(&a);
        if (rc) break;
        pthread_detach(t);
        P.nworkers++;
    }
    return P.nworkers + 1 < threads ? P.nworkers + 1 : threads;
}

void fqt_par_for(int64_t n, int64_t grain, fqt_par_fn fn, void *ctx) {
    if (n <= 0) return;
    if (grain < 1) grain = 1;
    while ((n + grain - 1) / grain > (int64_t)CHUNK_MASK) grain *= 2;
    const int64_t count = (n + grain - 1) / grain;
    int threads = fqt_par_threads();
    int nested = 0;
#ifdef _OPENMP
    nested = omp_in_parallel(); /* a thread of an OpenMP team: its scratch slot is OpenMP's */
#endif
    if (count == 1 || threads == 1 || tl_worker || nested || atomic_flag_test_and_set_explicit(&P.busy, memory_order_acquire)) {
        for (int64_t lo = 0; lo < n; lo += grain) fn(ctx, lo, lo + grain < n ? lo + grain : n, tl_slot);
        return;
    }
    threads = ensure_workers(threads);
    P.fn = fn;
    P.ctx = ctx;
    P.n = n;
    P.grain = grain;
    atomic_store_explicit(&P.done, 0, memory_order_relaxed);
    atomic_store_explicit(&P.waiting, 0, memory_order_relaxed);
    atomic_store_explicit(&P.work, (uint64_t)threads << (2 * CHUNK_BITS) | (uint64_t)count << CHUNK_BITS,
                          memory_order_release);
    atomic_store_explicit(&P.caller_cpu, current_cpu(), memory_order_relaxed);
    atomic_fetch_add(&P.gen, 1);
    if (atomic_load(&P.sleepers)) wake_word(&P.gen, INT_MAX);
    run_chunks(0);
    /* The chunks still running are the workers'; wait for them (spin, then sleep). */
    uint32_t d = atomic_load_explicit(&P.done, memory_order_acquire);
    while (d != (uint32_t)count) {
        /* The caller spins less: a worker it waits for may share its CPU. */
        d = spin_while(&P.done, d, memory_order_acquire, P.spin_ns < CALLER_SPIN_NS ? P.spin_ns : CALLER_SPIN_NS);
        if (d == (uint32_t)count) break;
        atomic_store(&P.waiting, 1);
        d = atomic_load(&P.done);
        if (d == (uint32_t)count) break;
        wait_word(&P.done, d);
        d = atomic_load_explicit(&P.done, memory_order_acquire);
    }
    atomic_flag_clear_explicit(&P.busy, memory_order_release);
}
