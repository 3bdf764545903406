/* lora_config.c — LoraConfig as PEFT 0.13.2 saves it in adapter_config.json: the field list,
 * validation (errors name the field, the value and what is allowed), the defaults written back
 * so that a saved config has PEFT's exact field set, and the default target_modules per
 * model_type (peft/utils/constants.py, TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING). */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <math.h>

#include "lora.h"

/* Every field of LoraConfig 0.13.2 (plus exclude_modules and runtime_config from newer PEFT,
 * accepted when loading an adapter saved by a newer version; never written by default). */
const char *const lora_config_keys[] = {
    "alpha_pattern", "auto_mapping", "base_model_name_or_path", "bias", "fan_in_fan_out",
    "inference_mode", "init_lora_weights", "layer_replication", "layers_pattern",
    "layers_to_transform", "loftq_config", "lora_alpha", "lora_dropout", "megatron_config",
    "megatron_core", "modules_to_save", "peft_type", "r", "rank_pattern", "revision",
    "target_modules", "task_type", "use_dora", "use_rslora",
    "exclude_modules", "runtime_config",
    NULL,
};

/* ---- helpers ------------------------------------------------------------------------------ */

void lora_errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

char *lora_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = lora_host->alloc(n);
    if (p) memcpy(p, s, n);
    return p;
}

#define T(x) (1u << (x))

static const char *type_name(int t)
{
    switch (t) {
    case PEFT_CFG_NULL: return "null";
    case PEFT_CFG_BOOL: return "a boolean";
    case PEFT_CFG_INT: return "an integer";
    case PEFT_CFG_REAL: return "a number";
    case PEFT_CFG_STRING: return "a string";
    case PEFT_CFG_LIST: return "a list";
    case PEFT_CFG_DICT: return "a dict";
    default: return "missing";
    }
}

/* The field's type, or -1 with err set when it is present but not one of `allowed` (a mask of
 * T(PEFT_CFG_*)). PEFT_CFG_MISSING is always returned as is (the caller fills the default). */
static int check_type(const peft_cfg *cfg, const char *key, unsigned allowed, const char *expected,
                      char *err, size_t errlen)
{
    int t = lora_host->cfg_type(cfg, key);
    if (t == PEFT_CFG_MISSING || (allowed & T(t))) return t;
    lora_errf(err, errlen, "lora config: field '%s' must be %s, got %s", key, expected,
              type_name(t));
    return -1;
}

/* A list field whose elements must all be strings. */
static int check_str_list(const peft_cfg *cfg, const char *key, char *err, size_t errlen)
{
    int n = lora_host->cfg_list_len(cfg, key);
    for (int i = 0; i < n; i++) {
        if (!lora_host->cfg_list_str(cfg, key, i)) {
            lora_errf(err, errlen, "lora config: field '%s' must be a list of strings, "
                      "element %d is not a string", key, i);
            return -1;
        }
    }
    return 0;
}

/* Optional[str | list[str]] with a null default. */
static int opt_str_or_list(peft_cfg *cfg, const char *key, int allow_str, int fill_default,
                           char *err, size_t errlen)
{
    unsigned mask = T(PEFT_CFG_NULL) | T(PEFT_CFG_LIST) | (allow_str ? T(PEFT_CFG_STRING) : 0);
    int t = check_type(cfg, key, mask,
                       allow_str ? "null, a string or a list of strings" : "null or a list of strings",
                       err, errlen);
    if (t < 0) return -1;
    if (t == PEFT_CFG_MISSING && fill_default) lora_host->cfg_set_json(cfg, key, "null");
    if (t == PEFT_CFG_LIST) return check_str_list(cfg, key, err, errlen);
    return 0;
}

/* Optional[str] with a given default (NULL -> null). */
static int opt_str(peft_cfg *cfg, const char *key, const char *def, char *err, size_t errlen)
{
    int t = check_type(cfg, key, T(PEFT_CFG_NULL) | T(PEFT_CFG_STRING), "null or a string", err,
                       errlen);
    if (t < 0) return -1;
    if (t == PEFT_CFG_MISSING) lora_host->cfg_set_str(cfg, key, def);
    return 0;
}

