/* formats/format.c — block-scaled format descriptors: parsing the short and generic names
 * of docs/FORMATS.md §5.7, canonical names, equality. */
#include "fqt/formats.h"

#include <string.h>

typedef struct {
    const char *name;
    fqt_format f;
} preset;

static const preset presets[] = {
    {"nvfp4", {FQT_ELEM_E2M1, FQT_SCALE_UE4M3, 16, 1, true, false}},
    {"nvfp4-2d", {FQT_ELEM_E2M1, FQT_SCALE_UE4M3, 16, 16, true, false}},
    {"mxfp4", {FQT_ELEM_E2M1, FQT_SCALE_E8M0, 32, 1, false, false}},
    {"mxfp8", {FQT_ELEM_E4M3, FQT_SCALE_E8M0, 32, 1, false, false}},
    {"fp8", {FQT_ELEM_E4M3, FQT_SCALE_FP32, 128, 1, false, false}},
    {"fp8-w", {FQT_ELEM_E4M3, FQT_SCALE_FP32, 128, 128, false, false}},
    {"int4", {FQT_ELEM_INT4, FQT_SCALE_FP32, 32, 1, false, false}},
    {"nf4", {FQT_ELEM_NF4, FQT_SCALE_FP32, 64, 1, false, false}},
    {"bf16", {FQT_ELEM_BF16, FQT_SCALE_NONE, 0, 1, false, false}},
    {"fp16", {FQT_ELEM_FP16, FQT_SCALE_NONE, 0, 1, false, false}},
    {"fp32", {FQT_ELEM_FP32, FQT_SCALE_NONE, 0, 1, false, false}},
};
#define N_PRESETS (sizeof presets / sizeof presets[0])

const char *const fqt_format_presets[] = {"nvfp4", "nvfp4-2d", "mxfp4", "mxfp8", "fp8", "fp8-w",
                                          "int4", "nf4", "bf16", "fp16", "fp32", NULL};

bool fqt_format_equal(const fqt_format *a, const fqt_format *b) {
    return a->elem == b->elem && a->scale == b->scale && a->block == b->block &&
           a->block_rows == b->block_rows && a->tensor_scale == b->tensor_scale &&
           a->scale_ceil == b->scale_ceil;
}

bool fqt_format_is_identity(const fqt_format *f) {
    return f->elem == FQT_ELEM_FP32 && f->scale == FQT_SCALE_NONE;
}

static fqt_status bad_name(const char *s, const char *why) {
    fqt_set_error("unknown format '%s'%s%s; valid: nvfp4, nvfp4-2d, mxfp4, mxfp8, fp8, fp8-w, "
                  "int4, nf4, bf16, fp16, fp32, or ELEM:bN[xM]:SCALE[:tensor][:ceil] with ELEM "
                  "in e2m1 e4m3 e5m2 int4 nf4 and SCALE in e8m0 ue4m3 fp32 "
                  "(e.g. e2m1:b16:ue4m3:tensor)",
                  s, why[0] ? ": " : "", why);
    return FQT_ERR_ARG;
}

fqt_status fqt_format_parse(const char *s, fqt_format *out) {
    if (!s) return bad_name("(null)", "");
    for (size_t i = 0; i < N_PRESETS; i++)
        if (!strcmp(s, presets[i].name)) {
            *out = presets[i].f;
            return FQT_OK;
        }
    /* Generic form ELEM:bN[xM]:SCALE[:tensor][:ceil] */
    char buf[96];
    if (strlen(s) >= sizeof buf) return bad_name(s, "too long");
    strcpy(buf, s);
    char *save = NULL, *tok[6];
    int n = 0;
    for (char *t = strtok_r(buf, ":", &save); t && n < 6; t = strtok_r(NULL, ":", &save))
        tok[n++] = t;
    if (n < 3 || n > 5) return bad_name(s, "");
    fqt_format f = {0};
    static const struct { const char *name; fqt_elem e; } elems[] = {
        {"e2m1", FQT_ELEM_E2M1}, {"e4m3", FQT_ELEM_E4M3}, {"e5m2", FQT_ELEM_E5M2},
        {"int4", FQT_ELEM_INT4}, {"nf4", FQT_ELEM_NF4}};
    int found = 0;
    for (size_t i = 0; i < sizeof elems / sizeof elems[0]; i++)
        if (!strcmp(tok[0], elems[i].name)) { f.elem = elems[i].e; found = 1; }
    if (!found) return bad_name(s, "unknown element type");
    if (tok[1][0] != 'b') return bad_name(s, "block must be bN or bNxM");
    char *end;
    long a = strtol(tok[1] + 1, &end, 10), b = 0;
    if (*end == 'x') b = strtol(end + 1, &end, 10);
    if (*end || a <= 0 || a > 4096 || b < 0 || b > 4096 || (b == 0 && tok[1][strlen(tok[1]) - 1] == 'x'))
        return bad_name(s, "block must be bN or bNxM with 1 <= N, M <= 4096");
    if (b) { f.block_rows = (int32_t)a; f.block = (int32_t)b; }
    else { f.block_rows = 1; f.block = (int32_t)a; }
    if (!strcmp(tok[2], "e8m0")) f.scale = FQT_SCALE_E8M0;
    else if (!strcmp(tok[2], "ue4m3")) f.scale = FQT_SCALE_UE4M3;
    else if (!strcmp(tok[2], "fp32")) f.scale = FQT_SCALE_FP32;
    else return bad_name(s, "unknown scale type");
    for (int i = 3; i < n; i++) {
        if (!strcmp(tok[i], "tensor") && f.scale == FQT_SCALE_UE4M3 && !f.tensor_scale)
            f.tensor_scale = true;
        else if (!strcmp(tok[i], "ceil") && f.scale == FQT_SCALE_E8M0 && !f.scale_ceil)
            f.scale_ceil = true;
        else
            return bad_name(s, ":tensor goes only with ue4m3, :ceil only with e8m0");
    }
    *out = f;
    return FQT_OK;
}

const char *fqt_format_name(const fqt_format *f, char *buf, size_t n) {
    for (size_t i = 0; i < N_PRESETS; i++)
        if (fqt_format_equal(f, &presets[i].f)) {
            snprintf(buf, n, "%s", presets[i].name);
            return buf;
        }
    char blk[32];
    if (f->block_rows > 1) snprintf(blk, sizeof blk, "b%dx%d", f->block_rows, f->block);
    else snprintf(blk, sizeof blk, "b%d", f->block);
    snprintf(buf, n, "%s:%s:%s%s%s", fqt_elem_name(f->elem), blk, fqt_scale_name(f->scale),
             f->tensor_scale ? ":tensor" : "", f->scale_ceil ? ":ceil" : "");
    return buf;
}
