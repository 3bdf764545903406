/* loha_config.c — LoHaConfig as PEFT 0.13.2 saves it in adapter_config.json: the field list,
 * validation (errors name the field, the value and what is allowed) and the defaults written
 * back so that a saved config has PEFT's exact field set. LoHa has no default target_modules
 * (PEFT's LycorisTuner raises "Please specify `target_modules`"), so the vtable has none. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "loha.h"

/* Every field of LoHaConfig 0.13.2 (plus exclude_modules and runtime_config from newer PEFT,
 * accepted when loading an adapter saved by a newer version; never written by default). */
const char *const loha_config_keys[] = {
    "alpha", "alpha_pattern", "auto_mapping", "base_model_name_or_path", "inference_mode",
    "init_weights", "layers_pattern", "layers_to_transform", "module_dropout",
    "modules_to_save", "peft_type", "r", "rank_dropout", "rank_pattern", "revision",
    "target_modules", "task_type", "use_effective_conv2d",
    "exclude_modules", "runtime_config",
    NULL,
};

/* ---- helpers ------------------------------------------------------------------------------ */

void loha_errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

char *loha_strdup(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = loha_host->alloc(n);
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
    int t = loha_host->cfg_type(cfg, key);
    if (t == PEFT_CFG_MISSING || (allowed & T(t))) return t;
    loha_errf(err, errlen, "loha config: field '%s' must be %s, got %s", key, expected,
              type_name(t));
    return -1;
}

