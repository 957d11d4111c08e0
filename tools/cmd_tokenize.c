/* tools/cmd_tokenize.c — `fqt tokenize`: one text file into llm.c shards with a saved BPE
 * vocabulary (fqt-bpe or GPT-2's r50k_base.tiktoken). Parses options, calls the library. */
#include "cli.h"
#include "fqt/corpus.h"

#include <limits.h>
#include <string.h>

static void usage(FILE *f) {
    fprintf(f,
            "usage: fqt tokenize --vocab FILE [--allow-special] [--prefix NAME] IN.txt OUT_DIR\n"
            "  Writes OUT_DIR/NAME_000.bin (default NAME: IN's file name without extension):\n"
            "  <|endoftext|> followed by the text's tokens. FILE is an fqt-bpe vocabulary\n"
            "  (fqt prepare writes one) or GPT-2's r50k_base.tiktoken. --allow-special turns\n"
            "  the text \"<|endoftext|>\" in the input into the special token. OUT_DIR gets a copy\n"
            "  of the tokenizer and a manifest.json naming it (fqt train reads it); a folder\n"
            "  whose manifest names another tokenizer is refused.\n");
}

int fqt_cmd_tokenize(int argc, char **argv) {
    const char *vocab = NULL, *in = NULL, *out = NULL, *prefix = NULL;
    int allow_special = 0;
    static const cli_opt opts[] = {{"help", 0}, {"vocab", 1}, {"prefix", 1}, {"allow-special", 0}};
    cli_parser p;
    cli_parser_init(&p, "tokenize", argc, argv, opts, 4);
    for (;;) {
        const char *v;
        int k = cli_next(&p, &v);
        if (k == CLI_END) break;
        if (k == CLI_ERR) return 2;
        if (k == 0) { usage(stdout); return 0; }
        if (k == 1) vocab = v;
        else if (k == 2) prefix = v;
        else if (k == 3) allow_special = 1;
        else if (!in) in = v;
        else if (!out) out = v;
        else {
            usage(stderr);
            return cli_usage_error("tokenize", "unexpected argument '%s'", v);
        }
    }
    if (!vocab || !in || !out) {
        usage(stderr);
        return cli_usage_error("tokenize", "need --vocab FILE, IN.txt and OUT_DIR");
    }
    char stem[NAME_MAX + 1];
    if (!prefix) {
        const char *base = strrchr(in, '/') ? strrchr(in, '/') + 1 : in;
        snprintf(stem, sizeof stem, "%s", base);
        char *dot = strrchr(stem, '.');
        if (dot && dot != stem) *dot = '\0';
        if (!stem[0]) snprintf(stem, sizeof stem, "tokens");
        prefix = stem;
    }
    fqt_bpe *bpe;
    if (fqt_bpe_load(vocab, &bpe) != FQT_OK) return cli_fail("tokenize", "cannot load vocabulary");
    int64_t ntok;
    int32_t nsh;
    /* The shards' folder names its tokenizer (manifest.json), so fqt train finds it. */
    fqt_status st = fqt_data_manifest_adopt(out, vocab, bpe, 1);
    if (st == FQT_OK) st = fqt_tokenize_file(bpe, in, out, prefix, allow_special, &ntok, &nsh);
    if (st == FQT_OK) st = fqt_data_manifest_adopt(out, vocab, bpe, 0);
    fqt_bpe_free(bpe);
    if (st != FQT_OK) return cli_fail("tokenize", "failed");
    printf("%s: %lld tokens in %d shard%s %s/%s_000.bin%s\n", in, (long long)ntok, nsh,
           nsh == 1 ? "" : "s", out, prefix, nsh > 1 ? " ..." : "");
    return 0;
}
