/* loha_layer.c — one LoHa adapter on one nn.Linear site (PEFT 0.13.2 loha.Linear): injection
 * with PEFT's shapes and initialisation, merging the delta into the base weight, the state
 * dict, set_scale.
 *
 * Shapes: hada_w1_a (out, r), hada_w1_b (r, in), hada_w2_a (out, r), hada_w2_b (r, in);
 * delta W (out, in) = (alpha / r) * (w1_a @ w1_b) ⊙ (w2_a @ w2_b). GPT-2's Conv1D is refused
 * as PEFT refuses it (LyCORIS layers exist for nn.Linear and nn.Conv2d only). */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "loha.h"

static const char *const param_names[4] = {"hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b"};

/* t ~ U(-bound, bound) */
static void init_uniform(peft_tensor *t, double bound, peft_rng *rng)
{
    float *p = peft_f32(t);
    for (int64_t i = 0; i < t->numel; i++)
        p[i] = (float)(bound * (2.0 * loha_host->rng_uniform(rng) - 1.0));
}

static char *join3(const char *a, const char *b, const char *c)
{
    size_t n = strlen(a) + strlen(b) + strlen(c) + 1;
    char *p = loha_host->alloc(n);
    if (p) snprintf(p, n, "%s%s%s", a, b, c);
    return p;
}

static peft_tensor *param(int64_t rows, int64_t cols)
{
    const int64_t shape[2] = {rows, cols};
    peft_tensor *t = loha_host->tensor_new(2, shape);
    if (t) {
        t->requires_grad = 1;
        t->flags |= PEFT_T_PARAM;
    }
    return t;
}

