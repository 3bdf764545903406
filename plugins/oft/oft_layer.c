/* oft_layer.c — one OFT adapter on one nn.Linear site (PEFT 0.13.2 oft.Linear): inject (shapes,
 * init), the forward y' = (y - bias) @ R_full + bias with module dropout in training, its
 * backward on the host's tape, merge / unmerge into the (out, in) weight, state dict.
 *
 * Block i of R_full covers outputs [i b, min((i + 1) b, out)); a block cut by out uses its
 * top-left corner (PEFT cuts block_diag(...) to (out, out)), blocks wholly past out are unused.
 * Q (nblk, b, b) holds the Cayley transforms; block i uses Q[i], or Q[0] with block_share. */
#include <math.h>
#include <string.h>

#include "oft.h"

/* ---- inject --------------------------------------------------------------------------------- */

void *oft_inject(const void *parsed, peft_cfg *cfg, const peft_site_info *site,
                 const char *adapter_name, peft_rng *rng, char *err, size_t errlen)
{
    const oft_config *c = parsed;
    if (peft_pu_inject_args("oft", parsed, cfg, site, adapter_name, rng, err, errlen) ||
        peft_pu_site_check(site, "oft", "OFT", 0, err, errlen))
        return NULL;
    const char *name = peft_pu_site_name(site);
    int64_t r = c->r;
    if (peft_pu_rank_alpha(oft_host, cfg, "oft", name, 1, &r, NULL, err, errlen)) return NULL;
    /* r > out is accepted as PEFT 0.13.2 accepts it: blocks of 1, those past out unused */
    oft_state *st = oft_host->alloc(sizeof *st);
    if (!st) goto oom;
    st->in = site->in_features;
    st->out = site->out_features;
    st->r = r;
    st->b = (site->out_features + r - 1) / r;
    st->nblk = c->block_share ? 1 : r;
    st->coft = c->coft;
    st->eps = c->eps * (double)st->b * (double)st->b;
    st->module_dropout = c->module_dropout;
    const int64_t shape[3] = {st->nblk, st->b, st->b};
    st->oft_r = peft_pu_param(oft_host, 3, shape);
    if (!st->oft_r || peft_pu_param_names(oft_host, "oft_r", NULL, adapter_name, &st->saved,
                                          &st->memory))
        goto oom;
    /* init_weights: zeros (R_full = I); else kaiming_uniform_(a = sqrt(5)) on (nblk, b, b):
     * fan_in = b * b, bound 1 / sqrt(fan_in) */
    if (!c->init_weights) peft_pu_fill_uniform(oft_host, st->oft_r, 1.0 / (double)st->b, rng);
    return st;
oom:
    oft_destroy(st);
    peft_pu_errf(err, errlen, "oft: out of memory injecting into '%s'", name);
    return NULL;
}

/* ---- the rotation ------------------------------------------------------------------------- */

/* coft's projection (in place, on the parameter), then q and ainv (nblk, b, b) */
static int rotations(oft_state *st, float *q, float *ainv)
{
    const int64_t b = st->b;
    if (st->coft) /* PEFT: eps * 1 / sqrt(tensor(nblk)), in f32 */
        oft_project(st->nblk, b, peft_f32(st->oft_r),
                    (double)((float)st->eps / sqrtf((float)st->nblk)));
    for (int64_t k = 0; k < st->nblk; k++)
        if (peft_pu_cayley(oft_host, b, peft_f32(st->oft_r) + k * b * b, q + k * b * b, ainv + k * b * b))
            return -1;
    return 0;
}

/* the block of outputs [*lo, *lo + *w) that block i rotates; 0 when past out */
static int block_span(const oft_state *st, int64_t i, int64_t *lo, int64_t *w)
{
    *lo = i * st->b;
    if (*lo >= st->out) return 0;
    *w = st->out - *lo < st->b ? st->out - *lo : st->b;
    return 1;
}

static const float *block_q(const oft_state *st, const float *q, int64_t i)
{
    return q + (st->nblk == 1 ? 0 : i) * st->b * st->b;
}

