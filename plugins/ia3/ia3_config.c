/* ia3_config.c — IA3Config as PEFT 0.13.2 saves it in adapter_config.json: the field list,
 * validation (errors name the field, the value and what is allowed), the defaults written back
 * so that a saved config has PEFT's exact field set, IA3Config.__post_init__'s rule that
 * feedforward_modules be a subset of target_modules, and the default target and feed-forward
 * modules per model_type (peft/utils/constants.py, TRANSFORMERS_MODELS_TO_IA3_*_MAPPING). */
#include <stdio.h>
#include <string.h>

#include "ia3.h"
#include "peft/plugin_config.h"

/* Every field of IA3Config 0.13.2 (plus exclude_modules and runtime_config from newer PEFT,
 * accepted when loading an adapter saved by a newer version; never written by default). */
const char *const ia3_config_keys[] = {
    "auto_mapping", "base_model_name_or_path", "fan_in_fan_out", "feedforward_modules",
    "inference_mode", "init_ia3_weights", "modules_to_save", "peft_type", "revision",
    "target_modules", "task_type",
    "exclude_modules", "runtime_config",
    NULL,
};

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
        peft_pu_errf(err, errlen, "ia3 config: `feedforward_modules` should be a subset of "
                     "`target_modules`: feedforward_modules entry \"%s\" is not in "
                     "target_modules [%s]", f ? f : "", allowed);
        return -1;
    }
    return 0;
}

/* ---- config_parse ------------------------------------------------------------------------- */

int ia3_config_parse(peft_cfg *cfg, void **out, char *err, size_t errlen)
{
    const peft_pu_cfg pc = {ia3_host, cfg, "ia3 config", err, errlen};
    ia3_config c = {.init_ia3_weights = 1};
    /* target_modules: the host resolves null to default_targets(model_type) before this;
     * feedforward_modules: null is resolved per model_type at the first inject (PEFT's
     * IA3Model._prepare_adapter_config), so it is left as it is here */
    if (peft_pu_cfg_begin(&pc, out) || peft_pu_cfg_peft_type(&pc, "IA3") ||
        peft_pu_cfg_bool(&pc, "init_ia3_weights", 1, &c.init_ia3_weights) ||
        peft_pu_cfg_bool(&pc, "fan_in_fan_out", 0, NULL) ||
        peft_pu_cfg_opt_dict(&pc, "runtime_config", NULL) ||
        peft_pu_cfg_peft_fields(&pc, NULL) || peft_pu_cfg_module_fields(&pc, 0) ||
        peft_pu_cfg_names(&pc, "feedforward_modules", 1, 0) ||
        check_feedforward_subset(cfg, err, errlen))
        return -1;
    return peft_pu_cfg_finish(&pc, &c, sizeof c, out);
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
