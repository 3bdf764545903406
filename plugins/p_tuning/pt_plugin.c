/* pt_plugin.c — the P-tuning tuner's vtable (a prompt-learning method: it acts through the
 * model's virtual-token hook, never on linear sites) and the one exported symbol,
 * peft_plugin_init, which checks the host's ABI and keeps its service table (p_tuning.h). */
#include <stddef.h>

#include "p_tuning.h"

const peft_host_api *pt_host;

/* no inject / forward / merge: the ABI 1.1 prompt-learning entries instead */
static const peft_tuner_vtable pt_vtable = {
    PEFT_PU_VTABLE_HEADER,
    .name = "p_tuning",
    .peft_type = "P_TUNING",
    .prefix = "prompt_embeddings",
    .caps = PEFT_CAP_PROMPT_LEARNING,
    .config_keys = pt_config_keys,
    .config_parse = pt_config_parse,
    .config_free = pt_config_free,
    .destroy = pt_destroy,
    .state_dict = pt_state_dict,
    .module_type = pt_module_type,
    .model_class = "PromptEncoder",
    .prompt_init = pt_init,
    .prompt_embeddings = pt_embeddings,
    .prompt_to_save = pt_to_save,
    .prompt_load = pt_load,
    .prompt_num_virtual = pt_num_virtual,
};

/* the host entries this plugin needs beyond the helpers' (ABI 1.0) */
static const peft_pu_need pt_needs[] = {PEFT_PU_NEED(tensor_to_f32), PEFT_PU_NEED(sgemm),
                                        PEFT_PU_NEED(graph_training), PEFT_PU_NEED(graph_rng)};

PEFT_PLUGIN_EXPORT const peft_tuner_vtable *peft_plugin_init(const peft_host_api *host, char *err,
                                                             size_t errlen)
{
    if (peft_pu_host_check(host, "p_tuning", 1, pt_needs, PEFT_PU_COUNT(pt_needs), err, errlen))
        return NULL;
    pt_host = host;
    return &pt_vtable;
}
