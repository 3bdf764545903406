/* chanscale.c — the libpeft tuner plugin template: a complete, tiny method to copy and rename.
 *
 * The method ("chanscale"): on every targeted linear layer, one trainable vector s (out), one
 * value per output channel, scales the layer's output:
 *
 *     y' = y * (1 + mult * s)        y (..., out) the output so far, s (out), init init_scale
 *
 * With s = 0 at init (the default) the adapter starts as the identity, as LoRA does with B = 0.
 * It folds into the base weight (W row o and b[o] times 1 + s[o]), so it declares
 * PEFT_CAP_MERGEABLE. Saved as "base_model.model.<module>.chanscale_s" in
 * adapter_model.safetensors, with "peft_type": "CHANSCALE" in adapter_config.json.
 *
 * Build (see Makefile): cc -shared -fPIC -fvisibility=hidden $(pkg-config --cflags libpeft)
 * chanscale.c -o chanscale.so. Check: peft plugin-check ./chanscale.so. Use: put the .so on
 * PEFT_PLUGIN_PATH and give an adapter_config.json {"peft_type": "CHANSCALE", ...}.
 *
 * The walk-through below follows the vtable (peft/plugin.h) entry by entry. Rules that hold
 * throughout:
 *   - include only <peft/plugin.h>; never link libpeft: every service comes from the host table;
 *   - export one symbol, peft_plugin_init (PEFT_PLUGIN_EXPORT + -fvisibility=hidden);
 *   - never crash, print or exit on bad input: return an error with a message naming the
 *     field / module and what was expected;
 *   - memory from host->alloc / host->tensor_new, freed with host->free / host->tensor_free;
 *   - no mutable globals besides the host pointer: two models may run in two threads.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <peft/plugin.h>

/* 0. The host table, kept by peft_plugin_init. Set once, read-only afterwards. */
static const peft_host_api *H;

