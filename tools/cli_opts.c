/* tools/cli_opts.c — the one option parser of the fqt command line: GNU getopt_long
 * conventions (`--key value`, `--key=value`, `--` ends the options, `-h` for `--help`),
 * positional arguments anywhere, and "did you mean" for unknown options. Each subcommand
 * describes its options in a cli_opt table and loops over cli_next. Not for: what the
 * options mean (the subcommands and the library). */
#include "cli.h"

#include <string.h>

/* Edit distance of a and b (both short option names), capped at 31 characters. */
static int edit_distance(const char *a, const char *b) {
    int la = (int)strlen(a), lb = (int)strlen(b);
    if (la > 31) la = 31;
    if (lb > 31) lb = 31;
    int d[32][32];
    for (int i = 0; i <= la; i++) d[i][0] = i;
    for (int j = 0; j <= lb; j++) d[0][j] = j;
    for (int i = 1; i <= la; i++)
        for (int j = 1; j <= lb; j++) {
            int sub = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            int del = d[i - 1][j] + 1, ins = d[i][j - 1] + 1;
            d[i][j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
        }
    return d[la][lb];
}

const char *cli_suggest(const char *word, const char *const *names, int n) {
    const char *best = NULL;
    int bestd = 1 << 30;
    size_t lw = strlen(word);
    for (int i = 0; i < n; i++) {
        int d = edit_distance(word, names[i]);
        /* A unique-looking prefix ("--val" for "--val-every") counts as close. */
        if (lw >= 3 && !strncmp(names[i], word, lw)) d = d < 1 ? d : 1;
        if (d < bestd) {
            bestd = d;
            best = names[i];
        }
    }
    int limit = lw <= 4 ? 1 : lw <= 8 ? 2 : 3;
    return bestd <= limit ? best : NULL;
}

void cli_parser_init(cli_parser *p, const char *cmd, int argc, char **argv, const cli_opt *opts,
                     int nopts) {
    memset(p, 0, sizeof *p);
    p->cmd = cmd;
    p->argc = argc;
    p->argv = argv;
    p->i = 1;
    p->opts = opts;
    p->nopts = nopts;
}

int cli_next(cli_parser *p, const char **val) {
    *val = NULL;
    if (p->i >= p->argc) return CLI_END;
    const char *a = p->argv[p->i++];
    if (p->only_pos || a[0] != '-' || !a[1]) {
        *val = a;
        return CLI_POS;
    }
    if (!strcmp(a, "--")) {
        p->only_pos = true;
        return cli_next(p, val);
    }
    if (!strcmp(a, "-h")) a = "--help";
    if (strncmp(a, "--", 2)) {
        fprintf(stderr, "fqt %s: unknown option '%s' (options are --KEY VALUE or --KEY=VALUE; see "
                        "fqt %s --help)\n", p->cmd, a, p->cmd);
        return CLI_ERR;
    }
    const char *name = a + 2, *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    for (int k = 0; k < p->nopts; k++) {
        if (strlen(p->opts[k].name) != len || strncmp(p->opts[k].name, name, len)) continue;
        if (!p->opts[k].has_arg) {
            if (eq) {
                fprintf(stderr, "fqt %s: --%s takes no value (got '%s')\n", p->cmd, p->opts[k].name, a);
                return CLI_ERR;
            }
            return k;
        }
        if (eq) {
            *val = eq + 1;
            return k;
        }
        if (p->i >= p->argc) {
            fprintf(stderr, "fqt %s: --%s needs a value (--%s VALUE or --%s=VALUE)\n", p->cmd,
                    p->opts[k].name, p->opts[k].name, p->opts[k].name);
            return CLI_ERR;
        }
        *val = p->argv[p->i++];
        return k;
    }
    char word[128];
    snprintf(word, sizeof word, "%.*s", (int)(len < 127 ? len : 127), name);
    const char *names[256];
    int nn = 0;
    for (int k = 0; k < p->nopts && nn < 256; k++) names[nn++] = p->opts[k].name;
    const char *s = cli_suggest(word, names, nn);
    if (s)
        fprintf(stderr, "fqt %s: unknown option '--%s' (did you mean --%s?)\n", p->cmd, word, s);
    else
        fprintf(stderr, "fqt %s: unknown option '--%s' (see fqt %s --help)\n", p->cmd, word, p->cmd);
    return CLI_ERR;
}
