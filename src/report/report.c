/* report/report.c — loading run directories, summarising them against a baseline, the
 * comparison table and the report figure (see fqt/report.h).
 *
 * Not for: printing (the CLI prints the table and the warnings) or drawing primitives
 * (report/svg.c). */
#include "fqt/report.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <string.h>

/* Whole file into a NUL-terminated buffer. */
static fqt_status read_text(const char *path, const char *hint, char **text, size_t *len) {
    *text = NULL;
    FILE *f = fopen(path, "rb");
    if (!f) {
        fqt_set_error("%s: cannot open: %s%s", path, strerror(errno), hint);
        return FQT_ERR_IO;
    }
    fqt_buf b = {0};
    char chunk[65536];
    size_t got;
    while ((got = fread(chunk, 1, sizeof chunk, f)) > 0) fqt_buf_append(&b, chunk, got);
    if (ferror(f)) {
        fqt_set_error("%s: read failed: %s", path, strerror(errno));
        fclose(f);
        fqt_buf_free(&b);
        return FQT_ERR_IO;
    }
    fclose(f);
    fqt_buf_append(&b, "", 0);
    *text = b.s;
    *len = b.len;
    return FQT_OK;
}

/* Where a metrics line came from, for error messages. */
typedef struct {
    const char *path;
    int64_t line;
} where;

static fqt_status bad_line(const where *w, const char *fmt, ...)
#if defined(__GNUC__)
    __attribute__((format(printf, 2, 3)))
#endif
    ;
static fqt_status bad_line(const where *w, const char *fmt, ...) {
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fqt_set_error("%s:%" PRId64 ": %s", w->path, w->line, msg);
    return FQT_ERR_FORMAT;
}

/* Optional number: absent or null gives NaN; any other non-number is an error. */
static fqt_status field_num(const where *w, const fqt_json *o, const char *key, double *out) {
    const fqt_json *v = fqt_json_get(o, key);
    *out = NAN;
    if (!v || v->type == FQT_JSON_NULL) return FQT_OK;
    if (v->type != FQT_JSON_NUM) return bad_line(w, "\"%s\" is not a number", key);
    *out = v->num;
    return FQT_OK;
}

/* Integer field; absent gives dflt when not required. */
static fqt_status field_int(const where *w, const fqt_json *o, const char *key, bool required,
                            int64_t dflt, int64_t *out) {
    const fqt_json *v = fqt_json_get(o, key);
    *out = dflt;
    if (!v) return required ? bad_line(w, "missing \"%s\"", key) : FQT_OK;
    if (!fqt_json_int64(v, out) || *out < 0) return bad_line(w, "\"%s\" is not a non-negative integer", key);
    return FQT_OK;
}

static fqt_status field_str(const where *w, const fqt_json *o, const char *key, const char *dflt,
                            const char **out) {
    const fqt_json *v = fqt_json_get(o, key);
    *out = dflt;
    if (!v) return FQT_OK;
    if (v->type != FQT_JSON_STR) return bad_line(w, "\"%s\" is not a string", key);
    *out = v->str;
    return FQT_OK;
}

typedef struct {
    int64_t train, val, gnr, events;
} caps;

/* Step and tokens of a known kind; tokens default to step * tokens_per_step. */
static fqt_status step_tokens(const where *w, const fqt_json *o, const fqt_run_metrics *r,
                              int64_t *step, int64_t *tokens) {
    fqt_status st = field_int(w, o, "step", true, 0, step);
    if (st) return st;
    /* The default token count must not overflow (a step near 2^63 is no real run). */
    if (r->tokens_per_step > 0 && *step > INT64_MAX / r->tokens_per_step)
        return bad_line(w, "\"step\" %lld is too large (times %lld tokens per step overflows)",
                        (long long)*step, (long long)r->tokens_per_step);
    return field_int(w, o, "tokens", false, *step * r->tokens_per_step, tokens);
}

