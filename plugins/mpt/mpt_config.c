/* mpt_config.c — MultitaskPromptTuningConfig as PEFT 0.13.2 saves it in adapter_config.json:
 * the field list, validation (errors name the field, the value and what is allowed) and the
 * defaults written back so that a saved config has PEFT's exact field set.
 *
 * token_dim, num_transformer_submodules, num_attention_heads and num_layers are filled by the
 * host from the model's config.json before parsing (PEFT's _prepare_prompt_learning_config). */
#include "mpt.h"
#include "peft/plugin_config.h"

/* Every field of MultitaskPromptTuningConfig 0.13.2 (PromptTuningConfig + its own). */
const char *const mpt_config_keys[] = {
    "auto_mapping", "base_model_name_or_path", "inference_mode", "num_attention_heads",
    "num_layers", "num_ranks", "num_tasks", "num_transformer_submodules", "num_virtual_tokens",
    "peft_type", "prompt_tuning_init", "prompt_tuning_init_state_dict_path",
    "prompt_tuning_init_task", "prompt_tuning_init_text", "revision", "task_type", "token_dim",
    "tokenizer_kwargs", "tokenizer_name_or_path",
    NULL,
};

static const char *const init_values[] = {"TEXT", "RANDOM", "AVERAGE_SOURCE_TASKS",
                                          "EXACT_SOURCE_TASK", "ONLY_SOURCE_SHARED", NULL};

int mpt_config_parse(peft_cfg *cfg, void **out, char *err, size_t errlen)
{
    const peft_pu_cfg pc = {mpt_host, cfg, "multitask prompt tuning config", err, errlen};
    mpt_config c = {0};
    int64_t task;
    if (peft_pu_cfg_begin(&pc, out) || peft_pu_cfg_peft_type(&pc, "MULTITASK_PROMPT_TUNING") ||
        peft_pu_cfg_prompt_fields(&pc, &c.num_virtual_tokens) ||
        peft_pu_cfg_peft_fields(&pc, &c.inference_mode) ||
        peft_pu_cfg_enum(&pc, "prompt_tuning_init", init_values, MPT_INIT_RANDOM, &c.init) ||
        peft_pu_cfg_opt_str(&pc, "prompt_tuning_init_text", NULL) ||
        peft_pu_cfg_opt_str(&pc, "tokenizer_name_or_path", NULL) ||
        peft_pu_cfg_opt_dict(&pc, "tokenizer_kwargs", "null") ||
        peft_pu_cfg_opt_str(&pc, "prompt_tuning_init_state_dict_path", NULL) ||
        peft_pu_cfg_int(&pc, "prompt_tuning_init_task", 0, "an integer", &task) ||
        peft_pu_cfg_pos_int(&pc, "num_tasks", 1, &c.num_tasks) ||
        peft_pu_cfg_pos_int(&pc, "num_ranks", 1, &c.num_ranks))
        return -1;

    /* PromptTuningConfig.__post_init__ */
    const char *tok = mpt_host->cfg_str(cfg, "tokenizer_name_or_path");
    if (c.init == MPT_INIT_TEXT && (!tok || !*tok)) {
        peft_pu_errf(err, errlen, "multitask prompt tuning config: prompt_tuning_init \"TEXT\" "
                     "needs field 'tokenizer_name_or_path' (got %s)", tok ? "\"\"" : "null");
        return -1;
    }
    if (c.init == MPT_INIT_TEXT && !mpt_host->cfg_str(cfg, "prompt_tuning_init_text")) {
        peft_pu_errf(err, errlen, "multitask prompt tuning config: prompt_tuning_init \"TEXT\" "
                     "needs field 'prompt_tuning_init_text' (got null)");
        return -1;
    }
    if (mpt_host->cfg_type(cfg, "tokenizer_kwargs") == PEFT_CFG_DICT && c.init != MPT_INIT_TEXT) {
        peft_pu_errf(err, errlen, "multitask prompt tuning config: field 'tokenizer_kwargs' is "
                     "only valid with prompt_tuning_init \"TEXT\"");
        return -1;
    }
    /* the source-task inits read a trained multitask adapter's file (mpt_source.c); a saved
     * adapter (inference_mode) loads its own values and never reads the source again */
    c.init_task = task;
    if (c.init >= MPT_INIT_AVERAGE_SOURCE_TASKS && !c.inference_mode) {
        const char *path = mpt_host->cfg_str(cfg, "prompt_tuning_init_state_dict_path");
        if (!path || !*path) {
            peft_pu_errf(err, errlen, "multitask prompt tuning config: prompt_tuning_init \"%s\" "
                         "needs field 'prompt_tuning_init_state_dict_path' (got %s)",
                         init_values[c.init], path ? "\"\"" : "null");
            return -1;
        }
        /* PEFT loads (1, R, K) / (1, K, C) factors with load_state_dict(strict=True) */
        if (c.init != MPT_INIT_ONLY_SOURCE_SHARED && c.num_tasks != 1) {
            peft_pu_errf(err, errlen, "multitask prompt tuning config: prompt_tuning_init \"%s\" "
                         "makes one task's factors from the source: field 'num_tasks' must be 1 "
                         "(got %lld; PEFT 0.13.2's strict load_state_dict refuses it too)",
                         init_values[c.init], (long long)c.num_tasks);
            return -1;
        }
    }
    return peft_pu_cfg_finish(&pc, &c, sizeof c, out);
}

void mpt_config_free(void *parsed) { mpt_host->free(parsed); }
