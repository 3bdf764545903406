/* loha_layer.c — one LoHa adapter on one nn.Linear site (PEFT 0.13.2 loha.Linear): injection
 * with PEFT's shapes and initialisation, merging the delta into the base weight, the state
 * dict, set_scale.
 *
 * Shapes: hada_w1_a (out, r), hada_w1_b (r, in), hada_w2_a (out, r), hada_w2_b (r, in);
 * delta W (out, in) = (alpha / r) * (w1_a @ w1_b) ⊙ (w2_a @ w2_b). GPT-2's Conv1D is refused
 * as PEFT refuses it (LyCORIS layers exist for nn.Linear and nn.Conv2d only). */
#include <math.h>

#include "loha.h"

static const char *const param_names[4] = {"hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b"};

void *loha_inject(const void *parsed, peft_cfg *cfg, const peft_site_info *site,
                  const char *adapter_name, peft_rng *rng, char *err, size_t errlen)
{
    const loha_config *c = parsed;
    if (peft_pu_inject_args("loha", parsed, cfg, site, adapter_name, rng, err, errlen))
        return NULL;
    const char *name = peft_pu_site_name(site);
    if (site->kind == PEFT_SITE_CONV1D) {
        peft_pu_errf(err, errlen, "loha: target module '%s' is a transformers Conv1D (GPT-2's "
                     "layers), which LoHa does not support: PEFT 0.13.2 raises \"Target module "
                     "of type Conv1D not supported, currently only adapters for Conv2d, Linear "
                     "are supported\"; target torch.nn.Linear modules", name);
        return NULL;
    }
    if (peft_pu_site_check(site, "loha", "LoHa", 0, err, errlen)) return NULL;

    /* rank and alpha for this site: rank_pattern / alpha_pattern (LyCORIS's key rule), else
     * r / alpha */
    int64_t r = c->r;
    double alpha = c->alpha;
    if (peft_pu_rank_alpha(loha_host, cfg, "loha", name, 1, &r, &alpha, err, errlen))
        return NULL;

    loha_state *st = loha_host->alloc(sizeof *st);
    if (!st) goto oom;
    const int64_t in = site->in_features, outf = site->out_features;
    st->in_features = in;
    st->out_features = outf;
    st->r = r;
    st->alpha = alpha;
    st->scaling = alpha / (double)r;
    st->mult = 1.0;
    st->rank_dropout = (float)c->rank_dropout;
    st->module_dropout = (float)c->module_dropout;
    st->w1a = peft_pu_param2(loha_host, outf, r);
    st->w1b = peft_pu_param2(loha_host, r, in);
    st->w2a = peft_pu_param2(loha_host, outf, r);
    st->w2b = peft_pu_param2(loha_host, r, in);
    if (!st->w1a || !st->w1b || !st->w2a || !st->w2b) goto oom;
    for (int i = 0; i < 4; i++)
        if (peft_pu_param_names(loha_host, param_names[i], NULL, adapter_name, &st->saved[i],
                                &st->memory[i]))
            goto oom;

    /* reset_adapter_parameters: kaiming_uniform_(a=sqrt(5)) = U(+-1/sqrt(fan_in)), fan_in the
     * second dimension; w2_b zeros so that delta W starts at 0. init_weights false
     * (reset_adapter_parameters_random): w2_b kaiming-uniform as well. */
    peft_pu_fill_uniform(loha_host, st->w1a, 1.0 / sqrt((double)r), rng);
    peft_pu_fill_uniform(loha_host, st->w1b, 1.0 / sqrt((double)in), rng);
    peft_pu_fill_uniform(loha_host, st->w2a, 1.0 / sqrt((double)r), rng);
    if (!c->init_weights) peft_pu_fill_uniform(loha_host, st->w2b, 1.0 / sqrt((double)in), rng);
    return st;

oom:
    loha_destroy(st);
    peft_pu_errf(err, errlen, "loha: out of memory injecting into '%s'", name);
    return NULL;
}

/* weight += sign * s * (w1a @ w1b) ⊙ (w2a @ w2b), s = scaling * mult (the scale merged in for
 * an unmerge). weight (out, in) for nn.Linear; (in, out) if the site is fan_in_fan_out. No
 * dropout (PEFT merges the eval-mode delta). The bias is untouched. */
int loha_merge(void *state, const peft_site_info *site, float *weight, float *bias, int sign,
               char *err, size_t errlen)
{
    (void)bias;
    loha_state *st = state;
    if (peft_pu_merge_args("loha", st, site, weight, sign, err, errlen) ||
        peft_pu_merge_shape("loha", site, st->in_features, st->out_features, err, errlen))
        return -1;
    const int64_t in = st->in_features, outf = st->out_features, n = in * outf;
    float *p1 = loha_host->alloc((size_t)n * sizeof(float));
    float *p2 = loha_host->alloc((size_t)n * sizeof(float));
    if (!p1 || !p2) {
        loha_host->free(p1);
        loha_host->free(p2);
        peft_pu_errf(err, errlen, "loha merge: out of memory for the delta of '%s'",
                     peft_pu_site_name(site));
        return -1;
    }
    loha_products(st, p1, p2);
    double s = st->scaling * st->mult;
    if (sign < 0 && st->merged) s = st->merged_scale;
    const float sf = (float)s;
    const int in_out = peft_pu_in_out(site);
    for (int64_t o = 0; o < outf; o++)
        for (int64_t i = 0; i < in; i++) {
            const float d = p1[o * in + i] * p2[o * in + i] * sf; /* PEFT: (P1 * P2) * scale */
            float *w = in_out ? &weight[i * outf + o] : &weight[o * in + i];
            if (sign > 0) *w += d;
            else *w -= d;
        }
    loha_host->free(p1);
    loha_host->free(p2);
    st->merged = sign > 0;
    if (sign > 0) st->merged_scale = s;
    return 0;
}

/* ---- state dict, status, scale, destroy --------------------------------------------------- */

int loha_state_dict(void *state, peft_param_ref *out, int max)
{
    loha_state *st = state;
    if (!st) return 0;
    peft_tensor *ts[4] = {st->w1a, st->w1b, st->w2a, st->w2b};
    peft_param_ref refs[4];
    for (int i = 0; i < 4; i++)
        refs[i] = (peft_param_ref){.saved_name = st->saved[i], .memory_name = st->memory[i],
                                   .tensor = ts[i], .trainable = 1};
    return peft_pu_state_refs(out, max, refs, 4);
}

const char *loha_module_type(void *state)
{
    (void)state;
    return "loha.Linear";
}

/* PEFT's LycorisLayer.set_scale: scaling = scale * alpha / r */
int loha_set_scale(void *state, double mult)
{
    loha_state *st = state;
    if (!st || !isfinite(mult)) return -1;
    st->mult = mult;
    return 0;
}

void loha_destroy(void *state)
{
    loha_state *st = state;
    if (!st) return;
    peft_tensor *const ts[4] = {st->w1a, st->w1b, st->w2a, st->w2b};
    peft_pu_free_tensors(loha_host, ts, 4);
    peft_pu_free_strings(loha_host, st->saved, 4);
    peft_pu_free_strings(loha_host, st->memory, 4);
    loha_host->free(st);
}
