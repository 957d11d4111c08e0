/* fqt/report.h — reading training runs' metrics and comparing recipes.
 *
 * A run directory holds run.json (the configuration: "name", "recipe", "model",
 * "tokens_per_step", "steps") and metrics.jsonl (one JSON object per line, each with a
 * "kind": train, val, gnr, quant, event or final; see docs or the trainer). This module
 * loads them, summarises each run (final validation loss, perplexity, throughput, gap to a
 * baseline run), formats the comparison table and builds the report figure.
 *
 * Not for: writing metrics (the trainer does that) or the per-layer quantization
 * statistics ("quant" lines and per-layer "gnr" lines are validated as JSON and skipped).
 * Numbers absent from the metrics are NaN; the table prints them as "-". */
#ifndef FQT_REPORT_H
#define FQT_REPORT_H

#include "fqt/common.h"
#include "fqt/json.h"
#include "fqt/svg.h"
#include <stdbool.h>

typedef struct {
    int64_t step, tokens;
    double loss, lr, grad_norm, tok_per_s;
    char phase[8];              /* "fqt", "qat", "qaf", "bf16" or "" */
} fqt_train_point;

typedef struct {
    int64_t step, tokens;
    double val_loss, val_ppl;
} fqt_val_point;

/* Gradient-to-noise ratio of the whole model (lines with "layer":"all"). */
typedef struct {
    int64_t step, tokens;
    double r;
} fqt_gnr_point;

typedef struct {
    int64_t step, tokens;       /* tokens: of the train point with that step, else
                                   step * tokens_per_step */
    char *msg;
} fqt_run_event;

typedef struct {
    bool present;
    int64_t step, tokens;
    double val_loss, val_ppl, wall_s, tok_per_s;
} fqt_run_final;

typedef struct {
    char *dir;                  /* as given */
    char *name, *recipe;        /* from run.json; name defaults to the directory's base name,
                                   recipe to "?" */
    int64_t tokens_per_step, steps;   /* configured; 0 when absent */
    fqt_train_point *train;
    int64_t n_train;
    fqt_val_point *val;
    int64_t n_val;
    fqt_gnr_point *gnr;
    int64_t n_gnr;
    fqt_run_event *events;
    int64_t n_events;
    fqt_run_final final;
    char *warning;              /* non-fatal problem for the caller to show (a skipped
                                   truncated last line), NULL if none */
} fqt_run_metrics;

/* Load DIR/run.json and DIR/metrics.jsonl into *out (zeroed first; free with
 * fqt_run_metrics_free, also after a failure).
 * metrics.jsonl: blank lines are skipped; unknown kinds and fields are ignored; every other
 * line must be a JSON object with a string "kind", and the known kinds need an integer
 * "step" and numeric (or null) values. A malformed line fails with FQT_ERR_FORMAT and a
 * message "DIR/metrics.jsonl:LINE: ...". Exception: a last line that does not end in a
 * newline and does not parse (a run killed mid-write) is skipped and noted in ->warning.
 * A missing or unreadable file fails with FQT_ERR_IO naming it. */
fqt_status fqt_run_metrics_load(const char *dir, fqt_run_metrics *out);
void fqt_run_metrics_free(fqt_run_metrics *r);

/* One row of the comparison table. Strings point into the run they came from. */
typedef struct {
    const char *name, *recipe;
    int64_t steps, tokens;      /* reached: from "final", else the last train/val point */
    double val_loss;            /* "final" val_loss, else the last val point; NaN if none */
    double val_ppl;             /* logged with that loss, else exp(val_loss) */
    double tok_per_s;           /* "final" tok_per_s, else the mean over train points
                                   without the first two (all of them if there are <= 2) */
    double gap_abs;             /* val_loss - baseline val_loss (0 for the baseline) */
    double gap_pct;             /* 100 * gap_abs / baseline val_loss */
    bool is_baseline;
} fqt_run_summary;

/* Summarise runs[0..n) into rows[0..n) (same order). The baseline is the run named
 * `baseline` (matching name, else recipe) when baseline is not NULL, else the first run
 * whose name or recipe is "bf16", else runs[0]. *baseline_index (may be NULL) receives it.
 * FQT_ERR_ARG if n < 1 or the named baseline is not among the runs. */
fqt_status fqt_report_summarize(const fqt_run_metrics *runs, int n, const char *baseline,
                                fqt_run_summary *rows, int *baseline_index);

/* Append the comparison table: columns run, recipe, steps, tokens, final val loss, ppl,
 * gap vs baseline (abs), gap (%), tokens/s. Plain text is space-aligned with a dashed rule
 * under the header; markdown is a GitHub pipe table. Both end with a "baseline: NAME" line. */
void fqt_report_table(const fqt_run_summary *rows, int n, bool markdown, fqt_buf *out);

typedef struct {
    bool logx;                  /* log-scaled tokens axis */
    double ema_beta;            /* smoothing of the training loss; NaN or < 0: automatic,
                                   1 - 100/n_points clamped to [0, 0.95] */
} fqt_report_plot_opts;

/* The report figure: (a) training loss vs tokens (EMA-smoothed, raw faint), (b) validation
 * loss vs tokens with markers, (c) gradient-to-noise ratio vs tokens with a sqrt(3)
 * reference line, only when some run logged gnr. Events are dashed vertical markers on
 * (a) and (b). Run i has palette colour i in every panel. On a linear x axis the y range of
 * (a) is fitted to the last 90% of tokens (the initial drop would squash the differences
 * between recipes and is clipped); --logx shows it all. Free with fqt_svg_figure_free. */
fqt_svg_figure *fqt_report_figure(const fqt_run_metrics *runs, int n, const fqt_report_plot_opts *opts);

/* Debiased exponential moving average of y[0..n) into out (NaN inputs are skipped and give
 * NaN outputs). beta in [0, 1): 0 copies y. At point i the decay is min(beta,
 * 1 - 10/(i + 11)), so the window never spans more than ~10% of the points before it and
 * the early, fast part of a loss curve is not smeared out. */
void fqt_report_ema(const double *y, int64_t n, double beta, double *out);

/* Give runs that share a name (e.g. two runs of one recipe) their directory as name (as
 * given, trailing slashes dropped), so tables and legends tell them apart. */
void fqt_report_name_runs(fqt_run_metrics *runs, int n);

/* The comparison table as CSV (RFC 4180): a header row run,recipe,steps,tokens,val_loss,
 * val_ppl,gap_abs,gap_pct,tok_per_s,baseline, then one row per run; numbers with full
 * precision, NaN as an empty cell; baseline is 1 or 0. */
void fqt_report_csv(const fqt_run_summary *rows, int n, fqt_buf *out);

#endif
