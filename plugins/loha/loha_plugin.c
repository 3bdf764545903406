/* loha_plugin.c — the LoHa tuner's vtable and the one exported symbol, peft_plugin_init, which
 * checks the host's ABI and keeps its service table for the other files (loha.h). */
#include <stddef.h>

#include "loha.h"

const peft_host_api *loha_host;

/* No default_targets: PEFT's LycorisTuner has no per-model mapping and asks for
 * target_modules. MIXABLE: LoHa is one of the tuner types PEFT's mixed models accept. */
static const peft_tuner_vtable loha_vtable = {
    PEFT_PU_VTABLE_HEADER,
    .name = "loha",
    .peft_type = "LOHA",
    .prefix = "hada_",
    .caps = PEFT_CAP_MERGEABLE | PEFT_CAP_MIXABLE,
    .config_keys = loha_config_keys,
    .config_parse = loha_config_parse,
    .config_free = loha_config_free,
    .inject = loha_inject,
    .forward = loha_forward,
    .merge = loha_merge,
    .destroy = loha_destroy,
    .state_dict = loha_state_dict,
    .module_type = loha_module_type,
    .set_scale = loha_set_scale,
    .model_class = "LoHaModel",
};

/* the host entries this plugin needs beyond the helpers'; the LyCORIS pattern rule makes it an
 * ABI 1.2 plugin */
static const peft_pu_need loha_needs[] = {
    PEFT_PU_NEED(graph_training), PEFT_PU_NEED(graph_rng), PEFT_PU_NEED(sgemm),
    PEFT_PU_NEED(cfg_pattern_real_lycoris),
};

PEFT_PLUGIN_EXPORT const peft_tuner_vtable *peft_plugin_init(const peft_host_api *host, char *err,
                                                             size_t errlen)
{
    if (peft_pu_host_check(host, "loha", 2, loha_needs, PEFT_PU_COUNT(loha_needs), err, errlen))
        return NULL;
    loha_host = host;
    return &loha_vtable;
}
