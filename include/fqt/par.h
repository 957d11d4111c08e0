/* fqt's own parallel-for: a pool of worker threads that claim chunks of a loop from a shared
 * counter, with the calling thread taking part.
 *
 * Why not OpenMP's `parallel for`: its region ends at a barrier that waits for every thread
 * of the team, including one that has not yet been woken or has lost its core to another
 * process. Beside one busy process on a 2-core machine that made each of a step's several
 * hundred regions wait a scheduler slice (docs/PERF.md, issue 12). Here the loop ends when
 * every chunk is done: a worker that never got to claim one is not waited for, and the caller
 * does the chunks a sleeping worker would have done.
 *
 * Results never depend on the schedule: `fn` gets whole chunks [lo, hi) of a partition fixed
 * by n and grain alone, and must write outputs that depend only on its chunk (no reductions
 * across chunks in claim order). `slot` (0 = the caller, 1..threads-1 the workers) names the
 * thread for per-thread scratch (fqt_scratch uses it), never the arithmetic.
 *
 * The thread count is OpenMP's (omp_get_max_threads(): OMP_NUM_THREADS, omp_set_num_threads),
 * read at every call. Calls from inside a chunk, or from a second thread while the pool runs
 * a loop, run serially in the calling thread. After a loop a worker spins (FQT_PAR_SPIN_US
 * microseconds, default below) and then sleeps on a futex, but does not spin on the CPU its
 * caller last ran on (beside a busy process both may share one). The caller spins at most
 * 20 us for the workers' last chunks. 200 us, not 20: in this VM waking a sleeping worker
 * costs tens of microseconds, and with 20 the wgrad GEMM 352x128x2048 at 2 threads ran at 132
 * GFLOP/s in the bench sweep against 222 (docs/PERF.md); the step itself did not move. */
#ifndef FQT_PAR_H
#define FQT_PAR_H

#include <stdint.h>

typedef void (*fqt_par_fn)(void *ctx, int64_t lo, int64_t hi, int slot);

/* Runs fn over [0, n) in chunks of `grain` items (the last may be shorter); returns when all
 * are done. n <= 0 does nothing; one chunk, or one thread, runs inline. */
void fqt_par_for(int64_t n, int64_t grain, fqt_par_fn fn, void *ctx);

/* The thread count the next fqt_par_for uses, and the calling thread's slot (0 outside the
 * pool's workers). */
int fqt_par_threads(void);
int fqt_par_slot(void);

/* A grain that gives each of the threads about `per_thread` chunks of [0, n), at least
 * min_grain items each (the partition then depends on the thread count; fn's results must
 * not, which the contract above already asks). */
int64_t fqt_par_grain(int64_t n, int per_thread, int64_t min_grain);

#define FQT_PAR_SPIN_US_DEFAULT 200

#endif
