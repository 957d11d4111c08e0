/* dist/comm.c — the world of fqt/dist.h on MPI, and its one-rank fallback when fqt is built
 * without MPI (USE_MPI=no) or started without a launcher.
 *
 * Every collective moves bytes only, with point-to-point messages (MPI_Isend/MPI_Irecv in
 * rounds of at most ROUND elements, so counts fit MPI's int and displacements never do
 * arithmetic in int); the one floating-point reduction, the ordered reduce-scatter, sums on
 * the receiving rank in rank order. Not for: deciding what to reduce (core/train.c) or
 * device memory (dist/nccl.cu). */
#include "fqt/dist.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef FQT_HAVE_MPI
#include <mpi.h>
#endif

static fqt_dist_info world = {0, 1, 0, 1, false};
static bool initialised;
static double comm_seconds;

const fqt_dist_info *fqt_dist_world(void) { return &world; }

double fqt_dist_comm_seconds_take(void) {
    double s = comm_seconds;
    comm_seconds = 0;
    return s;
}

void fqt_dist_abort(int code, const char *fmt, ...) {
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "fqt: rank %d of %d: %s\n", world.rank, world.size, msg);
    fflush(stderr);
#ifdef FQT_HAVE_MPI
    if (world.mpi) MPI_Abort(MPI_COMM_WORLD, code ? code : 1);
#endif
    exit(code ? code : 1);
}

void fqt_dist_shard_bounds(int64_t n, int size, int64_t align, int64_t *bounds) {
    FQT_ASSERT(size >= 1 && align >= 1 && n >= 0);
    const int64_t units = (n + align - 1) / align;
    for (int r = 0; r <= size; r++) {
        int64_t b = units * r / size * align;
        bounds[r] = b < n ? b : n;
    }
    bounds[size] = n;
}

/* A launcher's environment: Open MPI, MPICH/Hydra and Slurm's PMI all set one of these. */
static bool launched_by_mpi(void) {
    const char *force = getenv("FQT_DIST");
    if (force && !strcmp(force, "mpi")) return true;
    if (force && !strcmp(force, "none")) return false;
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_RANK",
                                       "PMI_RANK", "MV2_COMM_WORLD_SIZE", NULL};
    for (int i = 0; vars[i]; i++)
        if (getenv(vars[i])) return true;
    return false;
}

/* Number of ranks the launcher announced (for the built-without-MPI check). */
static __attribute__((unused)) int launcher_size(void) {
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "MV2_COMM_WORLD_SIZE", NULL};
    for (int i = 0; vars[i]; i++) {
        const char *v = getenv(vars[i]);
        if (v) return atoi(v);
    }
    return 1;
}

#ifdef FQT_HAVE_MPI

/* Messages go in rounds of at most ROUND elements so every count fits an int (FQT_DIST_ROUND
 * makes rounds small, for the tests of the round logic). */
static int64_t ROUND = (int64_t)1 << 26;

#define MPI_CHECK(call)                                                                    \
    do {                                                                                   \
        int rc_ = (call);                                                                  \
        if (rc_ != MPI_SUCCESS) {                                                          \
            char es_[MPI_MAX_ERROR_STRING];                                                \
            int el_ = 0;                                                                   \
            MPI_Error_string(rc_, es_, &el_);                                              \
            fqt_dist_abort(3, "%s failed at %s:%d: %s (another rank may have died)", #call, \
                           __FILE__, __LINE__, es_);                                       \
        }                                                                                  \
    } while (0)

fqt_status fqt_dist_init(void) {
    if (initialised) return FQT_OK;
    initialised = true;
    if (!launched_by_mpi()) return FQT_OK;
    int provided = 0;
    if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) {
        fqt_set_error("MPI_Init failed");
        return FQT_ERR_UNSUPPORTED;
    }
    world.mpi = true;
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &world.rank));
    MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &world.size));
    MPI_Comm local;
    MPI_CHECK(MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, world.rank, MPI_INFO_NULL, &local));
    MPI_CHECK(MPI_Comm_rank(local, &world.local_rank));
    MPI_CHECK(MPI_Comm_size(local, &world.local_size));
    MPI_Comm_free(&local);
    const char *r = getenv("FQT_DIST_ROUND");
    if (r && atoll(r) > 0) ROUND = atoll(r);
    return FQT_OK;
}

void fqt_dist_finalize(void) {
    if (world.mpi) MPI_Finalize();
    world.mpi = false;
}

