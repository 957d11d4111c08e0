/* cuda/qgemm.cu — C = alpha deq(A) deq(B)^T + beta C through cuBLASLt with float32
 * accumulation. Oracle: fqt_qgemm (cpu/gemm.c) on the same quantized tensors.
 *
 * Paths, chosen per call from the two formats:
 *  - exact BF16 (tensor cores): every element format of at most 4 significant bits (E2M1,
 *    E4M3, E5M2, INT4) with a power-of-two (E8M0) or 4-bit (UE4M3) block scale, and plain
 *    bf16: code x block scale has at most 8 significant bits, so the dequantized value is
 *    exact in BF16 and every product of two is exact in FP32; the tensor scales go into alpha
 *    (alpha s_dec(A) s_dec(B), computed on the device; cuBLASLt reads alpha and beta from
 *    device memory). Exact except where an E8M0 scale drives the value below BF16's smallest
 *    subnormal (2^-133; scales under about 2^-124), which no training tensor reaches.
 *  - FP32 (CUDA cores, no TF32): everything else (fp8 with FP32 1x128 scales, int4/nf4 with
 *    FP32 scales, fp16, fp32): dequantized to float32 exactly as fqt_dequantize, tensor
 *    scale included, then an FP32 GEMM.
 * Both differ from the CPU only in the order of the float32 accumulation (and, on the BF16
 * path, in applying the tensor scales once after the sum instead of to every operand).
 *  - FP8 block-scaled (the default on Hopper and later; FQT_CUDA_FP8=fp32 takes the FP32 path
 *    instead): both operands e4m3 with FP32 scales per 1x128 (`fp8`) or 128x128 (`fp8-w`)
 *    block, K % 128 == 0, rows % 4 == 0: the E4M3 codes go straight to cuBLASLt's VEC128_32F
 *    block-scaled FP8 GEMM, the scales laid out outer-dimension-major first (a 128x128 block's
 *    scale repeated for each of its rows: the same products). This is the DeepSeek-V3 recipe's
 *    GEMM. Not exact: the FP8 tensor cores accumulate each 128-term block with less than FP32
 *    precision before the scales are applied; tests use a looser derived tolerance.
 *  - MXFP4 on FP8 tensor cores (FQT_CUDA_MXFP4=fp8; the default, bf16, is the exact path
 *    above): E2M1/E8M0 operands with K % 128 == 0 are expanded to E4M3 with one FP32 scale per
 *    1x128 group (mx_fp8.cu, FORMATS.md §9) and go to the block-scaled FP8 GEMM above. Same
 *    products for blocks at most 14 binades under their group's largest; FP8 tensor-core sums.
 *    Not the default until it has been measured on a GPU (it has not run on one yet).
 * Operands of the BF16 path may come expanded (fqt_qtensor.expanded: the quantizer wrote the
 * BF16 values code x block scale, fqt_cuda_qgemm_expands), then cuBLASLt reads them as they
 * are: the same operand bits as the dequantize pass gives, so the same products and sums.
 *  - FP4 block-scaled (compute capability 10.x, Blackwell; FQT_CUDA_FP4=bf16 keeps the BF16
 *    path): two NVFP4 or two MXFP4 operands, K % 32 == 0, M and N % 16 == 0, ldc % 8 == 0: the
 *    packed E2M1 codes straight into cuBLASLt's VEC16_UE4M3 / VEC32_UE8M0 modes, the scales in
 *    the tiled layout of FORMATS.md §7, the tensor scales in alpha. Exact products, the tensor
 *    cores' sums. Written and compiled, not yet run on a Blackwell GPU.
 * Not yet: the fused kernel that reads packed codes in the mainloop on Hopper. */
#include "cuda/common.cuh"
#include "cuda/cuda_backend.h"
#include "cuda/scale_layout.h"

#include <stdlib.h>
#include <string.h>

#define LT_WORKSPACE (32u << 20)

static bool exact_in_bf16(const fqt_format *f) {
    if (f->scale == FQT_SCALE_NONE) return f->elem == FQT_ELEM_BF16;
    if (f->scale != FQT_SCALE_E8M0 && f->scale != FQT_SCALE_UE4M3) return false;
    return f->elem == FQT_ELEM_E2M1 || f->elem == FQT_ELEM_E4M3 || f->elem == FQT_ELEM_E5M2 ||
           f->elem == FQT_ELEM_INT4;
}