static fqt_status take_line(const where *w, const fqt_json *o, fqt_run_metrics *r, caps *c) {
    if (o->type != FQT_JSON_OBJ) return bad_line(w, "not a JSON object");
    const fqt_json *k = fqt_json_get(o, "kind");
    if (!k || k->type != FQT_JSON_STR) return bad_line(w, "missing string \"kind\"");
    const char *kind = k->str;
    fqt_status st = FQT_OK;
    if (!strcmp(kind, "train")) {
        fqt_train_point p = {0};
        const char *phase;
        if ((st = step_tokens(w, o, r, &p.step, &p.tokens)) || (st = field_num(w, o, "loss", &p.loss)) ||
            (st = field_num(w, o, "lr", &p.lr)) || (st = field_num(w, o, "grad_norm", &p.grad_norm)) ||
            (st = field_num(w, o, "tok_per_s", &p.tok_per_s)) || (st = field_str(w, o, "phase", "", &phase)))
            return st;
        snprintf(p.phase, sizeof p.phase, "%s", phase);
        r->train = fqt_xgrow(r->train, &c->train, r->n_train, sizeof *r->train);
        r->train[r->n_train++] = p;
    } else if (!strcmp(kind, "val")) {
        fqt_val_point p = {0};
        if ((st = step_tokens(w, o, r, &p.step, &p.tokens)) || (st = field_num(w, o, "val_loss", &p.val_loss)) ||
            (st = field_num(w, o, "val_ppl", &p.val_ppl)))
            return st;
        r->val = fqt_xgrow(r->val, &c->val, r->n_val, sizeof *r->val);
        r->val[r->n_val++] = p;
    } else if (!strcmp(kind, "gnr")) {
        fqt_gnr_point p = {0};
        const char *layer;
        if ((st = step_tokens(w, o, r, &p.step, &p.tokens)) || (st = field_num(w, o, "r", &p.r)) ||
            (st = field_str(w, o, "layer", "all", &layer)))
            return st;
        if (strcmp(layer, "all") != 0) return FQT_OK;   /* per-layer ratios: not plotted */
        r->gnr = fqt_xgrow(r->gnr, &c->gnr, r->n_gnr, sizeof *r->gnr);
        r->gnr[r->n_gnr++] = p;
    } else if (!strcmp(kind, "event")) {
        fqt_run_event e = {0};
        const char *msg;
        if ((st = step_tokens(w, o, r, &e.step, &e.tokens)) || (st = field_str(w, o, "msg", "", &msg)))
            return st;
        e.tokens = -1;
        e.msg = fqt_xstrdup(msg);
        r->events = fqt_xgrow(r->events, &c->events, r->n_events, sizeof *r->events);
        r->events[r->n_events++] = e;
    } else if (!strcmp(kind, "final")) {
        fqt_run_final f = {.present = true};
        if ((st = step_tokens(w, o, r, &f.step, &f.tokens)) || (st = field_num(w, o, "val_loss", &f.val_loss)) ||
            (st = field_num(w, o, "val_ppl", &f.val_ppl)) || (st = field_num(w, o, "wall_s", &f.wall_s)) ||
            (st = field_num(w, o, "tok_per_s", &f.tok_per_s)))
            return st;
        r->final = f;
    }
    /* "quant" and unknown kinds: nothing the report uses. */
    return FQT_OK;
}

