/* ln_tuning_config.c — LNTuningConfig as PEFT 0.13.2 saves it in adapter_config.json (only
 * PeftConfig's fields, target_modules and modules_to_save), and PEFT's default target modules
 * per model type (TRANSFORMERS_MODELS_TO_LNTUNING_TARGET_MODULES_MAPPING). */
#include <string.h>

#include "ln_tuning.h"
#include "peft/plugin_config.h"

/* LNTuningConfig 0.13.2 (+ PeftConfig fields); exclude_modules (newer PEFT) is accepted */
const char *const ln_config_keys[] = {
    "auto_mapping", "base_model_name_or_path", "exclude_modules", "inference_mode",
    "modules_to_save", "peft_type", "revision", "target_modules", "task_type", NULL,
};

typedef struct ln_config {
    int unused;
} ln_config;

int ln_config_parse(peft_cfg *cfg, void **out, char *err, size_t errlen)
{
    const peft_pu_cfg pc = {ln_host, cfg, "ln_tuning config", err, errlen};
    ln_config c = {0};
    if (peft_pu_cfg_begin(&pc, out) || peft_pu_cfg_peft_type(&pc, "LN_TUNING") ||
        peft_pu_cfg_peft_fields(&pc, NULL) || peft_pu_cfg_module_fields(&pc, 0))
        return -1;
    return peft_pu_cfg_finish(&pc, &c, sizeof c, out);
}

void ln_config_free(void *parsed) { ln_host->free(parsed); }

static const char *const llama_t[] = {"input_layernorm", "post_attention_layernorm", "norm", NULL};
static const char *const gemma2_t[] = {"input_layernorm", "post_attention_layernorm",
                                       "pre_feedforward_layernorm", "post_feedforward_layernorm",
                                       "norm", NULL};
static const char *const qwen2_t[] = {"post_attention_layernorm", NULL};
static const char *const gpt2_t[] = {"ln_1", "ln_2", "ln_f", NULL};
static const char *const t5_t[] = {"layer_norm", "final_layer_norm", NULL};

const char *const *ln_default_targets(const char *model_type)
{
    if (!model_type) return NULL;
    if (!strcmp(model_type, "llama") || !strcmp(model_type, "mistral") ||
        !strcmp(model_type, "gemma"))
        return llama_t;
    if (!strcmp(model_type, "gemma2")) return gemma2_t;
    if (!strcmp(model_type, "qwen2")) return qwen2_t;
    if (!strcmp(model_type, "gpt2")) return gpt2_t;
    if (!strcmp(model_type, "t5")) return t5_t;
    return NULL; /* bert, phi3: give target_modules (BERT's norms are "LayerNorm") */
}
