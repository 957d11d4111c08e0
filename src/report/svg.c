/* report/svg.c — the SVG line-plot writer declared in fqt/svg.h.
 *
 * Everything is laid out in pixels by hand: each panel is a fixed-size cell with margins
 * for tick labels, axis labels and the title; data are drawn inside a clip path so a fixed
 * y range can cut them. The legend goes into whichever of a few candidate spots covers the
 * fewest drawn points. Not for: text measurement (widths are estimated from the number of
 * characters, which is good enough for the short labels of a report). */
#include "fqt/svg.h"

#include <errno.h>
#include <math.h>
#include <string.h>

typedef struct {
    char *label;
    double *x, *y;
    int64_t n;
    fqt_svg_style st;
} series;

typedef struct {
    double v;
    char *label;
    int color;
} refline;

typedef struct {
    char *title, *xlabel, *ylabel;
    bool logx;
    double ylo, yhi;            /* fixed y range ends, NaN when automatic */
    series *s;
    int64_t ns, cs;
    refline *h, *v;
    int64_t nh, ch, nv, cv;
} panel;

struct fqt_svg_figure {
    char *title;
    int ncols;
    double pw, ph;
    panel *p;
    int64_t np, cp;
};

/* Okabe & Ito (2008), "Color Universal Design": distinguishable with any common form of
 * colour blindness. Yellow is last because it is faint on white. */
static const char *const palette[FQT_SVG_PALETTE_SIZE] = {
    "#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000", "#F0E442",
};

/* Panel margins (px) around the plot area, the figure title band and the font sizes. */
enum { MARGIN_L = 64, MARGIN_R = 16, MARGIN_T = 30, MARGIN_B = 46, FIG_TITLE_H = 30 };
#define FONT "DejaVu Sans, Helvetica, Arial, sans-serif"
#define FONT_SIZE 12.0
#define LEGEND_FONT 11.0
#define CHAR_W 0.58  /* average glyph width as a fraction of the font size */

const char *fqt_svg_palette(int i) {
    if (i < 0) return "#777777";
    return palette[i % FQT_SVG_PALETTE_SIZE];
}

fqt_svg_figure *fqt_svg_figure_new(const char *title, int ncols, double panel_w, double panel_h) {
    fqt_svg_figure *f = fqt_xcalloc(1, sizeof *f);
    f->title = fqt_xstrdup(title);
    f->ncols = ncols > 0 ? ncols : 1;
    f->pw = panel_w > 0 ? panel_w : 440;
    f->ph = panel_h > 0 ? panel_h : 320;
    return f;
}

void fqt_svg_figure_free(fqt_svg_figure *f) {
    if (!f) return;
    for (int i = 0; i < f->np; i++) {
        panel *p = &f->p[i];
        free(p->title); free(p->xlabel); free(p->ylabel);
        for (int k = 0; k < p->ns; k++) { free(p->s[k].label); free(p->s[k].x); free(p->s[k].y); }
        for (int k = 0; k < p->nh; k++) free(p->h[k].label);
        for (int k = 0; k < p->nv; k++) free(p->v[k].label);
        free(p->s); free(p->h); free(p->v);
    }
    free(f->p);
    free(f->title);
    free(f);
}

int fqt_svg_panel_add(fqt_svg_figure *f, const char *title, const char *xlabel,
                      const char *ylabel, bool logx) {
    f->p = fqt_xgrow(f->p, &f->cp, f->np, sizeof *f->p);
    panel *p = &f->p[f->np];
    memset(p, 0, sizeof *p);
    p->title = fqt_xstrdup(title);
    p->xlabel = fqt_xstrdup(xlabel);
    p->ylabel = fqt_xstrdup(ylabel);
    p->logx = logx;
    p->ylo = p->yhi = NAN;
    return f->np++;
}

static panel *get_panel(fqt_svg_figure *f, int i) {
    FQT_ASSERT(i >= 0 && i < f->np);
    return &f->p[i];
}

void fqt_svg_panel_ylim(fqt_svg_figure *f, int i, double lo, double hi) {
    panel *p = get_panel(f, i);
    p->ylo = lo;
    p->yhi = hi;
}