/* null, a list of strings, or (allow_str) a string; fill_default writes null */
static int opt_str_or_list(peft_cfg *cfg, const char *key, int allow_str, int fill_default,
                           char *err, size_t errlen)
{
    unsigned mask = T(PEFT_CFG_NULL) | T(PEFT_CFG_LIST) | (allow_str ? T(PEFT_CFG_STRING) : 0);
    int t = check_type(cfg, key, mask,
                       allow_str ? "null, a string or a list of strings" : "null or a list of strings",
                       err, errlen);
    if (t < 0) return -1;
    if (t == PEFT_CFG_MISSING && fill_default) loha_host->cfg_set_json(cfg, key, "null");
    if (t == PEFT_CFG_LIST) {
        int n = loha_host->cfg_list_len(cfg, key);
        for (int i = 0; i < n; i++)
            if (!loha_host->cfg_list_str(cfg, key, i)) {
                loha_errf(err, errlen, "loha config: field '%s' must be a list of strings, "
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
    if (t == PEFT_CFG_MISSING) loha_host->cfg_set_str(cfg, key, NULL);
    return 0;
}

static int opt_dict(peft_cfg *cfg, const char *key, const char *def_json, int fill_default,
                    char *err, size_t errlen)
{
    int t = check_type(cfg, key, T(PEFT_CFG_NULL) | T(PEFT_CFG_DICT), "null or a dict", err,
                       errlen);
    if (t < 0) return -1;
    if (t == PEFT_CFG_MISSING && fill_default) loha_host->cfg_set_json(cfg, key, def_json);
    return 0;
}

static int req_bool(peft_cfg *cfg, const char *key, int def, int *out, char *err, size_t errlen)
{
    int t = check_type(cfg, key, T(PEFT_CFG_BOOL), "a boolean (true or false)", err, errlen);
    if (t < 0) return -1;
    if (t == PEFT_CFG_MISSING) {
        loha_host->cfg_set_bool(cfg, key, def);
        *out = def;
        return 0;
    }
    return loha_host->cfg_bool(cfg, key, out) == 0 ? 0 : -1;
}

/* a probability: [0, 1) (max_inclusive 0) or [0, 1]; default 0.0 written back */
static int req_prob(peft_cfg *cfg, const char *key, int max_inclusive, double *out, char *err,
                    size_t errlen)
{
    const char *range = max_inclusive ? "[0, 1]" : "[0, 1)";
    char expected[32];
    snprintf(expected, sizeof expected, "a number in %s", range);
    int t = check_type(cfg, key, T(PEFT_CFG_INT) | T(PEFT_CFG_REAL), expected, err, errlen);
    if (t < 0) return -1;
    *out = 0.0;
    if (t == PEFT_CFG_MISSING) loha_host->cfg_set_real(cfg, key, 0.0);
    else loha_host->cfg_real(cfg, key, out);
    if (!(*out >= 0.0 && (max_inclusive ? *out <= 1.0 : *out < 1.0))) {
        loha_errf(err, errlen, "loha config: field '%s' must be in %s, got %g", key, range, *out);
        return -1;
    }
    return 0;
}

static int parse_layers_to_transform(peft_cfg *cfg, char *err, size_t errlen)
{
    const char *key = "layers_to_transform";
    int t = check_type(cfg, key, T(PEFT_CFG_NULL) | T(PEFT_CFG_INT) | T(PEFT_CFG_LIST),
                       "null, an integer or a list of integers", err, errlen);
    if (t < 0) return -1;
    if (t == PEFT_CFG_MISSING) loha_host->cfg_set_json(cfg, key, "null");
    if (t == PEFT_CFG_LIST) {
        int n = loha_host->cfg_list_len(cfg, key);
        for (int i = 0; i < n; i++) {
            int64_t v;
            if (loha_host->cfg_list_int(cfg, key, i, &v) != 0) {
                loha_errf(err, errlen, "loha config: field '%s' must be a list of integers, "
                          "element %d is not an integer", key, i);
                return -1;
            }
        }
    }
    return 0;
}

/* ---- config_parse ------------------------------------------------------------------------- */

int loha_config_parse(peft_cfg *cfg, void **out, char *err, size_t errlen)
{
    if (out) *out = NULL;
    if (!cfg || !out) {
        loha_errf(err, errlen, "loha config: no config given");
        return -1;
    }
    loha_config c = {.r = 8, .alpha = 8.0, .init_weights = 1};
    int t, b;

    t = check_type(cfg, "peft_type", T(PEFT_CFG_STRING), "the string \"LOHA\"", err, errlen);
    if (t < 0) return -1;
    if (t == PEFT_CFG_MISSING) {
        loha_host->cfg_set_str(cfg, "peft_type", "LOHA");
    } else {
        const char *pt = loha_host->cfg_str(cfg, "peft_type");
        if (!pt || strcmp(pt, "LOHA") != 0) {
            loha_errf(err, errlen, "loha config: field 'peft_type' is \"%s\"; allowed value: "
                      "\"LOHA\"", pt ? pt : "");
            return -1;
        }
    }

    /* r: int > 0 (default 8); PEFT's update_layer raises for r <= 0 */
    t = check_type(cfg, "r", T(PEFT_CFG_INT), "a positive integer", err, errlen);
    if (t < 0) return -1;
    if (t == PEFT_CFG_MISSING) {
        loha_host->cfg_set_int(cfg, "r", c.r);
    } else {
        loha_host->cfg_int(cfg, "r", &c.r);
        if (c.r <= 0) {
            loha_errf(err, errlen, "loha config: field 'r' must be a positive integer (r > 0), "
                      "got %lld", (long long)c.r);
            return -1;
        }
    }

    /* alpha: number (default 8, saved as the integer 8) */
    t = check_type(cfg, "alpha", T(PEFT_CFG_INT) | T(PEFT_CFG_REAL), "a number", err, errlen);
    if (t < 0) return -1;
    if (t == PEFT_CFG_MISSING) loha_host->cfg_set_int(cfg, "alpha", 8);
    else loha_host->cfg_real(cfg, "alpha", &c.alpha);
    if (!isfinite(c.alpha)) {
        loha_errf(err, errlen, "loha config: field 'alpha' must be a finite number, got %g",
                  c.alpha);
        return -1;
    }

    /* rank_dropout keeps rows with probability 1 - p and rescales by their mean: p = 1 would
     * drop them all (PEFT then divides by zero); module_dropout = 1 just never applies LoHa */
    if (req_prob(cfg, "rank_dropout", 0, &c.rank_dropout, err, errlen)) return -1;
    if (req_prob(cfg, "module_dropout", 1, &c.module_dropout, err, errlen)) return -1;

    if (req_bool(cfg, "init_weights", 1, &c.init_weights, err, errlen)) return -1;
    if (req_bool(cfg, "use_effective_conv2d", 0, &b, err, errlen)) return -1;
    if (b) {
        loha_errf(err, errlen, "loha config: use_effective_conv2d true applies to Conv2d layers "
                  "with a kernel > 1x1, which libpeft's models do not have (allowed value: false)");
        return -1;
    }
    if (req_bool(cfg, "inference_mode", 0, &b, err, errlen)) return -1;

    if (opt_dict(cfg, "rank_pattern", "{}", 1, err, errlen)) return -1;
    if (opt_dict(cfg, "alpha_pattern", "{}", 1, err, errlen)) return -1;
    if (opt_dict(cfg, "auto_mapping", "null", 1, err, errlen)) return -1;
    if (opt_dict(cfg, "runtime_config", "null", 0, err, errlen)) return -1;
    if (opt_str(cfg, "revision", err, errlen)) return -1;
    if (opt_str(cfg, "base_model_name_or_path", err, errlen)) return -1;
    if (opt_str(cfg, "task_type", err, errlen)) return -1;

    if (opt_str_or_list(cfg, "target_modules", 1, 1, err, errlen)) return -1;
    if (opt_str_or_list(cfg, "modules_to_save", 0, 1, err, errlen)) return -1;
    if (opt_str_or_list(cfg, "layers_pattern", 1, 1, err, errlen)) return -1;
    if (opt_str_or_list(cfg, "exclude_modules", 1, 0, err, errlen)) return -1;
    if (parse_layers_to_transform(cfg, err, errlen)) return -1;

    loha_config *p = loha_host->alloc(sizeof *p);
    if (!p) {
        loha_errf(err, errlen, "loha config: out of memory");
        return -1;
    }
    *p = c;
    *out = p;
    return 0;
}

void loha_config_free(void *parsed)
{
    loha_host->free(parsed);
}
