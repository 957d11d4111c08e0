/* formats/quant.c — block quantizers (RNE and SR), dequantization, quantize-dequantize
 * and the §6 diagnostics, for every format of docs/FORMATS.md §5.
 *
 * Parallel over groups of block rows with OpenMP; every element's result depends only on
 * its block, the tensor scale and its own random bits (keyed by its index, §4), so the
 * output never depends on the thread count. Statistics are gathered per group and merged
 * in group order for the same reason. Not for: GEMMs (cpu/gemm.c). */
#include "codec.h"
#include "quant_vec.h"

#include <float.h>
#include <stdlib.h>

#ifdef _OPENMP
#include <omp.h>
#endif

static int scale_bytes(fqt_scale_type t) {
    return t == FQT_SCALE_FP32 ? 4 : t == FQT_SCALE_NONE ? 0 : 1;
}

fqt_status fqt_qtensor_shape(fqt_qtensor *q, const fqt_format *f, int64_t rows, int64_t cols) {
    memset(q, 0, sizeof *q);
    if (rows < 0 || cols < 0) {
        fqt_set_error("quantized tensor: negative shape [%lld, %lld]", (long long)rows,
                      (long long)cols);
        return FQT_ERR_ARG;
    }
    if ((f->scale == FQT_SCALE_NONE) != (f->block == 0) || f->block < 0 || f->block_rows < 1 ||
        (unsigned)f->elem >= FQT_ELEM_COUNT || (unsigned)f->scale >= FQT_SCALE_COUNT) {
        fqt_set_error("quantized tensor: inconsistent format descriptor");
        return FQT_ERR_ARG;
    }
    int bits = fqt_elem_bits(f->elem);
    q->fmt = *f;
    q->rows = rows;
    q->cols = cols;
    q->row_bytes = bits == 4 ? (cols + 1) / 2 : cols * (bits / 8);
    q->tensor_scale = 1.0f;
    if (f->scale != FQT_SCALE_NONE) {
        q->scale_rows = (rows + f->block_rows - 1) / f->block_rows;
        q->scale_cols = (cols + f->block - 1) / f->block;
    }
    return FQT_OK;
}

size_t fqt_qtensor_code_bytes(const fqt_qtensor *q) { return (size_t)(q->rows * q->row_bytes); }

size_t fqt_qtensor_scale_bytes(const fqt_qtensor *q) {
    return (size_t)(q->scale_rows * q->scale_cols) * (size_t)scale_bytes(q->fmt.scale);
}

fqt_status fqt_qtensor_alloc(fqt_qtensor *q, const fqt_format *f, int64_t rows, int64_t cols) {
    fqt_status st = fqt_qtensor_shape(q, f, rows, cols);
    if (st) return st;
    q->codes = calloc(fqt_qtensor_code_bytes(q) + 1, 1);
    if (f->scale != FQT_SCALE_NONE) q->scales = calloc(fqt_qtensor_scale_bytes(q) + 1, 1);
    if (!q->codes || (f->scale != FQT_SCALE_NONE && !q->scales)) {
        fqt_qtensor_free(q);
        fqt_set_error("quantized tensor: out of memory for [%lld, %lld]", (long long)rows,
                      (long long)cols);
        return FQT_ERR_NOMEM;
    }
    return FQT_OK;
}

void fqt_qtensor_free(fqt_qtensor *q) {
    free(q->codes);
    free(q->scales);
    q->codes = q->scales = NULL;
}

size_t fqt_qtensor_bytes(const fqt_qtensor *q) {
    return fqt_qtensor_code_bytes(q) + fqt_qtensor_scale_bytes(q);
}

static inline float scale_decode(const fqt_qtensor *q, int64_t i) {
    switch (q->fmt.scale) {
    case FQT_SCALE_E8M0: return fqt_e8m0_dec_i(q->scales[i]);
    case FQT_SCALE_UE4M3: return fqt_ue4m3_dec_i(q->scales[i]);
    case FQT_SCALE_FP32: { float s; memcpy(&s, q->scales + 4 * i, 4); return s; }
    default: return 1.0f;
    }
}

float fqt_qtensor_scale(const fqt_qtensor *q, int64_t i) { return scale_decode(q, i); }

static inline void put_code(uint8_t *row, int bits, int64_t c, uint32_t code) {
    switch (bits) {
    case 4: {
        uint8_t *p = row + (c >> 1);
        *p = (c & 1) ? (uint8_t)((*p & 0x0F) | (code << 4)) : (uint8_t)((*p & 0xF0) | (code & 0xF));
        break;
    }
    case 8: row[c] = (uint8_t)code; break;
    case 16: { uint16_t v = (uint16_t)code; memcpy(row + 2 * c, &v, 2); break; }
    default: memcpy(row + 4 * c, &code, 4);
    }
}

