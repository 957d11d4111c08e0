/* tools/fqt.c — entry point of the `fqt` command line: dispatches to a subcommand. */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    const char *name;
    int (*fn)(int argc, char **argv);
    const char *help;
} command;

static const command commands[] = {
    {"formats", fqt_cmd_formats, "list every number format with its value grid and scale rule"},
    {"qdq", fqt_cmd_qdq, "quantize-dequantize a raw float32 file, diagnostics to stderr"},
    {"report", fqt_cmd_report, "compare training runs: table of final losses and an SVG plot"},
    {"train", fqt_cmd_train, "train a model with fully quantized FP4 training (the main job)"},
    {"sample", fqt_cmd_sample, "generate text from a checkpoint"},
    {"eval", fqt_cmd_eval, "validation loss of checkpoints; KL and top-1 agreement of two"},
    {"prepare", fqt_cmd_prepare, "download the default corpus, train its BPE, write shards"},
    {"tokenize", fqt_cmd_tokenize, "tokenize a text file into llm.c shards"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: fqt <command> [options]   (fqt <command> --help for its options;\n"
               "       fqt --version)\n\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
}

int cli_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "fqt %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return 2;
}

int cli_fail(const char *cmd, const char *what) {
    fprintf(stderr, "fqt %s: %s: %s\n", cmd, what, fqt_last_error());
    return 1;
}

int cli_parse_u64(const char *s, uint64_t *out) {
    if (!s || !*s || *s == '-') return -1;
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 0);
    if (errno || *end) return -1;
    *out = v;
    return 0;
}

int cli_parse_i64(const char *s, int64_t *out) {
    uint64_t v;
    if (cli_parse_u64(s, &v) || v > INT64_MAX) return -1;
    *out = (int64_t)v;
    return 0;
}

int cli_parse_f64(const char *s, double *out) {
    if (!s || !*s) return -1;
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || *end) return -1;
    *out = v;
    return 0;
}

int main(int argc, char **argv) {
    fqt_omp_wait_policy_default(argv);
    if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help") ||
        !strcmp(argv[1], "help")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version") || !strcmp(argv[1], "-V") || !strcmp(argv[1], "version")) {
        printf("fqt %s (commit %s)\n", fqt_version(), fqt_git_commit());
        return 0;
    }
    const size_t nc = sizeof commands / sizeof commands[0];
    for (size_t i = 0; i < nc; i++)
        if (!strcmp(argv[1], commands[i].name)) return commands[i].fn(argc - 1, argv + 1);
    const char *names[sizeof commands / sizeof commands[0]];
    for (size_t i = 0; i < nc; i++) names[i] = commands[i].name;
    const char *s = cli_suggest(argv[1][0] == '-' ? argv[1] + strspn(argv[1], "-") : argv[1], names, (int)nc);
    if (s) fprintf(stderr, "fqt: unknown command '%s' (did you mean '%s'?)\n", argv[1], s);
    else fprintf(stderr, "fqt: unknown command '%s'\n\n", argv[1]);
    if (!s) usage(stderr);
    return 2;
}
