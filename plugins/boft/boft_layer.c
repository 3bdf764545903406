/* boft_layer.c — one BOFT adapter on one nn.Linear site (PEFT 0.13.2 boft.Linear): inject
 * (shapes, permutations, init), the forward as two ops of its own around the host's op_linear
 *     d = x R - x                        (rotate: backward to x and boft_R)
 *     y' = s * ((y - b) + d W^T) + b     (scale: backward to y, d W^T and boft_s)
 * merge W' = (W R^T) * s and unmerge W = (W' / s) R, state dict. Rows t (n, in) times M_i:
 * scatter by perm_i (t P_i), blocks times Q (B_i), gather by perm_i (P_i^T). */
#include <math.h>
#include <string.h>

#include "boft.h"

/* ---- inject --------------------------------------------------------------------------------- */

void *boft_inject(const void *parsed, peft_cfg *cfg, const peft_site_info *site,
                  const char *adapter_name, peft_rng *rng, char *err, size_t errlen)
{
    const boft_config *c = parsed;
    if (peft_pu_inject_args("boft", parsed, cfg, site, adapter_name, rng, err, errlen) ||
        peft_pu_site_check(site, "boft", "BOFT", 0, err, errlen))
        return NULL;
    const char *name = peft_pu_site_name(site);
    int64_t D, H;
    if (boft_shapes(c, site->in_features, name, &D, &H, err, errlen)) return NULL;
    boft_state *st = boft_host->alloc(sizeof *st);
    if (!st) goto oom;
    st->in = site->in_features;
    st->out = site->out_features;
    st->nf = c->n_factors;
    st->D = D;
    st->H = H;
    st->dropout = c->dropout;
    const int64_t rs[4] = {st->nf, D, H, H}, ss[2] = {st->out, 1};
    st->R = peft_pu_param(boft_host, 4, rs);
    st->s = peft_pu_param(boft_host, 2, ss);
    st->perm = boft_host->alloc((size_t)(st->nf * st->in) * sizeof *st->perm);
    if (!st->R || !st->s || !st->perm ||
        peft_pu_param_names(boft_host, "boft_R", NULL, adapter_name, &st->names[0], &st->names[1]) ||
        peft_pu_param_names(boft_host, "boft_s", NULL, adapter_name, &st->names[2], &st->names[3]))
        goto oom;
    if (boft_perms(st->in, st->nf, D, H, st->perm, err, errlen)) {
        boft_destroy(st);
        return NULL;
    }
    if (c->init_weights) { /* R zeros (rotation I), s ones */
        for (int64_t o = 0; o < st->out; o++) peft_f32(st->s)[o] = 1.0f;
    } else { /* normal_(R, 0, 0.1), normal_(s, 1, 0.1) */
        peft_pu_fill_normal(boft_host, st->R, 0.1, rng);
        peft_pu_fill_normal(boft_host, st->s, 0.1, rng);
        for (int64_t o = 0; o < st->out; o++) peft_f32(st->s)[o] += 1.0f;
    }
    return st;
oom:
    boft_destroy(st);
    peft_pu_errf(err, errlen, "boft: out of memory injecting into '%s'", name);
    return NULL;
}

/* ---- the rotation ------------------------------------------------------------------------- */

/* q, ainv (nf D, H, H): the Cayley transforms; a block marked in drop (nf D, may be NULL) is
 * the identity (MultiplicativeDropoutLayer) */
static int rotations(const boft_state *st, const uint8_t *drop, float *q, float *ainv)
{
    const int64_t H = st->H, nb = st->nf * st->D;
    for (int64_t k = 0; k < nb; k++) {
        float *qk = q + k * H * H;
        if (drop && drop[k]) {
            memset(qk, 0, (size_t)(H * H) * sizeof *qk);
            for (int64_t i = 0; i < H; i++) qk[i * H + i] = 1.0f;
            continue;
        }
        if (peft_pu_cayley(boft_host, H, peft_f32(st->R) + k * H * H, qk, ainv + k * H * H)) return -1;
    }
    return 0;
}

/* t_out (n, in) = t_in M_i (trans 0) or t_in M_i^T (trans 1), M_i = P_i B_i P_i^T; u (n, in)
 * scratch, left holding t_in P_i (the backward needs it) */