static inline uint32_t get_code(const uint8_t *row, int bits, int64_t c) {
    switch (bits) {
    case 4: return (row[c >> 1] >> ((c & 1) * 4)) & 0xF;
    case 8: return row[c];
    case 16: { uint16_t v; memcpy(&v, row + 2 * c, 2); return v; }
    default: { uint32_t v; memcpy(&v, row + 4 * c, 4); return v; }
    }
}


float fqt_tensor_scale_enc(float amax, float elem_max) { return fqt_tensor_s_enc_i(amax, elem_max); }
float fqt_nvfp4_tensor_scale_enc(float amax) { return fqt_tensor_s_enc_i(amax, 6.0f); }

/* Random bits for consecutive indices, one Philox call per four elements (§4). */
typedef struct {
    uint64_t seed, stream, blk;
    uint32_t w[4];
} sr_cache;

static inline uint32_t sr_next(sr_cache *c, uint64_t index) {
    if ((index >> 2) != c->blk) {
        c->blk = index >> 2;
        fqt_sr_block4(c->seed, c->stream, c->blk, c->w);
    }
    return c->w[index & 3];
}

/* The block scale and its mapping (§5.2-§5.4) live in codec.h (fqt_block_scale_i), shared
 * with the CUDA quantizer. */
static inline fqt_block_map block_scale(const fqt_format *f, float amax, float s_enc, float s_dec,
                                        uint8_t *scale_out) {
    return fqt_block_scale_i(f->scale, f->scale_ceil, fqt_elem_max(f->elem),
                             fqt_elem_emax(f->elem), amax, s_enc, s_dec, scale_out);
}

static void stats_element(fqt_qstats *st, float x, float deq, float scaled, float emax, int bits,
                          uint32_t code) {
    double err = (double)deq - (double)x;
    st->sum_sq_err += err * err;
    st->sum_sq += (double)x * (double)x;
    if (fabsf(scaled) > emax) st->n_saturated++;
    if (x != 0.0f && deq == 0.0f) st->n_flushed++;
    if (bits == 4) st->code_hist[code & 15]++;
}

static void stats_scale(fqt_qstats *st, float s) {
    if (!(s > 0.0f)) {
        st->n_zero_blocks += s == 0.0f;
        return;
    }
    if (st->scale_max == 0.0f || s < st->scale_min) st->scale_min = s;
    if (s > st->scale_max) st->scale_max = s;
}

void fqt_qstats_merge(fqt_qstats *into, const fqt_qstats *from) {
    into->n += from->n;
    into->n_nonfinite += from->n_nonfinite;
    into->n_saturated += from->n_saturated;
    into->n_flushed += from->n_flushed;
    into->sum_sq_err += from->sum_sq_err;
    into->sum_sq += from->sum_sq;
    for (int i = 0; i < 16; i++) into->code_hist[i] += from->code_hist[i];
    if (from->scale_max > 0.0f) {
        if (into->scale_max == 0.0f || from->scale_min < into->scale_min)
            into->scale_min = from->scale_min;
        if (from->scale_max > into->scale_max) into->scale_max = from->scale_max;
    }
    into->n_blocks += from->n_blocks;
    into->n_zero_blocks += from->n_zero_blocks;
}

double fqt_qstats_mse(const fqt_qstats *s) {
    int64_t n = s->n - s->n_nonfinite;
    return n > 0 ? s->sum_sq_err / (double)n : 0.0;
}

double fqt_qstats_snr_db(const fqt_qstats *s) {
    if (s->sum_sq_err == 0.0) return INFINITY;
    return 10.0 * log10(s->sum_sq / s->sum_sq_err);
}

/* ---- instruction-set choice (fqt/formats.h) ---------------------------------------- */
static const char *const isa_names[FQT_ISA_COUNT] = {"auto", "scalar", "avx2", "avx512"};
FQT_STATIC_ASSERT(FQT_ISA_COUNT == 4, "one name per fqt_isa");

const char *fqt_isa_name(fqt_isa isa) {
    return (unsigned)isa < FQT_ISA_COUNT ? isa_names[isa] : "?";
}

bool fqt_quant_isa_supported(fqt_isa isa) {
    switch (isa) {
    case FQT_ISA_AUTO:
    case FQT_ISA_SCALAR: return true;
#if defined(__GNUC__) && defined(__x86_64__)
    case FQT_ISA_AVX2:
        return fqt_quant_vec_avx2 && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case FQT_ISA_AVX512: return fqt_quant_vec_avx512 && __builtin_cpu_supports("avx512f");
#endif
    default: return false;
    }
}

static int g_isa = -1; /* resolved, never AUTO; -1 until first use */

