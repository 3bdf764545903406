/* vera_layer.c — one VeRA layer: inject (PEFT's update_layer and reset_vera_parameters),
 * forward from host ops (their backward is recorded for us), merge, state dict. */
#include <string.h>
#include "vera.h"

void *vera_inject_in(void *adapter_state, const void *parsed, peft_cfg *cfg,
                     const peft_site_info *site, const char *adapter_name, peft_rng *rng,
                     char *err, size_t errlen)
{
    const vera_config *c = parsed;
    const vera_proj *p = adapter_state;
    if (peft_pu_inject_args("vera", parsed, cfg, site, adapter_name, rng, err, errlen) ||
        peft_pu_site_check(site, "vera", "VeRA", 1, err, errlen))
        return NULL;
    if (!p || site->in_features > p->max_in || site->out_features > p->max_out || c->r > p->r) {
        peft_pu_errf(err, errlen, "vera: the projections (r=%lld, in %lld, out %lld) do not "
                     "cover %s (in %lld, out %lld, r=%lld)", (long long)(p ? p->r : 0),
                     (long long)(p ? p->max_in : 0), (long long)(p ? p->max_out : 0),
                     peft_pu_site_name(site), (long long)site->in_features,
                     (long long)site->out_features, (long long)c->r);
        return NULL;
    }
    peft_pu_fan_in_fan_out(vera_host, cfg, site);
    vera_layer *l = vera_host->alloc(sizeof *l);
    if (!l) goto oom;
    *l = (vera_layer){.p = p, .in = site->in_features, .out = site->out_features, .r = c->r,
                      .dropout = c->dropout};
    l->lb = peft_pu_param(vera_host, 1, (const int64_t[]){l->out});
    l->ld = peft_pu_param(vera_host, 1, (const int64_t[]){l->r});
    l->names[0] = peft_pu_concat(vera_host, "vera_lambda_b.", adapter_name, "");
    l->names[1] = peft_pu_concat(vera_host, "vera_lambda_d.", adapter_name, "");
    if (!l->lb || !l->ld || !l->names[0] || !l->names[1]) goto oom;
    float *lb = (float *)l->lb->data, *ld = (float *)l->ld->data;
    if (c->init_weights) { /* reset_vera_parameters: lambda_b = 0, lambda_d = d_initial */
        for (int64_t i = 0; i < l->r; i++) ld[i] = (float)c->d_initial;
    } else { /* update_layer: lambda_b = ones, lambda_d = randn */
        for (int64_t i = 0; i < l->out; i++) lb[i] = 1.0f;
        for (int64_t i = 0; i < l->r; i++) ld[i] = (float)vera_host->rng_normal(rng);
    }
    return l;
oom:
    vera_destroy(l);
    peft_pu_errf(err, errlen, "vera: out of memory on %s", peft_pu_site_name(site));
    return NULL;
}

/* the sliced projections on g: A[:, :in] (r, in) and B[:out, :] (out, r) */
static int slices(const vera_layer *l, peft_graph *g, peft_tensor **a, peft_tensor **b)
{
    *a = vera_host->graph_tensor(g, 2, (const int64_t[]){l->r, l->in});
    *b = vera_host->graph_tensor(g, 2, (const int64_t[]){l->out, l->r});
    if (!*a || !*b) return -1;
    const float *A = (const float *)l->p->A->data, *B = (const float *)l->p->B->data;
    for (int64_t i = 0; i < l->r; i++)
        memcpy((float *)(*a)->data + i * l->in, A + i * l->p->max_in, (size_t)l->in * sizeof(float));
    for (int64_t o = 0; o < l->out; o++)
        memcpy((float *)(*b)->data + o * l->r, B + o * l->p->r, (size_t)l->r * sizeof(float));
    return 0;
}

// x (..., in), y (..., out) -> y + lambda_b * ((lambda_d * (dropout(x) A_s^T)) B_s^T)
peft_tensor *vera_forward(void *state, peft_graph *g, const peft_site_info *site, peft_tensor *x,
                          peft_tensor *y)
{
    (void)site;
    vera_layer *l = state;
    (void)site;
    peft_tensor *a, *b;
    if (slices(l, g, &a, &b)) return NULL;
    peft_tensor *xd = l->dropout > 0 ? vera_host->op_dropout(g, x, (float)l->dropout) : x;
    peft_tensor *t = xd ? vera_host->op_linear(g, xd, a, NULL, 0) : NULL;        /* (..., r) */
    t = t ? vera_host->op_mul_lastdim(g, t, l->ld) : NULL;
    t = t ? vera_host->op_linear(g, t, b, NULL, 0) : NULL;                       /* (..., out) */
    t = t ? vera_host->op_mul_lastdim(g, t, l->lb) : NULL;
    return t ? vera_host->op_add(g, y, t) : NULL;
}

// weight (out, in), or (in, out) stored transposed: += sign * (lambda_b B_s)(lambda_d A_s)
int vera_merge(void *state, const peft_site_info *site, float *weight, float *bias, int sign,
               char *err, size_t errlen)
{
    (void)bias;
    vera_layer *l = state;
    (void)bias; /* VeRA leaves the base bias alone */
    if (peft_pu_merge_args("vera", state, site, weight, sign, err, errlen) ||
        peft_pu_merge_shape("vera", site, l->in, l->out, err, errlen))
        return -1;
    float *bs = vera_host->alloc((size_t)(l->out * l->r) * sizeof *bs);
    float *as = vera_host->alloc((size_t)(l->r * l->in) * sizeof *as);
    if (!bs || !as) {
        vera_host->free(bs);
        vera_host->free(as);
        peft_pu_errf(err, errlen, "vera merge: out of memory");
        return -1;
    }
    const float *A = (const float *)l->p->A->data, *B = (const float *)l->p->B->data;
    const float *lb = (const float *)l->lb->data, *ld = (const float *)l->ld->data;
    for (int64_t o = 0; o < l->out; o++)
        for (int64_t k = 0; k < l->r; k++) bs[o * l->r + k] = lb[o] * B[o * l->p->r + k];
    for (int64_t k = 0; k < l->r; k++)
        for (int64_t i = 0; i < l->in; i++) as[k * l->in + i] = ld[k] * A[k * l->p->max_in + i];
    if (peft_pu_in_out(site)) /* W (in, out) += sign * as^T bs^T */
        vera_host->sgemm(1, 1, (int)l->in, (int)l->out, (int)l->r, (float)sign, as, (int)l->in,
                         bs, (int)l->r, 1.0f, weight, (int)l->out);
    else /* W (out, in) += sign * bs as */
        vera_host->sgemm(0, 0, (int)l->out, (int)l->in, (int)l->r, (float)sign, bs, (int)l->r,
                         as, (int)l->in, 1.0f, weight, (int)l->in);
    vera_host->free(bs);
    vera_host->free(as);
    return 0;
}

void vera_destroy(void *state)
{
    vera_layer *l = state;
    if (!l) return;
    vera_host->tensor_free(l->lb);
    vera_host->tensor_free(l->ld);
    vera_host->free(l->names[0]);
    vera_host->free(l->names[1]);
    vera_host->free(l);
}

int vera_state_dict(void *state, peft_param_ref *out, int max)
{
    vera_layer *l = state;
    peft_param_ref refs[2] = {{"vera_lambda_b", l->names[0], l->lb, 1, 0},
                              {"vera_lambda_d", l->names[1], l->ld, 1, 0}};
    return peft_pu_state_refs(out, max, refs, 2);
}

const char *vera_module_type(void *state)
{
    (void)state;
    return "vera.Linear";
}
