/* cuda/backend.cu — the CUDA backend's table, device selection, the checking helpers,
 * scratch memory, buffers and synchronisation.
 *
 * fqt_backend_cuda_open finds the GPU, creates the cuBLAS and cuBLASLt handles once and
 * returns one of two tables (float32 or bf16 activations). Everything runs on the legacy
 * default stream. Not for: op math (one file per op). */
#include "cuda/common.cuh"
#include "cuda/cuda_backend.h"

#include <stdlib.h>
#include <string.h>

fqt_cuda_state fqt_cuda;
#ifdef FQT_CUDA_DEBUG
int fqt_cuda_debug_sync = 1;
#else
int fqt_cuda_debug_sync = 0;
#endif

void fqt_cuda_fail_(const char *what, const char *detail, const char *stmt, const char *file,
                    int line) {
    fprintf(stderr, "%s:%d: %s: %s\n  in: %s\n", file, line, what, detail ? detail : "", stmt);
    abort();
}

/* ---- scratch ------------------------------------------------------------------------------ */
static void *scratch_ptr[FQT_SCR_COUNT];
static size_t scratch_size[FQT_SCR_COUNT];

void *fqt_cuda_scratch(fqt_cuda_scratch_slot slot, size_t bytes) {
    if (bytes > scratch_size[slot]) {
        /* cudaFree waits for the work that may still read the old buffer. */
        if (scratch_ptr[slot]) FQT_CUDA_CHECK(cudaFree(scratch_ptr[slot]));
        size_t want = bytes + bytes / 4 + 256;
        FQT_CUDA_CHECK(cudaMalloc(&scratch_ptr[slot], want));
        scratch_size[slot] = want;
    }
    return scratch_ptr[slot];
}

/* ---- buffers ------------------------------------------------------------------------------ */
void *fqt_cuda_alloc(size_t bytes) {
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, bytes ? bytes : 1);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        fqt_set_error("cuda: out of device memory allocating %zu bytes (%s)", bytes,
                      cudaGetErrorString(e));
        return NULL;
    }
    return p;
}
void fqt_cuda_free(void *p) {
    if (p) FQT_CUDA_CHECK(cudaFree(p));
}
void fqt_cuda_upload(void *dst, const void *src, size_t bytes) {
    if (bytes) FQT_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
}
void fqt_cuda_download(void *dst, const void *src, size_t bytes) {
    if (bytes) FQT_CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
}
void fqt_cuda_copy(void *dst, const void *src, size_t bytes) {
    if (bytes && dst != src) FQT_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, 0));
}
void fqt_cuda_zero(void *dst, size_t bytes) {
    if (bytes) FQT_CUDA_CHECK(cudaMemsetAsync(dst, 0, bytes, 0));
}
void fqt_cuda_sync(void) { FQT_CUDA_CHECK(cudaDeviceSynchronize()); }

template <typename D, typename S> __global__ void convert_kernel(D *dst, const S *src, int64_t n) {
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        stf(dst, i, ldf(src, i));
}

void fqt_cuda_convert(void *dst, fqt_dtype dst_dt, const void *src, fqt_dtype src_dt, int64_t n) {
    if (n <= 0) return;
    if (dst_dt == src_dt) {
        fqt_cuda_copy(dst, src, (size_t)n * fqt_dtype_size(dst_dt));
        return;
    }
    unsigned nb = fqt_cuda_blocks(n, 256);
    if (nb > 65536) nb = 65536;
    FQT_DT_DISPATCH(dst_dt, D, FQT_DT_DISPATCH(src_dt, S,
        convert_kernel<D, S><<<nb, 256>>>((D *)dst, (const S *)src, n)));
    FQT_CUDA_LAUNCHED();
}

/* ---- row-major GEMM through cuBLAS ----------------------------------------------------- */
/* cuBLAS is column-major: a row-major [rows, cols] matrix with row stride ld is the column-
 * major [cols, rows] matrix with leading dimension ld, so C = op(A) op(B) row-major is
 * C^T = op(B)^T op(A)^T column-major: swap the operands, keep the transpose flags. */
