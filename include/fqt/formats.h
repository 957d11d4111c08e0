/* fqt/formats.h — the numeric contract: element and scale codecs, block-scaled tensor
 * formats, quantizers (round-to-nearest-even and stochastic), diagnostics.
 *
 * docs/FORMATS.md is normative; section numbers (§) below refer to it. This module
 * depends on nothing but libc/libm. Not for: GEMMs (fqt/gemm.h) or training policy
 * (which operand gets which format: fqt/recipe.h).
 *
 * Layout convention used everywhere: a quantized tensor is [rows, cols] row-major with
 * its blocks running along cols, the GEMM reduction dimension K. Quantizing "along
 * columns" (fqt_quantize with FQT_AXIS_COLS) therefore produces the transpose. */
#ifndef FQT_FORMATS_H
#define FQT_FORMATS_H

#include "fqt/common.h"
#include <stdbool.h>

/* ---- element types (§2) ------------------------------------------------------ */
typedef enum {
    FQT_ELEM_FP32 = 0,
    FQT_ELEM_BF16,
    FQT_ELEM_FP16,
    FQT_ELEM_E2M1,   /* FP4: 0, .5, 1, 1.5, 2, 3, 4, 6; saturating, no Inf/NaN */
    FQT_ELEM_E4M3,   /* OCP E4M3FN: max 448, NaN 0x7F/0xFF, no Inf; saturating */
    FQT_ELEM_E5M2,   /* OCP E5M2: IEEE-like, max 57344, Inf and NaN */
    FQT_ELEM_INT4,   /* symmetric integers -7..7, two's complement nibble */
    FQT_ELEM_NF4,    /* the 16 QLoRA NormalFloat values in [-1, 1] */
    FQT_ELEM_COUNT
} fqt_elem;

/* ---- scale types (§3) -------------------------------------------------------- */
typedef enum {
    FQT_SCALE_NONE = 0, /* no block scale (fp32, bf16, fp16 elements) */
    FQT_SCALE_E8M0,     /* 2^(e-127), 0xFF = NaN (OCP MX) */
    FQT_SCALE_UE4M3,    /* unsigned E4M3, 0x7F = NaN (NVFP4) */
    FQT_SCALE_FP32,     /* IEEE binary32 (fp8 DeepSeek-style, int4, nf4) */
    FQT_SCALE_COUNT
} fqt_scale_type;

typedef enum { FQT_ROUND_RNE = 0, FQT_ROUND_SR, FQT_ROUND_COUNT } fqt_rounding;
typedef enum { FQT_AXIS_ROWS = 0, FQT_AXIS_COLS, FQT_AXIS_COUNT } fqt_axis;

/* ---- scalar codecs (§2, §3). Codes live in the low bits of the return value. ---- */
FQT_HD uint8_t fqt_e2m1_encode_rne(float x);
FQT_HD uint8_t fqt_e2m1_encode_sr(float x, uint32_t rnd); /* rnd: 32 uniform random bits */
FQT_HD float   fqt_e2m1_decode(uint8_t code);
FQT_HD uint8_t fqt_e4m3_encode_rne(float x);
FQT_HD uint8_t fqt_e4m3_encode_sr(float x, uint32_t rnd);
FQT_HD float   fqt_e4m3_decode(uint8_t code);
FQT_HD uint8_t fqt_e5m2_encode_rne(float x);     /* §2.3: IEEE-like, overflow to Inf */
FQT_HD uint8_t fqt_e5m2_encode_rne_sat(float x); /* as a block element: saturates to 57344 */
FQT_HD uint8_t fqt_e5m2_encode_sr(float x, uint32_t rnd);
FQT_HD float   fqt_e5m2_decode(uint8_t code);
FQT_HD uint8_t fqt_int4_encode_rne(float x);
FQT_HD uint8_t fqt_int4_encode_sr(float x, uint32_t rnd);
FQT_HD float   fqt_int4_decode(uint8_t code);
FQT_HD uint8_t fqt_nf4_encode_rne(float x);
FQT_HD uint8_t fqt_nf4_encode_sr(float x, uint32_t rnd);
FQT_HD float   fqt_nf4_decode(uint8_t code);
FQT_HD uint16_t fqt_bf16_encode_rne(float x);
FQT_HD uint16_t fqt_bf16_encode_sr(float x, uint32_t rnd);
FQT_HD float    fqt_bf16_decode(uint16_t code);
FQT_HD uint16_t fqt_fp16_encode_rne(float x);
FQT_HD uint16_t fqt_fp16_encode_sr(float x, uint32_t rnd);
FQT_HD float    fqt_fp16_decode(uint16_t code);
FQT_HD uint8_t fqt_e8m0_encode_floor(float x); /* 2^floor(log2 x), clamped; NaN/Inf/<=0 -> §3.1 */
FQT_HD float   fqt_e8m0_decode(uint8_t code);
FQT_HD uint8_t fqt_ue4m3_encode_rne(float x);  /* x >= 0; saturates to 448 */
FQT_HD float   fqt_ue4m3_decode(uint8_t code);

