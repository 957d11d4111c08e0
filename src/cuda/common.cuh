/* cuda/common.cuh — what every file of the CUDA backend shares: the one checking macro for
 * CUDA and cuBLAS calls, the launch check with its debug synchronisation, activation storage
 * (float32 or bf16 as uint16 codes, converted with the codec.h functions), deterministic block
 * reductions, the backend's scratch memory and the declarations of every table entry.
 *
 * Conventions: one stream (the legacy default stream), so work is ordered and scratch memory
 * can be reused by consecutive launches; every reduction has a fixed shape (block sizes are
 * compile-time constants, trees in a fixed order), so results never depend on the grid or on
 * timing. No float atomics anywhere. Not for: any op's math (one file per op). */
#ifndef FQT_CUDA_COMMON_CUH
#define FQT_CUDA_COMMON_CUH

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime.h>

extern "C" {
#include "fqt/backend.h"
}
#include "formats/codec.h"

/* ---- checking ------------------------------------------------------------------------- */
void fqt_cuda_fail_(const char *what, const char *detail, const char *stmt, const char *file,
                    int line);
static inline void fqt_cuda_check_(cudaError_t e, const char *stmt, const char *file, int line) {
    if (e != cudaSuccess) fqt_cuda_fail_(cudaGetErrorName(e), cudaGetErrorString(e), stmt, file, line);
}
static inline void fqt_cuda_check_(cublasStatus_t e, const char *stmt, const char *file, int line) {
    if (e != CUBLAS_STATUS_SUCCESS)
        fqt_cuda_fail_("cuBLAS error", cublasGetStatusString(e), stmt, file, line);
}
/* Every CUDA runtime, cuBLAS and cuBLASLt call goes through this: on failure it prints the
 * statement, file and line and aborts (a device error is not recoverable here). */
#define FQT_CUDA_CHECK(stmt) fqt_cuda_check_((stmt), #stmt, __FILE__, __LINE__)
/* After every kernel launch: the launch error, and with the debug switch (CUDA_DEBUG=1 at
 * build time or FQT_CUDA_SYNC=1 at run time) a synchronisation, so a fault names its kernel. */
extern int fqt_cuda_debug_sync;
#define FQT_CUDA_LAUNCHED()                                                               \
    do {                                                                                  \
        FQT_CUDA_CHECK(cudaGetLastError());                                               \
        if (fqt_cuda_debug_sync) FQT_CUDA_CHECK(cudaDeviceSynchronize());                 \
    } while (0)

/* ---- activation storage ------------------------------------------------------------------- */
typedef uint16_t bf16_t; /* bf16 bits (cuBLAS CUDA_R_16BF has the same layout) */
__device__ __forceinline__ float ldf(const float *p, int64_t i) { return p[i]; }
__device__ __forceinline__ float ldf(const bf16_t *p, int64_t i) { return fqt_bf16_dec_i(p[i]); }
__device__ __forceinline__ void stf(float *p, int64_t i, float v) { p[i] = v; }
__device__ __forceinline__ void stf(bf16_t *p, int64_t i, float v) { p[i] = fqt_bf16_rne_i(v); }
template <typename T> struct act_cuda_type;
template <> struct act_cuda_type<float> { static const cudaDataType_t v = CUDA_R_32F; };
template <> struct act_cuda_type<bf16_t> { static const cudaDataType_t v = CUDA_R_16BF; };

/* Eight consecutive act values as floats, and back (bf16 rounded to nearest even): one 16-byte
 * access for bf16, two for float32. p must be 16-byte aligned. For the elementwise kernels'
 * vector paths; the values and roundings are those of ldf/stf, so results are the same bits. */
