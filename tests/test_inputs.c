/* tests/test_inputs.c — bounded inputs (issue 13, items 6-10): crafted vocabularies, sizes
 * that would overflow, reports of absurd metrics, FIFOs and huge headers, and values that
 * must be refused with a message rather than taken as is. Each check failed (crash, hang,
 * or silent acceptance) before the fix it names. Not for: the formats' normal behaviour
 * (test_text.c, test_report.c, test_json.c, test_safetensors.c). */
#include "check.h"

#include "fqt/bpe.h"
#include "fqt/fileio.h"
#include "fqt/generate.h"
#include "fqt/json.h"
#include "fqt/report.h"
#include "fqt/safetensors.h"
#include "fqt/sha512.h"
#include "fqt/svg.h"
#include "fqt/train.h"

#include <math.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

static char dir[256];

static const char *path_of(const char *name) {
    static char p[600];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return p;
}

static void put(const char *name, const void *d, size_t n) {
    FQT_ASSERT(fqt_write_file_atomic(path_of(name), d, n) == FQT_OK);
}

/* An fqt-bpe file with the given merge lines and a correct sha512. */
static void write_vocab(const char *name, int32_t m, const char *merge_lines) {
    fqt_buf b = {0};
    fqt_buf_printf(&b, "fqt-bpe 1\nvocab_size %d\nmerges %d\nspecials 1\n%sspecial %d <|endoftext|>\n", 257 + m, m,
                   merge_lines, 256 + m);
    unsigned char dig[FQT_SHA512_BYTES];
    char hex[2 * FQT_SHA512_BYTES + 1];
    fqt_sha512(b.s, b.len, dig);
    fqt_hex(dig, sizeof dig, hex);
    fqt_buf_printf(&b, "sha512 %s\n", hex);
    put(name, b.s, b.len);
    fqt_buf_free(&b);
}

static bool err_has(const char *s) { return strstr(fqt_last_error(), s) != NULL; }

/* item 6 */
static void test_vocab(void) {
    fqt_bpe *b = NULL;
    /* 70 merges each joining the last token with itself: 2^70 bytes */
    fqt_buf lines = {0};
    fqt_buf_printf(&lines, "97 97\n");
    for (int i = 1; i < 70; i++) fqt_buf_printf(&lines, "%d %d\n", 255 + i, 255 + i);
    write_vocab("double.bpe", 70, lines.s);
    fqt_buf_free(&lines);
    fqt_status st = fqt_bpe_load(path_of("double.bpe"), &b);
    CHECK_MSG(st == FQT_ERR_FORMAT && err_has("double.bpe") && err_has("bytes"), "%d %s", st, fqt_last_error());
    write_vocab("repeat.bpe", 2, "97 98\n97 98\n");
    st = fqt_bpe_load(path_of("repeat.bpe"), &b);
    CHECK_MSG(st == FQT_ERR_FORMAT && err_has("repeat.bpe") && err_has("repeats"), "%s", fqt_last_error());
    write_vocab("later.bpe", 2, "97 257\n97 98\n");
    st = fqt_bpe_load(path_of("later.bpe"), &b);
    CHECK_MSG(st == FQT_ERR_FORMAT && err_has("not defined yet"), "%s", fqt_last_error());
    /* a header claiming 2^31 - 300 merges is refused before anything is allocated */
    const char big[] = "fqt-bpe 1\nvocab_size 2147483347\nmerges 2147483090\nspecials 1\n0 0\n";
    put("big.bpe", big, sizeof big - 1);
    st = fqt_bpe_load(path_of("big.bpe"), &b);
    CHECK_MSG(st == FQT_ERR_FORMAT && err_has("at most"), "%s", fqt_last_error());
    int32_t rep[4] = {97, 98, 97, 98};
    CHECK(fqt_bpe_from_merges(rep, 2, &b) == FQT_ERR_FORMAT && err_has("repeats"));
    write_vocab("good.bpe", 2, "97 98\n256 99\n");
    CHECK_MSG(fqt_bpe_load(path_of("good.bpe"), &b) == FQT_OK, "%s", fqt_last_error());
    fqt_bpe_free(b);
}

/* item 7 */
static void test_sizes(void) {
    fqt_train_config c;
    fqt_train_config_default(&c);
    c.model.vocab = 64;
    CHECK(fqt_train_config_check(&c) == FQT_OK);
    c.log_every = 0;
    CHECK(fqt_train_config_check(&c) == FQT_ERR_ARG && err_has("log-every"));
    fqt_train_config_default(&c);
    c.batch = 4611686018427387904ll;
    CHECK(fqt_train_config_check(&c) == FQT_ERR_ARG && err_has("tokens per step"));
    fqt_train_config_default(&c);
    CHECK(fqt_train_config_set(&c, "dim", "65536") == FQT_OK && fqt_train_config_set(&c, "layers", "1000") == FQT_OK &&
          fqt_train_config_set(&c, "ffn", "262144") == FQT_OK);
    CHECK_MSG(fqt_train_config_check(&c) == FQT_ERR_ARG && err_has("parameters"), "%s", fqt_last_error());
    /* generate: a token count that would wrap the buffer size */
    fqt_model m = {0};
    fqt_model_config mc = {64, 32, 1, 2, 2, 64, 16, 10000.0f, 1e-5f};
    FQT_ASSERT(fqt_model_create(&m, &mc) == FQT_OK);
    fqt_model_init(&m, 1);
    fqt_recipe r;
    FQT_ASSERT(fqt_recipe_parse("fp32", &r) == FQT_OK);
    fqt_pass pass = {&r, FQT_MODE_FQT, 1, 0, NULL, false};
    fqt_sample_opts o = {0};
    o.temperature = 1.0f;
    int32_t prompt[1] = {1}, *out = NULL;
    int64_t nout = 0;
    CHECK(fqt_generate(&m, &pass, prompt, 1, INT64_MAX, &o, -1, &out, &nout) == FQT_ERR_ARG);
    o.temperature = NAN; /* item 10 */
    CHECK(fqt_generate(&m, &pass, prompt, 1, 4, &o, -1, &out, &nout) == FQT_ERR_ARG && err_has("temperature"));
    fqt_model_free(&m);
    /* item 10: AdamW betas */
    fqt_train_config_default(&c);
    c.model.vocab = 64;
    c.beta1 = 1;
    CHECK(fqt_train_config_check(&c) == FQT_ERR_ARG && err_has("beta"));
    c.beta1 = 0.9;
    c.beta2 = 2;
    CHECK(fqt_train_config_check(&c) == FQT_ERR_ARG && err_has("beta"));
}

