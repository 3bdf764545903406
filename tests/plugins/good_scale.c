/* good_scale.c — a tiny but complete tuner plugin used by the registry tests: "testscale".
 *
 * On each targeted site it holds one trainable vector v (out), initialised to the config's
 * "scale" (default 0.5), and computes y' = y + y * v (so a uniform v = s gives y + s*y).
 * It is mergeable: merging multiplies output feature o of the base weight and bias by
 * (1 + v[o]); unmerging divides by it. State dict: "testscale_v.weight". Built against sdk/
 * alone, like any third-party plugin. */
#include <stdio.h>
#include <string.h>
#include "peft/plugin.h"

/* old_minor.c builds this plugin again as a plugin of an older ABI minor, under another name */
#ifndef TS_NAME
#define TS_NAME "testscale"
#define TS_TYPE "TESTSCALE"
#define TS_ABI_MINOR PEFT_ABI_MINOR
#endif

static const peft_host_api *H;

typedef struct {
    double scale;
} ts_config;

typedef struct {
    peft_tensor *v;    /* (out) */
    char memory_name[160];
} ts_state;

static const char *const ts_keys[] = {"peft_type", "scale", "target_modules", "task_type",
                                      "base_model_name_or_path", "revision", "inference_mode",
                                      NULL};

static int ts_config_parse(peft_cfg *cfg, void **out, char *err, size_t errlen)
{
    double s = 0.5;
    int t = H->cfg_type(cfg, "scale");
    if (t == PEFT_CFG_MISSING || t == PEFT_CFG_NULL) {
        H->cfg_set_real(cfg, "scale", s);
    } else if (H->cfg_real(cfg, "scale", &s) != 0) {
        snprintf(err, errlen, "testscale: 'scale' must be a number");
        return -1;
    }
    if (!(s > -1.0)) {
        snprintf(err, errlen, "testscale: 'scale' must be > -1, got %g", s);
        return -1;
    }
    ts_config *c = H->alloc(sizeof *c);
    if (!c) {
        snprintf(err, errlen, "testscale: out of memory");
        return -1;
    }
    c->scale = s;
    *out = c;
    return 0;
}

static void ts_config_free(void *parsed) { H->free(parsed); }

static void *ts_inject(const void *parsed, peft_cfg *cfg, const peft_site_info *site,
                       const char *adapter_name, peft_rng *rng, char *err, size_t errlen)
{
    (void)cfg, (void)rng;
    const ts_config *c = parsed;
    ts_state *st = H->alloc(sizeof *st);
    int64_t shape[1] = {site->out_features};
    if (!st || !(st->v = H->tensor_new(1, shape))) {
        H->free(st);
        snprintf(err, errlen, "testscale: out of memory on %s", site->name);
        return NULL;
    }
    float *v = peft_f32(st->v);
    for (int64_t i = 0; i < site->out_features; i++) v[i] = (float)c->scale;
    st->v->requires_grad = 1;
    snprintf(st->memory_name, sizeof st->memory_name, "testscale_v.%s.weight", adapter_name);
    return st;
}

static peft_tensor *ts_forward(void *state, peft_graph *g, const peft_site_info *site,
                               peft_tensor *x, peft_tensor *y)
{
    (void)site, (void)x;
    ts_state *st = state;
    peft_tensor *d = H->op_mul_lastdim(g, y, st->v);
    return d ? H->op_add(g, y, d) : NULL;
}

static int ts_merge(void *state, const peft_site_info *site, float *weight, float *bias,
                    int sign, char *err, size_t errlen)
{
    ts_state *st = state;
    const float *v = peft_f32(st->v);
    int64_t in = site->in_features, out = site->out_features;
    for (int64_t o = 0; o < out; o++) {
        float f = 1.0f + v[o];
        if (sign < 0 && f == 0.0f) {
            snprintf(err, errlen, "testscale: cannot unmerge %s: factor is 0", site->name);
            return -1;
        }
        float m = sign > 0 ? f : 1.0f / f;
        if (site->fan_in_fan_out)
            for (int64_t i = 0; i < in; i++) weight[i * out + o] *= m; /* (in, out) */
        else
            for (int64_t i = 0; i < in; i++) weight[o * in + i] *= m; /* (out, in) */
        if (bias) bias[o] *= m;
    }
    return 0;
}

static void ts_destroy(void *state)
{
    ts_state *st = state;
    if (!st) return;
    H->tensor_free(st->v);
    H->free(st);
}

static int ts_state_dict(void *state, peft_param_ref *out, int max)
{
    ts_state *st = state;
    if (max < 1) return 0;
    memset(out, 0, sizeof *out);
    out[0].saved_name = "testscale_v.weight";
    out[0].memory_name = st->memory_name;
    out[0].tensor = st->v;
    out[0].trainable = 1;
    return 1;
}

static const char *ts_module_type(void *state)
{
    (void)state;
    return "testscale.Linear";
}

static int ts_set_scale(void *state, double mult)
{
    (void)state, (void)mult;
    return -1; /* not supported: the scale is the trained vector itself */
}

static const peft_tuner_vtable ts_vt = {
    .struct_size = sizeof(peft_tuner_vtable),
    .abi_major = PEFT_ABI_MAJOR,
    .abi_minor = TS_ABI_MINOR,
    .name = TS_NAME,
    .peft_type = TS_TYPE,
    .prefix = "testscale_",
    .caps = PEFT_CAP_MERGEABLE | PEFT_CAP_MIXABLE,
    .config_keys = ts_keys,
    .default_targets = NULL,
    .config_parse = ts_config_parse,
    .config_free = ts_config_free,
    .inject = ts_inject,
    .pre_forward = NULL,
    .forward = ts_forward,
    .merge = ts_merge,
    .destroy = ts_destroy,
    .state_dict = ts_state_dict,
    .module_type = ts_module_type,
    .set_scale = ts_set_scale,
};

PEFT_PLUGIN_EXPORT const peft_tuner_vtable *peft_plugin_init(const peft_host_api *host,
                                                             char *err, size_t errlen)
{
    if (!host || host->abi_major != PEFT_ABI_MAJOR ||
        host->struct_size < offsetof(peft_host_api, warn) + sizeof(void *)) {
        snprintf(err, errlen, "testscale: host ABI %u.x is not %u.x or its table is too short",
                 host ? (unsigned)host->abi_major : 0u, (unsigned)PEFT_ABI_MAJOR);
        return NULL;
    }
    H = host;
    return &ts_vt;
}
