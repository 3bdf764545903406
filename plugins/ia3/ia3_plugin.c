/* ia3_plugin.c — the (IA)^3 tuner's vtable and the one exported symbol, peft_plugin_init, which
 * checks the host's ABI and keeps its service table for the other files (ia3.h). */
#include <stddef.h>

#include "ia3.h"

const peft_host_api *ia3_host;

/* Not PEFT_CAP_MIXABLE: PEFT's mixed models accept LoRA, LoHa, LoKr, AdaLoRA and OFT only. */
static const peft_tuner_vtable ia3_vtable = {
    .struct_size = sizeof(peft_tuner_vtable),
    .abi_major = PEFT_ABI_MAJOR,
    .abi_minor = PEFT_ABI_MINOR,
    .name = "ia3",
    .peft_type = "IA3",
    .prefix = "ia3_",
    .caps = PEFT_CAP_MERGEABLE | PEFT_CAP_INPUT_TRANSFORM,
    .config_keys = ia3_config_keys,
    .default_targets = ia3_default_targets,
    .config_parse = ia3_config_parse,
    .config_free = ia3_config_free,
    .inject = ia3_inject,
    .pre_forward = ia3_pre_forward,
    .forward = ia3_forward,
    .merge = ia3_merge,
    .destroy = ia3_destroy,
    .state_dict = ia3_state_dict,
    .module_type = ia3_module_type,
    .set_scale = NULL, /* PEFT's IA3Layer has no set_scale */
    .model_class = "IA3Model",
};

/* the host entries this plugin calls (all ABI 1.0) */
#define HOST_NEEDS_SIZE (offsetof(peft_host_api, warn) + sizeof(void (*)(const char *)))

PEFT_PLUGIN_EXPORT const peft_tuner_vtable *peft_plugin_init(const peft_host_api *host, char *err,
                                                             size_t errlen)
{
    if (!host) {
        ia3_errf(err, errlen, "ia3: no host API table given");
        return NULL;
    }
    if (host->abi_major != PEFT_ABI_MAJOR) {
        ia3_errf(err, errlen, "ia3: host ABI major %u, plugin built for %d",
                 (unsigned)host->abi_major, PEFT_ABI_MAJOR);
        return NULL;
    }
    if (host->struct_size < HOST_NEEDS_SIZE) {
        ia3_errf(err, errlen, "ia3: host API table too short (%u bytes, need %zu)",
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
        {"graph_tensor", host->graph_tensor != NULL},
        {"graph_recording", host->graph_recording != NULL},
        {"tape_push", host->tape_push != NULL},
        {"grad_of", host->grad_of != NULL},
        {"cfg_type", host->cfg_type != NULL},
        {"cfg_bool", host->cfg_bool != NULL},
        {"cfg_str", host->cfg_str != NULL},
        {"cfg_list_len", host->cfg_list_len != NULL},
        {"cfg_list_str", host->cfg_list_str != NULL},
        {"cfg_set_bool", host->cfg_set_bool != NULL},
        {"cfg_set_str", host->cfg_set_str != NULL},
        {"cfg_set_json", host->cfg_set_json != NULL},
        {"rng_normal", host->rng_normal != NULL},
        {"warn", host->warn != NULL},
    };
    for (size_t i = 0; i < sizeof need / sizeof need[0]; i++) {
        if (!need[i].present) {
            ia3_errf(err, errlen, "ia3: host API entry '%s' is NULL", need[i].name);
            return NULL;
        }
    }
    ia3_host = host;
    return &ia3_vtable;
}
