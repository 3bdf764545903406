/* pt_config.c — PromptEncoderConfig (P-tuning) as PEFT 0.13.2 saves it in adapter_config.json:
 * the field list, validation (errors name the field, the value and what is allowed) and the
 * defaults written back so that a saved config has PEFT's exact field set.
 *
 * token_dim, num_transformer_submodules, num_attention_heads and num_layers are filled by the
 * host from the model's config.json before parsing (PEFT's _prepare_prompt_learning_config);
 * encoder_hidden_size (default token_dim) is filled at prompt_init. */
#include "p_tuning.h"
#include "peft/plugin_config.h"

/* Every field of PromptEncoderConfig 0.13.2 (PeftConfig + PromptLearningConfig + its own). */
const char *const pt_config_keys[] = {
    "auto_mapping", "base_model_name_or_path", "encoder_dropout", "encoder_hidden_size",
    "encoder_num_layers", "encoder_reparameterization_type", "inference_mode",
    "num_attention_heads", "num_layers", "num_transformer_submodules", "num_virtual_tokens",
    "peft_type", "revision", "task_type", "token_dim",
    NULL,
};

static const char *const types[] = {"MLP", "LSTM", NULL};

int pt_config_parse(peft_cfg *cfg, void **out, char *err, size_t errlen)
{
    const peft_pu_cfg pc = {pt_host, cfg, "p-tuning config", err, errlen};
    pt_config c = {0};
    int64_t v;
    if (peft_pu_cfg_begin(&pc, out) || peft_pu_cfg_peft_type(&pc, "P_TUNING") ||
        peft_pu_cfg_prompt_fields(&pc, &c.num_virtual_tokens) ||
        peft_pu_cfg_enum(&pc, "encoder_reparameterization_type", types, PT_MLP, &c.type) ||
        peft_pu_cfg_opt_pos_int(&pc, "encoder_hidden_size", 0, &v) ||
        peft_pu_cfg_pos_int(&pc, "encoder_num_layers", 2, &c.num_layers) ||
        peft_pu_cfg_prob(&pc, "encoder_dropout", 0, &c.dropout) ||
        peft_pu_cfg_peft_fields(&pc, &c.inference_mode))
        return -1;
    if (c.type == PT_LSTM && c.num_layers > PT_MAX_LSTM_LAYERS) {
        peft_pu_errf(err, errlen, "p-tuning config: field 'encoder_num_layers' is %lld; at most "
                     "%d LSTM layers", (long long)c.num_layers, PT_MAX_LSTM_LAYERS);
        return -1;
    }
    if (c.type == PT_MLP && c.num_layers != 2) /* PEFT warns and builds its 3 linears anyway */
        pt_host->warn("p-tuning: for MLP, the argument `encoder_num_layers` is ignored. Number "
                      "of layers is 2.");
    return peft_pu_cfg_finish(&pc, &c, sizeof c, out);
}

void pt_config_free(void *parsed) { pt_host->free(parsed); }