__device__ __forceinline__ void ld8(const bf16_t *p, float f[8]) {
    const uint4 u = *(const uint4 *)p;
    const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
    for (int k = 0; k < 4; k++) {
        f[2 * k] = fqt_bf16_dec_i((uint16_t)(w[k] & 0xFFFFu));
        f[2 * k + 1] = fqt_bf16_dec_i((uint16_t)(w[k] >> 16));
    }
}
__device__ __forceinline__ void ld8(const float *p, float f[8]) {
    const float4 a = ((const float4 *)p)[0], b = ((const float4 *)p)[1];
    f[0] = a.x, f[1] = a.y, f[2] = a.z, f[3] = a.w, f[4] = b.x, f[5] = b.y, f[6] = b.z, f[7] = b.w;
}
__device__ __forceinline__ void st8(bf16_t *p, const float f[8]) {
    uint32_t w[4];
#pragma unroll
    for (int k = 0; k < 4; k++) w[k] = (uint32_t)fqt_bf16_rne_i(f[2 * k]) | ((uint32_t)fqt_bf16_rne_i(f[2 * k + 1]) << 16);
    *(uint4 *)p = make_uint4(w[0], w[1], w[2], w[3]);
}
__device__ __forceinline__ void st8(float *p, const float f[8]) {
    ((float4 *)p)[0] = make_float4(f[0], f[1], f[2], f[3]);
    ((float4 *)p)[1] = make_float4(f[4], f[5], f[6], f[7]);
}
/* Four consecutive act values (8-byte access for bf16, 16-byte for float32; p aligned to that),
 * and back, likewise. */
__device__ __forceinline__ void ld4(const bf16_t *p, float f[4]) {
    const uint2 u = *(const uint2 *)p;
    f[0] = fqt_bf16_dec_i((uint16_t)(u.x & 0xFFFFu)), f[1] = fqt_bf16_dec_i((uint16_t)(u.x >> 16));
    f[2] = fqt_bf16_dec_i((uint16_t)(u.y & 0xFFFFu)), f[3] = fqt_bf16_dec_i((uint16_t)(u.y >> 16));
}
__device__ __forceinline__ void ld4(const float *p, float f[4]) {
    const float4 u = *(const float4 *)p;
    f[0] = u.x, f[1] = u.y, f[2] = u.z, f[3] = u.w;
}
__device__ __forceinline__ void st4(bf16_t *p, const float f[4]) {
    *(uint2 *)p = make_uint2((uint32_t)fqt_bf16_rne_i(f[0]) | ((uint32_t)fqt_bf16_rne_i(f[1]) << 16),
                             (uint32_t)fqt_bf16_rne_i(f[2]) | ((uint32_t)fqt_bf16_rne_i(f[3]) << 16));
}
__device__ __forceinline__ void st4(float *p, const float f[4]) { *(float4 *)p = make_float4(f[0], f[1], f[2], f[3]); }
/* The 16 / sizeof(T) values of type T held in the 16 bytes u, as ldf reads them. */
template <typename T> __device__ __forceinline__ void unpack16(uint4 u, float *f) {
    T t[16 / sizeof(T)];
    memcpy(t, &u, 16);
#pragma unroll
    for (int e = 0; e < (int)(16 / sizeof(T)); e++) f[e] = ldf(t, e);
}
/* i / d (and *rem = i % d) for 0 <= i, 0 < d: in 32 bits when both fit, as they do for every
 * tensor of the models here (a 64-bit division is a long software sequence on the GPU). */
__device__ __forceinline__ int64_t fqt_divmod(int64_t i, int64_t d, int64_t *rem) {
    if (((uint64_t)i | (uint64_t)d) >> 32 == 0) {
        const uint32_t q = (uint32_t)i / (uint32_t)d;
        *rem = (int64_t)((uint32_t)i - q * (uint32_t)d);
        return (int64_t)q;
    }
    const int64_t q = i / d;
    *rem = i - q * d;
    return q;
}

