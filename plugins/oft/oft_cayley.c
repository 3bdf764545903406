/* oft_cayley.c — the Cayley transform of OFT's blocks, its backward and coft's projection. The
 * inverse in the transform is the host's (ABI 1.3: LAPACK getrf/getri in f32, as torch); on an
 * older host, a Gauss-Jordan elimination in double per block (oft_inverse, also used for the
 * unmerge of a cut block), which agrees to rounding. */
#include <math.h>
#include <string.h>

#include "oft.h"

int oft_inverse(int64_t n, const float *a, float *ainv)
{
    double *m = oft_host->alloc((size_t)(n * 2 * n) * sizeof *m);
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
    oft_host->free(m);
    return rc;
}

int oft_cayley(int64_t n, const float *r, float *q, float *ainv)
{
    float *a = oft_host->alloc((size_t)(n * n) * sizeof *a);
    float *bm = oft_host->alloc((size_t)(n * n) * sizeof *bm);
    int rc = -1;
    if (!a || !bm) goto done;
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < n; j++) {
            const float s = 0.5f * (r[i * n + j] - r[j * n + i]); /* skew = 0.5 (R - R^T) */
            a[i * n + j] = (i == j) + s;                          /* I + S */
            bm[i * n + j] = (i == j) - s;                         /* I - S */
        }
    /* the host's LAPACK inverse (ABI 1.3, f32 getrf/getri as torch); an older host: ours */
    if (PEFT_PU_HOST_HAS(oft_host, inverse, 3) ? oft_host->inverse(1, (int)n, a, ainv)
                                                  : oft_inverse(n, a, ainv))
        goto done;
    peft_pu_gemm(oft_host, 0, 0, n, n, n, 1.0f, bm, ainv, 0.0f, q); /* (I - S) (I + S)^-1 */
    rc = 0;
done:
    oft_host->free(a);
    oft_host->free(bm);
    return rc;
}

void oft_cayley_backward(int64_t n, const float *ainv, const float *gq, float *gr)
{
    float *t = oft_host->alloc((size_t)(n * n) * sizeof *t);
    float *gs = oft_host->alloc((size_t)(n * n) * sizeof *gs);
    if (t && gs) {
        /* t = A^-T gq; gs = -2 t A^-T */
        peft_pu_gemm(oft_host, 1, 0, n, n, n, 1.0f, ainv, gq, 0.0f, t);
        peft_pu_gemm(oft_host, 0, 1, n, n, n, -2.0f, t, ainv, 0.0f, gs);
        for (int64_t i = 0; i < n; i++)
            for (int64_t j = 0; j < n; j++) gr[i * n + j] += 0.5f * (gs[i * n + j] - gs[j * n + i]);
    }
    oft_host->free(t);
    oft_host->free(gs);
}

void oft_project(int64_t nblk, int64_t n, float *r, double radius)
{
    const float eps = (float)radius;
    for (int64_t k = 0; k < nblk; k++) {
        float *blk = r + k * n * n;
        double ss = 0;
        for (int64_t i = 0; i < n * n; i++) ss += (double)blk[i] * blk[i];
        const float norm = (float)sqrt(ss);
        /* a block already projected (norm eps up to rounding) is left alone, so that repeated
         * forwards do not keep nudging it (PEFT re-projects it each time, by ~1e-7): the model
         * stays a function of its parameters, bit for bit */
        if (norm <= eps * (1.0f + 1e-5f)) continue;
        for (int64_t i = 0; i < n * n; i++) blk[i] = eps * (blk[i] / norm);
    }
}
