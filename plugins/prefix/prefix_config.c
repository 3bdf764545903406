/* prefix_config.c — PrefixTuningConfig as PEFT 0.13.2 saves it in adapter_config.json: the
 * field list, validation (errors name the field, the value and what is allowed) and the
 * defaults written back so that a saved config has PEFT's exact field set.
 *
 * token_dim, num_transformer_submodules, num_attention_heads and num_layers are filled by the
 * host from the model's config.json before parsing (PEFT's _prepare_prompt_learning_config);
 * encoder_hidden_size (default: token_dim after the grouped-query adjustment) is filled at
 * prompt_init, where the model is known. */
#include "prefix.h"
#include "peft/plugin_config.h"

/* Every field of PrefixTuningConfig 0.13.2 (PeftConfig + PromptLearningConfig + its own). */
const char *const prefix_config_keys[] = {
    "auto_mapping", "base_model_name_or_path", "encoder_hidden_size", "inference_mode",
    "num_attention_heads", "num_layers", "num_transformer_submodules", "num_virtual_tokens",
    "peft_type", "prefix_projection", "revision", "task_type", "token_dim",
    NULL,
};

int prefix_config_parse(peft_cfg *cfg, void **out, char *err, size_t errlen)
{
    const peft_pu_cfg pc = {prefix_host, cfg, "prefix tuning config", err, errlen};
    prefix_config c = {0};
    int64_t v;
    /* encoder_hidden_size: left missing, filled at prompt_init (default token_dim) */
    if (peft_pu_cfg_begin(&pc, out) || peft_pu_cfg_peft_type(&pc, "PREFIX_TUNING") ||
        peft_pu_cfg_prompt_fields(&pc, &c.num_virtual_tokens) ||
        peft_pu_cfg_opt_pos_int(&pc, "encoder_hidden_size", 0, &v) ||
        peft_pu_cfg_bool(&pc, "prefix_projection", 0, &c.prefix_projection) ||
        peft_pu_cfg_peft_fields(&pc, &c.inference_mode))
        return -1;
    return peft_pu_cfg_finish(&pc, &c, sizeof c, out);
}

void prefix_config_free(void *parsed) { prefix_host->free(parsed); }
