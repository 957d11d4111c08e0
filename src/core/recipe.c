/* core/recipe.c — the named training recipes and their override grammar (fqt/recipe.h). */
#include "fqt/recipe.h"

#include <stdlib.h>
#include <string.h>

const char *const fqt_operand_names[] = {"fprop.x", "fprop.w", "dgrad.dy",
                                         "dgrad.w", "wgrad.dy", "wgrad.x"};
FQT_STATIC_ASSERT(FQT_OP_COUNT == 6, "fqt_operand_names must cover fqt_operand");

const char *const fqt_recipe_names[] = {"fp32", "bf16", "nvfp4", "nvfp4-rtn", "mxfp4",
                                        "nvfp4-nvidia", "fp8", "int4", NULL};

static fqt_format fmt_of(const char *name) {
    fqt_format f;
    FQT_ASSERT(fqt_format_parse(name, &f) == FQT_OK);
    return f;
}

/* The paper's split (arXiv 2505.19115): RTN in the forward pass and for W in dgrad,
 * SR for the gradients dY and for X in wgrad. */
static void paper_split(fqt_linear_spec *s, const char *fmt, int sr) {
    fqt_format f = fmt_of(fmt);
    for (int i = 0; i < FQT_OP_COUNT; i++) {
        s->op[i].fmt = f;
        s->op[i].rounding = FQT_ROUND_RNE;
    }
    if (sr) {
        s->op[FQT_OP_DGRAD_DY].rounding = FQT_ROUND_SR;
        s->op[FQT_OP_WGRAD_DY].rounding = FQT_ROUND_SR;
        s->op[FQT_OP_WGRAD_X].rounding = FQT_ROUND_SR;
    }
}

static void uniform(fqt_linear_spec *s, const char *fmt) { paper_split(s, fmt, 0); }

static int builtin(const char *name, fqt_recipe *r) {
    memset(r, 0, sizeof *r);
    uniform(&r->hp, "bf16");
    if (!strcmp(name, "fp32")) {
        uniform(&r->quant, "fp32");
        uniform(&r->hp, "fp32");
    } else if (!strcmp(name, "bf16")) {
        uniform(&r->quant, "bf16");
    } else if (!strcmp(name, "nvfp4")) {
        paper_split(&r->quant, "nvfp4", 1);
    } else if (!strcmp(name, "nvfp4-rtn")) {
        paper_split(&r->quant, "nvfp4", 0);
    } else if (!strcmp(name, "mxfp4")) {
        paper_split(&r->quant, "mxfp4", 1);
    } else if (!strcmp(name, "int4")) {
        paper_split(&r->quant, "int4", 1);
    } else if (!strcmp(name, "nvfp4-nvidia")) {
        /* NVIDIA's NVFP4 pretraining recipe (arXiv 2509.25149): 2-D 16x16 weight scales so W
         * and Wᵀ quantize alike, RHT on the wgrad inputs, SR on gradients only, first and
         * last blocks in BF16. */
        paper_split(&r->quant, "nvfp4", 0);
        r->quant.op[FQT_OP_FPROP_W].fmt = fmt_of("nvfp4-2d");
        r->quant.op[FQT_OP_DGRAD_W].fmt = fmt_of("nvfp4-2d");
        r->quant.op[FQT_OP_DGRAD_DY].rounding = FQT_ROUND_SR;
        r->quant.op[FQT_OP_WGRAD_DY].rounding = FQT_ROUND_SR;
        r->quant.hadamard_wgrad = true;
        r->n_hp_layers = 2;
        r->hp_layers[0] = 0;
        r->hp_layers[1] = -1;
    } else if (!strcmp(name, "fp8")) {
        /* DeepSeek-V3: E4M3, 1x128 blocks for activations and gradients, 128x128 for W. */
        uniform(&r->quant, "fp8");
        r->quant.op[FQT_OP_FPROP_W].fmt = fmt_of("fp8-w");
        r->quant.op[FQT_OP_DGRAD_W].fmt = fmt_of("fp8-w");
    } else {
        return -1;
    }
    return 0;
}