/* item 8 */
static void test_report(void) {
    FQT_ASSERT(fqt_mkdir_p(path_of("rep")) == FQT_OK);
    const char rj[] = "{\"name\": \"x\", \"recipe\": \"nvfp4\", \"steps\": 10, \"tokens_per_step\": 64}\n";
    put("rep/run.json", rj, sizeof rj - 1);
    const char ml[] = "{\"kind\":\"train\",\"step\":1,\"tokens\":64,\"loss\":1e308}\n"
                      "{\"kind\":\"train\",\"step\":2,\"tokens\":128,\"loss\":-1e308}\n"
                      "{\"kind\":\"train\",\"step\":3,\"tokens\":192,\"loss\":2}\n"
                      "{\"kind\":\"val\",\"step\":3,\"tokens\":192,\"val_loss\":1e308}\n"
                      "{\"kind\":\"val\",\"step\":4,\"tokens\":256,\"val_loss\":-1e308}\n";
    put("rep/metrics.jsonl", ml, sizeof ml - 1);
    fqt_run_metrics rm;
    CHECK_MSG(fqt_run_metrics_load(path_of("rep"), &rm) == FQT_OK, "%s", fqt_last_error());
    for (int logx = 0; logx < 2; logx++) {
        fqt_report_plot_opts o = {.logx = logx, .ema_beta = -1};
        fqt_svg_figure *f = fqt_report_figure(&rm, 1, &o);
        fqt_buf b = {0};
        fqt_svg_render(f, &b); /* aborted in fqt_svg_nice_ticks before */
        CHECK(b.len > 0);
        fqt_buf_free(&b);
        fqt_svg_figure_free(f);
    }
    fqt_run_metrics_free(&rm);
    const char ov[] = "{\"kind\":\"train\",\"step\":9223372036854775}\n";
    const char rj2[] = "{\"name\": \"x\", \"recipe\": \"nvfp4\", \"steps\": 10, \"tokens_per_step\": 2048}\n";
    put("rep/run.json", rj2, sizeof rj2 - 1);
    put("rep/metrics.jsonl", ov, sizeof ov - 1);
    CHECK(fqt_run_metrics_load(path_of("rep"), &rm) == FQT_ERR_FORMAT && err_has("too large"));
    fqt_run_metrics_free(&rm);
    /* item 10: a line of NUL bytes is not blank */
    const char nul[] = "{\"kind\":\"train\",\"step\":1,\"loss\":2}\n\0\0\0\n";
    put("rep/metrics.jsonl", nul, sizeof nul - 1);
    CHECK_MSG(fqt_run_metrics_load(path_of("rep"), &rm) == FQT_ERR_FORMAT, "NUL line accepted");
    fqt_run_metrics_free(&rm);
}

/* item 9 (and the \u0000 of item 10) */
static void test_files(void) {
    FQT_ASSERT(mkfifo(path_of("fifo.json"), 0644) == 0);
    alarm(20); /* hung here before: open() waited for a writer */
    void *d = NULL;
    size_t n = 0;
    CHECK(fqt_read_file(path_of("fifo.json"), &d, &n) == FQT_ERR_IO && err_has("regular file"));
    fqt_st_file *f = NULL;
    CHECK(fqt_st_open(path_of("fifo.json"), &f) == FQT_ERR_IO && err_has("regular file"));
    alarm(0);
    /* a 20 MB header of zeros: refused after at most FQT_ST_MAX_HEADER_VALUES values */
    size_t hl = 20u << 20;
    char *h = malloc(hl + 8);
    for (int i = 0; i < 8; i++) h[i] = (char)((uint64_t)hl >> (8 * i));
    h[8] = '[';
    for (size_t i = 9; i + 1 < hl + 8; i += 2) { h[i] = '0'; h[i + 1] = ','; }
    h[hl + 7] = ']';
    put("wide.safetensors", h, hl + 8);
    free(h);
    CHECK_MSG(fqt_st_open(path_of("wide.safetensors"), &f) == FQT_ERR_FORMAT && err_has("too many values"), "%s",
              fqt_last_error());
    fqt_json *j = NULL;
    const char nj[] = "{\"a\\u0000b\": 1}";
    CHECK(fqt_json_parse(nj, sizeof nj - 1, &j) == FQT_ERR_FORMAT && err_has("u0000"));
}

int main(void) {
    snprintf(dir, sizeof dir, "/tmp/fqt_test_inputs_XXXXXX");
    if (!mkdtemp(dir)) return 1;
    test_vocab();
    test_sizes();
    test_report();
    test_files();
    if (!check_failed_) {
        char cmd[400];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd)) fprintf(stderr, "cleanup failed\n");
    }
    return check_finish();
}
