/* bench/bench_train.c — training throughput of the CPU reference backend per recipe, side by
 * side in one run, and the share of step time spent quantizing and dequantizing GEMM
 * operands. Synthetic tokens (the speed does not depend on them).
 * Usage: bench_train [steps] [recipes...]   (default: 6 steps; fp32 bf16 nvfp4 mxfp4 fp8
 * nvfp4-nvidia). Model: the tiny default (vocabulary 4096), B=16, T=128. A step is
 * forward + backward (the AdamW update, ~1.9 M parameters, is not timed). Without
 * OMP_WAIT_POLICY it runs with the policy the fqt command line sets
 * (fqt_omp_wait_policy_default). */
#include "fqt/model.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

int main(int argc, char **argv) {
    fqt_omp_wait_policy_default(argv);
    int steps = argc > 1 ? atoi(argv[1]) : 6;
    const char *dflt[] = {"fp32", "bf16", "nvfp4", "mxfp4", "fp8", "nvfp4-nvidia"};
    const char **recipes = argc > 2 ? (const char **)argv + 2 : dflt;
    int nr = argc > 2 ? argc - 2 : 6;
    fqt_model_config cfg;
    fqt_model_config_named("tiny", &cfg);
    const int64_t B = 16, T = 128;
    fqt_model m;
    if (fqt_model_create(&m, &cfg)) { fprintf(stderr, "%s\n", fqt_last_error()); return 1; }
    fqt_model_init(&m, 1);
    int32_t *x = malloc(sizeof(int32_t) * B * T), *y = malloc(sizeof(int32_t) * B * T);
    uint64_t s = 7;
    for (int64_t i = 0; i < B * T; i++) {
        s = s * 6364136223846793005ull + 1;
        x[i] = (int32_t)((s >> 33) % (uint64_t)cfg.vocab);
        y[i] = (int32_t)((s >> 13) % (uint64_t)cfg.vocab);
    }
    int threads = 1;
#ifdef _OPENMP
    threads = omp_get_max_threads();
#endif
    printf("bench_train: tiny model (%lld params, C=%lld L=%lld V=%lld), B=%lld T=%lld, %d threads, "
           "%d timed steps after 1 warm-up\n", (long long)m.n_params, (long long)cfg.dim,
           (long long)cfg.n_layers, (long long)cfg.vocab, (long long)B, (long long)T, threads, steps);
    printf("  %-14s %10s %9s %11s %11s %8s\n", "recipe", "tokens/s", "vs bf16", "quantize", "dequantize", "GEMM");
    double bf16_tps = 0;
    for (int r = 0; r < nr; r++) {
        fqt_recipe rec;
        if (fqt_recipe_parse(recipes[r], &rec)) { fprintf(stderr, "%s\n", fqt_last_error()); return 1; }
        double t0 = 0;
        for (int i = 0; i <= steps; i++) {
            if (i == 1) { fqt_prof_reset(); t0 = fqt_prof_now(); }
            fqt_pass p = {&rec, FQT_MODE_FQT, 1, (uint32_t)i, NULL, false};
            fqt_model_zero_grad(&m);
            fqt_model_forward(&m, x, y, B, T, &p);
            fqt_model_backward(&m, &p, 1.0f);
        }
        double t = fqt_prof_now() - t0, tps = (double)(B * T * steps) / t;
        if (!strcmp(recipes[r], "bf16")) bf16_tps = tps;
        char rel[32] = "-";
        if (bf16_tps > 0) snprintf(rel, sizeof rel, "%.2fx", tps / bf16_tps);
        printf("  %-14s %10.0f %9s %10.1f%% %10.1f%% %7.1f%%\n", recipes[r], tps, rel,
               100 * fqt_prof_get(FQT_PROF_QUANTIZE) / t, 100 * fqt_prof_get(FQT_PROF_DEQUANTIZE) / t,
               100 * fqt_prof_get(FQT_PROF_GEMM) / t);
    }
    fqt_model_free(&m);
    free(x);
    free(y);
    return 0;
}