void fqt_svg_series_add(fqt_svg_figure *f, int i, const char *label, const double *x,
                        const double *y, int64_t n, const fqt_svg_style *style) {
    panel *p = get_panel(f, i);
    FQT_ASSERT(n >= 0 && (n == 0 || (x && y)));
    p->s = fqt_xgrow(p->s, &p->cs, p->ns, sizeof *p->s);
    series *s = &p->s[p->ns];
    memset(s, 0, sizeof *s);
    s->label = fqt_xstrdup(label);
    s->n = n;
    s->x = fqt_xmalloc((size_t)n * sizeof *s->x);
    s->y = fqt_xmalloc((size_t)n * sizeof *s->y);
    if (n) {
        memcpy(s->x, x, (size_t)n * sizeof *x);
        memcpy(s->y, y, (size_t)n * sizeof *y);
    }
    if (style) s->st = *style;
    else s->st.color = p->ns;
    if (s->st.width <= 0) s->st.width = 1.6;
    if (s->st.opacity <= 0 || s->st.opacity > 1) s->st.opacity = 1;
    p->ns++;
}

void fqt_svg_hline_add(fqt_svg_figure *f, int i, double y, const char *label) {
    panel *p = get_panel(f, i);
    p->h = fqt_xgrow(p->h, &p->ch, p->nh, sizeof *p->h);
    p->h[p->nh++] = (refline){y, fqt_xstrdup(label), -1};
}

void fqt_svg_vline_add(fqt_svg_figure *f, int i, double x, const char *label, int color) {
    panel *p = get_panel(f, i);
    /* The same event logged by several runs is drawn once. */
    for (int k = 0; k < p->nv; k++)
        if (p->v[k].v == x && !strcmp(p->v[k].label ? p->v[k].label : "", label ? label : ""))
            return;
    p->v = fqt_xgrow(p->v, &p->cv, p->nv, sizeof *p->v);
    p->v[p->nv++] = (refline){x, fqt_xstrdup(label), color};
}

void fqt_svg_escape(fqt_buf *out, const char *s) {
    if (!s) return;
    for (const char *c = s; *c; c++) {
        switch (*c) {
        case '&': fqt_buf_append(out, "&amp;", 5); break;
        case '<': fqt_buf_append(out, "&lt;", 4); break;
        case '>': fqt_buf_append(out, "&gt;", 4); break;
        case '"': fqt_buf_append(out, "&quot;", 6); break;
        case '\'': fqt_buf_append(out, "&apos;", 6); break;
        default:
            /* Control characters are not allowed in XML 1.0 at all. */
            if ((unsigned char)*c < 0x20 && *c != '\t' && *c != '\n') fqt_buf_append(out, " ", 1);
            else fqt_buf_append(out, c, 1);
        }
    }
}

/* Characters (not bytes) of a UTF-8 string, for width estimates. */
static double text_width(const char *s, double font) {
    int64_t n = 0;
    for (const unsigned char *c = (const unsigned char *)s; s && *c; c++) n += (*c & 0xC0) != 0x80;
    return (double)n * font * CHAR_W;
}

int fqt_svg_nice_ticks(double lo, double hi, int target, double *ticks, int max, double *step) {
    FQT_ASSERT(isfinite(lo) && isfinite(hi) && lo < hi);
    double raw = (hi - lo) / (target > 1 ? target : 1);
    double mag = pow(10.0, floor(log10(raw)));
    double norm = raw / mag;
    double st = (norm < 1.5 ? 1.0 : norm < 3.5 ? 2.0 : norm < 7.5 ? 5.0 : 10.0) * mag;
    double k0 = ceil(lo / st - 1e-9), k1 = floor(hi / st + 1e-9);
    int n = 0;
    /* Multiply instead of accumulating, so ticks stay exact multiples of the step. */
    for (double k = k0; k <= k1 && n < max; k++) {
        double t = k * st;
        ticks[n++] = fabs(t) < st * 1e-9 ? 0.0 : t;
    }
    if (step) *step = st;
    return n;
}

/* ---- axes ---------------------------------------------------------------------------- */

typedef struct {
    double lo, hi;   /* in axis units: log10 of the value on a log axis */
    bool log;
} axis;