/* A dict (or null) with a default given as JSON text ("{}" or "null"); fill_default = 0 for
 * fields that PEFT 0.13.2 does not save. */
static int opt_dict(peft_cfg *cfg, const char *key, const char *def_json, int fill_default,
                    char *err, size_t errlen)
{
    int t = check_type(cfg, key, T(PEFT_CFG_NULL) | T(PEFT_CFG_DICT), "null or a dict", err,
                       errlen);
    if (t < 0) return -1;
    if (t == PEFT_CFG_MISSING && fill_default) lora_host->cfg_set_json(cfg, key, def_json);
    return 0;
}

/* A bool with a default; *out receives the value. */
static int req_bool(peft_cfg *cfg, const char *key, int def, int *out, char *err, size_t errlen)
{
    int t = check_type(cfg, key, T(PEFT_CFG_BOOL), "a boolean (true or false)", err, errlen);
    if (t < 0) return -1;
    if (t == PEFT_CFG_MISSING) {
        lora_host->cfg_set_bool(cfg, key, def);
        *out = def;
        return 0;
    }
    return lora_host->cfg_bool(cfg, key, out) == 0 ? 0 : -1;
}

/* ---- config_parse ------------------------------------------------------------------------- */

static int parse_init(peft_cfg *cfg, lora_config *c, char *err, size_t errlen)
{
    const char *key = "init_lora_weights";
    int t = check_type(cfg, key, T(PEFT_CFG_BOOL) | T(PEFT_CFG_STRING),
                       "true, false or one of the strings \"gaussian\", \"pissa\", \"olora\", "
                       "\"loftq\"", err, errlen);
    if (t < 0) return -1;
    if (t == PEFT_CFG_MISSING) {
        lora_host->cfg_set_bool(cfg, key, 1);
        c->init = LORA_INIT_DEFAULT;
        return 0;
    }
    if (t == PEFT_CFG_BOOL) {
        int b = 1;
        lora_host->cfg_bool(cfg, key, &b);
        c->init = b ? LORA_INIT_DEFAULT : LORA_INIT_NONE;
        return 0;
    }
    const char *s = lora_host->cfg_str(cfg, key);
    if (!s) s = "";
    /* PEFT: reset_lora_parameters compares init_lora_weights.lower() == "gaussian" */
    if (!strcasecmp(s, "gaussian")) {
        c->init = LORA_INIT_GAUSSIAN;
        return 0;
    }
    /* PEFT update_layer: startswith("pissa") then == "pissa" or "pissa_niter_<n>" */
    if (!strncmp(s, "pissa", 5)) {
        if (!strcmp(s, "pissa")) {
            c->init = LORA_INIT_PISSA;
            c->pissa_niter = 0;
            return 0;
        }
        const char *n = strstr(s, "_niter_");
        char *end = NULL;
        long v = n ? strtol(n + 7, &end, 10) : -1;
        if (!n || strstr(n + 7, "_niter_") || end == n + 7 || *end || v < 0 || v > 1000000) {
            lora_errf(err, errlen, "lora config: init_lora_weights should be 'pissa' or "
                      "'pissa_niter_[number of iters]', got '%s' instead", s);
            return -1;
        }
        c->init = LORA_INIT_PISSA;
        c->pissa_niter = (int)v;
        lora_host->warn("init_lora_weights 'pissa_niter_<n>': libpeft computes the exact SVD, "
                        "not PEFT's randomized svd_lowrank approximation of it; the adapter and "
                        "residual are those of \"pissa\"");
        return 0;
    }
    if (!strcasecmp(s, "olora")) {
        c->init = LORA_INIT_OLORA;
        return 0;
    }
    if (!strcmp(s, "loftq") || !strcmp(s, "eva") || !strcmp(s, "corda")) {
        lora_errf(err, errlen, "lora config: init_lora_weights '%s' is not supported yet "
                  "(supported: true, false, \"gaussian\", \"pissa\", \"pissa_niter_<n>\", "
                  "\"olora\")", s);
        return -1;
    }
    lora_errf(err, errlen, "lora config: field 'init_lora_weights' has invalid value \"%s\"; "
              "allowed values: true, false, \"gaussian\", \"pissa\", \"pissa_niter_<n>\", "
              "\"olora\" (\"loftq\" is not supported yet)", s);
    return -1;
}

