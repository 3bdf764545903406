/* hra_layer.c — one HRA adapter on one nn.Linear site (PEFT 0.13.2 hra.Linear): inject (shape,
 * PEFT's symmetric init), the forward y' = y + (x H^T - x) W^T (an op of its own for
 * d = x H^T - x, then the host's op_linear and op_add), its backward, merge / unmerge into the
 * (out, in) weight, state dict. */
#include <math.h>
#include <string.h>

#include "hra.h"

#define MSG_ODD_R "hra: The symmetric initialization can NOT be performed when r is odd!"

/* ---- inject --------------------------------------------------------------------------------- */

void *hra_inject(const void *parsed, peft_cfg *cfg, const peft_site_info *site,
                 const char *adapter_name, peft_rng *rng, char *err, size_t errlen)
{
    const hra_config *c = parsed;
    if (peft_pu_inject_args("hra", parsed, cfg, site, adapter_name, rng, err, errlen) ||
        peft_pu_site_check(site, "hra", "HRA", 0, err, errlen))
        return NULL;
    const char *name = peft_pu_site_name(site);
    hra_state *st = hra_host->alloc(sizeof *st);
    if (!st) goto oom;
    st->in = site->in_features;
    st->out = site->out_features;
    st->r = c->r;
    st->apply_gs = c->apply_gs;
    st->u = peft_pu_param2(hra_host, st->in, st->r);
    if (!st->u || peft_pu_param_names(hra_host, "hra_u", NULL, adapter_name, &st->saved,
                                      &st->memory))
        goto oom;
    float *u = peft_f32(st->u);
    const int64_t in = st->in, r = st->r;
    if (c->init_weights && r % 2 == 0) {
        /* reset_hra_parameters: half (in, r/2) kaiming-uniform (bound 1/sqrt(r/2)), each column
         * repeated twice (repeat_interleave): pairs of equal reflections, H = I */
        const double bound = 1.0 / sqrt((double)(r / 2));
        for (int64_t k = 0; k < in; k++)
            for (int64_t j = 0; j < r / 2; j++) {
                const float v = (float)(bound * (2.0 * hra_host->rng_uniform(rng) - 1.0));
                u[k * r + 2 * j] = u[k * r + 2 * j + 1] = v;
            }
    } else { /* odd r (PEFT warns) or init_weights false: kaiming-uniform on (in, r) */
        if (c->init_weights) hra_host->warn(MSG_ODD_R);
        peft_pu_fill_uniform(hra_host, st->u, 1.0 / sqrt((double)r), rng);
    }
    return st;
oom:
    hra_destroy(st);
    peft_pu_errf(err, errlen, "hra: out of memory injecting into '%s'", name);
    return NULL;
}

/* ---- the op d = x H^T - x --------------------------------------------------------------------- */

typedef struct hra_bwd {
    hra_state *st;
    peft_tensor *x, *d; /* (N, in) */
    peft_tensor *t;     /* x H^T (N, in) */
    peft_tensor *w;     /* unit vectors (r, in) */
    int64_t n;
} hra_bwd;

/* gd (N, in):  g = gd through x -> x H^T (reflections backward, gw);  dx += g - gd;
 * du from gw through the unit vectors */
static void hra_backward(peft_graph *g, void *vctx)
{
    const hra_bwd *c = vctx;
    hra_state *st = c->st;
    const float *gd = c->d->grad;
    if (!gd) return;
    const int64_t n = c->n, in = st->in, r = st->r;
    const int64_t sx[2] = {n, in}, sw[2] = {r, in};
    peft_tensor *gt = hra_host->graph_tensor(g, 2, sx), *tt = hra_host->graph_tensor(g, 2, sx);
    peft_tensor *gw_t = hra_host->graph_tensor(g, 2, sw);
    if (!gt || !tt || !gw_t) return;
    float *gx = peft_f32(gt), *t = peft_f32(tt), *gw = peft_f32(gw_t);
    memcpy(gx, gd, (size_t)(n * in) * sizeof *gx);
    memcpy(t, peft_f32(c->t), (size_t)(n * in) * sizeof *t);
    hra_reflect_rows_backward(n, in, r, st->apply_gs, peft_f32(c->w), t, gx, gw);
    if (c->x->requires_grad) {
        float *dx = hra_host->grad_of(g, c->x);
        if (dx)
            for (int64_t i = 0; i < n * in; i++) dx[i] += gx[i] - gd[i];
    }
    if (st->u->requires_grad) {
        float *gu = hra_host->grad_of(g, st->u);
        if (gu) hra_unit_vectors_backward(in, r, st->apply_gs, peft_f32(st->u), peft_f32(c->w), gw, gu);
    }
}

