/* prefix_plugin.c — the prefix-tuning tuner's vtable (a prompt-learning method: it acts through
 * the model's attention-prefix hook, never on linear sites) and the one exported symbol,
 * peft_plugin_init, which checks the host's ABI and keeps its service table (prefix.h). */
#include <stddef.h>

#include "prefix.h"

const peft_host_api *prefix_host;

/* no inject / forward / merge: the ABI 1.1 prompt-learning entries instead */
static const peft_tuner_vtable prefix_vtable = {
    PEFT_PU_VTABLE_HEADER,
    .name = "prefix",
    .peft_type = "PREFIX_TUNING",
    .prefix = "prompt_embeddings",
    .caps = PEFT_CAP_PROMPT_LEARNING,
    .config_keys = prefix_config_keys,
    .config_parse = prefix_config_parse,
    .config_free = prefix_config_free,
    .destroy = prefix_destroy,
    .state_dict = prefix_state_dict,
    .module_type = prefix_module_type,
    .model_class = "PrefixEncoder",
    .prompt_init = prefix_init,
    .prefix_kv = prefix_kv,
    .prompt_to_save = prefix_to_save,
    .prompt_load = prefix_load,
    .prompt_num_virtual = prefix_num_virtual,
};

/* the host entries this plugin needs beyond the helpers' (all ABI 1.0) */
static const peft_pu_need prefix_needs[] = {PEFT_PU_NEED(tensor_to_f32), PEFT_PU_NEED(sgemm)};

PEFT_PLUGIN_EXPORT const peft_tuner_vtable *peft_plugin_init(const peft_host_api *host, char *err,
                                                             size_t errlen)
{
    if (peft_pu_host_check(host, "prefix", 0, prefix_needs, PEFT_PU_COUNT(prefix_needs), err,
                           errlen))
        return NULL;
    prefix_host = host;
    return &prefix_vtable;
}
