/* tests/test_eval.c — sampling and the model comparison behind `fqt eval`, and the `fqt qdq`
 * command line's handling of bad input. */
#include "check.h"
#include "fqt/generate.h"
#include "fqt/train.h"

#include <math.h>
#include <stdlib.h>
#include <unistd.h>

static void tiny(fqt_model *m, uint64_t seed) {
    fqt_model_config c = {50, 16, 2, 2, 1, 24, 16, 10000.0f, 1e-5f};
    FQT_ASSERT(fqt_model_create(m, &c) == FQT_OK);
    fqt_model_init(m, seed);
}

/* Run a shell command, return its exit status, capture stderr into err. */
static int run(const char *cmd, char *err, size_t n) {
    char full[2048];
    snprintf(full, sizeof full, "%s 2>/tmp/fqt_test_eval_err.txt >/dev/null", cmd);
    int st = system(full);
    FILE *f = fopen("/tmp/fqt_test_eval_err.txt", "r");
    size_t k = f ? fread(err, 1, n - 1, f) : 0;
    err[k] = 0;
    if (f) fclose(f);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Issue 13 item 10: eval and sample refuse a checkpoint whose weights hold NaN or Inf, with
 * the file, the tensor and the element in the message; a finite copy opens. */
static void test_nonfinite_checkpoint(void) {
    char dir[] = "/tmp/fqt_test_eval_XXXXXX";
    FQT_ASSERT(mkdtemp(dir));
    for (int bad = 0; bad < 3; bad++) {
        fqt_model m;
        tiny(&m, 5);
        const fqt_param_info *p = fqt_model_find(&m, "model.layers.1.mlp.up_proj.weight");
        FQT_ASSERT(p);
        if (bad) m.params[p->offset + 7] = bad == 1 ? NAN : -INFINITY;
        FQT_ASSERT(fqt_checkpoint_save_model(&m, dir) == FQT_OK);
        fqt_model_free(&m);
        fqt_model o;
        fqt_train_config tc;
        fqt_status st = fqt_checkpoint_open(dir, &o, &tc);
        if (!bad) {
            CHECK_MSG(st == FQT_OK, "finite checkpoint: %s", fqt_last_error());
            if (!st) fqt_model_free(&o);
            continue;
        }
        CHECK_MSG(st == FQT_ERR_NONFINITE, "checkpoint with %s weights opened (status %d)",
                  bad == 1 ? "NaN" : "-Inf", (int)st);
        CHECK_MSG(strstr(fqt_last_error(), "model.safetensors") && strstr(fqt_last_error(), "up_proj") &&
                      strstr(fqt_last_error(), "element 7"),
                  "message does not name the file, tensor and element: %s", fqt_last_error());
    }
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    FQT_ASSERT(system(cmd) == 0);
}

int main(void) {
    test_nonfinite_checkpoint();
    fqt_model a, b;
    tiny(&a, 1);
    tiny(&b, 2);
    /* fqt_model_linear_param maps each linear to the weight of the same Hugging Face name. */
    for (int64_t li = 0; li < a.n_linears; li++) {
        char want[200];
        snprintf(want, sizeof want, li == a.n_linears - 1 ? "%s.weight" : "model.%s.weight",
                 a.linear_names[li]);
        CHECK_MSG(!strcmp(fqt_model_linear_param(&a, li)->name, want), "linear %lld: %s vs %s",
                  (long long)li, fqt_model_linear_param(&a, li)->name, want);
    }
    fqt_recipe fp32, nv;
    CHECK(fqt_recipe_parse("fp32", &fp32) == FQT_OK);
    CHECK(fqt_recipe_parse("nvfp4,lm_head=quant", &nv) == FQT_OK);
    uint16_t tok[300];
    for (int i = 0; i < 300; i++) tok[i] = (uint16_t)((i * 7 + i / 13) % 50);

    /* A model against itself: KL exactly 0, top-1 agreement exactly 1, equal losses. */
    fqt_pass p = {&fp32, FQT_MODE_FQT, 0, 0, NULL, false};
    fqt_compare cmp;
    CHECK(fqt_compare_models(&a, &p, &a, &p, tok, 300, 4, 16, 1000, &cmp) == FQT_OK);
    CHECK_MSG(cmp.kl == 0.0 && cmp.top1 == 1.0 && cmp.loss_a == cmp.loss_b, "kl %g top1 %g", cmp.kl, cmp.top1);
    CHECK(cmp.tokens > 0 && cmp.tokens <= 1000);
    /* Two different models: KL > 0, and the losses equal the trainer's evaluation. */
    CHECK(fqt_compare_models(&a, &p, &b, &p, tok, 300, 4, 16, 1000, &cmp) == FQT_OK);
    CHECK(cmp.kl > 0.0 && cmp.top1 < 1.0);
    fqt_tokens t = {tok, 300};
    double la = fqt_eval_loss(&a, &t, 4, 16, cmp.tokens, &p);
    CHECK_MSG(fabs(la - cmp.loss_a) < 1e-4 * fabs(la), "eval %g vs compare %g", la, cmp.loss_a);
    /* The same weights under nvfp4 and fp32 forward passes differ, but only a little. */
    fqt_pass pq = {&nv, FQT_MODE_FQT, 0, 0, NULL, false};
    CHECK(fqt_compare_models(&a, &p, &a, &pq, tok, 300, 4, 16, 1000, &cmp) == FQT_OK);
    CHECK(cmp.kl > 0.0 && cmp.kl < 0.1);
    CHECK(fqt_compare_models(&a, &p, &a, &p, tok, 10, 4, 16, 1000, &cmp) == FQT_ERR_ARG);

    /* Sampling: reproducible in the seed, greedy = argmax, window sliding works, prompt checked. */
    int32_t prompt[3] = {1, 2, 3};
    int32_t *o1, *o2;
    int64_t n1, n2;
    fqt_sample_opts so = {0.9f, 10, 42, 8};
    CHECK(fqt_generate(&a, &p, prompt, 3, 20, &so, -1, &o1, &n1) == FQT_OK);
    CHECK(fqt_generate(&a, &p, prompt, 3, 20, &so, -1, &o2, &n2) == FQT_OK);
    CHECK(n1 == 23 && n2 == 23 && !memcmp(o1, o2, sizeof(int32_t) * 23) && !memcmp(o1, prompt, 12));
    free(o2);
    so.seed = 43;
    CHECK(fqt_generate(&a, &p, prompt, 3, 20, &so, -1, &o2, &n2) == FQT_OK);
    CHECK(memcmp(o1, o2, sizeof(int32_t) * 23) != 0);
    free(o1);
    free(o2);
    fqt_sample_opts greedy = {0.0f, 0, 1, 16};
    CHECK(fqt_generate(&a, &p, prompt, 3, 1, &greedy, -1, &o1, &n1) == FQT_OK);
    fqt_model_forward(&a, prompt, NULL, 1, 3, &p);
    const float *lg = fqt_model_logits(&a) + 2 * 50;
    int32_t best = 0;
    for (int v = 1; v < 50; v++) if (lg[v] > lg[best]) best = v;
    CHECK_MSG(o1[3] == best, "greedy %d argmax %d", o1[3], best);
    free(o1);
    int32_t badp[1] = {50};
    CHECK(fqt_generate(&a, &p, badp, 1, 1, &greedy, -1, &o1, &n1) == FQT_ERR_ARG);
    CHECK(fqt_generate(&a, &p, prompt, 0, 1, &greedy, -1, &o1, &n1) == FQT_ERR_ARG);
    fqt_model_free(&a);
    fqt_model_free(&b);

    /* fqt qdq: bad input is a clear error and a non-zero exit; good input round-trips. */
    const char *bin = getenv("FQT_BIN");
    if (!bin) {
        printf("SKIP qdq CLI: FQT_BIN not set\n");
    } else {
        char dir[] = "/tmp/fqt_test_evalXXXXXX", cmd[1500], err[4096], in[256], out[256];
        CHECK(mkdtemp(dir) != NULL);
        snprintf(in, sizeof in, "%s/x.f32", dir);
        snprintf(out, sizeof out, "%s/y.f32", dir);
        float x[48];
        for (int i = 0; i < 48; i++) x[i] = (float)(i - 20) * 0.3f;
        FILE *f = fopen(in, "wb");
        fwrite(x, 4, 48, f);
        fclose(f);
        snprintf(cmd, sizeof cmd, "%s qdq --format nvfp4 --cols 16 %s %s", bin, in, out);
        CHECK(run(cmd, err, sizeof err) == 0 && strstr(err, "snr") != NULL);
        float y[48];
        f = fopen(out, "rb");
        CHECK(f && fread(y, 4, 48, f) == 48);
        if (f) fclose(f);
        float ref[48];
        fqt_format nf;
        fqt_format_parse("nvfp4", &nf);
        fqt_qdq(&nf, x, ref, 3, 16, FQT_AXIS_ROWS, FQT_ROUND_RNE, 0, 0, NULL);
        CHECK(!memcmp(y, ref, sizeof ref));
        snprintf(cmd, sizeof cmd, "%s qdq --format nvfp4 --cols 7 %s %s", bin, in, out);
        CHECK(run(cmd, err, sizeof err) == 2 && strstr(err, "x.f32") && strstr(err, "multiple"));
        snprintf(cmd, sizeof cmd, "%s qdq --format nvfp9 --cols 16 %s %s", bin, in, out);
        CHECK(run(cmd, err, sizeof err) == 2 && strstr(err, "nvfp9") && strstr(err, "mxfp4"));
        snprintf(cmd, sizeof cmd, "%s qdq --format nvfp4 --cols 16 --rounding up %s %s", bin, in, out);
        CHECK(run(cmd, err, sizeof err) == 2 && strstr(err, "rounding"));
        snprintf(cmd, sizeof cmd, "%s qdq --format nvfp4 --cols 16 %s/missing %s", bin, dir, out);
        CHECK(run(cmd, err, sizeof err) == 1 && strstr(err, "missing"));
        snprintf(cmd, sizeof cmd, "%s formats", bin);
        CHECK(run(cmd, err, sizeof err) == 0);
        snprintf(cmd, sizeof cmd, "rm -rf %s /tmp/fqt_test_eval_err.txt", dir);
        CHECK(system(cmd) == 0);
    }
    return check_finish();
}