/* x (..., in) -> d (..., in) = x H^T - x, recorded on the tape */
static peft_tensor *delta_input(hra_state *st, peft_graph *g, peft_tensor *x, int64_t n)
{
    const int64_t sw[2] = {st->r, st->in};
    peft_tensor *w = hra_host->graph_tensor(g, 2, sw);
    peft_tensor *t = hra_host->graph_tensor(g, x->ndim, x->shape);
    peft_tensor *d = hra_host->graph_tensor(g, x->ndim, x->shape);
    if (!w || !t || !d) return NULL;
    if (hra_unit_vectors(st->in, st->r, st->apply_gs, peft_f32(st->u), peft_f32(w))) return NULL;
    const float *xv = peft_f32(x);
    float *tv = peft_f32(t), *dv = peft_f32(d);
    memcpy(tv, xv, (size_t)(n * st->in) * sizeof *tv);
    hra_reflect_rows(n, st->in, st->r, st->apply_gs, peft_f32(w), tv, 0);
    for (int64_t i = 0; i < n * st->in; i++) dv[i] = tv[i] - xv[i];
    const int need = PEFT_PU_WANTS_GRAD(hra_host, g, x, st->u);
    d->requires_grad = need;
    if (need) {
        hra_bwd *c = hra_host->tape_push(g, hra_backward, sizeof *c);
        if (!c) return NULL;
        *c = (hra_bwd){st, x, d, t, w, n};
    }
    return d;
}

/* y' = y + (x H^T - x) W^T: the base weight through the host's op_linear (bf16 weights
 * included), so that its backward is the host's */
peft_tensor *hra_forward(void *state, peft_graph *g, const peft_site_info *site, peft_tensor *x,
                         peft_tensor *y)
{
    hra_state *st = state;
    int64_t n;
    if (!st || !g || !site || peft_pu_site_rows(x, y, st->in, st->out, &n)) return NULL;
    peft_tensor *d = delta_input(st, g, x, n);
    if (!d) return NULL;
    peft_tensor *dy = hra_host->op_linear(g, d, site->weight, NULL, 0);
    return dy ? hra_host->op_add(g, y, dy) : NULL;
}

/* ---- merge, state dict, destroy ----------------------------------------------------------- */

/* merge: W' = W H (each row of W times H); unmerge: W = W' H^T. The bias is unchanged. */
int hra_merge(void *state, const peft_site_info *site, float *weight, float *bias, int sign,
              char *err, size_t errlen)
{
    (void)bias;
    hra_state *st = state;
    if (peft_pu_merge_args("hra", st, site, weight, sign, err, errlen) ||
        peft_pu_merge_shape("hra", site, st->in, st->out, err, errlen))
        return -1;
    float *w = hra_host->alloc((size_t)(st->r * st->in) * sizeof *w);
    if (!w || hra_unit_vectors(st->in, st->r, st->apply_gs, peft_f32(st->u), w)) {
        hra_host->free(w);
        peft_pu_errf(err, errlen, "hra merge: %s on '%s'", w ? "a zero column in hra_u" :
                     "out of memory", peft_pu_site_name(site));
        return -1;
    }
    hra_reflect_rows(st->out, st->in, st->r, st->apply_gs, w, weight, sign > 0);
    hra_host->free(w);
    return 0;
}

int hra_state_dict(void *state, peft_param_ref *out, int max)
{
    hra_state *st = state;
    if (!st) return 0;
    const peft_param_ref ref = {st->saved, st->memory, st->u, 1, 0};
    return peft_pu_state_refs(out, max, &ref, 1);
}

const char *hra_module_type(void *state)
{
    (void)state;
    return "hra.HRALinear"; /* PEFT 0.13.2 names the class HRALinear */
}

void hra_destroy(void *state)
{
    hra_state *st = state;
    if (!st) return;
    if (st->u) hra_host->tensor_free(st->u);
    hra_host->free(st->saved);
    hra_host->free(st->memory);
    hra_host->free(st);
}
