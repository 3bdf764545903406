/* runner_svg.c — hand-written SVG charts for the runner's reports: line charts of loss curves
 * and a scatter of a metric against trainable parameters (log x axis). Plain SVG 1.1 text with
 * axes, "nice" tick values, a legend and labels; no scripts, no external resources. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "runner/runner.h"

#define W 820
#define H 460
#define ML 72  /* margins: left, right (legend), top, bottom */
#define MR 250
#define MT 44
#define MB 56

static const char *const COLORS[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                     "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22"};
#define N_COLORS (sizeof COLORS / sizeof *COLORS)

typedef struct sbuf {
    char *s;
    size_t n, cap;
    int oom;
} sbuf;

static void put(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(sbuf *b, const char *fmt, ...)
{
    if (b->oom) return;
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(b->s ? b->s + b->n : NULL, b->s ? b->cap - b->n : 0, fmt, ap);
        va_end(ap);
        if (k < 0) { b->oom = 1; return; }
        if (b->s && b->n + (size_t)k < b->cap) { b->n += (size_t)k; return; }
        size_t cap = (b->cap ? b->cap * 2 : 8192) + (size_t)k;
        char *p = realloc(b->s, cap);
        if (!p) { b->oom = 1; return; }
        b->s = p;
        b->cap = cap;
    }
}

/* text with &, <, >, " escaped */
static void put_text(sbuf *b, const char *t)
{
    for (; t && *t; t++) {
        switch (*t) {
        case '&': put(b, "&amp;"); break;
        case '<': put(b, "&lt;"); break;
        case '>': put(b, "&gt;"); break;
        case '"': put(b, "&quot;"); break;
        default: put(b, "%c", *t);
        }
    }
}

static char *finish(sbuf *b)
{
    put(b, "</svg>\n");
    if (b->oom) {
        free(b->s);
        return NULL;
    }
    return b->s;
}

/* a tick step of 1, 2 or 5 x 10^k giving about n ticks over span */
static double nice_step(double span, int n)
{
    if (!(span > 0)) return 1;
    double raw = span / n, p = pow(10, floor(log10(raw))), f = raw / p;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
}

static void header(sbuf *b, const char *title, const char *xl, const char *yl)
{
    put(b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
           "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
           "font-family=\"Helvetica, Arial, sans-serif\" font-size=\"12\">\n"
           "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n<text x=\"%d\" y=\"24\" font-size=\"15\" "
           "font-weight=\"bold\">", W, H, W, H, ML);
    put_text(b, title);
    put(b, "</text>\n<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">", ML + (W - ML - MR) / 2, H - 14);
    put_text(b, xl);
    put(b, "</text>\n<text transform=\"translate(18 %d) rotate(-90)\" text-anchor=\"middle\">", MT + (H - MT - MB) / 2);
    put_text(b, yl);
    put(b, "</text>\n<rect x=\"%d\" y=\"%d\" width=\"%d\" height=\"%d\" fill=\"none\" stroke=\"#333\"/>\n", ML, MT,
        W - ML - MR, H - MT - MB);
}

/* y ticks and grid over [lo, hi] */
static void y_axis(sbuf *b, double lo, double hi)
{
    double st = nice_step(hi - lo, 6);
    for (double v = ceil(lo / st) * st; v <= hi + st * 1e-9; v += st) {
        double y = MT + (H - MT - MB) * (1 - (v - lo) / (hi - lo));
        put(b, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>"
               "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%g</text>\n",
            ML, W - MR, y, y, ML - 6, y + 4, fabs(v) < st * 1e-6 ? 0.0 : v);
    }
}

static void range(double *lo, double *hi)
{
    if (!isfinite(*lo) || !isfinite(*hi)) *lo = 0, *hi = 1;
    if (*hi - *lo < 1e-12) *lo -= 0.5, *hi += 0.5;
    double pad = (*hi - *lo) * 0.05;
    *lo -= pad, *hi += pad;
}

char *runner_svg_lines(const char *title, const char *x_label, const char *y_label,
                       const runner_series *s, size_t n)
{
    sbuf b = {0};
    double xmax = 1, ylo = INFINITY, yhi = -INFINITY;
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < s[i].n; j++) {
            if ((double)s[i].pts[j].step > xmax) xmax = (double)s[i].pts[j].step;
            double v = s[i].pts[j].value;
            if (isfinite(v)) ylo = fmin(ylo, v), yhi = fmax(yhi, v);
        }
    range(&ylo, &yhi);
    header(&b, title, x_label, y_label);
    y_axis(&b, ylo, yhi);
    double xs = nice_step(xmax, 8);
    for (double v = 0; v <= xmax + 1e-9; v += xs) {
        double x = ML + (W - ML - MR) * v / xmax;
        put(&b, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%d\" y2=\"%d\" stroke=\"#333\"/><text x=\"%.1f\" y=\"%d\" "
                "text-anchor=\"middle\">%g</text>\n", x, x, H - MB, H - MB + 5, x, H - MB + 18, v);
    }
    int color = -1;
    for (size_t i = 0; i < n; i++) {
        if (!s[i].dashed || color < 0) color++;
        const char *col = COLORS[(size_t)color % N_COLORS];
        put(&b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"%s\"%s points=\"", col,
            s[i].dashed ? "1" : "1.8", s[i].dashed ? " stroke-dasharray=\"4 3\" opacity=\"0.7\"" : "");
        for (size_t j = 0; j < s[i].n; j++) {
            double v = s[i].pts[j].value;
            if (!isfinite(v)) continue;
            put(&b, "%.1f,%.1f ", ML + (W - ML - MR) * (double)s[i].pts[j].step / xmax,
                MT + (H - MT - MB) * (1 - (v - ylo) / (yhi - ylo)));
        }
        put(&b, "\"/>\n");
        double ly = MT + 10 + 16.0 * (double)i;
        if (ly < H - 10) {
            put(&b, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2\"%s/>"
                    "<text x=\"%d\" y=\"%.1f\">", W - MR + 12, W - MR + 36, ly, ly, col,
                s[i].dashed ? " stroke-dasharray=\"4 3\"" : "", W - MR + 42, ly + 4);
            put_text(&b, s[i].label);
            put(&b, "</text>\n");
        }
    }
    return finish(&b);
}

