/* adalora_plugin.c — the AdaLoRA tuner's vtable (ABI 1.3: adapter-level state for the rank
 * allocator, loss_term, step_end, loaded) and the one exported symbol, peft_plugin_init. */
#include <stddef.h>
#include "adalora.h"

const peft_host_api *ada_host;

/* MIXABLE: AdaLoRA is one of the tuner types PEFT's mixed model accepts */
static const peft_tuner_vtable ada_vtable = {
    PEFT_PU_VTABLE_HEADER,
    .name = "adalora",
    .peft_type = "ADALORA",
    .prefix = "lora_",
    .caps = PEFT_CAP_MERGEABLE | PEFT_CAP_MIXABLE,
    .config_keys = ada_config_keys,
    .default_targets = ada_default_targets,
    .config_parse = ada_config_parse,
    .config_free = ada_config_free,
    .forward = ada_forward,
    .merge = ada_merge,
    .destroy = ada_destroy,
    .state_dict = ada_state_dict,
    .module_type = ada_module_type,
    .model_class = "AdaLoraModel",
    .adapter_init = ada_adapter_init,
    .adapter_destroy = ada_adapter_destroy,
    .inject_in = ada_inject_in,
    .loss_term = ada_loss_term,
    .step_end = ada_step_end,
    .loaded = ada_loaded,
};

static const peft_pu_need ada_needs[] = {
    PEFT_PU_NEED(sgemm),       PEFT_PU_NEED(op_linear),       PEFT_PU_NEED(op_add),
    PEFT_PU_NEED(op_scale),    PEFT_PU_NEED(op_mul_lastdim),  PEFT_PU_NEED(op_dropout),
    PEFT_PU_NEED(cfg_get_json), PEFT_PU_NEED(graph_set_error),
};

PEFT_PLUGIN_EXPORT const peft_tuner_vtable *peft_plugin_init(const peft_host_api *host, char *err,
                                                             size_t errlen)
{
    if (peft_pu_host_check(host, "adalora", 3, ada_needs, PEFT_PU_COUNT(ada_needs), err, errlen))
        return NULL;
    ada_host = host;
    return &ada_vtable;
}