static fqt_status load_config(const char *dir, fqt_run_metrics *r) {
    fqt_buf path = {0};
    fqt_buf_printf(&path, "%s/run.json", dir);
    char *text = NULL;
    size_t len = 0;
    fqt_json *j = NULL;
    fqt_status st = read_text(path.s, " (is this a run directory?)", &text, &len);
    if (st) goto out;
    if ((st = fqt_json_parse(text, len, &j))) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s", fqt_last_error());
        fqt_set_error("%s: %s", path.s, msg);
        goto out;
    }
    if (j->type != FQT_JSON_OBJ) {
        fqt_set_error("%s: not a JSON object", path.s);
        st = FQT_ERR_FORMAT;
        goto out;
    }
    /* The base name of the directory stands in for a missing name. */
    size_t dl = strlen(dir);
    while (dl > 1 && dir[dl - 1] == '/') dl--;
    size_t b = dl;
    while (b > 0 && dir[b - 1] != '/') b--;
    char base[256];
    snprintf(base, sizeof base, "%.*s", (int)(dl - b), dir + b);
    r->name = fqt_xstrdup(fqt_json_get_str(j, "name", base));
    r->recipe = fqt_xstrdup(fqt_json_get_str(j, "recipe", "?"));
    const fqt_json *v;
    if ((v = fqt_json_get(j, "tokens_per_step")) && !fqt_json_int64(v, &r->tokens_per_step)) r->tokens_per_step = 0;
    if ((v = fqt_json_get(j, "steps")) && !fqt_json_int64(v, &r->steps)) r->steps = 0;
out:
    fqt_json_free(j);
    free(text);
    fqt_buf_free(&path);
    return st;
}

fqt_status fqt_run_metrics_load(const char *dir, fqt_run_metrics *r) {
    memset(r, 0, sizeof *r);
    r->dir = fqt_xstrdup(dir);
    fqt_status st = load_config(dir, r);
    if (st) return st;

    fqt_buf path = {0};
    fqt_buf_printf(&path, "%s/metrics.jsonl", dir);
    char *text = NULL;
    size_t len = 0;
    st = read_text(path.s, " (has the run logged anything yet?)", &text, &len);
    if (st) goto out;
    caps c = {0};
    where w = {path.s, 0};
    for (size_t pos = 0; pos < len;) {
        const char *line = text + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t n = nl ? (size_t)(nl - line) : len - pos;
        pos += n + (nl != NULL);
        w.line++;
        bool blank = true;
        /* (strchr finds the terminator too: a NUL byte is not blank, it is an error below.) */
        for (size_t i = 0; i < n && blank; i++) blank = line[i] && strchr(" \t\r", line[i]) != NULL;
        if (blank) continue;
        fqt_json *j = NULL;
        if (fqt_json_parse(line, n, &j)) {
            if (!nl) {
                /* A last line with no newline that does not parse: cut off mid-write. */
                fqt_buf warn = {0};
                fqt_buf_printf(&warn, "%s:%" PRId64 ": skipped a truncated last line", path.s, w.line);
                r->warning = warn.s;
                break;
            }
            char msg[512];
            snprintf(msg, sizeof msg, "%s", fqt_last_error());
            st = bad_line(&w, "%s", msg);
            goto out;
        }
        st = take_line(&w, j, r, &c);
        fqt_json_free(j);
        if (st) goto out;
    }
    /* Place events on the token axis through the train point of the same step. */
    for (int64_t e = 0; e < r->n_events; e++) {
        fqt_run_event *ev = &r->events[e];
        ev->tokens = r->tokens_per_step > 0 && ev->step > INT64_MAX / r->tokens_per_step
                         ? INT64_MAX : ev->step * r->tokens_per_step;
        for (int64_t i = 0; i < r->n_train; i++)
            if (r->train[i].step == ev->step) { ev->tokens = r->train[i].tokens; break; }
    }
out:
    free(text);
    fqt_buf_free(&path);
    return st;
}

void fqt_run_metrics_free(fqt_run_metrics *r) {
    if (!r) return;
    for (int64_t e = 0; e < r->n_events; e++) free(r->events[e].msg);
    free(r->events);
    free(r->train);
    free(r->val);
    free(r->gnr);
    free(r->dir);
    free(r->name);
    free(r->recipe);
    free(r->warning);
    memset(r, 0, sizeof *r);
}

/* ---- summary and table --------------------------------------------------------------- */

