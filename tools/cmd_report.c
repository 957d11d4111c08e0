/* tools/cmd_report.c — `fqt report`: compare training runs in a table and an SVG plot. */
#include "cli.h"
#include "fqt/report.h"

#include <string.h>

static void report_help(FILE *f) {
    fprintf(f,
            "usage: fqt report [--out PLOT.svg] [--no-plot] [--logx] [--markdown] [--baseline NAME] RUN_DIR...\n"
            "\n"
            "Reads RUN_DIR/run.json and RUN_DIR/metrics.jsonl of each run, prints a table (in the\n"
            "order given) of steps, tokens, final validation loss, perplexity, the gap to the baseline\n"
            "(absolute and %%) and tokens/s, and writes an SVG plot: (a) training loss vs tokens (EMA,\n"
            "raw faint), (b) validation loss vs tokens, (c) gradient-to-noise ratio with the sqrt(3)\n"
            "line when some run logged it; events (e.g. \"switch to QAF\") are dashed vertical lines.\n"
            "\n"
            "  --out PATH       where to write the plot; default: report.svg in the directory that\n"
            "                   holds the first RUN_DIR (runs/report.svg for runs/bf16 runs/nvfp4;\n"
            "                   ./report.svg for a RUN_DIR without a slash)\n"
            "  --no-plot        print the table only\n"
            "  --logx           log-scaled tokens axis; without it the training-loss panel's\n"
            "                   y range fits the last 90%% of tokens and clips the initial drop\n"
            "  --markdown       print the table as a Markdown pipe table\n"
            "  --baseline NAME  compare against the run with this name (or recipe); default: the run\n"
            "                   named or with recipe \"bf16\", else the first run\n"
            "\n"
            "A truncated last metrics line (a run killed mid-write) is skipped with a warning.\n"
            "Exit status: 0 ok, 1 a run could not be read or the plot not written, 2 usage.\n");
}

/* report.svg next to the first run directory. */
static char *default_out(const char *dir) {
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/') n--;
    while (n > 0 && dir[n - 1] != '/') n--;
    while (n > 1 && dir[n - 1] == '/') n--;
    fqt_buf b = {0};
    if (n == 0) fqt_buf_printf(&b, "report.svg");
    else if (n == 1 && dir[0] == '/') fqt_buf_printf(&b, "/report.svg");
    else fqt_buf_printf(&b, "%.*s/report.svg", (int)n, dir);
    return b.s;
}

int fqt_cmd_report(int argc, char **argv) {
    const char *out = NULL, *baseline = NULL;
    bool logx = false, markdown = false, plot = true, only_dirs = false;
    /* Options may come anywhere; everything else (and all after "--") is a run directory. */
    char **dirs = fqt_xcalloc((size_t)argc, sizeof *dirs);
    int n = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (only_dirs || a[0] != '-' || !a[1]) dirs[n++] = argv[i];
        else if (!strcmp(a, "--")) only_dirs = true;
        else if (!strcmp(a, "-h") || !strcmp(a, "--help")) { report_help(stdout); free(dirs); return 0; }
        else if (!strcmp(a, "--logx")) logx = true;
        else if (!strcmp(a, "--markdown")) markdown = true;
        else if (!strcmp(a, "--no-plot")) plot = false;
        else if (!strcmp(a, "--out") || !strcmp(a, "--baseline")) {
            if (i + 1 >= argc) { free(dirs); return cli_usage_error("report", "%s needs a value", a); }
            *(!strcmp(a, "--out") ? &out : &baseline) = argv[++i];
        } else {
            free(dirs);
            return cli_usage_error("report", "unknown option '%s' (see fqt report --help)", a);
        }
    }
    if (n < 1) {
        report_help(stderr);
        free(dirs);
        return 2;
    }

    int rc = 0;
    fqt_run_metrics *runs = fqt_xcalloc((size_t)n, sizeof *runs);
    fqt_run_summary *rows = fqt_xcalloc((size_t)n, sizeof *rows);
    char *path = NULL;
    fqt_svg_figure *fig = NULL;
    for (int i = 0; i < n; i++) {
        if (fqt_run_metrics_load(dirs[i], &runs[i])) { rc = cli_fail("report", "loading run"); goto out; }
        if (runs[i].warning) fprintf(stderr, "fqt report: warning: %s\n", runs[i].warning);
    }
    if (fqt_report_summarize(runs, n, baseline, rows, NULL)) { rc = cli_fail("report", "--baseline"); goto out; }
    fqt_buf table = {0};
    fqt_report_table(rows, n, markdown, &table);
    fputs(table.s, stdout);
    fqt_buf_free(&table);
    if (plot) {
        path = out ? NULL : default_out(dirs[0]);
        fqt_report_plot_opts opts = {.logx = logx, .ema_beta = -1};
        fig = fqt_report_figure(runs, n, &opts);
        if (fqt_svg_write(fig, out ? out : path)) { rc = cli_fail("report", "writing the plot"); goto out; }
        fprintf(stderr, "fqt report: wrote %s\n", out ? out : path);
    }
out:
    fqt_svg_figure_free(fig);
    free(path);
    for (int i = 0; i < n; i++) fqt_run_metrics_free(&runs[i]);
    free(runs);
    free(rows);
    free(dirs);
    return rc;
}
