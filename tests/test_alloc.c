/* tests/test_alloc.c — the training step allocates nothing once it has run once.
 *
 * This binary replaces malloc, calloc, realloc, posix_memalign and aligned_alloc for the whole
 * process (symbols of the executable take precedence over libc's, also for libfqt.a and the
 * OpenMP runtime) with counting wrappers around glibc's own entry points. It then runs a small
 * model's step — forward, backward, the gradient norm and the fused AdamW through the CPU
 * backend — under several recipes and both modes, twice to size the workspaces and scratch
 * buffers, and checks that three more steps of each allocate nothing. Skipped under the
 * sanitizers, which replace malloc themselves. Not for: what the step computes (test_model.c). */
#include "check.h"

#ifdef FQT_SANITIZE
int main(void) {
    printf("SKIP test_alloc: the sanitizers own malloc\n");
    return check_finish();
}
#else

#include "fqt/backend.h"
#include "fqt/model.h"

#include <errno.h>
#include <math.h>
#include <stdatomic.h>

extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

static atomic_long n_alloc;

void *malloc(size_t n) {
    atomic_fetch_add(&n_alloc, 1);
    return __libc_malloc(n);
}
void *calloc(size_t a, size_t b) {
    atomic_fetch_add(&n_alloc, 1);
    return __libc_calloc(a, b);
}
void *realloc(void *p, size_t n) {
    atomic_fetch_add(&n_alloc, 1);
    return __libc_realloc(p, n);
}
void free(void *p) { __libc_free(p); }
int posix_memalign(void **p, size_t align, size_t n) {
    atomic_fetch_add(&n_alloc, 1);
    *p = __libc_memalign(align, n);
    return *p ? 0 : ENOMEM;
}
void *aligned_alloc(size_t align, size_t n) {
    atomic_fetch_add(&n_alloc, 1);
    return __libc_memalign(align, n);
}

/* One optimizer step as the run loop does it (core/train.c): forward and backward of each
 * micro-batch, the gradient norm from the chunk partials, the AdamW dry run and update. */
static void step(fqt_model *m, const fqt_pass *pass, const int32_t *x, const int32_t *y, int64_t B, int64_t T,
                 float *mom, float *vel, const fqt_adamw_args *a, double *part) {
    fqt_model_zero_grad(m);
    for (int micro = 0; micro < 2; micro++) {
        double l = fqt_model_forward(m, x, y, B, T, pass);
        FQT_ASSERT(isfinite(l));
        fqt_model_backward(m, pass, 0.5f);
    }
    (void)fqt_backend_sumsq(m->be, m->grads, NULL, m->n_params, part);
    fqt_adamw_args dry = *a;
    dry.check_only = true;
    FQT_ASSERT(m->be->adamw(m->params, m->grads, mom, vel, 0, m->n_params, &dry) == 0);
    (void)m->be->adamw(m->params, m->grads, mom, vel, 0, m->n_params, a);
}

int main(void) {
    fqt_model_config c = {64, 32, 3, 4, 2, 64, 32, 10000.0f, 1e-5f};
    fqt_model m;
    FQT_ASSERT(fqt_model_create(&m, &c) == FQT_OK);
    fqt_model_init(&m, 3);
    const int64_t B = 2, T = 17, N = B * T; /* T odd: every 4-bit row has a padding nibble */
    int32_t x[2 * 17], y[2 * 17];
    for (int64_t i = 0; i < N; i++) {
        x[i] = (int32_t)((i * 7 + 3) % 64);
        y[i] = (int32_t)((i * 5 + 1) % 64);
    }
    float *mom = fqt_xcalloc((size_t)m.n_params, 4), *vel = fqt_xcalloc((size_t)m.n_params, 4);
    double *part = fqt_xcalloc((size_t)(m.n_params / FQT_SUMSQ_CHUNK + 2), 8);
    fqt_param_segment *segs = fqt_xcalloc((size_t)m.n_tensors, sizeof *segs);
    for (int i = 0; i < m.n_tensors; i++) segs[i] = (fqt_param_segment){m.tensors[i].offset, m.tensors[i].numel, true};
    const fqt_adamw_args a = {1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, 0.1f, 0.05f, 1.0f, segs, m.n_tensors, false};
    const char *recipes[] = {"fp32", "bf16", "nvfp4", "mxfp4", "fp8", "nvfp4-nvidia", "int4"};
    fqt_recipe r[7];
    for (int i = 0; i < 7; i++) FQT_ASSERT(fqt_recipe_parse(recipes[i], &r[i]) == FQT_OK);
    fqt_diag diag;
    FQT_ASSERT(fqt_diag_alloc(&diag, m.n_linears) == FQT_OK);
    /* Warm-up: every recipe and mode once (the workspace grows to the largest), then the
     * measured round. */
    for (int round = 0; round < 2; round++)
        for (int i = 0; i < 7; i++)
            for (int mode = 0; mode < FQT_MODE_COUNT; mode++) {
                fqt_pass pass = {&r[i], (fqt_mode)mode, 11, (uint32_t)(round * 100 + i), i == 2 ? &diag : NULL, false};
                if (round == 0) {
                    step(&m, &pass, x, y, B, T, mom, vel, &a, part);
                    step(&m, &pass, x, y, B, T, mom, vel, &a, part);
                    continue;
                }
                const long before = atomic_load(&n_alloc);
                for (int k = 0; k < 3; k++) step(&m, &pass, x, y, B, T, mom, vel, &a, part);
                const long got = atomic_load(&n_alloc) - before;
                CHECK_MSG(got == 0, "%s %s: %ld allocations in 3 steps after warm-up", recipes[i],
                          mode ? "qat" : "fqt", got);
            }
    fqt_diag_free(&diag);
    fqt_model_free(&m);
    free(mom), free(vel), free(part), free(segs);
    return check_finish();
}
#endif
