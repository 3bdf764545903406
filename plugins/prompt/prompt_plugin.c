/* prompt_plugin.c — the prompt-tuning tuner's vtable (a prompt-learning method: it acts through
 * the model's virtual-token hook, never on linear sites) and the one exported symbol,
 * peft_plugin_init, which checks the host's ABI and keeps its service table (prompt.h). */
#include <stddef.h>

#include "prompt.h"

const peft_host_api *prompt_host;

static const peft_tuner_vtable prompt_vtable = {
    .struct_size = sizeof(peft_tuner_vtable),
    .abi_major = PEFT_ABI_MAJOR,
    .abi_minor = PEFT_ABI_MINOR,
    .name = "prompt",
    .peft_type = "PROMPT_TUNING",
    .prefix = "prompt_embeddings",
    .caps = PEFT_CAP_PROMPT_LEARNING,
    .config_keys = prompt_config_keys,
    .default_targets = NULL,
    .config_parse = prompt_config_parse,
    .config_free = prompt_config_free,
    .inject = NULL,
    .pre_forward = NULL,
    .forward = NULL,
    .merge = NULL,
    .destroy = prompt_destroy,
    .state_dict = prompt_state_dict,
    .module_type = prompt_module_type,
    .set_scale = NULL,
    .model_class = "PromptEmbedding",
    .prompt_init = prompt_init,
    .prompt_embeddings = prompt_embeddings,
    .prefix_kv = NULL,
    .prompt_to_save = prompt_to_save,
    .prompt_load = prompt_load,
    .prompt_num_virtual = prompt_num_virtual,
};

/* the host entries this plugin calls (tensor_to_f32 is ABI 1.0; nothing of 1.1 is needed) */
#define HOST_NEEDS_SIZE (offsetof(peft_host_api, warn) + sizeof(void (*)(const char *)))

PEFT_PLUGIN_EXPORT const peft_tuner_vtable *peft_plugin_init(const peft_host_api *host, char *err,
                                                             size_t errlen)
{
    if (!host) {
        prompt_errf(err, errlen, "prompt: no host API table given");
        return NULL;
    }
    if (host->abi_major != PEFT_ABI_MAJOR) {
        prompt_errf(err, errlen, "prompt: host ABI major %u, plugin built for %d",
                    (unsigned)host->abi_major, PEFT_ABI_MAJOR);
        return NULL;
    }
    if (host->struct_size < HOST_NEEDS_SIZE) {
        prompt_errf(err, errlen, "prompt: host API table too short (%u bytes, need %zu)",
                    (unsigned)host->struct_size, (size_t)HOST_NEEDS_SIZE);
        return NULL;
    }
    const struct {
        const char *name;
        int present;
    } need[] = {
        {"alloc", host->alloc != NULL},
        {"free", host->free != NULL},
        {"tensor_new", host->tensor_new != NULL},
        {"tensor_free", host->tensor_free != NULL},
        {"tensor_to_f32", host->tensor_to_f32 != NULL},
        {"graph_tensor", host->graph_tensor != NULL},
        {"graph_recording", host->graph_recording != NULL},
        {"tape_push", host->tape_push != NULL},
        {"grad_of", host->grad_of != NULL},
        {"cfg_type", host->cfg_type != NULL},
        {"cfg_bool", host->cfg_bool != NULL},
        {"cfg_int", host->cfg_int != NULL},
        {"cfg_str", host->cfg_str != NULL},
        {"cfg_set_bool", host->cfg_set_bool != NULL},
        {"cfg_set_str", host->cfg_set_str != NULL},
        {"cfg_set_json", host->cfg_set_json != NULL},
        {"rng_uniform", host->rng_uniform != NULL},
        {"rng_normal", host->rng_normal != NULL},
    };
    for (size_t i = 0; i < sizeof need / sizeof need[0]; i++) {
        if (!need[i].present) {
            prompt_errf(err, errlen, "prompt: host API entry '%s' is NULL", need[i].name);
            return NULL;
        }
    }
    prompt_host = host;
    return &prompt_vtable;
}
