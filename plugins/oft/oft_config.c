/* oft_config.c — OFTConfig as PEFT 0.13.2 saves it in adapter_config.json: every field,
 * validation (errors name the field and what is allowed) and the defaults written back, so a
 * saved config has PEFT's exact field set. PEFT has no default target modules for OFT. */
#include "oft.h"
#include "peft/plugin_config.h"

/* OFTConfig 0.13.2 (LycorisConfig + PeftConfig fields) */
const char *const oft_config_keys[] = {
    "alpha_pattern", "auto_mapping", "base_model_name_or_path", "block_share", "coft", "eps",
    "inference_mode", "init_weights", "layers_pattern", "layers_to_transform", "module_dropout",
    "modules_to_save", "peft_type", "r", "rank_pattern", "revision", "target_modules",
    "task_type", NULL,
};

int oft_config_parse(peft_cfg *cfg, void **out, char *err, size_t errlen)
{
    const peft_pu_cfg pc = {oft_host, cfg, "oft config", err, errlen};
    oft_config c = {0};
    if (peft_pu_cfg_begin(&pc, out) || peft_pu_cfg_peft_type(&pc, "OFT") ||
        peft_pu_cfg_pos_int(&pc, "r", 8, &c.r) ||
        peft_pu_cfg_prob(&pc, "module_dropout", 0, &c.module_dropout) ||
        peft_pu_cfg_bool(&pc, "init_weights", 1, &c.init_weights) ||
        peft_pu_cfg_bool(&pc, "coft", 0, &c.coft) ||
        peft_pu_cfg_real(&pc, "eps", 6e-5, 0, &c.eps) ||
        peft_pu_cfg_bool(&pc, "block_share", 0, &c.block_share))
        return -1;
    if (!(c.eps > 0)) {
        peft_pu_errf(err, errlen, "oft config: field 'eps' must be a positive number, got %g", c.eps);
        return -1;
    }
    if (peft_pu_cfg_peft_fields(&pc, NULL) || peft_pu_cfg_module_fields(&pc, 1) ||
        peft_pu_cfg_opt_dict(&pc, "rank_pattern", "{}") ||
        peft_pu_cfg_opt_dict(&pc, "alpha_pattern", "{}"))
        return -1;
    return peft_pu_cfg_finish(&pc, &c, sizeof c, out);
}

void oft_config_free(void *parsed) { oft_host->free(parsed); }
