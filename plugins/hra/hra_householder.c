/* hra_householder.c — HRA's unit vectors (normalised columns, or modified Gram-Schmidt as
 * PEFT's get_delta_weight runs it), the reflections they make applied to rows, and the
 * backward of both. Shapes: u (in, r) the parameter, w (r, in) one unit vector per row, t and
 * g (n, in) rows. */
#include <math.h>
#include <string.h>

#include "hra.h"

static double dot(const float *a, const float *b, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

/* s (in) = column i of u (in, r) */
static void column(const float *u, int64_t in, int64_t r, int64_t i, float *s)
{
    for (int64_t k = 0; k < in; k++) s[k] = u[k * r + i];
}

/* s_0 = u_i; s_{j+1} = s_j - (w_j . s_j) w_j for j < i (seq (i + 1, in) gets s_0 .. s_i) */
static void gs_sequence(const float *u, const float *w, int64_t in, int64_t r, int64_t i,
                        float *seq)
{
    column(u, in, r, i, seq);
    for (int64_t j = 0; j < i; j++) {
        const float *s = seq + j * in, *wj = w + j * in;
        float *nx = seq + (j + 1) * in;
        const float c = (float)dot(wj, s, in);
        for (int64_t k = 0; k < in; k++) nx[k] = s[k] - c * wj[k];
    }
}

int hra_unit_vectors(int64_t in, int64_t r, int apply_gs, const float *u, float *w)
{
    float *seq = apply_gs ? hra_host->alloc((size_t)((r + 1) * in) * sizeof *seq) : NULL;
    if (apply_gs && !seq) return -1;
    int rc = 0;
    for (int64_t i = 0; i < r && !rc; i++) {
        float *wi = w + i * in;
        if (apply_gs) {
            gs_sequence(u, w, in, r, i, seq);
            memcpy(wi, seq + i * in, (size_t)in * sizeof *wi);
        } else {
            column(u, in, r, i, wi);
        }
        const float norm = (float)sqrt(dot(wi, wi, in));
        if (!(norm > 0)) rc = -1;
        for (int64_t k = 0; k < in; k++) wi[k] /= norm;
    }
    hra_host->free(seq);
    return rc;
}

void hra_unit_vectors_backward(int64_t in, int64_t r, int apply_gs, const float *u,
                               const float *w, const float *gw_in, float *gu)
{
    float *gw = hra_host->alloc((size_t)(r * in) * sizeof *gw);
    float *seq = hra_host->alloc((size_t)((r + 1) * in) * sizeof *seq);
    float *g = hra_host->alloc((size_t)in * sizeof *g);
    if (!gw || !seq || !g) goto done;
    memcpy(gw, gw_in, (size_t)(r * in) * sizeof *gw);
    /* later columns feed gradients into earlier unit vectors (Gram-Schmidt): go backwards */
    for (int64_t i = r - 1; i >= 0; i--) {
        const float *wi = w + i * in;
        if (apply_gs) gs_sequence(u, w, in, r, i, seq);
        else column(u, in, r, i, seq);
        const float *v = apply_gs ? seq + i * in : seq;
        const double norm = sqrt(dot(v, v, in));
        const double wg = dot(wi, gw + i * in, in);
        for (int64_t k = 0; k < in; k++) g[k] = (float)((gw[i * in + k] - wi[k] * wg) / norm);
        for (int64_t j = apply_gs ? i - 1 : -1; j >= 0; j--) {
            const float *wj = w + j * in, *s = seq + j * in;
            const double c = dot(wj, s, in), d = dot(wj, g, in);
            for (int64_t k = 0; k < in; k++) {
                gw[j * in + k] -= (float)(c * g[k] + d * s[k]);
                g[k] -= (float)(d * wj[k]);
            }
        }
        for (int64_t k = 0; k < in; k++) gu[k * r + i] += g[k];
    }
done:
    hra_host->free(gw);
    hra_host->free(seq);
    hra_host->free(g);
}

/* one reflection of row t: t - 2 (t . w) w */
static void reflect(float *t, const float *wi, int64_t in)
{
    const float c = 2.0f * (float)dot(t, wi, in);
    for (int64_t k = 0; k < in; k++) t[k] -= c * wi[k];
}

/* row t <- t - 2 (t w^T) w over all r vectors at once (the Gram-Schmidt H); p (r) scratch */
static void reflect_gs(float *t, const float *w, int64_t in, int64_t r, float *p)
{
    for (int64_t i = 0; i < r; i++) p[i] = (float)dot(t, w + i * in, in);
    for (int64_t i = 0; i < r; i++)
        for (int64_t k = 0; k < in; k++) t[k] -= 2.0f * p[i] * w[i * in + k];
}

void hra_reflect_rows(int64_t n, int64_t in, int64_t r, int apply_gs, const float *w, float *t,
                      int reverse)
{
    float p[64];
    float *pp = r <= 64 ? p : hra_host->alloc((size_t)r * sizeof *pp);
    if (!pp) return;
    for (int64_t row = 0; row < n; row++) {
        float *tr = t + row * in;
        if (apply_gs) reflect_gs(tr, w, in, r, pp);
        else if (reverse)
            for (int64_t i = 0; i < r; i++) reflect(tr, w + i * in, in);
        else
            for (int64_t i = r - 1; i >= 0; i--) reflect(tr, w + i * in, in);
    }
    if (pp != p) hra_host->free(pp);
}

void hra_reflect_rows_backward(int64_t n, int64_t in, int64_t r, int apply_gs, const float *w,
                               float *t_out, float *g, float *gw)
{
    float p[64], q[64];
    float *pp = r <= 64 ? p : hra_host->alloc((size_t)r * sizeof *pp);
    float *qq = r <= 64 ? q : hra_host->alloc((size_t)r * sizeof *qq);
    if (!pp || !qq) goto done;
    for (int64_t row = 0; row < n; row++) {
        float *t = t_out + row * in, *gr = g + row * in;
        if (apply_gs) { /* t_out = t - 2 (t w^T) w; H is an involution: t = H t_out */
            reflect_gs(t, w, in, r, pp); /* t now the input; pp = t_out w^T (unused) */
            for (int64_t i = 0; i < r; i++) {
                pp[i] = (float)dot(t, w + i * in, in);
                qq[i] = (float)dot(gr, w + i * in, in);
            }
            for (int64_t i = 0; i < r; i++) /* every gw_i from the output's gradient ... */
                for (int64_t k = 0; k < in; k++)
                    gw[i * in + k] -= 2.0f * (pp[i] * gr[k] + qq[i] * t[k]);
            for (int64_t i = 0; i < r; i++) /* ... before it becomes the input's */
                for (int64_t k = 0; k < in; k++) gr[k] -= 2.0f * qq[i] * w[i * in + k];
            continue;
        }
        /* applied r-1 .. 0: undo 0 .. r-1 */
        for (int64_t i = 0; i < r; i++) {
            const float *wi = w + i * in;
            reflect(t, wi, in); /* t: the input of reflection i */
            const float c = (float)dot(t, wi, in), d = (float)dot(gr, wi, in);
            for (int64_t k = 0; k < in; k++) {
                gw[i * in + k] -= 2.0f * (c * gr[k] + d * t[k]);
                gr[k] -= 2.0f * d * wi[k];
            }
        }
    }
done:
    if (pp && pp != p) hra_host->free(pp);
    if (qq && qq != q) hra_host->free(qq);
}
