/* tests/test_quant_fast.c — the quantizer's E2M1 fast path (taken when no statistics are
 * requested) against its generic path (taken with statistics): identical codes, scales and
 * tensor scale, for every E2M1 format and the bf16/fp32 paths, both roundings and both axes, on data with ties,
 * saturation, zeros and subnormals. */
#include "check.h"
#include "fqt/formats.h"

#include <math.h>
#include <stdlib.h>

int main(void) {
    const int64_t R = 67, C = 98; /* rows start at indices that are not multiples of 4 */
    float *x = malloc(sizeof(float) * R * C);
    uint64_t s = 12345;
    for (int64_t i = 0; i < R * C; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        double u = (double)(s >> 11) * 0x1p-53;
        switch (i % 7) {
        case 0: x[i] = (float)((u - 0.5) * 8.0); break;
        case 1: x[i] = (float)(0.25 * (double)((s >> 20) % 25)); break; /* E2M1 midpoints */
        case 2: x[i] = 0.0f; break;
        case 3: x[i] = (float)((u - 0.5) * 1e-39); break;               /* subnormal */
        case 4: x[i] = (float)((u - 0.5) * 1e4); break;                 /* outliers */
        default: x[i] = (float)(u - 0.5);
        }
    }
    const char *fmts[] = {"nvfp4", "mxfp4", "nvfp4-2d", "e2m1:b32:e8m0:ceil", "e2m1:b16:ue4m3",
                          "bf16", "fp32"};
    for (int f = 0; f < 7; f++)
        for (int rnd = 0; rnd < 2; rnd++)
            for (int ax = 0; ax < 2; ax++) {
                fqt_format fm;
                CHECK(fqt_format_parse(fmts[f], &fm) == FQT_OK);
                int64_t qr = ax ? C : R, qc = ax ? R : C;
                fqt_qtensor a, b;
                CHECK(fqt_qtensor_alloc(&a, &fm, qr, qc) == FQT_OK);
                CHECK(fqt_qtensor_alloc(&b, &fm, qr, qc) == FQT_OK);
                fqt_qstats st;
                memset(&st, 0, sizeof st);
                fqt_quantize(&a, x, R, C, (fqt_axis)ax, (fqt_rounding)rnd, 7, 99, NULL);
                fqt_quantize(&b, x, R, C, (fqt_axis)ax, (fqt_rounding)rnd, 7, 99, &st);
                CHECK_MSG(memcmp(a.codes, b.codes, (size_t)(qr * a.row_bytes)) == 0,
                          "%s rounding %d axis %d: codes differ", fmts[f], rnd, ax);
                CHECK_MSG(!a.scales || memcmp(a.scales, b.scales, (size_t)(a.scale_rows * a.scale_cols)) == 0,
                          "%s rounding %d axis %d: scales differ", fmts[f], rnd, ax);
                CHECK_BITS(a.tensor_scale, b.tensor_scale);
                CHECK(st.n == R * C);
                fqt_qtensor_free(&a);
                fqt_qtensor_free(&b);
            }
    free(x);
    return check_finish();
}
