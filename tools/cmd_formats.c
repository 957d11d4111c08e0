/* tools/cmd_formats.c — `fqt formats`: every preset format with its value grid and scale
 * rule, printed from the format core itself (so the listing cannot drift from the code). */
#include "cli.h"
#include "fqt/formats.h"

#include <math.h>
#include <string.h>

static void print_grid(fqt_elem e) {
    int bits = fqt_elem_bits(e);
    if (bits == 4) {
        printf("    codes:");
        for (uint32_t c = 0; c < 16; c++) {
            if (c == 8) printf("\n          ");
            printf(" %x:%g", c, (double)fqt_elem_decode(e, c));
        }
        printf("\n");
    } else if (bits == 8) {
        float min_sub = INFINITY, min_norm = 0;
        int finite = 0;
        for (uint32_t c = 0; c < 128; c++) {
            float v = fqt_elem_decode(e, c);
            if (!isfinite(v)) continue;
            finite++;
            if (v > 0 && v < min_sub) min_sub = v;
        }
        min_norm = e == FQT_ELEM_E4M3 ? 0x1p-6f : 0x1p-14f;
        printf("    %d finite non-negative values; smallest subnormal %g, smallest normal %g, "
               "largest %g%s\n", finite, (double)min_sub, (double)min_norm,
               (double)fqt_elem_max(e), e == FQT_ELEM_E4M3 ? ", no Inf, NaN 0x7f/0xff" : ", Inf 0x7c, NaN 0x7d-0x7f");
    } else if (e == FQT_ELEM_FP32) {
        printf("    identity: no rounding\n");
    } else {
        printf("    IEEE-style %d-bit float, largest %g, round to nearest even\n", bits,
               (double)fqt_elem_max(e));
    }
}

static const char *scale_rule(const fqt_format *f) {
    switch (f->scale) {
    case FQT_SCALE_E8M0:
        return f->scale_ceil ? "X = 2^ceil(log2(amax/max)) per block (no saturation)"
                             : "X = 2^(floor(log2 amax) - emax) per block, elements RNE, saturating (OCP MX)";
    case FQT_SCALE_UE4M3:
        return f->tensor_scale ? "s_enc = 6*448/amax_tensor; block scale UE4M3((amax_b/6)*s_enc); "
                                 "x -> E2M1(x / (sb*s_dec)); deq = (q*sb)*s_dec"
                               : "block scale UE4M3(amax_b/max); x -> E(x/sb)";
    case FQT_SCALE_FP32: return "block scale = amax_b / max (FP32); x -> E(x / scale)";
    default: return "element-wise rounding, no scale";
    }
}

int fqt_cmd_formats(int argc, char **argv) {
    if (argc > 1) {
        if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
            printf("usage: fqt formats\n\nLists every preset format (docs/FORMATS.md §5.7).\n");
            return 0;
        }
        return cli_usage_error("formats", "takes no arguments (got '%s')", argv[1]);
    }
    printf("fqt number formats (docs/FORMATS.md is normative)\n\n");
    for (int i = 0; fqt_format_presets[i]; i++) {
        fqt_format f;
        FQT_ASSERT(fqt_format_parse(fqt_format_presets[i], &f) == FQT_OK);
        printf("%-9s element %s", fqt_format_presets[i], fqt_elem_name(f.elem));
        if (f.block) {
            if (f.block_rows > 1) printf(", %dx%d tiles", f.block_rows, f.block);
            else printf(", blocks of %d", f.block);
            printf(", %s scale%s", fqt_scale_name(f.scale), f.tensor_scale ? " + FP32 tensor scale" : "");
        }
        printf("\n    scale: %s\n", scale_rule(&f));
        print_grid(f.elem);
        if (f.block) {
            double bits = fqt_elem_bits(f.elem) +
                          (f.scale == FQT_SCALE_FP32 ? 32.0 : 8.0) / (f.block * f.block_rows);
            printf("    storage: %.3f bits per element\n", bits);
        }
        printf("\n");
    }
    printf("Generic form: ELEM:bN[xM]:SCALE[:tensor][:ceil], ELEM in e2m1 e4m3 e5m2 int4 nf4,\n"
           "SCALE in e8m0 ue4m3 fp32; e.g. e2m1:b16:ue4m3:tensor (= nvfp4), e2m1:b32:e8m0:ceil.\n"
           "Rounding: rtn (round to nearest, ties to even) or sr (stochastic, Philox4x32-10).\n");
    return 0;
}