/* dst (n, out) = src (n, out) @ R_full, or @ R_full^T when trans (overwrites dst) */
static void apply_rotation(const oft_state *st, const float *q, const float *src, float *dst,
                           int64_t n, int trans)
{
    int64_t lo, w;
    for (int64_t i = 0; i < st->r && block_span(st, i, &lo, &w); i++)
        oft_host->sgemm(0, trans, (int)n, (int)w, (int)w, 1.0f, src + lo, (int)st->out,
                        block_q(st, q, i), (int)st->b, 0.0f, dst + lo, (int)st->out);
}

/* ---- forward / backward ------------------------------------------------------------------- */

typedef struct oft_bwd {
    oft_state *st;
    peft_tensor *y, *out; /* (N, out) */
    peft_tensor *z;       /* y - bias (N, out) */
    peft_tensor *q, *ainv; /* (nblk, b, b) */
    int64_t n;
} oft_bwd;

/* dout (N, out):  dy += dout @ R_full^T;  dQ_i += z_i^T dout_i (the block's corner);
 * d oft_r via the Cayley backward (blocks summed into one with block_share) */
static void oft_backward(peft_graph *g, void *vctx)
{
    const oft_bwd *c = vctx;
    oft_state *st = c->st;
    const float *dout = c->out->grad;
    if (!dout) return;
    const int64_t n = c->n, out = st->out, b = st->b;
    const float *q = peft_f32(c->q);
    if (c->y->requires_grad) {
        float *dy = oft_host->grad_of(g, c->y);
        peft_tensor *t = oft_host->graph_tensor(g, c->y->ndim, c->y->shape);
        if (!dy || !t) return;
        apply_rotation(st, q, dout, peft_f32(t), n, 1);
        const float *tv = peft_f32(t);
        for (int64_t i = 0; i < n * out; i++) dy[i] += tv[i];
    }
    if (!st->oft_r->requires_grad) return;
    float *gr = oft_host->grad_of(g, st->oft_r);
    const int64_t sq[3] = {st->nblk, b, b};
    peft_tensor *gq_t = oft_host->graph_tensor(g, 3, sq);
    if (!gr || !gq_t) return;
    float *gq = peft_f32(gq_t);
    const float *z = peft_f32(c->z);
    int64_t lo, w;
    for (int64_t i = 0; i < st->r && block_span(st, i, &lo, &w); i++)
        oft_host->sgemm(1, 0, (int)w, (int)w, (int)n, 1.0f, z + lo, (int)out, dout + lo, (int)out,
                        1.0f, gq + (st->nblk == 1 ? 0 : i) * b * b, (int)b);
    const float *ainv = peft_f32(c->ainv);
    for (int64_t k = 0; k < st->nblk; k++)
        peft_pu_cayley_backward(oft_host, b, ainv + k * b * b, gq + k * b * b, gr + k * b * b);
}

/* y (..., out) -> (y - bias) @ R_full + bias; x is not used (OFT rotates the output). In
 * training the adapter is skipped with probability module_dropout (y returned as is). */
peft_tensor *oft_forward(void *state, peft_graph *g, const peft_site_info *site, peft_tensor *x,
                         peft_tensor *y)
{
    oft_state *st = state;
    int64_t n;
    if (!st || !g || !site || peft_pu_site_rows(x, y, st->in, st->out, &n)) return NULL;
    if (oft_host->graph_training(g) && st->module_dropout > 0 &&
        !(oft_host->rng_uniform(oft_host->graph_rng(g)) > st->module_dropout))
        return y; /* torch.rand(1) > module_dropout failed: no rotation this step */
    const int64_t b = st->b, sq[3] = {st->nblk, b, b}, sb[1] = {st->out};
    peft_tensor *q = oft_host->graph_tensor(g, 3, sq), *ainv = oft_host->graph_tensor(g, 3, sq);
    peft_tensor *z = oft_host->graph_tensor(g, y->ndim, y->shape);
    peft_tensor *out = oft_host->graph_tensor(g, y->ndim, y->shape);
    peft_tensor *bias = site->bias ? oft_host->graph_tensor(g, 1, sb) : NULL;
    if (!q || !ainv || !z || !out || (site->bias && !bias)) return NULL;
    if (rotations(st, peft_f32(q), peft_f32(ainv))) return NULL;
    const float *yv = peft_f32(y), *bv = NULL;
    float *zv = peft_f32(z), *ov = peft_f32(out);
    if (bias) {
        oft_host->tensor_to_f32(site->bias, peft_f32(bias));
        bv = peft_f32(bias);
    }
    for (int64_t i = 0; i < n; i++)
        for (int64_t o = 0; o < st->out; o++)
            zv[i * st->out + o] = bv ? yv[i * st->out + o] - bv[o] : yv[i * st->out + o];
    apply_rotation(st, peft_f32(q), zv, ov, n, 0);
    if (bv)
        for (int64_t i = 0; i < n; i++)
            for (int64_t o = 0; o < st->out; o++) ov[i * st->out + o] += bv[o];

    const int need = PEFT_PU_WANTS_GRAD(oft_host, g, y, st->oft_r);
    out->requires_grad = need;
    if (need) {
        oft_bwd *c = oft_host->tape_push(g, oft_backward, sizeof *c);
        if (!c) return NULL;
        *c = (oft_bwd){st, y, out, z, q, ainv, n};
    }
    return out;
}

