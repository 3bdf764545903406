/* host_linalg.c — the host API's linear-algebra services for plugins (ABI 1.1): thin SVD and
 * QR through LAPACK, and a writable f32 base weight for methods that rewrite it at init.
 * LAPACK is called directly, as libopenblas.so.0 exports it (core/tuner/lapack_fortran.h), the
 * way LAPACKE's row-major wrappers did it: the input refused when it holds a NaN, transposed
 * into a column-major copy, the workspace sized by a query (lwork = -1), the result transposed
 * back; the results are bit-identical to LAPACKE's. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "core/tuner/host_linalg.h"
#include "core/tuner/lapack_fortran.h"
#include "core/model/model_internal.h"

// a (m, n) row-major -> t (m, n) column-major (leading dimension m)
static void to_colmajor(int m, int n, const float *a, float *t)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) t[(size_t)j * m + i] = a[(size_t)i * n + j];
}

// t (ld, n) column-major, its first m rows -> a (m, n) row-major
static void from_colmajor(int m, int n, const float *t, int ld, float *a)
{
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) a[(size_t)i * n + j] = t[(size_t)j * ld + i];
}

// p (n): whether any is a NaN (LAPACKE refused such inputs; LAPACK may not terminate on them)
static int has_nan(const float *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (isnan(p[i])) return 1;
    return 0;
}

// the workspace a query (lwork = -1) asked for, at least one float; NULL when out of memory
static float *workspace(float query, int *lwork)
{
    *lwork = (int)query;
    return malloc((size_t)(*lwork > 0 ? *lwork : 1) * sizeof(float));
}

// a (m, n) row-major -> u (m, k), s (k), vt (k, n), k = min(m, n)
int peft_host_svd(int m, int n, const float *a, float *u, float *s, float *vt)
{
    if (m <= 0 || n <= 0 || !a || !u || !s || !vt) return -1;
    size_t mn = (size_t)m * (size_t)n;
    /* an infinity makes sgesdd loop for ever or return NaNs with 0: refused, as a NaN is */
    for (size_t i = 0; i < mn; i++)
        if (!isfinite(a[i])) return -1;
    int k = m < n ? m : n, lwork = -1, info = 0;
    float query = 0, *work = NULL;
    float *at = malloc(mn * sizeof *at), *ut = malloc((size_t)m * k * sizeof *ut),
          *vtt = malloc((size_t)k * n * sizeof *vtt);
    int *iwork = malloc((size_t)8 * k * sizeof *iwork);
    if (!at || !ut || !vtt || !iwork) goto out;
    sgesdd_("S", &m, &n, at, &m, s, ut, &m, vtt, &k, &query, &lwork, iwork, &info, 1);
    if (info != 0 || !(work = workspace(query, &lwork))) goto out;
    to_colmajor(m, n, a, at); /* sgesdd destroys its input: a stays the caller's */
    sgesdd_("S", &m, &n, at, &m, s, ut, &m, vtt, &k, work, &lwork, iwork, &info, 1);
    if (info == 0) {
        from_colmajor(m, k, ut, m, u);
        from_colmajor(k, n, vtt, k, vt);
    }
out:
    if (!work) info = -1;
    free(work);
    free(at);
    free(ut);
    free(vtt);
    free(iwork);
    return info == 0 ? 0 : -1;
}

// a (m, n) row-major -> q (m, k), r (k, n), k = min(m, n)
int peft_host_qr(int m, int n, const float *a, float *q, float *r)
{
    if (m <= 0 || n <= 0 || !a || !q || !r) return -1;
    size_t mn = (size_t)m * (size_t)n;
    if (has_nan(a, mn)) return -1;
    int k = m < n ? m : n, lwork = -1, info = 0, rc = -1;
    float query = 0, *work = NULL;
    float *w = malloc(mn * sizeof *w), *tau = malloc((size_t)k * sizeof *tau);
    if (!w || !tau) goto out;
    to_colmajor(m, n, a, w);
    sgeqrf_(&m, &n, w, &m, tau, &query, &lwork, &info);
    if (info != 0 || !(work = workspace(query, &lwork))) goto out;
    sgeqrf_(&m, &n, w, &m, tau, work, &lwork, &info);
    if (info != 0) goto out;
    for (int i = 0; i < k; i++) /* r: the upper triangle of the first k rows */
        for (int j = 0; j < n; j++) r[(size_t)i * n + j] = j >= i ? w[(size_t)j * m + i] : 0.0f;
    /* q: the first k columns of w, formed in place */
    if (has_nan(w, (size_t)m * k) || has_nan(tau, (size_t)k)) goto out;
    free(work);
    work = NULL;
    lwork = -1;
    sorgqr_(&m, &k, &k, w, &m, tau, &query, &lwork, &info);
    if (info != 0 || !(work = workspace(query, &lwork))) goto out;
    sorgqr_(&m, &k, &k, w, &m, tau, work, &lwork, &info);
    if (info != 0) goto out;
    from_colmajor(m, k, w, m, q);
    rc = 0;
out:
    free(work);
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
    float *lu = malloc(nn * sizeof *lu), *xt = malloc(nr * sizeof *xt);
    int *piv = malloc((size_t)n * sizeof *piv);
    int rc = lu && xt && piv ? 0 : -1;
    for (int i = 0; i < batch && rc == 0; i++) {
        const float *ai = a + (size_t)i * nn, *bi = b + (size_t)i * nr;
        if (has_nan(ai, nn) || has_nan(bi, nr)) {
            rc = -1;
            break;
        }
        int info = 0;
        to_colmajor(n, n, ai, lu);
        to_colmajor(n, nrhs, bi, xt); /* read before x is written: x may be b */
        sgesv_(&n, &nrhs, lu, &n, piv, xt, &n, &info);
        if (info != 0) rc = -1;
        else from_colmajor(n, nrhs, xt, n, x + (size_t)i * nr);
    }
    free(lu);
    free(xt);
    free(piv);
    return rc;
}

// a (batch, n, n) -> inv (batch, n, n) = a^-1 per block (sgetrf + sgetri)
int peft_host_inverse(int batch, int n, const float *a, float *inv)
{
    if (batch < 0 || n <= 0 || !a || !inv) return -1;
    size_t nn = (size_t)n * (size_t)n;
    int *piv = calloc((size_t)n, sizeof *piv);
    float *t = malloc(nn * sizeof *t), query = 0, *work = NULL;
    int lwork = -1, info = 0;
    if (piv && t) sgetri_(&n, t, &n, piv, &query, &lwork, &info);
    int rc = piv && t && info == 0 && (work = workspace(query, &lwork)) ? 0 : -1;
    for (int i = 0; i < batch && rc == 0; i++) {
        const float *ai = a + (size_t)i * nn; /* read whole before inv is written: inv may be a */
        if (has_nan(ai, nn)) {
            rc = -1;
            break;
        }
        to_colmajor(n, n, ai, t);
        sgetrf_(&n, &n, t, &n, piv, &info);
        if (info != 0 || has_nan(t, nn)) {
            rc = -1;
            break;
        }
        sgetri_(&n, t, &n, piv, work, &lwork, &info);
        if (info != 0) rc = -1;
        else from_colmajor(n, n, t, n, inv + (size_t)i * nn);
    }
    free(work);
    free(t);
    free(piv);
    return rc;
}
