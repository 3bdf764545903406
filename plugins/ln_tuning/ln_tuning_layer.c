/* ln_tuning_layer.c — one LN tuning adapter on one norm site (PEFT 0.13.2 LNTuningLayer): a
 * trainable deep copy of the norm's weight (and LayerNorm's bias); the forward is the site's own
 * normalisation with the copy's parameters (it replaces the base norm's output, as PEFT calls
 * ln_tuning_layers[adapter](x) instead of the base layer); merging swaps the copy in (the host
 * keeps the original and restores it bit-exactly on unmerge). */
#include <string.h>

#include "ln_tuning.h"

void *ln_inject(const void *parsed, peft_cfg *cfg, const peft_site_info *site,
                const char *adapter_name, peft_rng *rng, char *err, size_t errlen)
{
    if (peft_pu_inject_args("ln_tuning", parsed, cfg, site, adapter_name, rng, err, errlen))
        return NULL;
    const char *name = peft_pu_site_name(site);
    if (site->struct_size < offsetof(peft_site_info, norm_eps) + sizeof site->norm_eps ||
        site->kind != PEFT_SITE_NORM) {
        peft_pu_errf(err, errlen, "ln_tuning: target module '%s' is a%s %s site (kind %d); LN "
                     "tuning in libpeft takes norm layers only (LayerNorm, RMSNorm)", name,
                     site->kind == PEFT_SITE_EMBEDDING ? "n" : "",
                     peft_pu_site_kind_name(site->kind), (int)site->kind);
        return NULL;
    }
    const int64_t c = site->out_features;
    if (c <= 0 || !site->weight || site->weight->numel != c ||
        (site->bias && site->bias->numel != c)) {
        peft_pu_errf(err, errlen, "ln_tuning: norm '%s' has an invalid shape", name);
        return NULL;
    }
    ln_state *st = ln_host->alloc(sizeof *st);
    if (!st) goto oom;
    st->c = c;
    const int64_t shape[1] = {c};
    st->w = peft_pu_param(ln_host, 1, shape);
    if (!st->w || peft_pu_param_names(ln_host, "ln_tuning_layers", ".weight", adapter_name,
                                      &st->saved_w, &st->memory_w))
        goto oom;
    ln_host->tensor_to_f32(site->weight, peft_f32(st->w)); /* deepcopy(layer) */
    if (site->bias) {
        st->b = peft_pu_param(ln_host, 1, shape);
        if (!st->b || peft_pu_param_names(ln_host, "ln_tuning_layers", ".bias", adapter_name,
                                          &st->saved_b, &st->memory_b))
            goto oom;
        ln_host->tensor_to_f32(site->bias, peft_f32(st->b));
    }
    return st;
oom:
    ln_destroy(st);
    peft_pu_errf(err, errlen, "ln_tuning: out of memory injecting into '%s'", name);
    return NULL;
}

/* x (..., C) the norm's input, y the base norm's output (replaced) -> norm(x; w', b') */
peft_tensor *ln_forward(void *state, peft_graph *g, const peft_site_info *site, peft_tensor *x,
                        peft_tensor *y)
{
    (void)y;
    ln_state *st = state;
    if (!st || !g) return NULL;
    return ln_host->op_site_norm(g, site, x, st->w, st->b);
}

/* sign +1: the copy becomes the base norm's parameters (PEFT swaps the modules). The host undoes
 * a merge by restoring the weight it kept; sign -1 comes only when several adapters are merged
 * on one norm, which PEFT refuses too. */
int ln_merge(void *state, const peft_site_info *site, float *weight, float *bias, int sign,
             char *err, size_t errlen)
{
    ln_state *st = state;
    if (peft_pu_merge_args("ln_tuning", st, site, weight, sign, err, errlen)) return -1;
    if (sign < 0) {
        peft_pu_errf(err, errlen, "ln_tuning: '%s' has several merged LN tuning adapters; LN "
                     "tuning merges one adapter at a time", peft_pu_site_name(site));
        return -1;
    }
    if (site->out_features != st->c || (st->b && !bias)) {
        peft_pu_errf(err, errlen, "ln_tuning merge: '%s' does not fit the adapter",
                     peft_pu_site_name(site));
        return -1;
    }
    memcpy(weight, peft_f32(st->w), (size_t)st->c * sizeof *weight);
    if (st->b) memcpy(bias, peft_f32(st->b), (size_t)st->c * sizeof *bias);
    return 0;
}

int ln_state_dict(void *state, peft_param_ref *out, int max)
{
    ln_state *st = state;
    if (!st) return 0;
    const peft_param_ref refs[2] = {
        {.saved_name = st->saved_w, .memory_name = st->memory_w, .tensor = st->w, .trainable = 1},
        {.saved_name = st->saved_b, .memory_name = st->memory_b, .tensor = st->b, .trainable = 1},
    };
    return peft_pu_state_refs(out, max, refs, st->b ? 2 : 1);
}

const char *ln_module_type(void *state)
{
    (void)state;
    return "ln_tuning.LNTuningLayer";
}

void ln_destroy(void *state)
{
    ln_state *st = state;
    if (!st) return;
    peft_tensor *const tensors[] = {st->w, st->b};
    char *const strings[] = {st->saved_w, st->saved_b, st->memory_w, st->memory_b};
    peft_pu_free_tensors(ln_host, tensors, 2);
    peft_pu_free_strings(ln_host, strings, 4);
    ln_host->free(st);
}