static fqt_isa best_isa(void) {
    if (fqt_quant_isa_supported(FQT_ISA_AVX512)) return FQT_ISA_AVX512;
    if (fqt_quant_isa_supported(FQT_ISA_AVX2)) return FQT_ISA_AVX2;
    return FQT_ISA_SCALAR;
}

fqt_status fqt_quant_set_isa(fqt_isa isa) {
    if ((unsigned)isa >= FQT_ISA_COUNT || !fqt_quant_isa_supported(isa)) {
        fqt_set_error("quantizer instruction set '%s' is not supported on this CPU or build",
                      fqt_isa_name(isa));
        return FQT_ERR_ARG;
    }
    g_isa = isa == FQT_ISA_AUTO ? (int)best_isa() : (int)isa;
    return FQT_OK;
}

fqt_isa fqt_quant_get_isa(void) {
    if (g_isa < 0) {
        const char *e = getenv("FQT_QUANT_ISA");
        fqt_isa want = FQT_ISA_AUTO;
        for (int i = 1; e && i < FQT_ISA_COUNT; i++)
            if (!strcmp(e, isa_names[i])) want = (fqt_isa)i;
        if (fqt_quant_set_isa(want)) g_isa = (int)best_isa();
    }
    return (fqt_isa)g_isa;
}

static const fqt_quant_vec *quant_vec(void) {
    switch (fqt_quant_get_isa()) {
    case FQT_ISA_AVX2: return fqt_quant_vec_avx2;
    case FQT_ISA_AVX512: return fqt_quant_vec_avx512;
    default: return NULL;
    }
}

/* Per-thread scratch of the vector path: one row's SR bits, each block's multiplier. */
typedef struct {
    uint32_t *rnd; /* cols + 8 words */
    float *mul;    /* scale_cols */
    float *amax;   /* scale_cols: the block amax (0 for a non-finite block) */
    float *div;    /* scale_cols: the block divisor (FP32 scales, §5.4) or 0 */
    uint8_t *ok;   /* scale_cols: block is finite and still to be encoded */
    uint8_t *code; /* scale_cols: the scale codes of the vector scale kernel */
} vec_scratch;

/* The amax of one block, rows [r0, r1) x columns [c0, c1) of x (cols wide), through the
 * vector amax; *bad = how many of its elements are NaN/Inf. */
static float tile_amax(const fqt_quant_vec *v, const float *x, int64_t cols, int64_t r0, int64_t r1,
                       int64_t c0, int64_t c1, int64_t *bad) {
    float amax = 0.0f;
    *bad = 0;
    for (int64_t r = r0; r < r1; r++) {
        int64_t b;
        const float a = v->amax(x + r * cols + c0, c1 - c0, &b);
        *bad += b;
        if (a > amax) amax = a;
    }
    return amax;
}

/* The SR words of row r (cols elements) of the quantized layout, a row at a time through the
 * vector Philox: rr[c] is element c's word (§4). NULL for an empty row. */
static const uint32_t *row_sr_bits(const fqt_quant_vec *v, uint64_t seed, uint64_t stream, int64_t r,
                                   int64_t cols, vec_scratch *w) {
    if (cols <= 0) return NULL;
    const uint64_t base = (uint64_t)(r * cols), first4 = base >> 2;
    const int64_t nblk = (int64_t)(((base + (uint64_t)cols - 1) >> 2) - first4 + 1);
    v->philox(seed, stream, first4, nblk, w->rnd);
    return w->rnd + (base & 3);
}

/* The vector path for E2M1 elements with E8M0/UE4M3 scales and no statistics: the same
 * codes and scales as quantize_group below (its oracle), block amax and encoding through
 * the table v, SR bits a row at a time. Returns the number of non-finite inputs. */