void fqt_cuda_gemm_rm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha,
                      const void *A, cudaDataType_t at, int64_t lda, int64_t sa, const void *B,
                      cudaDataType_t bt, int64_t ldb, int64_t sb, float beta, void *C,
                      cudaDataType_t ct, int64_t ldc, int64_t sc, int batch) {
    if (M <= 0 || N <= 0 || batch <= 0) return;
    FQT_CUDA_CHECK(cublasGemmStridedBatchedEx(
        fqt_cuda.blas, tb ? CUBLAS_OP_T : CUBLAS_OP_N, ta ? CUBLAS_OP_T : CUBLAS_OP_N, (int)N,
        (int)M, (int)K, &alpha, B, bt, (int)ldb, sb, A, at, (int)lda, sa, &beta, C, ct, (int)ldc,
        sc, batch, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

/* ---- the tables ------------------------------------------------------------------------- */
#define FQT_CUDA_TABLE(NAME, ACT)                                                          \
    {                                                                                      \
        NAME, ACT, false, true, fqt_cuda_qgemm_expands, fqt_cuda_alloc, fqt_cuda_free, fqt_cuda_upload,          \
            fqt_cuda_download, fqt_cuda_copy, fqt_cuda_zero, fqt_cuda_convert,             \
            fqt_cuda_embedding_fwd,                                                        \
            fqt_cuda_embedding_bwd, fqt_cuda_rmsnorm_fwd, fqt_cuda_rmsnorm_bwd,            \
            fqt_cuda_rope_fwd, fqt_cuda_rope_bwd, fqt_cuda_attention_fwd,                  \
            fqt_cuda_attention_bwd, fqt_cuda_swiglu_fwd, fqt_cuda_swiglu_bwd,              \
            fqt_cuda_xent_fwd_bwd, fqt_cuda_add_inplace, fqt_cuda_hadamard16_rows,         \
            fqt_cuda_quantize, fqt_cuda_tensor_scale, fqt_cuda_dequantize, fqt_cuda_qgemm, fqt_cuda_adamw,        \
            fqt_cuda_sumsq_partials, fqt_cuda_count_nonfinite, fqt_cuda_sync               \
    }

static const fqt_backend cuda_f32 = FQT_CUDA_TABLE("cuda", FQT_DT_F32);
static const fqt_backend cuda_bf16 = FQT_CUDA_TABLE("cuda-bf16", FQT_DT_BF16);

static int cuda_state = 0; /* 0 not tried, 1 ready, -1 failed */
static char cuda_fail_msg[512];

int fqt_cuda_env_choice(const char *name, const char *const *vals) {
    const char *e = getenv(name);
    if (!e || !e[0]) return 0;
    for (int i = 0; vals[i]; i++)
        if (!strcmp(e, vals[i])) return i;
    return -1;
}

/* The environment variables of the backend and their values (the first is the default). */
static const char *const env_act[] = {"bf16", "f32", "fp32", NULL};
static const char *const env_sync[] = {"0", "1", NULL};
static const struct { const char *name; const char *const *vals; } env_known[] = {
    {"FQT_CUDA_ACT", env_act},           {"FQT_CUDA_SYNC", env_sync},
    {"FQT_CUDA_ATTN", fqt_cuda_env_attn}, {"FQT_CUDA_FP8", fqt_cuda_env_fp8},
    {"FQT_CUDA_MXFP4", fqt_cuda_env_mxfp4}, {"FQT_CUDA_FP4", fqt_cuda_env_fp4},
};

/* false, with the message set (for --device `device`), when a variable has a value the backend
 * does not know. */
static bool env_check(const char *device) {
    for (size_t i = 0; i < sizeof env_known / sizeof *env_known; i++) {
        if (fqt_cuda_env_choice(env_known[i].name, env_known[i].vals) >= 0) continue;
        int n = snprintf(cuda_fail_msg, sizeof cuda_fail_msg, "--device %s: %s=%s is not a known value (one of:",
                         device, env_known[i].name, getenv(env_known[i].name));
        for (int k = 0; env_known[i].vals[k] && n < (int)sizeof cuda_fail_msg; k++)
            n += snprintf(cuda_fail_msg + n, sizeof cuda_fail_msg - (size_t)n, " %s", env_known[i].vals[k]);
        if (n < (int)sizeof cuda_fail_msg) snprintf(cuda_fail_msg + n, sizeof cuda_fail_msg - (size_t)n, ")");
        return false;
    }
    return true;
}

static int cuda_init(void) {
    if (cuda_state) return cuda_state;
    if (!env_check("cuda")) return -1; /* not cached: the environment may be mended before a retry */
    if (fqt_cuda_env_choice("FQT_CUDA_SYNC", env_sync) == 1) fqt_cuda_debug_sync = 1;
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0) {
        snprintf(cuda_fail_msg, sizeof cuda_fail_msg,
                 "--device cuda: no CUDA GPU found (%s); run on a machine with an NVIDIA GPU "
                 "or use --device cpu",
                 e != cudaSuccess ? cudaGetErrorString(e) : "device count is 0");
        (void)cudaGetLastError();
        cuda_state = -1;
        return -1;
    }
    cudaDeviceProp prop;
    FQT_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    if (prop.major < 9) {
        snprintf(cuda_fail_msg, sizeof cuda_fail_msg,
                 "--device cuda: GPU 0 (%s) has compute capability %d.%d; this build has "
                 "machine code for 9.0a (Hopper) and 10.0a (Blackwell) only",
                 prop.name, prop.major, prop.minor);
        cuda_state = -1;
        return -1;
    }
    FQT_CUDA_CHECK(cudaSetDevice(0));
    fqt_cuda.sm_count = prop.multiProcessorCount;
    fqt_cuda.cc_major = prop.major;
    FQT_CUDA_CHECK(cublasCreate(&fqt_cuda.blas));
    FQT_CUDA_CHECK(cublasSetMathMode(fqt_cuda.blas, CUBLAS_DEFAULT_MATH)); /* no TF32 */
    FQT_CUDA_CHECK(cublasLtCreate(&fqt_cuda.lt));
    cuda_state = 1;
    return 1;
}

extern "C" const fqt_backend *fqt_backend_cuda_open_act(fqt_dtype act) {
    if (cuda_init() < 0) {
        fqt_set_error("%s", cuda_fail_msg);
        return NULL;
    }
    fqt_cuda.act = act;
    return act == FQT_DT_BF16 ? &cuda_bf16 : &cuda_f32;
}

extern "C" bool fqt_backend_cuda_env_valid(const char *device) {
    if (env_check(device)) return true;
    fqt_set_error("%s", cuda_fail_msg);
    return false;
}

/* An unknown FQT_CUDA_ACT takes f32 here and then fails in cuda_init's check, with the message. */
extern "C" const fqt_backend *fqt_backend_cuda_open(void) {
    return fqt_backend_cuda_open_act(fqt_cuda_env_choice("FQT_CUDA_ACT", env_act) == 0 ? FQT_DT_BF16 : FQT_DT_F32);
}
