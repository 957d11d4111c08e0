/* fqt/svg.h — a small hand-written SVG line-plot writer for training reports.
 *
 * A figure is a grid of panels; each panel has a linear y axis, a linear or log-scaled x
 * axis, "nice" ticks (1-2-5 steps; decades with minor ticks on a log axis), a title, axis
 * labels, a legend, line series with optional circle markers, horizontal reference lines
 * with a label and vertical dashed event markers with a label.
 *
 * Contract for data: points whose x or y is NaN or infinite (or x <= 0 on a log axis) are
 * skipped, and the line joins its neighbours; a series with no drawable point draws nothing
 * but keeps its legend entry. An empty panel, a single point and identical y values all
 * give a valid axis range. All text is escaped (&, <, >, quotes), so any label is safe.
 * The output is always well-formed XML and never contains "nan" or "inf" numbers.
 *
 * Not for: interactive plots, bar charts, log-scaled y, or more than a few thousand points
 * per series (every point is written). Builder calls never fail (they abort on OOM);
 * only fqt_svg_write does I/O. */
#ifndef FQT_SVG_H
#define FQT_SVG_H

#include "fqt/common.h"
#include "fqt/json.h"
#include <stdbool.h>

typedef struct fqt_svg_figure fqt_svg_figure;

/* Number of colours in the palette (Okabe-Ito, colour-blind friendly, yellow last). */
#define FQT_SVG_PALETTE_SIZE 8
/* "#rrggbb" for palette index i (taken modulo the palette size; negative gives grey). */
const char *fqt_svg_palette(int i);

typedef struct {
    int color;          /* palette index; negative: grey */
    double width;       /* stroke width in px; <= 0 gives 1.6 */
    double opacity;     /* stroke opacity in (0, 1]; <= 0 gives 1 */
    bool markers;       /* a circle at every drawn point */
    bool no_line;       /* markers only */
    bool dashed;
} fqt_svg_style;

/* A figure of panels laid out ncols to a row, each panel_w x panel_h px (<= 0: 440 x 320).
 * title may be NULL (no figure title). */
fqt_svg_figure *fqt_svg_figure_new(const char *title, int ncols, double panel_w, double panel_h);
void fqt_svg_figure_free(fqt_svg_figure *f);

/* Append a panel and return its index. Any text may be NULL. */
int fqt_svg_panel_add(fqt_svg_figure *f, const char *title, const char *xlabel,
                      const char *ylabel, bool logx);
/* Fix the y range of a panel (data outside is clipped); NaN for either end keeps it automatic. */
void fqt_svg_panel_ylim(fqt_svg_figure *f, int panel, double lo, double hi);

/* Add a line series; x and y (n points) are copied. label NULL: no legend entry.
 * style NULL: palette colour by series order, default width, line without markers. */
void fqt_svg_series_add(fqt_svg_figure *f, int panel, const char *label, const double *x,
                        const double *y, int64_t n, const fqt_svg_style *style);
/* A horizontal dashed reference line at y with a label at its right end (label may be NULL).
 * The automatic y range always includes it. */
void fqt_svg_hline_add(fqt_svg_figure *f, int panel, double y, const char *label);
/* A vertical dashed marker at x (an event) with a small rotated label near the top; drawn
 * only when x lies inside the panel's x range. color: palette index, negative for grey. */
void fqt_svg_vline_add(fqt_svg_figure *f, int panel, double x, const char *label, int color);

/* Append the whole SVG document to out. */
void fqt_svg_render(const fqt_svg_figure *f, fqt_buf *out);
/* Render and write to path; FQT_ERR_IO with a message naming the path on failure. */
fqt_status fqt_svg_write(const fqt_svg_figure *f, const char *path);

/* Append s to out with &, <, >, " and ' escaped as XML entities. */
void fqt_svg_escape(fqt_buf *out, const char *s);

/* "Nice" ticks: fill ticks[0..max) with the multiples of a 1-2-5 step (times a power of
 * ten) that lie in [lo, hi], aiming at about `target` ticks; returns the count and stores
 * the step. lo < hi, both finite. */
int fqt_svg_nice_ticks(double lo, double hi, int target, double *ticks, int max, double *step);

#endif
