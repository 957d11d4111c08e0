/* tools/cmd_sample.c — `fqt sample`: generate text from a checkpoint. */
#include "cli.h"
#include "fqt/bpe.h"
#include "fqt/generate.h"
#include "fqt/train.h"

#include <string.h>
#include <unistd.h>

static int usage(void) {
    printf("usage: fqt sample --ckpt DIR --prompt TEXT [--max-tokens N] [--temperature T]\n"
           "                  [--top-k K] [--seed N] [--vocab FILE] [--recipe R] [--device D]\n\n"
           "Generates text from a checkpoint (a run directory or its ckpt/). The tokenizer and\n"
           "the forward-pass recipe default to the ones the run was trained with. Defaults:\n"
           "--max-tokens 100 --temperature 0.8 --top-k 40 --seed 1 --device auto (the GPU when\n"
           "one is present; cpu or cuda to choose).\n");
    return 0;
}

int fqt_cmd_sample(int argc, char **argv) {
    const char *ckpt = NULL, *prompt = NULL, *vocab = NULL, *recipe_s = NULL, *device = "auto";
    int64_t max_tokens = 100, top_k = 40;
    uint64_t seed = 1;
    double temp = 0.8;
    static const cli_opt opts[] = {{"help", 0}, {"ckpt", 1}, {"prompt", 1}, {"vocab", 1}, {"recipe", 1},
                                   {"max-tokens", 1}, {"top-k", 1}, {"seed", 1}, {"temperature", 1},
                                   {"device", 1}};
    cli_parser p;
    cli_parser_init(&p, "sample", argc, argv, opts, (int)(sizeof opts / sizeof opts[0]));
    for (;;) {
        const char *v;
        int k = cli_next(&p, &v);
        if (k == CLI_END) break;
        if (k == CLI_ERR) return 2;
        if (k == CLI_POS) return cli_usage_error("sample", "unexpected argument '%s' (see fqt sample --help)", v);
        switch (k) {
        case 0: return usage();
        case 1: ckpt = v; break;
        case 2: prompt = v; break;
        case 3: vocab = v; break;
        case 4: recipe_s = v; break;
        case 5: if (cli_parse_i64(v, &max_tokens)) return cli_usage_error("sample", "bad --max-tokens '%s'", v); break;
        case 6: if (cli_parse_i64(v, &top_k)) return cli_usage_error("sample", "bad --top-k '%s'", v); break;
        case 7: if (cli_parse_u64(v, &seed)) return cli_usage_error("sample", "bad --seed '%s'", v); break;
        case 8: if (cli_parse_f64(v, &temp) || temp < 0) return cli_usage_error("sample", "bad --temperature '%s'", v); break;
        case 9: device = v; break;
        }
    }
    if (!ckpt || !prompt) return cli_usage_error("sample", "--ckpt and --prompt are required");
    fqt_model m;
    fqt_train_config tc;
    const fqt_backend *be = fqt_backend_get(device);
    if (!be) return cli_usage_error("sample", "%s", fqt_last_error());
    if (fqt_checkpoint_open_on(ckpt, &m, &tc, be)) return cli_fail("sample", "loading the checkpoint");
    int rc = 1;
    fqt_bpe *bpe = NULL;
    fqt_recipe r;
    int32_t *ids = NULL, *out = NULL;
    int64_t nids = 0, nout = 0;
    unsigned char *text = NULL;
    size_t nt = 0;
    /* The tokenizer the checkpoint carries, else the one its run recorded. */
    char own[4400], dir[4200];
    const char *vpath = vocab ? vocab : tc.vocab;
    if (!vocab && !fqt_checkpoint_resolve(ckpt, dir, sizeof dir)) {
        const char *names[] = {"tokenizer.bpe", "r50k_base.tiktoken"};
        for (int i = 0; i < 2; i++) {
            snprintf(own, sizeof own, "%s/%s", dir, names[i]);
            if (!access(own, R_OK)) { vpath = own; break; }
        }
    }
    if (fqt_recipe_parse(recipe_s ? recipe_s : tc.recipe, &r)) {
        rc = cli_usage_error("sample", "%s", fqt_last_error());
        goto out;
    }
    if (!vpath[0]) {
        rc = cli_usage_error("sample", "no tokenizer recorded for this run; pass --vocab FILE");
        goto out;
    }
    if (fqt_bpe_load(vpath, &bpe)) { rc = cli_fail("sample", "loading the tokenizer"); goto out; }
    if (fqt_bpe_vocab_size(bpe) > m.cfg.vocab) {
        fprintf(stderr, "fqt sample: %s has %d tokens but the model only %lld: not this model's tokenizer\n",
                vpath, fqt_bpe_vocab_size(bpe), (long long)m.cfg.vocab);
        goto out;
    }
    if (fqt_bpe_encode(bpe, prompt, strlen(prompt), 0, &ids, &nids)) { rc = cli_fail("sample", "encoding the prompt"); goto out; }
    if (!nids) { rc = cli_usage_error("sample", "the prompt encodes to no tokens; give some text"); goto out; }
    fqt_pass pass = {&r, FQT_MODE_FQT, seed, 0, NULL, false};
    fqt_sample_opts o = {(float)temp, (int32_t)top_k, seed, m.cfg.ctx};
    if (fqt_generate(&m, &pass, ids, nids, max_tokens, &o, fqt_bpe_eot(bpe), &out, &nout) ||
        fqt_bpe_decode(bpe, out, nout, &text, &nt)) {
        rc = cli_fail("sample", "generating");
        goto out;
    }
    fwrite(text, 1, nt, stdout);
    printf("\n");
    rc = 0;
out:
    free(ids);
    free(out);
    free(text);
    fqt_bpe_free(bpe);
    fqt_model_free(&m);
    return rc;
}
