/* peft/plugin_cayley.h — header-only Cayley transform for tuner plugins (OFT, BOFT): the
 * orthogonal Q = (I - S)(I + S)^-1 of a square block R, S = (R - R^T) / 2, its backward, and the
 * small inverse it needs on a host older than ABI 1.3. Static inline over the host table
 * (peft/plugin.h); no ABI, no libpeft. Host entries used: alloc, free, sgemm, and inverse (ABI
 * 1.3) when the host has it (list sgemm in peft_pu_host_check).
 *
 * The inverse is the host's (LAPACK getrf/getri in f32, as torch's linalg.solve / inv); on an
 * older host a Gauss-Jordan elimination in double per block (peft_pu_inverse), which agrees to
 * rounding.
 */
#ifndef PEFT_PLUGIN_CAYLEY_H
#define PEFT_PLUGIN_CAYLEY_H

#include <math.h>
#include <stdint.h>

#include "peft/plugin.h"
#include "peft/plugin_kernels.h"
#include "peft/plugin_util.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ainv (n, n) = a (n, n)^-1 by Gauss-Jordan elimination with partial pivoting, in double.
 * 0, or -1 when a is singular or out of memory. */
static inline int peft_pu_inverse(const peft_host_api *host, int64_t n, const float *a, float *ainv)
{
    double *m = (double *)host->alloc((size_t)(n * 2 * n) * sizeof *m);
    if (!m) return -1;
    const int64_t w = 2 * n; /* [a | I] (n, 2n) -> [I | a^-1] */
    for (int64_t i = 0; i < n; i++) {
        for (int64_t j = 0; j < n; j++) m[i * w + j] = a[i * n + j];
        m[i * w + n + i] = 1.0;
    }
    int rc = 0;
    for (int64_t c = 0; c < n && !rc; c++) {
        int64_t p = c;
        for (int64_t i = c + 1; i < n; i++)
            if (fabs(m[i * w + c]) > fabs(m[p * w + c])) p = i;
        if (!(fabs(m[p * w + c]) > 0)) {
            rc = -1;
            break;
        }
        if (p != c)
            for (int64_t j = 0; j < w; j++) {
                double t = m[c * w + j];
                m[c * w + j] = m[p * w + j];
                m[p * w + j] = t;
            }
        const double inv = 1.0 / m[c * w + c];
        for (int64_t j = 0; j < w; j++) m[c * w + j] *= inv;
        for (int64_t i = 0; i < n; i++) {
            const double f = m[i * w + c];
            if (i == c || f == 0) continue;
            for (int64_t j = 0; j < w; j++) m[i * w + j] -= f * m[c * w + j];
        }
    }
    if (!rc)
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < n; j++) ainv[i * n + j] = (float)m[i * w + n + j];
    host->free(m);
    return rc;
}

/* r (n, n) -> q (n, n) = (I - S)(I + S)^-1, S = (r - r^T) / 2; ainv (n, n) receives (I + S)^-1
 * for the backward. 0, or -1 when I + S is singular or out of memory. */
static inline int peft_pu_cayley(const peft_host_api *host, int64_t n, const float *r, float *q,
                                 float *ainv)
{
    float *a = (float *)host->alloc((size_t)(n * n) * sizeof *a);
    float *bm = (float *)host->alloc((size_t)(n * n) * sizeof *bm);
    int rc = -1;
    if (!a || !bm) goto done;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
            const float s = 0.5f * (r[i * n + j] - r[j * n + i]); /* skew = 0.5 (R - R^T) */
            a[i * n + j] = (float)(i == j) + s;                   /* I + S */
            bm[i * n + j] = (float)(i == j) - s;                  /* I - S */
        }
    if (PEFT_PU_HOST_HAS(host, inverse, 3) ? host->inverse(1, (int)n, a, ainv)
                                           : peft_pu_inverse(host, n, a, ainv))
        goto done;
    peft_pu_gemm(host, 0, 0, n, n, n, 1.0f, bm, ainv, 0.0f, q); /* (I - S) (I + S)^-1 */
    rc = 0;
done:
    host->free(a);
    host->free(bm);
    return rc;
}

/* gr (n, n) += dJ/dr given gq (n, n) = dJ/dq and ainv = (I + S)^-1 from peft_pu_cayley:
 * with A = I + S, q = (2I - A) A^-1 = 2 A^-1 - I, so dJ/dS = -2 A^-T gq A^-T, and
 * dJ/dr = (dJ/dS - dJ/dS^T) / 2 */
static inline void peft_pu_cayley_backward(const peft_host_api *host, int64_t n,
                                           const float *ainv, const float *gq, float *gr)
{
    float *t = (float *)host->alloc((size_t)(n * n) * sizeof *t);
    float *gs = (float *)host->alloc((size_t)(n * n) * sizeof *gs);
    if (t && gs) {
        peft_pu_gemm(host, 1, 0, n, n, n, 1.0f, ainv, gq, 0.0f, t);   /* t = A^-T gq */
        peft_pu_gemm(host, 0, 1, n, n, n, -2.0f, t, ainv, 0.0f, gs);  /* gs = -2 t A^-T */
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < n; j++) gr[i * n + j] += 0.5f * (gs[i * n + j] - gs[j * n + i]);
    }
    host->free(t);
    host->free(gs);
}

#ifdef __cplusplus
}
#endif
#endif
