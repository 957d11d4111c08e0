/* tools/cmd_eval.c — `fqt eval`: validation loss and perplexity of one or two checkpoints,
 * and for two the mean KL divergence of their next-token distributions and their top-1
 * agreement. */
#include "cli.h"
#include "fqt/fileio.h"
#include "fqt/generate.h"
#include "fqt/train.h"

#include <math.h>
#include <string.h>

static int usage(void) {
    printf("usage: fqt eval --ckpt A [--ckpt B] [--val-data GLOB] [--tokens N] [--seq T]\n"
           "                [--batch B] [--recipe R] [--device auto|cpu|cuda]\n\n"
           "Validation loss and perplexity of each checkpoint on the validation shards (default:\n"
           "the first run's --val-data). With two checkpoints also KL(A || B) in nats per token\n"
           "and how often their most likely next tokens agree. Each model runs its forward pass\n"
           "with its own training recipe unless --recipe is given. Defaults: --tokens 65536.\n"
           "--dump-logits PREFIX (one checkpoint): also write the first window's token ids to\n"
           "PREFIX.tokens.i32 and its logits [T, V] to PREFIX.logits.f32 (raw little-endian), for\n"
           "scripts/check_hf.py.\n");
    return 0;
}

int fqt_cmd_eval(int argc, char **argv) {
    const char *ck[2] = {NULL, NULL}, *val = NULL, *recipe_s = NULL, *dump = NULL, *device = "auto";
    int nck = 0;
    int64_t tokens = 65536, seq = 0, batch = 8;
    static const cli_opt opts[] = {{"help", 0}, {"ckpt", 1}, {"val-data", 1}, {"dump-logits", 1}, {"recipe", 1},
                                   {"tokens", 1}, {"seq", 1}, {"batch", 1}, {"device", 1}};
    cli_parser cp;
    cli_parser_init(&cp, "eval", argc, argv, opts, (int)(sizeof opts / sizeof opts[0]));
    for (;;) {
        const char *v;
        int k = cli_next(&cp, &v);
        if (k == CLI_END) break;
        if (k == CLI_ERR) return 2;
        if (k == CLI_POS) return cli_usage_error("eval", "unexpected argument '%s' (see fqt eval --help)", v);
        switch (k) {
        case 0: return usage();
        case 1:
            if (nck == 2) return cli_usage_error("eval", "at most two --ckpt");
            ck[nck++] = v;
            break;
        case 2: val = v; break;
        case 3: dump = v; break;
        case 4: recipe_s = v; break;
        case 5: if (cli_parse_i64(v, &tokens) || tokens <= 0) return cli_usage_error("eval", "bad --tokens '%s'", v); break;
        case 6: if (cli_parse_i64(v, &seq) || seq <= 0) return cli_usage_error("eval", "bad --seq '%s'", v); break;
        case 7: if (cli_parse_i64(v, &batch) || batch <= 0) return cli_usage_error("eval", "bad --batch '%s'", v); break;
        case 8: device = v; break;
        }
    }
    if (!nck) return cli_usage_error("eval", "--ckpt is required");
    fqt_model m[2];
    fqt_train_config tc[2];
    fqt_recipe r[2];
    fqt_tokens data = {0};
    int rc = 1, loaded = 0;
    const fqt_backend *be = fqt_backend_get(device);
    if (!be) return cli_usage_error("eval", "%s", fqt_last_error());
    for (; loaded < nck; loaded++) {
        if (fqt_checkpoint_open_on(ck[loaded], &m[loaded], &tc[loaded], be)) {
            char what[300];
            snprintf(what, sizeof what, "loading %s", ck[loaded]);
            rc = cli_fail("eval", what);
            goto out;
        }
        if (fqt_recipe_parse(recipe_s ? recipe_s : tc[loaded].recipe, &r[loaded])) {
            rc = cli_usage_error("eval", "%s", fqt_last_error());
            loaded++;
            goto out;
        }
    }
    if (!seq) seq = tc[0].seq < m[0].cfg.ctx ? tc[0].seq : m[0].cfg.ctx;
    for (int i = 0; i < nck; i++)
        if (seq > m[i].cfg.ctx) { rc = cli_usage_error("eval", "--seq %lld exceeds %s's context %lld", (long long)seq, ck[i], (long long)m[i].cfg.ctx); goto out; }
    if (nck == 2 && m[0].cfg.vocab != m[1].cfg.vocab) {
        fprintf(stderr, "fqt eval: %s and %s have different vocabularies (%lld vs %lld)\n", ck[0], ck[1],
                (long long)m[0].cfg.vocab, (long long)m[1].cfg.vocab);
        goto out;
    }
    if (fqt_tokens_load(&data, val ? val : tc[0].val_data, m[0].cfg.vocab)) { rc = cli_fail("eval", "loading validation data"); goto out; }
    if (nck == 1) {
        fqt_pass p = {&r[0], FQT_MODE_FQT, 0, 0, NULL, false};
        double l = fqt_eval_loss(&m[0], &data, batch, seq, tokens, &p);
        printf("%s: val loss %.4f, perplexity %.2f (recipe %s, %lld tokens)\n", ck[0], l, exp(l), r[0].name,
               (long long)(tokens < data.n ? tokens : data.n - 1));
        if (dump) {
            if (data.n < seq) { rc = cli_usage_error("eval", "too little data to dump %lld tokens", (long long)seq); goto out; }
            int32_t *x = fqt_xmalloc((size_t)seq * sizeof(int32_t));
            for (int64_t t = 0; t < seq; t++) x[t] = data.tok[t];
            fqt_model_forward(&m[0], x, NULL, 1, seq, &p);
            char path[1200];
            snprintf(path, sizeof path, "%s.tokens.i32", dump);
            fqt_status st = fqt_write_file_atomic(path, x, (size_t)seq * sizeof(int32_t));
            snprintf(path, sizeof path, "%s.logits.f32", dump);
            if (!st) st = fqt_write_file_atomic(path, fqt_model_logits(&m[0]), (size_t)(seq * m[0].cfg.vocab) * sizeof(float));
            free(x);
            if (st) { rc = cli_fail("eval", "writing the logits"); goto out; }
            printf("wrote %s.tokens.i32 and %s.logits.f32 (%lld tokens)\n", dump, dump, (long long)seq);
        }
    } else {
        fqt_pass pa = {&r[0], FQT_MODE_FQT, 0, 0, NULL, false}, pb = {&r[1], FQT_MODE_FQT, 0, 0, NULL, false};
        fqt_compare cmp;
        if (fqt_compare_models(&m[0], &pa, &m[1], &pb, data.tok, data.n, batch, seq, tokens, &cmp)) {
            rc = cli_fail("eval", "comparing");
            goto out;
        }
        printf("A %s: val loss %.4f, perplexity %.2f (recipe %s)\n", ck[0], cmp.loss_a, exp(cmp.loss_a), r[0].name);
        printf("B %s: val loss %.4f, perplexity %.2f (recipe %s)\n", ck[1], cmp.loss_b, exp(cmp.loss_b), r[1].name);
        printf("KL(A || B) %.5f nats/token, top-1 agreement %.2f%% over %lld tokens\n", cmp.kl,
               100.0 * cmp.top1, (long long)cmp.tokens);
    }
    rc = 0;
out:
    for (int i = 0; i < loaded; i++) fqt_model_free(&m[i]);
    fqt_tokens_free(&data);
    return rc;
}
