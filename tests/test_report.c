/* tests/test_report.c — run loading, summaries, the table, the SVG writer and `fqt report`.
 *
 * Builds fake run directories under a mkdtemp folder, checks the numbers of the table
 * (final loss, gap, tokens/s), the error and warning paths of the metrics reader, and
 * that every SVG produced is well-formed XML (checked by the small parser below) with the
 * expected number of series and legend entries and no "nan"/"inf" numbers. */
#include "check.h"
#include "fqt/report.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char base_dir[64];

/* ---- a strict little XML well-formedness checker ------------------------------------- */

/* Length of a valid entity reference at s ('&' included), 0 if it is not one. */
static size_t entity_len(const char *s) {
    static const char *const named[] = {"&amp;", "&lt;", "&gt;", "&quot;", "&apos;"};
    for (size_t i = 0; i < 5; i++)
        if (!strncmp(s, named[i], strlen(named[i]))) return strlen(named[i]);
    if (s[1] != '#') return 0;
    size_t i = 2;
    bool hex = s[2] == 'x';
    if (hex) i++;
    size_t d0 = i;
    while (hex ? isxdigit((unsigned char)s[i]) : isdigit((unsigned char)s[i])) i++;
    return i > d0 && s[i] == ';' ? i + 1 : 0;
}

static bool name_start(char c) { return isalpha((unsigned char)c) || c == '_' || c == ':'; }
static bool name_char(char c) { return name_start(c) || isdigit((unsigned char)c) || c == '-' || c == '.'; }

/* Returns NULL if doc is well-formed (one root element, balanced tags, quoted and unique
 * attributes, only entity-escaped '&', no raw '<' or '>' in text or values), else why. */
static const char *xml_check(const char *doc, char *why, size_t whylen) {
    const char *p = doc;
    char stack[64][32];
    int depth = 0, roots = 0;
#define XML_FAIL(...) do { snprintf(why, whylen, __VA_ARGS__); return why; } while (0)
    if (!strncmp(p, "<?xml", 5)) {
        p = strstr(p, "?>");
        if (!p) XML_FAIL("unterminated XML declaration");
        p += 2;
    }
    while (*p) {
        if (*p == '<') {
            if (!strncmp(p, "<!--", 4)) {
                const char *e = strstr(p + 4, "-->");
                if (!e) XML_FAIL("unterminated comment");
                p = e + 3;
                continue;
            }
            bool closing = p[1] == '/';
            p += closing ? 2 : 1;
            if (!name_start(*p)) XML_FAIL("bad tag name at byte %td", p - doc);
            const char *n0 = p;
            while (name_char(*p)) p++;
            int nl = (int)(p - n0);
            if (nl >= 32) XML_FAIL("tag name too long");
            if (closing) {
                while (isspace((unsigned char)*p)) p++;
                if (*p != '>') XML_FAIL("junk in closing tag at byte %td", p - doc);
                p++;
                if (!depth) XML_FAIL("closing tag </%.*s> with nothing open", nl, n0);
                depth--;
                if ((int)strlen(stack[depth]) != nl || strncmp(stack[depth], n0, (size_t)nl))
                    XML_FAIL("</%.*s> closes <%.31s>", nl, n0, stack[depth]);
                continue;
            }
            if (depth == 0 && roots++) XML_FAIL("second root element <%.*s>", nl, n0);
            char attrs[32][32];
            int na = 0;
            for (;;) {
                bool ws = false;
                while (isspace((unsigned char)*p)) { p++; ws = true; }
                if (*p == '/' && p[1] == '>') { p += 2; break; }
                if (*p == '>') {
                    if (depth >= 64) XML_FAIL("too deep");
                    snprintf(stack[depth++], 32, "%.*s", nl, n0);
                    p++;
                    break;
                }
                if (!ws) XML_FAIL("no space before attribute at byte %td", p - doc);
                if (!name_start(*p)) XML_FAIL("bad attribute name at byte %td", p - doc);
                const char *a0 = p;
                while (name_char(*p)) p++;
                int al = (int)(p - a0);
                for (int k = 0; k < na; k++)
                    if ((int)strlen(attrs[k]) == al && !strncmp(attrs[k], a0, (size_t)al))
                        XML_FAIL("duplicate attribute %.*s", al, a0);
                if (na < 32) snprintf(attrs[na++], 32, "%.*s", al, a0);
                if (*p++ != '=') XML_FAIL("attribute %.*s without '='", al, a0);
                char q = *p++;
                if (q != '"' && q != '\'') XML_FAIL("unquoted attribute %.*s", al, a0);
                while (*p && *p != q) {
                    if (*p == '<' || *p == '>') XML_FAIL("raw '%c' in attribute %.*s", *p, al, a0);
                    if (*p == '&') {
                        size_t e = entity_len(p);
                        if (!e) XML_FAIL("bad entity in attribute %.*s", al, a0);
                        p += e;
                    } else p++;
                }
                if (!*p) XML_FAIL("unterminated attribute value");
                p++;
            }
            continue;
        }
        if (*p == '&') {
            size_t e = entity_len(p);
            if (!e) XML_FAIL("bad entity at byte %td", p - doc);
            p += e;
            continue;
        }
        if (*p == '>') XML_FAIL("raw '>' in text at byte %td", p - doc);
        if (depth == 0 && !isspace((unsigned char)*p)) XML_FAIL("text outside the root at byte %td", p - doc);
        p++;
    }
    if (depth) XML_FAIL("<%.31s> never closed", stack[depth - 1]);
    if (roots != 1) XML_FAIL("no root element");
#undef XML_FAIL
    return NULL;
}

