/* vera_plugin.c — the VeRA tuner's vtable (ABI 1.3: adapter-level state for the shared
 * projections) and the one exported symbol, peft_plugin_init. */
#include <stddef.h>
#include "vera.h"

const peft_host_api *vera_host;

/* MIXABLE is not set: PEFT's mixed model accepts LoRA, LoHa, LoKr, AdaLoRA, OFT only */
static const peft_tuner_vtable vera_vtable = {
    PEFT_PU_VTABLE_HEADER,
    .name = "vera",
    .peft_type = "VERA",
    .prefix = "vera_",
    .caps = PEFT_CAP_MERGEABLE,
    .config_keys = vera_config_keys,
    .default_targets = vera_default_targets,
    .config_parse = vera_config_parse,
    .config_free = vera_config_free,
    .forward = vera_forward,
    .merge = vera_merge,
    .destroy = vera_destroy,
    .state_dict = vera_state_dict,
    .module_type = vera_module_type,
    .model_class = "VeraModel",
    .adapter_init = vera_adapter_init,
    .adapter_destroy = vera_adapter_destroy,
    .inject_in = vera_inject_in,
    .adapter_state_dict = vera_adapter_state_dict,
};

static const peft_pu_need vera_needs[] = {
    PEFT_PU_NEED(sgemm), PEFT_PU_NEED(op_linear), PEFT_PU_NEED(op_add),
    PEFT_PU_NEED(op_mul_lastdim), PEFT_PU_NEED(op_dropout),
};

PEFT_PLUGIN_EXPORT const peft_tuner_vtable *peft_plugin_init(const peft_host_api *host, char *err,
                                                             size_t errlen)
{
    if (peft_pu_host_check(host, "vera", 3, vera_needs, PEFT_PU_COUNT(vera_needs), err, errlen))
        return NULL;
    vera_host = host;
    return &vera_vtable;
}
