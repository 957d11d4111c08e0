/* tests/test_recipe.c — fqt_recipe_parse, fqt_recipe_layer and fqt_recipe_lm_head against
 * the contract of include/fqt/recipe.h: the built-in recipes hold exactly the paper's split
 * (arXiv 2505.19115), every override kind does what the header says, and bad strings fail
 * with FQT_ERR_ARG and a message naming the valid recipes. Not for: running GEMMs
 * (tests/test_linear.c) or the model (tests/test_model.c). */
#include "check.h"
#include "fqt/recipe.h"

#include <string.h>

static fqt_format fmt(const char *name) {
    fqt_format f;
    memset(&f, 0, sizeof f);
    if (fqt_format_parse(name, &f) != FQT_OK) {
        fprintf(stderr, "test bug: format '%s' does not parse\n", name);
        abort();
    }
    return f;
}

/* Does operand op of spec s use format `f` (a preset name) and rounding r? */
static int op_is(const fqt_linear_spec *s, fqt_operand op, const char *f, fqt_rounding r) {
    fqt_format want = fmt(f);
    return fqt_format_equal(&s->op[op].fmt, &want) && s->op[op].rounding == r;
}

static const fqt_rounding RTN = FQT_ROUND_RNE, SR = FQT_ROUND_SR;

/* Checks every operand of s against fmts[6] and rnds[6]; returns the number of mismatches. */
static int spec_is(const fqt_linear_spec *s, const char *const fmts[FQT_OP_COUNT],
                   const fqt_rounding rnds[FQT_OP_COUNT]) {
    int bad = 0;
    for (int i = 0; i < FQT_OP_COUNT; i++)
        if (!op_is(s, (fqt_operand)i, fmts[i], rnds[i])) {
            char b[64];
            fprintf(stderr, "  operand %s: %s/%s, want %s/%s\n", fqt_operand_names[i],
                    fqt_format_name(&s->op[i].fmt, b, sizeof b),
                    s->op[i].rounding == SR ? "sr" : "rtn", fmts[i], rnds[i] == SR ? "sr" : "rtn");
            bad++;
        }
    return bad;
}

static int all_is(const fqt_linear_spec *s, const char *f, fqt_rounding r) {
    const char *fs[FQT_OP_COUNT] = {f, f, f, f, f, f};
    const fqt_rounding rs[FQT_OP_COUNT] = {r, r, r, r, r, r};
    return spec_is(s, fs, rs);
}

/* The paper's split: RTN for fprop.x, fprop.w, dgrad.w; SR for dgrad.dy, wgrad.dy, wgrad.x. */
static const fqt_rounding paper_rnd[FQT_OP_COUNT] = {RTN, RTN, SR, RTN, SR, SR};

static fqt_recipe parse_ok(const char *s) {
    fqt_recipe r;
    memset(&r, 0xA5, sizeof r);
    fqt_status st = fqt_recipe_parse(s, &r);
    CHECK_MSG(st == FQT_OK, "'%s': %s", s, fqt_last_error());
    if (st == FQT_OK) CHECK_MSG(!strcmp(r.name, s), "name '%s' for '%s'", r.name, s);
    return r;
}

