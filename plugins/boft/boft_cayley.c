/* boft_cayley.c — the Cayley transform of BOFT's blocks (PEFT's cayley_batch: torch.linalg.solve
 * from the right) and its backward. The inverse is the host's (ABI 1.3: LAPACK in f32, as torch);
 * on an older host, a Gauss-Jordan elimination in double per block (boft_inverse), which agrees
 * to rounding. The same code as plugins/oft/oft_cayley.c: a plugin links nothing but its own
 * files. */
#include <math.h>
#include <string.h>

#include "boft.h"

int boft_inverse(int64_t n, const float *a, float *ainv)
{
    double *m = boft_host->alloc((size_t)(n * 2 * n) * sizeof *m);
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
    boft_host->free(m);
    return rc;
}

int boft_cayley(int64_t n, const float *r, float *q, float *ainv)
{
    float *a = boft_host->alloc((size_t)(n * n) * sizeof *a);
    float *bm = boft_host->alloc((size_t)(n * n) * sizeof *bm);
    int rc = -1;
    if (!a || !bm) goto done;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
            const float s = 0.5f * (r[i * n + j] - r[j * n + i]); /* skew = 0.5 (R - R^T) */
            a[i * n + j] = (i == j) + s;                          /* I + S */
            bm[i * n + j] = (i == j) - s;                         /* I - S */
        }
    /* the host's LAPACK inverse (ABI 1.3, f32 getrf/getri as torch); an older host: ours */
    if (PEFT_PU_HOST_HAS(boft_host, inverse, 3) ? boft_host->inverse(1, (int)n, a, ainv)
                                                  : boft_inverse(n, a, ainv))
        goto done;
    peft_pu_gemm(boft_host, 0, 0, n, n, n, 1.0f, bm, ainv, 0.0f, q); /* (I - S) (I + S)^-1 */
    rc = 0;
done:
    boft_host->free(a);
    boft_host->free(bm);
    return rc;
}

void boft_cayley_backward(int64_t n, const float *ainv, const float *gq, float *gr)
{
    float *t = boft_host->alloc((size_t)(n * n) * sizeof *t);
    float *gs = boft_host->alloc((size_t)(n * n) * sizeof *gs);
    if (t && gs) {
        /* t = A^-T gq; gs = -2 t A^-T */
        peft_pu_gemm(boft_host, 1, 0, n, n, n, 1.0f, ainv, gq, 0.0f, t);
        peft_pu_gemm(boft_host, 0, 1, n, n, n, -2.0f, t, ainv, 0.0f, gs);
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < n; j++) gr[i * n + j] += 0.5f * (gs[i * n + j] - gs[j * n + i]);
    }
    boft_host->free(t);
    boft_host->free(gs);
}