/* Points beyond +-FQT_SVG_MAX_ABS (a diverged loss of 1e308, say) are left out: their span
 * would overflow the axis arithmetic, and no plot can show them next to real values. */
#define FQT_SVG_MAX_ABS 1e300
static bool point_ok(const panel *p, double x, double y) {
    return isfinite(x) && isfinite(y) && fabs(x) <= FQT_SVG_MAX_ABS && fabs(y) <= FQT_SVG_MAX_ABS &&
           (!p->logx || x > 0);
}

/* Range of the data, padded by `pad` of the span on each side; a degenerate range is
 * widened so that the axis always has a positive length. */
static axis make_axis(double lo, double hi, bool log, double pad) {
    axis a = {0, 1, log};
    if (log) {
        if (!(lo <= hi)) { a.lo = 0; a.hi = 1; return a; }
        lo = log10(lo);
        hi = log10(hi);
        if (hi - lo < 1e-9) { a.lo = lo - 0.3; a.hi = hi + 0.3; return a; }
    } else {
        if (!(lo <= hi)) return a;
        if (hi - lo <= 1e-12 * fmax(fabs(lo), fabs(hi))) {
            double w = lo != 0 ? fabs(lo) * 0.05 : 0.5;
            a.lo = lo - w; a.hi = hi + w;
            return a;
        }
    }
    double span = hi - lo;
    a.lo = lo - pad * span;
    a.hi = hi + pad * span;
    return a;
}

static double axis_frac(const axis *a, double v) {
    double t = a->log ? log10(v) : v;
    return (t - a->lo) / (a->hi - a->lo);
}

/* Suffix for large values on a linear axis, so 400000000 reads as 400M. */
static double si_scale(double maxabs, const char **suffix) {
    if (maxabs >= 1e12) { *suffix = "T"; return 1e12; }
    if (maxabs >= 1e9) { *suffix = "G"; return 1e9; }
    if (maxabs >= 1e6) { *suffix = "M"; return 1e6; }
    if (maxabs >= 1e4) { *suffix = "k"; return 1e3; }
    *suffix = "";
    return 1;
}

static void fmt_linear(char *buf, size_t n, double v, double step, double scale, const char *suffix) {
    double s = step / scale;
    int dec = s >= 1 ? 0 : (int)ceil(-log10(s) - 1e-9);
    if (dec > 9) dec = 9;
    if (fabs(v) < step * 1e-6) v = 0;
    snprintf(buf, n, "%.*f%s", dec, v / scale, v == 0 ? "" : suffix);
}

static void fmt_log(char *buf, size_t n, double v) {
    const char *suffix = "";
    double scale = v >= 1e3 ? si_scale(v < 1e4 ? 1e4 : v, &suffix) : 1;
    snprintf(buf, n, "%.3g%s", v / scale, suffix);
}

/* ---- rendering ----------------------------------------------------------------------- */

typedef struct {
    double x0, y0, w, h;   /* plot area in figure pixels */
    axis ax, ay;
} frame;

static double px(const frame *fr, double x) { return fr->x0 + axis_frac(&fr->ax, x) * fr->w; }
static double py(const frame *fr, double y) { return fr->y0 + fr->h - axis_frac(&fr->ay, y) * fr->h; }

static void text(fqt_buf *o, double x, double y, const char *anchor, double size,
                 const char *extra, const char *s) {
    fqt_buf_printf(o, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"%s\" font-size=\"%g\"%s%s>",
                   x, y, anchor, size, extra ? " " : "", extra ? extra : "");
    fqt_svg_escape(o, s);
    fqt_buf_append(o, "</text>\n", 8);
}

