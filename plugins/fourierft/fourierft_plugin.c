/* fourierft_plugin.c — the FourierFT tuner's vtable and the one exported symbol,
 * peft_plugin_init, which checks the host's ABI and keeps its table (fourierft.h). */
#include <stddef.h>

#include "fourierft.h"

const peft_host_api *fourierft_host;

/* Not MIXABLE: PEFT's mixed model does not take FourierFT. No set_scale (PEFT has none). */
static const peft_tuner_vtable fourierft_vtable = {
    PEFT_PU_VTABLE_HEADER,
    .name = "fourierft",
    .peft_type = "FOURIERFT",
    .prefix = "fourierft_",
    .caps = PEFT_CAP_MERGEABLE,
    .config_keys = fourierft_config_keys,
    .default_targets = fourierft_default_targets,
    .config_parse = fourierft_config_parse,
    .config_free = fourierft_config_free,
    .inject = fourierft_inject,
    .forward = fourierft_forward,
    .merge = fourierft_merge,
    .destroy = fourierft_destroy,
    .state_dict = fourierft_state_dict,
    .module_type = fourierft_module_type,
    .model_class = "FourierFTModel",
};

static const peft_pu_need fourierft_needs[] = {
    PEFT_PU_NEED(sgemm), PEFT_PU_NEED(cfg_pattern_real_lycoris),
};

PEFT_PLUGIN_EXPORT const peft_tuner_vtable *peft_plugin_init(const peft_host_api *host, char *err,
                                                             size_t errlen)
{
    if (peft_pu_host_check(host, "fourierft", 2, fourierft_needs, PEFT_PU_COUNT(fourierft_needs),
                           err, errlen))
        return NULL;
    fourierft_host = host;
    return &fourierft_vtable;
}