static void summarize_one(const fqt_run_metrics *r, fqt_run_summary *s) {
    memset(s, 0, sizeof *s);
    s->name = r->name;
    s->recipe = r->recipe;
    s->val_loss = s->val_ppl = s->tok_per_s = s->gap_abs = s->gap_pct = NAN;
    for (int64_t i = 0; i < r->n_train; i++) {
        if (r->train[i].step >= s->steps) s->steps = r->train[i].step;
        if (r->train[i].tokens >= s->tokens) s->tokens = r->train[i].tokens;
    }
    const fqt_val_point *last = NULL;
    for (int64_t i = 0; i < r->n_val; i++) {
        if (!last || r->val[i].step >= last->step) last = &r->val[i];
        if (r->val[i].step > s->steps) s->steps = r->val[i].step;
        if (r->val[i].tokens > s->tokens) s->tokens = r->val[i].tokens;
    }
    if (last) { s->val_loss = last->val_loss; s->val_ppl = last->val_ppl; }
    if (r->final.present) {
        s->steps = r->final.step;
        if (r->final.tokens > 0) s->tokens = r->final.tokens;
        if (isfinite(r->final.val_loss)) { s->val_loss = r->final.val_loss; s->val_ppl = r->final.val_ppl; }
        s->tok_per_s = r->final.tok_per_s;
    }
    if (!isfinite(s->val_ppl) && isfinite(s->val_loss)) s->val_ppl = exp(s->val_loss);
    if (!isfinite(s->tok_per_s)) {
        /* The first steps include compilation and warm-up, so they are left out. */
        int64_t skip = r->n_train > 2 ? 2 : 0, cnt = 0;
        double sum = 0;
        for (int64_t i = skip; i < r->n_train; i++)
            if (isfinite(r->train[i].tok_per_s)) { sum += r->train[i].tok_per_s; cnt++; }
        s->tok_per_s = cnt ? sum / (double)cnt : NAN;
    }
}

fqt_status fqt_report_summarize(const fqt_run_metrics *runs, int n, const char *baseline,
                                fqt_run_summary *rows, int *baseline_index) {
    if (n < 1) {
        fqt_set_error("no runs to compare");
        return FQT_ERR_ARG;
    }
    int base = -1;
    if (baseline) {
        for (int i = 0; i < n && base < 0; i++) if (!strcmp(runs[i].name, baseline)) base = i;
        for (int i = 0; i < n && base < 0; i++) if (!strcmp(runs[i].recipe, baseline)) base = i;
        if (base < 0) {
            fqt_set_error("baseline '%s' is neither the name nor the recipe of any run given", baseline);
            return FQT_ERR_ARG;
        }
    } else {
        for (int i = 0; i < n && base < 0; i++)
            if (!strcmp(runs[i].name, "bf16") || !strcmp(runs[i].recipe, "bf16")) base = i;
        if (base < 0) base = 0;
    }
    for (int i = 0; i < n; i++) summarize_one(&runs[i], &rows[i]);
    double b = rows[base].val_loss;
    for (int i = 0; i < n; i++) {
        rows[i].is_baseline = i == base;
        rows[i].gap_abs = rows[i].val_loss - b;
        rows[i].gap_pct = 100.0 * rows[i].gap_abs / b;
    }
    if (baseline_index) *baseline_index = base;
    return FQT_OK;
}

enum { NCOLS = 9 };
static const char *const col_head[NCOLS] = {
    "run", "recipe", "steps", "tokens", "final val loss", "ppl", "gap vs base", "gap %", "tokens/s",
};
static const bool col_left[NCOLS] = {true, true};

static void cell(char *dst, size_t n, const char *fmt, double v) {
    if (isfinite(v)) snprintf(dst, n, fmt, v);
    else snprintf(dst, n, "-");
}

/* Characters of a UTF-8 string, for alignment. */
static int width_of(const char *s) {
    int w = 0;
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) w += (*c & 0xC0) != 0x80;
    return w;
}

