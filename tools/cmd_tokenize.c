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
            "  the text \"<|endoftext|>\" in the input into the special token.\n");
}

int fqt_cmd_tokenize(int argc, char **argv) {
    const char *vocab = NULL, *in = NULL, *out = NULL, *prefix = NULL;
    int allow_special = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--vocab") && i + 1 < argc) {
            vocab = argv[++i];
        } else if (!strcmp(argv[i], "--prefix") && i + 1 < argc) {
            prefix = argv[++i];
        } else if (!strcmp(argv[i], "--allow-special")) {
            allow_special = 1;
        } else if (argv[i][0] == '-' && argv[i][1]) {
            usage(stderr);
            return cli_usage_error("tokenize", "unknown or incomplete option '%s'", argv[i]);
        } else if (!in) {
            in = argv[i];
        } else if (!out) {
            out = argv[i];
        } else {
            usage(stderr);
            return cli_usage_error("tokenize", "unexpected argument '%s'", argv[i]);
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
    fqt_status st = fqt_tokenize_file(bpe, in, out, prefix, allow_special, &ntok, &nsh);
    fqt_bpe_free(bpe);
    if (st != FQT_OK) return cli_fail("tokenize", "failed");
    printf("%s: %lld tokens in %d shard%s %s/%s_000.bin%s\n", in, (long long)ntok, nsh,
           nsh == 1 ? "" : "s", out, prefix, nsh > 1 ? " ..." : "");
    return 0;
}