static int64_t quantize_group_vec(fqt_qtensor *q, const float *x, int64_t r0, int64_t r1,
                                  fqt_rounding rounding, uint64_t seed, uint64_t stream,
                                  float s_enc, float s_dec, const fqt_quant_vec *v,
                                  vec_scratch *w) {
    const fqt_format *f = &q->fmt;
    const int64_t cols = q->cols, g = r0 / f->block_rows;
    int64_t nonfinite = 0;
    if (r1 - r0 == 1) {
        /* 1-D blocks: every block amax of the row in one call (w->ok holds the bad flags) */
        nonfinite = v->block_amax(x + r0 * cols, cols, f->block, w->amax, w->ok);
        for (int64_t j = 0; j < q->scale_cols; j++) {
            if (!w->ok[j]) { w->ok[j] = 1; continue; }
            const int64_t c0 = j * f->block, c1 = c0 + f->block < cols ? c0 + f->block : cols;
            q->scales[g * q->scale_cols + j] = f->scale == FQT_SCALE_E8M0 ? 0xFF : 0x7F; /* §5.1 */
            for (int64_t c = c0; c < c1; c++) put_code(q->codes + r0 * q->row_bytes, 4, c, 0);
            w->ok[j] = 0;
            w->amax[j] = 0.0f;
        }
    }
    for (int64_t j = 0; r1 - r0 > 1 && j < q->scale_cols; j++) {
        int64_t c0 = j * f->block, c1 = c0 + f->block < cols ? c0 + f->block : cols;
        int64_t bad;
        const float amax = tile_amax(v, x, cols, r0, r1, c0, c1, &bad);
        uint8_t *sp = q->scales + g * q->scale_cols + j;
        w->ok[j] = 0;
        w->amax[j] = 0.0f;
        if (bad) {
            *sp = f->scale == FQT_SCALE_E8M0 ? 0xFF : 0x7F; /* §5.1 */
            for (int64_t r = r0; r < r1; r++)
                for (int64_t c = c0; c < c1; c++) put_code(q->codes + r * q->row_bytes, 4, c, 0);
            nonfinite += bad;
            continue;
        }
        w->ok[j] = 1;
        w->amax[j] = amax;
    }
    /* The scales: UE4M3 for all blocks at once in the vector kernel, else block by block. */
    uint8_t *sg = q->scales + g * q->scale_cols;
    if (f->scale == FQT_SCALE_UE4M3) {
        v->ue4m3_scales(w->amax, q->scale_cols, fqt_elem_max(f->elem), s_enc, s_dec, w->code, w->mul);
        for (int64_t j = 0; j < q->scale_cols; j++)
            if (w->ok[j]) sg[j] = w->code[j];
    } else {
        for (int64_t j = 0; j < q->scale_cols; j++)
            if (w->ok[j]) w->mul[j] = block_scale(f, w->amax[j], s_enc, s_dec, sg + j).mul;
    }
    for (int64_t r = r0; r < r1; r++) {
        const float *xr = x + r * cols;
        uint8_t *row = q->codes + r * q->row_bytes;
        const uint32_t *rr = rounding == FQT_ROUND_SR ? row_sr_bits(v, seed, stream, r, cols, w) : NULL;
        for (int64_t j = 0; j < q->scale_cols; j++) {
            if (!w->ok[j]) continue;
            const int64_t c0 = j * f->block, c1 = c0 + f->block < cols ? c0 + f->block : cols;
            const float mul = w->mul[j];
            if (!(c0 & 1) && !((c1 - c0) & 1)) {
                if (rr) v->e2m1_sr(xr + c0, c1 - c0, mul, rr + c0, row + (c0 >> 1));
                else v->e2m1_rne(xr + c0, c1 - c0, mul, row + (c0 >> 1));
                continue;
            }
            for (int64_t c = c0; c < c1; c++)
                put_code(row, 4, c, rr ? fqt_e2m1_sr_i(xr[c] * mul, rr[c]) : fqt_e2m1_rne_i(xr[c] * mul));
        }
    }
    return nonfinite;
}

/* The vector path for E4M3 elements with FP32 (§5.4) or E8M0 (§5.2) scales and no
 * statistics: the codes and scales of quantize_group (its oracle). */
static int64_t quantize_group_e4m3_vec(fqt_qtensor *q, const float *x, int64_t r0, int64_t r1,
                                       fqt_rounding rounding, uint64_t seed, uint64_t stream,
                                       const fqt_quant_vec *v, vec_scratch *w) {
    const fqt_format *f = &q->fmt;
    const int64_t cols = q->cols, g = r0 / f->block_rows;
    const int sbytes = f->scale == FQT_SCALE_FP32 ? 4 : 1;
    int64_t nonfinite = 0;
    for (int64_t j = 0; j < q->scale_cols; j++) {
        const int64_t c0 = j * f->block, c1 = c0 + f->block < cols ? c0 + f->block : cols;
        int64_t bad;
        const float amax = tile_amax(v, x, cols, r0, r1, c0, c1, &bad);
        uint8_t *sp = q->scales + (g * q->scale_cols + j) * sbytes;
        w->ok[j] = !bad;
        if (bad) {
            if (f->scale == FQT_SCALE_FP32) { const float nan = NAN; memcpy(sp, &nan, 4); } /* §5.1 */
            else *sp = 0xFF;
            for (int64_t r = r0; r < r1; r++) memset(q->codes + r * q->row_bytes + c0, 0, (size_t)(c1 - c0));
            nonfinite += bad;
            continue;
        }
        const fqt_block_map m = block_scale(f, amax, 1.0f, 1.0f, sp);
        w->mul[j] = m.mul;
        w->div[j] = m.div;
    }
    for (int64_t r = r0; r < r1; r++) {
        const uint32_t *rr = rounding == FQT_ROUND_SR ? row_sr_bits(v, seed, stream, r, cols, w) : NULL;
        for (int64_t j = 0; j < q->scale_cols; j++) {
            if (!w->ok[j]) continue;
            const int64_t c0 = j * f->block, c1 = c0 + f->block < cols ? c0 + f->block : cols;
            v->e4m3(x + r * cols + c0, c1 - c0, w->mul[j], w->div[j], rr ? rr + c0 : NULL,
                    q->codes + r * q->row_bytes + c0);
        }
    }
    return nonfinite;
}