char *runner_svg_scatter(const char *title, const char *x_label, const char *y_label,
                         const double *x, const double *y, const char *const *labels, size_t n,
                         double chance)
{
    return runner_svg_scatter_err(title, x_label, y_label, x, y, NULL, labels, n, chance);
}

char *runner_svg_scatter_err(const char *title, const char *x_label, const char *y_label,
                             const double *x, const double *y, const double *yerr,
                             const char *const *labels, size_t n, double chance)
{
    sbuf b = {0};
    double xlo = INFINITY, xhi = -INFINITY, ylo = INFINITY, yhi = -INFINITY;
    for (size_t i = 0; i < n; i++) {
        if (x[i] > 0) xlo = fmin(xlo, log10(x[i])), xhi = fmax(xhi, log10(x[i]));
        double e = yerr && isfinite(yerr[i]) ? fabs(yerr[i]) : 0;
        if (isfinite(y[i])) ylo = fmin(ylo, y[i] - e), yhi = fmax(yhi, y[i] + e);
    }
    if (isfinite(chance)) ylo = fmin(ylo, chance), yhi = fmax(yhi, chance);
    if (!isfinite(xlo)) xlo = 0, xhi = 1;
    xlo = floor(xlo), xhi = ceil(xhi);
    if (xhi <= xlo) xhi = xlo + 1;
    range(&ylo, &yhi);
    header(&b, title, x_label, y_label);
    y_axis(&b, ylo, yhi);
    for (double d = xlo; d <= xhi + 1e-9; d += 1) { /* decades, with 2x and 5x minor ticks */
        double px = ML + (W - ML - MR) * (d - xlo) / (xhi - xlo);
        put(&b, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%d\" y2=\"%d\" stroke=\"#ddd\"/><text x=\"%.1f\" y=\"%d\" "
                "text-anchor=\"middle\">%.0f</text>\n", px, px, MT, H - MB, px, H - MB + 18, pow(10, d));
        for (int m = 2; m <= 5 && d < xhi; m += 3) {
            double mx = ML + (W - ML - MR) * (d + log10(m) - xlo) / (xhi - xlo);
            put(&b, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%d\" y2=\"%d\" stroke=\"#333\"/>\n", mx, mx, H - MB, H - MB + 4);
        }
    }
    if (isfinite(chance)) {
        double py = MT + (H - MT - MB) * (1 - (chance - ylo) / (yhi - ylo));
        put(&b, "<line x1=\"%d\" x2=\"%d\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#888\" stroke-dasharray=\"6 4\"/>"
                "<text x=\"%d\" y=\"%.1f\" fill=\"#666\">base model (no adapter)</text>\n",
            ML, W - MR, py, py, ML + 6, py - 5);
    }
    for (size_t i = 0; i < n; i++) {
        if (!(x[i] > 0) || !isfinite(y[i])) continue;
        const char *col = COLORS[i % N_COLORS];
        double px = ML + (W - ML - MR) * (log10(x[i]) - xlo) / (xhi - xlo);
        double py = MT + (H - MT - MB) * (1 - (y[i] - ylo) / (yhi - ylo));
        double e = yerr && isfinite(yerr[i]) ? fabs(yerr[i]) : 0;
        if (e > 0) { /* the error bar: a vertical line with caps */
            double p0 = MT + (H - MT - MB) * (1 - (y[i] - e - ylo) / (yhi - ylo));
            double p1 = MT + (H - MT - MB) * (1 - (y[i] + e - ylo) / (yhi - ylo));
            put(&b, "<path class=\"errbar\" d=\"M%.1f %.1fV%.1fM%.1f %.1fH%.1fM%.1f %.1fH%.1f\" stroke=\"%s\" "
                    "stroke-width=\"1.5\" fill=\"none\"/>\n", px, p0, p1, px - 4, p0, px + 4, px - 4, p1, px + 4, col);
        }
        put(&b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"5\" fill=\"%s\"/><text x=\"%.1f\" y=\"%.1f\" font-size=\"10\">",
            px, py, col, px + 7, py - 6);
        put_text(&b, labels[i]);
        put(&b, "</text>\n");
        double ly = MT + 10 + 16.0 * (double)i;
        if (ly < H - 10) {
            put(&b, "<circle cx=\"%d\" cy=\"%.1f\" r=\"5\" fill=\"%s\"/><text x=\"%d\" y=\"%.1f\">", W - MR + 20, ly,
                col, W - MR + 32, ly + 4);
            put_text(&b, labels[i]);
            if (e > 0) put(&b, " (%.0f, %.3g \xc2\xb1 %.2g)</text>\n", x[i], y[i], e);
            else put(&b, " (%.0f, %.3g)</text>\n", x[i], y[i]);
        }
    }
    return finish(&b);
}
