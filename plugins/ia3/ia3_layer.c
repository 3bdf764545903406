/* ia3_layer.c — one (IA)^3 vector on one linear site (PEFT 0.13.2 ia3.Linear): injection with
 * PEFT's shapes and init, the fan_in_fan_out rewrite for GPT-2 Conv1D, merging the vector into
 * the base weight (and bias) and dividing it out again, and the state dict.
 *
 * Shapes: ia3_l (out, 1) on an ordinary target (it scales the output), (1, in) on a
 * feed-forward one (it scales the input); the same for nn.Linear and Conv1D. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "ia3.h"

/* ---- inject ------------------------------------------------------------------------------- */

/* PEFT's IA3Model._prepare_adapter_config: feedforward_modules null -> the model type's
 * default list, written back into the config (so it is saved as PEFT saves it). */
static int resolve_feedforward(peft_cfg *cfg, const char *model_type, char *err, size_t errlen)
{
    int t = ia3_host->cfg_type(cfg, "feedforward_modules");
    if (t != PEFT_CFG_MISSING && t != PEFT_CFG_NULL) return 0;
    const char *const *defs = ia3_default_feedforward(model_type);
    if (!defs) {
        peft_pu_errf(err, errlen, "ia3 config: feedforward_modules is not set and (IA)^3 has no "
                     "default feed-forward modules for model_type '%s'; please specify "
                     "`feedforward_modules` in the config", model_type ? model_type : "?");
        return -1;
    }
    char names[1000], json[1024];
    peft_pu_quoted_list(defs, names, sizeof names);
    snprintf(json, sizeof json, "[%s]", names);
    if (ia3_host->cfg_set_json(cfg, "feedforward_modules", json) != 0) {
        peft_pu_errf(err, errlen, "ia3: could not write the default feedforward_modules %s",
                     json);
        return -1;
    }
    return 0;
}

void *ia3_inject(const void *parsed, peft_cfg *cfg, const peft_site_info *site,
                 const char *adapter_name, peft_rng *rng, char *err, size_t errlen)
{
    const ia3_config *c = parsed;
    if (peft_pu_inject_args("ia3", parsed, cfg, site, adapter_name, rng, err, errlen) ||
        peft_pu_site_check(site, "ia3", "(IA)^3", 1, err, errlen) ||
        resolve_feedforward(cfg, site->model_type, err, errlen))
        return NULL;
    const char *name = peft_pu_site_name(site);
    int ff = ia3_is_feedforward(cfg, name, err, errlen);
    if (ff < 0) return NULL;
    /* PEFT _create_new_module: fan_in_fan_out follows the module type and is written back */
    peft_pu_fan_in_fan_out(ia3_host, cfg, site);

    ia3_state *st = ia3_host->alloc(sizeof *st);
    if (!st) goto oom;
    st->in_features = site->in_features;
    st->out_features = site->out_features;
    st->is_feedforward = ff;
    const int64_t shape_ff[2] = {1, site->in_features};
    const int64_t shape_out[2] = {site->out_features, 1};
    st->l = peft_pu_param(ia3_host, 2, ff ? shape_ff : shape_out);
    st->merged_l = ia3_host->alloc((size_t)(ff ? site->in_features : site->out_features) *
                                   sizeof(float));
    if (!st->l || !st->merged_l ||
        peft_pu_param_names(ia3_host, "ia3_l", NULL, adapter_name, &st->saved_name,
                            &st->memory_name))
        goto oom;

    /* update_layer: torch.randn, then reset_ia3_parameters (constant 1.0) when init_ia3_weights */
    if (c->init_ia3_weights) {
        float *l = peft_f32(st->l);
        for (int64_t i = 0; i < st->l->numel; i++) l[i] = 1.0f;
    } else {
        peft_pu_fill_normal(ia3_host, st->l, 1.0, rng);
    }
    return st;

oom:
    ia3_destroy(st);
    peft_pu_errf(err, errlen, "ia3: out of memory injecting into '%s'", name);
    return NULL;
}

/* ---- merge -------------------------------------------------------------------------------- */

