/* tools/cmd_report.c — `fqt report`: compare training runs in a table and an SVG plot. */
#include "cli.h"
#include "fqt/report.h"

#include "fqt/fileio.h"

#include <string.h>
#include <unistd.h>

static void report_help(FILE *f) {
    fprintf(f,
            "usage: fqt report [--out PLOT.svg | --force] [--no-plot] [--logx] [--markdown] [--csv FILE]\n"
            "                  [--baseline NAME] RUN_DIR...\n"
            "\n"
            "Reads RUN_DIR/run.json and RUN_DIR/metrics.jsonl of each run, prints a table (in the\n"
            "order given) of steps, tokens, final validation loss, perplexity, the gap to the baseline\n"
            "(absolute and %%) and tokens/s, and writes an SVG plot: (a) training loss vs tokens (EMA\n"
            "with raw faint when a run has over 100 points, else raw), (b) validation loss vs tokens, (c) gradient-to-noise ratio with the sqrt(3)\n"
            "line when some run logged it; events (e.g. \"switch to QAF\") are dashed vertical lines.\n"
            "\n"
            "  --out PATH       where to write the plot; default: report.svg in the directory that\n"
            "                   holds the first RUN_DIR (runs/report.svg for runs/bf16 runs/nvfp4;\n"
            "                   ./report.svg for a RUN_DIR without a slash)\n"
            "  --force          replace an existing default plot (without --out or --force an\n"
            "                   existing one is never overwritten)\n"
            "  --no-plot        print the table only\n"
            "  --csv FILE       also write the table as CSV (header row, one row per run, numbers\n"
            "                   unrounded, empty cells for missing values)\n"
            "  --logx           log-scaled tokens axis; without it the training-loss panel's\n"
            "                   y range fits the last 90%% of tokens and clips the initial drop\n"
            "  --markdown       print the table as a Markdown pipe table\n"
            "  --baseline NAME  compare against the run with this name (or recipe); default: the run\n"
            "                   named or with recipe \"bf16\", else the first run\n"
            "\n"
            "Runs are named by run.json's \"name\"; when two runs share one, both are named by\n"
            "their directory instead.\n"
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
    const char *out = NULL, *baseline = NULL, *csv = NULL;
    bool logx = false, markdown = false, plot = true, force = false;
    static const cli_opt opts[] = {{"help", 0}, {"logx", 0}, {"markdown", 0}, {"no-plot", 0}, {"out", 1},
                                   {"baseline", 1}, {"csv", 1}, {"force", 0}};
    /* Options may come anywhere; everything else (and all after "--") is a run directory. */
    char **dirs = fqt_xcalloc((size_t)argc, sizeof *dirs);
    int n = 0;
    cli_parser cp;
    cli_parser_init(&cp, "report", argc, argv, opts, (int)(sizeof opts / sizeof opts[0]));
    for (;;) {
        const char *v;
        int k = cli_next(&cp, &v);
        if (k == CLI_END) break;
        if (k == CLI_ERR) { free(dirs); return 2; }
        switch (k) {
        case CLI_POS: dirs[n++] = (char *)v; break;
        case 0: report_help(stdout); free(dirs); return 0;
        case 1: logx = true; break;
        case 2: markdown = true; break;
        case 3: plot = false; break;
        case 4: out = v; break;
        case 5: baseline = v; break;
        case 6: csv = v; break;
        case 7: force = true; break;
        }
    }
    if (n < 1) {
        report_help(stderr);
        free(dirs);
        return 2;
    }
    /* The default plot path is never overwritten silently: an explicit --out or --force. */
    if (plot && !out && !force) {
        char *d = default_out(dirs[0]);
        bool exists = !access(d, F_OK);
        if (exists) {
            fprintf(stderr, "fqt report: %s exists (an earlier report?); pass --out PATH for a new one, "
                            "--force to replace it, or --no-plot\n", d);
        }
        free(d);
        if (exists) { free(dirs); return 2; }
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
    fqt_report_name_runs(runs, n);
    if (fqt_report_summarize(runs, n, baseline, rows, NULL)) { rc = cli_fail("report", "--baseline"); goto out; }
    fqt_buf table = {0};
    fqt_report_table(rows, n, markdown, &table);
    fputs(table.s, stdout);
    fqt_buf_free(&table);
    if (csv) {
        fqt_buf cb = {0};
        fqt_report_csv(rows, n, &cb);
        fqt_status st = fqt_write_file_atomic(csv, cb.s, cb.len);
        fqt_buf_free(&cb);
        if (st) { rc = cli_fail("report", "writing the CSV"); goto out; }
        fprintf(stderr, "fqt report: wrote %s\n", csv);
    }
    if (plot) {
        path = out ? NULL : default_out(dirs[0]);
        fqt_report_plot_opts popts = {.logx = logx, .ema_beta = -1};
        fig = fqt_report_figure(runs, n, &popts);
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