void fqt_report_table(const fqt_run_summary *rows, int n, bool markdown, fqt_buf *out) {
    char (*cells)[NCOLS][48] = fqt_xcalloc((size_t)(n > 0 ? n : 1), sizeof *cells);
    int wid[NCOLS];
    const char *base = NULL;
    for (int c = 0; c < NCOLS; c++) wid[c] = width_of(col_head[c]);
    for (int i = 0; i < n; i++) {
        const fqt_run_summary *r = &rows[i];
        snprintf(cells[i][0], 48, "%s", r->name);
        snprintf(cells[i][1], 48, "%s", r->recipe);
        snprintf(cells[i][2], 48, "%" PRId64, r->steps);
        snprintf(cells[i][3], 48, "%" PRId64, r->tokens);
        cell(cells[i][4], 48, "%.4f", r->val_loss);
        cell(cells[i][5], 48, "%.2f", r->val_ppl);
        if (r->is_baseline) {
            snprintf(cells[i][6], 48, "baseline");
            snprintf(cells[i][7], 48, "-");
            base = r->name;
        } else {
            cell(cells[i][6], 48, "%+.4f", r->gap_abs);
            cell(cells[i][7], 48, "%+.2f%%", r->gap_pct);
        }
        cell(cells[i][8], 48, "%.0f", r->tok_per_s);
        for (int c = 0; c < NCOLS; c++) if (width_of(cells[i][c]) > wid[c]) wid[c] = width_of(cells[i][c]);
    }
    for (int row = -1; row < n; row++) {
        if (markdown) fqt_buf_append(out, "|", 1);
        for (int c = 0; c < NCOLS; c++) {
            const char *s = row < 0 ? col_head[c] : cells[row][c];
            int padn = wid[c] - width_of(s);
            if (markdown) fqt_buf_append(out, " ", 1);
            else if (c) fqt_buf_append(out, "  ", 2);
            if (!col_left[c]) fqt_buf_printf(out, "%*s", padn, "");
            for (const char *p = s; *p; p++) {
                if (markdown && *p == '|') fqt_buf_append(out, "\\", 1);
                fqt_buf_append(out, p, 1);
            }
            if (col_left[c] && (markdown || c < NCOLS - 1)) fqt_buf_printf(out, "%*s", padn, "");
            if (markdown) fqt_buf_append(out, " |", 2);
        }
        fqt_buf_append(out, "\n", 1);
        if (row < 0) {
            /* The rule under the header. */
            if (markdown) fqt_buf_append(out, "|", 1);
            for (int c = 0; c < NCOLS; c++) {
                if (markdown) {
                    fqt_buf_append(out, col_left[c] ? " :" : " ", col_left[c] ? 2 : 1);
                    for (int k = 0; k < wid[c] - 1; k++) fqt_buf_append(out, "-", 1);
                    fqt_buf_append(out, col_left[c] ? " |" : ": |", col_left[c] ? 2 : 3);
                } else {
                    if (c) fqt_buf_append(out, "  ", 2);
                    for (int k = 0; k < wid[c]; k++) fqt_buf_append(out, "-", 1);
                }
            }
            fqt_buf_append(out, "\n", 1);
        }
    }
    if (base) fqt_buf_printf(out, "%sbaseline: %s\n", markdown ? "\n" : "", base);
    free(cells);
}

/* ---- figure -------------------------------------------------------------------------- */

void fqt_report_ema(const double *y, int64_t n, double beta, double *out) {
    double s = 0, wsum = 0;   /* wsum: total weight so far, the bias correction of a zero start */
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(y[i])) { out[i] = NAN; continue; }
        /* A window of at most ~10% of the points so far: a fixed beta lags the fast early
         * drop of the loss by 1/(1-beta) points, which a log axis shows as a wide gap. */
        double b = fmin(beta, 1.0 - 10.0 / ((double)i + 11.0));
        s = b * s + (1 - b) * y[i];
        wsum = b * wsum + (1 - b);
        out[i] = s / wsum;
    }
}

static double auto_beta(int64_t n) {
    double b = 1.0 - 100.0 / (double)(n > 0 ? n : 1);
    return b < 0 ? 0 : b > 0.95 ? 0.95 : b;
}

