/* fourierft_layer.c — one FourierFT adapter on one linear site (PEFT 0.13.2 FourierFTLinear):
 * inject (positions from torch's randperm, the cos / sin bases, PEFT's init), the forward
 * y' = y + x @ delta W^T through the bases, its backward, merge (Conv1D transposed: see
 * fourierft.h), state dict. Shapes: x (N, in), y (N, out), bases (out, n) and (in, n). */
#include <math.h>
#include <string.h>

#include "fourierft.h"

/* ---- inject --------------------------------------------------------------------------------- */

/* basis (dim, n): cos or sin of 2 pi (pos_k * a mod dim) / dim, the angle reduced exactly. The
 * angle takes only dim values (m = pos_k * a mod dim): each cos / sin is computed once per m
 * into a table (tab: 2 dim floats), not once per entry (dim n of them: the inject of a 4096-wide
 * site with n = 1000 was 8 million cos + sin). The same expression per m: the same floats. */
static void basis(int64_t dim, int64_t n, const int64_t *pos, float *cosb, float *sinb, float *tab,
                  int64_t *mk)
{
    for (int64_t m = 0; m < dim; m++) {
        const double ang = 2.0 * M_PI * (double)m / (double)dim;
        tab[2 * m] = (float)cos(ang);
        tab[2 * m + 1] = (float)sin(ang);
    }
    /* mk[k] = pos_k * a mod dim, stepped from row a to a + 1 (0 <= pos_k < dim): no division */
    for (int64_t k = 0; k < n; k++) mk[k] = 0;
    for (int64_t a = 0; a < dim; a++)
        for (int64_t k = 0; k < n; k++) {
            const int64_t m = mk[k];
            cosb[a * n + k] = tab[2 * m];
            sinb[a * n + k] = tab[2 * m + 1];
            mk[k] = m + pos[k] >= dim ? m + pos[k] - dim : m + pos[k];
        }
}

void *fourierft_inject(const void *parsed, peft_cfg *cfg, const peft_site_info *site,
                       const char *adapter_name, peft_rng *rng, char *err, size_t errlen)
{
    const fourierft_config *c = parsed;
    if (peft_pu_inject_args("fourierft", parsed, cfg, site, adapter_name, rng, err, errlen) ||
        peft_pu_site_check(site, "fourierft", "FourierFT", 1, err, errlen))
        return NULL;
    const char *name = peft_pu_site_name(site);
    peft_pu_fan_in_fan_out(fourierft_host, cfg, site);
    int64_t n = c->n_frequency;
    double v;
    if (fourierft_host->cfg_pattern_real_lycoris(cfg, "n_frequency_pattern", name, &v)) {
        if (!(v >= 1) || v != floor(v)) {
            peft_pu_errf(err, errlen, "fourierft config: n_frequency_pattern value for '%s' must "
                         "be a positive integer, got %g", name, v);
            return NULL;
        }
        n = (int64_t)v;
    }
    const int64_t in = site->in_features, out = site->out_features;
    if (n > in * out) {
        peft_pu_errf(err, errlen, "fourierft: `n_frequency` should be less than or equal to the "
                     "product of the input and output dimensions but the value passed is %lld "
                     "and the product is %lld (module '%s')", (long long)n,
                     (long long)(in * out), name);
        return NULL;
    }
    fourierft_state *st = fourierft_host->alloc(sizeof *st);
    if (!st) goto oom;
    st->in = in;
    st->out = out;
    st->n = n;
    st->scaling = c->scaling;
    const int64_t shape[1] = {n};
    st->spectrum = peft_pu_param(fourierft_host, 1, shape);
    int64_t *perm = fourierft_host->alloc((size_t)n * sizeof *perm);
    st->rows = fourierft_host->alloc((size_t)n * sizeof *st->rows);
    st->cols = fourierft_host->alloc((size_t)n * sizeof *st->cols);
    st->ca = fourierft_host->alloc((size_t)(out * n) * sizeof(float));
    st->sa = fourierft_host->alloc((size_t)(out * n) * sizeof(float));
    st->cb = fourierft_host->alloc((size_t)(in * n) * sizeof(float));
    st->sb = fourierft_host->alloc((size_t)(in * n) * sizeof(float));
    if (!st->spectrum || !perm || !st->rows || !st->cols || !st->ca || !st->sa || !st->cb ||
        !st->sb || peft_pu_param_names(fourierft_host, "fourierft_spectrum", NULL, adapter_name,
                                       &st->saved, &st->memory)) {
        fourierft_host->free(perm);
        goto oom;
    }
    if (fourierft_randperm(in * out, (uint64_t)c->random_loc_seed, n, perm)) {
        fourierft_host->free(perm);
        fourierft_destroy(st);
        peft_pu_errf(err, errlen, "fourierft: cannot draw %lld positions of %lld for '%s' "
                     "(torch's randperm is reproduced for out * in < 2^32 / 20)", (long long)n,
                     (long long)(in * out), name);
        return NULL;
    }
    for (int64_t k = 0; k < n; k++) {
        st->rows[k] = perm[k] / in;
        st->cols[k] = perm[k] % in;
    }
    fourierft_host->free(perm);
    float *tab = fourierft_host->alloc((size_t)(2 * (in > out ? in : out)) * sizeof *tab);
    int64_t *mk = fourierft_host->alloc((size_t)n * sizeof *mk);
    if (!tab || !mk) {
        fourierft_host->free(tab);
        fourierft_host->free(mk);
        goto oom;
    }
    basis(out, n, st->rows, st->ca, st->sa, tab, mk);
    basis(in, n, st->cols, st->cb, st->sb, tab, mk);
    fourierft_host->free(tab);
    fourierft_host->free(mk);
    if (!c->init_weights) peft_pu_fill_normal(fourierft_host, st->spectrum, 1.0, rng);
    return st;
oom:
    fourierft_destroy(st);
    peft_pu_errf(err, errlen, "fourierft: out of memory injecting into '%s'", name);
    return NULL;
}

