/* lokr_plugin.c — the LoKr plugin's vtable and its one exported symbol. */
#include <stddef.h>

#include "lokr.h"

const peft_host_api *lokr_host;

static const peft_tuner_vtable lokr_vtable = {
    PEFT_PU_VTABLE_HEADER,
    .name = "lokr",
    .peft_type = "LOKR",
    .prefix = "lokr_",
    .caps = PEFT_CAP_MERGEABLE | PEFT_CAP_MIXABLE,
    .config_keys = lokr_config_keys,
    .default_targets = lokr_default_targets,
    .config_parse = lokr_config_parse,
    .config_free = lokr_config_free,
    .inject = lokr_inject,
    .forward = lokr_forward,
    .merge = lokr_merge,
    .destroy = lokr_destroy,
    .state_dict = lokr_state_dict,
    .module_type = lokr_module_type,
    .set_scale = lokr_set_scale,
    .model_class = "LoKrModel",
};

/* beyond the helpers' entries: the graph's mode and RNG, the GEMM, and (ABI 1.2) the LyCORIS
 * rank_pattern rule */
static const peft_pu_need lokr_needs[] = {
    PEFT_PU_NEED(graph_training), PEFT_PU_NEED(graph_rng), PEFT_PU_NEED(sgemm),
    PEFT_PU_NEED(cfg_pattern_real_lycoris),
};

PEFT_PLUGIN_EXPORT const peft_tuner_vtable *peft_plugin_init(const peft_host_api *host,
                                                             char *err, size_t errlen)
{
    if (peft_pu_host_check(host, "lokr", 2, lokr_needs, PEFT_PU_COUNT(lokr_needs), err, errlen))
        return NULL;
    lokr_host = host;
    return &lokr_vtable;
}
