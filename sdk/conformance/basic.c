/* basic.c — the first conformance checks: the plugin loads (ABI header, entry
 * symbol, vtable rules: the loader's own checks), the vtable's declarations (config keys the
 * host writes, a model class), config errors are clean (an unknown field, a
 * wrong type for each field, odd values for every other field: an error with a message, never
 * a crash), and injection on a model (sites found, trainable tensors named with the method's
 * prefix, finite outputs that move once the adapter's tensors do). */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "peft/tokenizer.h"
#include "conformance.h"

static int has_key(const peft_tuner_vtable *vt, const char *key)
{
    for (const char *const *k = vt->config_keys; k && *k; k++)
        if (!strcmp(*k, key)) return 1;
    return 0;
}

int pc_check_abi(const pc_env *env, const pc_model *model, char *msg, size_t len)
{
    (void)model;
    char err[2048];
    const peft_tuner_vtable *vt = pc_plugin_load(env->plugin, err, sizeof err);
    if (!vt) return pc_msg(msg, len, PC_FAIL, "%s", err);
    char caps[128] = "";
    if (vt->caps & PEFT_CAP_MERGEABLE) strcat(caps, " mergeable");
    if (vt->caps & PEFT_CAP_MIXABLE) strcat(caps, " mixable");
    if (vt->caps & PEFT_CAP_PROMPT_LEARNING) strcat(caps, " prompt-learning");
    if (vt->caps & PEFT_CAP_INPUT_TRANSFORM) strcat(caps, " input-transform");
    if (vt->caps & PEFT_CAP_STRAIGHT_THROUGH) strcat(caps, " straight-through");
    if (vt->caps & PEFT_CAP_ATTENTION) strcat(caps, " attention");
    return pc_msg(msg, len, PC_PASS, "'%s' (peft_type %s, prefix %s) loads: ABI %u.%u, caps:%s",
                  vt->name, vt->peft_type, vt->prefix, (unsigned)vt->abi_major,
                  (unsigned)vt->abi_minor, caps[0] ? caps : " none");
}

int pc_check_vtable(const pc_env *env, const pc_model *model, char *msg, size_t len)
{
    (void)model;
    const peft_tuner_vtable *vt = env->vt;
    int prompt = (vt->caps & PEFT_CAP_PROMPT_LEARNING) != 0;
    /* the host writes these into every adapter_config.json it saves or completes: a plugin
     * that refused them could not reload its own adapters */
    const char *need[] = {"peft_type", "base_model_name_or_path", "inference_mode",
                          prompt ? NULL : "target_modules"};
    for (size_t i = 0; i < sizeof need / sizeof need[0]; i++)
        if (need[i] && !has_key(vt, need[i]))
            return pc_msg(msg, len, PC_FAIL, "config_keys lacks '%s' (the host writes it into "
                          "adapter_config.json)", need[i]);
    if (!vt->model_class || !*vt->model_class)
        return pc_msg(msg, len, PC_FAIL, "model_class is not set (status reports need PEFT's "
                      "tuner class name, e.g. \"LoraModel\")");
    int n_keys = 0;
    for (const char *const *k = vt->config_keys; k && *k; k++) n_keys++;
    return pc_msg(msg, len, PC_PASS, "%d config keys (the host's own among them), model_class "
                  "%s", n_keys, vt->model_class);
}

/* ---- config errors ---- */

/* tries config text on a fresh base: 0 accepted, 1 refused (message in err), -1 no base */
static int try_config(const pc_model *model, const char *cfg, char *err, size_t len)
{
    peft_ctx *ctx = peft_ctx_new(0);
    peft_set_tokenizer(ctx, peft_tokenizer_text_hook, NULL);
    peft_base_model *base;
    if (!ctx || peft_load_base_model(ctx, model->dir, &base)) {
        if (snprintf(err, len, "cannot load %s: %s", model->dir, ctx ? peft_errmsg(ctx) : "OOM") >= (int)len)
            memcpy(err + len - 4, "...", 4); /* a long message is cut, visibly */
        peft_ctx_free(ctx);
        return -1;
    }
    peft_model *m = NULL;
    int rc = peft_get_peft_model(ctx, base, cfg, "default", 0, &m);
    snprintf(err, len, "%s", rc ? peft_errmsg(ctx) : "");
    if (rc) peft_base_model_free(base);
    peft_model_free(m);
    peft_ctx_free(ctx);
    return rc ? 1 : 0;
}