/* Generic element codec by type, as the quantizers use it: round x (already divided by the
 * block scale); finite inputs saturate for every type with a finite maximum (§5.1), so E5M2
 * RNE is fqt_e5m2_encode_rne_sat here. */
FQT_HD uint32_t fqt_elem_encode(fqt_elem t, float x, fqt_rounding r, uint32_t rnd);
FQT_HD float    fqt_elem_decode(fqt_elem t, uint32_t code);
int   fqt_elem_bits(fqt_elem t);      /* 4, 8, 16 or 32 */
float fqt_elem_max(fqt_elem t);       /* largest finite magnitude */
int   fqt_elem_emax(fqt_elem t);      /* exponent of the largest power of two <= max (E2M1: 2) */
const char *fqt_elem_name(fqt_elem t);
const char *fqt_scale_name(fqt_scale_type t);

/* ---- stochastic-rounding random bits (§4) --------------------------------------
 * Philox4x32-10 keyed by the 64-bit seed; the counter is (index/4 lo, index/4 hi,
 * stream lo, stream hi) and the word index%4 of the output block is the element's
 * 32 random bits. `stream` names the tensor and step (fqt_sr_stream), `index` is the
 * element's row-major index in the quantized [rows, cols] layout. Nothing depends on
 * threads or launch shape. */
typedef struct { uint32_t v[4]; } fqt_philox_out;
FQT_HD fqt_philox_out fqt_philox4x32_10(uint32_t ctr[4], uint32_t key[2]);
FQT_HD uint32_t fqt_sr_bits(uint64_t seed, uint64_t stream, uint64_t index);
/* Compose a stream id from a tensor id, an operand role and the step. */
FQT_HD uint64_t fqt_sr_stream(uint32_t tensor_id, uint32_t role, uint32_t step);

/* ---- block-scaled formats (§5) --------------------------------------------------- */
typedef struct {
    fqt_elem elem;
    fqt_scale_type scale;
    int32_t block;       /* elements per block along K (cols); 0 = unscaled */
    int32_t block_rows;  /* 1 for 1-D blocks; >1: 2-D tiles of block_rows x block */
    bool tensor_scale;   /* FP32 per-tensor scale (NVFP4, §5.3) */
    bool scale_ceil;     /* E8M0 round-up variant: X = 2^ceil(log2(amax/max)) (§5.2) */
} fqt_format;

/* Parse "nvfp4", "mxfp4", "mxfp8", "fp8", "fp8-w" (128x128), "int4", "nf4", "bf16",
 * "fp16", "fp32", or the generic form ELEM:bN[xM]:SCALE[:tensor][:ceil], e.g.
 * "e2m1:b16:ue4m3:tensor" or "e2m1:b16x16:ue4m3:tensor". On failure returns
 * FQT_ERR_ARG and sets fqt_last_error() to a message listing the valid names. */
fqt_status fqt_format_parse(const char *s, fqt_format *out);
/* Canonical name ("nvfp4" for the preset, else the generic form) into buf. */
const char *fqt_format_name(const fqt_format *f, char *buf, size_t n);
bool fqt_format_equal(const fqt_format *a, const fqt_format *b);
bool fqt_format_is_identity(const fqt_format *f); /* fp32: no rounding at all */
/* Names of the presets, NULL-terminated, for listings. */
extern const char *const fqt_format_presets[];

