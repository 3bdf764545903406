/* prefix_plugin.c — the prefix-tuning tuner's vtable (a prompt-learning method: it acts through
 * the model's attention-prefix hook, never on linear sites) and the one exported symbol,
 * peft_plugin_init, which checks the host's ABI and keeps its service table (prefix.h). */
#include <stddef.h>

#include "prefix.h"

const peft_host_api *prefix_host;

static const peft_tuner_vtable prefix_vtable = {
    .struct_size = sizeof(peft_tuner_vtable),
    .abi_major = PEFT_ABI_MAJOR,
    .abi_minor = PEFT_ABI_MINOR,
    .name = "prefix",
    .peft_type = "PREFIX_TUNING",
    .prefix = "prompt_embeddings",
    .caps = PEFT_CAP_PROMPT_LEARNING,
    .config_keys = prefix_config_keys,
    .default_targets = NULL,
    .config_parse = prefix_config_parse,
    .config_free = prefix_config_free,
    .inject = NULL,
    .pre_forward = NULL,
    .forward = NULL,
    .merge = NULL,
    .destroy = prefix_destroy,
    .state_dict = prefix_state_dict,
    .module_type = prefix_module_type,
    .set_scale = NULL,
    .model_class = "PrefixEncoder",
    .prompt_init = prefix_init,
    .prompt_embeddings = NULL,
    .prefix_kv = prefix_kv,
    .prompt_to_save = prefix_to_save,
    .prompt_load = prefix_load,
    .prompt_num_virtual = prefix_num_virtual,
};

/* the host entries this plugin calls (tensor_to_f32 is ABI 1.0; nothing of 1.1 is needed) */
#define HOST_NEEDS_SIZE (offsetof(peft_host_api, warn) + sizeof(void (*)(const char *)))

PEFT_PLUGIN_EXPORT const peft_tuner_vtable *peft_plugin_init(const peft_host_api *host, char *err,
                                                             size_t errlen)
{
    if (!host) {
        prefix_errf(err, errlen, "prefix: no host API table given");
        return NULL;
    }
    if (host->abi_major != PEFT_ABI_MAJOR) {
        prefix_errf(err, errlen, "prefix: host ABI major %u, plugin built for %d",
                    (unsigned)host->abi_major, PEFT_ABI_MAJOR);
        return NULL;
    }
    if (host->struct_size < HOST_NEEDS_SIZE) {
        prefix_errf(err, errlen, "prefix: host API table too short (%u bytes, need %zu)",
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
        {"sgemm", host->sgemm != NULL},
        {"cfg_type", host->cfg_type != NULL},
        {"cfg_bool", host->cfg_bool != NULL},
        {"cfg_int", host->cfg_int != NULL},
        {"cfg_str", host->cfg_str != NULL},
        {"cfg_set_bool", host->cfg_set_bool != NULL},
        {"cfg_set_int", host->cfg_set_int != NULL},
        {"cfg_set_str", host->cfg_set_str != NULL},
        {"cfg_set_json", host->cfg_set_json != NULL},
        {"rng_uniform", host->rng_uniform != NULL},
        {"rng_normal", host->rng_normal != NULL},
    };
    for (size_t i = 0; i < sizeof need / sizeof need[0]; i++) {
        if (!need[i].present) {
            prefix_errf(err, errlen, "prefix: host API entry '%s' is NULL", need[i].name);
            return NULL;
        }
    }
    prefix_host = host;
    return &prefix_vtable;
}
