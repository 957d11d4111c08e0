/* tools/cmd_sample.c — `fqt sample`: generate text from a checkpoint. */
#include "cli.h"
#include "fqt/bpe.h"
#include "fqt/generate.h"
#include "fqt/train.h"

#include <string.h>

static int usage(void) {
    printf("usage: fqt sample --ckpt DIR --prompt TEXT [--max-tokens N] [--temperature T]\n"
           "                  [--top-k K] [--seed N] [--vocab FILE] [--recipe R]\n\n"
           "Generates text from a checkpoint (a run directory or its ckpt/). The tokenizer and\n"
           "the forward-pass recipe default to the ones the run was trained with. Defaults:\n"
           "--max-tokens 100 --temperature 0.8 --top-k 40 --seed 1.\n");
    return 0;
}

int fqt_cmd_sample(int argc, char **argv) {
    const char *ckpt = NULL, *prompt = NULL, *vocab = NULL, *recipe_s = NULL;
    int64_t max_tokens = 100, top_k = 40;
    uint64_t seed = 1;
    double temp = 0.8;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) return usage();
        if (!v) return cli_usage_error("sample", "%s needs a value (see fqt sample --help)", a);
        i++;
        if (!strcmp(a, "--ckpt")) ckpt = v;
        else if (!strcmp(a, "--prompt")) prompt = v;
        else if (!strcmp(a, "--vocab")) vocab = v;
        else if (!strcmp(a, "--recipe")) recipe_s = v;
        else if (!strcmp(a, "--max-tokens")) { if (cli_parse_i64(v, &max_tokens)) return cli_usage_error("sample", "bad --max-tokens '%s'", v); }
        else if (!strcmp(a, "--top-k")) { if (cli_parse_i64(v, &top_k)) return cli_usage_error("sample", "bad --top-k '%s'", v); }
        else if (!strcmp(a, "--seed")) { if (cli_parse_u64(v, &seed)) return cli_usage_error("sample", "bad --seed '%s'", v); }
        else if (!strcmp(a, "--temperature")) { if (cli_parse_f64(v, &temp) || temp < 0) return cli_usage_error("sample", "bad --temperature '%s'", v); }
        else return cli_usage_error("sample", "unknown option '%s' (see fqt sample --help)", a);
    }
    if (!ckpt || !prompt) return cli_usage_error("sample", "--ckpt and --prompt are required");
    fqt_model m;
    fqt_train_config tc;
    if (fqt_checkpoint_open(ckpt, &m, &tc)) return cli_fail("sample", "loading the checkpoint");
    int rc = 1;
    fqt_bpe *bpe = NULL;
    fqt_recipe r;
    int32_t *ids = NULL, *out = NULL;
    int64_t nids = 0, nout = 0;
    unsigned char *text = NULL;
    size_t nt = 0;
    const char *vpath = vocab ? vocab : tc.vocab;
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
    fqt_pass pass = {&r, FQT_MODE_FQT, seed, 0, NULL};
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
