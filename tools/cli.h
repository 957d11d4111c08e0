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

#endif
