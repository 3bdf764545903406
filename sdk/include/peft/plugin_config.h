/* peft/plugin_config.h — header-only helpers for a plugin's config_parse: typed getters of
 * adapter_config.json fields with PEFT's defaults written back (so that a saved config has the
 * method's exact field set, as PEFT saves its dataclass), enum checks listing the allowed
 * values, list checks, and the PeftConfig fields every method shares.
 *
 * A parse runs over one peft_pu_cfg: the host table, the live config, the message prefix and
 * the caller's error buffer. Each getter returns 0, or -1 with a message
 *     "<who>: field '<key>' must be <what is expected>, got <what it is>"
 * (or "... has invalid value \"x\"; allowed values: ..."). A missing field gets its default
 * written back with host->cfg_set_*; null is accepted only where the helper says so. Host
 * entries used: the cfg getters and setters of PEFT_PU_BASE_NEEDS (peft/plugin_util.h).
 *
 *     peft_pu_cfg pc = {host, cfg, "lora config", err, errlen};
 *     if (peft_pu_cfg_begin(&pc, out) || peft_pu_cfg_peft_type(&pc, "LORA") ||
 *         peft_pu_cfg_pos_int(&pc, "r", 8, &c.r) || ...) return -1;
 *     return peft_pu_cfg_finish(&pc, &c, sizeof c, out);
 */
#ifndef PEFT_PLUGIN_CONFIG_H
#define PEFT_PLUGIN_CONFIG_H

#include "peft/plugin_util.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One config_parse: all borrowed from the caller for the length of the parse. */
typedef struct peft_pu_cfg {
    const peft_host_api *host;
    peft_cfg *cfg;   /* the live adapter_config.json object */
    const char *who; /* message prefix: "lora config" */
    char *err;       /* the caller's error buffer (may be NULL) */
    size_t errlen;
} peft_pu_cfg;

/* a mask of PEFT_CFG_* types */
#define PEFT_PU_T(type) (1u << (type))

/* "null", "a boolean", ... for a PEFT_CFG_* type */
static inline const char *peft_pu_type_name(int t)
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

/* The start of config_parse: *out = NULL; the config and out must be given. */
static inline int peft_pu_cfg_begin(const peft_pu_cfg *pc, void **out)
{
    if (out) *out = NULL;
    if (pc->cfg && out) return 0;
    peft_pu_errf(pc->err, pc->errlen, "%s: no config given", pc->who);
    return -1;
}

/* The end of config_parse: *out = a host->alloc'd copy of the parsed struct (size bytes),
 * freed by the vtable's config_free with host->free. */
static inline int peft_pu_cfg_finish(const peft_pu_cfg *pc, const void *parsed, size_t size,
                                     void **out)
{
    void *p = pc->host->alloc(size);
    if (!p) {
        peft_pu_errf(pc->err, pc->errlen, "%s: out of memory", pc->who);
        return -1;
    }
    memcpy(p, parsed, size);
    *out = p;
    return 0;
}

/* The field's PEFT_CFG_* type; PEFT_CFG_MISSING always passes (the caller writes the
 * default). -1 when it is present but not one of `allowed` (a PEFT_PU_T mask); expected says
 * what is allowed ("a positive integer"). */
static inline int peft_pu_cfg_type(const peft_pu_cfg *pc, const char *key, unsigned allowed,
                                   const char *expected)
{
    int t = pc->host->cfg_type(pc->cfg, key);
    if (t == PEFT_CFG_MISSING || (allowed & PEFT_PU_T(t))) return t;
    peft_pu_errf(pc->err, pc->errlen, "%s: field '%s' must be %s, got %s", pc->who, key, expected,
                 peft_pu_type_name(t));
    return -1;
}

/* peft_type: the string peft_type (written when missing) */
static inline int peft_pu_cfg_peft_type(const peft_pu_cfg *pc, const char *peft_type)
{
    char expected[64];
    snprintf(expected, sizeof expected, "the string \"%s\"", peft_type);
    int t = peft_pu_cfg_type(pc, "peft_type", PEFT_PU_T(PEFT_CFG_STRING), expected);
    if (t < 0) return -1;
    if (t == PEFT_CFG_MISSING) {
        pc->host->cfg_set_str(pc->cfg, "peft_type", peft_type);
        return 0;
    }
    const char *s = pc->host->cfg_str(pc->cfg, "peft_type");
    if (s && !strcmp(s, peft_type)) return 0;
    peft_pu_errf(pc->err, pc->errlen, "%s: field 'peft_type' is \"%s\"; allowed value: \"%s\"",
                 pc->who, s ? s : "", peft_type);
    return -1;
}