static void compute_frame(const panel *p, double ox, double oy, double pw, double ph, frame *fr) {
    fr->x0 = ox + MARGIN_L;
    fr->y0 = oy + MARGIN_T;
    fr->w = pw - MARGIN_L - MARGIN_R;
    fr->h = ph - MARGIN_T - MARGIN_B;
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    for (int k = 0; k < p->ns; k++)
        for (int64_t i = 0; i < p->s[k].n; i++) {
            double x = p->s[k].x[i], y = p->s[k].y[i];
            if (!point_ok(p, x, y)) continue;
            xlo = fmin(xlo, x); xhi = fmax(xhi, x);
            ylo = fmin(ylo, y); yhi = fmax(yhi, y);
        }
    for (int k = 0; k < p->nh; k++)
        if (isfinite(p->h[k].v) && fabs(p->h[k].v) <= FQT_SVG_MAX_ABS) {
            ylo = fmin(ylo, p->h[k].v);
            yhi = fmax(yhi, p->h[k].v);
        }
    fr->ax = make_axis(xlo, xhi, p->logx, 0.02);
    fr->ay = make_axis(ylo, yhi, false, 0.05);
    if (isfinite(p->ylo) && fabs(p->ylo) <= FQT_SVG_MAX_ABS) fr->ay.lo = p->ylo;
    if (isfinite(p->yhi) && fabs(p->yhi) <= FQT_SVG_MAX_ABS) fr->ay.hi = p->yhi;
    if (!(fr->ay.hi > fr->ay.lo)) fr->ay.hi = fr->ay.lo + 1;
}

static void draw_xticks(fqt_buf *o, const frame *fr) {
    double yb = fr->y0 + fr->h;
    char lab[32];
    if (!fr->ax.log) {
        double t[64], step;
        int n = fqt_svg_nice_ticks(fr->ax.lo, fr->ax.hi, 5, t, 64, &step);
        const char *suffix;
        double scale = si_scale(fmax(fabs(fr->ax.lo), fabs(fr->ax.hi)), &suffix);
        for (int i = 0; i < n; i++) {
            double x = px(fr, t[i]);
            fqt_buf_printf(o, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e6e6e6\"/>\n",
                           x, fr->y0, x, yb);
            fqt_buf_printf(o, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n",
                           x, yb, x, yb + 5);
            fmt_linear(lab, sizeof lab, t[i], step, scale, suffix);
            text(o, x, yb + 18, "middle", FONT_SIZE - 1, NULL, lab);
        }
        return;
    }
    int k0 = (int)floor(fr->ax.lo), k1 = (int)ceil(fr->ax.hi);
    int majors = 0;
    for (int k = k0; k <= k1; k++) majors += k >= fr->ax.lo - 1e-9 && k <= fr->ax.hi + 1e-9;
    /* Label every decade, every other one when there are many, and also the 2s and 5s when
     * fewer than two decades are visible. */
    int every = majors > 7 ? (majors + 5) / 6 : 1;
    for (int k = k0; k <= k1; k++) {
        /* Minor ticks only while they stay legible. */
        for (int m = 1; m <= (majors > 6 ? 1 : 9); m++) {
            double v = m * pow(10.0, k);
            double t = log10(v);
            if (t < fr->ax.lo - 1e-9 || t > fr->ax.hi + 1e-9) continue;
            double x = px(fr, v);
            bool major = m == 1;
            bool labeled = major ? (((k % every) + every) % every == 0) : (majors < 2 && (m == 2 || m == 5));
            if (major)
                fqt_buf_printf(o, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e6e6e6\"/>\n",
                               x, fr->y0, x, yb);
            fqt_buf_printf(o, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n",
                           x, yb, x, yb + (major ? 5 : 3));
            if (labeled) {
                fmt_log(lab, sizeof lab, v);
                text(o, x, yb + 18, "middle", FONT_SIZE - 1, NULL, lab);
            }
        }
    }
}

static void draw_yticks(fqt_buf *o, const frame *fr) {
    double t[64], step;
    char lab[32];
    int n = fqt_svg_nice_ticks(fr->ay.lo, fr->ay.hi, 5, t, 64, &step);
    const char *suffix;
    double scale = si_scale(fmax(fabs(fr->ay.lo), fabs(fr->ay.hi)), &suffix);
    for (int i = 0; i < n; i++) {
        double y = py(fr, t[i]);
        fqt_buf_printf(o, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e6e6e6\"/>\n",
                       fr->x0, y, fr->x0 + fr->w, y);
        fqt_buf_printf(o, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n",
                       fr->x0 - 5, y, fr->x0, y);
        fmt_linear(lab, sizeof lab, t[i], step, scale, suffix);
        text(o, fr->x0 - 8, y + 4, "end", FONT_SIZE - 1, NULL, lab);
    }
}