/* The vector path for BF16 (unscaled, no statistics): the codes of quantize_group's BF16
 * loop, SR bits a row at a time as in quantize_group_vec. Returns the non-finite count. */
static int64_t quantize_group_bf16_vec(fqt_qtensor *q, const float *x, int64_t r0, int64_t r1,
                                       fqt_rounding rounding, uint64_t seed, uint64_t stream,
                                       const fqt_quant_vec *v, vec_scratch *w) {
    const int64_t cols = q->cols;
    int64_t nonfinite = 0;
    for (int64_t r = r0; r < r1; r++) {
        const uint32_t *rr = rounding == FQT_ROUND_SR ? row_sr_bits(v, seed, stream, r, cols, w) : NULL;
        nonfinite += v->bf16(x + r * cols, cols, rr, (uint16_t *)(void *)(q->codes + r * q->row_bytes));
    }
    return nonfinite;
}

/* dst[c*R + r] = src[r*C + c], in cache tiles (vector tiles when the CPU has them). */
static void transpose(const float *src, float *dst, int64_t R, int64_t C) {
    /* Tiles of TR source rows by TC columns: a tile writes TC destination rows, R floats
     * apart; with R a power of two those rows share an L1 set, so TC stays at 8 (within the
     * ways) and the tile is long the other way. */
    const int64_t TR = 128, TC = 8;
    const fqt_quant_vec *v = quant_vec();
    int64_t tr = (R + TR - 1) / TR, tc = (C + TC - 1) / TC;
#pragma omp parallel for schedule(guided)
    for (int64_t t = 0; t < tr * tc; t++) {
        int64_t r0 = (t / tc) * TR, c0 = (t % tc) * TC;
        int64_t r1 = r0 + TR < R ? r0 + TR : R, c1 = c0 + TC < C ? c0 + TC : C;
        if (v) {
            v->transpose_tile(src + r0 * C + c0, C, dst + c0 * R + r0, R, r1 - r0, c1 - c0);
            continue;
        }
        for (int64_t c = c0; c < c1; c++)
            for (int64_t r = r0; r < r1; r++) dst[c * R + r] = src[r * C + c];
    }
}

/* Quantize one group of block rows [r0, r1) of the K-contiguous array x. */
/* x may be the source times pre (§5.3, tiny tensors); the statistics see x / pre (exact) and
 * the stored tensor scale. */