/* a boolean, default def; *out (may be NULL) the value */
static inline int peft_pu_cfg_bool(const peft_pu_cfg *pc, const char *key, int def, int *out)
{
    int v = def;
    int t = peft_pu_cfg_type(pc, key, PEFT_PU_T(PEFT_CFG_BOOL), "a boolean (true or false)");
    if (t < 0) return -1;
    if (t == PEFT_CFG_MISSING) pc->host->cfg_set_bool(pc->cfg, key, def);
    else if (pc->host->cfg_bool(pc->cfg, key, &v) != 0) return -1;
    if (out) *out = v;
    return 0;
}

/* an integer, default def (written back); no range check */
static inline int peft_pu_cfg_int(const peft_pu_cfg *pc, const char *key, int64_t def,
                                  const char *expected, int64_t *out)
{
    *out = def;
    int t = peft_pu_cfg_type(pc, key, PEFT_PU_T(PEFT_CFG_INT), expected);
    if (t < 0) return -1;
    if (t == PEFT_CFG_MISSING) pc->host->cfg_set_int(pc->cfg, key, def);
    else pc->host->cfg_int(pc->cfg, key, out);
    return 0;
}

/* an integer > 0 (r), default def:
 * "field 'r' must be a positive integer (r > 0), got 0" */
static inline int peft_pu_cfg_pos_int(const peft_pu_cfg *pc, const char *key, int64_t def,
                                      int64_t *out)
{
    if (peft_pu_cfg_int(pc, key, def, "a positive integer", out)) return -1;
    if (*out > 0) return 0;
    peft_pu_errf(pc->err, pc->errlen, "%s: field '%s' must be a positive integer (%s > 0), got "
                 "%lld", pc->who, key, key, (long long)*out);
    return -1;
}

/* null or an integer > 0; a missing field is written as null when fill (else left missing).
 * *out = the value, or 0 when null / missing. */
static inline int peft_pu_cfg_opt_pos_int(const peft_pu_cfg *pc, const char *key, int fill,
                                          int64_t *out)
{
    *out = 0;
    int t = peft_pu_cfg_type(pc, key, PEFT_PU_T(PEFT_CFG_NULL) | PEFT_PU_T(PEFT_CFG_INT),
                             "null or a positive integer");
    if (t < 0) return -1;
    if (t == PEFT_CFG_MISSING && fill) pc->host->cfg_set_json(pc->cfg, key, "null");
    if (t != PEFT_CFG_INT) return 0;
    pc->host->cfg_int(pc->cfg, key, out);
    if (*out > 0) return 0;
    peft_pu_errf(pc->err, pc->errlen, "%s: field '%s' must be a positive integer, got %lld",
                 pc->who, key, (long long)*out);
    return -1;
}

/* a finite number, default def (written as an integer when def_is_int: PEFT saves alpha = 8
 * as 8, not 8.0) */
static inline int peft_pu_cfg_real(const peft_pu_cfg *pc, const char *key, double def,
                                   int def_is_int, double *out)
{
    *out = def;
    int t = peft_pu_cfg_type(pc, key, PEFT_PU_T(PEFT_CFG_INT) | PEFT_PU_T(PEFT_CFG_REAL),
                             "a number");
    if (t < 0) return -1;
    if (t == PEFT_CFG_MISSING) {
        if (def_is_int) pc->host->cfg_set_int(pc->cfg, key, (int64_t)def);
        else pc->host->cfg_set_real(pc->cfg, key, def);
    } else {
        pc->host->cfg_real(pc->cfg, key, out);
    }
    if (isfinite(*out)) return 0;
    peft_pu_errf(pc->err, pc->errlen, "%s: field '%s' must be a finite number, got %g", pc->who,
                 key, *out);
    return -1;
}

