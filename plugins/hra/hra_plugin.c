/* hra_plugin.c — the HRA tuner's vtable and the one exported symbol, peft_plugin_init, which
 * checks the host's ABI and keeps its service table for the other files (hra.h). */
#include <stddef.h>

#include "hra.h"

const peft_host_api *hra_host;

/* Not MIXABLE: PEFT's mixed model does not take HRA. No set_scale: HRA has no scaling. */
static const peft_tuner_vtable hra_vtable = {
    PEFT_PU_VTABLE_HEADER,
    .name = "hra",
    .peft_type = "HRA",
    .prefix = "hra_",
    .caps = PEFT_CAP_MERGEABLE,
    .config_keys = hra_config_keys,
    .default_targets = hra_default_targets,
    .config_parse = hra_config_parse,
    .config_free = hra_config_free,
    .inject = hra_inject,
    .forward = hra_forward,
    .merge = hra_merge,
    .destroy = hra_destroy,
    .state_dict = hra_state_dict,
    .module_type = hra_module_type,
    .model_class = "HRAModel",
};

static const peft_pu_need hra_needs[] = {
    PEFT_PU_NEED(op_linear), PEFT_PU_NEED(op_add),
};

PEFT_PLUGIN_EXPORT const peft_tuner_vtable *peft_plugin_init(const peft_host_api *host, char *err,
                                                             size_t errlen)
{
    if (peft_pu_host_check(host, "hra", 2, hra_needs, PEFT_PU_COUNT(hra_needs), err, errlen))
        return NULL;
    hra_host = host;
    return &hra_vtable;
}
