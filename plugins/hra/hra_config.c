/* hra_config.c — HRAConfig as PEFT 0.13.2 saves it in adapter_config.json: every field,
 * validation and the defaults written back; the default target modules (PEFT's HRA mapping,
 * LoRA's). bias other than "none" needs a trainable, saved base bias, which the plugin ABI does
 * not offer yet: refused with a message saying so. */
#include <string.h>

#include "hra.h"
#include "peft/plugin_config.h"
#include "peft/plugin_targets.h"

/* HRAConfig 0.13.2 (+ PeftConfig fields) */
const char *const hra_config_keys[] = {
    "apply_GS", "auto_mapping", "base_model_name_or_path", "bias", "inference_mode",
    "init_weights", "layers_pattern", "layers_to_transform", "modules_to_save", "peft_type", "r",
    "revision", "target_modules", "task_type", NULL,
};

static const char *const bias_values[] = {"none", "all", "hra_only", NULL};

int hra_config_parse(peft_cfg *cfg, void **out, char *err, size_t errlen)
{
    const peft_pu_cfg pc = {hra_host, cfg, "hra config", err, errlen};
    hra_config c = {0};
    int bias = 0;
    if (peft_pu_cfg_begin(&pc, out) || peft_pu_cfg_peft_type(&pc, "HRA") ||
        peft_pu_cfg_pos_int(&pc, "r", 8, &c.r) ||
        peft_pu_cfg_bool(&pc, "apply_GS", 0, &c.apply_gs) ||
        peft_pu_cfg_bool(&pc, "init_weights", 1, &c.init_weights) ||
        peft_pu_cfg_enum(&pc, "bias", bias_values, 0, &bias))
        return -1;
    if (bias != 0) {
        peft_pu_errf(err, errlen, "hra config: field 'bias' is \"%s\": a trainable base bias is "
                     "not supported by this plugin yet; use \"none\"", bias_values[bias]);
        return -1;
    }
    if (peft_pu_cfg_peft_fields(&pc, NULL) || peft_pu_cfg_module_fields(&pc, 1)) return -1;
    return peft_pu_cfg_finish(&pc, &c, sizeof c, out);
}

void hra_config_free(void *parsed) { hra_host->free(parsed); }

/* PEFT 0.13.2's HRA model reads TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING */
const char *const *hra_default_targets(const char *model_type)
{
    return peft_pu_lora_targets(model_type);
}