/* ---- dequantization pieces (dequantize.cu, and quantize.cu for expanded operands) ---- */
/* a * b with x86 SSE NaN propagation. */
__device__ __forceinline__ float fqt_mul_as_cpu(float a, float b) {
    const float r = a * b;
    if (!isnan(r)) return r;
    if (isnan(a)) return fqt_u2f(fqt_f2u(a) | 0x00400000u);
    if (isnan(b)) return fqt_u2f(fqt_f2u(b) | 0x00400000u);
    return fqt_u2f(0xFFC00000u);
}

/* |E2M1 code| (3 bits) times a finite block scale sc >= 0, as bf16 bits, sign added: the
 * product has at most 6 significant bits and stays within bf16's range for every UE4M3 and
 * E8M0 scale (E8M0 exponents are clamped so that 6 * 2^e is finite), so it is exact in
 * float32 and in bf16, and its top 16 bits are what fqt_bf16_rne_i(fqt_mul_as_cpu(decode, sc))
 * gives. The magnitude's float bits: (m + 252) << 22 for m >= 2 (1, 1.5, 2, ..., 6), 0.5 for
 * m = 1, 0 for m = 0. */
__device__ __forceinline__ uint32_t fqt_e2m1_bf16_exact(uint32_t code, float sc) {
    const uint32_t m = code & 7u;
    const uint32_t mag = m >= 2u ? (m + 252u) << 22 : (m ? 0x3F000000u : 0u);
    return (fqt_f2u(fqt_u2f(mag) * sc) >> 16) | ((code & 8u) << 12);
}

/* Whether n elements at each of the pointers can go 8 at a time through ld8/st8. */
static inline bool vec8_ok(int64_t n, const void *a, const void *b = NULL, const void *c = NULL,
                           const void *d = NULL) {
    return n % 8 == 0 && (uintptr_t)a % 16 == 0 && (uintptr_t)b % 16 == 0 && (uintptr_t)c % 16 == 0 &&
           (uintptr_t)d % 16 == 0;
}

/* Run BODY with T the C type of dtype DT. */
#define FQT_DT_DISPATCH(DT, T, ...)                                                       \
    do {                                                                                  \
        if ((DT) == FQT_DT_BF16) {                                                        \
            typedef bf16_t T;                                                             \
            __VA_ARGS__;                                                                  \
        } else {                                                                          \
            typedef float T;                                                              \
            __VA_ARGS__;                                                                  \
        }                                                                                 \
    } while (0)

/* ---- state ------------------------------------------------------------------------------ */
typedef struct {
    fqt_dtype act;
    cublasHandle_t blas;
    cublasLtHandle_t lt;
    int sm_count;
    int cc_major;
} fqt_cuda_state;
extern fqt_cuda_state fqt_cuda;

/* The index in vals (NULL-terminated; vals[0] the default) of environment variable name's
 * value: 0 when unset or empty, -1 for a value not in the list. The backend checks every
 * variable it reads when it opens (an unknown value is an error there, with the list); the
 * ops read them per call, so a test can switch paths with setenv. */
int fqt_cuda_env_choice(const char *name, const char *const *vals);
extern const char *const fqt_cuda_env_attn[]; /* FQT_CUDA_ATTN: flash, cublas (attention.cu) */
extern const char *const fqt_cuda_env_fp8[];  /* FQT_CUDA_FP8: blockscaled, fp32 (qgemm.cu) */
extern const char *const fqt_cuda_env_mxfp4[]; /* FQT_CUDA_MXFP4: bf16, fp8 (qgemm.cu) */
extern const char *const fqt_cuda_env_fp4[];   /* FQT_CUDA_FP4: native, bf16 (qgemm.cu) */

/* Scratch buffers owned by the backend, grown on demand (never shrunk). A slot's contents
 * are valid until the next call that asks for the same slot. */