static fqt_status bad(const char *s, const char *why_in) {
    /* why_in may be fqt_last_error() itself (a format parse error): copy it before
     * fqt_set_error overwrites that buffer. */
    char why[512];
    snprintf(why, sizeof why, "%s", why_in);
    char names[200] = "";
    for (int i = 0; fqt_recipe_names[i]; i++) {
        strcat(names, i ? ", " : "");
        strcat(names, fqt_recipe_names[i]);
    }
    fqt_set_error("recipe '%s': %s (recipes: %s; overrides: OPERAND=FORMAT[/rtn|/sr] with "
                  "OPERAND in fprop.x fprop.w dgrad.dy dgrad.w wgrad.dy wgrad.x x w dy all, "
                  "hp=first+last+i+a..b, lm_head=quant|hp, hadamard=0|1, hp_format=bf16|fp32)",
                  s, why, names);
    return FQT_ERR_ARG;
}

static int parse_int(const char *s, int *out) {
    char *end;
    long v = strtol(s, &end, 10);
    if (end == s || *end || v < -FQT_RECIPE_MAX_LAYERS || v >= FQT_RECIPE_MAX_LAYERS) return -1;
    *out = (int)v;
    return 0;
}

static fqt_status parse_hp(const char *all, char *v, fqt_recipe *r) {
    r->n_hp_layers = 0;
    char *save = NULL;
    for (char *t = strtok_r(v, "+", &save); t; t = strtok_r(NULL, "+", &save)) {
        int a, b;
        char *dots = strstr(t, "..");
        if (!strcmp(t, "first")) a = b = 0;
        else if (!strcmp(t, "last")) a = b = -1;
        else if (!strcmp(t, "none")) continue;
        else if (dots) {
            *dots = 0;
            if (parse_int(t, &a) || parse_int(dots + 2, &b) || a < 0 || b < a)
                return bad(all, "hp range must be a..b with 0 <= a <= b");
        } else if (parse_int(t, &a)) {
            return bad(all, "hp takes first, last, an index or a..b, joined by '+'");
        } else {
            b = a;
        }
        for (int i = a; i <= b; i++) {
            if (r->n_hp_layers >= FQT_RECIPE_MAX_LAYERS) return bad(all, "too many hp layers");
            r->hp_layers[r->n_hp_layers++] = i;
        }
    }
    return FQT_OK;
}

