/* host_linalg.c — the host API's linear-algebra services for plugins (ABI 1.1): thin SVD and
 * QR through LAPACK, and a writable f32 base weight for methods that rewrite it at init. */
#include <lapacke.h>
#include <stdlib.h>
#include <string.h>
#include "core/tuner/host_linalg.h"
#include "core/model/model_internal.h"

// a (m, n) row-major -> u (m, k), s (k), vt (k, n), k = min(m, n)
int peft_host_svd(int m, int n, const float *a, float *u, float *s, float *vt)
{
    if (m <= 0 || n <= 0 || !a || !u || !s || !vt) return -1;
    float *copy = malloc((size_t)m * (size_t)n * sizeof *copy); /* sgesdd destroys its input */
    if (!copy) return -1;
    memcpy(copy, a, (size_t)m * (size_t)n * sizeof *copy);
    int k = m < n ? m : n;
    lapack_int info = LAPACKE_sgesdd(LAPACK_ROW_MAJOR, 'S', m, n, copy, n, s, u, k, vt, n);
    free(copy);
    return info == 0 ? 0 : -1;
}

// a (m, n) row-major -> q (m, k), r (k, n), k = min(m, n)
int peft_host_qr(int m, int n, const float *a, float *q, float *r)
{
    if (m <= 0 || n <= 0 || !a || !q || !r) return -1;
    int k = m < n ? m : n;
    float *w = malloc((size_t)m * (size_t)n * sizeof *w), *tau = malloc((size_t)k * sizeof *tau);
    if (!w || !tau) {
        free(w);
        free(tau);
        return -1;
    }
    memcpy(w, a, (size_t)m * (size_t)n * sizeof *w);
    int rc = -1;
    if (LAPACKE_sgeqrf(LAPACK_ROW_MAJOR, m, n, w, n, tau) != 0) goto out;
    for (int i = 0; i < k; i++) /* r: the upper triangle of the first k rows */
        for (int j = 0; j < n; j++) r[(size_t)i * n + j] = j >= i ? w[(size_t)i * n + j] : 0.0f;
    for (int i = 0; i < m; i++) /* q: the first k columns, formed in place */
        for (int j = 0; j < k; j++) q[(size_t)i * k + j] = w[(size_t)i * n + j];
    if (LAPACKE_sorgqr(LAPACK_ROW_MAJOR, m, k, k, q, k, tau) != 0) goto out;
    rc = 0;
out:
    free(w);
    free(tau);
    return rc;
}

float *peft_host_site_weight_writable(const peft_site_info *info)
{
    /* peft_site starts with its peft_site_info: the plugin's pointer is the site */
    peft_site *s = (peft_site *)info;
    if (!s || !s->info.weight) return NULL;
    if (s->n_merged > 0) return NULL; /* not while merged adapters are folded in */
    void *old;
    int32_t dt;
    int owned;
    if (peft_tensor_make_f32_owned(s->info.weight, &old, &dt, &owned)) return NULL;
    if (owned) free(old); /* the rewritten weight is the base from now on */
    return peft_f32(s->info.weight);
}

// a (batch, n, n), b (batch, n, nrhs) -> x (batch, n, nrhs) = a^-1 b per block (sgesv)
int peft_host_solve(int batch, int n, int nrhs, const float *a, const float *b, float *x)
{
    if (batch < 0 || n <= 0 || nrhs <= 0 || !a || !b || !x) return -1;
    size_t nn = (size_t)n * (size_t)n, nr = (size_t)n * (size_t)nrhs;
    float *lu = malloc(nn * sizeof *lu);
    lapack_int *piv = malloc((size_t)n * sizeof *piv);
    int rc = lu && piv ? 0 : -1;
    for (int i = 0; i < batch && rc == 0; i++) {
        memcpy(lu, a + (size_t)i * nn, nn * sizeof *lu);
        if (x + (size_t)i * nr != b + (size_t)i * nr) memmove(x + (size_t)i * nr, b + (size_t)i * nr, nr * sizeof *x);
        if (LAPACKE_sgesv(LAPACK_ROW_MAJOR, n, nrhs, lu, n, piv, x + (size_t)i * nr, nrhs) != 0) rc = -1;
    }
    free(lu);
    free(piv);
    return rc;
}

// a (batch, n, n) -> inv (batch, n, n) = a^-1 per block (sgetrf + sgetri)
int peft_host_inverse(int batch, int n, const float *a, float *inv)
{
    if (batch < 0 || n <= 0 || !a || !inv) return -1;
    size_t nn = (size_t)n * (size_t)n;
    lapack_int *piv = malloc((size_t)n * sizeof *piv);
    if (!piv) return -1;
    int rc = 0;
    for (int i = 0; i < batch && rc == 0; i++) {
        float *o = inv + (size_t)i * nn;
        if (o != a + (size_t)i * nn) memmove(o, a + (size_t)i * nn, nn * sizeof *o);
        if (LAPACKE_sgetrf(LAPACK_ROW_MAJOR, n, n, o, n, piv) != 0 ||
            LAPACKE_sgetri(LAPACK_ROW_MAJOR, n, o, n, piv) != 0)
            rc = -1;
    }
    free(piv);
    return rc;
}