static bool is_plain_bf16(const fqt_format *f) {
    return f->elem == FQT_ELEM_BF16 && f->scale == FQT_SCALE_NONE && !f->tensor_scale;
}

/* ab[0] = alpha * (s_dec(A) * s_dec(B)) (each 1 unless given), ab[1] = beta. */
__global__ void qg_alpha_kernel(fqt_cuda_alpha a) { fqt_cuda_alpha_put(a); }

/* C (bf16) = T (float32, ld N) + beta C, or T when beta == 0. */
__global__ void qg_blend_kernel(bf16_t *C, int64_t ldc, const float *T, int64_t M, int64_t N, float beta) {
    const int64_t n = M * N;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t r = i / N, c = i % N;
        const float t = T[i];
        bf16_t *p = C + r * ldc + c;
        *p = fqt_bf16_rne_i(beta == 0.0f ? t : t + beta * fqt_bf16_dec_i(*p));
    }
}

template <typename TC> __global__ void qg_scale_kernel(TC *C, int64_t ldc, int64_t M, int64_t N, float beta) {
    const int64_t n = M * N;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t r = i / N, c = i % N;
        stf(C + r * ldc, c, beta == 0.0f ? 0.0f : beta * ldf(C + r * ldc, c));
    }
}

/* cuBLASLt's heuristic answer per problem, cached: the same shapes recur every step, and the
 * query costs tens of microseconds of host time. Same key, same algorithm: deterministic. A
 * problem without an algorithm is cached too (ok 0), so a fallback does not ask again. */
typedef struct {
    int64_t M, N, K, ldc;
    int in_t, d_t, dev_ab, a_cm, b_cm, mode; /* mode: the block-scale mode, -1 for none */
    int ok;
    cublasLtMatmulHeuristicResult_t res;
} lt_cache_entry;
static lt_cache_entry lt_cache[128];
static int lt_cache_n;

/* One cuBLASLt call: row-major D[M, N] (ld ldc) = ab[0] A B^T + ab[1] D through the
 * column-major D^T = op(B) op(A), with the layouts and descriptor the caller made (key
 * describes them). false, having computed nothing, when cuBLASLt offers no algorithm. */
static bool lt_run(const lt_cache_entry *key, cublasLtMatmulDesc_t op, cublasLtMatrixLayout_t lx,
                   cublasLtMatrixLayout_t ly, cublasLtMatrixLayout_t lc, const float *ab, const void *A,
                   const void *B, void *D) {
    const size_t ws_bytes = LT_WORKSPACE;
    int hit = -1;
    for (int i = 0; i < lt_cache_n && hit < 0; i++) {
        const lt_cache_entry *e = &lt_cache[i];
        if (e->M == key->M && e->N == key->N && e->K == key->K && e->ldc == key->ldc && e->in_t == key->in_t &&
            e->d_t == key->d_t && e->dev_ab == key->dev_ab && e->a_cm == key->a_cm && e->b_cm == key->b_cm &&
            e->mode == key->mode)
            hit = i;
    }
    lt_cache_entry got = *key;
    if (hit >= 0) {
        got = lt_cache[hit];
    } else {
        cublasLtMatmulPreference_t pref;
        FQT_CUDA_CHECK(cublasLtMatmulPreferenceCreate(&pref));
        FQT_CUDA_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                            &ws_bytes, sizeof ws_bytes));
        int nres = 0;
        const cublasStatus_t hs = cublasLtMatmulAlgoGetHeuristic(fqt_cuda.lt, op, lx, ly, lc, lc, pref, 1, &got.res, &nres);
        FQT_CUDA_CHECK(cublasLtMatmulPreferenceDestroy(pref));
        got.ok = hs == CUBLAS_STATUS_SUCCESS && nres > 0;
        if (!got.ok)
            fprintf(stderr, "fqt cuda: cuBLASLt has no algorithm (block-scale mode %d, status %d) for "
                            "[%lld, %lld, %lld]\n", key->mode, (int)hs, (long long)key->M,
                    (long long)key->N, (long long)key->K);
        if (lt_cache_n < 128) lt_cache[lt_cache_n++] = got;
    }
    if (got.ok) {
        void *ws = fqt_cuda_scratch(FQT_SCR_LT_WS, ws_bytes);
        FQT_CUDA_CHECK(cublasLtMatmul(fqt_cuda.lt, op, ab, B, lx, A, ly, ab + 1, D, lc, D, lc, &got.res.algo, ws,
                                      ws_bytes, 0));
    }
    FQT_CUDA_CHECK(cublasLtMatrixLayoutDestroy(lc));
    FQT_CUDA_CHECK(cublasLtMatrixLayoutDestroy(ly));
    FQT_CUDA_CHECK(cublasLtMatrixLayoutDestroy(lx));
    FQT_CUDA_CHECK(cublasLtMatmulDescDestroy(op));
    return got.ok;
}

