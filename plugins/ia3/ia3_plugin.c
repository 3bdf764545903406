/* ia3_plugin.c — the (IA)^3 tuner's vtable and the one exported symbol, peft_plugin_init, which
 * checks the host's ABI and keeps its service table for the other files (ia3.h). */
#include <stddef.h>

#include "ia3.h"

const peft_host_api *ia3_host;

/* Not PEFT_CAP_MIXABLE: PEFT's mixed models accept LoRA, LoHa, LoKr, AdaLoRA and OFT only. */
static const peft_tuner_vtable ia3_vtable = {
    PEFT_PU_VTABLE_HEADER,
    .name = "ia3",
    .peft_type = "IA3",
    .prefix = "ia3_",
    .caps = PEFT_CAP_MERGEABLE | PEFT_CAP_MIXABLE | PEFT_CAP_INPUT_TRANSFORM,
    .config_keys = ia3_config_keys,
    .default_targets = ia3_default_targets,
    .config_parse = ia3_config_parse,
    .config_free = ia3_config_free,
    .inject = ia3_inject,
    .pre_forward = ia3_pre_forward,
    .forward = ia3_forward,
    .merge = ia3_merge,
    .destroy = ia3_destroy,
    .state_dict = ia3_state_dict,
    .module_type = ia3_module_type,
    .model_class = "IA3Model", /* no set_scale: PEFT's IA3Layer has none */
};

/* Every entry this plugin calls is one of the helpers' (ABI 1.0); a regex feedforward_modules
 * also uses regex_fullmatch (ABI 1.2), checked when a config has one (ia3_match.c). */
PEFT_PLUGIN_EXPORT const peft_tuner_vtable *peft_plugin_init(const peft_host_api *host, char *err,
                                                             size_t errlen)
{
    if (peft_pu_host_check(host, "ia3", 0, NULL, 0, err, errlen)) return NULL;
    ia3_host = host;
    return &ia3_vtable;
}