static int64_t quantize_group(fqt_qtensor *q, const float *x, int64_t r0, int64_t r1,
                              fqt_rounding rounding, sr_cache *rc, float s_enc, float s_dec,
                              float pre, fqt_qstats *st) {
    const fqt_format *f = &q->fmt;
    const int bits = fqt_elem_bits(f->elem), sbytes = scale_bytes(f->scale);
    const float emax = fqt_elem_max(f->elem);
    const int64_t cols = q->cols;
    int64_t nonfinite = 0;

    if (f->scale == FQT_SCALE_NONE && !st && (f->elem == FQT_ELEM_BF16 || f->elem == FQT_ELEM_FP32)) {
        /* Fast paths for the high-precision formats (same bits as the loop below). */
        for (int64_t r = r0; r < r1; r++) {
            const float *xr = x + r * cols;
            uint8_t *row = q->codes + r * q->row_bytes;
            if (f->elem == FQT_ELEM_FP32) {
                memcpy(row, xr, (size_t)cols * sizeof(float));
            } else if (rounding == FQT_ROUND_RNE) {
                for (int64_t c = 0; c < cols; c++) {
                    uint16_t v = fqt_bf16_rne_i(xr[c]);
                    memcpy(row + 2 * c, &v, 2);
                }
            } else {
                for (int64_t c = 0; c < cols; c++) {
                    uint16_t v = fqt_bf16_sr_i(xr[c], sr_next(rc, (uint64_t)(r * cols + c)));
                    memcpy(row + 2 * c, &v, 2);
                }
            }
            for (int64_t c = 0; c < cols; c++) nonfinite += !isfinite(xr[c]);
        }
        return nonfinite;
    }
    if (f->scale == FQT_SCALE_NONE) {
        for (int64_t r = r0; r < r1; r++) {
            uint8_t *row = q->codes + r * q->row_bytes;
            for (int64_t c = 0; c < cols; c++) {
                float v = x[r * cols + c];
                uint32_t rnd = rounding == FQT_ROUND_SR ? sr_next(rc, (uint64_t)(r * cols + c)) : 0;
                uint32_t code = fqt_elem_encode_i(f->elem, v, rounding, rnd);
                put_code(row, bits, c, code);
                if (!isfinite(v)) { nonfinite++; continue; }
                if (st) stats_element(st, v, fqt_elem_decode_i(f->elem, code), v, emax, bits, code);
            }
        }
        if (st) st->n += (r1 - r0) * cols;
        return nonfinite;
    }

    const int64_t g = r0 / f->block_rows;
    for (int64_t j = 0; j < q->scale_cols; j++) {
        int64_t c0 = j * f->block, c1 = c0 + f->block < cols ? c0 + f->block : cols;
        float amax = 0.0f;
        int64_t bad = 0;
        for (int64_t r = r0; r < r1; r++)
            for (int64_t c = c0; c < c1; c++) {
                float a = fabsf(x[r * cols + c]);
                if (!(a <= FLT_MAX)) bad++;
                else if (a > amax) amax = a;
            }
        uint8_t *sp = q->scales + (g * q->scale_cols + j) * sbytes;
        if (st) { st->n += (r1 - r0) * (c1 - c0); st->n_blocks++; }
        if (bad) {
            /* §5.1: the block decodes to NaN; nothing non-finite becomes finite. */
            if (f->scale == FQT_SCALE_FP32) { float nan = NAN; memcpy(sp, &nan, 4); }
            else *sp = f->scale == FQT_SCALE_E8M0 ? 0xFF : 0x7F;
            for (int64_t r = r0; r < r1; r++)
                for (int64_t c = c0; c < c1; c++) put_code(q->codes + r * q->row_bytes, bits, c, 0);
            nonfinite += bad;
            if (st) st->n_nonfinite += bad;
            continue;
        }
        fqt_block_map m = block_scale(f, amax, s_enc, s_dec, sp);
        if (st) stats_scale(st, m.zero ? 0.0f : m.deq * q->tensor_scale);
        if (!st && f->elem == FQT_ELEM_E2M1 && m.div == 0.0f && !(c0 & 1) && !((c1 - c0) & 1)) {
            /* Fast path for FP4: two codes per byte, no per-element dispatch. Same bits as
             * the generic loop below (tests/test_quant_fast.c compares them). */
            for (int64_t r = r0; r < r1; r++) {
                const float *xr = x + r * cols;
                uint8_t *row = q->codes + r * q->row_bytes;
                if (rounding == FQT_ROUND_RNE) {
                    for (int64_t c = c0; c < c1; c += 2)
                        row[c >> 1] = (uint8_t)(fqt_e2m1_rne_i(xr[c] * m.mul) |
                                                (fqt_e2m1_rne_i(xr[c + 1] * m.mul) << 4));
                } else {
                    const uint64_t base = (uint64_t)(r * cols);
                    for (int64_t c = c0; c < c1; c += 2) {
                        uint32_t r0b = sr_next(rc, base + (uint64_t)c);
                        uint32_t r1b = sr_next(rc, base + (uint64_t)c + 1);
                        row[c >> 1] = (uint8_t)(fqt_e2m1_sr_i(xr[c] * m.mul, r0b) |
                                                (fqt_e2m1_sr_i(xr[c + 1] * m.mul, r1b) << 4));
                    }
                }
            }
            continue;
        }
        for (int64_t r = r0; r < r1; r++) {
            uint8_t *row = q->codes + r * q->row_bytes;
            for (int64_t c = c0; c < c1; c++) {
                float v = x[r * cols + c];
                float scaled = m.div != 0.0f ? v / m.div : v * m.mul;
                uint32_t rnd = rounding == FQT_ROUND_SR ? sr_next(rc, (uint64_t)(r * cols + c)) : 0;
                uint32_t code = fqt_elem_encode_i(f->elem, scaled, rounding, rnd);
                put_code(row, bits, c, code);
                if (st) {
                    float deq = fqt_elem_decode_i(f->elem, code) * m.deq;
                    if (f->tensor_scale) deq *= q->tensor_scale;
                    stats_element(st, pre == 1.0f ? v : v / pre, deq, scaled, emax, bits, code);
                }
            }
        }
    }
    return nonfinite;
}