/* Drawn points of a series in pixels; returns how many. */
static int64_t series_pixels(const panel *p, const series *s, const frame *fr, double *qx, double *qy) {
    int64_t m = 0;
    for (int64_t i = 0; i < s->n; i++) {
        if (!point_ok(p, s->x[i], s->y[i])) continue;
        qx[m] = px(fr, s->x[i]);
        qy[m] = py(fr, s->y[i]);
        m++;
    }
    return m;
}

typedef struct { double x, y, w, h; } box;

static bool in_box(const box *b, double x, double y) {
    return x >= b->x - 2 && x <= b->x + b->w + 2 && y >= b->y - 2 && y <= b->y + b->h + 2;
}

/* How much of the drawing a legend box at b would cover: points sampled every few pixels
 * along every line, reference line and event marker. */
static double coverage(const panel *p, const frame *fr, const box *b, double *qx, double *qy) {
    double hits = 0;
    for (int k = 0; k < p->ns; k++) {
        int64_t m = series_pixels(p, &p->s[k], fr, qx, qy);
        double weight = p->s[k].st.opacity < 0.5 ? 0.3 : 1.0; /* faint lines matter less */
        for (int64_t i = 0; i < m; i++) {
            if (in_box(b, qx[i], qy[i])) hits += weight;
            if (i + 1 < m && !p->s[k].st.no_line) {
                double dx = qx[i + 1] - qx[i], dy = qy[i + 1] - qy[i];
                int steps = (int)fmin(200, sqrt(dx * dx + dy * dy) / 3);
                for (int j = 1; j < steps; j++)
                    if (in_box(b, qx[i] + dx * j / steps, qy[i] + dy * j / steps)) hits += weight;
            }
        }
    }
    for (int k = 0; k < p->nh; k++) {
        double y = py(fr, p->h[k].v);
        if (y >= b->y && y <= b->y + b->h) hits += b->w / 3;
    }
    for (int k = 0; k < p->nv; k++) {
        if (!point_ok(p, p->v[k].v, 0)) continue;
        double x = px(fr, p->v[k].v);
        if (x >= b->x - 14 && x <= b->x + b->w + 2) hits += b->h / 3;
    }
    return hits;
}

static void draw_legend(fqt_buf *o, const panel *p, const frame *fr) {
    int n = 0;
    double tw = 0;
    for (int k = 0; k < p->ns; k++)
        if (p->s[k].label) { n++; tw = fmax(tw, text_width(p->s[k].label, LEGEND_FONT)); }
    if (!n) return;
    const double row = 16, sample = 22, pad = 7;
    box b = {0, 0, pad + sample + 6 + tw + pad, pad + n * row};
    if (b.w > fr->w - 12) b.w = fr->w - 12;
    /* Candidate spots in order of preference; ties keep the earlier one. */
    const double inset = 8;
    const double cx[] = {1, 0, 1, 0, 1, 0, 0.5, 0.5}, cy[] = {0, 0, 1, 1, 0.5, 0.5, 0, 1};
    int64_t most = 0;
    for (int k = 0; k < p->ns; k++) if (p->s[k].n > most) most = p->s[k].n;
    double *qx = fqt_xmalloc((size_t)(most ? most : 1) * sizeof *qx);
    double *qy = fqt_xmalloc((size_t)(most ? most : 1) * sizeof *qy);
    double best = INFINITY;
    box chosen = b;
    for (size_t c = 0; c < sizeof cx / sizeof cx[0]; c++) {
        box t = b;
        t.x = fr->x0 + inset + cx[c] * (fr->w - 2 * inset - b.w);
        t.y = fr->y0 + inset + cy[c] * (fr->h - 2 * inset - b.h);
        double score = coverage(p, fr, &t, qx, qy);
        if (score < best) { best = score; chosen = t; }
    }
    free(qx);
    free(qy);
    fqt_buf_printf(o, "<g class=\"legend\">\n<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                      "rx=\"3\" fill=\"#ffffff\" fill-opacity=\"0.88\" stroke=\"#bbbbbb\"/>\n",
                   chosen.x, chosen.y, chosen.w, chosen.h);
    int r = 0;
    for (int k = 0; k < p->ns; k++) {
        const series *s = &p->s[k];
        if (!s->label) continue;
        double y = chosen.y + pad + row * r + row / 2 - 3;
        double x = chosen.x + pad;
        const char *col = fqt_svg_palette(s->st.color);
        fqt_buf_printf(o, "<g class=\"legend-item\">");
        if (!s->st.no_line)
            fqt_buf_printf(o, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                              "stroke-width=\"%.2g\"%s/>",
                           x, y, x + sample, y, col, fmax(s->st.width, 2.0),
                           s->st.dashed ? " stroke-dasharray=\"5 3\"" : "");
        if (s->st.markers)
            fqt_buf_printf(o, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\" fill=\"%s\" stroke=\"#ffffff\" "
                              "stroke-width=\"0.8\"/>", x + sample / 2, y, col);
        text(o, x + sample + 6, y + 4, "start", LEGEND_FONT, NULL, s->label);
        fqt_buf_printf(o, "</g>\n");
        r++;
    }
    fqt_buf_printf(o, "</g>\n");
}

