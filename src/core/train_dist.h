/* core/train_dist.h — internal to the run loop: the data-parallel pieces of a training step
 * (docs/DIST.md). Gradient reduction in global micro-batch order, the sharded (ZeRO-1) AdamW
 * step, the gradient norm from per-chunk partials, and moving whole slabs for GNR checks and
 * checkpoints. In a world of one every piece is a local copy or a plain call, so one code
 * path serves one process and P ranks.
 *
 * Memory: slabs are backend memory. A host-memory backend (the CPU) uses the MPI collectives
 * of dist/comm.c; a device backend needs the NCCL build (dist/nccl.cu). Not for: when the
 * loop calls these (core/train.c), the collectives themselves (fqt/dist.h). */
#ifndef FQT_CORE_TRAIN_DIST_H
#define FQT_CORE_TRAIN_DIST_H

#include "fqt/backend.h"
#include "fqt/dist.h"

typedef struct {
    const fqt_backend *be;
    int P, rank;
    int64_t n;                 /* parameters */
    int64_t *bounds;           /* [P+1] slab shards, edges at multiples of FQT_SUMSQ_CHUNK */
    int64_t *cbounds;          /* [P+1] the same edges in chunks */
    int64_t b, e;              /* this rank's shard [b, e) */
    fqt_param_segment *segs;   /* this rank's parts of the parameter tensors, offsets from b */
    int n_segs;
    float *gacc;               /* backend memory [n]: the running gradient sum, valid in [b, e)
                                  (whole after dp_gather_grads) */
    double *part;              /* host [chunks]: partial sums of squares of every chunk */
} dp_ctx;

/* Shards for n parameters over the world; segs (host) cover [0, n). */
fqt_status dp_init(dp_ctx *d, const fqt_backend *be, int64_t n, const fqt_param_segment *segs,
                   int n_segs);
void dp_free(dp_ctx *d);

/* Add one round of micro-batch gradients (this rank's micro-batch a*P + rank in grads, the
 * whole slab) onto the running sum, in rank order; first: the step's first round. */
void dp_reduce(dp_ctx *d, const float *grads, bool first);
/* Squared norm of the reduced gradient: per-chunk partials of each shard, gathered, added in
 * chunk order (the single-process sum). Same value on every rank. */
double dp_grad_norm2(dp_ctx *d);
/* Make gacc whole on every rank (GNR checks). */
void dp_gather_grads(dp_ctx *d);
/* AdamW on this rank's shard (mom and vel hold the shard: e - b floats), then every rank's
 * updated parameters to every rank; returns 0. args->segs is replaced by the shard's
 * segments. With args->check_only nothing is written or sent: the count of non-finite values
 * the update would produce, summed over the ranks (the same on every rank). */
int64_t dp_adamw(dp_ctx *d, float *params, float *mom, float *vel, const fqt_adamw_args *args);
/* Non-finite entries of the weights and moments over every rank's shard (each counted once). */
int64_t dp_count_nonfinite(dp_ctx *d, const float *params, const float *mom, const float *vel);
/* x summed over the ranks in rank order (the same on every rank). Collective. */
int64_t dp_sum_i64(dp_ctx *d, int64_t x);

/* Whole moments for a checkpoint: on rank 0 a host buffer of n floats (caller frees) with
 * every rank's shard, NULL on the other ranks. Collective. */
float *dp_gather_shards(dp_ctx *d, const float *shard);
/* This rank's shard of a whole host slab into shard (backend memory). */
void dp_take_shard(dp_ctx *d, const float *whole_host, float *shard);

/* Parameters from rank 0 to every rank (after a load, to be safe against file systems that
 * differ). Collective. */
void dp_bcast_params(dp_ctx *d, float *params);

/* 64-bit FNV-1a, for the start-up agreement digests. */
uint64_t dp_fnv(uint64_t h, const void *p, size_t n);
#define DP_FNV0 0xcbf29ce484222325ull

#endif