fqt_status fqt_quantize(fqt_qtensor *q, const float *src, int64_t src_rows, int64_t src_cols,
                        fqt_axis axis, fqt_rounding rounding, uint64_t seed, uint64_t stream,
                        fqt_qstats *stats) {
    int64_t rows = axis == FQT_AXIS_ROWS ? src_rows : src_cols;
    int64_t cols = axis == FQT_AXIS_ROWS ? src_cols : src_rows;
    if (q->rows != rows || q->cols != cols || !q->codes) {
        fqt_set_error("fqt_quantize: tensor is [%lld, %lld], source along this axis needs "
                      "[%lld, %lld]", (long long)q->rows, (long long)q->cols, (long long)rows,
                      (long long)cols);
        return FQT_ERR_ARG;
    }
    /* Per-step path: the transposed copy and the group statistics live in reusable scratch
     * (fqt_scratch), not in a fresh allocation per call. */
    const float *x = src;
    float *tmp = NULL;
    if (axis == FQT_AXIS_COLS && rows > 1 && cols > 1) {
        tmp = fqt_scratch(FQT_SCRATCH_QUANT_T, (size_t)(rows * cols) * sizeof(float));
        transpose(src, tmp, src_rows, src_cols);
        x = tmp;
    }

    fqt_tscale ts = {1.0f, 1.0f, 1.0f, 1.0f};
    if (q->fmt.tensor_scale) {
        /* max is exact in any order: chunks of 4096 in the vector table's amax, or scalar */
        float amax = 0.0f;
        const int64_t n = rows * cols, nchunk = (n + 4095) / 4096;
        const fqt_quant_vec *va = quant_vec();
#pragma omp parallel for reduction(max : amax) schedule(guided)
        for (int64_t ch = 0; ch < nchunk; ch++) {
            const int64_t i0 = ch * 4096, i1 = i0 + 4096 < n ? i0 + 4096 : n;
            float m = 0.0f;
            if (va) {
                int64_t bad;
                m = va->amax(x + i0, i1 - i0, &bad);
            } else {
                for (int64_t i = i0; i < i1; i++) {
                    float a = fabsf(x[i]);
                    if (a <= FLT_MAX && a > m) m = a;
                }
            }
            if (m > amax) amax = m;
        }
        ts = fqt_tscale_i(amax, fqt_elem_max(q->fmt.elem));
        if (ts.pre != 1.0f) {
            /* §5.3, amax_t < 2^-64: quantize x * 2^64 (exact), so no scale overflows */
            if (!tmp) tmp = fqt_scratch(FQT_SCRATCH_QUANT_T, (size_t)(rows * cols) * sizeof(float));
#pragma omp parallel for schedule(guided)
            for (int64_t i = 0; i < n; i++) tmp[i] = x[i] * ts.pre;
            x = tmp;
        }
    }
    const float s_enc = ts.s_enc, s_dec = ts.s_dec;
    q->tensor_scale = ts.s_dec_out;

    const int64_t br = q->fmt.scale == FQT_SCALE_NONE ? 1 : q->fmt.block_rows;
    const int64_t groups = (rows + br - 1) / br;
    fqt_qstats *gst = NULL;
    if (stats) {
        gst = fqt_scratch(FQT_SCRATCH_QUANT_STATS, (size_t)groups * sizeof *gst);
        memset(gst, 0, (size_t)groups * sizeof *gst);
    }
    int64_t nonfinite = 0;
    const fqt_format *f = &q->fmt;
    const fqt_quant_vec *v = !stats && f->elem == FQT_ELEM_E2M1 &&
                                     (f->scale == FQT_SCALE_E8M0 || f->scale == FQT_SCALE_UE4M3)
                                 ? quant_vec()
                                 : NULL;
    const fqt_quant_vec *vb = !stats && f->elem == FQT_ELEM_BF16 && f->scale == FQT_SCALE_NONE ? quant_vec() : NULL;
    const fqt_quant_vec *ve = !stats && f->elem == FQT_ELEM_E4M3 &&
                                      (f->scale == FQT_SCALE_FP32 || f->scale == FQT_SCALE_E8M0)
                                  ? quant_vec()
                                  : NULL;
#pragma omp parallel reduction(+ : nonfinite)
    {
        sr_cache rc = {seed, stream, UINT64_MAX, {0, 0, 0, 0}};
        vec_scratch w = {NULL, NULL, NULL, NULL, NULL, NULL};
        if (v || vb || ve) {
            /* One per-thread scratch buffer: the random words, the block multipliers, the
             * block amaxes, then the block flags and scale codes. */
            const size_t nr = (size_t)(cols + 8) * sizeof(uint32_t), nm = (size_t)q->scale_cols * sizeof(float) + 4;
            const size_t nb = (size_t)q->scale_cols + 1;
            char *b = fqt_scratch(FQT_SCRATCH_QUANT_VEC, nr + 3 * nm + 2 * nb);
            w.rnd = (uint32_t *)(void *)b;
            w.mul = (float *)(void *)(b + nr);
            w.amax = (float *)(void *)(b + nr + nm);
            w.div = (float *)(void *)(b + nr + 2 * nm);
            w.ok = (void *)(b + nr + 3 * nm);
            w.code = w.ok + nb;
        }
#pragma omp for schedule(guided)
        for (int64_t g = 0; g < groups; g++) {
            int64_t r0 = g * br, r1 = r0 + br < rows ? r0 + br : rows;
            /* The vector paths gather no statistics, so the pre factor (§5.3) only matters
             * to the scalar path's statistics; both see the same (pre-scaled) x. */
            if (vb)
                nonfinite += quantize_group_bf16_vec(q, x, r0, r1, rounding, seed, stream, vb, &w);
            else if (ve)
                nonfinite += quantize_group_e4m3_vec(q, x, r0, r1, rounding, seed, stream, ve, &w);
            else if (v)
                nonfinite += quantize_group_vec(q, x, r0, r1, rounding, seed, stream, s_enc,
                                                s_dec, v, &w);
            else
                nonfinite += quantize_group(q, x, r0, r1, rounding, &rc, s_enc, s_dec, ts.pre,
                                            gst ? &gst[g] : NULL);
        }
    }
    /* The padding nibble of an odd-length 4-bit row is written 0 (§7), so that equal tensors
     * have equal bytes wherever their storage came from (reused workspaces, device memory). */
    if (fqt_elem_bits(q->fmt.elem) == 4 && (cols & 1))
        for (int64_t r = 0; r < rows; r++) q->codes[r * q->row_bytes + q->row_bytes - 1] &= 0x0F;
    if (stats) {
        for (int64_t g = 0; g < groups; g++) fqt_qstats_merge(stats, &gst[g]);
        if (q->fmt.scale == FQT_SCALE_NONE) stats->n_nonfinite += nonfinite;
    }
    q->n_nonfinite = nonfinite;
    if (nonfinite) {
        fqt_set_error("quantize: %lld non-finite input values", (long long)nonfinite);
        return FQT_ERR_NONFINITE;
    }
    return FQT_OK;
}

