/* lora_config.c — LoraConfig as PEFT 0.13.2 saves it in adapter_config.json: the field list,
 * validation (errors name the field, the value and what is allowed), the defaults written back
 * so that a saved config has PEFT's exact field set, and the default target_modules per
 * model_type (peft/utils/constants.py, TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING). */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "lora.h"
#include "peft/plugin_config.h"
#include "peft/plugin_targets.h"

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

/* ---- config_parse ------------------------------------------------------------------------- */

static const char *const bias_values[] = {"none", "all", "lora_only", NULL};

static int parse_init(const peft_pu_cfg *pc, lora_config *c)
{
    const char *key = "init_lora_weights";
    char *err = pc->err;
    size_t errlen = pc->errlen;
    int t = peft_pu_cfg_type(pc, key, PEFT_PU_T(PEFT_CFG_BOOL) | PEFT_PU_T(PEFT_CFG_STRING),
                             "true, false or one of the strings \"gaussian\", \"pissa\", "
                             "\"olora\", \"loftq\"");
    if (t < 0) return -1;
    if (t == PEFT_CFG_MISSING) {
        lora_host->cfg_set_bool(pc->cfg, key, 1);
        c->init = LORA_INIT_DEFAULT;
        return 0;
    }
    if (t == PEFT_CFG_BOOL) {
        int b = 1;
        lora_host->cfg_bool(pc->cfg, key, &b);
        c->init = b ? LORA_INIT_DEFAULT : LORA_INIT_NONE;
        return 0;
    }
    const char *s = lora_host->cfg_str(pc->cfg, key);
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
            peft_pu_errf(err, errlen, "lora config: init_lora_weights should be 'pissa' or "
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
        peft_pu_errf(err, errlen, "lora config: init_lora_weights '%s' is not supported yet "
                     "(supported: true, false, \"gaussian\", \"pissa\", \"pissa_niter_<n>\", "
                     "\"olora\")", s);
        return -1;
    }
    peft_pu_errf(err, errlen, "lora config: field 'init_lora_weights' has invalid value \"%s\"; "
                 "allowed values: true, false, \"gaussian\", \"pissa\", \"pissa_niter_<n>\", "
                 "\"olora\" (\"loftq\" is not supported yet)", s);
    return -1;
}

/* layer_replication: null (PEFT stacks duplicated layers: a model transform not done here) */
static int parse_layer_replication(const peft_pu_cfg *pc)
{
    const char *key = "layer_replication";
    int t = peft_pu_cfg_type(pc, key, PEFT_PU_T(PEFT_CFG_NULL) | PEFT_PU_T(PEFT_CFG_LIST),
                             "null or a list of [start, end] pairs");
    if (t < 0) return -1;
    if (t == PEFT_CFG_MISSING) lora_host->cfg_set_json(pc->cfg, key, "null");
    if (t == PEFT_CFG_LIST && lora_host->cfg_list_len(pc->cfg, key) > 0) {
        peft_pu_errf(pc->err, pc->errlen, "lora config: layer_replication is not supported yet "
                     "(allowed value: null)");
        return -1;
    }
    return 0;
}

/* LoraConfig.__post_init__'s cross-field rules */
static int check_post_init(const peft_pu_cfg *pc, const lora_config *c)
{
    /* the host cannot tell an empty dict, which PEFT lets through */
    if (c->use_dora && lora_host->cfg_type(pc->cfg, "megatron_config") == PEFT_CFG_DICT) {
        peft_pu_errf(pc->err, pc->errlen, "lora config: DoRA does not support megatron_core, "
                     "please set `use_dora=False` (or 'megatron_config' to null).");
        return -1;
    }
    /* a regex target_modules excludes layer selection */
    if (lora_host->cfg_type(pc->cfg, "target_modules") == PEFT_CFG_STRING) {
        if (lora_host->cfg_type(pc->cfg, "layers_to_transform") > PEFT_CFG_NULL) {
            peft_pu_errf(pc->err, pc->errlen, "lora config: `layers_to_transform` cannot be used "
                         "when `target_modules` is a str.");
            return -1;
        }
        if (lora_host->cfg_type(pc->cfg, "layers_pattern") > PEFT_CFG_NULL) {
            peft_pu_errf(pc->err, pc->errlen, "lora config: `layers_pattern` cannot be used when "
                         "`target_modules` is a str.");
            return -1;
        }
    }
    return 0;
}

int lora_config_parse(peft_cfg *cfg, void **out, char *err, size_t errlen)
{
    const peft_pu_cfg pc = {lora_host, cfg, "lora config", err, errlen};
    lora_config c = {.r = 8, .lora_alpha = 8.0, .lora_dropout = 0.0,
                     .init = LORA_INIT_DEFAULT, .use_rslora = 0};
    int bias;
    if (peft_pu_cfg_begin(&pc, out) || peft_pu_cfg_peft_type(&pc, "LORA") ||
        peft_pu_cfg_pos_int(&pc, "r", 8, &c.r) ||
        peft_pu_cfg_real(&pc, "lora_alpha", 8, 1, &c.lora_alpha) ||
        peft_pu_cfg_prob(&pc, "lora_dropout", 0, &c.lora_dropout) ||
        /* bias: the host implements it */
        peft_pu_cfg_enum(&pc, "bias", bias_values, 0, &bias) || parse_init(&pc, &c) ||
        peft_pu_cfg_bool(&pc, "use_rslora", 0, &c.use_rslora) ||
        peft_pu_cfg_bool(&pc, "use_dora", 0, &c.use_dora) ||
        peft_pu_cfg_bool(&pc, "fan_in_fan_out", 0, NULL) ||
        /* rank_pattern / alpha_pattern: {module key: value}; values checked per site */
        peft_pu_cfg_opt_dict(&pc, "rank_pattern", "{}") ||
        peft_pu_cfg_opt_dict(&pc, "alpha_pattern", "{}") ||
        peft_pu_cfg_opt_dict(&pc, "loftq_config", "{}") ||
        peft_pu_cfg_opt_dict(&pc, "megatron_config", "null") ||
        peft_pu_cfg_opt_dict(&pc, "runtime_config", NULL) ||
        peft_pu_cfg_opt_str(&pc, "megatron_core", "megatron.core") ||
        peft_pu_cfg_peft_fields(&pc, NULL) || parse_layer_replication(&pc) ||
        peft_pu_cfg_module_fields(&pc, 1) || check_post_init(&pc, &c))
        return -1;
    return peft_pu_cfg_finish(&pc, &c, sizeof c, out);
}

void lora_config_free(void *parsed)
{
    lora_host->free(parsed);
}

/* ---- default target modules --------------------------------------------------------------- */

/* PEFT 0.13.2 TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING (peft/plugin_targets.h, shared
 * with BOFT and HRA, which PEFT points at the same table) */
const char *const *lora_default_targets(const char *model_type)
{
    return peft_pu_lora_targets(model_type);
}