void fqt_report_name_runs(fqt_run_metrics *runs, int n) {
    bool *clash = fqt_xcalloc((size_t)n + 1, sizeof *clash);
    for (int i = 0; i < n; i++)
        for (int k = i + 1; k < n; k++)
            if (!strcmp(runs[i].name, runs[k].name)) clash[i] = clash[k] = true;
    for (int i = 0; i < n; i++) {
        if (!clash[i]) continue;
        size_t len = strlen(runs[i].dir);
        while (len > 1 && runs[i].dir[len - 1] == '/') len--;
        free(runs[i].name);
        runs[i].name = fqt_xmalloc(len + 1);
        memcpy(runs[i].name, runs[i].dir, len);
        runs[i].name[len] = '\0';
    }
    free(clash);
}

static void csv_cell(fqt_buf *b, const char *s) {
    if (!strpbrk(s, ",\"\r\n")) {
        fqt_buf_append(b, s, strlen(s));
        return;
    }
    fqt_buf_append(b, "\"", 1);
    for (const char *p = s; *p; p++) fqt_buf_append(b, *p == '"' ? "\"\"" : p, *p == '"' ? 2 : 1);
    fqt_buf_append(b, "\"", 1);
}

static void csv_num(fqt_buf *b, double v) {
    if (isfinite(v)) fqt_buf_printf(b, ",%.17g", v);
    else fqt_buf_append(b, ",", 1);
}

void fqt_report_csv(const fqt_run_summary *rows, int n, fqt_buf *out) {
    fqt_buf_printf(out, "run,recipe,steps,tokens,val_loss,val_ppl,gap_abs,gap_pct,tok_per_s,baseline\r\n");
    for (int i = 0; i < n; i++) {
        const fqt_run_summary *r = &rows[i];
        csv_cell(out, r->name);
        fqt_buf_append(out, ",", 1);
        csv_cell(out, r->recipe);
        fqt_buf_printf(out, ",%lld,%lld", (long long)r->steps, (long long)r->tokens);
        csv_num(out, r->val_loss);
        csv_num(out, r->val_ppl);
        csv_num(out, r->gap_abs);
        csv_num(out, r->gap_pct);
        csv_num(out, r->tok_per_s);
        fqt_buf_printf(out, ",%d\r\n", r->is_baseline ? 1 : 0);
    }
}