/* a value of another JSON type than v (NULL when v is null: any type may be fine then) */
static json_t *wrong_type(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_STRING: return json_integer(12345);
    case JSON_INTEGER:
    case JSON_REAL: return json_string("not a number");
    case JSON_TRUE:
    case JSON_FALSE: return json_string("yes");
    case JSON_ARRAY: return json_integer(12345);
    case JSON_OBJECT: return json_string("not a dict");
    default: return NULL;
    }
}

static char *with_field(const json_t *base, const char *key, json_t *value /* stolen */)
{
    json_t *c = json_deep_copy(base);
    json_object_set_new(c, key, value);
    char *text = json_dumps(c, JSON_COMPACT);
    json_decref(c);
    return text;
}

int pc_check_config(const pc_env *env, const pc_model *model, char *msg, size_t len)
{
    char *sample_text = pc_sample_config(env, model);
    json_t *sample = sample_text ? json_loads(sample_text, 0, NULL) : NULL;
    free(sample_text);
    if (!sample) return pc_msg(msg, len, PC_FAIL, "out of memory");
    char err[2048];
    int status = PC_PASS, n_wrong = 0, n_odd = 0, n_odd_refused = 0;

    /* 1. an unknown field is refused, by name */
    const char *bogus = "plugin_check_no_such_field";
    char *cfg = with_field(sample, bogus, json_integer(1));
    int r = try_config(model, cfg, err, sizeof err);
    free(cfg);
    if (r < 0) status = pc_msg(msg, len, PC_SKIP, "%s", err);
    else if (r == 0) status = pc_msg(msg, len, PC_FAIL, "an unknown field '%s' was accepted", bogus);
    else if (!strstr(err, bogus))
        status = pc_msg(msg, len, PC_FAIL, "the error for unknown field '%s' does not name it: %s",
                        bogus, err);

    /* 2. every field of the sample config with a value of the wrong type: refused, by name */
    const char *key;
    json_t *v;
    json_object_foreach(sample, key, v) {
        if (status != PC_PASS) break;
        if (!strcmp(key, "peft_type")) continue;
        json_t *w = wrong_type(v);
        if (!w) continue;
        char *wtext = json_dumps(w, JSON_ENCODE_ANY);
        cfg = with_field(sample, key, w);
        r = try_config(model, cfg, err, sizeof err);
        free(cfg);
        n_wrong++;
        if (r == 0)
            status = pc_msg(msg, len, PC_FAIL, "field '%s' = %s (a wrong type) was accepted", key,
                            wtext);
        else if (r > 0 && !strstr(err, key))
            status = pc_msg(msg, len, PC_FAIL, "the error for '%s' = %s does not name the field: "
                            "%s", key, wtext, err);
        free(wtext);
    }

    /* 3. odd values for every other field the plugin declares: an error with a message or
     * acceptance, never a crash (this process would die with the signal) */
    static const char *const odd[] = {"[[[]]]", "{\"a\": {\"b\": []}}", "-1", "1e308", "\"\"",
                                      "true", "\"\\u00ff\\u0001\""};
    for (const char *const *k = env->vt->config_keys; status == PC_PASS && k && *k; k++) {
        if (json_object_get(sample, *k) || !strcmp(*k, "peft_type")) continue;
        for (size_t i = 0; i < sizeof odd / sizeof odd[0] && status == PC_PASS; i++) {
            cfg = with_field(sample, *k, json_loads(odd[i], JSON_DECODE_ANY, NULL));
            r = try_config(model, cfg, err, sizeof err);
            free(cfg);
            n_odd++;
            if (r > 0) n_odd_refused++;
            if (r > 0 && !err[0])
                status = pc_msg(msg, len, PC_FAIL, "'%s' = %s was refused without a message", *k,
                                odd[i]);
        }
    }
    json_decref(sample);
    if (status == PC_PASS)
        pc_msg(msg, len, PC_PASS, "unknown field refused by name; %d wrong-type values refused "
               "by name; %d odd values for other fields: %d refused with a message, none crashed",
               n_wrong, n_odd, n_odd_refused);
    return status;
}

/* ---- inject ---- */

/* What the injected adapter shows: the layers that carry it (*n_layers; none is a failure but
 * for prompt learning and attention hooks), its trainable parameters (*trainable, some), and its
 * saved state dict (*n_keys keys, some, each with the method's prefix). 0 or -1 with msg */
