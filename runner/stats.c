/* runner_stats.c — the statistics of repeated runs: mean, sample standard deviation and the 95%
 * confidence interval of the mean from Student's t distribution (n - 1 degrees of freedom), and
 * a paired comparison of two configurations over the seeds they share (mean difference, its
 * interval, t and the two-sided p-value). The t distribution's CDF is the regularized incomplete
 * beta function (continued fraction, Lentz's method); its quantile is found by bisection. */
#include <math.h>
#include <stdlib.h>
#include "runner/runner.h"

/* the continued fraction of I_x(a, b) (valid for x < (a + 1) / (a + b + 2)) */
static double beta_cf(double a, double b, double x)
{
    const double tiny = 1e-300;
    double c = 1, d = 1 - (a + b) * x / (a + 1);
    if (fabs(d) < tiny) d = tiny;
    d = 1 / d;
    double h = d;
    for (int m = 1; m <= 300; m++) {
        double m2 = 2.0 * m, aa = m * (b - m) * x / ((a + m2 - 1) * (a + m2));
        d = 1 + aa * d;
        if (fabs(d) < tiny) d = tiny;
        c = 1 + aa / c;
        if (fabs(c) < tiny) c = tiny;
        d = 1 / d;
        h *= d * c;
        aa = -(a + m) * (a + b + m) * x / ((a + m2) * (a + m2 + 1));
        d = 1 + aa * d;
        if (fabs(d) < tiny) d = tiny;
        c = 1 + aa / c;
        if (fabs(c) < tiny) c = tiny;
        d = 1 / d;
        double del = d * c;
        h *= del;
        if (fabs(del - 1) < 1e-15) break;
    }
    return h;
}

/* the regularized incomplete beta function I_x(a, b) */
static double beta_inc(double a, double b, double x)
{
    if (x <= 0) return 0;
    if (x >= 1) return 1;
    double lbt = lgamma(a + b) - lgamma(a) - lgamma(b) + a * log(x) + b * log1p(-x);
    if (x < (a + 1) / (a + b + 2)) return exp(lbt) * beta_cf(a, b, x) / a;
    return 1 - exp(lbt) * beta_cf(b, a, 1 - x) / b;
}

double runner_t_cdf(double t, double df)
{
    if (isnan(t) || !(df > 0)) return NAN;
    double tail = 0.5 * beta_inc(df / 2, 0.5, df / (df + t * t)); /* P(T > |t|) */
    return t >= 0 ? 1 - tail : tail;
}

double runner_t_quantile(double p, double df)
{
    if (!(p > 0 && p < 1) || !(df > 0)) return NAN;
    if (p < 0.5) return -runner_t_quantile(1 - p, df);
    double lo = 0, hi = 1;
    while (runner_t_cdf(hi, df) < p && hi < 1e12) hi *= 2;
    for (int i = 0; i < 200 && hi - lo > 1e-12 * hi; i++) {
        double mid = 0.5 * (lo + hi);
        if (runner_t_cdf(mid, df) < p) lo = mid;
        else hi = mid;
    }
    return 0.5 * (lo + hi);
}

void runner_stats(const double *x, int n, runner_stat *s)
{
    s->n = 0;
    s->mean = s->std = s->ci95 = NAN;
    double sum = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(x[i])) sum += x[i], s->n++;
    if (s->n == 0) return;
    s->mean = sum / s->n;
    if (s->n < 2) return;
    double ss = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(x[i])) ss += (x[i] - s->mean) * (x[i] - s->mean);
    s->std = sqrt(ss / (s->n - 1));
    s->ci95 = runner_t_quantile(0.975, s->n - 1) * s->std / sqrt((double)s->n);
}

void runner_paired(const double *a, const double *b, int n, runner_pair *p)
{
    double *d = malloc(((size_t)n + 1) * sizeof *d);
    int k = 0;
    for (int i = 0; d && i < n; i++)
        if (isfinite(a[i]) && isfinite(b[i])) d[k++] = a[i] - b[i];
    runner_stats(d, k, &p->diff);
    free(d);
    p->t = p->p = NAN;
    if (p->diff.n >= 2 && p->diff.std > 0) {
        p->t = p->diff.mean / (p->diff.std / sqrt((double)p->diff.n));
        p->p = 2 * (1 - runner_t_cdf(fabs(p->t), p->diff.n - 1));
    } else if (p->diff.n >= 2) { /* every difference equal */
        p->t = p->diff.mean == 0 ? 0 : copysign(INFINITY, p->diff.mean);
        p->p = p->diff.mean == 0 ? 1 : 0;
    }
}