fqt_svg_figure *fqt_report_figure(const fqt_run_metrics *runs, int n, const fqt_report_plot_opts *opts) {
    bool logx = opts && opts->logx;
    double beta_opt = opts ? opts->ema_beta : NAN;
    bool any_gnr = false;
    for (int i = 0; i < n; i++) any_gnr |= runs[i].n_gnr > 0;
    fqt_svg_figure *f = fqt_svg_figure_new(NULL, any_gnr ? 3 : 2, 440, 320);
    /* The label says what is drawn: smoothing only when some run gets a beta above 0. */
    bool any_smooth = false;
    for (int i = 0; i < n; i++) {
        double bt = isfinite(beta_opt) && beta_opt >= 0 && beta_opt < 1 ? beta_opt : auto_beta(runs[i].n_train);
        any_smooth |= bt > 0;
    }
    int pa = fqt_svg_panel_add(f, "(a) training loss", "tokens",
                               any_smooth ? "loss (EMA; raw faint)" : "loss (raw, not smoothed)", logx);
    int pb = fqt_svg_panel_add(f, "(b) validation loss", "tokens", "validation loss", logx);
    /* r spans orders of magnitude (BF16 in the hundreds, FP4 near sqrt(3)): plot log10 r. */
    int pc = any_gnr ? fqt_svg_panel_add(f, "(c) gradient-to-noise ratio", "tokens",
                                         "log10 r = log10(|g| / |g\xcc\x82 - g|)", logx) : -1;

    int64_t most = 1;
    for (int i = 0; i < n; i++) {
        if (runs[i].n_train > most) most = runs[i].n_train;
        if (runs[i].n_val + 1 > most) most = runs[i].n_val + 1;
        if (runs[i].n_gnr > most) most = runs[i].n_gnr;
    }
    double *x = fqt_xmalloc((size_t)most * sizeof *x);
    double *y = fqt_xmalloc((size_t)most * sizeof *y);
    double *e = fqt_xmalloc((size_t)most * sizeof *e);

    /* Raw training losses first so that every smoothed curve is drawn over them. */
    double xmax = 0;
    for (int i = 0; i < n; i++)
        for (int64_t k = 0; k < runs[i].n_train; k++) xmax = fmax(xmax, (double)runs[i].train[k].tokens);
    double win_lo = INFINITY, win_hi = -INFINITY;
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < n; i++) {
            const fqt_run_metrics *r = &runs[i];
            for (int64_t k = 0; k < r->n_train; k++) { x[k] = (double)r->train[k].tokens; y[k] = r->train[k].loss; }
            if (pass == 0) {
                if (!any_smooth) continue; /* the curve itself is the raw loss */
                fqt_svg_style raw = {.color = i, .width = 1.0, .opacity = 0.22};
                fqt_svg_series_add(f, pa, NULL, x, y, r->n_train, &raw);
                continue;
            }
            double beta = isfinite(beta_opt) && beta_opt >= 0 && beta_opt < 1 ? beta_opt : auto_beta(r->n_train);
            fqt_report_ema(y, r->n_train, beta, e);
            fqt_svg_style sm = {.color = i, .width = 1.8};
            fqt_svg_series_add(f, pa, r->name, x, e, r->n_train, &sm);
            /* The y range leaves out the first 10% of tokens (the initial drop), which would
             * otherwise squash the differences between recipes; a log x axis shows it. */
            for (int64_t k = 0; k < r->n_train; k++) {
                if (x[k] < 0.10 * xmax) continue;
                if (isfinite(y[k])) win_lo = fmin(win_lo, y[k]);
                if (isfinite(e[k])) { win_lo = fmin(win_lo, e[k]); win_hi = fmax(win_hi, e[k]); }
            }
        }
    if (!logx && win_hi > win_lo) {
        double pad = 0.05 * (win_hi - win_lo);
        fqt_svg_panel_ylim(f, pa, win_lo - pad, win_hi + pad);
    }

    for (int i = 0; i < n; i++) {
        const fqt_run_metrics *r = &runs[i];
        int64_t m = 0, last_step = -1;
        for (int64_t k = 0; k < r->n_val; k++) {
            x[m] = (double)r->val[k].tokens;
            y[m++] = r->val[k].val_loss;
            if (r->val[k].step > last_step) last_step = r->val[k].step;
        }
        if (r->final.present && r->final.step > last_step && isfinite(r->final.val_loss)) {
            x[m] = (double)r->final.tokens;
            y[m++] = r->final.val_loss;
        }
        fqt_svg_style st = {.color = i, .width = 1.6, .markers = true};
        fqt_svg_series_add(f, pb, r->name, x, y, m, &st);
        for (int64_t k = 0; k < r->n_events; k++) {
            fqt_svg_vline_add(f, pa, (double)r->events[k].tokens, r->events[k].msg, i);
            fqt_svg_vline_add(f, pb, (double)r->events[k].tokens, r->events[k].msg, i);
        }
        if (pc >= 0 && r->n_gnr > 0) {
            for (int64_t k = 0; k < r->n_gnr; k++) {
                x[k] = (double)r->gnr[k].tokens;
                y[k] = r->gnr[k].r > 0 ? log10(r->gnr[k].r) : NAN;
            }
            fqt_svg_style g = {.color = i, .width = 1.6};
            fqt_svg_series_add(f, pc, r->name, x, y, r->n_gnr, &g);
        }
    }
    if (pc >= 0) fqt_svg_hline_add(f, pc, log10(sqrt(3.0)), "r = \xe2\x88\x9a" "3");
    free(x);
    free(y);
    free(e);
    return f;
}
