/* ia3_config.c — IA3Config as PEFT 0.13.2 saves it in adapter_config.json: the field list,
 * validation (errors name the field, the value and what is allowed), the defaults written back
 * so that a saved config has PEFT's exact field set, IA3Config.__post_init__'s rule that
 * feedforward_modules be a subset of target_modules, and the default target and feed-forward
 * modules per model_type (peft/utils/constants.py, TRANSFORMERS_MODELS_TO_IA3_*_MAPPING). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "ia3.h"

/* Every field of IA3Config 0.13.2 (plus exclude_modules and runtime_config from newer PEFT,
 * accepted when loading an adapter saved by a newer version; never written by default). */
const char *const ia3_config_keys[] = {
    "auto_mapping", "base_model_name_or_path", "fan_in_fan_out", "feedforward_modules",
    "inference_mode", "init_ia3_weights", "modules_to_save", "peft_type", "revision",
    "target_modules", "task_type",
    "exclude_modules", "runtime_config",
    NULL,
};

/* ---- helpers ------------------------------------------------------------------------------ */

void ia3_errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

char *ia3_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = ia3_host->alloc(n);
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

/* The field's type, or -1 with err set when it is present but not one of `allowed`. */
static int check_type(const peft_cfg *cfg, const char *key, unsigned allowed, const char *expected,
                      char *err, size_t errlen)
{
    int t = ia3_host->cfg_type(cfg, key);
    if (t == PEFT_CFG_MISSING || (allowed & T(t))) return t;
    ia3_errf(err, errlen, "ia3 config: field '%s' must be %s, got %s", key, expected, type_name(t));
    return -1;
}

/* null, a list of strings, or (allow_str) a regex string; fill_default writes null */
static int opt_str_or_list(peft_cfg *cfg, const char *key, int allow_str, int fill_default,
                           char *err, size_t errlen)
{
    unsigned mask = T(PEFT_CFG_NULL) | T(PEFT_CFG_LIST) | (allow_str ? T(PEFT_CFG_STRING) : 0);
    int t = check_type(cfg, key, mask,
                       allow_str ? "null, a string or a list of strings" : "null or a list of strings",
                       err, errlen);
    if (t < 0) return -1;
    if (t == PEFT_CFG_MISSING && fill_default) ia3_host->cfg_set_json(cfg, key, "null");
    if (t == PEFT_CFG_LIST) {
        int n = ia3_host->cfg_list_len(cfg, key);
        for (int i = 0; i < n; i++)
            if (!ia3_host->cfg_list_str(cfg, key, i)) {
                ia3_errf(err, errlen, "ia3 config: field '%s' must be a list of strings, "
                         "element %d is not a string", key, i);
                return -1;
            }
    }
    return 0;
}

static int opt_str(peft_cfg *cfg, const char *key, char *err, size_t errlen)
{
    int t = check_type(cfg, key, T(PEFT_CFG_NULL) | T(PEFT_CFG_STRING), "null or a string", err,
                       errlen);
    if (t < 0) return -1;
    if (t == PEFT_CFG_MISSING) ia3_host->cfg_set_str(cfg, key, NULL);
    return 0;
}

static int opt_dict(peft_cfg *cfg, const char *key, int fill_default, char *err, size_t errlen)
{
    int t = check_type(cfg, key, T(PEFT_CFG_NULL) | T(PEFT_CFG_DICT), "null or a dict", err,
                       errlen);
    if (t < 0) return -1;
    if (t == PEFT_CFG_MISSING && fill_default) ia3_host->cfg_set_json(cfg, key, "null");
    return 0;
}

static int req_bool(peft_cfg *cfg, const char *key, int def, int *out, char *err, size_t errlen)
{
    int t = check_type(cfg, key, T(PEFT_CFG_BOOL), "a boolean (true or false)", err, errlen);
    if (t < 0) return -1;
    if (t == PEFT_CFG_MISSING) {
        ia3_host->cfg_set_bool(cfg, key, def);
        *out = def;
        return 0;
    }
    return ia3_host->cfg_bool(cfg, key, out) == 0 ? 0 : -1;
}