static int check_injected(const pc_env *env, pc_run_state *r, int *n_layers, int64_t *trainable,
                          size_t *n_keys, char *msg, size_t len)
{
    const int prompt = (env->vt->caps & PEFT_CAP_PROMPT_LEARNING) != 0;
    char *status_json = NULL;
    *n_layers = 0;
    if (peft_get_layer_status(r->m, &status_json) == PEFT_OK) {
        json_t *j = json_loads(status_json, 0, NULL);
        *n_layers = (int)json_array_size(j);
        json_decref(j);
    }
    free(status_json);
    /* an attention-hook method (ABI 1.4) is on no linear layer; its status raises, as PEFT's */
    const int attn = (env->vt->caps & PEFT_CAP_ATTENTION) != 0;
    if (!prompt && !attn && *n_layers == 0)
        return pc_msg(msg, len, PC_FAIL, "no layer carries the adapter (layer status is empty)"), -1;
    int64_t all = 0;
    *trainable = 0;
    peft_get_nb_trainable_parameters(r->m, trainable, &all);
    if (*trainable <= 0) return pc_msg(msg, len, PC_FAIL, "the adapter has no trainable parameters"), -1;
    peft_state_dict *sd;
    if (peft_get_peft_model_state_dict(r->m, "default", &sd))
        return pc_msg(msg, len, PC_FAIL, "state dict: %s", peft_errmsg(r->ctx)), -1;
    int bad = -1;
    for (size_t i = 0; i < sd->n && bad < 0; i++)
        if (!prompt && !strstr(sd->names[i], env->vt->prefix)) bad = (int)i;
    if (sd->n == 0 || bad >= 0) {
        if (sd->n == 0) pc_msg(msg, len, PC_FAIL, "the saved state dict is empty");
        else pc_msg(msg, len, PC_FAIL, "state dict key '%s' lacks the method's prefix '%s'",
                    sd->names[bad], env->vt->prefix);
        peft_state_dict_free(sd);
        return -1;
    }
    *n_keys = sd->n;
    peft_state_dict_free(sd);
    return 0;
}

int pc_check_inject(const pc_env *env, const pc_model *model, char *msg, size_t len)
{
    pc_run_state r;
    int status = PC_FAIL;
    float *base_out = NULL, *init_out = NULL, *moved = NULL;
    int64_t n_base = 0, n = 0;
    if (pc_open_base(env, model, &r, 1, msg, len)) {
        pc_close(&r);
        return PC_SKIP;
    }
    if (pc_forward(&r, 0, msg, len) || !(base_out = pc_copy_outputs(&r, &n_base))) goto done;
    if (pc_inject(env, model, &r, msg, len)) {
        /* the plugin's inject refused a layer of this model (the core words it "adapter
         * '<name>' on <module>: ..."), as LoHa refuses GPT-2's Conv1D: a method's semantics,
         * not a fault; the other models still have to take the adapter */
        if (strstr(msg, "adapter 'default' on ")) {
            char why[PC_MSG];
            snprintf(why, sizeof why, "%s", msg);
            status = pc_msg(msg, len, PC_SKIP, "the plugin refuses this model's layers: %s", why);
        }
        goto done;
    }
    const int prompt = (env->vt->caps & PEFT_CAP_PROMPT_LEARNING) != 0;
    int n_layers;
    int64_t trainable;
    size_t n_keys;
    if (check_injected(env, &r, &n_layers, &trainable, &n_keys, msg, len)) goto done;

    if (pc_forward(&r, 0, msg, len) || !(init_out = pc_copy_outputs(&r, &n))) goto done;
    if (n != n_base && !prompt) {
        pc_msg(msg, len, PC_FAIL, "the adapter changed the number of outputs (%lld -> %lld)",
               (long long)n_base, (long long)n);
        goto done;
    }
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(init_out[i])) {
            pc_msg(msg, len, PC_FAIL, "output %lld is %g after injection", (long long)i,
                   init_out[i]);
            goto done;
        }
    double d_init = n == n_base ? pc_max_diff(init_out, base_out, n) : NAN;
    if (pc_perturb(&r, 2, msg, len) || pc_forward(&r, 0, msg, len)) goto done;
    if (!(moved = pc_copy_outputs(&r, &n))) goto done;
    double d_moved = n == n_base ? pc_max_diff(moved, base_out, n) : INFINITY;
    if (!(d_moved > 0)) {
        pc_msg(msg, len, PC_FAIL, "the outputs do not depend on the adapter's trainable tensors "
               "(perturbing them changed nothing)");
        goto done;
    }
    status = pc_msg(msg, len, PC_PASS, "%d layers, %zu saved tensors, %lld trainable params; "
                    "max |out - base| %.3g at init, %.3g perturbed", n_layers, n_keys,
                    (long long)trainable, d_init, d_moved);
done:
    free(base_out);
    free(init_out);
    free(moved);
    pc_close(&r);
    return status;
}