static void test_builtins(void) {
    int n = 0;
    for (int i = 0; fqt_recipe_names[i]; i++, n++) {
        fqt_recipe r = parse_ok(fqt_recipe_names[i]);
        char buf[1024];
        fqt_recipe_describe(&r, buf, sizeof buf);
        CHECK_MSG(strstr(buf, fqt_recipe_names[i]) != NULL, "describe: %s", buf);
    }
    CHECK_MSG(n >= 8, "only %d built-in recipes", n);

    fqt_recipe r = parse_ok("nvfp4");
    {
        const char *f[FQT_OP_COUNT] = {"nvfp4", "nvfp4", "nvfp4", "nvfp4", "nvfp4", "nvfp4"};
        CHECK(spec_is(&r.quant, f, paper_rnd) == 0);
    }
    CHECK(!r.quant.hadamard_wgrad && r.n_hp_layers == 0 && !r.lm_head_quantized);
    CHECK(all_is(&r.hp, "bf16", RTN) == 0);
    CHECK(fqt_recipe_layer(&r, 0, 4) == &r.quant && fqt_recipe_layer(&r, 3, 4) == &r.quant);
    CHECK(fqt_recipe_lm_head(&r) == &r.hp);

    r = parse_ok("nvfp4-rtn");
    CHECK(all_is(&r.quant, "nvfp4", RTN) == 0);

    r = parse_ok("mxfp4");
    {
        const char *f[FQT_OP_COUNT] = {"mxfp4", "mxfp4", "mxfp4", "mxfp4", "mxfp4", "mxfp4"};
        CHECK(spec_is(&r.quant, f, paper_rnd) == 0);
    }

    r = parse_ok("fp8");
    {
        const char *f[FQT_OP_COUNT] = {"fp8", "fp8-w", "fp8", "fp8-w", "fp8", "fp8"};
        const fqt_rounding rs[FQT_OP_COUNT] = {RTN, RTN, RTN, RTN, RTN, RTN};
        CHECK(spec_is(&r.quant, f, rs) == 0);
    }
    CHECK(fmt("fp8-w").block_rows == 128 && fmt("fp8-w").block == 128 && fmt("fp8").block == 128 &&
          fmt("fp8").block_rows <= 1);

    r = parse_ok("nvfp4-nvidia");
    {
        const char *f[FQT_OP_COUNT] = {"nvfp4", "nvfp4-2d", "nvfp4", "nvfp4-2d", "nvfp4", "nvfp4"};
        const fqt_rounding rs[FQT_OP_COUNT] = {RTN, RTN, SR, RTN, SR, RTN};
        CHECK(spec_is(&r.quant, f, rs) == 0);
    }
    CHECK(r.quant.hadamard_wgrad);
    CHECK(fqt_recipe_layer(&r, 0, 6) == &r.hp && fqt_recipe_layer(&r, 5, 6) == &r.hp);
    for (int l = 1; l < 5; l++) CHECK_MSG(fqt_recipe_layer(&r, l, 6) == &r.quant, "layer %d", l);
    CHECK(all_is(&r.hp, "bf16", RTN) == 0);

    r = parse_ok("fp32");
    CHECK(all_is(&r.quant, "fp32", RTN) == 0 && all_is(&r.hp, "fp32", RTN) == 0);
    r = parse_ok("bf16");
    CHECK(all_is(&r.quant, "bf16", RTN) == 0);
    r = parse_ok("int4");
    {
        const char *f[FQT_OP_COUNT] = {"int4", "int4", "int4", "int4", "int4", "int4"};
        CHECK(spec_is(&r.quant, f, paper_rnd) == 0);
    }
}

