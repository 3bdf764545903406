/* boft_config.c — BOFTConfig as PEFT 0.13.2 saves it in adapter_config.json: every field,
 * validation and the defaults written back; default target modules (PEFT's BOFT mapping, the
 * LoRA one). bias other than "none" needs a trainable, saved base bias, which the plugin ABI
 * does not offer yet: refused with a message saying so. */
#include <string.h>

#include "boft.h"
#include "peft/plugin_config.h"
#include "peft/plugin_targets.h"

/* BOFTConfig 0.13.2 (+ PeftConfig fields) */
const char *const boft_config_keys[] = {
    "auto_mapping", "base_model_name_or_path", "bias", "boft_block_num", "boft_block_size",
    "boft_dropout", "boft_n_butterfly_factor", "fan_in_fan_out", "inference_mode",
    "init_weights", "layers_pattern", "layers_to_transform", "modules_to_save", "peft_type",
    "revision", "target_modules", "task_type", NULL,
};

static const char *const bias_values[] = {"none", "all", "boft_only", NULL};

int boft_config_parse(peft_cfg *cfg, void **out, char *err, size_t errlen)
{
    const peft_pu_cfg pc = {boft_host, cfg, "boft config", err, errlen};
    boft_config c = {0};
    int bias = 0;
    if (peft_pu_cfg_begin(&pc, out) || peft_pu_cfg_peft_type(&pc, "BOFT") ||
        peft_pu_cfg_int(&pc, "boft_block_size", 4, "a non-negative integer", &c.block_size) ||
        peft_pu_cfg_int(&pc, "boft_block_num", 0, "a non-negative integer", &c.block_num) ||
        peft_pu_cfg_pos_int(&pc, "boft_n_butterfly_factor", 1, &c.n_factors) ||
        peft_pu_cfg_prob(&pc, "boft_dropout", 0, &c.dropout) ||
        peft_pu_cfg_bool(&pc, "fan_in_fan_out", 0, NULL) ||
        peft_pu_cfg_bool(&pc, "init_weights", 1, &c.init_weights) ||
        peft_pu_cfg_enum(&pc, "bias", bias_values, 0, &bias))
        return -1;
    if (c.block_size < 0 || c.block_num < 0) {
        peft_pu_errf(err, errlen, "boft config: fields 'boft_block_size' and 'boft_block_num' "
                     "must be non-negative, got %lld and %lld", (long long)c.block_size,
                     (long long)c.block_num);
        return -1;
    }
    if ((c.block_size == 0) == (c.block_num == 0)) {
        peft_pu_errf(err, errlen, c.block_size ? "boft config: You can only specify either "
                     "boft_block_size or boft_block_num, but not both simultaneously."
                     : "boft config: You must specify either boft_block_size or "
                     "boft_block_num.");
        return -1;
    }
    if (bias != 0) {
        peft_pu_errf(err, errlen, "boft config: field 'bias' is \"%s\": a trainable base bias is "
                     "not supported by this plugin yet; use \"none\"", bias_values[bias]);
        return -1;
    }
    if (peft_pu_cfg_peft_fields(&pc, NULL) || peft_pu_cfg_module_fields(&pc, 1)) return -1;
    return peft_pu_cfg_finish(&pc, &c, sizeof c, out);
}

void boft_config_free(void *parsed) { boft_host->free(parsed); }

/* PEFT 0.13.2's BOFT model reads TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING */
const char *const *boft_default_targets(const char *model_type)
{
    return peft_pu_lora_targets(model_type);
}
