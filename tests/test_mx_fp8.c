/* tests/test_mx_fp8.c — the 1x128 E4M3 expansion of MXFP4 tensors (FORMATS.md §9), the host
 * side of running MXFP4 on FP8 tensor cores.
 *
 * Oracle: fqt_dequantize. Wherever a block is at most 14 binades below the largest block of
 * its 128-column group, E4M3 value x group scale must equal the dequantized MXFP4 value bit
 * for bit (signed zeros included); blocks further below are counted, and the count is checked
 * on tensors built so that exactly known blocks break the rule. Not for: the FP8 GEMM itself
 * (a GPU kernel). */
#include "check.h"
#include "fqt/formats.h"

#include <math.h>
#include <stdlib.h>

static uint64_t lcg = 99;
static double urand(void) {
    lcg = lcg * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(lcg >> 11) * 0x1p-53;
}

/* Expand q and compare with fqt_dequantize; returns the inexact count. Checks exactness for
 * every block that keeps the 14-binade rule and that the count is at most the number of
 * blocks that break it. */
static int64_t check_expand(const fqt_qtensor *q, const char *what) {
    const int64_t R = q->rows, C = q->cols, ng = (C + 127) / 128, bpg = 128 / q->fmt.block;
    uint8_t *e = malloc((size_t)(R * C) + 1);
    float *gs = malloc(sizeof(float) * (size_t)(R * ng) + 4), *deq = malloc(sizeof(float) * (size_t)(R * C) + 4);
    int64_t inexact = -1;
    CHECK(fqt_mx_e4m3_expand(q, e, gs, &inexact) == FQT_OK);
    fqt_dequantize(q, deq);
    int64_t breaking = 0, bad = 0;
    for (int64_t r = 0; r < R; r++)
        for (int64_t g = 0; g < ng; g++) {
            const uint8_t *sc = q->scales + r * q->scale_cols;
            const int64_t b0 = g * bpg, b1 = b0 + bpg < q->scale_cols ? b0 + bpg : q->scale_cols;
            int emax = -127, nan = 0;
            for (int64_t b = b0; b < b1; b++) {
                if (sc[b] == 0xFF) nan = 1;
                else if (sc[b] - 127 > emax) emax = sc[b] - 127;
            }
            if (nan) { bad += !isnan(gs[r * ng + g]); continue; }
            for (int64_t b = b0; b < b1; b++) {
                if (sc[b] - 127 < emax - 14) { breaking++; continue; }
                for (int64_t c = b * q->fmt.block; c < (b + 1) * q->fmt.block && c < C; c++) {
                    const float got = fqt_e4m3_decode(e[r * C + c]) * gs[r * ng + g];
                    if (check_bits_(got) != check_bits_(deq[r * C + c])) {
                        if (bad++ < 3)
                            printf("  %s [%lld,%lld]: %a x %a = %a, dequantized %a\n", what, (long long)r,
                                   (long long)c, fqt_e4m3_decode(e[r * C + c]), gs[r * ng + g], got, deq[r * C + c]);
                    }
                }
            }
        }
    CHECK_MSG(bad == 0, "%s: %lld elements differ from fqt_dequantize", what, (long long)bad);
    CHECK_MSG(inexact >= 0 && inexact <= breaking, "%s: %lld inexact blocks, %lld break the rule", what,
              (long long)inexact, (long long)breaking);
    free(e); free(gs); free(deq);
    return inexact;
}

static fqt_qtensor quantized(const char *fmt, const float *x, int64_t R, int64_t C, int sr) {
    fqt_format f;
    FQT_ASSERT(fqt_format_parse(fmt, &f) == FQT_OK);
    fqt_qtensor q;
    FQT_ASSERT(fqt_qtensor_alloc(&q, &f, R, C) == FQT_OK);
    fqt_quantize(&q, x, R, C, FQT_AXIS_ROWS, sr ? FQT_ROUND_SR : FQT_ROUND_RNE, 5, 6, NULL);
    return q;
}

