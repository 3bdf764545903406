/* mpt_plugin.c — the multitask prompt-tuning tuner's vtable (a prompt-learning method whose
 * virtual tokens depend on each row's task: the ABI 1.4 prompt_embeddings_tasks entry) and the
 * one exported symbol, peft_plugin_init. */
#include <stddef.h>

#include "mpt.h"

const peft_host_api *mpt_host;

static const peft_tuner_vtable mpt_vtable = {
    PEFT_PU_VTABLE_HEADER,
    .name = "mpt",
    .peft_type = "MULTITASK_PROMPT_TUNING",
    .prefix = "prompt_embeddings",
    .caps = PEFT_CAP_PROMPT_LEARNING,
    .config_keys = mpt_config_keys,
    .config_parse = mpt_config_parse,
    .config_free = mpt_config_free,
    .destroy = mpt_destroy,
    .state_dict = mpt_state_dict,
    .module_type = mpt_module_type,
    .model_class = "MultitaskPromptEmbedding",
    .prompt_init = mpt_init,
    .prompt_embeddings = mpt_embeddings,
    .prompt_to_save = mpt_to_save,
    .prompt_load = mpt_load,
    .prompt_num_virtual = mpt_num_virtual,
    .prompt_embeddings_tasks = mpt_embeddings_tasks,
};

static const peft_pu_need mpt_needs[] = {PEFT_PU_NEED(tensor_to_f32), PEFT_PU_NEED(sgemm),
                                         PEFT_PU_NEED(graph_set_error)};

/* ABI 1.4: the task ids reach the plugin only through prompt_embeddings_tasks, and the task
 * factors are saved only by a host that knows PEFT_PARAM_PROMPT_KEY */
PEFT_PLUGIN_EXPORT const peft_tuner_vtable *peft_plugin_init(const peft_host_api *host, char *err,
                                                             size_t errlen)
{
    if (peft_pu_host_check(host, "mpt", 4, mpt_needs, PEFT_PU_COUNT(mpt_needs), err, errlen))
        return NULL;
    mpt_host = host;
    return &mpt_vtable;
}