static void test_overrides(void) {
    fqt_recipe r = parse_ok("nvfp4,fprop.x=mxfp4/sr");
    CHECK(op_is(&r.quant, FQT_OP_FPROP_X, "mxfp4", SR));
    for (int i = 1; i < FQT_OP_COUNT; i++)
        CHECK_MSG(op_is(&r.quant, (fqt_operand)i, "nvfp4", paper_rnd[i]), "%s", fqt_operand_names[i]);

    /* Without /rounding the operand keeps its rounding; with one, it changes. */
    r = parse_ok("nvfp4,wgrad.x=fp8");
    CHECK(op_is(&r.quant, FQT_OP_WGRAD_X, "fp8", SR));
    r = parse_ok("nvfp4,dgrad.dy=nvfp4/rtn,dgrad.w=mxfp4/sr,wgrad.dy=bf16,fprop.w=fp8-w");
    {
        const char *f[FQT_OP_COUNT] = {"nvfp4", "fp8-w", "nvfp4", "mxfp4", "bf16", "nvfp4"};
        const fqt_rounding rs[FQT_OP_COUNT] = {RTN, RTN, RTN, SR, SR, SR};
        CHECK(spec_is(&r.quant, f, rs) == 0);
    }

    r = parse_ok("nvfp4,x=bf16");
    {
        const char *f[FQT_OP_COUNT] = {"bf16", "nvfp4", "nvfp4", "nvfp4", "nvfp4", "bf16"};
        CHECK(spec_is(&r.quant, f, paper_rnd) == 0);
    }
    r = parse_ok("nvfp4,w=mxfp4/sr");
    {
        const char *f[FQT_OP_COUNT] = {"nvfp4", "mxfp4", "nvfp4", "mxfp4", "nvfp4", "nvfp4"};
        const fqt_rounding rs[FQT_OP_COUNT] = {RTN, SR, SR, SR, SR, SR};
        CHECK(spec_is(&r.quant, f, rs) == 0);
    }
    r = parse_ok("nvfp4,dy=fp8/rtn");
    {
        const char *f[FQT_OP_COUNT] = {"nvfp4", "nvfp4", "fp8", "nvfp4", "fp8", "nvfp4"};
        const fqt_rounding rs[FQT_OP_COUNT] = {RTN, RTN, RTN, RTN, RTN, SR};
        CHECK(spec_is(&r.quant, f, rs) == 0);
    }
    r = parse_ok("nvfp4,all=mxfp4");
    {
        const char *f[FQT_OP_COUNT] = {"mxfp4", "mxfp4", "mxfp4", "mxfp4", "mxfp4", "mxfp4"};
        CHECK(spec_is(&r.quant, f, paper_rnd) == 0);
    }
    r = parse_ok("fp32,all=nvfp4/sr");
    CHECK(all_is(&r.quant, "nvfp4", SR) == 0);
    CHECK(all_is(&r.hp, "fp32", RTN) == 0); /* overrides change the quantized layers only */
    /* Generic format names work as override values. */
    r = parse_ok("nvfp4,fprop.w=e2m1:b16x16:ue4m3:tensor");
    CHECK(op_is(&r.quant, FQT_OP_FPROP_W, "nvfp4-2d", RTN));
    /* Later overrides win. */
    r = parse_ok("nvfp4,all=bf16,fprop.x=fp8");
    CHECK(op_is(&r.quant, FQT_OP_FPROP_X, "fp8", RTN) && op_is(&r.quant, FQT_OP_FPROP_W, "bf16", RTN));

    /* hp lists; negative indices count from the end. */
    r = parse_ok("nvfp4,hp=first+last");
    CHECK(r.n_hp_layers == 2);
    for (int l = 0; l < 5; l++)
        CHECK_MSG(fqt_recipe_layer(&r, l, 5) == ((l == 0 || l == 4) ? &r.hp : &r.quant), "l=%d", l);
    CHECK(fqt_recipe_layer(&r, 0, 1) == &r.hp);
    r = parse_ok("nvfp4,hp=1..2");
    for (int l = 0; l < 5; l++)
        CHECK_MSG(fqt_recipe_layer(&r, l, 5) == ((l == 1 || l == 2) ? &r.hp : &r.quant), "l=%d", l);
    r = parse_ok("nvfp4,hp=-2+0");
    for (int l = 0; l < 6; l++)
        CHECK_MSG(fqt_recipe_layer(&r, l, 6) == ((l == 0 || l == 4) ? &r.hp : &r.quant), "l=%d", l);
    CHECK(fqt_recipe_layer(&r, 2, 4) == &r.hp && fqt_recipe_layer(&r, 3, 4) == &r.quant);
    r = parse_ok("nvfp4,hp=3");
    CHECK(fqt_recipe_layer(&r, 3, 4) == &r.hp && fqt_recipe_layer(&r, 2, 4) == &r.quant);
    CHECK(fqt_recipe_layer(&r, 0, 2) == &r.quant && fqt_recipe_layer(&r, 1, 2) == &r.quant);
    r = parse_ok("nvfp4-nvidia,hp=none");
    CHECK(r.n_hp_layers == 0 && fqt_recipe_layer(&r, 0, 4) == &r.quant);
    r = parse_ok("nvfp4-nvidia,hp=1");
    CHECK(fqt_recipe_layer(&r, 0, 4) == &r.quant && fqt_recipe_layer(&r, 1, 4) == &r.hp &&
          fqt_recipe_layer(&r, 3, 4) == &r.quant);

    r = parse_ok("nvfp4,lm_head=quant");
    CHECK(r.lm_head_quantized && fqt_recipe_lm_head(&r) == &r.quant);
    r = parse_ok("nvfp4,lm_head=quant,lm_head=hp");
    CHECK(!r.lm_head_quantized && fqt_recipe_lm_head(&r) == &r.hp);

    r = parse_ok("nvfp4,hadamard=1");
    CHECK(r.quant.hadamard_wgrad);
    r = parse_ok("nvfp4-nvidia,hadamard=0");
    CHECK(!r.quant.hadamard_wgrad);
    r = parse_ok("fp32,hadamard=1");
    CHECK(r.quant.hadamard_wgrad && all_is(&r.quant, "fp32", RTN) == 0);

    r = parse_ok("nvfp4,hp_format=fp32");
    CHECK(all_is(&r.hp, "fp32", RTN) == 0);
    r = parse_ok("fp32,hp_format=bf16");
    CHECK(all_is(&r.hp, "bf16", RTN) == 0 && all_is(&r.quant, "fp32", RTN) == 0);
}

