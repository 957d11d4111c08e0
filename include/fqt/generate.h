/* fqt/generate.h — sampling text from a model, and the model-vs-model comparison of `fqt
 * eval` (mean KL divergence of next-token distributions, top-1 agreement).
 * Not for: tokenization (fqt/bpe.h) or training (fqt/train.h). */
#ifndef FQT_GENERATE_H
#define FQT_GENERATE_H

#include "fqt/model.h"

typedef struct {
    float temperature;  /* 0 = greedy */
    int32_t top_k;      /* 0 = the whole vocabulary */
    uint64_t seed;
    int64_t window;     /* context fed to the model (<= ctx); older tokens slide out */
} fqt_sample_opts;

/* Append n_new sampled tokens to prompt[0..np) (np >= 1). *out (malloc'ed) holds prompt and
 * continuation; stops early at stop_token (>= 0) if sampled. */
fqt_status fqt_generate(fqt_model *m, const fqt_pass *pass, const int32_t *prompt, int64_t np,
                        int64_t n_new, const fqt_sample_opts *o, int32_t stop_token,
                        int32_t **out, int64_t *nout);

/* Compare the next-token distributions of a and b on windows of T+1 tokens of data:
 * mean KL(P_a || P_b) in nats, top-1 agreement, and each model's mean loss. */
typedef struct {
    double kl, top1, loss_a, loss_b;
    int64_t tokens;
} fqt_compare;
fqt_status fqt_compare_models(fqt_model *a, const fqt_pass *pa, fqt_model *b, const fqt_pass *pb,
                              const uint16_t *tok, int64_t n, int64_t B, int64_t T,
                              int64_t max_tokens, fqt_compare *out);

#endif