/* ---- forward / backward ------------------------------------------------------------------- */

typedef struct fourierft_bwd {
    fourierft_state *st;
    peft_tensor *x, *y, *out; /* (N, in), (N, out), (N, out) */
    peft_tensor *p, *q;       /* x Cb, x Sb (N, n) */
    int64_t rows;
    float c; /* scaling / (out in) */
} fourierft_bwd;

/* G = dout (N, out): dy += G;  A = G Ca, B = G Sa (N, n);
 * ds_k += c sum_i (P_ik A_ik - Q_ik B_ik);  dx += c ((A * s) Cb^T - (B * s) Sb^T) */
static void fourierft_backward(peft_graph *g, void *vctx)
{
    const fourierft_bwd *c = vctx;
    fourierft_state *st = c->st;
    const float *G = c->out->grad;
    if (!G) return;
    const int64_t N = c->rows, n = st->n, in = st->in, out = st->out;
    peft_pu_grad_add(fourierft_host, g, c->y, G, N * out);
    const int want_x = c->x->requires_grad, want_s = st->spectrum->requires_grad;
    if (!want_x && !want_s) return;
    const int64_t sh[2] = {N, n};
    peft_tensor *at = fourierft_host->graph_tensor(g, 2, sh), *bt = fourierft_host->graph_tensor(g, 2, sh);
    if (!at || !bt) return;
    float *A = peft_f32(at), *B = peft_f32(bt);
    peft_pu_gemm(fourierft_host, 0, 0, N, n, out, 1.0f, G, st->ca, 0.0f, A);
    peft_pu_gemm(fourierft_host, 0, 0, N, n, out, 1.0f, G, st->sa, 0.0f, B);
    if (want_s) {
        float *ds = fourierft_host->grad_of(g, st->spectrum);
        const float *P = peft_f32(c->p), *Q = peft_f32(c->q);
        if (ds)
            for (int64_t k = 0; k < n; k++) {
                double acc = 0;
                for (int64_t i = 0; i < N; i++)
                    acc += (double)P[i * n + k] * A[i * n + k] - (double)Q[i * n + k] * B[i * n + k];
                ds[k] += (float)(c->c * acc);
            }
    }
    if (want_x) {
        float *dx = fourierft_host->grad_of(g, c->x);
        if (!dx) return;
        const float *s = peft_f32(st->spectrum);
        for (int64_t i = 0; i < N; i++)
            for (int64_t k = 0; k < n; k++) {
                A[i * n + k] *= c->c * s[k];
                B[i * n + k] *= -c->c * s[k];
            }
        peft_pu_gemm(fourierft_host, 0, 1, N, in, n, 1.0f, A, st->cb, 1.0f, dx);
        peft_pu_gemm(fourierft_host, 0, 1, N, in, n, 1.0f, B, st->sb, 1.0f, dx);
    }
}

