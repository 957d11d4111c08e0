/* formats/mx_fp8.c — MXFP4 on FP8 tensor cores: the 1x128 E4M3 expansion (FORMATS.md §9).
 *
 * An E2M1 value v (0.5 .. 6 in magnitude) times 2^d is exact in E4M3 for -8 <= d <= 6
 * (0.5 * 2^-8 is E4M3's smallest subnormal, 6 * 2^6 = 384 <= 448). Per row and 128-column
 * group, with e_max the largest block exponent of the group, each element becomes
 * E4M3(v * 2^(e_b - e_max + 6)) and the group scale 2^(e_max - 6), so that
 * E4M3 value * group scale = v * 2^e_b exactly whenever e_b >= e_max - 14. That is the
 * contract of a 1x128-scaled FP8 GEMM (one FP32 scale per 128 elements of K), which Hopper
 * runs on its FP8 tensor cores. Oracle: fqt_dequantize (tests/test_mx_fp8.c). */
#include "fqt/formats.h"

#include "formats/codec.h"

#include <math.h>

fqt_status fqt_mx_e4m3_expand(const fqt_qtensor *q, uint8_t *e4m3, float *gscale, int64_t *n_inexact) {
    const fqt_format *f = &q->fmt;
    if (f->elem != FQT_ELEM_E2M1 || f->scale != FQT_SCALE_E8M0 || f->tensor_scale || f->block_rows != 1 ||
        128 % f->block != 0) {
        fqt_set_error("fqt_mx_e4m3_expand: needs E2M1 elements with E8M0 1-D blocks of 16, 32, 64 or "
                      "128 and no tensor scale");
        return FQT_ERR_ARG;
    }
    const int64_t rows = q->rows, cols = q->cols, ngroups = (cols + 127) / 128, bpg = 128 / f->block;
    int64_t inexact = 0;
    for (int64_t r = 0; r < rows; r++) {
        const uint8_t *codes = q->codes + r * q->row_bytes, *sc = q->scales + r * q->scale_cols;
        for (int64_t g = 0; g < ngroups; g++) {
            const int64_t b0 = g * bpg, b1 = b0 + bpg < q->scale_cols ? b0 + bpg : q->scale_cols;
            int emax = -127, nan = 0;
            for (int64_t b = b0; b < b1; b++) {
                if (sc[b] == 0xFF) nan = 1;
                else if ((int)sc[b] - 127 > emax) emax = (int)sc[b] - 127;
            }
            gscale[r * ngroups + g] = nan ? NAN : ldexpf(1.0f, emax - 6); /* >= 2^-133: exact */
            for (int64_t b = b0; b < b1; b++) {
                const int64_t c0 = b * f->block, c1 = c0 + f->block < cols ? c0 + f->block : cols;
                const int d = sc[b] == 0xFF ? 0 : (int)sc[b] - 127 - emax + 6;
                const float m = ldexpf(1.0f, d); /* 2^d (d <= 6), exact, or 0 far below */
                int exact = 1;
                for (int64_t c = c0; c < c1; c++) {
                    const uint8_t code = (uint8_t)((codes[c >> 1] >> ((c & 1) * 4)) & 0xF);
                    const float v = fqt_e2m1_dec_i(code) * m;
                    const uint8_t e = fqt_e4m3_rne_i(v);
                    e4m3[r * cols + c] = e;
                    exact &= fqt_e4m3_dec_i(e) == v; /* d >= -8 always holds this */
                }
                inexact += !exact;
            }
        }
    }
    if (n_inexact) *n_inexact = inexact;
    return FQT_OK;
}
