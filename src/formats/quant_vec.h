/* formats/quant_vec.h — the vector kernels of the block quantizer (internal to
 * src/formats/). One table per instruction set, filled in quant_x86.c; quant.c picks one
 * at run time and keeps its scalar code as the oracle every entry must match bit for bit
 * (tests/test_quant_fast.c). Not for: anything outside src/formats/. */
#ifndef FQT_FORMATS_QUANT_VEC_H
#define FQT_FORMATS_QUANT_VEC_H

#include "fqt/formats.h"

typedef struct {
    /* max |x[i]| over the finite x[i] of x[0..n), 0 if none; *bad = how many are NaN/Inf. */
    float (*amax)(const float *x, int64_t n, int64_t *bad);
    /* out[i/2] nibbles = fqt_e2m1_rne_i(x[i] * mul) for i in [0, n), n even. */
    void (*e2m1_rne)(const float *x, int64_t n, float mul, uint8_t *out);
    /* The same with fqt_e2m1_sr_i(x[i] * mul, rnd[i]). */
    void (*e2m1_sr)(const float *x, int64_t n, float mul, const uint32_t *rnd, uint8_t *out);
    /* out[4b + w] = word w of Philox block first4 + b (fqt_sr_block4), b in [0, nblk). */
    void (*philox)(uint64_t seed, uint64_t stream, uint64_t first4, int64_t nblk, uint32_t *out);
    /* dst[c * ldd + r] = src[r * lds + c] for r < nr, c < nc (one tile of a transpose). */
    void (*transpose_tile)(const float *src, int64_t lds, float *dst, int64_t ldd, int64_t nr,
                           int64_t nc);
    /* UE4M3 block scales (§5.3) of n blocks from their amax (finite, >= 0): code[j] and
     * mul[j] as fqt_block_scale_i's scale code and m.mul. */
    void (*ue4m3_scales)(const float *amax, int64_t n, float emax_val, float s_enc, float s_dec,
                         uint8_t *code, float *mul);
    /* out[i] = fqt_bf16_rne_i(x[i]), or fqt_bf16_sr_i(x[i], rnd[i]) when rnd is not NULL, for
     * i in [0, n); returns how many x[i] are NaN or Inf. */
    int64_t (*bf16)(const float *x, int64_t n, const uint32_t *rnd, uint16_t *out);
    /* amax (as the amax entry) of each block [j*blk, min((j+1)*blk, n)) of x, bad[j] = 1 where
     * the block holds NaN/Inf; returns the total number of NaN/Inf. */
    int64_t (*block_amax)(const float *x, int64_t n, int64_t blk, float *amax, uint8_t *bad);
    /* out[i] = fqt_e4m3_rne_i(v) (rnd NULL) or fqt_e4m3_sr_i(v, rnd[i]), v = x[i] / div when
     * div != 0, else x[i] * mul, for i in [0, n). */
    void (*e4m3)(const float *x, int64_t n, float mul, float div, const uint32_t *rnd, uint8_t *out);
} fqt_quant_vec;

/* NULL where the build has no x86 vector code. */
extern const fqt_quant_vec *const fqt_quant_vec_avx2;
extern const fqt_quant_vec *const fqt_quant_vec_avx512;

#endif
