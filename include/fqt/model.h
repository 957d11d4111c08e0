/* fqt/model.h — the Llama-style decoder and its hand-written forward and backward pass.
 *
 * Token embedding, pre-norm RMSNorm, rotary embeddings, causal (grouped-query) attention,
 * SwiGLU MLP, final RMSNorm, untied LM head. Parameters live in one FP32 slab with a table
 * of named tensors (Hugging Face Llama names), gradients in a second slab of the same
 * layout, so checkpoints and all-reduce are one call each. Both slabs and every activation
 * live in the memory of the model's backend (fqt/backend.h), which runs every op, quantizer
 * and GEMM; every linear layer goes through core/linear.c under a recipe. With a host-memory
 * backend (the CPU) params and grads are plain host arrays; otherwise move data with the
 * backend's upload/download.
 *
 * Dimension letters: B batch, T sequence, C dim, V vocab, L layers, NH heads, NKV kv heads,
 * HS head size (C/NH), F FFN width. Not for: optimizer, data or the run loop (train.h). */
#ifndef FQT_MODEL_H
#define FQT_MODEL_H

#include "fqt/backend.h"
#include "fqt/ops.h"
#include "fqt/recipe.h"

typedef struct {
    int64_t vocab;      /* V */
    int64_t dim;        /* C */
    int64_t n_layers;   /* L */
    int64_t n_heads;    /* NH */
    int64_t n_kv_heads; /* NKV (= NH: multi-head; < NH: grouped-query) */
    int64_t ffn;        /* F */
    int64_t ctx;        /* longest sequence T */
    float rope_theta;
    float norm_eps;
} fqt_model_config;

/* Named sizes: "tiny" (the default, trains in minutes on 2 cores), "small", "llama-124m"
 * (768 wide, 12 layers, 12 heads, FFN 2048, context 1024, vocabulary 50304), "llama-1b"
 * (2048 wide, 16 layers, 16 heads, FFN 5632, context 2048, vocabulary 50304). The vocabulary
 * of tiny and small is set from the tokenizer by the caller. */
fqt_status fqt_model_config_named(const char *name, fqt_model_config *c);
extern const char *const fqt_model_size_names[];
/* Impossible configurations (zero sizes, heads not dividing dim, ...) -> FQT_ERR_ARG. */
fqt_status fqt_model_config_validate(const fqt_model_config *c);

typedef enum { FQT_MODE_FQT = 0, FQT_MODE_QAT, FQT_MODE_COUNT } fqt_mode;

typedef struct {
    const char *name;  /* Hugging Face name, e.g. "model.layers.0.self_attn.q_proj.weight" */
    int64_t offset;    /* into the parameter slab, in floats */
    int64_t numel;
    int ndim;
    int64_t shape[2];
    bool decay;        /* AdamW weight decay applies (matrices; not norms) */
} fqt_param_info;

/* Linear layers, in the order of fqt_model.linear_names: per block q k v o gate up down, then
 * the LM head. Their index is the "tensor id" of the SR streams. */
#define FQT_LINEARS_PER_LAYER 7

/* Per-linear, per-operand quantization statistics gathered during one pass. */
typedef struct {
    int64_t n_linears;
    fqt_qstats (*st)[FQT_OP_COUNT]; /* [n_linears][FQT_OP_COUNT] */
} fqt_diag;

/* What a pass does: the recipe and mode, and the keys of its random bits. */
typedef struct {
    const fqt_recipe *recipe;
    fqt_mode mode;
    uint64_t seed;      /* run seed */
    uint32_t sr_step;   /* unique per micro-step: SR stream = (linear id, operand, sr_step) */
    fqt_diag *diag;     /* NULL, or statistics to accumulate */
    bool no_backward;   /* a forward that no backward follows (evaluation, sampling): it keeps
                           nothing for one (core/model.c's quantized wgrad inputs) */
} fqt_pass;

typedef struct fqt_acts fqt_acts; /* saved activations, private to model.c */

typedef struct {
    fqt_model_config cfg;
    const fqt_backend *be;       /* where the model lives and runs */
    int64_t n_params;
    float *params;               /* the FP32 master weights (backend memory) */
    float *grads;                /* same layout; accumulated by fqt_model_backward */
    int n_tensors;
    fqt_param_info *tensors;
    char **names;                /* storage for tensors[i].name */
    int64_t n_linears;
    char **linear_names;         /* "layers.0.self_attn.q_proj", ..., "lm_head" */
    fqt_acts *acts;
} fqt_model;

fqt_status fqt_model_create(fqt_model *m, const fqt_model_config *cfg); /* on the CPU */
fqt_status fqt_model_create_on(fqt_model *m, const fqt_model_config *cfg, const fqt_backend *be);
void fqt_model_free(fqt_model *m);
/* Llama/GPT-2 style initialisation: N(0, 0.02), the residual projections (o_proj,
 * down_proj) scaled by 1/sqrt(2L), norms at 1. Deterministic in seed. */
void fqt_model_init(fqt_model *m, uint64_t seed);
const fqt_param_info *fqt_model_find(const fqt_model *m, const char *name);
/* The weight of linear layer li (0 <= li < n_linears, in linear_names order). */
const fqt_param_info *fqt_model_linear_param(const fqt_model *m, int64_t li);

/* Forward over tokens[B*T] (each < V). With targets (a target < 0 is ignored) returns the
 * mean cross-entropy and keeps what backward needs; logits of the last pass are available
 * through fqt_model_logits. Returns NaN if the loss is not finite. T <= ctx. */
double fqt_model_forward(fqt_model *m, const int32_t *tokens, const int32_t *targets, int64_t B,
                         int64_t T, const fqt_pass *pass);
/* Backward of the last forward: grads += d(loss * loss_scale)/d(params). */
void fqt_model_backward(fqt_model *m, const fqt_pass *pass, float loss_scale);
/* [B*T, V] float32 logits of the last forward, in host memory (a copy for device backends). */
const float *fqt_model_logits(const fqt_model *m);
void fqt_model_zero_grad(fqt_model *m);

fqt_status fqt_diag_alloc(fqt_diag *d, int64_t n_linears);
void fqt_diag_free(fqt_diag *d);

#endif
