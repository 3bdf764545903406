/* prefix_config.c — PrefixTuningConfig as PEFT 0.13.2 saves it in adapter_config.json: the
 * field list, validation (errors name the field, the value and what is allowed) and the
 * defaults written back so that a saved config has PEFT's exact field set.
 *
 * token_dim, num_transformer_submodules, num_attention_heads and num_layers are filled by the
 * host from the model's config.json before parsing (PEFT's _prepare_prompt_learning_config);
 * encoder_hidden_size (default: token_dim after the grouped-query adjustment) is filled at
 * prompt_init, where the model is known. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "prefix.h"

/* Every field of PrefixTuningConfig 0.13.2 (PeftConfig + PromptLearningConfig + its own). */
const char *const prefix_config_keys[] = {
    "auto_mapping", "base_model_name_or_path", "encoder_hidden_size", "inference_mode",
    "num_attention_heads", "num_layers", "num_transformer_submodules", "num_virtual_tokens",
    "peft_type", "prefix_projection", "revision", "task_type", "token_dim",
    NULL,
};

void prefix_errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
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

/* the field's type, or -1 with err set when present but not in `allowed` */
static int check_type(const peft_cfg *cfg, const char *key, unsigned allowed, const char *expected,
                      char *err, size_t errlen)
{
    int t = prefix_host->cfg_type(cfg, key);
    if (t == PEFT_CFG_MISSING || (allowed & T(t))) return t;
    prefix_errf(err, errlen, "prefix tuning config: field '%s' must be %s, got %s", key, expected,
                type_name(t));
    return -1;
}

/* Optional[str], default null */
static int opt_str(peft_cfg *cfg, const char *key, char *err, size_t errlen)
{
    int t = check_type(cfg, key, T(PEFT_CFG_NULL) | T(PEFT_CFG_STRING), "null or a string", err,
                       errlen);
    if (t < 0) return -1;
    if (t == PEFT_CFG_MISSING) prefix_host->cfg_set_str(cfg, key, NULL);
    return 0;
}

/* Optional[int] > 0, default null (left missing when fill is 0); *out = the value or 0 */
static int opt_pos_int(peft_cfg *cfg, const char *key, int fill, int64_t *out, char *err,
                       size_t errlen)
{
    *out = 0;
    int t = check_type(cfg, key, T(PEFT_CFG_NULL) | T(PEFT_CFG_INT), "null or a positive integer",
                       err, errlen);
    if (t < 0) return -1;
    if (t == PEFT_CFG_MISSING && fill) prefix_host->cfg_set_json(cfg, key, "null");
    if (t != PEFT_CFG_INT) return 0;
    prefix_host->cfg_int(cfg, key, out);
    if (*out <= 0) {
        prefix_errf(err, errlen, "prefix tuning config: field '%s' must be a positive integer, "
                    "got %lld", key, (long long)*out);
        return -1;
    }
    return 0;
}

/* bool with a default */
static int req_bool(peft_cfg *cfg, const char *key, int def, int *out, char *err, size_t errlen)
{
    int t = check_type(cfg, key, T(PEFT_CFG_BOOL), "a boolean (true or false)", err, errlen);
    if (t < 0) return -1;
    *out = def;
    if (t == PEFT_CFG_MISSING) prefix_host->cfg_set_bool(cfg, key, def);
    else prefix_host->cfg_bool(cfg, key, out);
    return 0;
}

int prefix_config_parse(peft_cfg *cfg, void **out, char *err, size_t errlen)
{
    if (out) *out = NULL;
    if (!cfg || !out) {
        prefix_errf(err, errlen, "prefix tuning config: no config given");
        return -1;
    }
    prefix_config c = {0};
    int t = check_type(cfg, "peft_type", T(PEFT_CFG_STRING), "the string \"PREFIX_TUNING\"", err,
                       errlen);
    if (t < 0) return -1;
    if (t == PEFT_CFG_MISSING) {
        prefix_host->cfg_set_str(cfg, "peft_type", "PREFIX_TUNING");
    } else if (strcmp(prefix_host->cfg_str(cfg, "peft_type"), "PREFIX_TUNING") != 0) {
        prefix_errf(err, errlen, "prefix tuning config: field 'peft_type' is \"%s\"; allowed "
                    "value: \"PREFIX_TUNING\"", prefix_host->cfg_str(cfg, "peft_type"));
        return -1;
    }

    int64_t v;
    if (opt_pos_int(cfg, "num_virtual_tokens", 1, &v, err, errlen)) return -1;
    if (v == 0) {
        prefix_errf(err, errlen, "prefix tuning config: field 'num_virtual_tokens' is required "
                    "(a positive integer, e.g. 20)");
        return -1;
    }
    c.num_virtual_tokens = v;
    static const char *const model_fields[] = {"token_dim", "num_transformer_submodules",
                                               "num_attention_heads", "num_layers"};
    for (size_t i = 0; i < sizeof model_fields / sizeof model_fields[0]; i++)
        if (opt_pos_int(cfg, model_fields[i], 1, &v, err, errlen)) return -1;
    if (opt_pos_int(cfg, "encoder_hidden_size", 0, &v, err, errlen)) return -1;

    if (req_bool(cfg, "prefix_projection", 0, &c.prefix_projection, err, errlen)) return -1;
    if (req_bool(cfg, "inference_mode", 0, &c.inference_mode, err, errlen)) return -1;

    t = check_type(cfg, "auto_mapping", T(PEFT_CFG_NULL) | T(PEFT_CFG_DICT), "null or a dict",
                   err, errlen);
    if (t < 0) return -1;
    if (t == PEFT_CFG_MISSING) prefix_host->cfg_set_json(cfg, "auto_mapping", "null");
    if (opt_str(cfg, "base_model_name_or_path", err, errlen)) return -1;
    if (opt_str(cfg, "revision", err, errlen)) return -1;
    if (opt_str(cfg, "task_type", err, errlen)) return -1;

    prefix_config *p = prefix_host->alloc(sizeof *p);
    if (!p) {
        prefix_errf(err, errlen, "prefix tuning config: out of memory");
        return -1;
    }
    *p = c;
    *out = p;
    return 0;
}

void prefix_config_free(void *parsed) { prefix_host->free(parsed); }