typedef enum {
    FQT_SCR_QMAP = 0, FQT_SCR_PART, FQT_SCR_TSCALE, FQT_SCR_DEQ_A, FQT_SCR_DEQ_B, FQT_SCR_LT_WS,
    FQT_SCR_GEMM_C, FQT_SCR_MX_A, FQT_SCR_MX_B, FQT_SCR_ATT_S, FQT_SCR_ATT_P, FQT_SCR_ATT_DS, FQT_SCR_ATT_DKV, FQT_SCR_ROW, FQT_SCR_ROPE,
    FQT_SCR_EXPAND,
    FQT_SCR_COUNT
} fqt_cuda_scratch_slot;
void *fqt_cuda_scratch(fqt_cuda_scratch_slot slot, size_t bytes);

/* Host buffers for results that come back (pinned not needed: small). */
static inline unsigned fqt_cuda_blocks(int64_t n, int threads) {
    int64_t b = (n + threads - 1) / threads;
    return (unsigned)(b < 1 ? 1 : b > (1 << 30) ? (1 << 30) : b);
}

/* ---- deterministic block reductions (NT threads, NT a power of two) ---------------------- */
template <int NT, typename R> __device__ R block_sum(R v, R *sh) {
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int s = NT / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) sh[threadIdx.x] = sh[threadIdx.x] + sh[threadIdx.x + s];
        __syncthreads();
    }
    R r = sh[0];
    __syncthreads();
    return r;
}
template <int NT> __device__ float block_max(float v, float *sh) {
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int s = NT / 2; s > 0; s >>= 1) {
        if ((int)threadIdx.x < s) sh[threadIdx.x] = fmaxf(sh[threadIdx.x], sh[threadIdx.x + s]);
        __syncthreads();
    }
    float r = sh[0];
    __syncthreads();
    return r;
}

/* ---- the table's entries (one file each) ----------------------------------------------- */
void *fqt_cuda_alloc(size_t bytes);
void fqt_cuda_free(void *p);
void fqt_cuda_upload(void *dst, const void *src, size_t bytes);
void fqt_cuda_download(void *dst, const void *src, size_t bytes);
void fqt_cuda_copy(void *dst, const void *src, size_t bytes);
void fqt_cuda_zero(void *dst, size_t bytes);
void fqt_cuda_convert(void *dst, fqt_dtype dst_dt, const void *src, fqt_dtype src_dt, int64_t n);
void fqt_cuda_sync(void);
void fqt_cuda_embedding_fwd(void *out, const int32_t *tok, const float *wte, int64_t N, int64_t C);
void fqt_cuda_embedding_bwd(float *dwte, const void *dout, const int32_t *tok, int64_t N, int64_t C);
void fqt_cuda_rmsnorm_fwd(void *out, float *rstd, const void *in, const float *w, int64_t N,
                          int64_t C, float eps);
void fqt_cuda_rmsnorm_bwd(void *din, float *dw, const void *dout, const void *in, const float *w,
                          const float *rstd, int64_t N, int64_t C);
void fqt_cuda_rope_fwd(void *x, int64_t B, int64_t T, int64_t H, int64_t HS, float theta);
void fqt_cuda_rope_bwd(void *dx, int64_t B, int64_t T, int64_t H, int64_t HS, float theta);
void fqt_cuda_attention_fwd(void *out, float *stats, const void *q, const void *k, const void *v,
                            int64_t B, int64_t T, int64_t NH, int64_t NKV, int64_t HS);
void fqt_cuda_attention_bwd(void *dq, void *dk, void *dv, const void *dout, const void *out,
                            const float *stats, const void *q, const void *k, const void *v, int64_t B,
                            int64_t T, int64_t NH, int64_t NKV, int64_t HS);
void fqt_cuda_swiglu_fwd(void *out, const void *gate, const void *up, int64_t n);
void fqt_cuda_swiglu_bwd(void *dgate, void *dup, const void *dout, const void *gate,
                         const void *up, int64_t n);
double fqt_cuda_xent_fwd_bwd(void *dlogits, float *losses, const void *logits,
                             const int32_t *targets, int64_t N, int64_t V, float dscale);