/* a probability in [0, 1) or, max_inclusive, [0, 1]; default 0.0 */
static inline int peft_pu_cfg_prob(const peft_pu_cfg *pc, const char *key, int max_inclusive,
                                   double *out)
{
    const char *range = max_inclusive ? "[0, 1]" : "[0, 1)";
    char expected[32];
    snprintf(expected, sizeof expected, "a number in %s", range);
    *out = 0.0;
    int t = peft_pu_cfg_type(pc, key, PEFT_PU_T(PEFT_CFG_INT) | PEFT_PU_T(PEFT_CFG_REAL),
                             expected);
    if (t < 0) return -1;
    if (t == PEFT_CFG_MISSING) pc->host->cfg_set_real(pc->cfg, key, 0.0);
    else pc->host->cfg_real(pc->cfg, key, out);
    if (*out >= 0.0 && (max_inclusive ? *out <= 1.0 : *out < 1.0)) return 0;
    peft_pu_errf(pc->err, pc->errlen, "%s: field '%s' must be in %s, got %g", pc->who, key, range,
                 *out);
    return -1;
}

/* a string that must be one of allowed (NULL-terminated, compared exactly); default
 * allowed[def] written back; *index the position of the value in allowed */
static inline int peft_pu_cfg_enum(const peft_pu_cfg *pc, const char *key,
                                   const char *const *allowed, int def, int *index)
{
    char list[256], expected[272];
    peft_pu_quoted_list(allowed, list, sizeof list);
    snprintf(expected, sizeof expected, "one of %s", list);
    *index = def;
    int t = peft_pu_cfg_type(pc, key, PEFT_PU_T(PEFT_CFG_STRING), expected);
    if (t < 0) return -1;
    if (t == PEFT_CFG_MISSING) {
        pc->host->cfg_set_str(pc->cfg, key, allowed[def]);
        return 0;
    }
    const char *s = pc->host->cfg_str(pc->cfg, key);
    for (int i = 0; s && allowed[i]; i++) {
        if (!strcmp(s, allowed[i])) {
            *index = i;
            return 0;
        }
    }
    peft_pu_errf(pc->err, pc->errlen, "%s: field '%s' has invalid value \"%s\"; allowed values: "
                 "%s", pc->who, key, s ? s : "", list);
    return -1;
}

/* null or a string; a missing field gets def (NULL: null) */
static inline int peft_pu_cfg_opt_str(const peft_pu_cfg *pc, const char *key, const char *def)
{
    int t = peft_pu_cfg_type(pc, key, PEFT_PU_T(PEFT_CFG_NULL) | PEFT_PU_T(PEFT_CFG_STRING),
                             "null or a string");
    if (t < 0) return -1;
    if (t == PEFT_CFG_MISSING) pc->host->cfg_set_str(pc->cfg, key, def);
    return 0;
}

/* null or a dict; a missing field gets def_json ("{}" or "null"), or stays missing when
 * def_json is NULL (fields PEFT 0.13.2 does not save) */
static inline int peft_pu_cfg_opt_dict(const peft_pu_cfg *pc, const char *key,
                                       const char *def_json)
{
    int t = peft_pu_cfg_type(pc, key, PEFT_PU_T(PEFT_CFG_NULL) | PEFT_PU_T(PEFT_CFG_DICT),
                             "null or a dict");
    if (t < 0) return -1;
    if (t == PEFT_CFG_MISSING && def_json) pc->host->cfg_set_json(pc->cfg, key, def_json);
    return 0;
}

/* Optional module names: null, a list of strings, or (allow_str) one string (a regex); a
 * missing field is written as null when fill (else left missing). */
static inline int peft_pu_cfg_names(const peft_pu_cfg *pc, const char *key, int allow_str,
                                    int fill)
{
    unsigned mask = PEFT_PU_T(PEFT_CFG_NULL) | PEFT_PU_T(PEFT_CFG_LIST) |
                    (allow_str ? PEFT_PU_T(PEFT_CFG_STRING) : 0);
    int t = peft_pu_cfg_type(pc, key, mask,
                             allow_str ? "null, a string or a list of strings"
                                       : "null or a list of strings");
    if (t < 0) return -1;
    if (t == PEFT_CFG_MISSING && fill) pc->host->cfg_set_json(pc->cfg, key, "null");
    if (t != PEFT_CFG_LIST) return 0;
    const int n = pc->host->cfg_list_len(pc->cfg, key);
    for (int i = 0; i < n; i++) {
        if (!pc->host->cfg_list_str(pc->cfg, key, i)) {
            peft_pu_errf(pc->err, pc->errlen, "%s: field '%s' must be a list of strings, "
                         "element %d is not a string", pc->who, key, i);
            return -1;
        }
    }
    return 0;
}