int main(void) {
    /* Random tensors, each block scaled by 2^k, k in [-6, 6]: spans of up to 12 binades plus
     * the blocks' own spread, every block size, partial blocks and groups, both roundings. */
    const int64_t shapes[][2] = {{1, 1}, {3, 32}, {5, 128}, {7, 200}, {4, 257}, {16, 512}, {2, 37}};
    const char *fmts[] = {"mxfp4", "e2m1:b16:e8m0", "e2m1:b64:e8m0", "e2m1:b128:e8m0", "e2m1:b32:e8m0:ceil"};
    for (int fi = 0; fi < 5; fi++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
            const int64_t R = shapes[s][0], C = shapes[s][1];
            float *x = malloc(sizeof(float) * (size_t)(R * C));
            for (int64_t i = 0; i < R * C; i++) {
                if ((i % C) % 32 == 0) lcg += (uint64_t)i; /* new block, new scale draw */
                const int k = (int)(((lcg >> 40) % 13)) - 6;
                x[i] = (float)(urand() - 0.5) * ldexpf(1.0f, k);
                if (i % 11 == 3) x[i] = -0.0f;
            }
            for (int sr = 0; sr < 2; sr++) {
                fqt_qtensor q = quantized(fmts[fi], x, R, C, sr);
                char what[96];
                snprintf(what, sizeof what, "%s %lldx%lld sr %d", fmts[fi], (long long)R, (long long)C, sr);
                CHECK_MSG(check_expand(&q, what) == 0, "%s: inexact blocks in data within the rule", what);
                fqt_qtensor_free(&q);
            }
            free(x);
        }

    /* Known rule breakers: one row of 256 (two groups of four 32-blocks). Group 0: block 1 is
     * 2^-14 of block 0 (exact: 14 binades), block 2 is 2^-20 (breaks the rule, and its small
     * codes do not survive); group 1: all equal. Then a zero block and a NaN block. */
    {
        float x[256];
        for (int i = 0; i < 256; i++) x[i] = (float)(1 + i % 6) * 0.5f;
        for (int i = 32; i < 64; i++) x[i] *= 0x1p-14f;
        for (int i = 64; i < 96; i++) x[i] *= 0x1p-20f;
        fqt_qtensor q = quantized("mxfp4", x, 1, 256, 0);
        CHECK_MSG(check_expand(&q, "rule breakers") == 1, "exactly one inexact block expected");
        fqt_qtensor_free(&q);
        for (int i = 96; i < 128; i++) x[i] = 0.0f; /* a zero block (scale 2^-127) is exact */
        for (int i = 64; i < 96; i++) x[i] = (float)(1 + i % 6) * 0.5f;
        q = quantized("mxfp4", x, 1, 256, 0);
        CHECK_MSG(check_expand(&q, "zero block") == 0, "a zero block is exact");
        fqt_qtensor_free(&q);
        x[140] = NAN;
        q = quantized("mxfp4", x, 1, 256, 0);
        uint8_t e[256];
        float gs[2];
        int64_t n = -1;
        CHECK(fqt_mx_e4m3_expand(&q, e, gs, &n) == FQT_OK);
        CHECK_MSG(!isnan(gs[0]) && isnan(gs[1]), "NaN block: group scales %g %g", gs[0], gs[1]);
        fqt_qtensor_free(&q);
    }

    /* Other formats are refused. */
    const char *no[] = {"nvfp4", "e2m1:b16:ue4m3", "mxfp8", "nvfp4-2d", "e2m1:b24:e8m0"};
    for (int i = 0; i < 5; i++) {
        float x[48] = {1.0f};
        fqt_qtensor q = quantized(no[i], x, 1, 48, 0);
        uint8_t e[48];
        float gs[1];
        CHECK_MSG(fqt_mx_e4m3_expand(&q, e, gs, NULL) == FQT_ERR_ARG, "%s must be refused", no[i]);
        fqt_qtensor_free(&q);
    }
    return check_finish();
}