/* IA3Config.__post_init__: when both are lists (sets in PEFT), every feedforward_modules entry
 * must be one of target_modules (exact strings, as Python's set.issubset). */
static int check_feedforward_subset(const peft_cfg *cfg, char *err, size_t errlen)
{
    if (ia3_host->cfg_type(cfg, "feedforward_modules") != PEFT_CFG_LIST ||
        ia3_host->cfg_type(cfg, "target_modules") != PEFT_CFG_LIST)
        return 0;
    int nf = ia3_host->cfg_list_len(cfg, "feedforward_modules");
    int nt = ia3_host->cfg_list_len(cfg, "target_modules");
    for (int i = 0; i < nf; i++) {
        const char *f = ia3_host->cfg_list_str(cfg, "feedforward_modules", i);
        int found = 0;
        for (int j = 0; j < nt && !found; j++) {
            const char *t = ia3_host->cfg_list_str(cfg, "target_modules", j);
            found = t && f && !strcmp(t, f);
        }
        if (found) continue;
        char allowed[512] = "";
        size_t len = 0;
        for (int j = 0; j < nt && len < sizeof allowed; j++) {
            const char *t = ia3_host->cfg_list_str(cfg, "target_modules", j);
            int w = snprintf(allowed + len, sizeof allowed - len, "%s\"%s\"", j ? ", " : "",
                             t ? t : "");
            if (w < 0) break;
            len += (size_t)w;
        }
        ia3_errf(err, errlen, "ia3 config: `feedforward_modules` should be a subset of "
                 "`target_modules`: feedforward_modules entry \"%s\" is not in target_modules "
                 "[%s]", f ? f : "", allowed);
        return -1;
    }
    return 0;
}

/* ---- config_parse ------------------------------------------------------------------------- */

int ia3_config_parse(peft_cfg *cfg, void **out, char *err, size_t errlen)
{
    if (out) *out = NULL;
    if (!cfg || !out) {
        ia3_errf(err, errlen, "ia3 config: no config given");
        return -1;
    }
    ia3_config c = {.init_ia3_weights = 1};
    int t, b;

    t = check_type(cfg, "peft_type", T(PEFT_CFG_STRING), "the string \"IA3\"", err, errlen);
    if (t < 0) return -1;
    if (t == PEFT_CFG_MISSING) {
        ia3_host->cfg_set_str(cfg, "peft_type", "IA3");
    } else {
        const char *pt = ia3_host->cfg_str(cfg, "peft_type");
        if (!pt || strcmp(pt, "IA3") != 0) {
            ia3_errf(err, errlen, "ia3 config: field 'peft_type' is \"%s\"; allowed value: "
                     "\"IA3\"", pt ? pt : "");
            return -1;
        }
    }

    if (req_bool(cfg, "init_ia3_weights", 1, &c.init_ia3_weights, err, errlen)) return -1;
    if (req_bool(cfg, "fan_in_fan_out", 0, &b, err, errlen)) return -1;
    if (req_bool(cfg, "inference_mode", 0, &b, err, errlen)) return -1;
    if (opt_dict(cfg, "auto_mapping", 1, err, errlen)) return -1;
    if (opt_dict(cfg, "runtime_config", 0, err, errlen)) return -1;
    if (opt_str(cfg, "revision", err, errlen)) return -1;
    if (opt_str(cfg, "base_model_name_or_path", err, errlen)) return -1;
    if (opt_str(cfg, "task_type", err, errlen)) return -1;

    /* target_modules: the host resolves null to default_targets(model_type) before this */
    if (opt_str_or_list(cfg, "target_modules", 1, 1, err, errlen)) return -1;
    /* feedforward_modules: null is resolved per model_type at the first inject (PEFT's
     * IA3Model._prepare_adapter_config), so it is left as it is here */
    if (opt_str_or_list(cfg, "feedforward_modules", 1, 0, err, errlen)) return -1;
    if (opt_str_or_list(cfg, "modules_to_save", 0, 1, err, errlen)) return -1;
    if (opt_str_or_list(cfg, "exclude_modules", 1, 0, err, errlen)) return -1;
    if (check_feedforward_subset(cfg, err, errlen)) return -1;

    ia3_config *p = ia3_host->alloc(sizeof *p);
    if (!p) {
        ia3_errf(err, errlen, "ia3 config: out of memory");
        return -1;
    }
    *p = c;
    *out = p;
    return 0;
}