static int count(const char *s, const char *needle) {
    int n = 0;
    for (const char *p = s; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

static bool well_formed(const char *svg, const char *what) {
    char why[256];
    const char *err = xml_check(svg, why, sizeof why);
    CHECK_MSG(err == NULL, "%s: %s", what, err ? err : "");
    CHECK_MSG(!strstr(svg, "nan") && !strstr(svg, "NaN") && !strstr(svg, "inf"), "%s has nan/inf", what);
    return err == NULL;
}

static void xml_checker_self_test(void) {
    char why[128];
    CHECK(xml_check("<a x=\"1\"><b/>t &amp; &#x41;</a>", why, sizeof why) == NULL);
    const char *bad[] = {"<a><b></a></b>", "<a x=1/>", "<a>&</a>", "<a>1 < 2</a>", "<a>1 > 2</a>",
                         "<a/><b/>", "<a x=\"1\" x=\"2\"/>", "<a x=\"<\"/>", "<a>", "</a>", "<a>&foo;</a>"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        CHECK_MSG(xml_check(bad[i], why, sizeof why) != NULL, "accepted '%s'", bad[i]);
}

/* ---- fake runs ----------------------------------------------------------------------- */

static void write_file(const char *dir, const char *name, const char *text) {
    char path[512];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    FQT_ASSERT(f);
    fputs(text, f);
    fclose(f);
}

static char *make_dir(const char *name) {
    static char paths[16][256];
    static int used;
    FQT_ASSERT(used < 16);
    char *d = paths[used++];
    snprintf(d, 256, "%s/%s", base_dir, name);
    FQT_ASSERT(mkdir(d, 0755) == 0);
    return d;
}

/* A run of `steps` train points (loss 6 - step/10, tok/s 50000 for the first two steps and
 * `tps` after), val points every 5 steps (the last has val_loss `last_val`), gnr for all
 * and one layer, a quant line, an unknown kind and an event at step 6. */
static char *make_run(const char *name, const char *recipe, int steps, double tps, double last_val,
                      const char *final_line, const char *tail) {
    char *d = make_dir(name);
    char cfg[256];
    snprintf(cfg, sizeof cfg,
             "{\"name\":\"%s\",\"recipe\":\"%s\",\"model\":{\"n_layer\":2},\"tokens_per_step\":100,"
             "\"steps\":%d,\"extra\":[1,2]}\n", name, recipe, steps);
    write_file(d, "run.json", cfg);
    fqt_buf m = {0};
    for (int s = 1; s <= steps; s++) {
        fqt_buf_printf(&m, "{\"kind\":\"train\",\"step\":%d,\"tokens\":%d,\"loss\":%g,\"lr\":0.0006,"
                           "\"grad_norm\":1.2,\"tok_per_s\":%g,\"phase\":\"fqt\",\"new_field\":true}\n",
                       s, s * 100, 6.0 - s / 10.0, s <= 2 ? 50000.0 : tps);
        if (s % 5 == 0) {
            double v = s == steps ? last_val : 5.0 - s / 10.0;
            fqt_buf_printf(&m, "{\"kind\":\"val\",\"step\":%d,\"tokens\":%d,\"val_loss\":%.17g,\"val_ppl\":%.17g}\n",
                           s, s * 100, v, exp(v));
            fqt_buf_printf(&m, "{\"kind\":\"gnr\",\"step\":%d,\"tokens\":%d,\"layer\":\"all\",\"r\":%g}\n"
                               "{\"kind\":\"gnr\",\"step\":%d,\"layer\":\"layers.0.mlp.down_proj\",\"r\":9}\n",
                           s, s * 100, 3.0 - s / 10.0, s);
            fqt_buf_printf(&m, "{\"kind\":\"quant\",\"step\":%d,\"layer\":\"layers.0.self_attn.q_proj\","
                               "\"gemm\":\"fprop\",\"operand\":\"x\",\"snr_db\":18.2,\"saturated\":0.001,"
                               "\"flushed\":0.02,\"hist\":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16]}\n", s);
        }
        if (s == 6) fqt_buf_printf(&m, "{\"kind\":\"event\",\"step\":6,\"msg\":\"switch to QAF\"}\n"
                                       "{\"kind\":\"mystery\",\"x\":1}\n\n");
    }
    if (final_line) fqt_buf_printf(&m, "%s\n", final_line);
    if (tail) fqt_buf_printf(&m, "%s", tail);
    write_file(d, "metrics.jsonl", m.s);
    fqt_buf_free(&m);
    return d;
}

static void test_load_and_summary(char **dirs, fqt_run_metrics *runs) {
    /* dirs: nvfp4 (no final), bf16 (final), mxfp4 (truncated last line) */
    for (int i = 0; i < 3; i++) {
        fqt_status st = fqt_run_metrics_load(dirs[i], &runs[i]);
        CHECK_MSG(st == FQT_OK, "%s: %s", dirs[i], fqt_last_error());
    }
    const fqt_run_metrics *a = &runs[0];
    CHECK(!strcmp(a->name, "nvfp4") && !strcmp(a->recipe, "nvfp4"));
    CHECK(a->tokens_per_step == 100 && a->steps == 20);
    CHECK(a->n_train == 20 && a->n_val == 4 && a->n_gnr == 4 && a->n_events == 1);
    CHECK(!a->final.present && a->warning == NULL);
    CHECK(a->n_events == 1 && a->events[0].tokens == 600 && !strcmp(a->events[0].msg, "switch to QAF"));
    CHECK(!strcmp(a->train[0].phase, "fqt") && a->train[3].loss == 6.0 - 0.4);

    const fqt_run_metrics *c = &runs[2];
    CHECK(c->warning && strstr(c->warning, "metrics.jsonl:") && strstr(c->warning, "truncated"));
    CHECK(c->n_train == 10);

    fqt_run_summary rows[3];
    int bi = -1;
    CHECK(fqt_report_summarize(runs, 3, NULL, rows, &bi) == FQT_OK);
    CHECK(bi == 1 && rows[1].is_baseline && !rows[0].is_baseline);
    /* bf16: from "final" */
    CHECK(rows[1].val_loss == 3.0 && rows[1].tok_per_s == 1234.0 && rows[1].steps == 10 && rows[1].tokens == 1000);
    CHECK(fabs(rows[1].val_ppl - 20.0) < 1e-12);
    CHECK(rows[1].gap_abs == 0 && rows[1].gap_pct == 0);
    /* nvfp4: last val point and the mean tok/s without the first two steps */
    CHECK(rows[0].val_loss == 3.3 && rows[0].steps == 20 && rows[0].tokens == 2000);
    CHECK(fabs(rows[0].val_ppl - exp(3.3)) < 1e-9);
    CHECK(rows[0].tok_per_s == 2000.0);
    CHECK_MSG(fabs(rows[0].gap_abs - 0.3) < 1e-12, "gap %.17g", rows[0].gap_abs);
    CHECK_MSG(fabs(rows[0].gap_pct - 10.0) < 1e-9, "gap %% %.17g", rows[0].gap_pct);
    /* mxfp4: truncated final line skipped, so its last val point counts */
    CHECK(rows[2].val_loss == 3.6 && rows[2].steps == 10);
    CHECK(fabs(rows[2].gap_pct - 20.0) < 1e-9);

    fqt_buf t = {0};
    fqt_report_table(rows, 3, false, &t);
    CHECK(strstr(t.s, "final val loss") && strstr(t.s, "tokens/s"));
    CHECK(strstr(t.s, "+0.3000") && strstr(t.s, "+10.00%") && strstr(t.s, "+20.00%") && strstr(t.s, "baseline"));
    CHECK(strstr(t.s, "3.3000") && strstr(t.s, "2000") && strstr(t.s, "1234"));
    CHECK(strstr(t.s, "baseline: bf16\n") != NULL);
    /* rows in command-line order, all lines equally wide */
    const char *l1 = strchr(t.s, '\n') + 1, *l2 = strchr(l1, '\n') + 1;
    CHECK(!strncmp(l2, "nvfp4 ", 6));
    CHECK(strchr(t.s, '\n') - t.s == strchr(l1, '\n') - l1);
    fqt_buf_free(&t);
    fqt_report_table(rows, 3, true, &t);
    CHECK(!strncmp(t.s, "| run", 5) && strstr(t.s, "| :--") && count(t.s, "\n|") == 4);
    fqt_buf_free(&t);

    /* An explicit baseline, by name or by recipe; an unknown one is an error. */
    CHECK(fqt_report_summarize(runs, 3, "nvfp4", rows, &bi) == FQT_OK && bi == 0);
    CHECK(fabs(rows[1].gap_abs + 0.3) < 1e-12);
    CHECK(fqt_report_summarize(runs, 3, "mxfp4", rows, &bi) == FQT_OK && bi == 2);
    CHECK(fqt_report_summarize(runs, 3, "fp8", rows, &bi) == FQT_ERR_ARG && strstr(fqt_last_error(), "fp8"));
    CHECK(fqt_report_summarize(runs, 0, NULL, rows, &bi) == FQT_ERR_ARG);
}

static void expect_error(const char *dir, fqt_status want, const char *needle) {
    fqt_run_metrics r;
    fqt_status st = fqt_run_metrics_load(dir, &r);
    CHECK_MSG(st == want, "%s: status %d, want %d (%s)", dir, (int)st, (int)want, fqt_last_error());
    CHECK_MSG(strstr(fqt_last_error(), needle) != NULL, "'%s' lacks '%s'", fqt_last_error(), needle);
    fqt_run_metrics_free(&r);
}

static void test_errors(void) {
    const char *cfg = "{\"name\":\"x\",\"recipe\":\"nvfp4\",\"model\":{},\"tokens_per_step\":10,\"steps\":5}";
    char *d = make_dir("bad_mid");
    write_file(d, "run.json", cfg);
    write_file(d, "metrics.jsonl", "{\"kind\":\"train\",\"step\":1,\"loss\":5}\n\n{\"kind\":\"train\",\"step\":2,\"loss\":}\n"
                                   "{\"kind\":\"train\",\"step\":3,\"loss\":5}\n");
    expect_error(d, FQT_ERR_FORMAT, "bad_mid/metrics.jsonl:3:");

    d = make_dir("bad_last_nl");   /* a complete last line (newline) that is broken: an error */
    write_file(d, "run.json", cfg);
    write_file(d, "metrics.jsonl", "{\"kind\":\"train\",\"step\":1,\"loss\":5}\n{\"kind\":\"tra\n");
    expect_error(d, FQT_ERR_FORMAT, "bad_last_nl/metrics.jsonl:2:");

    d = make_dir("bad_type");
    write_file(d, "run.json", cfg);
    write_file(d, "metrics.jsonl", "{\"kind\":\"val\",\"step\":1,\"val_loss\":\"low\"}\n");
    expect_error(d, FQT_ERR_FORMAT, "metrics.jsonl:1: \"val_loss\" is not a number");

    d = make_dir("no_step");
    write_file(d, "run.json", cfg);
    write_file(d, "metrics.jsonl", "{\"kind\":\"train\",\"loss\":5}\n");
    expect_error(d, FQT_ERR_FORMAT, "metrics.jsonl:1: missing \"step\"");

    d = make_dir("no_kind");
    write_file(d, "run.json", cfg);
    write_file(d, "metrics.jsonl", "[1,2]\n");
    expect_error(d, FQT_ERR_FORMAT, "metrics.jsonl:1: not a JSON object");

    d = make_dir("no_metrics");
    write_file(d, "run.json", cfg);
    expect_error(d, FQT_ERR_IO, "no_metrics/metrics.jsonl: cannot open");

    d = make_dir("no_config");
    write_file(d, "metrics.jsonl", "");
    expect_error(d, FQT_ERR_IO, "no_config/run.json: cannot open");

    d = make_dir("bad_config");
    write_file(d, "run.json", "{\"name\":");
    write_file(d, "metrics.jsonl", "");
    expect_error(d, FQT_ERR_FORMAT, "bad_config/run.json: JSON");

    /* Empty metrics and a missing name: loads, name from the directory, all numbers NaN. */
    d = make_dir("empty_run");
    write_file(d, "run.json", "{\"recipe\":\"fp8\"}");
    write_file(d, "metrics.jsonl", "");
    fqt_run_metrics r;
    CHECK(fqt_run_metrics_load(d, &r) == FQT_OK && !strcmp(r.name, "empty_run"));
    fqt_run_summary s;
    CHECK(fqt_report_summarize(&r, 1, NULL, &s, NULL) == FQT_OK);
    CHECK(isnan(s.val_loss) && isnan(s.tok_per_s) && s.steps == 0);
    fqt_buf t = {0};
    fqt_report_table(&s, 1, false, &t);
    CHECK(!strstr(t.s, "nan") && strstr(t.s, "empty_run"));
    fqt_buf_free(&t);
    /* Its figure has empty series but is still valid SVG. */
    fqt_svg_figure *f = fqt_report_figure(&r, 1, NULL);
    fqt_svg_render(f, &t);
    well_formed(t.s, "empty run figure");
    CHECK(count(t.s, "<polyline") == 0 && count(t.s, "class=\"legend-item\"") == 2);
    fqt_buf_free(&t);
    fqt_svg_figure_free(f);
    fqt_run_metrics_free(&r);
}

static void test_report_figure(const fqt_run_metrics *runs) {
    for (int logx = 0; logx < 2; logx++) {
        fqt_report_plot_opts o = {.logx = logx, .ema_beta = -1};
        fqt_svg_figure *f = fqt_report_figure(runs, 3, &o);
        fqt_buf b = {0};
        fqt_svg_render(f, &b);
        well_formed(b.s, logx ? "report figure (logx)" : "report figure");
        /* (a) the raw loss per run (runs of <= 100 points are not smoothed, and the label
         * says so), (b) validation per run, (c) gnr per run */
        CHECK_MSG(count(b.s, "<polyline") == 3 + 3 + 3, "%d polylines", count(b.s, "<polyline"));
        CHECK(!strstr(b.s, "EMA") && strstr(b.s, "not smoothed"));
        {
            /* With smoothing: raw faint + EMA per run, and the label names the EMA. */
            fqt_report_plot_opts os = {.logx = logx, .ema_beta = 0.5};
            fqt_svg_figure *fs = fqt_report_figure(runs, 3, &os);
            fqt_buf bs = {0};
            fqt_svg_render(fs, &bs);
            CHECK_MSG(count(bs.s, "<polyline") == 3 * 2 + 3 + 3, "%d polylines", count(bs.s, "<polyline"));
            CHECK(strstr(bs.s, "EMA") && !strstr(bs.s, "not smoothed"));
            fqt_buf_free(&bs);
            fqt_svg_figure_free(fs);
        }
        CHECK(count(b.s, "class=\"legend-item\"") == 3 * 3);
        CHECK(count(b.s, "class=\"panel\"") == 3);
        CHECK(count(b.s, "<circle") >= 4 + 4 + 2);
        CHECK(count(b.s, "class=\"ref\"") == 1 && strstr(b.s, "\xe2\x88\x9a" "3"));
        /* "switch to QAF" at 600 tokens, logged by all three runs: drawn once per loss panel */
        CHECK(count(b.s, "class=\"event\"") == 2 && count(b.s, "switch to QAF") == 2);
        CHECK(count(b.s, "(c) gradient-to-noise ratio") == 1);
        fqt_buf_free(&b);
        fqt_svg_figure_free(f);
    }
    /* Without gnr there is no panel (c). */
    fqt_run_metrics r = runs[1];
    r.n_gnr = 0;
    fqt_svg_figure *f = fqt_report_figure(&r, 1, NULL);
    fqt_buf b = {0};
    fqt_svg_render(f, &b);
    well_formed(b.s, "no-gnr figure");
    CHECK(count(b.s, "class=\"panel\"") == 2 && !strstr(b.s, "gradient-to-noise"));
    fqt_buf_free(&b);
    fqt_svg_figure_free(f);
}

static void test_svg_edges(void) {
    fqt_svg_figure *f = fqt_svg_figure_new("edge <cases> & \"quotes\"", 2, 0, 0);
    double x[] = {1, 2, NAN, 4, 5}, y[] = {1, NAN, 3, 4, INFINITY};
    double same[] = {2.5, 2.5, 2.5, 2.5, 2.5};
    double nan5[] = {NAN, NAN, NAN, NAN, NAN};
    int p0 = fqt_svg_panel_add(f, "a < b & c > d", "x", "y", false);
    fqt_svg_series_add(f, p0, "empty", x, y, 0, NULL);
    fqt_svg_series_add(f, p0, "all missing", x, nan5, 5, NULL);
    fqt_svg_series_add(f, p0, "some missing <&>", x, y, 5, NULL);
    fqt_svg_style mk = {.color = 3, .markers = true};
    fqt_svg_series_add(f, p0, "flat", x, same, 5, &mk);
    fqt_svg_series_add(f, p0, NULL, x, same, 1, NULL);             /* single point, no legend */
    fqt_svg_hline_add(f, p0, NAN, "nowhere");
    fqt_svg_vline_add(f, p0, NAN, "never", 0);
    int p1 = fqt_svg_panel_add(f, NULL, NULL, NULL, true);          /* log x, nothing in it */
    fqt_svg_vline_add(f, p1, -1, "neg", -1);
    int p2 = fqt_svg_panel_add(f, "single", "tokens", "loss", true);
    double one_x = 1000, one_y = 3;
    fqt_svg_series_add(f, p2, "one", &one_x, &one_y, 1, NULL);
    int p3 = fqt_svg_panel_add(f, "wide log", "tokens", "loss", true);
    double lx[] = {-5, 0, 10, 1e3, 1e6, 1e9, 1e12}, ly[] = {1, 2, 3, 4, 5, 6, 7};
    fqt_svg_series_add(f, p3, "decades", lx, ly, 7, NULL);
    fqt_svg_panel_ylim(f, p3, 0, NAN);
    fqt_buf b = {0};
    fqt_svg_render(f, &b);
    well_formed(b.s, "edge figure");
    CHECK(strstr(b.s, "edge &lt;cases&gt; &amp; &quot;quotes&quot;") != NULL);
    CHECK(strstr(b.s, "a &lt; b &amp; c &gt; d") != NULL);
    CHECK(strstr(b.s, "some missing &lt;&amp;&gt;") != NULL);
    /* some missing (2 points), flat (4), single (1), one (1), decades (5 positive) */
    CHECK_MSG(count(b.s, "<polyline") == 5, "%d polylines", count(b.s, "<polyline"));
    CHECK(count(b.s, "class=\"legend-item\"") == 4 + 1 + 1);
    CHECK(!strstr(b.s, "nowhere") && !strstr(b.s, "never") && !strstr(b.s, "neg<"));
    CHECK(count(b.s, "class=\"panel\"") == 4 && count(b.s, "<clipPath") == 4);
    /* The polyline of "some missing" has exactly its two drawable points. */
    const char *pl = strstr(b.s, "<polyline");
    const char *pts = pl ? strstr(pl, "points=\"") : NULL;
    CHECK(pts != NULL);
    if (pts) {
        const char *end = strchr(pts + 8, '"');
        int spaces = 0;
        for (const char *c = pts + 8; c < end; c++) spaces += *c == ' ';
        CHECK_MSG(spaces == 1, "%d spaces", spaces);
    }
    char path[128];
    snprintf(path, sizeof path, "%s/edge.svg", base_dir);
    CHECK(fqt_svg_write(f, path) == FQT_OK);
    FILE *fp = fopen(path, "rb");
    CHECK(fp != NULL);
    if (fp) {
        fseek(fp, 0, SEEK_END);
        CHECK(ftell(fp) == (long)b.len);
        fclose(fp);
    }
    CHECK(fqt_svg_write(f, "/nonexistent-dir/x.svg") == FQT_ERR_IO && strstr(fqt_last_error(), "/nonexistent-dir/x.svg"));
    fqt_buf_free(&b);
    fqt_svg_figure_free(f);

    /* An empty figure is valid too. */
    f = fqt_svg_figure_new(NULL, 3, 0, 0);
    fqt_svg_render(f, &b);
    well_formed(b.s, "empty figure");
    fqt_buf_free(&b);
    fqt_svg_figure_free(f);
}

static void test_ticks_and_ema(void) {
    double t[64], step;
    int n = fqt_svg_nice_ticks(0, 1, 5, t, 64, &step);
    CHECK(n == 6 && step == 0.2 && t[0] == 0 && fabs(t[5] - 1) < 1e-12);
    n = fqt_svg_nice_ticks(3.4, 10.6, 5, t, 64, &step);
    CHECK(step == 1 && n == 7 && t[0] == 4 && t[6] == 10);
    n = fqt_svg_nice_ticks(-0.013, 0.041, 5, t, 64, &step);
    CHECK(fabs(step - 0.01) < 1e-15 && n == 6 && t[1] == 0);
    n = fqt_svg_nice_ticks(0, 4.9e8, 5, t, 64, &step);
    CHECK(step == 1e8 && n == 5);
    for (double span = 1e-6; span < 1e9; span *= 3.7) {
        n = fqt_svg_nice_ticks(1.0, 1.0 + span, 5, t, 64, &step);
        double m = step / pow(10, floor(log10(step) + 1e-12));
        CHECK_MSG(n >= 2 && n <= 11, "span %g: %d ticks", span, n);
        CHECK_MSG(fabs(m - 1) < 1e-9 || fabs(m - 2) < 1e-9 || fabs(m - 5) < 1e-9, "step %g", step);
    }
    double y[6] = {2, 2, NAN, 2, 2, 2}, e[6];
    fqt_report_ema(y, 6, 0.9, e);
    CHECK(fabs(e[0] - 2) < 1e-12 && isnan(e[2]) && fabs(e[5] - 2) < 1e-12);
    double z[3] = {1, 5, 3};
    fqt_report_ema(z, 3, 0, e);
    CHECK(e[0] == 1 && e[1] == 5 && e[2] == 3);
    /* On a ramp the lag is bounded by the ~10% window early and tends to beta/(1-beta). */
    double ramp[1000], er[1000];
    for (int i = 0; i < 1000; i++) ramp[i] = i;
    fqt_report_ema(ramp, 1000, 0.9, er);
    CHECK(er[0] == 0);
    bool lag_ok = true;
    for (int i = 1; i < 1000; i++) lag_ok &= ramp[i] - er[i] >= 0 && ramp[i] - er[i] <= 0.1 * i + 1;
    CHECK(lag_ok);
    CHECK_MSG(fabs((ramp[999] - er[999]) - 9.0) < 0.01, "lag %g", ramp[999] - er[999]);
}

/* `fqt report` end to end, when the test runner says where the binary is. */
static void test_cli(char **dirs) {
    const char *bin = getenv("FQT_BIN");
    if (!bin) { printf("SKIP fqt report CLI (FQT_BIN not set)\n"); return; }
    char cmd[2048], out[256];
    snprintf(out, sizeof out, "%s/cli.svg", base_dir);
    snprintf(cmd, sizeof cmd, "'%s' report --out '%s' '%s' '%s' --markdown '%s' > '%s/table.md' 2>/dev/null",
             bin, out, dirs[0], dirs[1], dirs[2], base_dir);
    int rc = system(cmd);
    CHECK_MSG(WIFEXITED(rc) && WEXITSTATUS(rc) == 0, "rc %d", rc);
    CHECK(access(out, R_OK) == 0);
    snprintf(cmd, sizeof cmd, "'%s' report --no-plot '%s' '%s/nope' >/dev/null 2>&1", bin, dirs[0], base_dir);
    rc = system(cmd);
    CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 1);
    snprintf(cmd, sizeof cmd, "'%s' report --frobnicate '%s' >/dev/null 2>&1", bin, dirs[0]);
    rc = system(cmd);
    CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 2);
    snprintf(cmd, sizeof cmd, "'%s' report --baseline fp8 --no-plot '%s' >/dev/null 2>&1", bin, dirs[0]);
    rc = system(cmd);
    CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 1);
    /* The default plot path: report.svg beside the first run directory. */
    char def[256];
    snprintf(def, sizeof def, "%s/report.svg", base_dir);
    snprintf(cmd, sizeof cmd, "'%s' report '%s/' >/dev/null 2>&1", bin, dirs[1]);
    rc = system(cmd);
    CHECK(WIFEXITED(rc) && WEXITSTATUS(rc) == 0 && access(def, R_OK) == 0);
}

