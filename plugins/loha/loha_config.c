/* loha_config.c — LoHaConfig as PEFT 0.13.2 saves it in adapter_config.json: the field list,
 * validation (errors name the field, the value and what is allowed) and the defaults written
 * back so that a saved config has PEFT's exact field set. LoHa has no default target_modules
 * (PEFT's LycorisTuner raises "Please specify `target_modules`"), so the vtable has none. */
#include "loha.h"
#include "peft/plugin_config.h"

/* Every field of LoHaConfig 0.13.2 (plus exclude_modules and runtime_config from newer PEFT,
 * accepted when loading an adapter saved by a newer version; never written by default). */
const char *const loha_config_keys[] = {
    "alpha", "alpha_pattern", "auto_mapping", "base_model_name_or_path", "inference_mode",
    "init_weights", "layers_pattern", "layers_to_transform", "module_dropout",
    "modules_to_save", "peft_type", "r", "rank_dropout", "rank_pattern", "revision",
    "target_modules", "task_type", "use_effective_conv2d",
    "exclude_modules", "runtime_config",
    NULL,
};

int loha_config_parse(peft_cfg *cfg, void **out, char *err, size_t errlen)
{
    const peft_pu_cfg pc = {loha_host, cfg, "loha config", err, errlen};
    loha_config c = {.r = 8, .alpha = 8.0, .init_weights = 1};
    int conv2d = 0;
    /* r > 0: PEFT's update_layer raises for r <= 0. alpha: saved as the integer 8 by default.
     * rank_dropout keeps rows with probability 1 - p and rescales by their mean: p = 1 would
     * drop them all (PEFT then divides by zero); module_dropout = 1 just never applies LoHa. */
    if (peft_pu_cfg_begin(&pc, out) || peft_pu_cfg_peft_type(&pc, "LOHA") ||
        peft_pu_cfg_pos_int(&pc, "r", 8, &c.r) ||
        peft_pu_cfg_real(&pc, "alpha", 8, 1, &c.alpha) ||
        peft_pu_cfg_prob(&pc, "rank_dropout", 0, &c.rank_dropout) ||
        peft_pu_cfg_prob(&pc, "module_dropout", 1, &c.module_dropout) ||
        peft_pu_cfg_bool(&pc, "init_weights", 1, &c.init_weights) ||
        peft_pu_cfg_bool(&pc, "use_effective_conv2d", 0, &conv2d))
        return -1;
    if (conv2d) {
        peft_pu_errf(err, errlen, "loha config: use_effective_conv2d true applies to Conv2d "
                     "layers with a kernel > 1x1, which libpeft's models do not have (allowed "
                     "value: false)");
        return -1;
    }
    if (peft_pu_cfg_opt_dict(&pc, "rank_pattern", "{}") ||
        peft_pu_cfg_opt_dict(&pc, "alpha_pattern", "{}") ||
        peft_pu_cfg_opt_dict(&pc, "runtime_config", NULL) ||
        peft_pu_cfg_peft_fields(&pc, NULL) || peft_pu_cfg_module_fields(&pc, 1))
        return -1;
    return peft_pu_cfg_finish(&pc, &c, sizeof c, out);
}

void loha_config_free(void *parsed)
{
    loha_host->free(parsed);
}
