/* ln_tuning_plugin.c — the LN tuning tuner's vtable and the one exported symbol,
 * peft_plugin_init, which checks the host's ABI (1.4: norm sites, op_site_norm) and keeps its
 * service table for the other files (ln_tuning.h). */
#include <stddef.h>

#include "ln_tuning.h"

const peft_host_api *ln_host;

/* Not MIXABLE: PEFT's mixed model does not take LN_TUNING. No set_scale: nothing to scale. */
static const peft_tuner_vtable ln_vtable = {
    PEFT_PU_VTABLE_HEADER,
    .name = "ln_tuning",
    .peft_type = "LN_TUNING",
    .prefix = "ln_tuning_",
    .caps = PEFT_CAP_MERGEABLE,
    .config_keys = ln_config_keys,
    .default_targets = ln_default_targets,
    .config_parse = ln_config_parse,
    .config_free = ln_config_free,
    .inject = ln_inject,
    .forward = ln_forward,
    .merge = ln_merge,
    .destroy = ln_destroy,
    .state_dict = ln_state_dict,
    .module_type = ln_module_type,
    .model_class = "LNTuningModel",
};

static const peft_pu_need ln_needs[] = {
    PEFT_PU_NEED(tensor_to_f32), PEFT_PU_NEED(op_site_norm),
};

PEFT_PLUGIN_EXPORT const peft_tuner_vtable *peft_plugin_init(const peft_host_api *host, char *err,
                                                             size_t errlen)
{
    if (peft_pu_host_check(host, "ln_tuning", 4, ln_needs, PEFT_PU_COUNT(ln_needs), err, errlen))
        return NULL;
    ln_host = host;
    return &ln_vtable;
}