/* x (..., in), y (..., out) -> y + c ((x Cb) * s) Ca^T - c ((x Sb) * s) Sa^T */
peft_tensor *fourierft_forward(void *state, peft_graph *g, const peft_site_info *site,
                               peft_tensor *x, peft_tensor *y)
{
    (void)site;
    fourierft_state *st = state;
    int64_t N;
    if (!st || !g || peft_pu_site_rows(x, y, st->in, st->out, &N)) return NULL;
    const int64_t n = st->n, sh[2] = {N, n};
    peft_tensor *p = fourierft_host->graph_tensor(g, 2, sh), *q = fourierft_host->graph_tensor(g, 2, sh);
    peft_tensor *ps = fourierft_host->graph_tensor(g, 2, sh), *qs = fourierft_host->graph_tensor(g, 2, sh);
    peft_tensor *out = fourierft_host->graph_tensor(g, y->ndim, y->shape);
    if (!p || !q || !ps || !qs || !out) return NULL;
    const float c = (float)(st->scaling / ((double)st->out * (double)st->in));
    const float *xv = peft_f32(x), *s = peft_f32(st->spectrum);
    float *P = peft_f32(p), *Q = peft_f32(q), *PS = peft_f32(ps), *QS = peft_f32(qs);
    peft_pu_gemm(fourierft_host, 0, 0, N, n, st->in, 1.0f, xv, st->cb, 0.0f, P);
    peft_pu_gemm(fourierft_host, 0, 0, N, n, st->in, 1.0f, xv, st->sb, 0.0f, Q);
    for (int64_t i = 0; i < N; i++)
        for (int64_t k = 0; k < n; k++) {
            PS[i * n + k] = c * P[i * n + k] * s[k];
            QS[i * n + k] = -c * Q[i * n + k] * s[k];
        }
    float *ov = peft_f32(out);
    memcpy(ov, peft_f32(y), (size_t)(N * st->out) * sizeof *ov);
    peft_pu_gemm(fourierft_host, 0, 1, N, st->out, n, 1.0f, PS, st->ca, 1.0f, ov);
    peft_pu_gemm(fourierft_host, 0, 1, N, st->out, n, 1.0f, QS, st->sa, 1.0f, ov);
    const int need = PEFT_PU_WANTS_GRAD(fourierft_host, g, x, y, st->spectrum);
    out->requires_grad = need;
    if (need) {
        fourierft_bwd *b = fourierft_host->tape_push(g, fourierft_backward, sizeof *b);
        if (!b) return NULL;
        *b = (fourierft_bwd){st, x, y, out, p, q, N, c};
    }
    return out;
}

/* ---- merge, state dict, destroy ----------------------------------------------------------- */

/* weight += sign * delta W: (out, in) for nn.Linear, delta W^T into GPT-2's (in, out) Conv1D
 * weight (PEFT 0.13.2 adds it untransposed there; see fourierft.h) */
int fourierft_merge(void *state, const peft_site_info *site, float *weight, float *bias, int sign,
                    char *err, size_t errlen)
{
    (void)bias;
    fourierft_state *st = state;
    if (peft_pu_merge_args("fourierft", st, site, weight, sign, err, errlen) ||
        peft_pu_merge_shape("fourierft", site, st->in, st->out, err, errlen))
        return -1;
    const int64_t n = st->n, in = st->in, out = st->out;
    float *cs = fourierft_host->alloc((size_t)(out * n) * sizeof *cs);
    float *ss = fourierft_host->alloc((size_t)(out * n) * sizeof *ss);
    float *dw = fourierft_host->alloc((size_t)(out * in) * sizeof *dw);
    if (!cs || !ss || !dw) {
        fourierft_host->free(cs);
        fourierft_host->free(ss);
        fourierft_host->free(dw);
        peft_pu_errf(err, errlen, "fourierft merge: out of memory for '%s'", peft_pu_site_name(site));
        return -1;
    }
    /* delta W (out, in) = (Ca diag(c s)) Cb^T - (Sa diag(c s)) Sb^T */
    const float c = (float)(st->scaling / ((double)out * (double)in));
    const float *s = peft_f32(st->spectrum);
    for (int64_t a = 0; a < out; a++)
        for (int64_t k = 0; k < n; k++) {
            cs[a * n + k] = st->ca[a * n + k] * c * s[k];
            ss[a * n + k] = -st->sa[a * n + k] * c * s[k];
        }
    peft_pu_gemm(fourierft_host, 0, 1, out, in, n, 1.0f, cs, st->cb, 0.0f, dw);
    peft_pu_gemm(fourierft_host, 0, 1, out, in, n, 1.0f, ss, st->sb, 1.0f, dw);
    const int in_out = peft_pu_in_out(site);
    for (int64_t o = 0; o < out; o++)
        for (int64_t i = 0; i < in; i++)
            weight[in_out ? i * out + o : o * in + i] += (float)sign * dw[o * in + i];
    fourierft_host->free(cs);
    fourierft_host->free(ss);
    fourierft_host->free(dw);
    return 0;
}

int fourierft_state_dict(void *state, peft_param_ref *out, int max)
{
    fourierft_state *st = state;
    if (!st) return 0;
    const peft_param_ref ref = {st->saved, st->memory, st->spectrum, 1, 0};
    return peft_pu_state_refs(out, max, &ref, 1);
}

const char *fourierft_module_type(void *state)
{
    (void)state;
    return "fourierft.FourierFTLinear";
}

void fourierft_destroy(void *state)
{
    fourierft_state *st = state;
    if (!st) return;
    if (st->spectrum) fourierft_host->tensor_free(st->spectrum);
    void *ps[] = {st->rows, st->cols, st->ca, st->sa, st->cb, st->sb, st->saved, st->memory};
    for (size_t i = 0; i < sizeof ps / sizeof ps[0]; i++) fourierft_host->free(ps[i]);
    fourierft_host->free(st);
}