/* The descriptor of C = A B^T: FP32 compute and scale type, cuBLAS's A our B (column-major
 * view): transposed unless N-contiguous (b_cm), cuBLAS's B our A, transposed when
 * M-contiguous (a_cm); alpha and beta from device memory when dev_ab. */
static cublasLtMatmulDesc_t lt_desc(bool a_cm, bool b_cm, bool dev_ab) {
    cublasLtMatmulDesc_t op;
    FQT_CUDA_CHECK(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    const cublasOperation_t tx = b_cm ? CUBLAS_OP_N : CUBLAS_OP_T, ty = a_cm ? CUBLAS_OP_T : CUBLAS_OP_N;
    const cublasLtPointerMode_t pm = dev_ab ? CUBLASLT_POINTER_MODE_DEVICE : CUBLASLT_POINTER_MODE_HOST;
    FQT_CUDA_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &tx, sizeof tx));
    FQT_CUDA_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &ty, sizeof ty));
    FQT_CUDA_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_POINTER_MODE, &pm, sizeof pm));
    return op;
}

/* Row-major D[M, N] (ld ldc) = ab[0] A[M,K] B[N,K]^T + ab[1] D, A and B K-contiguous, or
 * M- (a_cm) and N-contiguous (b_cm): column-major views (fqt_qtensor.colmajor); ab in device
 * memory when dev_ab, else on the host. */
static void lt_nt(int64_t M, int64_t N, int64_t K, const float *ab, bool dev_ab, const void *A, bool a_cm,
                  const void *B, bool b_cm, cudaDataType_t in_t, void *D, cudaDataType_t d_t, int64_t ldc) {
    cublasLtMatrixLayout_t lx, ly, lc;
    cublasLtMatmulDesc_t op = lt_desc(a_cm, b_cm, dev_ab);
    /* Column-major view: D^T [N, M] = op(B) [N, K] x op(A) [K, M]; a K-contiguous B is the
     * column-major [K, N] (transposed), an N-contiguous one the column-major [N, K]. */
    if (b_cm) FQT_CUDA_CHECK(cublasLtMatrixLayoutCreate(&lx, in_t, (uint64_t)N, (uint64_t)K, N));
    else FQT_CUDA_CHECK(cublasLtMatrixLayoutCreate(&lx, in_t, (uint64_t)K, (uint64_t)N, K));
    if (a_cm) FQT_CUDA_CHECK(cublasLtMatrixLayoutCreate(&ly, in_t, (uint64_t)M, (uint64_t)K, M));
    else FQT_CUDA_CHECK(cublasLtMatrixLayoutCreate(&ly, in_t, (uint64_t)K, (uint64_t)M, K));
    FQT_CUDA_CHECK(cublasLtMatrixLayoutCreate(&lc, d_t, (uint64_t)N, (uint64_t)M, ldc));
    const lt_cache_entry key = {M, N, K, ldc, (int)in_t, (int)d_t, (int)dev_ab, (int)a_cm, (int)b_cm, -1, 0, {}};
    FQT_ASSERT(lt_run(&key, op, lx, ly, lc, ab, A, B, D));
}

/* cuBLASLt's block-scaled GEMM, the same D = ab[0] A B^T + ab[1] D: A [M, K] and B [N, K]
 * K-contiguous codes of type in_t ("TN"), their block scales sa, sb (device memory, in the
 * layout scale mode `mode` wants). false when cuBLASLt has no algorithm for it. */