static void apply_factor(const boft_state *st, const float *q, int64_t i, const float *t_in,
                         float *t_out, float *u, int64_t n, int trans)
{
    const int64_t in = st->in, H = st->H;
    const int64_t *perm = st->perm + i * in;
    for (int64_t r = 0; r < n; r++)
        for (int64_t k = 0; k < in; k++) u[r * in + perm[k]] = t_in[r * in + k];
    float *v = t_out; /* v = u B (blocks), then gathered in place through a row buffer */
    for (int64_t j = 0; j < st->D; j++)
        boft_host->sgemm(0, trans, (int)n, (int)H, (int)H, 1.0f, u + j * H, (int)in,
                         q + (i * st->D + j) * H * H, (int)H, 0.0f, v + j * H, (int)in);
    float row[1024];
    float *buf = in <= 1024 ? row : boft_host->alloc((size_t)in * sizeof *buf);
    if (!buf) return;
    for (int64_t r = 0; r < n; r++) {
        memcpy(buf, v + r * in, (size_t)in * sizeof *buf);
        for (int64_t k = 0; k < in; k++) t_out[r * in + k] = buf[perm[k]];
    }
    if (buf != row) boft_host->free(buf);
}

/* ---- op 1: d = x R - x ------------------------------------------------------------------------ */

typedef struct rot_bwd {
    boft_state *st;
    peft_tensor *x, *d;
    peft_tensor *q, *ainv; /* (nf D, H, H) */
    peft_tensor *ts;       /* (nf + 1, n, in): ts[nf] = x, ts[i] = ts[i + 1] M_i */
    const uint8_t *drop;   /* arena (nf D) or NULL */
    int64_t n;
} rot_bwd;

static void rot_backward(peft_graph *g, void *vctx)
{
    const rot_bwd *c = vctx;
    boft_state *st = c->st;
    const float *gd = c->d->grad;
    if (!gd) return;
    const int64_t n = c->n, in = st->in, H = st->H, D = st->D, nin = n * in;
    const int64_t sx[2] = {n, in}, sq[3] = {st->nf * D, H, H};
    peft_tensor *gt = boft_host->graph_tensor(g, 2, sx), *ut = boft_host->graph_tensor(g, 2, sx);
    peft_tensor *gvt = boft_host->graph_tensor(g, 2, sx), *gqt = boft_host->graph_tensor(g, 3, sq);
    if (!gt || !ut || !gvt || !gqt) return;
    float *gcur = peft_f32(gt), *u = peft_f32(ut), *gv = peft_f32(gvt), *gq = peft_f32(gqt);
    const float *q = peft_f32(c->q), *ts = peft_f32(c->ts);
    memcpy(gcur, gd, (size_t)nin * sizeof *gcur);
    /* applied i = nf-1 .. 0 (ts[i + 1] -> ts[i]); undo in the order 0 .. nf-1 */
    for (int64_t i = 0; i < st->nf; i++) {
        const int64_t *perm = st->perm + i * in;
        const float *t_in = ts + (i + 1) * nin;
        for (int64_t r = 0; r < n; r++)
            for (int64_t k = 0; k < in; k++) {
                u[r * in + perm[k]] = t_in[r * in + k];    /* u = t_in P */
                gv[r * in + perm[k]] = gcur[r * in + k];   /* gv = g P (gather's backward) */
            }
        for (int64_t j = 0; j < D; j++) { /* gQ += u_j^T gv_j; gu_j = gv_j Q^T */
            const int64_t b = i * D + j;
            boft_host->sgemm(1, 0, (int)H, (int)H, (int)n, 1.0f, u + j * H, (int)in, gv + j * H,
                             (int)in, 1.0f, gq + b * H * H, (int)H);
            boft_host->sgemm(0, 1, (int)n, (int)H, (int)H, 1.0f, gv + j * H, (int)in,
                             q + b * H * H, (int)H, 0.0f, u + j * H, (int)in);
        }
        for (int64_t r = 0; r < n; r++) /* g_in = gu P^T (scatter's backward: gather) */
            for (int64_t k = 0; k < in; k++) gcur[r * in + k] = u[r * in + perm[k]];
    }
    if (c->x->requires_grad) {
        float *dx = boft_host->grad_of(g, c->x);
        if (dx)
            for (int64_t i = 0; i < nin; i++) dx[i] += gcur[i] - gd[i];
    }
    if (st->R->requires_grad) {
        float *gr = boft_host->grad_of(g, st->R);
        if (!gr) return;
        for (int64_t b = 0; b < st->nf * D; b++)
            if (!(c->drop && c->drop[b]))
                peft_pu_cayley_backward(boft_host, H, peft_f32(c->ainv) + b * H * H, gq + b * H * H,
                                     gr + b * H * H);
    }
}

/* training with boft_dropout: one factor picked at random, int(p D) of its blocks (a random
 * subset) replaced by the identity; NULL when nothing is dropped */
