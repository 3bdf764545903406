/* prompt_config.c — PromptTuningConfig as PEFT 0.13.2 saves it in adapter_config.json: the
 * field list, validation (errors name the field, the value and what is allowed) and the
 * defaults written back so that a saved config has PEFT's exact field set.
 *
 * token_dim, num_transformer_submodules, num_attention_heads and num_layers are filled by the
 * host from the model's config.json before parsing (PEFT's _prepare_prompt_learning_config);
 * here they only have to be null or positive integers. */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "prompt.h"

/* Every field of PromptTuningConfig 0.13.2 (PeftConfig + PromptLearningConfig + its own). */
const char *const prompt_config_keys[] = {
    "auto_mapping", "base_model_name_or_path", "inference_mode", "num_attention_heads",
    "num_layers", "num_transformer_submodules", "num_virtual_tokens", "peft_type",
    "prompt_tuning_init", "prompt_tuning_init_text", "revision", "task_type", "token_dim",
    "tokenizer_kwargs", "tokenizer_name_or_path",
    NULL,
};

void prompt_errf(char *err, size_t errlen, const char *fmt, ...)
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
    int t = prompt_host->cfg_type(cfg, key);
    if (t == PEFT_CFG_MISSING || (allowed & T(t))) return t;
    prompt_errf(err, errlen, "prompt tuning config: field '%s' must be %s, got %s", key, expected,
                type_name(t));
    return -1;
}

/* Optional[str], default def (NULL -> null) */
static int opt_str(peft_cfg *cfg, const char *key, const char *def, char *err, size_t errlen)
{
    int t = check_type(cfg, key, T(PEFT_CFG_NULL) | T(PEFT_CFG_STRING), "null or a string", err,
                       errlen);
    if (t < 0) return -1;
    if (t == PEFT_CFG_MISSING) prompt_host->cfg_set_str(cfg, key, def);
    return 0;
}

/* Optional[dict], default null */
static int opt_dict(peft_cfg *cfg, const char *key, char *err, size_t errlen)
{
    int t = check_type(cfg, key, T(PEFT_CFG_NULL) | T(PEFT_CFG_DICT), "null or a dict", err,
                       errlen);
    if (t < 0) return -1;
    if (t == PEFT_CFG_MISSING) prompt_host->cfg_set_json(cfg, key, "null");
    return 0;
}

/* Optional[int] > 0, default null; *out = the value or 0 */
static int opt_pos_int(peft_cfg *cfg, const char *key, int64_t *out, char *err, size_t errlen)
{
    *out = 0;
    int t = check_type(cfg, key, T(PEFT_CFG_NULL) | T(PEFT_CFG_INT), "null or a positive integer",
                       err, errlen);
    if (t < 0) return -1;
    if (t == PEFT_CFG_MISSING) prompt_host->cfg_set_json(cfg, key, "null");
    if (t != PEFT_CFG_INT) return 0;
    prompt_host->cfg_int(cfg, key, out);
    if (*out <= 0) {
        prompt_errf(err, errlen, "prompt tuning config: field '%s' must be a positive integer, "
                    "got %lld", key, (long long)*out);
        return -1;
    }
    return 0;
}

static int parse_init(peft_cfg *cfg, prompt_config *c, char *err, size_t errlen)
{
    const char *key = "prompt_tuning_init";
    int t = check_type(cfg, key, T(PEFT_CFG_STRING),
                       "one of \"RANDOM\", \"SAMPLE_VOCAB\", \"TEXT\"", err, errlen);
    if (t < 0) return -1;
    if (t == PEFT_CFG_MISSING) {
        prompt_host->cfg_set_str(cfg, key, "RANDOM");
        c->init = PROMPT_INIT_RANDOM;
        return 0;
    }
    const char *s = prompt_host->cfg_str(cfg, key);
    if (!strcmp(s, "RANDOM")) c->init = PROMPT_INIT_RANDOM;
    else if (!strcmp(s, "SAMPLE_VOCAB")) c->init = PROMPT_INIT_SAMPLE_VOCAB;
    else if (!strcmp(s, "TEXT")) c->init = PROMPT_INIT_TEXT;
    else {
        prompt_errf(err, errlen, "prompt tuning config: field '%s' has invalid value \"%s\"; "
                    "allowed values: \"RANDOM\", \"SAMPLE_VOCAB\", \"TEXT\"", key, s);
        return -1;
    }
    return 0;
}