void *loha_inject(const void *parsed, peft_cfg *cfg, const peft_site_info *site,
                  const char *adapter_name, peft_rng *rng, char *err, size_t errlen)
{
    const loha_config *c = parsed;
    if (!c || !cfg || !site || !adapter_name || !rng) {
        loha_errf(err, errlen, "loha inject: missing argument");
        return NULL;
    }
    const char *name = site->name ? site->name : "?";
    if (site->kind == PEFT_SITE_CONV1D) {
        loha_errf(err, errlen, "loha: target module '%s' is a transformers Conv1D (GPT-2's "
                  "layers), which LoHa does not support: PEFT 0.13.2 raises \"Target module of "
                  "type Conv1D not supported, currently only adapters for Conv2d, Linear are "
                  "supported\"; target torch.nn.Linear modules", name);
        return NULL;
    }
    if (site->kind != PEFT_SITE_LINEAR) {
        loha_errf(err, errlen, "loha: target module '%s' has a kind (%d) LoHa does not support; "
                  "supported: torch.nn.Linear", name, (int)site->kind);
        return NULL;
    }
    if (site->in_features <= 0 || site->out_features <= 0) {
        loha_errf(err, errlen, "loha: target module '%s' has invalid shape in=%lld out=%lld",
                  name, (long long)site->in_features, (long long)site->out_features);
        return NULL;
    }

    /* rank and alpha for this site: rank_pattern / alpha_pattern, else r / alpha */
    int64_t r = c->r;
    double alpha = c->alpha, v;
    if (loha_host->cfg_pattern_real(cfg, "rank_pattern", name, &v)) {
        if (!(v >= 1.0) || v != floor(v) || v > 1e9) {
            loha_errf(err, errlen, "loha config: rank_pattern value for '%s' must be a positive "
                      "integer, got %g", name, v);
            return NULL;
        }
        r = (int64_t)v;
    }
    if (loha_host->cfg_pattern_real(cfg, "alpha_pattern", name, &v)) {
        if (!isfinite(v)) {
            loha_errf(err, errlen, "loha config: alpha_pattern value for '%s' must be a finite "
                      "number, got %g", name, v);
            return NULL;
        }
        alpha = v;
    }

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
    st->w1a = param(outf, r);
    st->w1b = param(r, in);
    st->w2a = param(outf, r);
    st->w2b = param(r, in);
    if (!st->w1a || !st->w1b || !st->w2a || !st->w2b) goto oom;
    for (int i = 0; i < 4; i++) {
        st->saved[i] = loha_strdup(param_names[i]);
        st->memory[i] = join3(param_names[i], ".", adapter_name);
        if (!st->saved[i] || !st->memory[i]) goto oom;
    }

    /* reset_adapter_parameters: kaiming_uniform_(a=sqrt(5)) = U(+-1/sqrt(fan_in)), fan_in the
     * second dimension; w2_b zeros so that delta W starts at 0. init_weights false
     * (reset_adapter_parameters_random): w2_b kaiming-uniform as well. */
    init_uniform(st->w1a, 1.0 / sqrt((double)r), rng);
    init_uniform(st->w1b, 1.0 / sqrt((double)in), rng);
    init_uniform(st->w2a, 1.0 / sqrt((double)r), rng);
    if (!c->init_weights) init_uniform(st->w2b, 1.0 / sqrt((double)in), rng);
    return st;

oom:
    loha_destroy(st);
    loha_errf(err, errlen, "loha: out of memory injecting into '%s'", name);
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
    if (!st || !site || !weight) {
        loha_errf(err, errlen, "loha merge: missing state, site or weight");
        return -1;
    }
    const char *name = site->name ? site->name : "?";
    if (sign != 1 && sign != -1) {
        loha_errf(err, errlen, "loha merge: sign must be +1 or -1, got %d", sign);
        return -1;
    }
    if (site->in_features != st->in_features || site->out_features != st->out_features) {
        loha_errf(err, errlen, "loha merge: '%s' is (in=%lld, out=%lld) but the adapter was "
                  "made for (in=%lld, out=%lld)", name, (long long)site->in_features,
                  (long long)site->out_features, (long long)st->in_features,
                  (long long)st->out_features);
        return -1;
    }
    const int64_t in = st->in_features, outf = st->out_features, n = in * outf;
    float *p1 = loha_host->alloc((size_t)n * sizeof(float));
    float *p2 = loha_host->alloc((size_t)n * sizeof(float));
    if (!p1 || !p2) {
        loha_host->free(p1);
        loha_host->free(p2);
        loha_errf(err, errlen, "loha merge: out of memory for the delta of '%s'", name);
        return -1;
    }
    loha_products(st, p1, p2);
    double s = st->scaling * st->mult;
    if (sign < 0 && st->merged) s = st->merged_scale;
    const float sf = (float)s;
    const int in_out = site->kind == PEFT_SITE_CONV1D || site->fan_in_fan_out;
    for (int64_t o = 0; o < outf; o++)
        for (int64_t i = 0; i < in; i++) {
            const float d = p1[o * in + i] * p2[o * in + i] * sf; /* PEFT: (P1 * P2) * scale */
            float *w = in_out ? &weight[i * outf + o] : &weight[o * in + i];
            if (sign > 0) *w += d;
            else *w -= d;
        }
    loha_host->free(p1);
    loha_host->free(p2);
    if (sign > 0) {
        st->merged = 1;
        st->merged_scale = s;
    } else {
        st->merged = 0;
    }
    return 0;
}

/* ---- state dict, status, scale, destroy --------------------------------------------------- */

int loha_state_dict(void *state, peft_param_ref *out, int max)
{
    loha_state *st = state;
    if (!st || !out || max <= 0) return 0;
    peft_tensor *ts[4] = {st->w1a, st->w1b, st->w2a, st->w2b};
    int n = max < 4 ? max : 4;
    for (int i = 0; i < n; i++)
        out[i] = (peft_param_ref){.saved_name = st->saved[i], .memory_name = st->memory[i],
                                  .tensor = ts[i], .trainable = 1};
    return n;
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
    peft_tensor *ts[4] = {st->w1a, st->w1b, st->w2a, st->w2b};
    for (int i = 0; i < 4; i++) {
        if (ts[i]) loha_host->tensor_free(ts[i]);
        loha_host->free(st->saved[i]);
        loha_host->free(st->memory[i]);
    }
    loha_host->free(st);
}