static bool lt_blockscaled(int64_t M, int64_t N, int64_t K, const float *ab, bool dev_ab, const void *A,
                           const void *sa, const void *B, const void *sb, cudaDataType_t in_t,
                           cublasLtMatmulMatrixScale_t mode, void *D, fqt_dtype d_dt, int64_t ldc) {
    cublasLtMatrixLayout_t lx, ly, lc;
    cublasLtMatmulDesc_t op = lt_desc(false, false, dev_ab);
    FQT_CUDA_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &mode, sizeof mode));
    FQT_CUDA_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &mode, sizeof mode));
    /* cuBLAS's A is our B (column-major view, as lt_nt). */
    FQT_CUDA_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &sb, sizeof sb));
    FQT_CUDA_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &sa, sizeof sa));
    const cudaDataType_t d_t = d_dt == FQT_DT_BF16 ? CUDA_R_16BF : CUDA_R_32F;
    FQT_CUDA_CHECK(cublasLtMatrixLayoutCreate(&lx, in_t, (uint64_t)K, (uint64_t)N, K));
    FQT_CUDA_CHECK(cublasLtMatrixLayoutCreate(&ly, in_t, (uint64_t)K, (uint64_t)M, K));
    FQT_CUDA_CHECK(cublasLtMatrixLayoutCreate(&lc, d_t, (uint64_t)N, (uint64_t)M, ldc));
    const lt_cache_entry key = {M, N, K, ldc, (int)in_t, (int)d_t, (int)dev_ab, 0, 0, (int)mode, 0, {}};
    return lt_run(&key, op, lx, ly, lc, ab, A, B, D);
}

const char *const fqt_cuda_env_fp8[] = {"blockscaled", "fp32", NULL};
const char *const fqt_cuda_env_mxfp4[] = {"bf16", "fp8", NULL};
const char *const fqt_cuda_env_fp4[] = {"native", "bf16", NULL};

/* Calls per path since the process started (fqt_cuda_qgemm_ran: tests check that the shapes
 * meant for a path took it). */
static unsigned long long qg_ran[FQT_CUDA_QG_PATHS];
extern "C" unsigned long long fqt_cuda_qgemm_ran(fqt_cuda_qg_path p) { return (unsigned)p < FQT_CUDA_QG_PATHS ? qg_ran[p] : 0; }

static bool is_fp8_b128(const fqt_format *f) {
    return f->elem == FQT_ELEM_E4M3 && f->scale == FQT_SCALE_FP32 && f->block == 128 &&
           (f->block_rows == 1 || f->block_rows == 128) && !f->tensor_scale;
}

/* dst[kb * rows + r] = src[(r / br) * nkb + kb]: row-major scales of br x 128 blocks to one
 * scale per row and 128-block, outer-dimension-major. */
__global__ void qg_scale_t_kernel(float *dst, const float *src, int64_t rows, int64_t nkb, int br) {
    const int64_t n = rows * nkb;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t kb = i / rows, r = i - kb * rows;
        dst[i] = src[(r / br) * nkb + kb];
    }
}

/* false when cuBLASLt offers no algorithm for it (then the caller takes the FP32 path). */
static bool fp8_blockscaled(const fqt_qtensor *A, const fqt_qtensor *B, float alpha, float beta, void *C,
                            fqt_dtype c_dt, int64_t ldc) {
    const int64_t M = A->rows, N = B->rows, K = A->cols, nkb = K / 128;
    float *sa = (float *)fqt_cuda_scratch(FQT_SCR_DEQ_A, (size_t)(M * nkb) * sizeof(float));
    float *sb = (float *)fqt_cuda_scratch(FQT_SCR_DEQ_B, (size_t)(N * nkb) * sizeof(float));
    qg_scale_t_kernel<<<fqt_cuda_blocks(M * nkb, 256) > 65536 ? 65536 : fqt_cuda_blocks(M * nkb, 256), 256>>>(
        sa, (const float *)A->scales, M, nkb, A->fmt.block_rows);
    FQT_CUDA_LAUNCHED();
    qg_scale_t_kernel<<<fqt_cuda_blocks(N * nkb, 256) > 65536 ? 65536 : fqt_cuda_blocks(N * nkb, 256), 256>>>(
        sb, (const float *)B->scales, N, nkb, B->fmt.block_rows);
    FQT_CUDA_LAUNCHED();
    const float ab[2] = {alpha, beta};
    return lt_blockscaled(M, N, K, ab, false, A->codes, sa, B->codes, sb, CUDA_R_8F_E4M3,
                          CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F, C, c_dt, ldc);
}

static bool is_mx_e2m1(const fqt_format *f) {
    return f->elem == FQT_ELEM_E2M1 && f->scale == FQT_SCALE_E8M0 && !f->tensor_scale && f->block_rows == 1 &&
           f->block > 0 && 128 % f->block == 0;
}

