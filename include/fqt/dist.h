/* fqt/dist.h — data-parallel ranks: who we are, and the few collectives the run loop needs,
 * each with an order of arithmetic that does not depend on the rank count.
 *
 * One world per process (MPI is process-global): fqt_dist_init joins it when the process was
 * started by an MPI launcher (mpirun/mpiexec: Open MPI, MPICH or Slurm's PMI environment),
 * and otherwise, or when fqt was built without MPI (USE_MPI=no), stays a world of one rank in
 * which every collective is a local copy. Code that never calls fqt_dist_init (the tests, the
 * library used alone) sees that world of one.
 *
 * Determinism. No collective here reduces floating-point numbers inside MPI (MPI_Reduce and
 * MPI_Allreduce leave the order unspecified). Collectives move bytes; sums are formed by
 * fqt_dist_reduce_scatter_ordered in rank order 0, 1, ..., P-1 on the receiving rank, which is
 * the order of the global micro-batch index in the run loop (docs/DIST.md).
 *
 * Slab ranges. A slab of n elements is split into P shards by bounds[0..P] (bounds[0] = 0,
 * bounds[P] = n, rank r owns [bounds[r], bounds[r+1])); fqt_dist_shard_bounds makes them
 * multiples of an alignment (FQT_SUMSQ_CHUNK for the gradient slab) so per-chunk partial sums
 * of a shard are the single-process partials. Element counts are int64_t; messages larger
 * than MPI's int counts are sent in rounds.
 *
 * Errors. A failing MPI call, or fqt_dist_abort, ends every rank of the job with a message
 * that names the rank; the CLI calls fqt_dist_abort when a rank's training fails.
 * Not for: what is reduced when (core/train.c), device memory (the NCCL section below). */
#ifndef FQT_DIST_H
#define FQT_DIST_H

#include "fqt/common.h"

#include <stdbool.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    int rank, size;             /* in the world */
    int local_rank, local_size; /* among the ranks on this host (GPU choice) */
    bool mpi;                   /* MPI was initialised (launched by an MPI launcher) */
} fqt_dist_info;

/* Join the world: MPI_Init when launched under MPI (or FQT_DIST=mpi is set), else a world of
 * one. Idempotent. FQT_ERR_UNSUPPORTED with a message when launched under MPI with P > 1 but
 * built without it (P copies of one run would silently train the same model P times). */
fqt_status fqt_dist_init(void);
/* MPI_Finalize when fqt_dist_init called MPI_Init. */
void fqt_dist_finalize(void);
const fqt_dist_info *fqt_dist_world(void);
/* "mpi (Open MPI v4.1.4, ...)" or "none (built without MPI)": for the start-up line. */
const char *fqt_dist_describe(void);
/* Print "fqt: rank R of P: <message>" to stderr and end the whole job (MPI_Abort), or exit
 * with `code` in a world of one. */
void fqt_dist_abort(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

void fqt_dist_barrier(void);
/* bytes from root's buf to every rank's buf. */
void fqt_dist_bcast(void *buf, size_t bytes, int root);
/* recv[r * bytes ...] = rank r's send (bytes each), on every rank. */
void fqt_dist_allgather(const void *send, size_t bytes, void *recv);
/* In place: every rank's x gets rank r's x[bounds[r], bounds[r+1]) for every r. */
void fqt_dist_allgatherv_f32(float *x, const int64_t *bounds);
void fqt_dist_allgatherv_f64(double *x, const int64_t *bounds);
/* In place on root: root's x gets every rank's range; other ranks' x is left as is. */
void fqt_dist_gatherv_f32(float *x, const int64_t *bounds, int root);

/* Ordered reduce-scatter. Every rank gives a full slab x[0, n); rank r gets, for i in its
 * range [b, e) = [bounds[r], bounds[r+1]),
 *     acc[i - b] = ((first ? x_0[i] : acc[i - b] + x_0[i]) + x_1[i]) + ... + x_{P-1}[i]
 * where x_q is rank q's slab: one float32 addition after another in rank order (the first
 * term is copied, not added to zero, so a -0 stays -0). Built from all-to-all (bytes only)
 * and a local sum; the result does not depend on MPI's algorithms. In a world of one,
 * acc = x (first) or acc += x. */
void fqt_dist_reduce_scatter_ordered(const float *x, float *acc, const int64_t *bounds, bool first);

/* bounds[0..size] of n elements: shard edges at multiples of align (except bounds[size] = n),
 * as even as that allows; trailing shards may be empty when n is small. */
void fqt_dist_shard_bounds(int64_t n, int size, int64_t align, int64_t *bounds);

/* Start-up agreement: every rank gives a digest of `what` (configuration, data, vocabulary,
 * checkpoint); FQT_ERR_MISMATCH on every rank, with a message naming the first rank that
 * differs from rank 0, when they do not all agree. */
fqt_status fqt_dist_check_agree(const char *what, uint64_t digest);

/* Seconds spent inside collectives since the last call (the communication time of a step). */
double fqt_dist_comm_seconds_take(void);

/* ---- NCCL: the same collectives on device memory (src/dist/nccl.cu) ---------------------
 * Compiled when the build found nvcc, NCCL and MPI (FQT_HAVE_NCCL); one GPU per rank, chosen
 * by local rank; the communicator is bootstrapped by broadcasting NCCL's unique id over MPI.
 * Pointers are device memory; stream is a cudaStream_t (NULL: the default stream); calls are
 * asynchronous on that stream. The ordered sum runs in a kernel, one thread per element, in
 * the rank order above. */
fqt_status fqt_dist_nccl_init(void);
void fqt_dist_nccl_finalize(void);
void fqt_dist_nccl_allgatherv_f32(float *x, const int64_t *bounds, void *stream);
void fqt_dist_nccl_reduce_scatter_ordered(const float *x, float *acc, const int64_t *bounds,
                                          bool first, void *stream);
void fqt_dist_nccl_bcast(void *buf, size_t bytes, int root, void *stream);

#ifdef __cplusplus
}
#endif

#endif
