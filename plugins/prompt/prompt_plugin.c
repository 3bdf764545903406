/* prompt_plugin.c — the prompt-tuning tuner's vtable (a prompt-learning method: it acts through
 * the model's virtual-token hook, never on linear sites) and the one exported symbol,
 * peft_plugin_init, which checks the host's ABI and keeps its service table (prompt.h). */
#include <stddef.h>

#include "prompt.h"

const peft_host_api *prompt_host;

/* no inject / forward / merge: the ABI 1.1 prompt-learning entries instead */
static const peft_tuner_vtable prompt_vtable = {
    PEFT_PU_VTABLE_HEADER,
    .name = "prompt",
    .peft_type = "PROMPT_TUNING",
    .prefix = "prompt_embeddings",
    .caps = PEFT_CAP_PROMPT_LEARNING,
    .config_keys = prompt_config_keys,
    .config_parse = prompt_config_parse,
    .config_free = prompt_config_free,
    .destroy = prompt_destroy,
    .state_dict = prompt_state_dict,
    .module_type = prompt_module_type,
    .model_class = "PromptEmbedding",
    .prompt_init = prompt_init,
    .prompt_embeddings = prompt_embeddings,
    .prompt_to_save = prompt_to_save,
    .prompt_load = prompt_load,
    .prompt_num_virtual = prompt_num_virtual,
};

/* the host entry this plugin needs beyond the helpers' (ABI 1.0) */
static const peft_pu_need prompt_needs[] = {PEFT_PU_NEED(tensor_to_f32)};

PEFT_PLUGIN_EXPORT const peft_tuner_vtable *peft_plugin_init(const peft_host_api *host, char *err,
                                                             size_t errlen)
{
    if (peft_pu_host_check(host, "prompt", 0, prompt_needs, PEFT_PU_COUNT(prompt_needs), err,
                           errlen))
        return NULL;
    prompt_host = host;
    return &prompt_vtable;
}
