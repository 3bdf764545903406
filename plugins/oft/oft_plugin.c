/* oft_plugin.c — the OFT tuner's vtable and the one exported symbol, peft_plugin_init, which
 * checks the host's ABI and keeps its service table for the other files (oft.h). */
#include <stddef.h>

#include "oft.h"

const peft_host_api *oft_host;

/* No default_targets: PEFT 0.13.2 asks for target_modules. MIXABLE: OFT is one of the tuner
 * types PEFT's mixed model accepts; it rotates what the adapters before it gave (y - bias), as
 * PEFT's nesting does. No set_scale: OFT has no scaling to multiply. */
static const peft_tuner_vtable oft_vtable = {
    PEFT_PU_VTABLE_HEADER,
    .name = "oft",
    .peft_type = "OFT",
    .prefix = "oft_",
    /* STRAIGHT_THROUGH: with coft the forward projects oft_r in place and the backward is the
     * gradient at the projected value (PEFT's no_grad copy_), not the derivative of forward */
    .caps = PEFT_CAP_MERGEABLE | PEFT_CAP_MIXABLE | PEFT_CAP_STRAIGHT_THROUGH,
    .config_keys = oft_config_keys,
    .config_parse = oft_config_parse,
    .config_free = oft_config_free,
    .inject = oft_inject,
    .forward = oft_forward,
    .merge = oft_merge,
    .destroy = oft_destroy,
    .state_dict = oft_state_dict,
    .module_type = oft_module_type,
    .model_class = "OFTModel",
};

static const peft_pu_need oft_needs[] = {
    PEFT_PU_NEED(graph_training), PEFT_PU_NEED(graph_rng), PEFT_PU_NEED(sgemm),
    PEFT_PU_NEED(tensor_to_f32), PEFT_PU_NEED(cfg_pattern_real_lycoris),
};

PEFT_PLUGIN_EXPORT const peft_tuner_vtable *peft_plugin_init(const peft_host_api *host, char *err,
                                                             size_t errlen)
{
    if (peft_pu_host_check(host, "oft", 2, oft_needs, PEFT_PU_COUNT(oft_needs), err, errlen))
        return NULL;
    oft_host = host;
    return &oft_vtable;
}