static int parse_layers_to_transform(peft_cfg *cfg, char *err, size_t errlen)
{
    const char *key = "layers_to_transform";
    int t = check_type(cfg, key, T(PEFT_CFG_NULL) | T(PEFT_CFG_INT) | T(PEFT_CFG_LIST),
                       "null, an integer or a list of integers", err, errlen);
    if (t < 0) return -1;
    if (t == PEFT_CFG_MISSING) lora_host->cfg_set_json(cfg, key, "null");
    if (t == PEFT_CFG_LIST) {
        int n = lora_host->cfg_list_len(cfg, key);
        for (int i = 0; i < n; i++) {
            int64_t v;
            if (lora_host->cfg_list_int(cfg, key, i, &v) != 0) {
                lora_errf(err, errlen, "lora config: field '%s' must be a list of integers, "
                          "element %d is not an integer", key, i);
                return -1;
            }
        }
    }
    return 0;
}

int lora_config_parse(peft_cfg *cfg, void **out, char *err, size_t errlen)
{
    if (out) *out = NULL;
    if (!cfg || !out) {
        lora_errf(err, errlen, "lora config: no config given");
        return -1;
    }
    lora_config c = {.r = 8, .lora_alpha = 8.0, .lora_dropout = 0.0,
                     .init = LORA_INIT_DEFAULT, .use_rslora = 0};
    int t, b;

    /* peft_type: "LORA" */
    t = check_type(cfg, "peft_type", T(PEFT_CFG_STRING), "the string \"LORA\"", err, errlen);
    if (t < 0) return -1;
    if (t == PEFT_CFG_MISSING) {
        lora_host->cfg_set_str(cfg, "peft_type", "LORA");
    } else {
        const char *pt = lora_host->cfg_str(cfg, "peft_type");
        if (!pt || strcmp(pt, "LORA") != 0) {
            lora_errf(err, errlen, "lora config: field 'peft_type' is \"%s\"; allowed value: "
                      "\"LORA\"", pt ? pt : "");
            return -1;
        }
    }

    /* r: int > 0 (default 8) */
    t = check_type(cfg, "r", T(PEFT_CFG_INT), "a positive integer", err, errlen);
    if (t < 0) return -1;
    if (t == PEFT_CFG_MISSING) {
        lora_host->cfg_set_int(cfg, "r", c.r);
    } else {
        lora_host->cfg_int(cfg, "r", &c.r);
        if (c.r <= 0) {
            lora_errf(err, errlen, "lora config: field 'r' must be a positive integer (r > 0), "
                      "got %lld", (long long)c.r);
            return -1;
        }
    }

    /* lora_alpha: number (default 8) */
    t = check_type(cfg, "lora_alpha", T(PEFT_CFG_INT) | T(PEFT_CFG_REAL), "a number", err, errlen);
    if (t < 0) return -1;
    if (t == PEFT_CFG_MISSING) lora_host->cfg_set_int(cfg, "lora_alpha", 8);
    else lora_host->cfg_real(cfg, "lora_alpha", &c.lora_alpha);
    if (!isfinite(c.lora_alpha)) {
        lora_errf(err, errlen, "lora config: field 'lora_alpha' must be a finite number, got %g",
                  c.lora_alpha);
        return -1;
    }

    /* lora_dropout: number in [0, 1) (default 0.0) */
    t = check_type(cfg, "lora_dropout", T(PEFT_CFG_INT) | T(PEFT_CFG_REAL),
                   "a number in [0, 1)", err, errlen);
    if (t < 0) return -1;
    if (t == PEFT_CFG_MISSING) lora_host->cfg_set_real(cfg, "lora_dropout", 0.0);
    else lora_host->cfg_real(cfg, "lora_dropout", &c.lora_dropout);
    if (!(c.lora_dropout >= 0.0 && c.lora_dropout < 1.0)) {
        lora_errf(err, errlen, "lora config: field 'lora_dropout' must be in [0, 1), got %g",
                  c.lora_dropout);
        return -1;
    }

    /* bias: "none" | "all" | "lora_only" (the host implements it) */
    t = check_type(cfg, "bias", T(PEFT_CFG_STRING), "one of \"none\", \"all\", \"lora_only\"", err,
                   errlen);
    if (t < 0) return -1;
    if (t == PEFT_CFG_MISSING) {
        lora_host->cfg_set_str(cfg, "bias", "none");
    } else {
        const char *s = lora_host->cfg_str(cfg, "bias");
        if (!s || (strcmp(s, "none") && strcmp(s, "all") && strcmp(s, "lora_only"))) {
            lora_errf(err, errlen, "lora config: field 'bias' has invalid value \"%s\"; allowed "
                      "values: \"none\", \"all\", \"lora_only\"", s ? s : "");
            return -1;
        }
    }

    if (parse_init(cfg, &c, err, errlen)) return -1;

    if (req_bool(cfg, "use_rslora", 0, &c.use_rslora, err, errlen)) return -1;
    if (req_bool(cfg, "use_dora", 0, &c.use_dora, err, errlen)) return -1;
    if (req_bool(cfg, "fan_in_fan_out", 0, &b, err, errlen)) return -1;
    if (req_bool(cfg, "inference_mode", 0, &b, err, errlen)) return -1;

    /* rank_pattern / alpha_pattern: {module key: value}; values checked per site at inject */
    if (opt_dict(cfg, "rank_pattern", "{}", 1, err, errlen)) return -1;
    if (opt_dict(cfg, "alpha_pattern", "{}", 1, err, errlen)) return -1;
    if (opt_dict(cfg, "loftq_config", "{}", 1, err, errlen)) return -1;
    if (opt_dict(cfg, "megatron_config", "null", 1, err, errlen)) return -1;
    /* LoraConfig.__post_init__ (the host cannot tell an empty dict, which PEFT lets through) */
    if (c.use_dora && lora_host->cfg_type(cfg, "megatron_config") == PEFT_CFG_DICT) {
        lora_errf(err, errlen, "lora config: DoRA does not support megatron_core, please set "
                  "`use_dora=False` (or 'megatron_config' to null).");
        return -1;
    }
    if (opt_dict(cfg, "auto_mapping", "null", 1, err, errlen)) return -1;
    if (opt_dict(cfg, "runtime_config", "null", 0, err, errlen)) return -1;
    if (opt_str(cfg, "megatron_core", "megatron.core", err, errlen)) return -1;
    if (opt_str(cfg, "revision", NULL, err, errlen)) return -1;
    if (opt_str(cfg, "base_model_name_or_path", NULL, err, errlen)) return -1;
    if (opt_str(cfg, "task_type", NULL, err, errlen)) return -1;

    /* layer_replication: null (PEFT stacks duplicated layers: a model transform not done here) */
    t = check_type(cfg, "layer_replication", T(PEFT_CFG_NULL) | T(PEFT_CFG_LIST),
                   "null or a list of [start, end] pairs", err, errlen);
    if (t < 0) return -1;
    if (t == PEFT_CFG_MISSING) lora_host->cfg_set_json(cfg, "layer_replication", "null");
    if (t == PEFT_CFG_LIST && lora_host->cfg_list_len(cfg, "layer_replication") > 0) {
        lora_errf(err, errlen, "lora config: layer_replication is not supported yet "
                  "(allowed value: null)");
        return -1;
    }

    /* target_modules: the host resolves null to default_targets(model_type) */
    if (opt_str_or_list(cfg, "target_modules", 1, 1, err, errlen)) return -1;
    if (opt_str_or_list(cfg, "modules_to_save", 0, 1, err, errlen)) return -1;
    if (opt_str_or_list(cfg, "layers_pattern", 1, 1, err, errlen)) return -1;
    if (opt_str_or_list(cfg, "exclude_modules", 1, 0, err, errlen)) return -1;
    if (parse_layers_to_transform(cfg, err, errlen)) return -1;

    /* LoraConfig.__post_init__: a regex target_modules excludes layer selection */
    if (lora_host->cfg_type(cfg, "target_modules") == PEFT_CFG_STRING) {
        if (lora_host->cfg_type(cfg, "layers_to_transform") > PEFT_CFG_NULL) {
            lora_errf(err, errlen, "lora config: `layers_to_transform` cannot be used when "
                      "`target_modules` is a str.");
            return -1;
        }
        if (lora_host->cfg_type(cfg, "layers_pattern") > PEFT_CFG_NULL) {
            lora_errf(err, errlen, "lora config: `layers_pattern` cannot be used when "
                      "`target_modules` is a str.");
            return -1;
        }
    }

    lora_config *p = lora_host->alloc(sizeof *p);
    if (!p) {
        lora_errf(err, errlen, "lora config: out of memory");
        return -1;
    }
    *p = c;
    *out = p;
    return 0;
}