void fqt_cuda_add_inplace(void *y, const void *x, int64_t n);
void fqt_cuda_hadamard16_rows(void *x, int64_t N, int64_t C, uint64_t seed, uint64_t stream);
void fqt_cuda_quantize(fqt_qtensor *q, const void *src, fqt_dtype src_dt, int64_t R, int64_t C,
                       fqt_axis axis, fqt_rounding rounding, uint64_t seed, uint64_t stream,
                       fqt_qstats *stats, const float *tscale);
void fqt_cuda_tensor_scale(float *tscale, const void *src, fqt_dtype src_dt, int64_t n, const fqt_format *f);
void fqt_cuda_dequantize(const fqt_qtensor *q, void *dst, fqt_dtype dst_dt);
/* A GEMM's device-side alpha and beta: ab[0] = alpha * (s_dec(A) * s_dec(B)) (sa, sb the
 * tensors' trailing floats, NULL for 1), ab[1] = beta; written by a kernel the GEMM launches
 * anyway (the second dequantize), or by its own. */
typedef struct {
    float *ab;
    const float *sa, *sb;
    float alpha, beta;
} fqt_cuda_alpha;
__device__ __forceinline__ void fqt_cuda_alpha_put(const fqt_cuda_alpha &a) {
    const float x = a.sa ? *a.sa : 1.0f, y = a.sb ? *a.sb : 1.0f;
    a.ab[0] = a.alpha * (x * y);
    a.ab[1] = a.beta;
}
/* Dequantize into dst (bf16 or f32), without the tensor scale unless asked, for the GEMM;
 * al (may be NULL): one thread of the kernel also writes that GEMM's alpha and beta. */
void fqt_cuda_dequantize_raw(const fqt_qtensor *q, void *dst, fqt_dtype dst_dt, bool with_tensor_scale,
                             const fqt_cuda_alpha *al);
/* The 1x128 E4M3 expansion of an E2M1/E8M0 tensor (fqt_mx_e4m3_expand, FORMATS.md §9) into
 * device buffers: e4m3[rows * cols], gscale[rows * ceil(cols / 128)]. */
void fqt_cuda_mx_e4m3_expand_raw(const fqt_qtensor *q, uint8_t *e4m3, float *gscale);
void fqt_cuda_qgemm(const fqt_qtensor *A, const fqt_qtensor *B, float alpha, float beta, void *C,
                    fqt_dtype c_dt, int64_t ldc);
bool fqt_cuda_qgemm_expands(const fqt_format *f, const fqt_format *other);
int64_t fqt_cuda_adamw(float *w, const float *g, float *m, float *v, int64_t begin, int64_t end,
                       const fqt_adamw_args *a);
void fqt_cuda_sumsq_partials(const float *x, const float *y, int64_t n, double *part);
int64_t fqt_cuda_count_nonfinite(const float *x, int64_t n);

/* The fused tensor-core attention (sm90_flash_attention.cu), bf16 activations, HS 64/128. */
bool fqt_cuda_flash_supported(int64_t HS);
void fqt_cuda_flash_fwd(void *out, float *stats, const void *q, const void *k, const void *v, int64_t B,
                        int64_t T, int64_t NH, int64_t NKV, int64_t HS);
void fqt_cuda_flash_bwd(void *dq, void *dk, void *dv, const void *dout, const void *out, const float *stats,
                        const void *q, const void *k, const void *v, int64_t B, int64_t T, int64_t NH, int64_t NKV,
                        int64_t HS);

/* Row-major batched GEMM through cuBLAS: C[M,N] = alpha op(A) op(B) + beta C per batch
 * element (strides in elements), FP32 compute (no TF32). ld* are row strides. */
void fqt_cuda_gemm_rm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha,
                      const void *A, cudaDataType_t at, int64_t lda, int64_t sa, const void *B,
                      cudaDataType_t bt, int64_t ldb, int64_t sb, float beta, void *C,
                      cudaDataType_t ct, int64_t ldc, int64_t sc, int batch);

#endif