void ia3_config_free(void *parsed)
{
    ia3_host->free(parsed);
}

/* ---- default target and feed-forward modules ---------------------------------------------- */

/* PEFT 0.13.2 TRANSFORMERS_MODELS_TO_IA3_TARGET_MODULES_MAPPING and
 * TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING, in the target mapping's order. */
#define L(...) ((const char *const[]){__VA_ARGS__, NULL})
static const char *const empty_list[] = {NULL};
static const struct {
    const char *model_type;
    const char *const *targets;
    const char *const *feedforward;
} ia3_default_map[] = {
    {"t5", L("k", "v", "wo"), L("wo")},
    {"mt5", L("k", "v", "wi_1"), empty_list},
    {"gpt2", L("c_attn", "mlp.c_proj"), L("mlp.c_proj")},
    {"bloom", L("query_key_value", "mlp.dense_4h_to_h"), L("mlp.dense_4h_to_h")},
    {"roberta", L("key", "value", "output.dense"), L("output.dense")},
    {"opt", L("q_proj", "k_proj", "fc2"), L("fc2")},
    {"gptj", L("q_proj", "v_proj", "fc_out"), L("fc_out")},
    {"gpt_neox", L("query_key_value", "dense_4h_to_h"), L("dense_4h_to_h")},
    {"gpt_neo", L("q_proj", "v_proj", "c_proj"), L("c_proj")},
    {"bart", L("q_proj", "v_proj", "fc2"), L("fc2")},
    {"gpt_bigcode", L("c_attn", "mlp.c_proj"), L("mlp.c_proj")},
    {"llama", L("k_proj", "v_proj", "down_proj"), L("down_proj")},
    {"mistral", L("k_proj", "v_proj", "down_proj"), L("down_proj")},
    {"mixtral", L("k_proj", "v_proj", "w2"), L("w2")},
    {"bert", L("key", "value", "output.dense"), L("output.dense")},
    {"deberta-v2", L("key_proj", "value_proj", "output.dense"), L("output.dense")},
    {"deberta", L("in_proj", "output.dense"), L("output.dense")},
    {"RefinedWebModel", L("query_key_value", "dense_4h_to_h"), L("dense_4h_to_h")},
    {"RefinedWeb", L("query_key_value", "dense_4h_to_h"), L("dense_4h_to_h")},
    {"falcon", L("query_key_value", "dense_4h_to_h"), L("dense_4h_to_h")},
    {"phi", L("q_proj", "v_proj", "fc2"), L("fc2")},
    {"gemma", L("q_proj", "v_proj", "down_proj"), L("down_proj")},
    {"gemma2", L("q_proj", "v_proj", "down_proj"), L("down_proj")},
    {"qwen2", L("q_proj", "v_proj", "down_proj"), L("down_proj")},
};
#undef L

#define N_MAP (sizeof ia3_default_map / sizeof ia3_default_map[0])

const char *const *ia3_default_targets(const char *model_type)
{
    if (!model_type) return NULL;
    for (size_t i = 0; i < N_MAP; i++)
        if (!strcmp(ia3_default_map[i].model_type, model_type)) return ia3_default_map[i].targets;
    return NULL;
}

const char *const *ia3_default_feedforward(const char *model_type)
{
    if (!model_type) return NULL;
    for (size_t i = 0; i < N_MAP; i++)
        if (!strcmp(ia3_default_map[i].model_type, model_type))
            return ia3_default_map[i].feedforward;
    return NULL;
}