static void parse_bad(const char *s, const char *mention) {
    fqt_recipe r;
    memset(&r, 0, sizeof r);
    fqt_set_error("%s", "");
    fqt_status st = fqt_recipe_parse(s, &r);
    CHECK_MSG(st == FQT_ERR_ARG, "'%s' parsed (status %d)", s ? s : "(null)", (int)st);
    const char *msg = fqt_last_error();
    int lists = 1;
    for (int i = 0; fqt_recipe_names[i]; i++) lists &= strstr(msg, fqt_recipe_names[i]) != NULL;
    CHECK_MSG(lists, "'%s': message does not list the recipes: %s", s ? s : "(null)", msg);
    if (mention)
        CHECK_MSG(strstr(msg, mention) != NULL, "'%s': message lacks '%s': %s", s ? s : "(null)",
                  mention, msg);
}

static void test_errors(void) {
    parse_bad("nvfp5", "nvfp5");
    parse_bad("", NULL);
    parse_bad(NULL, NULL);
    parse_bad("NVFP4", NULL);
    parse_bad("nvfp4,frop.x=nvfp4", "unknown override key");
    parse_bad("nvfp4,fprop.x", "KEY=VALUE");
    parse_bad("nvfp4,fprop.x=nvfp5", "nvfp5");
    {
        /* The format parser's own message (why the format is bad, the valid formats) must
         * survive into the recipe message intact. */
        fqt_format f;
        char why[1024];
        CHECK(fqt_format_parse("nvfp5", &f) == FQT_ERR_ARG);
        snprintf(why, sizeof why, "%s", fqt_last_error());
        parse_bad("nvfp4,fprop.x=nvfp5", why);
    }
    parse_bad("nvfp4,x=", NULL);
    parse_bad("nvfp4,fprop.x=nvfp4/rtz", "rounding");
    parse_bad("nvfp4,fprop.x=nvfp4/", "rounding");
    parse_bad("nvfp4,hp=middle", "hp");
    parse_bad("nvfp4,hp=2..1", "hp");
    parse_bad("nvfp4,hp=-1..2", "hp");
    parse_bad("nvfp4,hp=1..", "hp");
    parse_bad("nvfp4,hp=99999", "hp");
    parse_bad("nvfp4,hp=1+x", "hp");
    parse_bad("nvfp4,lm_head=yes", "lm_head");
    parse_bad("nvfp4,hadamard=2", "hadamard");
    parse_bad("nvfp4,hp_format=fp16", "hp_format");
    char longs[400];
    memset(longs, 'a', sizeof longs - 1);
    longs[sizeof longs - 1] = 0;
    parse_bad(longs, NULL);
}

int main(void) {
    test_builtins();
    test_overrides();
    test_errors();
    return check_finish();
}