static uint8_t *dropout_mask(const boft_state *st, peft_graph *g)
{
    if (!boft_host->graph_training(g) || !(st->dropout > 0)) return NULL;
    const int64_t k = (int64_t)(st->dropout * (double)st->D);
    if (k <= 0) return NULL;
    peft_rng *rng = boft_host->graph_rng(g);
    const int64_t sh[1] = {st->nf * st->D + st->D};
    peft_tensor *t = boft_host->graph_tensor(g, 1, sh); /* zeroed: mask bytes, then an order */
    if (!t) return NULL;
    uint8_t *mask = (uint8_t *)t->data;
    int64_t f = (int64_t)(boft_host->rng_uniform(rng) * (double)st->nf);
    if (f >= st->nf) f = st->nf - 1;
    int32_t *order = (int32_t *)((char *)t->data + ((st->nf * st->D + 3) / 4) * 4);
    for (int64_t j = 0; j < st->D; j++) order[j] = (int32_t)j;
    for (int64_t j = 0; j < k; j++) { /* partial Fisher-Yates: the first k of a shuffle */
        int64_t z = j + (int64_t)(boft_host->rng_uniform(rng) * (double)(st->D - j));
        if (z >= st->D) z = st->D - 1;
        const int32_t tmp = order[j];
        order[j] = order[z];
        order[z] = tmp;
        mask[f * st->D + order[j]] = 1;
    }
    return mask;
}

static peft_tensor *rotate_op(boft_state *st, peft_graph *g, peft_tensor *x, int64_t n)
{
    const int64_t in = st->in, H = st->H, nb = st->nf * st->D, nin = n * in;
    const int64_t sq[3] = {nb, H, H}, sts[3] = {st->nf + 1, n, in}, sx[2] = {n, in};
    const uint8_t *drop = dropout_mask(st, g);
    peft_tensor *q = boft_host->graph_tensor(g, 3, sq), *ainv = boft_host->graph_tensor(g, 3, sq);
    peft_tensor *ts = boft_host->graph_tensor(g, 3, sts), *ut = boft_host->graph_tensor(g, 2, sx);
    peft_tensor *d = boft_host->graph_tensor(g, x->ndim, x->shape);
    if (!q || !ainv || !ts || !ut || !d) return NULL;
    if (rotations(st, drop, peft_f32(q), peft_f32(ainv))) return NULL;
    float *tv = peft_f32(ts);
    const float *xv = peft_f32(x);
    memcpy(tv + st->nf * nin, xv, (size_t)nin * sizeof *tv);
    for (int64_t i = st->nf - 1; i >= 0; i--) /* x R = x M_{nf-1} ... M_0 */
        apply_factor(st, peft_f32(q), i, tv + (i + 1) * nin, tv + i * nin, peft_f32(ut), n, 0);
    float *dv = peft_f32(d);
    for (int64_t i = 0; i < nin; i++) dv[i] = tv[i] - xv[i];
    const int need = PEFT_PU_WANTS_GRAD(boft_host, g, x, st->R);
    d->requires_grad = need;
    if (need) {
        rot_bwd *c = boft_host->tape_push(g, rot_backward, sizeof *c);
        if (!c) return NULL;
        *c = (rot_bwd){st, x, d, q, ainv, ts, drop, n};
    }
    return d;
}

/* ---- op 2: y' = s * ((y - b) + lin) + b -------------------------------------------------------- */

typedef struct scale_bwd {
    boft_state *st;
    peft_tensor *y, *lin, *out, *pre; /* (n, out); pre = (y - b) + lin */
    int64_t n;
} scale_bwd;

static void scale_backward(peft_graph *g, void *vctx)
{
    const scale_bwd *c = vctx;
    const float *G = c->out->grad;
    if (!G) return;
    const int64_t n = c->n, out = c->st->out;
    const float *s = peft_f32(c->st->s), *pre = peft_f32(c->pre);
    float *dy = c->y->requires_grad ? boft_host->grad_of(g, c->y) : NULL;
    float *dl = c->lin->requires_grad ? boft_host->grad_of(g, c->lin) : NULL;
    float *ds = c->st->s->requires_grad ? boft_host->grad_of(g, c->st->s) : NULL;
    for (int64_t i = 0; i < n; i++)
        for (int64_t o = 0; o < out; o++) {
            const float gs = G[i * out + o] * s[o];
            if (dy) dy[i * out + o] += gs;
            if (dl) dl[i * out + o] += gs;
            if (ds) ds[o] += G[i * out + o] * pre[i * out + o];
        }
}

