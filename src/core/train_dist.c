/* core/train_dist.c — the data-parallel pieces of a training step (core/train_dist.h): one
 * code path for one process and for P ranks; docs/DIST.md is the design. */
#include "train_dist.h"

#include <stdlib.h>
#include <string.h>

uint64_t dp_fnv(uint64_t h, const void *p, size_t n) {
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++) h = (h ^ c[i]) * 0x100000001b3ull;
    return h;
}

/* Slab collectives on backend memory: MPI on host memory, NCCL on a device. */
static void slab_allgatherv(const dp_ctx *d, float *x) {
    if (d->P == 1) return;
    if (d->be->host_memory) {
        fqt_dist_allgatherv_f32(x, d->bounds);
        return;
    }
#ifdef FQT_HAVE_NCCL
    fqt_dist_nccl_allgatherv_f32(x, d->bounds, NULL);
#else
    fqt_dist_abort(5, "data parallel on the %s backend needs the NCCL build (make USE_NCCL=yes)", d->be->name);
#endif
}

fqt_status dp_init(dp_ctx *d, const fqt_backend *be, int64_t n, const fqt_param_segment *segs,
                   int n_segs) {
    const fqt_dist_info *w = fqt_dist_world();
    memset(d, 0, sizeof *d);
    d->be = be;
    d->P = w->size;
    d->rank = w->rank;
    d->n = n;
    if (d->P > 1 && !be->host_memory) {
#ifdef FQT_HAVE_NCCL
        fqt_status st = fqt_dist_nccl_init();
        if (st) return st;
#else
        fqt_set_error("data parallel on the %s backend needs the NCCL build (nvcc, NCCL and MPI "
                      "found at build time: make USE_NCCL=yes)", be->name);
        return FQT_ERR_UNSUPPORTED;
#endif
    }
    d->bounds = fqt_xmalloc((size_t)(d->P + 1) * sizeof(int64_t));
    d->cbounds = fqt_xmalloc((size_t)(d->P + 1) * sizeof(int64_t));
    fqt_dist_shard_bounds(n, d->P, FQT_SUMSQ_CHUNK, d->bounds);
    for (int r = 0; r <= d->P; r++) d->cbounds[r] = (d->bounds[r] + FQT_SUMSQ_CHUNK - 1) / FQT_SUMSQ_CHUNK;
    d->b = d->bounds[d->rank];
    d->e = d->bounds[d->rank + 1];
    d->segs = fqt_xcalloc((size_t)n_segs + 1, sizeof *d->segs);
    for (int i = 0; i < n_segs; i++) {
        int64_t lo = segs[i].offset > d->b ? segs[i].offset : d->b;
        int64_t hi = segs[i].offset + segs[i].numel < d->e ? segs[i].offset + segs[i].numel : d->e;
        if (lo < hi) d->segs[d->n_segs++] = (fqt_param_segment){lo - d->b, hi - lo, segs[i].decay};
    }
    d->part = fqt_xcalloc((size_t)d->cbounds[d->P] + 1, sizeof(double));
    d->gacc = be->alloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    if (!d->gacc) return FQT_ERR_NOMEM;
    be->zero(d->gacc, (size_t)n * sizeof(float));
    return FQT_OK;
}

void dp_free(dp_ctx *d) {
    if (d->gacc) d->be->free(d->gacc);
    free(d->bounds);
    free(d->cbounds);
    free(d->segs);
    free(d->part);
    memset(d, 0, sizeof *d);
}

void dp_reduce(dp_ctx *d, const float *grads, bool first) {
    if (d->P > 1 && !d->be->host_memory) {
#ifdef FQT_HAVE_NCCL
        fqt_dist_nccl_reduce_scatter_ordered(grads, d->gacc + d->b, d->bounds, first, NULL);
        return;
#endif
    }
    if (d->P == 1 && !d->be->host_memory) {
        /* One device rank: the running sum on the device, through the backend. */
        const size_t bytes = (size_t)d->n * sizeof(float);
        if (first) d->be->copy(d->gacc, grads, bytes);
        else if (d->be->act_dtype == FQT_DT_F32) d->be->add_inplace(d->gacc, grads, d->n);
        else {
            /* No float32 add in the table when activations are bf16: through the host. */
            float *h = fqt_xmalloc(bytes), *g = fqt_xmalloc(bytes);
            d->be->download(h, d->gacc, bytes);
            d->be->download(g, grads, bytes);
            for (int64_t i = 0; i < d->n; i++) h[i] += g[i];
            d->be->upload(d->gacc, h, bytes);
            free(h);
            free(g);
        }
        return;
    }
    fqt_dist_reduce_scatter_ordered(grads, d->gacc + d->b, d->bounds, first);
}

double dp_grad_norm2(dp_ctx *d) {
    const int64_t len = d->e - d->b;
    if (len > 0) d->be->sumsq_partials(d->gacc + d->b, NULL, len, d->part + d->cbounds[d->rank]);
    fqt_dist_allgatherv_f64(d->part, d->cbounds);
    double s = 0;
    for (int64_t k = 0; k < d->cbounds[d->P]; k++) s += d->part[k];
    return s;
}

void dp_gather_grads(dp_ctx *d) { slab_allgatherv(d, d->gacc); }

int64_t dp_sum_i64(dp_ctx *d, int64_t x) {
    if (d->P == 1) return x;
    int64_t *all = fqt_xmalloc((size_t)d->P * sizeof(int64_t));
    fqt_dist_allgather(&x, sizeof x, all);
    int64_t s = 0;
    for (int r = 0; r < d->P; r++) s += all[r];
    free(all);
    return s;
}

int64_t dp_adamw(dp_ctx *d, float *params, float *mom, float *vel, const fqt_adamw_args *args) {
    fqt_adamw_args a = *args;
    a.segs = d->segs;
    a.n_segs = d->n_segs;
    int64_t bad = 0;
    if (d->e > d->b) bad = d->be->adamw(params + d->b, d->gacc + d->b, mom, vel, 0, d->e - d->b, &a);
    if (a.check_only) return dp_sum_i64(d, bad);
    slab_allgatherv(d, params);
    return 0;
}

int64_t dp_count_nonfinite(dp_ctx *d, const float *params, const float *mom, const float *vel) {
    const int64_t len = d->e - d->b;
    int64_t k = 0;
    if (len > 0)
        k = d->be->count_nonfinite(params + d->b, len) + d->be->count_nonfinite(mom, len) +
            d->be->count_nonfinite(vel, len);
    return dp_sum_i64(d, k);
}

float *dp_gather_shards(dp_ctx *d, const float *shard) {
    float *whole = fqt_xcalloc((size_t)(d->n > 0 ? d->n : 1), sizeof(float));
    if (d->e > d->b) d->be->download(whole + d->b, shard, (size_t)(d->e - d->b) * sizeof(float));
    fqt_dist_gatherv_f32(whole, d->bounds, 0);
    if (d->rank == 0) return whole;
    free(whole);
    return NULL;
}

void dp_take_shard(dp_ctx *d, const float *whole_host, float *shard) {
    if (d->e > d->b) d->be->upload(shard, whole_host + d->b, (size_t)(d->e - d->b) * sizeof(float));
}

void dp_bcast_params(dp_ctx *d, float *params) {
    if (d->P == 1) return;
    if (d->be->host_memory) {
        fqt_dist_bcast(params, (size_t)d->n * sizeof(float), 0);
        return;
    }
#ifdef FQT_HAVE_NCCL
    fqt_dist_nccl_bcast(params, (size_t)d->n * sizeof(float), 0, NULL);
#endif
}
