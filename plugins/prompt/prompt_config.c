/* prompt_config.c — PromptTuningConfig as PEFT 0.13.2 saves it in adapter_config.json: the
 * field list, validation (errors name the field, the value and what is allowed) and the
 * defaults written back so that a saved config has PEFT's exact field set.
 *
 * token_dim, num_transformer_submodules, num_attention_heads and num_layers are filled by the
 * host from the model's config.json before parsing (PEFT's _prepare_prompt_learning_config);
 * here they only have to be null or positive integers. */
#include "prompt.h"
#include "peft/plugin_config.h"

/* Every field of PromptTuningConfig 0.13.2 (PeftConfig + PromptLearningConfig + its own). */
const char *const prompt_config_keys[] = {
    "auto_mapping", "base_model_name_or_path", "inference_mode", "num_attention_heads",
    "num_layers", "num_transformer_submodules", "num_virtual_tokens", "peft_type",
    "prompt_tuning_init", "prompt_tuning_init_text", "revision", "task_type", "token_dim",
    "tokenizer_kwargs", "tokenizer_name_or_path",
    NULL,
};

static const char *const init_values[] = {"RANDOM", "SAMPLE_VOCAB", "TEXT", NULL};

int prompt_config_parse(peft_cfg *cfg, void **out, char *err, size_t errlen)
{
    const peft_pu_cfg pc = {prompt_host, cfg, "prompt tuning config", err, errlen};
    prompt_config c = {0};
    if (peft_pu_cfg_begin(&pc, out) || peft_pu_cfg_peft_type(&pc, "PROMPT_TUNING") ||
        peft_pu_cfg_prompt_fields(&pc, &c.num_virtual_tokens))
        return -1;
    /* init: PROMPT_INIT_* is the position in init_values */
    if (peft_pu_cfg_peft_fields(&pc, &c.inference_mode) ||
        peft_pu_cfg_enum(&pc, "prompt_tuning_init", init_values, PROMPT_INIT_RANDOM, &c.init) ||
        peft_pu_cfg_opt_str(&pc, "prompt_tuning_init_text", NULL) ||
        peft_pu_cfg_opt_str(&pc, "tokenizer_name_or_path", NULL) ||
        peft_pu_cfg_opt_dict(&pc, "tokenizer_kwargs", "null"))
        return -1;

    /* PromptTuningConfig.__post_init__ */
    const char *tok = prompt_host->cfg_str(cfg, "tokenizer_name_or_path");
    if (c.init == PROMPT_INIT_TEXT && (!tok || !*tok)) {
        peft_pu_errf(err, errlen, "prompt tuning config: prompt_tuning_init \"TEXT\" needs "
                     "field 'tokenizer_name_or_path' (got %s)", tok ? "\"\"" : "null");
        return -1;
    }
    if (c.init == PROMPT_INIT_TEXT && !prompt_host->cfg_str(cfg, "prompt_tuning_init_text")) {
        peft_pu_errf(err, errlen, "prompt tuning config: prompt_tuning_init \"TEXT\" needs "
                     "field 'prompt_tuning_init_text' (got null)");
        return -1;
    }
    if (prompt_host->cfg_type(cfg, "tokenizer_kwargs") == PEFT_CFG_DICT &&
        c.init != PROMPT_INIT_TEXT) {
        peft_pu_errf(err, errlen, "prompt tuning config: field 'tokenizer_kwargs' is only valid "
                     "with prompt_tuning_init \"TEXT\"");
        return -1;
    }
    /* TEXT: prompt_init tokenizes prompt_tuning_init_text through the host's tokenizer
     * (peft_prompt_info.tokenize, ABI 1.4) */

    return peft_pu_cfg_finish(&pc, &c, sizeof c, out);
}

void prompt_config_free(void *parsed) { prompt_host->free(parsed); }