/* ---- Blackwell: block-scaled FP4 tensor cores -------------------------------------------
 * E2M1 codes as they are (two a byte, element 2j in the low nibble: cuBLASLt's order), the
 * block scales converted to the tiled layout (scale_layout.h), the NVFP4 tensor scales in
 * alpha. Taken on compute capability 10.x and later for two operands of one of the two formats
 * cuBLASLt has (NVFP4: E2M1 with UE4M3 scales per 16; MXFP4: E2M1 with E8M0 per 32; 1-D
 * blocks), unless FQT_CUDA_FP4=bf16. The products are exact as on the BF16 path; the sums are
 * the FP4 tensor cores'. Not yet run on a Blackwell GPU (none was available): the tests that
 * check it (test_cuda_backend's qgemm section) run there only. */
static int fp4_scale_mode(const fqt_format *a, const fqt_format *b) {
    if (!fqt_format_equal(a, b) || a->elem != FQT_ELEM_E2M1 || a->block_rows != 1) return -1;
    if (a->scale == FQT_SCALE_UE4M3 && a->block == 16) return CUBLASLT_MATMUL_MATRIX_SCALE_VEC16_UE4M3;
    if (a->scale == FQT_SCALE_E8M0 && a->block == 32) return CUBLASLT_MATMUL_MATRIX_SCALE_VEC32_UE8M0;
    return -1;
}

extern "C" bool fqt_cuda_fp4_native(void) {
    return fqt_cuda.cc_major >= 10 && fqt_cuda_env_choice("FQT_CUDA_FP4", fqt_cuda_env_fp4) != 1;
}

__global__ void qg_scales_tiled_kernel(uint8_t *dst, const uint8_t *src, int64_t rows, int64_t scols, int64_t n) {
    for (int64_t o = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; o < n; o += (int64_t)gridDim.x * blockDim.x) {
        const int64_t i = fqt_scales_tiled_source(o, rows, scols);
        dst[o] = i >= 0 ? src[i] : 0;
    }
}

/* fqt_scales_to_tiled on the device: every byte of dst (fqt_scales_tiled_bytes) written. */
extern "C" void fqt_cuda_scales_to_tiled(uint8_t *dst, const uint8_t *src, int64_t rows, int64_t scols) {
    const int64_t n = (int64_t)fqt_scales_tiled_bytes(rows, scols);
    unsigned nb = fqt_cuda_blocks(n, 256);
    if (nb > 65536) nb = 65536;
    qg_scales_tiled_kernel<<<nb, 256>>>(dst, src, rows, scols, n);
    FQT_CUDA_LAUNCHED();
}

static bool fp4_blockscaled(const fqt_qtensor *A, const fqt_qtensor *B, int mode, float alpha, float beta, void *C,
                            fqt_dtype c_dt, int64_t ldc) {
    const int64_t M = A->rows, N = B->rows, K = A->cols;
    const size_t ta = fqt_scales_tiled_bytes(M, A->scale_cols), tb = fqt_scales_tiled_bytes(N, B->scale_cols);
    uint8_t *sa = (uint8_t *)fqt_cuda_scratch(FQT_SCR_DEQ_A, ta), *sb = (uint8_t *)fqt_cuda_scratch(FQT_SCR_DEQ_B, tb);
    fqt_cuda_scales_to_tiled(sa, A->scales, M, A->scale_cols);
    fqt_cuda_scales_to_tiled(sb, B->scales, N, B->scale_cols);
    const float ab_host[2] = {alpha, beta};
    const float *ab = ab_host;
    if (A->fmt.tensor_scale) { /* alpha s_dec(A) s_dec(B), on the device */
        fqt_cuda_alpha al = {NULL, fqt_backend_qtensor_scale_slot(A), fqt_backend_qtensor_scale_slot(B), alpha, beta};
        ab = al.ab = (float *)fqt_cuda_scratch(FQT_SCR_TSCALE, 64 * sizeof(float)) + 32;
        qg_alpha_kernel<<<1, 1>>>(al);
        FQT_CUDA_LAUNCHED();
    }
    return lt_blockscaled(M, N, K, ab, ab != ab_host, A->codes, sa, B->codes, sb, CUDA_R_4F_E2M1,
                          (cublasLtMatmulMatrixScale_t)mode, C, c_dt, ldc);
}