int prompt_config_parse(peft_cfg *cfg, void **out, char *err, size_t errlen)
{
    if (out) *out = NULL;
    if (!cfg || !out) {
        prompt_errf(err, errlen, "prompt tuning config: no config given");
        return -1;
    }
    prompt_config c = {0};
    int t = check_type(cfg, "peft_type", T(PEFT_CFG_STRING), "the string \"PROMPT_TUNING\"", err,
                       errlen);
    if (t < 0) return -1;
    if (t == PEFT_CFG_MISSING) {
        prompt_host->cfg_set_str(cfg, "peft_type", "PROMPT_TUNING");
    } else if (strcmp(prompt_host->cfg_str(cfg, "peft_type"), "PROMPT_TUNING") != 0) {
        prompt_errf(err, errlen, "prompt tuning config: field 'peft_type' is \"%s\"; allowed "
                    "value: \"PROMPT_TUNING\"", prompt_host->cfg_str(cfg, "peft_type"));
        return -1;
    }

    /* num_virtual_tokens: PEFT's default is None, which fails later in nn.Embedding */
    int64_t v;
    if (opt_pos_int(cfg, "num_virtual_tokens", &v, err, errlen)) return -1;
    if (v == 0) {
        prompt_errf(err, errlen, "prompt tuning config: field 'num_virtual_tokens' is required "
                    "(a positive integer, e.g. 20)");
        return -1;
    }
    c.num_virtual_tokens = v;
    static const char *const model_fields[] = {"token_dim", "num_transformer_submodules",
                                               "num_attention_heads", "num_layers"};
    for (size_t i = 0; i < sizeof model_fields / sizeof model_fields[0]; i++)
        if (opt_pos_int(cfg, model_fields[i], &v, err, errlen)) return -1;

    t = check_type(cfg, "inference_mode", T(PEFT_CFG_BOOL), "a boolean (true or false)", err,
                   errlen);
    if (t < 0) return -1;
    if (t == PEFT_CFG_MISSING) prompt_host->cfg_set_bool(cfg, "inference_mode", 0);
    else prompt_host->cfg_bool(cfg, "inference_mode", &c.inference_mode);

    if (parse_init(cfg, &c, err, errlen)) return -1;
    if (opt_str(cfg, "prompt_tuning_init_text", NULL, err, errlen)) return -1;
    if (opt_str(cfg, "tokenizer_name_or_path", NULL, err, errlen)) return -1;
    if (opt_dict(cfg, "tokenizer_kwargs", err, errlen)) return -1;
    if (opt_dict(cfg, "auto_mapping", err, errlen)) return -1;
    if (opt_str(cfg, "base_model_name_or_path", NULL, err, errlen)) return -1;
    if (opt_str(cfg, "revision", NULL, err, errlen)) return -1;
    if (opt_str(cfg, "task_type", NULL, err, errlen)) return -1;

    /* PromptTuningConfig.__post_init__ */
    const char *tok = prompt_host->cfg_str(cfg, "tokenizer_name_or_path");
    if (c.init == PROMPT_INIT_TEXT && (!tok || !*tok)) {
        prompt_errf(err, errlen, "prompt tuning config: prompt_tuning_init \"TEXT\" needs "
                    "field 'tokenizer_name_or_path' (got %s)", tok ? "\"\"" : "null");
        return -1;
    }
    if (c.init == PROMPT_INIT_TEXT && !prompt_host->cfg_str(cfg, "prompt_tuning_init_text")) {
        prompt_errf(err, errlen, "prompt tuning config: prompt_tuning_init \"TEXT\" needs "
                    "field 'prompt_tuning_init_text' (got null)");
        return -1;
    }
    if (prompt_host->cfg_type(cfg, "tokenizer_kwargs") == PEFT_CFG_DICT &&
        c.init != PROMPT_INIT_TEXT) {
        prompt_errf(err, errlen, "prompt tuning config: field 'tokenizer_kwargs' is only valid "
                    "with prompt_tuning_init \"TEXT\"");
        return -1;
    }
    /* TEXT initialises from the tokenized text: without inference_mode the ids are needed now,
     * and libpeft has no tokenizer yet. A saved TEXT adapter (inference_mode true) loads. */
    if (c.init == PROMPT_INIT_TEXT && !c.inference_mode) {
        prompt_errf(err, errlen, "prompt tuning config: prompt_tuning_init \"TEXT\" needs a "
                    "tokenizer to turn field 'prompt_tuning_init_text' into token ids, and "
                    "libpeft has none yet; use \"RANDOM\" or \"SAMPLE_VOCAB\" (or load an "
                    "adapter trained elsewhere)");
        return -1;
    }

    prompt_config *p = prompt_host->alloc(sizeof *p);
    if (!p) {
        prompt_errf(err, errlen, "prompt tuning config: out of memory");
        return -1;
    }
    *p = c;
    *out = p;
    return 0;
}

void prompt_config_free(void *parsed) { prompt_host->free(parsed); }
