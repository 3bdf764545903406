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

#define MSG_CONV1D_FIFO "fan_in_fan_out is set to False but the target module is `Conv1D`. " \
                        "Setting fan_in_fan_out to True."
#define MSG_LINEAR_FIFO "fan_in_fan_out is set to True but the target module is " \
                        "`torch.nn.Linear`. Setting fan_in_fan_out to False."

/* ---- inject ------------------------------------------------------------------------------- */

static char *join2(const char *a, const char *b)
{
    size_t n = strlen(a) + strlen(b) + 1;
    char *p = ia3_host->alloc(n);
    if (p) snprintf(p, n, "%s%s", a, b);
    return p;
}

/* PEFT's IA3Model._prepare_adapter_config: feedforward_modules null -> the model type's
 * default list, written back into the config (so it is saved as PEFT saves it). */
static int resolve_feedforward(peft_cfg *cfg, const char *model_type, char *err, size_t errlen)
{
    int t = ia3_host->cfg_type(cfg, "feedforward_modules");
    if (t != PEFT_CFG_MISSING && t != PEFT_CFG_NULL) return 0;
    const char *const *defs = ia3_default_feedforward(model_type);
    if (!defs) {
        ia3_errf(err, errlen, "ia3 config: feedforward_modules is not set and (IA)^3 has no "
                 "default feed-forward modules for model_type '%s'; please specify "
                 "`feedforward_modules` in the config", model_type ? model_type : "?");
        return -1;
    }
    char json[1024];
    size_t len = 0;
    json[len++] = '[';
    for (int i = 0; defs[i]; i++) {
        int w = snprintf(json + len, sizeof json - len, "%s\"%s\"", i ? ", " : "", defs[i]);
        if (w < 0 || (size_t)w >= sizeof json - len) return -1;
        len += (size_t)w;
    }
    if (len + 2 > sizeof json) return -1;
    json[len++] = ']';
    json[len] = 0;
    if (ia3_host->cfg_set_json(cfg, "feedforward_modules", json) != 0) {
        ia3_errf(err, errlen, "ia3: could not write the default feedforward_modules %s", json);
        return -1;
    }
    return 0;
}

void *ia3_inject(const void *parsed, peft_cfg *cfg, const peft_site_info *site,
                 const char *adapter_name, peft_rng *rng, char *err, size_t errlen)
{
    const ia3_config *c = parsed;
    if (!c || !cfg || !site || !adapter_name || !rng) {
        ia3_errf(err, errlen, "ia3 inject: missing argument");
        return NULL;
    }
    const char *name = site->name ? site->name : "?";
    if (site->kind != PEFT_SITE_LINEAR && site->kind != PEFT_SITE_CONV1D) {
        ia3_errf(err, errlen, "ia3: target module '%s' has a kind (%d) (IA)^3 does not "
                 "support; supported: torch.nn.Linear, transformers Conv1D", name, (int)site->kind);
        return NULL;
    }
    if (site->in_features <= 0 || site->out_features <= 0) {
        ia3_errf(err, errlen, "ia3: target module '%s' has invalid shape in=%lld out=%lld", name,
                 (long long)site->in_features, (long long)site->out_features);
        return NULL;
    }
    if (resolve_feedforward(cfg, site->model_type, err, errlen)) return NULL;
    int ff = ia3_is_feedforward(cfg, name, err, errlen);
    if (ff < 0) return NULL;

    /* PEFT _create_new_module: fan_in_fan_out follows the module type and is written back */
    int fifo = 0;
    if (ia3_host->cfg_bool(cfg, "fan_in_fan_out", &fifo) != 0) fifo = 0;
    if (site->kind == PEFT_SITE_CONV1D && !fifo) {
        ia3_host->warn(MSG_CONV1D_FIFO);
        ia3_host->cfg_set_bool(cfg, "fan_in_fan_out", 1);
    } else if (site->kind == PEFT_SITE_LINEAR && fifo) {
        ia3_host->warn(MSG_LINEAR_FIFO);
        ia3_host->cfg_set_bool(cfg, "fan_in_fan_out", 0);
    }

    ia3_state *st = ia3_host->alloc(sizeof *st);
    if (!st) goto oom;
    st->in_features = site->in_features;
    st->out_features = site->out_features;
    st->is_feedforward = ff;
    const int64_t shape_ff[2] = {1, site->in_features};
    const int64_t shape_out[2] = {site->out_features, 1};
    st->l = ia3_host->tensor_new(2, ff ? shape_ff : shape_out);
    st->merged_l = ia3_host->alloc((size_t)(ff ? site->in_features : site->out_features) *
                                   sizeof(float));
    st->saved_name = ia3_strdup("ia3_l");
    st->memory_name = join2("ia3_l.", adapter_name);
    if (!st->l || !st->merged_l || !st->saved_name || !st->memory_name) goto oom;
    st->l->requires_grad = 1;
    st->l->flags |= PEFT_T_PARAM;

    /* update_layer: torch.randn, then reset_ia3_parameters (constant 1.0) when init_ia3_weights */
    float *l = peft_f32(st->l);
    for (int64_t i = 0; i < st->l->numel; i++)
        l[i] = c->init_ia3_weights ? 1.0f : (float)ia3_host->rng_normal(rng);
    return st;

oom:
    ia3_destroy(st);
    ia3_errf(err, errlen, "ia3: out of memory injecting into '%s'", name);
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
    if (!st || !site || !weight) {
        ia3_errf(err, errlen, "ia3 merge: missing state, site or weight");
        return -1;
    }
    const char *name = site->name ? site->name : "?";
    if (sign != 1 && sign != -1) {
        ia3_errf(err, errlen, "ia3 merge: sign must be +1 or -1, got %d", sign);
        return -1;
    }
    if (site->in_features != st->in_features || site->out_features != st->out_features) {
        ia3_errf(err, errlen, "ia3 merge: '%s' is (in=%lld, out=%lld) but the adapter was made "
                 "for (in=%lld, out=%lld)", name, (long long)site->in_features,
                 (long long)site->out_features, (long long)st->in_features,
                 (long long)st->out_features);
        return -1;
    }
    const int64_t in = st->in_features, outf = st->out_features;
    const int64_t n = st->is_feedforward ? in : outf;
    const float *l = sign > 0 || !st->merged ? peft_f32(st->l) : st->merged_l;
    if (sign < 0) {
        for (int64_t i = 0; i < n; i++) {
            if (!(fabsf(l[i]) >= (float)IA3_UNMERGE_MIN_ABS)) {
                ia3_errf(err, errlen, "ia3 unmerge: cannot divide the (IA)^3 vector out of "
                         "'%s': ia3_l[%lld] = %g (|l| < %g), so the unmerged weight would be "
                         "wrong; the layer stays merged (unload or reload the base model to get "
                         "the original weights)", name, (long long)i, (double)l[i],
                         IA3_UNMERGE_MIN_ABS);
                return -1;
            }
        }
    }
    const int in_out = site->kind == PEFT_SITE_CONV1D || site->fan_in_fan_out;
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
    if (!st || !out || max <= 0) return 0;
    out[0] = (peft_param_ref){.saved_name = st->saved_name, .memory_name = st->memory_name,
                              .tensor = st->l, .trainable = 1};
    return 1;
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
    if (st->l) ia3_host->tensor_free(st->l);
    ia3_host->free(st->merged_l);
    ia3_host->free(st->saved_name);
    ia3_host->free(st->memory_name);
    ia3_host->free(st);
}