static void draw_series(fqt_buf *o, const panel *p, const series *s, const frame *fr) {
    double *qx = fqt_xmalloc((size_t)(s->n ? s->n : 1) * sizeof *qx);
    double *qy = fqt_xmalloc((size_t)(s->n ? s->n : 1) * sizeof *qy);
    int64_t m = series_pixels(p, s, fr, qx, qy);
    const char *col = fqt_svg_palette(s->st.color);
    if (m > 0 && !s->st.no_line) {
        fqt_buf_printf(o, "<polyline class=\"series\" fill=\"none\" stroke=\"%s\" stroke-width=\"%.2g\" "
                          "stroke-linejoin=\"round\" stroke-linecap=\"round\"",
                       col, s->st.width);
        if (s->st.opacity < 1) fqt_buf_printf(o, " stroke-opacity=\"%.2g\"", s->st.opacity);
        if (s->st.dashed) fqt_buf_printf(o, " stroke-dasharray=\"5 3\"");
        fqt_buf_printf(o, " points=\"");
        for (int64_t i = 0; i < m; i++) fqt_buf_printf(o, "%s%.1f,%.1f", i ? " " : "", qx[i], qy[i]);
        fqt_buf_printf(o, "\"/>\n");
    }
    if (m > 0 && s->st.markers) {
        fqt_buf_printf(o, "<g class=\"markers\" fill=\"%s\" stroke=\"#ffffff\" stroke-width=\"0.8\">", col);
        for (int64_t i = 0; i < m; i++)
            fqt_buf_printf(o, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3\"/>", qx[i], qy[i]);
        fqt_buf_printf(o, "</g>\n");
    }
    free(qx);
    free(qy);
}

