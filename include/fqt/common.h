/* fqt/common.h — status codes, the always-on assert and the host/device macro.
 *
 * Shared by every module. Not for: anything backend-specific (no CUDA types here). */
#ifndef FQT_COMMON_H
#define FQT_COMMON_H

#include <stdint.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

/* FQT_HD marks functions that the CUDA backend compiles for host and device from
 * the same source, so the CPU and GPU can never disagree on a bit conversion. */
#if defined(__CUDACC__)
#define FQT_HD __host__ __device__
#else
#define FQT_HD
#endif

/* Status of library calls that can fail for outside reasons. Append only. */
typedef enum {
    FQT_OK = 0,
    FQT_ERR_ARG,        /* bad argument or configuration */
    FQT_ERR_IO,         /* read/write/open failed */
    FQT_ERR_FORMAT,     /* a file's contents are malformed */
    FQT_ERR_NOMEM,      /* allocation failed */
    FQT_ERR_NONFINITE,  /* NaN or Inf where a finite value was needed */
    FQT_ERR_MISMATCH,   /* a file does not belong to this model/config */
    FQT_ERR_UNSUPPORTED,
    FQT_ERR_INTERRUPTED, /* stopped by SIGINT/SIGTERM after a checkpoint */
    FQT_ERR_COUNT
} fqt_status;

const char *fqt_status_str(fqt_status s);

/* Library-wide last error message: set by the failing function, read by the CLI. */
void fqt_set_error(const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 1, 2)))
#endif
    ;
const char *fqt_last_error(void);

/* Always-on assert for programmer errors (never for bad input). */
#define FQT_ASSERT(cond)                                                          \
    do {                                                                          \
        if (!(cond)) {                                                            \
            fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__,  \
                    #cond);                                                       \
            abort();                                                              \
        }                                                                         \
    } while (0)

/* Version of fqt and the git commit it was built from ("unknown" outside a git checkout);
 * baked in at build time by the Makefile (src/core/version.c). */
const char *fqt_version(void);
const char *fqt_git_commit(void);

/* SIGINT/SIGTERM: the CLI installs the handler, long-running library loops poll the flag
 * at safe points (the trainer: at the end of a step) and stop cleanly. A second signal
 * while one is pending restores the default action (a hard stop). Returns the pending
 * signal number, or 0. */
void fqt_interrupt_install(void);
int fqt_interrupt_pending(void);
/* Records sig as pending as if it had been delivered (when none is): the ranks of a
 * data-parallel run agree on a stop that the signal reached only some of. */
void fqt_interrupt_set(int sig);

#define FQT_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)

/* splitmix64: the small deterministic generator for initialisation, data windows and
 * sampling (not for stochastic rounding, which uses Philox: fqt/formats.h §4). */
uint64_t fqt_splitmix64(uint64_t *state);

/* Wall-clock accounting of where a step's time goes (for benchmarks and the trainer's
 * overhead figure). Thread-safe; costs one clock read per timed region. */
typedef enum { FQT_PROF_QUANTIZE = 0, FQT_PROF_DEQUANTIZE, FQT_PROF_GEMM, FQT_PROF_COUNT } fqt_prof_kind;
double fqt_prof_now(void);
void fqt_prof_add(fqt_prof_kind k, double seconds);
double fqt_prof_get(fqt_prof_kind k);
void fqt_prof_reset(void);

/* The OpenMP wait policy of fqt's programs, unless the user chose one (OMP_WAIT_POLICY or
 * GOMP_SPINCOUNT set): a thread that waits spins FQT_OMP_SPINCOUNT times (a few microseconds),
 * then sleeps. libgomp's default spins 300000 times, which made steps ~7x slower beside one
 * busy process; never spinning (OMP_WAIT_POLICY=passive) made every short parallel region pay
 * a wake-up: 10-20% of a small model's step and half the 2-thread speed of small GEMMs on a
 * 2-core VM, with no gain beside a busy process (docs/PERF.md). libgomp reads the variable
 * once, when it is loaded, before main runs, so this sets it and executes the program again
 * (/proc/self/exe with argv; the second run finds it set). Call first thing in main; if the
 * exec fails it returns and the runtime's default stays. */
#define FQT_OMP_SPINCOUNT "300"
void fqt_omp_wait_policy_default(char **argv);

/* malloc that aborts with a message on failure; for sizes derived from a validated config. */
void *fqt_xmalloc(size_t n);
void *fqt_xcalloc(size_t n, size_t size);
/* Reusable scratch for the per-step path: buffer `slot` of the calling thread (its OpenMP
 * thread number inside an OpenMP region, else its fqt_par_slot: 0 for the caller of a
 * fqt_par_for and every thread that is not a pool worker), at least `bytes` long, 64-byte
 * aligned, contents undefined. Grown, never shrunk, so once a run's first step has sized
 * them no step allocates. Valid until the same thread asks for the same slot again; a slot
 * used outside parallel regions must not be used inside them. Aborts with a message when out
 * of memory. */
typedef enum {
    FQT_SCRATCH_QUANT_T = 0, /* fqt_quantize: the transposed source (outside parallel regions) */
    FQT_SCRATCH_QUANT_STATS, /* fqt_quantize: per-group statistics */
    FQT_SCRATCH_QUANT_VEC,   /* fqt_quantize: vector paths' random words and block scales, per thread */
    FQT_SCRATCH_GEMM_B,      /* fqt_sgemm_nt / fqt_qgemm: packed B panels (shared) */
    FQT_SCRATCH_GEMM_A,      /* packed A panels, per thread */
    FQT_SCRATCH_QGEMM_A,     /* fqt_qgemm: dequantized operands (shared) */
    FQT_SCRATCH_QGEMM_B,
    FQT_SCRATCH_ATTN,        /* attention: transposed heads and row buffers, per thread */
    FQT_SCRATCH_XENT,        /* cross-entropy: per-row losses */
    FQT_SCRATCH_ROPE,        /* RoPE: the cos/sin table */
    FQT_SCRATCH_COUNT
} fqt_scratch_slot;
void *fqt_scratch(fqt_scratch_slot slot, size_t bytes);

/* strdup that aborts on failure; NULL gives NULL. */
char *fqt_xstrdup(const char *s);
/* Make room for one more element in a growable array p of `size`-byte elements holding n,
 * capacity *cap (doubling); returns the (possibly moved) array. Aborts on failure. */
void *fqt_xgrow(void *p, int64_t *cap, int64_t n, size_t size);

#endif