/* ---- quantized tensors ------------------------------------------------------------ */
typedef struct {
    fqt_format fmt;
    int64_t rows, cols;     /* logical shape; blocks along cols */
    int64_t row_bytes;      /* bytes per row of codes (4-bit: (cols+1)/2, 2 codes a byte,
                               element 0 in the low nibble; 8-bit: cols; 16/32-bit: 2,4*cols) */
    uint8_t *codes;         /* rows * row_bytes */
    int64_t scale_rows, scale_cols; /* ceil(rows/block_rows), ceil(cols/block) */
    uint8_t *scales;        /* scale codes: 1 byte (E8M0, UE4M3) or 4 (FP32) each, row-major */
    float tensor_scale;     /* s_dec of §5.3 (1 when unused) */
    int64_t n_nonfinite;    /* NaN/Inf inputs seen by the quantizer; their blocks decode to NaN */
    bool colmajor;          /* plain bf16 only: element (r, c) at codes[c * rows + r], a view of a
                               [cols, rows] row-major source that only a backend's qgemm reads
                               (fqt_backend.qgemm_colmajor_bf16); false everywhere else */
    bool expanded;          /* a GEMM operand in the form its backend's qgemm consumes: codes hold
                               the BF16 values code x block scale (exact for the formats of
                               fqt_backend.qgemm_expands), row-major [rows, cols], no scale codes;
                               the tensor scale stays apart (fqt_backend_qtensor_bind_expanded) */
} fqt_qtensor;

/* Shape q as a [rows, cols] tensor in format f without storage (codes, scales NULL): for
 * callers that place codes and scales in memory of their own (backend workspaces). */
fqt_status fqt_qtensor_shape(fqt_qtensor *q, const fqt_format *f, int64_t rows, int64_t cols);
size_t fqt_qtensor_code_bytes(const fqt_qtensor *q);  /* rows * row_bytes */
size_t fqt_qtensor_scale_bytes(const fqt_qtensor *q); /* scale_rows * scale_cols * 1 or 4 */
/* Allocate storage for a [rows, cols] tensor in format f (contents undefined). */
fqt_status fqt_qtensor_alloc(fqt_qtensor *q, const fqt_format *f, int64_t rows, int64_t cols);
void fqt_qtensor_free(fqt_qtensor *q);
size_t fqt_qtensor_bytes(const fqt_qtensor *q); /* codes + scales */
float fqt_qtensor_scale(const fqt_qtensor *q, int64_t scale_index); /* decoded block scale */

/* Quantization statistics (§6); accumulate over calls, reset with memset 0. */
typedef struct {
    int64_t n;             /* elements */
    int64_t n_nonfinite;   /* NaN/Inf inputs */
    int64_t n_saturated;   /* |x / scale| above the element max: clipped */
    int64_t n_flushed;     /* x != 0 but dequantized to 0 */
    double sum_sq_err;     /* sum (deq - x)^2 over finite inputs */
    double sum_sq;         /* sum x^2 over finite inputs */
    int64_t code_hist[16]; /* 4-bit element formats: how often each code was used */
    float scale_min, scale_max; /* over blocks with a nonzero scale; 0,0 if none */
    int64_t n_blocks, n_zero_blocks;
} fqt_qstats;

double fqt_qstats_mse(const fqt_qstats *s);
double fqt_qstats_snr_db(const fqt_qstats *s); /* 10 log10(sum x^2 / sum err^2); +inf if exact */
void   fqt_qstats_merge(fqt_qstats *into, const fqt_qstats *from);

/* Quantize src, a row-major [src_rows, src_cols] float32 array.
 *  axis == FQT_AXIS_ROWS: q is [src_rows, src_cols], blocks along each row.
 *  axis == FQT_AXIS_COLS: q is [src_cols, src_rows] (the transpose), blocks along each
 *                         column of src. Both are first-class (§5.5).
 *  rounding, seed, stream: §4. q must be allocated with the matching shape and format.
 *  stats: may be NULL; if given, accumulates §6 statistics.
 * Returns FQT_OK, or FQT_ERR_NONFINITE when some input was NaN/Inf (the result is still
 * complete; those blocks decode to NaN, q->n_nonfinite counts the inputs). OpenMP
 * parallel; the result does not depend on the thread count. */