static void draw_panel(fqt_buf *o, const panel *p, int idx, double ox, double oy, double pw, double ph) {
    frame fr;
    compute_frame(p, ox, oy, pw, ph, &fr);
    fqt_buf_printf(o, "<g class=\"panel\">\n");
    fqt_buf_printf(o, "<clipPath id=\"clip%d\"><rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\"/></clipPath>\n",
                   idx, fr.x0, fr.y0, fr.w, fr.h);
    draw_yticks(o, &fr);
    draw_xticks(o, &fr);
    fqt_buf_printf(o, "<g clip-path=\"url(#clip%d)\">\n", idx);
    /* Event markers first, so the data are drawn over them. */
    for (int k = 0; k < p->nv; k++) {
        const refline *v = &p->v[k];
        if (!point_ok(p, v->v, 0)) continue;
        double f = axis_frac(&fr.ax, v->v);
        if (f < 0 || f > 1) continue;
        double x = px(&fr, v->v);
        fqt_buf_printf(o, "<line class=\"event\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                          "stroke-width=\"1.2\" stroke-dasharray=\"6 4\" stroke-opacity=\"0.8\"/>\n",
                       x, fr.y0, x, fr.y0 + fr.h, fqt_svg_palette(v->color));
        if (v->label) {
            char tr[96];
            snprintf(tr, sizeof tr, "transform=\"rotate(-90 %.1f %.1f)\" fill=\"%s\"", x + 11, fr.y0 + 6,
                     fqt_svg_palette(v->color));
            text(o, x + 11, fr.y0 + 6, "end", 10, tr, v->label);
        }
    }
    for (int k = 0; k < p->nh; k++) {
        const refline *h = &p->h[k];
        if (!isfinite(h->v)) continue;
        double y = py(&fr, h->v);
        fqt_buf_printf(o, "<line class=\"ref\" x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#555555\" "
                          "stroke-width=\"1.2\" stroke-dasharray=\"6 4\"/>\n",
                       fr.x0, y, fr.x0 + fr.w, y);
    }
    for (int k = 0; k < p->ns; k++) draw_series(o, p, &p->s[k], &fr);
    /* Reference-line labels over the data, with a white halo to stay readable. */
    for (int k = 0; k < p->nh; k++) {
        const refline *h = &p->h[k];
        if (!isfinite(h->v) || !h->label) continue;
        double y = py(&fr, h->v);
        bool below = y < fr.y0 + 16;
        text(o, fr.x0 + 6, below ? y + 14 : y - 5, "start", 11,
             "fill=\"#333333\" stroke=\"#ffffff\" stroke-width=\"3\" paint-order=\"stroke\"", h->label);
    }
    fqt_buf_printf(o, "</g>\n");
    fqt_buf_printf(o, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#333333\"/>\n",
                   fr.x0, fr.y0, fr.w, fr.h);
    draw_legend(o, p, &fr);
    if (p->title) text(o, fr.x0 + fr.w / 2, oy + 20, "middle", 13, "font-weight=\"bold\"", p->title);
    if (p->xlabel) text(o, fr.x0 + fr.w / 2, fr.y0 + fr.h + 38, "middle", FONT_SIZE, NULL, p->xlabel);
    if (p->ylabel) {
        char tr[80];
        double x = ox + 16, y = fr.y0 + fr.h / 2;
        snprintf(tr, sizeof tr, "transform=\"rotate(-90 %.1f %.1f)\"", x, y);
        text(o, x, y, "middle", FONT_SIZE, tr, p->ylabel);
    }
    fqt_buf_printf(o, "</g>\n");
}

void fqt_svg_render(const fqt_svg_figure *f, fqt_buf *out) {
    int cols = f->np < f->ncols ? (f->np ? f->np : 1) : f->ncols;
    int rows = f->np ? (f->np + f->ncols - 1) / f->ncols : 1;
    double top = f->title ? FIG_TITLE_H : 0;
    double W = cols * f->pw, H = top + rows * f->ph;
    fqt_buf_printf(out, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
                        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
                        "viewBox=\"0 0 %.0f %.0f\" font-family=\"%s\" font-size=\"%g\" fill=\"#222222\">\n"
                        "<rect width=\"100%%\" height=\"100%%\" fill=\"#ffffff\"/>\n",
                   W, H, W, H, FONT, FONT_SIZE);
    if (f->title) text(out, W / 2, 21, "middle", 15, "font-weight=\"bold\"", f->title);
    for (int i = 0; i < f->np; i++)
        draw_panel(out, &f->p[i], i, (i % f->ncols) * f->pw, top + (double)(i / f->ncols) * f->ph,
                   f->pw, f->ph);
    fqt_buf_printf(out, "</svg>\n");
}

fqt_status fqt_svg_write(const fqt_svg_figure *f, const char *path) {
    fqt_buf b = {0};
    fqt_svg_render(f, &b);
    fqt_status st = FQT_OK;
    FILE *fp = fopen(path, "wb");
    if (!fp) {
        fqt_set_error("%s: cannot create: %s", path, strerror(errno));
        st = FQT_ERR_IO;
        goto out;
    }
    if (fwrite(b.s, 1, b.len, fp) != b.len) {
        fqt_set_error("%s: write failed: %s", path, strerror(errno));
        st = FQT_ERR_IO;
    }
    if (fclose(fp) != 0 && st == FQT_OK) {
        fqt_set_error("%s: write failed: %s", path, strerror(errno));
        st = FQT_ERR_IO;
    }
out:
    fqt_buf_free(&b);
    return st;
}
