/* core/backend.c — choosing a backend by name, and the backend-independent helpers of
 * fqt/backend.h (quantized-tensor placement in workspaces, the ordered sum of squares).
 *
 * The CUDA backend is linked in when the build found nvcc (FQT_HAVE_CUDA); it provides
 * fqt_backend_cuda_open, which returns NULL with a message when no GPU is present, and
 * fqt_backend_cuda_env_valid, which rejects unknown values of its environment switches. */
#include "fqt/backend.h"

#include <stdlib.h>
#include <string.h>

#ifdef FQT_HAVE_CUDA
const fqt_backend *fqt_backend_cuda_open(void);
bool fqt_backend_cuda_env_valid(const char *device);
#endif

size_t fqt_dtype_size(fqt_dtype t) { return t == FQT_DT_BF16 ? 2 : 4; }

static const fqt_backend *backend_by_name(const char *name);

const fqt_backend *fqt_backend_get(const char *name) {
    const fqt_backend *be = backend_by_name(name);
    const char *prof = getenv("FQT_PROFILE");
    if (!be || !prof || !*prof || !strcmp(prof, "0")) return be;
    return fqt_backend_profile_open(prof) ? fqt_backend_profiled(be) : NULL;
}

static const fqt_backend *backend_by_name(const char *name) {
    if (!name || !strcmp(name, "cpu")) return &fqt_backend_cpu;
    if (!strcmp(name, "cuda") || !strcmp(name, "auto")) {
#ifdef FQT_HAVE_CUDA
        if (!fqt_backend_cuda_env_valid(name)) return NULL; /* a mistyped switch, even with auto */
        const fqt_backend *be = fqt_backend_cuda_open();
        if (be) return be;
        if (!strcmp(name, "auto")) return &fqt_backend_cpu;
        return NULL; /* fqt_backend_cuda_open said why (no GPU found, driver too old, ...) */
#else
        if (!strcmp(name, "auto")) return &fqt_backend_cpu;
        fqt_set_error("--device cuda: this fqt was built without CUDA (`make info` says why: "
                      "nvcc or the cudart/cuBLAS/cuBLASLt libraries were not found; install the "
                      "CUDA toolkit and rebuild with make USE_CUDA=yes)");
        return NULL;
#endif
    }
    fqt_set_error("unknown device '%s' (devices: auto, cpu, cuda)", name);
    return NULL;
}

#define ALIGN_UP(x) (((x) + 255) & ~(size_t)255)

size_t fqt_backend_qtensor_bytes(const fqt_format *f, int64_t rows, int64_t cols) {
    fqt_qtensor q;
    FQT_ASSERT(fqt_qtensor_shape(&q, f, rows, cols) == FQT_OK);
    return ALIGN_UP(fqt_qtensor_code_bytes(&q) + 1) + ALIGN_UP(fqt_qtensor_scale_bytes(&q) + 1) +
           ALIGN_UP(sizeof(float));
}

void fqt_backend_qtensor_bind(fqt_qtensor *q, const fqt_format *f, int64_t rows, int64_t cols,
                              void *mem) {
    FQT_ASSERT(fqt_qtensor_shape(q, f, rows, cols) == FQT_OK);
    q->codes = mem;
    q->scales = q->codes + ALIGN_UP(fqt_qtensor_code_bytes(q) + 1);
}

size_t fqt_backend_qtensor_bytes_expanded(const fqt_format *f, int64_t rows, int64_t cols) {
    fqt_qtensor q;
    FQT_ASSERT(fqt_qtensor_shape(&q, f, rows, cols) == FQT_OK);
    return ALIGN_UP((size_t)(rows * cols) * 2 + 1) + ALIGN_UP(fqt_qtensor_scale_bytes(&q) + 1) +
           ALIGN_UP(sizeof(float));
}

void fqt_backend_qtensor_bind_expanded(fqt_qtensor *q, const fqt_format *f, int64_t rows,
                                       int64_t cols, void *mem) {
    FQT_ASSERT(fqt_qtensor_shape(q, f, rows, cols) == FQT_OK);
    q->expanded = true;
    q->codes = mem;
    q->scales = q->codes + ALIGN_UP((size_t)(rows * cols) * 2 + 1);
}

float *fqt_backend_qtensor_scale_slot(const fqt_qtensor *q) {
    return (float *)(void *)(q->scales + ALIGN_UP(fqt_qtensor_scale_bytes(q) + 1));
}

float *fqt_backend_host_get(const fqt_backend *be, const float *x, int64_t n, bool fill) {
    if (be->host_memory) return (float *)x;
    float *h = fqt_xmalloc((size_t)n * sizeof(float) + 1);
    if (fill) be->download(h, x, (size_t)n * sizeof(float));
    return h;
}

void fqt_backend_host_put(const fqt_backend *be, float *host, float *x, int64_t n, bool store) {
    if (host == x) return;
    if (store) be->upload(x, host, (size_t)n * sizeof(float));
    free(host);
}

double fqt_backend_sumsq(const fqt_backend *be, const float *x, const float *y, int64_t n,
                         double *part) {
    be->sumsq_partials(x, y, n, part);
    double s = 0;
    for (int64_t k = 0; k < (n + FQT_SUMSQ_CHUNK - 1) / FQT_SUMSQ_CHUNK; k++) s += part[k];
    return s;
}