fqt_status fqt_quantize(fqt_qtensor *q, const float *src, int64_t src_rows, int64_t src_cols,
                        fqt_axis axis, fqt_rounding rounding, uint64_t seed, uint64_t stream,
                        fqt_qstats *stats);

/* Decode q to a row-major [q->rows, q->cols] float32 array: (code * block scale) * s_dec. */
void fqt_dequantize(const fqt_qtensor *q, float *dst);

/* Quantize-dequantize in one call: dst (same layout as src, also when axis is COLS) gets
 * deq(quant(src)). dst may equal src. Returns like fqt_quantize. */
fqt_status fqt_qdq(const fqt_format *f, const float *src, float *dst, int64_t rows,
                   int64_t cols, fqt_axis axis, fqt_rounding rounding, uint64_t seed,
                   uint64_t stream, fqt_qstats *stats);

/* Per-tensor encode scale of a UE4M3 `:tensor` format (§5.3): s_enc = (elem_max * 448) /
 * amax, 1 for amax == 0 (or NaN), FLT_MAX where the division overflows. This is the plain
 * formula the quantizer uses for amax >= 2^-64; below that it first multiplies the tensor by
 * 2^64 (§5.3), so it never reaches the clamp. elem_max is fqt_elem_max(element type). */
float fqt_tensor_scale_enc(float amax, float elem_max);
/* The same for NVFP4's E2M1 elements: s_enc = 6*448/amax. */
float fqt_nvfp4_tensor_scale_enc(float amax);

/* ---- MXFP4 on FP8 tensor cores (§9) ----------------------------------------------
 * The 1x128 E4M3 expansion of an E2M1 tensor with E8M0 1-D blocks (block 16, 32, 64 or 128,
 * no tensor scale): e4m3[r * cols + c] (one byte per element) and gscale[r * ngroups + g]
 * (float32, ngroups = ceil(cols / 128)) with e4m3 value * gscale == fqt_dequantize's value
 * for every element of every block at most 14 binades below the largest block of its
 * 128-column group; blocks further below are rounded to E4M3 (RNE) and counted in
 * *n_inexact. A group holding a NaN block gets a NaN scale. FQT_ERR_ARG for other formats. */
fqt_status fqt_mx_e4m3_expand(const fqt_qtensor *q, uint8_t *e4m3, float *gscale, int64_t *n_inexact);

/* ---- vector paths of the quantizer -------------------------------------------------
 * fqt_quantize has scalar code (the oracle, codec.h) and AVX2 / AVX-512 paths, used when no
 * statistics are requested, for the E2M1 formats with E8M0 or UE4M3 scales (nvfp4, nvfp4-2d,
 * mxfp4 and their generic forms), the E4M3 formats with FP32 or E8M0 scales (fp8, fp8-w,
 * mxfp8) and plain bf16: tensor and block amax, UE4M3 scales, RNE and SR encoding, nibble
 * packing and the Philox bits, bit-identical to the scalar code. AUTO picks the widest
 * the CPU supports at run time; the environment variable FQT_QUANT_ISA (scalar|avx2|
 * avx512|auto), read on first use, overrides it. Process-wide; not to be changed while a
 * quantizer runs. Returns FQT_ERR_ARG, keeping the choice, if this CPU cannot run it. */
typedef enum { FQT_ISA_AUTO = 0, FQT_ISA_SCALAR, FQT_ISA_AVX2, FQT_ISA_AVX512, FQT_ISA_COUNT } fqt_isa;
fqt_status fqt_quant_set_isa(fqt_isa isa);
fqt_isa fqt_quant_get_isa(void); /* never AUTO */
bool fqt_quant_isa_supported(fqt_isa isa);
const char *fqt_isa_name(fqt_isa isa);

#endif
