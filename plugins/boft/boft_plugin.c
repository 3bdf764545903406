/* boft_plugin.c — the BOFT tuner's vtable and the one exported symbol, peft_plugin_init, which
 * checks the host's ABI and keeps its service table for the other files (boft.h). */
#include <stddef.h>

#include "boft.h"

const peft_host_api *boft_host;

/* Not MIXABLE: PEFT's mixed model does not take BOFT. No set_scale: BOFT has no scaling. */
static const peft_tuner_vtable boft_vtable = {
    PEFT_PU_VTABLE_HEADER,
    .name = "boft",
    .peft_type = "BOFT",
    .prefix = "boft_",
    .caps = PEFT_CAP_MERGEABLE,
    .config_keys = boft_config_keys,
    .default_targets = boft_default_targets,
    .config_parse = boft_config_parse,
    .config_free = boft_config_free,
    .inject = boft_inject,
    .forward = boft_forward,
    .merge = boft_merge,
    .destroy = boft_destroy,
    .state_dict = boft_state_dict,
    .module_type = boft_module_type,
    .model_class = "BOFTModel",
};

static const peft_pu_need boft_needs[] = {
    PEFT_PU_NEED(graph_training), PEFT_PU_NEED(graph_rng), PEFT_PU_NEED(sgemm),
    PEFT_PU_NEED(tensor_to_f32), PEFT_PU_NEED(op_linear),
};

PEFT_PLUGIN_EXPORT const peft_tuner_vtable *peft_plugin_init(const peft_host_api *host, char *err,
                                                             size_t errlen)
{
    if (peft_pu_host_check(host, "boft", 2, boft_needs, PEFT_PU_COUNT(boft_needs), err, errlen))
        return NULL;
    boft_host = host;
    return &boft_vtable;
}
