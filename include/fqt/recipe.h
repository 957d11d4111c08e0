/* fqt/recipe.h — which GEMM operand is quantized, in which format, with which rounding.
 *
 * Every linear layer Y = X Wᵀ runs three GEMMs with six operands (docs/FORMATS.md §5.6):
 *   fprop  Y  = X Wᵀ     operands X (along Cin)  and W (along Cin)
 *   dgrad  dX = dY W     operands dY (along Cout) and W (along Cout)
 *   wgrad  dW = dYᵀ X    operands dY (along T)    and X (along T)
 * Each is quantized along that GEMM's reduction dimension with its own format and
 * rounding. Everything else (embeddings, norms, RoPE, attention scores and softmax, the
 * residual stream, the loss, FP32 master weights and AdamW moments) stays high precision.
 * Not for: running the GEMMs (core/linear.c). */
#ifndef FQT_RECIPE_H
#define FQT_RECIPE_H

#include "fqt/formats.h"

typedef enum {
    FQT_OP_FPROP_X = 0,
    FQT_OP_FPROP_W,
    FQT_OP_DGRAD_DY,
    FQT_OP_DGRAD_W,
    FQT_OP_WGRAD_DY,
    FQT_OP_WGRAD_X,
    FQT_OP_COUNT
} fqt_operand;

typedef struct {
    fqt_format fmt;
    fqt_rounding rounding;
} fqt_operand_spec;

/* The quantization of one linear layer. */
typedef struct {
    fqt_operand_spec op[FQT_OP_COUNT];
    bool hadamard_wgrad; /* random 16x16 Hadamard transform of both wgrad operands along T */
} fqt_linear_spec;

#define FQT_RECIPE_MAX_LAYERS 256

/* A named recipe plus overrides. */
typedef struct {
    char name[160];           /* the recipe string as given */
    fqt_linear_spec quant;    /* the quantized layers */
    fqt_linear_spec hp;       /* "high precision": layers kept out of quantization, LM head */
    bool lm_head_quantized;   /* LM head uses `quant` (default: hp) */
    /* Transformer blocks kept in high precision, as given: indices (negative = from the end). */
    int n_hp_layers;
    int hp_layers[FQT_RECIPE_MAX_LAYERS];
} fqt_recipe;

/* Names of the built-in recipes, NULL-terminated. */
extern const char *const fqt_recipe_names[];

/* Parse "NAME[,OVERRIDE]...". NAME is one of fqt_recipe_names. Overrides:
 *   OPERAND=FORMAT[/rtn|/sr]   OPERAND in fprop.x fprop.w dgrad.dy dgrad.w wgrad.dy wgrad.x,
 *                              or x, w, dy (all operands of that tensor), or all
 *   hp=LIST                    blocks kept high precision: first, last, i, -i, a..b joined by '+'
 *   lm_head=quant|hp           quantize the LM head with the recipe, or not (default hp)
 *   hadamard=0|1               random Hadamard transform on the wgrad inputs
 *   hp_format=bf16|fp32        the high-precision format
 * Errors return FQT_ERR_ARG with a message listing what is valid. */
fqt_status fqt_recipe_parse(const char *s, fqt_recipe *out);

/* The spec for transformer block `layer` of `n_layers`. */
const fqt_linear_spec *fqt_recipe_layer(const fqt_recipe *r, int layer, int n_layers);
const fqt_linear_spec *fqt_recipe_lm_head(const fqt_recipe *r);

/* One line per operand, for `fqt train --help` and the run log. */
void fqt_recipe_describe(const fqt_recipe *r, char *buf, size_t n);

extern const char *const fqt_operand_names[]; /* "fprop.x", ... indexed by fqt_operand */

#endif