void lora_config_free(void *parsed)
{
    lora_host->free(parsed);
}

/* ---- default target modules --------------------------------------------------------------- */

/* PEFT 0.13.2 TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING, in its order. */
#define L(...) ((const char *const[]){__VA_ARGS__, NULL})
static const struct {
    const char *model_type;
    const char *const *targets;
} lora_default_map[] = {
    {"t5", L("q", "v")},
    {"mt5", L("q", "v")},
    {"bart", L("q_proj", "v_proj")},
    {"gpt2", L("c_attn")},
    {"bloom", L("query_key_value")},
    {"blip-2", L("q", "v", "q_proj", "v_proj")},
    {"opt", L("q_proj", "v_proj")},
    {"gptj", L("q_proj", "v_proj")},
    {"gpt_neox", L("query_key_value")},
    {"gpt_neo", L("q_proj", "v_proj")},
    {"bert", L("query", "value")},
    {"roberta", L("query", "value")},
    {"xlm-roberta", L("query", "value")},
    {"electra", L("query", "value")},
    {"deberta-v2", L("query_proj", "value_proj")},
    {"deberta", L("in_proj")},
    {"layoutlm", L("query", "value")},
    {"llama", L("q_proj", "v_proj")},
    {"chatglm", L("query_key_value")},
    {"gpt_bigcode", L("c_attn")},
    {"mpt", L("Wqkv")},
    {"RefinedWebModel", L("query_key_value")},
    {"RefinedWeb", L("query_key_value")},
    {"falcon", L("query_key_value")},
    {"btlm", L("c_proj", "c_attn")},
    {"codegen", L("qkv_proj")},
    {"mistral", L("q_proj", "v_proj")},
    {"mixtral", L("q_proj", "v_proj")},
    {"stablelm", L("q_proj", "v_proj")},
    {"phi", L("q_proj", "v_proj", "fc1", "fc2")},
    {"gemma", L("q_proj", "v_proj")},
    {"gemma2", L("q_proj", "v_proj")},
    {"qwen2", L("q_proj", "v_proj")},
};
#undef L

const char *const *lora_default_targets(const char *model_type)
{
    if (!model_type) return NULL;
    for (size_t i = 0; i < sizeof lora_default_map / sizeof lora_default_map[0]; i++)
        if (!strcmp(lora_default_map[i].model_type, model_type)) return lora_default_map[i].targets;
    return NULL;
}