/* null, an integer or a list of integers (layers_to_transform); missing -> null */
static inline int peft_pu_cfg_ints(const peft_pu_cfg *pc, const char *key)
{
    int t = peft_pu_cfg_type(pc, key,
                             PEFT_PU_T(PEFT_CFG_NULL) | PEFT_PU_T(PEFT_CFG_INT) |
                                 PEFT_PU_T(PEFT_CFG_LIST),
                             "null, an integer or a list of integers");
    if (t < 0) return -1;
    if (t == PEFT_CFG_MISSING) pc->host->cfg_set_json(pc->cfg, key, "null");
    if (t != PEFT_CFG_LIST) return 0;
    const int n = pc->host->cfg_list_len(pc->cfg, key);
    for (int i = 0; i < n; i++) {
        int64_t v;
        if (pc->host->cfg_list_int(pc->cfg, key, i, &v) != 0) {
            peft_pu_errf(pc->err, pc->errlen, "%s: field '%s' must be a list of integers, "
                         "element %d is not an integer", pc->who, key, i);
            return -1;
        }
    }
    return 0;
}

/* PeftConfig's own fields, shared by every method: revision, base_model_name_or_path and
 * task_type (null or a string, default null), auto_mapping (null or a dict, default null),
 * inference_mode (a boolean, default false; *inference_mode may be NULL). */
static inline int peft_pu_cfg_peft_fields(const peft_pu_cfg *pc, int *inference_mode)
{
    if (peft_pu_cfg_bool(pc, "inference_mode", 0, inference_mode) ||
        peft_pu_cfg_opt_dict(pc, "auto_mapping", "null") ||
        peft_pu_cfg_opt_str(pc, "revision", NULL) ||
        peft_pu_cfg_opt_str(pc, "base_model_name_or_path", NULL) ||
        peft_pu_cfg_opt_str(pc, "task_type", NULL))
        return -1;
    return 0;
}

/* The module-selection fields of PEFT's tuners on linear layers (LoRA, LoHa, IA3, ...):
 * target_modules (null, a regex or names; the host resolves null to default_targets) and
 * modules_to_save (null or names), both default null; exclude_modules (newer PEFT: accepted,
 * never written); and, with layer_fields, layers_pattern (null, a string or names) and
 * layers_to_transform (null, an integer or integers), default null. */
static inline int peft_pu_cfg_module_fields(const peft_pu_cfg *pc, int layer_fields)
{
    if (peft_pu_cfg_names(pc, "target_modules", 1, 1) ||
        peft_pu_cfg_names(pc, "modules_to_save", 0, 1) ||
        peft_pu_cfg_names(pc, "exclude_modules", 1, 0))
        return -1;
    if (!layer_fields) return 0;
    return peft_pu_cfg_names(pc, "layers_pattern", 1, 1) ||
                   peft_pu_cfg_ints(pc, "layers_to_transform")
               ? -1
               : 0;
}

/* PromptLearningConfig's fields (prompt and prefix tuning): num_virtual_tokens, required (a
 * positive integer; PEFT's default None fails later in nn.Embedding), and token_dim,
 * num_transformer_submodules, num_attention_heads and num_layers (null or a positive integer,
 * default null; the host fills them from the model's config.json before parsing). */
static inline int peft_pu_cfg_prompt_fields(const peft_pu_cfg *pc, int64_t *num_virtual_tokens)
{
    static const char *const model_fields[] = {"token_dim", "num_transformer_submodules",
                                               "num_attention_heads", "num_layers"};
    if (peft_pu_cfg_opt_pos_int(pc, "num_virtual_tokens", 1, num_virtual_tokens)) return -1;
    if (*num_virtual_tokens == 0) {
        peft_pu_errf(pc->err, pc->errlen, "%s: field 'num_virtual_tokens' is required (a "
                     "positive integer, e.g. 20)", pc->who);
        return -1;
    }
    int64_t v;
    for (size_t i = 0; i < PEFT_PU_COUNT(model_fields); i++)
        if (peft_pu_cfg_opt_pos_int(pc, model_fields[i], 1, &v)) return -1;
    return 0;
}

#ifdef __cplusplus
}
#endif
#endif