static void errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* ---- 1. config_keys: every field an adapter_config.json of this method may hold ----------
 * The host refuses any other field before config_parse runs ("unknown field 'scael' for
 * CHANSCALE (did you mean ...)"). It must include the fields the host itself writes:
 * peft_type, target_modules, base_model_name_or_path, inference_mode; and, to load configs
 * written by Python PEFT, the PeftConfig fields task_type, revision, auto_mapping. */
static const char *const chanscale_keys[] = {
    "peft_type", "target_modules", "base_model_name_or_path", "inference_mode", "task_type",
    "revision", "auto_mapping", "modules_to_save", "init_scale", NULL,
};

/* ---- 2. default_targets: target_modules when the config gives none ----------------------
 * NULL-terminated names per config.json model_type, or NULL (then the user must say). */
static const char *const gpt2_targets[] = {"c_attn", NULL};
static const char *const llama_targets[] = {"q_proj", "v_proj", NULL};
static const char *const bert_targets[] = {"query", "value", NULL};
static const char *const t5_targets[] = {"q", "v", NULL};

static const char *const *chanscale_default_targets(const char *model_type)
{
    if (!model_type) return NULL;
    if (!strcmp(model_type, "gpt2")) return gpt2_targets;
    if (!strcmp(model_type, "llama")) return llama_targets;
    if (!strcmp(model_type, "bert")) return bert_targets;
    if (!strcmp(model_type, "t5")) return t5_targets;
    return NULL;
}

/* ---- 3. config_parse / config_free: validate, fill defaults, keep what inject needs --------
 * cfg is the live adapter_config.json object. Read it with host->cfg_*; write defaults back
 * with host->cfg_set_* so that a saved config lists every field (as PEFT saves its
 * dataclass). *out is yours; the host hands it to inject and frees it with config_free. */
typedef struct chanscale_config {
    double init_scale;
} chanscale_config;

/* field key: absent/null (default written back) or one of the JSON types in mask */
static int check_opt(peft_cfg *cfg, const char *key, unsigned mask, const char *expected,
                     char *err, size_t errlen)
{
    int t = H->cfg_type(cfg, key);
    if (t == PEFT_CFG_MISSING || t == PEFT_CFG_NULL || (mask & (1u << t))) return t;
    errf(err, errlen, "chanscale config: field '%s' must be %s", key, expected);
    return -1;
}

static int chanscale_config_parse(peft_cfg *cfg, void **out, char *err, size_t errlen)
{
    *out = NULL;
    const char *pt = H->cfg_str(cfg, "peft_type");
    if (!pt || strcmp(pt, "CHANSCALE") != 0) {
        errf(err, errlen, "chanscale config: field 'peft_type' must be \"CHANSCALE\"");
        return -1;
    }
    /* the PeftConfig fields: types checked, null defaults written back */
    const char *str_fields[] = {"task_type", "revision", "base_model_name_or_path"};
    for (size_t i = 0; i < sizeof str_fields / sizeof str_fields[0]; i++) {
        int t = check_opt(cfg, str_fields[i], 1u << PEFT_CFG_STRING, "null or a string", err,
                          errlen);
        if (t < 0) return -1;
        if (t == PEFT_CFG_MISSING) H->cfg_set_str(cfg, str_fields[i], NULL);
    }
    int t = check_opt(cfg, "modules_to_save", 1u << PEFT_CFG_LIST, "null or a list of names",
                      err, errlen);
    if (t < 0) return -1;
    if (t == PEFT_CFG_MISSING) H->cfg_set_json(cfg, "modules_to_save", "null");
    if ((t = check_opt(cfg, "auto_mapping", 1u << PEFT_CFG_DICT, "null or a dict", err,
                       errlen)) < 0)
        return -1;
    if (t == PEFT_CFG_MISSING) H->cfg_set_json(cfg, "auto_mapping", "null");
    if ((t = check_opt(cfg, "inference_mode", 1u << PEFT_CFG_BOOL, "true or false", err,
                       errlen)) < 0)
        return -1;
    if (t == PEFT_CFG_MISSING || t == PEFT_CFG_NULL) H->cfg_set_bool(cfg, "inference_mode", 0);

    /* the method's own field: init_scale, a number > -1 (1 + s must not be 0) */
    chanscale_config c = {.init_scale = 0.0};
    t = check_opt(cfg, "init_scale", (1u << PEFT_CFG_INT) | (1u << PEFT_CFG_REAL),
                  "a number greater than -1", err, errlen);
    if (t < 0) return -1;
    if (t == PEFT_CFG_MISSING || t == PEFT_CFG_NULL) H->cfg_set_real(cfg, "init_scale", 0.0);
    else H->cfg_real(cfg, "init_scale", &c.init_scale);
    if (!(c.init_scale > -1.0) || !isfinite(c.init_scale)) {
        errf(err, errlen, "chanscale config: field 'init_scale' must be a finite number greater "
             "than -1, got %g", c.init_scale);
        return -1;
    }
    chanscale_config *p = H->alloc(sizeof *p);
    if (!p) {
        errf(err, errlen, "chanscale config: out of memory");
        return -1;
    }
    *p = c;
    *out = p;
    return 0;
}

static void chanscale_config_free(void *parsed) { H->free(parsed); }

/* ---- 4. inject: this adapter's state on one linear site -----------------------------------
 * Called once per site that target_modules picked. site describes the layer (borrowed, valid
 * as long as your state): its name, kind (nn.Linear or GPT-2's Conv1D, whose weight is stored
 * (in, out)), shape and base weight (read-only; may be bf16/f16). Tensors you train: make them
 * with host->tensor_new (zeroed f32), set requires_grad = 1 and the PEFT_T_PARAM flag (their
 * gradient then persists across steps for the optimizer). Init randomness comes from rng only
 * (the run's seed). Return NULL with err set to refuse (unsupported layer, bad shape). */
typedef struct chanscale_state {
    int64_t out_features;
    peft_tensor *s;          /* chanscale_s (out) */
    double mult;             /* set_scale's runtime multiplier, 1.0 */
    double merged_mult;      /* the multiplier folded in by merge, for unmerge */
    char memory_name[256];   /* "chanscale_s.<adapter>" (PEFT's in-memory parameter name) */
} chanscale_state;

static void *chanscale_inject(const void *parsed, peft_cfg *cfg, const peft_site_info *site,
                              const char *adapter_name, peft_rng *rng, char *err, size_t errlen)
{
    (void)cfg, (void)rng; /* this init is deterministic; a random one would draw from rng */
    const chanscale_config *c = parsed;
    if (site->kind != PEFT_SITE_LINEAR && site->kind != PEFT_SITE_CONV1D) {
        errf(err, errlen, "chanscale: module '%s' is not a linear layer", site->name);
        return NULL;
    }
    chanscale_state *st = H->alloc(sizeof *st);
    const int64_t shape[1] = {site->out_features};
    if (!st || !(st->s = H->tensor_new(1, shape))) {
        H->free(st);
        errf(err, errlen, "chanscale: out of memory injecting into '%s'", site->name);
        return NULL;
    }
    st->out_features = site->out_features;
    st->mult = 1.0;
    st->s->requires_grad = 1;
    st->s->flags |= PEFT_T_PARAM;
    float *s = peft_f32(st->s);
    for (int64_t o = 0; o < site->out_features; o++) s[o] = (float)c->init_scale;
    snprintf(st->memory_name, sizeof st->memory_name, "chanscale_s.%s", adapter_name);
    return st;
}

/* ---- 5. forward, and its backward on the host's tape -------------------------------------
 * x (..., in) is the site's input, y (..., out) the output so far (base layer + earlier
 * adapters). Return the new output, a tensor of the graph's arena (host->graph_tensor: freed
 * with the step, never by you), or NULL on failure. When host->graph_recording(g) says the
 * tape records, push a backward function with host->tape_push: it gets a zeroed context you
 * fill now and read in backward. In backward, host->grad_of(g, t) is t's gradient buffer
 * (NULL when t needs none): ADD into it, never overwrite.
 * (Composing host ops, e.g. op_mul_lastdim + op_add, would give the backward for free; a real
 * method usually needs its own kernel, so the template shows that.) */
typedef struct chanscale_bwd {
    peft_tensor *y, *out, *s;
    int64_t n, outf;
    float mult;
} chanscale_bwd;

/* dout (N, out) = out->grad
 * dy (N, out) += dout * (1 + mult s)       ds (out) += mult * sum_n dout[n, o] * y[n, o] */
static void chanscale_backward(peft_graph *g, void *vctx)
{
    const chanscale_bwd *c = vctx;
    const float *dout = c->out->grad;
    if (!dout) return; /* nothing downstream used the output */
    const float *y = peft_f32(c->y), *s = peft_f32(c->s);
    float *dy = c->y->requires_grad ? H->grad_of(g, c->y) : NULL;
    float *ds = c->s->requires_grad ? H->grad_of(g, c->s) : NULL;
    for (int64_t i = 0; i < c->n; i++)
        for (int64_t o = 0; o < c->outf; o++) {
            const float d = dout[i * c->outf + o];
            if (dy) dy[i * c->outf + o] += d * (1.0f + c->mult * s[o]);
            if (ds) ds[o] += c->mult * d * y[i * c->outf + o];
        }
}

/* x (..., in) unused; y (..., out) -> out (..., out) = y * (1 + mult s) */
static peft_tensor *chanscale_forward(void *state, peft_graph *g, const peft_site_info *site,
                                      peft_tensor *x, peft_tensor *y)
{
    (void)site, (void)x;
    chanscale_state *st = state;
    if (!y || y->dtype != PEFT_DTYPE_F32 || y->ndim < 1 || y->shape[y->ndim - 1] != st->out_features)
        return NULL;
    peft_tensor *out = H->graph_tensor(g, y->ndim, y->shape);
    if (!out) return NULL;
    const int64_t outf = st->out_features, n = y->numel / outf;
    const float mult = (float)st->mult, *s = peft_f32(st->s), *yv = peft_f32(y);
    float *ov = peft_f32(out);
    for (int64_t i = 0; i < n; i++)
        for (int64_t o = 0; o < outf; o++) ov[i * outf + o] = yv[i * outf + o] * (1.0f + mult * s[o]);

    out->requires_grad = H->graph_recording(g) && (y->requires_grad || st->s->requires_grad);
    if (out->requires_grad) {
        chanscale_bwd *c = H->tape_push(g, chanscale_backward, sizeof *c);
        if (!c) return NULL;
        *c = (chanscale_bwd){y, out, st->s, n, outf, mult};
    }
    return out;
}

/* ---- 6. merge: fold into (sign +1) or out of (sign -1) the base weight ---------------------
 * weight is f32 and writable, in the site's layout: (out, in) for nn.Linear, (in, out) for
 * Conv1D or fan_in_fan_out; bias (out) or NULL. Only for PEFT_CAP_MERGEABLE plugins (the loader
 * refuses a merge entry without the flag and the flag without the entry). The host checks the
 * merged weight for NaN/Inf on a copy when asked to merge safely, and puts back the weight
 * exactly as loaded after the last unmerge. */
static int chanscale_merge(void *state, const peft_site_info *site, float *weight, float *bias,
                           int sign, char *err, size_t errlen)
{
    chanscale_state *st = state;
    const double mult = sign > 0 ? st->mult : st->merged_mult;
    const float *s = peft_f32(st->s);
    const int64_t in = site->in_features, outf = site->out_features;
    const int in_out = site->kind == PEFT_SITE_CONV1D || site->fan_in_fan_out;
    for (int64_t o = 0; o < outf; o++) {
        const double f = 1.0 + mult * s[o];
        if (sign < 0 && f == 0.0) {
            errf(err, errlen, "chanscale: cannot unmerge '%s': channel %lld has factor 0",
                 site->name, (long long)o);
            return -1;
        }
        const float m = (float)(sign > 0 ? f : 1.0 / f);
        for (int64_t i = 0; i < in; i++) weight[in_out ? i * outf + o : o * in + i] *= m;
        if (bias) bias[o] *= m;
    }
    if (sign > 0) st->merged_mult = st->mult;
    return 0;
}

/* ---- 7. destroy: free everything inject made (unload, delete_adapter, model free) --------- */
static void chanscale_destroy(void *state)
{
    chanscale_state *st = state;
    if (!st) return;
    H->tensor_free(st->s);
    H->free(st);
}

/* ---- 8. state_dict: the adapter's tensors on this site ------------------------------------
 * saved_name is the key suffix in adapter_model.safetensors (the host prefixes
 * "base_model.model.<module>."), memory_name PEFT's in-memory name (the adapter name inside).
 * Both must contain the method's prefix ("chanscale_"). The strings and tensors stay yours.
 * Loading writes into these same tensors. */
static int chanscale_state_dict(void *state, peft_param_ref *out, int max)
{
    chanscale_state *st = state;
    if (max < 1) return 0;
    out[0] = (peft_param_ref){.saved_name = "chanscale_s", .memory_name = st->memory_name,
                              .tensor = st->s, .trainable = 1};
    return 1;
}

/* ---- 9. module_type and model_class: PEFT's class names for status reports -------------- */
static const char *chanscale_module_type(void *state)
{
    (void)state;
    return "chanscale.Linear";
}

/* ---- 10. set_scale (optional): a runtime multiplier on the adapter's effect -------------- */
static int chanscale_set_scale(void *state, double mult)
{
    chanscale_state *st = state;
    if (!isfinite(mult)) return -1;
    st->mult = mult;
    return 0;
}

/* ---- 11. the vtable: static storage, lives as long as the .so ---------------------------- */
static const peft_tuner_vtable chanscale_vtable = {
    .struct_size = sizeof(peft_tuner_vtable), /* the host reads no entry past this */
    .abi_major = PEFT_ABI_MAJOR,
    .abi_minor = PEFT_ABI_MINOR,
    .name = "chanscale",      /* the file is chanscale.so; YAML and the registry use this name */
    .peft_type = "CHANSCALE", /* adapter_config.json "peft_type"; lowercased = the name */
    .prefix = "chanscale_",   /* every state-dict key of the method contains it */
    .caps = PEFT_CAP_MERGEABLE,
    .config_keys = chanscale_keys,
    .default_targets = chanscale_default_targets,
    .config_parse = chanscale_config_parse,
    .config_free = chanscale_config_free,
    .inject = chanscale_inject,
    .pre_forward = NULL, /* only with PEFT_CAP_INPUT_TRANSFORM (IA3 on feed-forward layers) */
    .forward = chanscale_forward,
    .merge = chanscale_merge,
    .destroy = chanscale_destroy,
    .state_dict = chanscale_state_dict,
    .module_type = chanscale_module_type,
    .set_scale = chanscale_set_scale,
    .model_class = "ChanScaleModel",
    /* ABI 1.1 prompt-learning entries stay NULL: this method acts on linear sites */
};

/* ---- 12. the one exported symbol ---------------------------------------------------------
 * Check the host's ABI major and that its table is long enough for every entry you call
 * (entries added in a later minor are past the end of an older host's table), keep the table,
 * return the vtable. Or NULL with a reason in err: the host shows it. */
#define HOST_NEEDS (offsetof(peft_host_api, warn) + sizeof(void (*)(const char *)))

PEFT_PLUGIN_EXPORT const peft_tuner_vtable *peft_plugin_init(const peft_host_api *host,
                                                             char *err, size_t errlen)
{
    if (!host || host->abi_major != PEFT_ABI_MAJOR) {
        errf(err, errlen, "chanscale: needs a host speaking ABI %d.x", PEFT_ABI_MAJOR);
        return NULL;
    }
    if (host->struct_size < HOST_NEEDS) {
        errf(err, errlen, "chanscale: the host's API table is %u bytes, at least %zu needed",
             (unsigned)host->struct_size, (size_t)HOST_NEEDS);
        return NULL;
    }
    H = host;
    return &chanscale_vtable;
}