/* The operands this GEMM dequantizes to BF16 itself (the exact BF16 path, which it takes when
 * the partner's format is exact in BF16 too), so an operand quantized straight into that form
 * saves the pass: not plain bf16 (already is), not MXFP4 while FQT_CUDA_MXFP4=fp8 may send it
 * to the FP8 tensor cores, not NVFP4/MXFP4 pairs on a GPU with FP4 tensor cores (they take the
 * packed codes: fp4_blockscaled below). */
bool fqt_cuda_qgemm_expands(const fqt_format *f, const fqt_format *other) {
    return exact_in_bf16(f) && !is_plain_bf16(f) && exact_in_bf16(other) &&
           !(is_mx_e2m1(f) && fqt_cuda_env_choice("FQT_CUDA_MXFP4", fqt_cuda_env_mxfp4) == 1) &&
           !(fp4_scale_mode(f, other) >= 0 && fqt_cuda_fp4_native());
}

/* MXFP4 on FP8 tensor cores (FQT_CUDA_MXFP4=fp8): both operands expanded to E4M3 codes with
 * one FP32 scale per 1x128 group (FORMATS.md §9: the MXFP4 values exactly, blocks down to 14
 * binades under their group's largest), then the block-scaled FP8 GEMM of the fp8 recipe. Its
 * sums are the FP8 tensor cores' (not exact, as fp8's); false when cuBLASLt has no algorithm. */
static bool mx_fp8(const fqt_qtensor *A, const fqt_qtensor *B, float alpha, float beta, void *C, fqt_dtype c_dt,
                   int64_t ldc) {
    const int64_t K = A->cols;
    const fqt_format f8 = {FQT_ELEM_E4M3, FQT_SCALE_FP32, 128, 1, false, false};
    fqt_qtensor t[2];
    const fqt_qtensor *src[2] = {A, B};
    for (int i = 0; i < 2; i++) {
        const int64_t rows = src[i]->rows, codes = (rows * K + 255) / 256 * 256;
        uint8_t *buf = (uint8_t *)fqt_cuda_scratch(i ? FQT_SCR_MX_B : FQT_SCR_MX_A,
                                                   (size_t)codes + (size_t)(rows * (K / 128)) * sizeof(float));
        FQT_ASSERT(fqt_qtensor_shape(&t[i], &f8, rows, K) == FQT_OK);
        t[i].codes = buf;
        t[i].scales = buf + codes;
        fqt_cuda_mx_e4m3_expand_raw(src[i], t[i].codes, (float *)(void *)t[i].scales);
    }
    return fp8_blockscaled(&t[0], &t[1], alpha, beta, C, c_dt, ldc);
}

