/* tools/cli.h — the subcommands of the `fqt` command line and their shared helpers.
 *
 * Each subcommand lives in tools/cmd_<name>.c as `int fqt_cmd_<name>(int argc, char **argv)`
 * (argv[0] is the subcommand name) and returns the process exit status. The CLI parses
 * options and calls the public API; nothing else. */
#ifndef FQT_TOOLS_CLI_H
#define FQT_TOOLS_CLI_H

#include "fqt/common.h"

int fqt_cmd_formats(int argc, char **argv);
int fqt_cmd_qdq(int argc, char **argv);
int fqt_cmd_report(int argc, char **argv);
int fqt_cmd_prepare(int argc, char **argv);
int fqt_cmd_train(int argc, char **argv);
int fqt_cmd_sample(int argc, char **argv);
int fqt_cmd_eval(int argc, char **argv);
int fqt_cmd_tokenize(int argc, char **argv);

/* Print "fqt <cmd>: <message>" to stderr; returns 2 (usage) for convenience. */
int cli_usage_error(const char *cmd, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
/* Print "fqt <cmd>: <what>: <fqt_last_error()>" to stderr; returns 1. */
int cli_fail(const char *cmd, const char *what);
/* Parse a non-negative integer option value; returns 0 on success. */
int cli_parse_i64(const char *s, int64_t *out);
int cli_parse_u64(const char *s, uint64_t *out);
int cli_parse_f64(const char *s, double *out);

/* ---- option parsing (tools/cli_opts.c) --------------------------------------------------
 * getopt_long conventions: `--key value` and `--key=value`, `-h` means `--help`, `--` ends
 * the options; anything not starting with '-' is positional (shell-expanded globs arrive
 * that way). Unknown options print one message with a "did you mean" suggestion. */
#include <stdbool.h>

typedef struct {
    const char *name; /* without the leading "--" */
    int has_arg;      /* 1: takes a value */
} cli_opt;

typedef struct {
    const char *cmd;
    int argc, i, nopts;
    char **argv;
    const cli_opt *opts;
    bool only_pos;
} cli_parser;

enum { CLI_POS = -1, CLI_END = -2, CLI_ERR = -3 };

void cli_parser_init(cli_parser *p, const char *cmd, int argc, char **argv, const cli_opt *opts,
                     int nopts);
/* The next argument: an index into opts (*val: its value or NULL), CLI_POS (*val: the
 * argument), CLI_END, or CLI_ERR after printing one message (exit status 2). */
int cli_next(cli_parser *p, const char **val);
/* The name among names[0..n) closest to word, or NULL if none is close. */
const char *cli_suggest(const char *word, const char *const *names, int n);

#endif
