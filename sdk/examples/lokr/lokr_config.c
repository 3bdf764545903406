/* lokr_config.c — LoKrConfig as PEFT 0.13.2 saves it in adapter_config.json: every field,
 * validation (errors name the field and what is allowed), the defaults written back so that a
 * saved config has PEFT's exact field set, the default target modules (PEFT 0.13.2 has no LoKr
 * mapping: target_modules is required there; here the LoRA mapping's entries for the
 * architectures libpeft runs are offered), and LyCORIS's factorization(). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "lokr.h"

/* LoKrConfig 0.13.2 (LycorisConfig + PeftConfig fields) */
const char *const lokr_config_keys[] = {
    "alpha", "alpha_pattern", "auto_mapping", "base_model_name_or_path", "decompose_both",
    "decompose_factor", "inference_mode", "init_weights", "layers_pattern",
    "layers_to_transform", "module_dropout", "modules_to_save", "peft_type", "r",
    "rank_dropout", "rank_pattern", "revision", "target_modules", "task_type",
    "use_effective_conv2d", NULL,
};

void lokr_errf(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || !errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

#define T(x) (1u << (x))

/* the field's type (PEFT_CFG_MISSING included), or -1 with err when not in allowed */
static int typed(peft_cfg *cfg, const char *key, unsigned allowed, const char *expected, char *err,
                 size_t errlen)
{
    int t = lokr_host->cfg_type(cfg, key);
    if (t == PEFT_CFG_MISSING || (allowed & T(t))) return t;
    lokr_errf(err, errlen, "lokr config: field '%s' must be %s", key, expected);
    return -1;
}

static int get_bool(peft_cfg *cfg, const char *key, int def, int *out, char *err, size_t errlen)
{
    int t = typed(cfg, key, T(PEFT_CFG_BOOL), "true or false", err, errlen);
    if (t < 0) return -1;
    if (t == PEFT_CFG_MISSING) lokr_host->cfg_set_bool(cfg, key, def), *out = def;
    else lokr_host->cfg_bool(cfg, key, out);
    return 0;
}

/* a number in [lo, hi) (hi = INFINITY for none); ints written back as ints */
static int get_real(peft_cfg *cfg, const char *key, double def, int def_is_int, double lo,
                    double hi, double *out, char *err, size_t errlen)
{
    int t = typed(cfg, key, T(PEFT_CFG_INT) | T(PEFT_CFG_REAL), "a number", err, errlen);
    if (t < 0) return -1;
    if (t == PEFT_CFG_MISSING) {
        if (def_is_int) lokr_host->cfg_set_int(cfg, key, (int64_t)def);
        else lokr_host->cfg_set_real(cfg, key, def);
        *out = def;
        return 0;
    }
    lokr_host->cfg_real(cfg, key, out);
    if (!(*out >= lo && *out < hi)) {
        lokr_errf(err, errlen, "lokr config: field '%s' must be in [%g, %g), got %g", key, lo, hi,
                  *out);
        return -1;
    }
    return 0;
}

/* null or one of the JSON types in allowed; null written back when missing */
static int opt_null(peft_cfg *cfg, const char *key, unsigned allowed, const char *expected,
                    char *err, size_t errlen)
{
    int t = typed(cfg, key, allowed | T(PEFT_CFG_NULL), expected, err, errlen);
    if (t < 0) return -1;
    if (t == PEFT_CFG_MISSING) lokr_host->cfg_set_json(cfg, key, "null");
    if (t == PEFT_CFG_LIST && (allowed & T(PEFT_CFG_STRING))) { /* a list of names */
        int n = lokr_host->cfg_list_len(cfg, key);
        for (int i = 0; i < n; i++)
            if (!lokr_host->cfg_list_str(cfg, key, i)) {
                lokr_errf(err, errlen, "lokr config: field '%s' must be a list of strings, "
                          "element %d is not", key, i);
                return -1;
            }
    }
    return 0;
}

int lokr_config_parse(peft_cfg *cfg, void **out, char *err, size_t errlen)
{
    *out = NULL;
    lokr_config c = {0};
    const char *pt = lokr_host->cfg_str(cfg, "peft_type");
    if (!pt || strcmp(pt, "LOKR") != 0) {
        lokr_errf(err, errlen, "lokr config: field 'peft_type' must be \"LOKR\"");
        return -1;
    }
    int t = typed(cfg, "r", T(PEFT_CFG_INT), "a positive integer", err, errlen);
    if (t < 0) return -1;
    c.r = 8;
    if (t == PEFT_CFG_MISSING) lokr_host->cfg_set_int(cfg, "r", 8);
    else lokr_host->cfg_int(cfg, "r", &c.r);
    if (c.r <= 0) {
        lokr_errf(err, errlen, "lokr config: field 'r' must be a positive integer, got %lld",
                  (long long)c.r);
        return -1;
    }
    if (get_real(cfg, "alpha", 8, 1, -INFINITY, INFINITY, &c.alpha, err, errlen) ||
        get_real(cfg, "rank_dropout", 0.0, 0, 0.0, 1.0, &c.rank_dropout, err, errlen) ||
        get_real(cfg, "module_dropout", 0.0, 0, 0.0, 1.0, &c.module_dropout, err, errlen))
        return -1;
    int b;
    if (get_bool(cfg, "use_effective_conv2d", 0, &b, err, errlen) ||
        get_bool(cfg, "decompose_both", 0, &c.decompose_both, err, errlen) ||
        get_bool(cfg, "init_weights", 1, &c.init_weights, err, errlen) ||
        get_bool(cfg, "inference_mode", 0, &b, err, errlen))
        return -1;
    t = typed(cfg, "decompose_factor", T(PEFT_CFG_INT), "an integer (-1: near the square root)",
              err, errlen);
    if (t < 0) return -1;
    c.decompose_factor = -1;
    if (t == PEFT_CFG_MISSING) lokr_host->cfg_set_int(cfg, "decompose_factor", -1);
    else lokr_host->cfg_int(cfg, "decompose_factor", &c.decompose_factor);
    if (c.decompose_factor == 0 || c.decompose_factor < -1) {
        lokr_errf(err, errlen, "lokr config: field 'decompose_factor' must be -1 or a positive "
                  "integer, got %lld", (long long)c.decompose_factor);
        return -1;
    }

    if (opt_null(cfg, "target_modules", T(PEFT_CFG_LIST) | T(PEFT_CFG_STRING),
                 "null, a list of names or a regex string", err, errlen) ||
        opt_null(cfg, "modules_to_save", T(PEFT_CFG_LIST) | T(PEFT_CFG_STRING),
                 "null or a list of names", err, errlen) ||
        opt_null(cfg, "layers_to_transform", T(PEFT_CFG_LIST) | T(PEFT_CFG_INT),
                 "null, an integer or a list of integers", err, errlen) ||
        opt_null(cfg, "layers_pattern", T(PEFT_CFG_LIST) | T(PEFT_CFG_STRING),
                 "null, a string or a list of strings", err, errlen) ||
        opt_null(cfg, "auto_mapping", T(PEFT_CFG_DICT), "null or a dict", err, errlen) ||
        opt_null(cfg, "revision", T(PEFT_CFG_STRING), "null or a string", err, errlen) ||
        opt_null(cfg, "task_type", T(PEFT_CFG_STRING), "null or a string", err, errlen) ||
        opt_null(cfg, "base_model_name_or_path", T(PEFT_CFG_STRING), "null or a string", err,
                 errlen))
        return -1;
    const char *dicts[] = {"rank_pattern", "alpha_pattern"};
    for (int i = 0; i < 2; i++) {
        t = typed(cfg, dicts[i], T(PEFT_CFG_DICT), "a dict {module: value}", err, errlen);
        if (t < 0) return -1;
        if (t == PEFT_CFG_MISSING) lokr_host->cfg_set_json(cfg, dicts[i], "{}");
    }
    if (lokr_host->cfg_type(cfg, "modules_to_save") == PEFT_CFG_STRING) {
        lokr_errf(err, errlen, "lokr config: field 'modules_to_save' must be null or a list of "
                  "names");
        return -1;
    }

    lokr_config *p = lokr_host->alloc(sizeof *p);
    if (!p) {
        lokr_errf(err, errlen, "lokr config: out of memory");
        return -1;
    }
    *p = c;
    *out = p;
    return 0;
}

void lokr_config_free(void *parsed) { lokr_host->free(parsed); }

static const char *const gpt2_t[] = {"c_attn", NULL};
static const char *const llama_t[] = {"q_proj", "v_proj", NULL};
static const char *const bert_t[] = {"query", "value", NULL};
static const char *const t5_t[] = {"q", "v", NULL};

const char *const *lokr_default_targets(const char *model_type)
{
    if (!model_type) return NULL;
    if (!strcmp(model_type, "gpt2")) return gpt2_t;
    if (!strcmp(model_type, "llama")) return llama_t;
    if (!strcmp(model_type, "bert")) return bert_t;
    if (!strcmp(model_type, "t5")) return t5_t;
    return NULL;
}

/* PEFT 0.13.2 peft/tuners/lokr/layer.py factorization (from LyCORIS), line for line */
void lokr_factorization(int64_t dimension, int64_t factor, int64_t *pm, int64_t *pn)
{
    if (factor > 0 && dimension % factor == 0) {
        *pm = factor;
        *pn = dimension / factor;
        return;
    }
    if (factor == -1) factor = dimension;
    int64_t m = 1, n = dimension, length = m + n;
    while (m < n) {
        int64_t new_m = m + 1;
        while (dimension % new_m != 0) new_m++;
        int64_t new_n = dimension / new_m;
        if (new_m + new_n > length || new_m > factor) break;
        m = new_m;
        n = new_n;
    }
    if (m > n) {
        int64_t t = m;
        m = n;
        n = t;
    }
    *pm = m;
    *pn = n;
}
