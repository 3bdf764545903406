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
 *   - include only the SDK's headers: <peft/plugin.h> (the ABI) and, for the chores every
 *     method has (config fields, the host check, parameters and their names, site checks),
 *     the header-only helpers <peft/plugin_util.h>, <peft/plugin_config.h> and
 *     <peft/plugin_kernels.h>; never link libpeft: every service comes from the host table;
 *   - export one symbol, peft_plugin_init (PEFT_PLUGIN_EXPORT + -fvisibility=hidden);
 *   - never crash, print or exit on bad input: return an error with a message naming the
 *     field / module and what was expected;
 *   - memory from host->alloc / host->tensor_new, freed with host->free / host->tensor_free;
 *   - no mutable globals besides the host pointer: two models may run in two threads.
 */
#include <math.h>
#include <string.h>

#include <peft/plugin.h>
#include <peft/plugin_config.h>
#include <peft/plugin_kernels.h>
#include <peft/plugin_util.h>

/* 0. The host table, kept by peft_plugin_init. Set once, read-only afterwards. Errors are
 * written with peft_pu_errf (printf into the host's buffer). */
static const peft_host_api *H;

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
 * dataclass). *out is yours; the host hands it to inject and frees it with config_free.
 * <peft/plugin_config.h> does both per field, with messages naming the field and what is
 * expected ("chanscale config: field 'init_scale' must be a number, got a string"). */
typedef struct chanscale_config {
    double init_scale;
} chanscale_config;

static int chanscale_config_parse(peft_cfg *cfg, void **out, char *err, size_t errlen)
{
    const peft_pu_cfg pc = {H, cfg, "chanscale config", err, errlen};
    chanscale_config c = {.init_scale = 0.0};
    /* peft_type, the PeftConfig fields (task_type, revision, base_model_name_or_path,
     * auto_mapping, inference_mode), modules_to_save, and the method's own field init_scale:
     * a number > -1 (1 + s must not be 0), default 0 */
    if (peft_pu_cfg_begin(&pc, out) || peft_pu_cfg_peft_type(&pc, "CHANSCALE") ||
        peft_pu_cfg_peft_fields(&pc, NULL) || peft_pu_cfg_names(&pc, "modules_to_save", 0, 1) ||
        peft_pu_cfg_real(&pc, "init_scale", 0.0, 0, &c.init_scale))
        return -1;
    if (!(c.init_scale > -1.0)) {
        peft_pu_errf(err, errlen, "chanscale config: field 'init_scale' must be a finite number "
                     "greater than -1, got %g", c.init_scale);
        return -1;
    }
    return peft_pu_cfg_finish(&pc, &c, sizeof c, out);
}

static void chanscale_config_free(void *parsed) { H->free(parsed); }

/* ---- 4. inject: this adapter's state on one linear site -----------------------------------
 * Called once per site that target_modules picked. site describes the layer (borrowed, valid
 * as long as your state): its name, kind (nn.Linear or GPT-2's Conv1D, whose weight is stored
 * (in, out)), shape and base weight (read-only; may be bf16/f16). Tensors you train: make them
 * with peft_pu_param (host->tensor_new, zeroed f32, with requires_grad = 1 and the PEFT_T_PARAM
 * flag: their gradient then persists across steps for the optimizer). Init randomness comes
 * from rng only (the run's seed). Return NULL with err set to refuse (unsupported layer, bad
 * shape: peft_pu_site_check says so in the usual words). */
typedef struct chanscale_state {
    int64_t out_features;
    peft_tensor *s;          /* chanscale_s (out) */
    double mult;             /* set_scale's runtime multiplier, 1.0 */
    double merged_mult;      /* the multiplier folded in by merge, for unmerge */
    char *saved_name;        /* "chanscale_s" (the key suffix on disk) */
    char *memory_name;       /* "chanscale_s.<adapter>" (PEFT's in-memory parameter name) */
} chanscale_state;

static void chanscale_destroy(void *state);

static void *chanscale_inject(const void *parsed, peft_cfg *cfg, const peft_site_info *site,
                              const char *adapter_name, peft_rng *rng, char *err, size_t errlen)
{
    (void)cfg, (void)rng; /* this init is deterministic; a random one would draw from rng */
    const chanscale_config *c = parsed;
    if (peft_pu_site_check(site, "chanscale", "chanscale", 1, err, errlen)) return NULL;
    chanscale_state *st = H->alloc(sizeof *st);
    const int64_t shape[1] = {site->out_features};
    if (!st || !(st->s = peft_pu_param(H, 1, shape)) ||
        peft_pu_param_names(H, "chanscale_s", NULL, adapter_name, &st->saved_name,
                            &st->memory_name)) {
        chanscale_destroy(st);
        peft_pu_errf(err, errlen, "chanscale: out of memory injecting into '%s'", site->name);
        return NULL;
    }
    st->out_features = site->out_features;
    st->mult = 1.0;
    float *s = peft_f32(st->s);
    for (int64_t o = 0; o < site->out_features; o++) s[o] = (float)c->init_scale;
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
    if (!y || y->dtype != PEFT_DTYPE_F32 || y->ndim < 1 ||
        y->shape[y->ndim - 1] != st->out_features)
        return NULL;
    peft_tensor *out = H->graph_tensor(g, y->ndim, y->shape);
    if (!out) return NULL;
    const int64_t outf = st->out_features, n = y->numel / outf;
    const float mult = (float)st->mult, *s = peft_f32(st->s), *yv = peft_f32(y);
    float *ov = peft_f32(out);
    for (int64_t i = 0; i < n; i++)
        for (int64_t o = 0; o < outf; o++)
            ov[i * outf + o] = yv[i * outf + o] * (1.0f + mult * s[o]);

    out->requires_grad = PEFT_PU_WANTS_GRAD(H, g, y, st->s); /* recording, and a grad wanted */
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
    const int in_out = peft_pu_in_out(site);
    for (int64_t o = 0; o < outf; o++) {
        const double f = 1.0 + mult * s[o];
        if (sign < 0 && f == 0.0) {
            peft_pu_errf(err, errlen, "chanscale: cannot unmerge '%s': channel %lld has factor "
                         "0", site->name, (long long)o);
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
    if (st->s) H->tensor_free(st->s);
    H->free(st->saved_name);
    H->free(st->memory_name);
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
    const peft_param_ref ref = {.saved_name = st->saved_name, .memory_name = st->memory_name,
                                .tensor = st->s, .trainable = 1};
    return peft_pu_state_refs(out, max, &ref, 1);
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
    PEFT_PU_VTABLE_HEADER,    /* struct_size (the host reads no entry past it), ABI version */
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
 * (entries added in a later minor are past the end of an older host's table) and has them
 * set, keep the table, return the vtable. Or NULL with a reason in err: the host shows it.
 * peft_pu_host_check does the checks: the entries its helpers call (PEFT_PU_BASE_NEEDS, which
 * covers all this method calls), plus any listed in a peft_pu_need array, e.g.
 *     static const peft_pu_need needs[] = {PEFT_PU_NEED(sgemm), PEFT_PU_NEED(tensor_to_f32)};
 * and, for a method that needs a later minor's entries, that minor. */

PEFT_PLUGIN_EXPORT const peft_tuner_vtable *peft_plugin_init(const peft_host_api *host,
                                                             char *err, size_t errlen)
{
    if (peft_pu_host_check(host, "chanscale", 0, NULL, 0, err, errlen)) return NULL;
    H = host;
    return &chanscale_vtable;
}
