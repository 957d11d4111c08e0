/* tests/test_backend_profile.c — the profiling wrapper (core/backend_profile.c).
 *
 * Oracle: the unwrapped CPU backend. A forward and backward of a small model (nvfp4 with SR
 * gradients, so the quantizer, the GEMMs and every op run) through the profiled table must
 * give the same loss and the same gradient bits; the report must carry one row per op and
 * shape with the number of calls the model makes (counted from its structure), and reset
 * must empty it. Not for: how long anything takes. */
#include "check.h"
#include "fqt/model.h"

#include <stdlib.h>
#include <string.h>

static char *report(void) {
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    fqt_backend_profile_report(f);
    fclose(f);
    return buf;
}

/* The calls column of the report's row whose key is exactly `key`; -1 when absent. */
static long long calls_of(const char *rep, const char *key) {
    const char *p = rep;
    const size_t kl = strlen(key);
    while ((p = strstr(p, key))) {
        if ((p[kl] == '\n' || p[kl] == 0) && p > rep + 2 && p[-1] == ' ' && p[-2] == ' ') {
            const char *ls = p;
            while (ls > rep && ls[-1] != '\n') ls--;
            double total, share, best;
            long long calls;
            if (sscanf(ls, "%lf %lf%% %lld %lf", &total, &share, &calls, &best) == 4) return calls;
        }
        p += kl;
    }
    return -1;
}

static void run(const fqt_backend *be, double *loss, float **grads, int64_t *n) {
    const fqt_model_config cfg = {64, 32, 2, 4, 2, 48, 16, 10000.0f, 1e-5f};
    fqt_model m;
    if (fqt_model_create_on(&m, &cfg, be) != FQT_OK) {
        fprintf(stderr, "fqt_model_create_on: %s\n", fqt_last_error());
        abort();
    }
    fqt_model_init(&m, 7);
    fqt_recipe r;
    if (fqt_recipe_parse("nvfp4", &r) != FQT_OK) abort();
    const int64_t B = 2, T = 16;
    int32_t tok[32], tgt[32];
    for (int i = 0; i < 32; i++) tok[i] = (int32_t)((i * 37 + 5) % 64), tgt[i] = (int32_t)((i * 11 + 3) % 64);
    const fqt_pass pass = {&r, FQT_MODE_FQT, 3, 1, NULL, false};
    fqt_model_zero_grad(&m);
    *loss = fqt_model_forward(&m, tok, tgt, B, T, &pass);
    fqt_model_backward(&m, &pass, 1.0f);
    *n = m.n_params;
    *grads = malloc(sizeof(float) * (size_t)m.n_params);
    memcpy(*grads, m.grads, sizeof(float) * (size_t)m.n_params);
    fqt_model_free(&m);
}

int main(void) {
    double l0, l1;
    float *g0, *g1;
    int64_t n0, n1;
    run(&fqt_backend_cpu, &l0, &g0, &n0);

    const fqt_backend *pb = fqt_backend_profiled(&fqt_backend_cpu);
    CHECK(pb != &fqt_backend_cpu);
    CHECK(fqt_backend_profiled(&fqt_backend_cpu) == pb); /* one wrapper per process */
    CHECK(fqt_backend_profiled(pb) == pb);               /* wrapping twice is a no-op */
    CHECK(!strcmp(pb->name, fqt_backend_cpu.name) && pb->act_dtype == fqt_backend_cpu.act_dtype);
    run(pb, &l1, &g1, &n1);

    CHECK_MSG(memcmp(&l0, &l1, sizeof l0) == 0, "loss %.17g unprofiled, %.17g profiled", l0, l1);
    CHECK(n0 == n1);
    int64_t diff = 0;
    for (int64_t i = 0; i < n0 && n0 == n1; i++) diff += memcmp(&g0[i], &g1[i], 4) != 0;
    CHECK_MSG(diff == 0, "%lld of %lld gradient values differ under the profiler", (long long)diff, (long long)n0);

    char *rep = report();
    /* Two layers, N = 32 tokens, C 32, 4 heads of 8, 2 kv heads, F 48, V 64. */
    CHECK_MSG(calls_of(rep, "embedding_fwd 32x32") == 1, "%s", rep);
    CHECK(calls_of(rep, "embedding_bwd 32x32") == 1);
    CHECK(calls_of(rep, "rmsnorm_fwd 32x32") == 5); /* 2 per layer + the final norm */
    CHECK(calls_of(rep, "rmsnorm_bwd 32x32") == 5);
    CHECK(calls_of(rep, "attention_fwd B2 T16 NH4 KV2 HS8") == 2);
    CHECK(calls_of(rep, "attention_bwd B2 T16 NH4 KV2 HS8") == 2);
    CHECK(calls_of(rep, "swiglu_fwd 1536") == 2);
    CHECK(calls_of(rep, "xent_fwd_bwd 32x64") == 1);
    /* The recipe keeps the LM head in bf16: its fprop X [32, 32] W [64, 32]ᵀ once, its dgrad
     * once; q, o (and k, v of width 16) in nvfp4. */
    CHECK_MSG(calls_of(rep, "qgemm bf16 x bf16 32x64x32 to f32") == 1, "%s", rep);
    CHECK(calls_of(rep, "qgemm bf16 x bf16 32x32x64 to f32") == 1);
    CHECK(calls_of(rep, "qgemm nvfp4 x nvfp4 32x32x32 to f32") >= 2);
    CHECK(strstr(rep, "quantize nvfp4 cols sr ") != NULL); /* the SR gradient operands */
    CHECK(strstr(rep, "# per op") != NULL);
    free(rep);

    fqt_backend_profile_reset();
    rep = report();
    CHECK(calls_of(rep, "embedding_fwd 32x32") == -1);
    CHECK(strstr(rep, "0.000 s inside ops") != NULL);
    free(rep);

    /* FQT_PROFILE naming a file that cannot be written: refused before any run, naming it. */
    fqt_set_error("%s", "");
    setenv("FQT_PROFILE", "/nonexistent-fqt-dir/prof.txt", 1);
    CHECK(fqt_backend_get("cpu") == NULL);
    CHECK_MSG(strstr(fqt_last_error(), "/nonexistent-fqt-dir/prof.txt") != NULL, "%s", fqt_last_error());
    setenv("FQT_PROFILE", "0", 1); /* "0" is off */
    CHECK(fqt_backend_get("cpu") == &fqt_backend_cpu);
    unsetenv("FQT_PROFILE");
    CHECK(fqt_backend_get("cpu") == &fqt_backend_cpu);

    free(g0);
    free(g1);
    return check_finish();
}