/* Scales (sign +1) or divides (sign -1) the weight along the vector's axis:
 *   output vector l (out):  nn.Linear W (out, in): row o *= l[o];   Conv1D W (in, out): column o
 *                           bias (out) *= l too
 *   input vector l (in):    nn.Linear W (out, in): column i *= l[i]; Conv1D W (in, out): row i
 *                           bias untouched (it is added after the scaled input)
 * Unmerge divides by the vector that merge folded in; it refuses, changing nothing, when some
 * |l| < 1e-8 (PEFT divides by l + 1e-8 and silently returns a wrong weight). */
int ia3_merge(void *state, const peft_site_info *site, float *weight, float *bias, int sign,
              char *err, size_t errlen)
{
    ia3_state *st = state;
    if (peft_pu_merge_args("ia3", st, site, weight, sign, err, errlen) ||
        peft_pu_merge_shape("ia3", site, st->in_features, st->out_features, err, errlen))
        return -1;
    const char *name = peft_pu_site_name(site);
    const int64_t in = st->in_features, outf = st->out_features;
    const int64_t n = st->is_feedforward ? in : outf;
    const float *l = sign > 0 || !st->merged ? peft_f32(st->l) : st->merged_l;
    if (sign < 0) {
        for (int64_t i = 0; i < n; i++) {
            if (!(fabsf(l[i]) >= (float)IA3_UNMERGE_MIN_ABS)) {
                peft_pu_errf(err, errlen, "ia3 unmerge: cannot divide the (IA)^3 vector out of "
                             "'%s': ia3_l[%lld] = %g (|l| < %g), so the unmerged weight would "
                             "be wrong; the layer stays merged (unload or reload the base model "
                             "to get the original weights)", name, (long long)i, (double)l[i],
                             IA3_UNMERGE_MIN_ABS);
                return -1;
            }
        }
    }
    const int in_out = peft_pu_in_out(site);
    /* rows of the stored layout scaled by l (else its columns) */
    const int by_row = st->is_feedforward ? in_out : !in_out;
    const int64_t rows = in_out ? in : outf, cols = in_out ? outf : in;
    for (int64_t r = 0; r < rows; r++) {
        float *w = weight + r * cols;
        if (by_row) {
            const float s = l[r];
            if (sign > 0) for (int64_t k = 0; k < cols; k++) w[k] *= s;
            else for (int64_t k = 0; k < cols; k++) w[k] /= s;
        } else {
            if (sign > 0) for (int64_t k = 0; k < cols; k++) w[k] *= l[k];
            else for (int64_t k = 0; k < cols; k++) w[k] /= l[k];
        }
    }
    if (bias && !st->is_feedforward) {
        if (sign > 0) for (int64_t o = 0; o < outf; o++) bias[o] *= l[o];
        else for (int64_t o = 0; o < outf; o++) bias[o] /= l[o];
    }
    if (sign > 0) {
        memcpy(st->merged_l, l, (size_t)n * sizeof(float));
        st->merged = 1;
    } else {
        st->merged = 0;
    }
    return 0;
}

/* ---- state dict, status, destroy ---------------------------------------------------------- */

int ia3_state_dict(void *state, peft_param_ref *out, int max)
{
    ia3_state *st = state;
    if (!st) return 0;
    const peft_param_ref ref = {.saved_name = st->saved_name, .memory_name = st->memory_name,
                                .tensor = st->l, .trainable = 1};
    return peft_pu_state_refs(out, max, &ref, 1);
}

/* PEFT's get_layer_status takes repr(module) up to "(": ia3.Linear has no __repr__ of its own
 * (unlike lora.Linear / loha.Linear), so PEFT reports plain "Linear". */
const char *ia3_module_type(void *state)
{
    (void)state;
    return "Linear";
}

void ia3_destroy(void *state)
{
    ia3_state *st = state;
    if (!st) return;
    peft_pu_free_tensors(ia3_host, &st->l, 1);
    char *const strings[] = {st->saved_name, st->memory_name};
    peft_pu_free_strings(ia3_host, strings, 2);
    ia3_host->free(st->merged_l);
    ia3_host->free(st);
}