/* ---- merge, state dict, destroy ----------------------------------------------------------- */

/* merge: W[block rows] = Q_i^T W[block rows]; unmerge: W[block rows] = (Q_i^T)^-1 W[block rows]
 * (PEFT inverts the cut R_full; a cut block is not orthogonal). The bias is unchanged. */
int oft_merge(void *state, const peft_site_info *site, float *weight, float *bias, int sign,
              char *err, size_t errlen)
{
    (void)bias;
    oft_state *st = state;
    if (peft_pu_merge_args("oft", st, site, weight, sign, err, errlen) ||
        peft_pu_merge_shape("oft", site, st->in, st->out, err, errlen))
        return -1;
    const int64_t b = st->b, nq = st->nblk * b * b;
    float *q = oft_host->alloc((size_t)nq * sizeof *q), *ainv = oft_host->alloc((size_t)nq * sizeof *q);
    float *m = oft_host->alloc((size_t)(b * b) * sizeof *m), *mi = oft_host->alloc((size_t)(b * b) * sizeof *m);
    float *rows = oft_host->alloc((size_t)(b * st->in) * sizeof *rows);
    int rc = -1;
    if (!q || !ainv || !m || !mi || !rows) {
        peft_pu_errf(err, errlen, "oft merge: out of memory for '%s'", peft_pu_site_name(site));
        goto done;
    }
    if (rotations(st, q, ainv)) {
        peft_pu_errf(err, errlen, "oft merge: singular Cayley transform on '%s'",
                     peft_pu_site_name(site));
        goto done;
    }
    int64_t lo, w;
    for (int64_t i = 0; i < st->r && block_span(st, i, &lo, &w); i++) {
        const float *qi = block_q(st, q, i);
        for (int64_t a = 0; a < w; a++) /* m (w, w) = Q_i[:w, :w]^T */
            for (int64_t c = 0; c < w; c++) m[a * w + c] = qi[c * b + a];
        if (sign < 0 && peft_pu_inverse(oft_host, w, m, mi)) {
            peft_pu_errf(err, errlen, "oft unmerge: the rotation of '%s' (block %lld) is "
                         "singular", peft_pu_site_name(site), (long long)i);
            goto done;
        }
        float *wr = weight + lo * st->in;
        memcpy(rows, wr, (size_t)(w * st->in) * sizeof *rows);
        peft_pu_gemm(oft_host, 0, 0, w, st->in, w, 1.0f, sign > 0 ? m : mi, rows, 0.0f, wr);
    }
    rc = 0;
done:
    oft_host->free(q);
    oft_host->free(ainv);
    oft_host->free(m);
    oft_host->free(mi);
    oft_host->free(rows);
    return rc;
}

int oft_state_dict(void *state, peft_param_ref *out, int max)
{
    oft_state *st = state;
    if (!st) return 0;
    const peft_param_ref ref = {st->saved, st->memory, st->oft_r, 1, 0};
    return peft_pu_state_refs(out, max, &ref, 1);
}

const char *oft_module_type(void *state)
{
    (void)state;
    return "oft.Linear";
}

void oft_destroy(void *state)
{
    oft_state *st = state;
    if (!st) return;
    if (st->oft_r) oft_host->tensor_free(st->oft_r);
    oft_host->free(st->saved);
    oft_host->free(st->memory);
    oft_host->free(st);
}