int main(void) {
    snprintf(base_dir, sizeof base_dir, "/tmp/fqt_test_report_XXXXXX");
    if (!mkdtemp(base_dir)) { perror("mkdtemp"); return 1; }
    xml_checker_self_test();
    test_ticks_and_ema();

    char *dirs[3];
    dirs[0] = make_run("nvfp4", "nvfp4", 20, 2000, 3.3, NULL, NULL);
    dirs[1] = make_run("bf16", "bf16", 10, 900, 3.1,
                       "{\"kind\":\"final\",\"step\":10,\"tokens\":1000,\"val_loss\":3.0,\"val_ppl\":20.0,"
                       "\"wall_s\":12.5,\"tok_per_s\":1234}", NULL);
    dirs[2] = make_run("mxfp4", "mxfp4", 10, 1000, 3.6, NULL,
                       "{\"kind\":\"final\",\"step\":10,\"tokens\":1000,\"val_lo");
    fqt_run_metrics runs[3];
    test_load_and_summary(dirs, runs);
    test_report_figure(runs);
    test_errors();
    test_svg_edges();
    test_cli(dirs);
    for (int i = 0; i < 3; i++) fqt_run_metrics_free(&runs[i]);

    if (check_failed_ == 0) {
        char cmd[128];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", base_dir);
        if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", base_dir);
    } else {
        fprintf(stderr, "left the test runs in %s\n", base_dir);
    }
    return check_finish();
}