const char *fqt_dist_describe(void) {
    static char buf[256];
    char lib[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    MPI_Get_library_version(lib, &len);
    lib[strcspn(lib, ",\n")] = 0;
    snprintf(buf, sizeof buf, "mpi (%.200s), %d rank%s", lib, world.size, world.size == 1 ? "" : "s");
    return buf;
}

void fqt_dist_barrier(void) {
    if (world.size == 1) return;
    double t = fqt_prof_now();
    MPI_CHECK(MPI_Barrier(MPI_COMM_WORLD));
    comm_seconds += fqt_prof_now() - t;
}


void fqt_dist_bcast(void *buf, size_t bytes, int root) {
    if (world.size == 1) return;
    double t = fqt_prof_now();
    for (size_t off = 0; off < bytes; off += (size_t)ROUND) {
        size_t n = bytes - off < (size_t)ROUND ? bytes - off : (size_t)ROUND;
        MPI_CHECK(MPI_Bcast((char *)buf + off, (int)n, MPI_BYTE, root, MPI_COMM_WORLD));
    }
    comm_seconds += fqt_prof_now() - t;
}

void fqt_dist_allgather(const void *send, size_t bytes, void *recv) {
    if (world.size == 1) {
        memmove(recv, send, bytes);
        return;
    }
    FQT_ASSERT(bytes <= (size_t)ROUND);
    double t = fqt_prof_now();
    MPI_CHECK(MPI_Allgather(send, (int)bytes, MPI_BYTE, recv, (int)bytes, MPI_BYTE, MPI_COMM_WORLD));
    comm_seconds += fqt_prof_now() - t;
}

/* Rank `from`'s range to the ranks in [to_begin, to_end) (every rank but itself), root = -1;
 * or to root only. Point-to-point, so each message's count is a round of one range. */
static void gather_ranges(void *x, size_t esz, MPI_Datatype dt, const int64_t *bounds, int root) {
    const int P = world.size, me = world.rank;
    MPI_Request *req = fqt_xmalloc((size_t)2 * (size_t)P * sizeof *req);
    int64_t longest = 0;
    for (int r = 0; r < P; r++)
        if (bounds[r + 1] - bounds[r] > longest) longest = bounds[r + 1] - bounds[r];
    char *base = x;
    for (int64_t off = 0; off < longest; off += ROUND) {
        int nr = 0;
        for (int r = 0; r < P; r++) {
            if (r == me) continue;
            int64_t lo = bounds[r] + off, hi = bounds[r + 1];
            if (lo < hi && (root < 0 || me == root)) {
                int64_t n = hi - lo < ROUND ? hi - lo : ROUND;
                MPI_CHECK(MPI_Irecv(base + (size_t)lo * esz, (int)n, dt, r, 17, MPI_COMM_WORLD, &req[nr++]));
            }
            int64_t mlo = bounds[me] + off, mhi = bounds[me + 1];
            if (mlo < mhi && (root < 0 || r == root)) {
                int64_t n = mhi - mlo < ROUND ? mhi - mlo : ROUND;
                MPI_CHECK(MPI_Isend(base + (size_t)mlo * esz, (int)n, dt, r, 17, MPI_COMM_WORLD, &req[nr++]));
            }
        }
        MPI_CHECK(MPI_Waitall(nr, req, MPI_STATUSES_IGNORE));
    }
    free(req);
}

void fqt_dist_allgatherv_f32(float *x, const int64_t *bounds) {
    if (world.size == 1) return;
    double t = fqt_prof_now();
    gather_ranges(x, sizeof(float), MPI_FLOAT, bounds, -1);
    comm_seconds += fqt_prof_now() - t;
}

void fqt_dist_allgatherv_f64(double *x, const int64_t *bounds) {
    if (world.size == 1) return;
    double t = fqt_prof_now();
    gather_ranges(x, sizeof(double), MPI_DOUBLE, bounds, -1);
    comm_seconds += fqt_prof_now() - t;
}

void fqt_dist_gatherv_f32(float *x, const int64_t *bounds, int root) {
    if (world.size == 1) return;
    double t = fqt_prof_now();
    gather_ranges(x, sizeof(float), MPI_FLOAT, bounds, root);
    comm_seconds += fqt_prof_now() - t;
}

static float *rs_buf;
static int64_t rs_cap;

void fqt_dist_reduce_scatter_ordered(const float *x, float *acc, const int64_t *bounds, bool first) {
    const int P = world.size, me = world.rank;
    const int64_t b = bounds[me], e = bounds[me + 1];
    if (P == 1) {
        if (first) memcpy(acc, x + b, (size_t)(e - b) * sizeof(float));
        else {
#pragma omp parallel for schedule(static)
            for (int64_t i = b; i < e; i++) acc[i - b] += x[i];
        }
        return;
    }
    double t = fqt_prof_now();
    int64_t longest = 0;
    for (int r = 0; r < P; r++)
        if (bounds[r + 1] - bounds[r] > longest) longest = bounds[r + 1] - bounds[r];
    const int64_t cap = (longest < ROUND ? longest : ROUND) * P;
    if (cap > rs_cap) {
        free(rs_buf);
        rs_buf = fqt_xmalloc((size_t)(cap > 0 ? cap : 1) * sizeof(float));
        rs_cap = cap;
    }
    MPI_Request *req = fqt_xmalloc((size_t)2 * (size_t)P * sizeof *req);
    for (int64_t off = 0; off < longest; off += ROUND) {
        /* This round: my elements [lo, lo + n) from every rank q into rs_buf[q * n ...]. */
        const int64_t lo = b + off, n = lo < e ? (e - lo < ROUND ? e - lo : ROUND) : 0;
        int nr = 0;
        for (int q = 0; q < P; q++) {
            if (n > 0) {
                if (q == me) memcpy(rs_buf + (size_t)q * (size_t)n, x + lo, (size_t)n * sizeof(float));
                else MPI_CHECK(MPI_Irecv(rs_buf + (size_t)q * (size_t)n, (int)n, MPI_FLOAT, q, 23, MPI_COMM_WORLD, &req[nr++]));
            }
            const int64_t slo = bounds[q] + off, shi = bounds[q + 1];
            if (q != me && slo < shi) {
                int64_t sn = shi - slo < ROUND ? shi - slo : ROUND;
                MPI_CHECK(MPI_Isend(x + slo, (int)sn, MPI_FLOAT, q, 23, MPI_COMM_WORLD, &req[nr++]));
            }
        }
        MPI_CHECK(MPI_Waitall(nr, req, MPI_STATUSES_IGNORE));
        float *a = acc + off;
        const float *in = rs_buf;
        /* Rank order, one addition after another: the single-process micro-batch order. */
#pragma omp parallel for schedule(static)
        for (int64_t i = 0; i < n; i++) {
            float s = first ? in[i] : a[i] + in[i];
            for (int q = 1; q < P; q++) s += in[(size_t)q * (size_t)n + (size_t)i];
            a[i] = s;
        }
    }
    free(req);
    comm_seconds += fqt_prof_now() - t;
}

#else /* no MPI: a world of one */

fqt_status fqt_dist_init(void) {
    if (initialised) return FQT_OK;
    initialised = true;
    if (launched_by_mpi() && launcher_size() > 1) {
        fqt_set_error("started by an MPI launcher with %d ranks, but this fqt was built without MPI "
                      "(install libopenmpi-dev and rebuild: make USE_MPI=yes)", launcher_size());
        return FQT_ERR_UNSUPPORTED;
    }
    return FQT_OK;
}

void fqt_dist_finalize(void) {}
const char *fqt_dist_describe(void) { return "none (built without MPI), 1 rank"; }
void fqt_dist_barrier(void) {}
void fqt_dist_bcast(void *buf, size_t bytes, int root) { (void)buf, (void)bytes, (void)root; }
void fqt_dist_allgather(const void *send, size_t bytes, void *recv) { memmove(recv, send, bytes); }
void fqt_dist_allgatherv_f32(float *x, const int64_t *bounds) { (void)x, (void)bounds; }
void fqt_dist_allgatherv_f64(double *x, const int64_t *bounds) { (void)x, (void)bounds; }
void fqt_dist_gatherv_f32(float *x, const int64_t *bounds, int root) { (void)x, (void)bounds, (void)root; }

void fqt_dist_reduce_scatter_ordered(const float *x, float *acc, const int64_t *bounds, bool first) {
    const int64_t b = bounds[0], e = bounds[1];
    if (first) memcpy(acc, x + b, (size_t)(e - b) * sizeof(float));
    else {
#pragma omp parallel for schedule(static)
        for (int64_t i = b; i < e; i++) acc[i - b] += x[i];
    }
}

#endif

fqt_status fqt_dist_check_agree(const char *what, uint64_t digest) {
    const int P = world.size;
    if (P == 1) return FQT_OK;
    uint64_t *all = fqt_xmalloc((size_t)P * sizeof *all);
    fqt_dist_allgather(&digest, sizeof digest, all);
    fqt_status st = FQT_OK;
    for (int r = 1; r < P; r++)
        if (all[r] != all[0]) {
            fqt_set_error("ranks disagree on the %s: rank %d has digest %016llx, rank 0 has %016llx "
                          "(every rank must be given the same options, data files and tokenizer)",
                          what, r, (unsigned long long)all[r], (unsigned long long)all[0]);
            st = FQT_ERR_MISMATCH;
            break;
        }
    free(all);
    return st;
}