fqt_status fqt_recipe_parse(const char *s, fqt_recipe *out) {
    char buf[sizeof out->name];
    if (!s || strlen(s) >= sizeof buf) return bad(s ? s : "(null)", "missing or too long");
    strcpy(buf, s);
    size_t len = strlen(buf);
    if (!len || buf[0] == ',' || buf[len - 1] == ',' || strstr(buf, ",,"))
        return bad(s, "empty name or override");
    char *save = NULL;
    char *name = strtok_r(buf, ",", &save);
    fqt_recipe r;
    if (!name || builtin(name, &r)) return bad(s, "unknown recipe name");
    for (char *ov = strtok_r(NULL, ",", &save); ov; ov = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(ov, '=');
        if (!eq) return bad(s, "override must be KEY=VALUE");
        *eq = 0;
        char *key = ov, *val = eq + 1;
        if (!strcmp(key, "hp")) {
            fqt_status st = parse_hp(s, val, &r);
            if (st) return st;
        } else if (!strcmp(key, "lm_head")) {
            if (!strcmp(val, "quant")) r.lm_head_quantized = true;
            else if (!strcmp(val, "hp")) r.lm_head_quantized = false;
            else return bad(s, "lm_head must be quant or hp");
        } else if (!strcmp(key, "hadamard")) {
            if (strcmp(val, "0") && strcmp(val, "1")) return bad(s, "hadamard must be 0 or 1");
            r.quant.hadamard_wgrad = val[0] == '1';
        } else if (!strcmp(key, "hp_format")) {
            if (strcmp(val, "bf16") && strcmp(val, "fp32")) return bad(s, "hp_format must be bf16 or fp32");
            uniform(&r.hp, val);
        } else {
            int mask = 0;
            if (!strcmp(key, "all")) mask = 0x3F;
            else if (!strcmp(key, "x")) mask = 1 << FQT_OP_FPROP_X | 1 << FQT_OP_WGRAD_X;
            else if (!strcmp(key, "w")) mask = 1 << FQT_OP_FPROP_W | 1 << FQT_OP_DGRAD_W;
            else if (!strcmp(key, "dy")) mask = 1 << FQT_OP_DGRAD_DY | 1 << FQT_OP_WGRAD_DY;
            else
                for (int i = 0; i < FQT_OP_COUNT; i++)
                    if (!strcmp(key, fqt_operand_names[i])) mask = 1 << i;
            if (!mask) return bad(s, "unknown override key");
            char *slash = strrchr(val, '/');
            int rounding = -1;
            if (slash) {
                if (!strcmp(slash + 1, "rtn") || !strcmp(slash + 1, "rne")) rounding = FQT_ROUND_RNE;
                else if (!strcmp(slash + 1, "sr")) rounding = FQT_ROUND_SR;
                else return bad(s, "rounding must be /rtn or /sr");
                *slash = 0;
            }
            fqt_format f;
            if (fqt_format_parse(val, &f)) return bad(s, fqt_last_error());
            for (int i = 0; i < FQT_OP_COUNT; i++)
                if (mask & 1 << i) {
                    r.quant.op[i].fmt = f;
                    if (rounding >= 0) r.quant.op[i].rounding = (fqt_rounding)rounding;
                }
        }
    }
    snprintf(r.name, sizeof r.name, "%s", s);
    *out = r;
    return FQT_OK;
}

const fqt_linear_spec *fqt_recipe_layer(const fqt_recipe *r, int layer, int n_layers) {
    for (int i = 0; i < r->n_hp_layers; i++) {
        int l = r->hp_layers[i] < 0 ? n_layers + r->hp_layers[i] : r->hp_layers[i];
        if (l == layer) return &r->hp;
    }
    return &r->quant;
}

const fqt_linear_spec *fqt_recipe_lm_head(const fqt_recipe *r) {
    return r->lm_head_quantized ? &r->quant : &r->hp;
}

void fqt_recipe_describe(const fqt_recipe *r, char *buf, size_t n) {
    size_t off = 0;
    char fname[64];
    off += (size_t)snprintf(buf + off, n - off, "recipe %s:", r->name);
    for (int i = 0; i < FQT_OP_COUNT && off < n; i++)
        off += (size_t)snprintf(buf + off, n - off, " %s=%s/%s", fqt_operand_names[i],
                                fqt_format_name(&r->quant.op[i].fmt, fname, sizeof fname),
                                r->quant.op[i].rounding == FQT_ROUND_SR ? "sr" : "rtn");
    if (off < n && r->quant.hadamard_wgrad) off += (size_t)snprintf(buf + off, n - off, " hadamard");
    if (off < n && r->n_hp_layers) {
        off += (size_t)snprintf(buf + off, n - off, " hp-blocks=");
        for (int i = 0; i < r->n_hp_layers && off < n; i++)
            off += (size_t)snprintf(buf + off, n - off, "%s%d", i ? "+" : "", r->hp_layers[i]);
    }
    if (off < n)
        snprintf(buf + off, n - off, " lm_head=%s hp=%s", r->lm_head_quantized ? "quant" : "hp",
                 fqt_format_name(&r->hp.op[0].fmt, fname, sizeof fname));
}