void fqt_cuda_qgemm(const fqt_qtensor *A, const fqt_qtensor *B, float alpha, float beta, void *C,
                    fqt_dtype c_dt, int64_t ldc) {
    FQT_ASSERT(A->cols == B->cols);
    FQT_ASSERT((!A->colmajor || is_plain_bf16(&A->fmt)) && (!B->colmajor || is_plain_bf16(&B->fmt)));
    FQT_ASSERT((!A->expanded || exact_in_bf16(&A->fmt)) && (!B->expanded || exact_in_bf16(&B->fmt)));
    const int64_t M = A->rows, N = B->rows, K = A->cols;
    if (M <= 0 || N <= 0) return;
    if (K <= 0) {
        unsigned nb = fqt_cuda_blocks(M * N, 256);
        if (nb > 65536) nb = 65536;
        FQT_DT_DISPATCH(c_dt, TC, qg_scale_kernel<TC><<<nb, 256>>>((TC *)C, ldc, M, N, beta));
        FQT_CUDA_LAUNCHED();
        return;
    }
    if (fqt_cuda_env_choice("FQT_CUDA_FP8", fqt_cuda_env_fp8) != 1 && is_fp8_b128(&A->fmt) && is_fp8_b128(&B->fmt) &&
        K % 128 == 0 && M % 4 == 0 && N % 4 == 0 && ldc % 4 == 0 && fqt_cuda.cc_major >= 9 &&
        fp8_blockscaled(A, B, alpha, beta, C, c_dt, ldc)) {
        qg_ran[FQT_CUDA_QG_FP8]++;
        return;
    }
    const int fp4 = fp4_scale_mode(&A->fmt, &B->fmt);
    if (fp4 >= 0 && fqt_cuda_fp4_native() && !A->expanded && !B->expanded && K % 32 == 0 && M % 16 == 0 &&
        N % 16 == 0 && ldc % 8 == 0 && fp4_blockscaled(A, B, fp4, alpha, beta, C, c_dt, ldc)) {
        qg_ran[FQT_CUDA_QG_FP4]++;
        return;
    }
    if (fqt_cuda_env_choice("FQT_CUDA_MXFP4", fqt_cuda_env_mxfp4) == 1 && !A->expanded && !B->expanded && is_mx_e2m1(&A->fmt) &&
        is_mx_e2m1(&B->fmt) && K % 128 == 0 && M % 4 == 0 && N % 4 == 0 && ldc % 4 == 0 && fqt_cuda.cc_major >= 9 &&
        mx_fp8(A, B, alpha, beta, C, c_dt, ldc)) {
        qg_ran[FQT_CUDA_QG_MX_FP8]++;
        return;
    }
    qg_ran[exact_in_bf16(&A->fmt) && exact_in_bf16(&B->fmt) ? FQT_CUDA_QG_BF16 : FQT_CUDA_QG_F32]++;
    const bool bf = exact_in_bf16(&A->fmt) && exact_in_bf16(&B->fmt);
    /* expanded operands exist for this path only (fqt_cuda_qgemm_expands asks for the partner) */
    FQT_ASSERT(bf || (!A->expanded && !B->expanded));
    const fqt_dtype dt = bf ? FQT_DT_BF16 : FQT_DT_F32;
    const size_t es = fqt_dtype_size(dt);
    const bool f32_to_bf16 = !bf && c_dt == FQT_DT_BF16;
    const float *sa = bf && A->fmt.tensor_scale ? fqt_backend_qtensor_scale_slot(A) : NULL;
    const float *sb = bf && B->fmt.tensor_scale ? fqt_backend_qtensor_scale_slot(B) : NULL;
    /* alpha and beta from the host unless a tensor scale (on the device) goes into alpha; then
     * B's dequantize writes them (or a kernel of their own when B needs none) */
    const float ab_host[2] = {alpha, f32_to_bf16 ? 0.0f : beta};
    const float *ab = ab_host;
    fqt_cuda_alpha al = {NULL, sa, sb, alpha, ab_host[1]};
    if (sa || sb) ab = al.ab = (float *)fqt_cuda_scratch(FQT_SCR_TSCALE, 64 * sizeof(float)) + 32;
    /* Plain bf16 operands are their own dequantization, expanded ones were made so by the
     * quantizer: cuBLASLt reads the codes. */
    const void *a = A->codes, *b = B->codes;
    if (!is_plain_bf16(&A->fmt) && !A->expanded) {
        void *t = fqt_cuda_scratch(FQT_SCR_DEQ_A, (size_t)(M * K) * es);
        fqt_cuda_dequantize_raw(A, t, dt, !bf, NULL);
        a = t;
    }
    if (!is_plain_bf16(&B->fmt) && !B->expanded) {
        void *t = fqt_cuda_scratch(FQT_SCR_DEQ_B, (size_t)(N * K) * es);
        fqt_cuda_dequantize_raw(B, t, dt, !bf, al.ab ? &al : NULL);
        b = t;
    } else if (al.ab) {
        qg_alpha_kernel<<<1, 1>>>(al);
        FQT_CUDA_LAUNCHED();
    }
    const cudaDataType_t in_t = bf ? CUDA_R_16BF : CUDA_R_32F;
    if (f32_to_bf16) {
        /* cuBLASLt has no FP32-input, BF16-output mode: through a float32 temporary. */
        float *t = (float *)fqt_cuda_scratch(FQT_SCR_GEMM_C, (size_t)(M * N) * sizeof(float));
        lt_nt(M, N, K, ab, ab != ab_host, a, false, b, false, in_t, t, CUDA_R_32F, N);
        unsigned nb = fqt_cuda_blocks(M * N, 256);
        if (nb > 65536) nb = 65536;
        qg_blend_kernel<<<nb, 256>>>((bf16_t *)C, ldc, t, M, N, beta);
        FQT_CUDA_LAUNCHED();
    } else {
        lt_nt(M, N, K, ab, ab != ab_host, a, A->colmajor, b, B->colmajor, in_t, C, c_dt == FQT_DT_BF16 ? CUDA_R_16BF : CUDA_R_32F, ldc);
    }
}