void fqt_dequantize(const fqt_qtensor *q, float *dst) {
    const fqt_format *f = &q->fmt;
    const int bits = fqt_elem_bits(f->elem);
    const int64_t rows = q->rows, cols = q->cols;
    const float s_dec = q->tensor_scale;
    /* 4- and 8-bit codes decode through a table of exact values; the arithmetic after it is
     * the §5.1 order, (v * block scale) * tensor scale. */
    float lut[256];
    if (bits <= 8)
        for (uint32_t c = 0; c < (1u << bits); c++) lut[c] = fqt_elem_decode_i(f->elem, c);
#pragma omp parallel for schedule(guided)
    for (int64_t r = 0; r < rows; r++) {
        const uint8_t *row = q->codes + r * q->row_bytes;
        float *out = dst + r * cols;
        if (f->scale == FQT_SCALE_NONE) {
            for (int64_t c = 0; c < cols; c++) out[c] = fqt_elem_decode_i(f->elem, get_code(row, bits, c));
            continue;
        }
        const int64_t srow = (r / f->block_rows) * q->scale_cols;
        for (int64_t j = 0; j < q->scale_cols; j++) {
            float s = scale_decode(q, srow + j);
            int64_t c0 = j * f->block, c1 = c0 + f->block < cols ? c0 + f->block : cols;
            if (bits == 4)
                for (int64_t c = c0; c < c1; c++) out[c] = lut[(row[c >> 1] >> ((c & 1) * 4)) & 0xF] * s;
            else
                for (int64_t c = c0; c < c1; c++) out[c] = lut[row[c]] * s;
            if (f->tensor_scale)
                for (int64_t c = c0; c < c1; c++) out[c] *= s_dec;
        }
    }
}

fqt_status fqt_qdq(const fqt_format *f, const float *src, float *dst, int64_t rows,
                   int64_t cols, fqt_axis axis, fqt_rounding rounding, uint64_t seed,
                   uint64_t stream, fqt_qstats *stats) {
    fqt_qtensor q;
    int64_t qr = axis == FQT_AXIS_ROWS ? rows : cols, qc = axis == FQT_AXIS_ROWS ? cols : rows;
    fqt_status st = fqt_qtensor_alloc(&q, f, qr, qc);
    if (st) return st;
    fqt_status qs = fqt_quantize(&q, src, rows, cols, axis, rounding, seed, stream, stats);
    if (qs && qs != FQT_ERR_NONFINITE) {
        fqt_qtensor_free(&q);
        return qs;
    }
    if (axis == FQT_AXIS_ROWS || rows <= 1 || cols <= 1) {
        fqt_dequantize(&q, dst);
    } else {
        float *tmp = fqt_xmalloc((size_t)(rows * cols) * sizeof(float));
        fqt_dequantize(&q, tmp);
        transpose(tmp, dst, qr, qc);
        free(tmp);
    }
    fqt_qtensor_free(&q);
    return qs;
}
