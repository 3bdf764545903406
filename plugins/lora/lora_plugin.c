/* lora_plugin.c — the LoRA tuner's vtable and the one exported symbol, peft_plugin_init, which
 * checks the host's ABI and keeps its service table for the other files (lora.h). */
#include <stddef.h>

#include "lora.h"

const peft_host_api *lora_host;

static const peft_tuner_vtable lora_vtable = {
    PEFT_PU_VTABLE_HEADER,
    .name = "lora",
    .peft_type = "LORA",
    .prefix = "lora_",
    .caps = PEFT_CAP_MERGEABLE | PEFT_CAP_MIXABLE,
    .config_keys = lora_config_keys,
    .default_targets = lora_default_targets,
    .config_parse = lora_config_parse,
    .config_free = lora_config_free,
    .inject = lora_inject,
    .forward = lora_forward,
    .merge = lora_merge,
    .destroy = lora_destroy,
    .state_dict = lora_state_dict,
    .module_type = lora_module_type,
    .set_scale = lora_set_scale,
    .model_class = "LoraModel",
    .combine = lora_combine,
    .combine_config = lora_combine_config,
    .convert_config = lora_convert_config,
    .convert_tensor = lora_convert_tensor,
};

/* the host entries this plugin needs beyond the helpers' (all ABI 1.0); PiSSA/OLoRA and the
 * svd combinations also use the ABI 1.1 linear algebra, checked when asked for */
static const peft_pu_need lora_needs[] = {
    PEFT_PU_NEED(tensor_to_f32), PEFT_PU_NEED(graph_training), PEFT_PU_NEED(op_dropout),
    PEFT_PU_NEED(sgemm), PEFT_PU_NEED(cfg_pattern_real),
};

PEFT_PLUGIN_EXPORT const peft_tuner_vtable *peft_plugin_init(const peft_host_api *host, char *err,
                                                             size_t errlen)
{
    if (peft_pu_host_check(host, "lora", 0, lora_needs, PEFT_PU_COUNT(lora_needs), err, errlen))
        return NULL;
    lora_host = host;
    return &lora_vtable;
}