peft_tensor *boft_forward(void *state, peft_graph *g, const peft_site_info *site, peft_tensor *x,
                          peft_tensor *y)
{
    boft_state *st = state;
    int64_t n;
    if (!st || !g || !site || peft_pu_site_rows(x, y, st->in, st->out, &n)) return NULL;
    peft_tensor *d = rotate_op(st, g, x, n);
    peft_tensor *lin = d ? boft_host->op_linear(g, d, site->weight, NULL, 0) : NULL;
    if (!lin) return NULL;
    const int64_t out = st->out, sb[1] = {out};
    peft_tensor *res = boft_host->graph_tensor(g, y->ndim, y->shape);
    peft_tensor *pre = boft_host->graph_tensor(g, y->ndim, y->shape);
    peft_tensor *bias = site->bias ? boft_host->graph_tensor(g, 1, sb) : NULL;
    if (!res || !pre || (site->bias && !bias)) return NULL;
    const float *bv = NULL;
    if (bias) {
        boft_host->tensor_to_f32(site->bias, peft_f32(bias));
        bv = peft_f32(bias);
    }
    const float *yv = peft_f32(y), *lv = peft_f32(lin), *s = peft_f32(st->s);
    float *pv = peft_f32(pre), *rv = peft_f32(res);
    for (int64_t i = 0; i < n; i++)
        for (int64_t o = 0; o < out; o++) {
            const float b = bv ? bv[o] : 0.0f;
            pv[i * out + o] = (yv[i * out + o] - b) + lv[i * out + o];
            rv[i * out + o] = s[o] * pv[i * out + o] + b;
        }
    const int need = PEFT_PU_WANTS_GRAD(boft_host, g, y, lin, st->s);
    res->requires_grad = need;
    if (need) {
        scale_bwd *c = boft_host->tape_push(g, scale_backward, sizeof *c);
        if (!c) return NULL;
        *c = (scale_bwd){st, y, lin, res, pre, n};
    }
    return res;
}

/* ---- merge, state dict, destroy ----------------------------------------------------------- */

/* merge: W' = (W R^T) * s: rows times M_0^T, ..., M_{nf-1}^T, row o scaled by s_o;
 * unmerge: W = (W' / s) R: rows / s_o, then times M_{nf-1}, ..., M_0 (PEFT uses R^T as the
 * inverse of the orthogonal R, and 1 / s) */
int boft_merge(void *state, const peft_site_info *site, float *weight, float *bias, int sign,
               char *err, size_t errlen)
{
    (void)bias;
    boft_state *st = state;
    if (peft_pu_merge_args("boft", st, site, weight, sign, err, errlen) ||
        peft_pu_merge_shape("boft", site, st->in, st->out, err, errlen))
        return -1;
    const int64_t H = st->H, nb = st->nf * st->D, in = st->in, out = st->out;
    float *q = boft_host->alloc((size_t)(nb * H * H) * sizeof *q);
    float *ainv = boft_host->alloc((size_t)(nb * H * H) * sizeof *q);
    float *u = boft_host->alloc((size_t)(out * in) * sizeof *u);
    float *t = boft_host->alloc((size_t)(out * in) * sizeof *t);
    int rc = -1;
    if (!q || !ainv || !u || !t) {
        peft_pu_errf(err, errlen, "boft merge: out of memory for '%s'", peft_pu_site_name(site));
        goto done;
    }
    if (rotations(st, NULL, q, ainv)) {
        peft_pu_errf(err, errlen, "boft merge: singular Cayley transform on '%s'",
                     peft_pu_site_name(site));
        goto done;
    }
    const float *s = peft_f32(st->s);
    if (sign > 0) {
        for (int64_t i = 0; i < st->nf; i++) {
            apply_factor(st, q, i, weight, t, u, out, 1);
            memcpy(weight, t, (size_t)(out * in) * sizeof *t);
        }
        for (int64_t o = 0; o < out; o++)
            for (int64_t k = 0; k < in; k++) weight[o * in + k] *= s[o];
    } else {
        for (int64_t o = 0; o < out; o++)
            for (int64_t k = 0; k < in; k++) weight[o * in + k] *= 1.0f / s[o];
        for (int64_t i = st->nf - 1; i >= 0; i--) {
            apply_factor(st, q, i, weight, t, u, out, 0);
            memcpy(weight, t, (size_t)(out * in) * sizeof *t);
        }
    }
    rc = 0;
done:
    boft_host->free(q);
    boft_host->free(ainv);
    boft_host->free(u);
    boft_host->free(t);
    return rc;
}

int boft_state_dict(void *state, peft_param_ref *out, int max)
{
    boft_state *st = state;
    if (!st) return 0;
    const peft_param_ref refs[2] = {{st->names[0], st->names[1], st->R, 1, 0},
                                    {st->names[2], st->names[3], st->s, 1, 0}};
    return peft_pu_state_refs(out, max, refs, 2);
}

const char *boft_module_type(void *state)
{
    (void)state;
    return "boft.Linear";
}

void boft_destroy(void *state)
{
    boft_state *st = state;
    if (!st) return;
    peft_tensor *const ts[2] = {st->R, st->s};
    peft_pu_free_tensors(boft_host, ts, 2);
    peft_pu_free_strings(boft_host, st->names, 4);
    boft_host->free(st->perm);
    boft_host->free(st);
}
