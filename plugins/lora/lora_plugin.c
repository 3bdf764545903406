/* lora_plugin.c — the LoRA tuner's vtable and the one exported symbol, peft_plugin_init, which
 * checks the host's ABI and keeps its service table for the other files (lora.h). */
#include <stddef.h>

#include "lora.h"

const peft_host_api *lora_host;

static const peft_tuner_vtable lora_vtable = {
    .struct_size = sizeof(peft_tuner_vtable),
    .abi_major = PEFT_ABI_MAJOR,
    .abi_minor = PEFT_ABI_MINOR,
    .name = "lora",
    .peft_type = "LORA",
    .prefix = "lora_",
    .caps = PEFT_CAP_MERGEABLE | PEFT_CAP_MIXABLE,
    .config_keys = lora_config_keys,
    .default_targets = lora_default_targets,
    .config_parse = lora_config_parse,
    .config_free = lora_config_free,
    .inject = lora_inject,
    .pre_forward = NULL,
    .forward = lora_forward,
    .merge = lora_merge,
    .destroy = lora_destroy,
    .state_dict = lora_state_dict,
    .module_type = lora_module_type,
    .set_scale = lora_set_scale,
    .model_class = "LoraModel",
    .combine = lora_combine,
};

/* the host entries this plugin needs (all ABI 1.0); PiSSA/OLoRA also use the ABI 1.1 linear
 * algebra entries, checked when an adapter asks for them (lora_init_svd.c) */
#define HOST_NEEDS_SIZE (offsetof(peft_host_api, warn) + sizeof(void (*)(const char *)))

PEFT_PLUGIN_EXPORT const peft_tuner_vtable *peft_plugin_init(const peft_host_api *host, char *err,
                                                             size_t errlen)
{
    if (!host) {
        lora_errf(err, errlen, "lora: no host API table given");
        return NULL;
    }
    if (host->abi_major != PEFT_ABI_MAJOR) {
        lora_errf(err, errlen, "lora: host ABI major %u, plugin built for %d",
                  (unsigned)host->abi_major, PEFT_ABI_MAJOR);
        return NULL;
    }
    if (host->struct_size < HOST_NEEDS_SIZE) {
        lora_errf(err, errlen, "lora: host API table too short (%u bytes, need %zu)",
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
        {"graph_training", host->graph_training != NULL},
        {"graph_recording", host->graph_recording != NULL},
        {"tape_push", host->tape_push != NULL},
        {"grad_of", host->grad_of != NULL},
        {"op_dropout", host->op_dropout != NULL},
        {"sgemm", host->sgemm != NULL},
        {"cfg_type", host->cfg_type != NULL},
        {"cfg_bool", host->cfg_bool != NULL},
        {"cfg_int", host->cfg_int != NULL},
        {"cfg_real", host->cfg_real != NULL},
        {"cfg_str", host->cfg_str != NULL},
        {"cfg_list_len", host->cfg_list_len != NULL},
        {"cfg_list_str", host->cfg_list_str != NULL},
        {"cfg_list_int", host->cfg_list_int != NULL},
        {"cfg_pattern_real", host->cfg_pattern_real != NULL},
        {"cfg_set_bool", host->cfg_set_bool != NULL},
        {"cfg_set_int", host->cfg_set_int != NULL},
        {"cfg_set_real", host->cfg_set_real != NULL},
        {"cfg_set_str", host->cfg_set_str != NULL},
        {"cfg_set_json", host->cfg_set_json != NULL},
        {"rng_uniform", host->rng_uniform != NULL},
        {"rng_normal", host->rng_normal != NULL},
        {"warn", host->warn != NULL},
    };
    for (size_t i = 0; i < sizeof need / sizeof need[0]; i++) {
        if (!need[i].present) {
            lora_errf(err, errlen, "lora: host API entry '%s' is NULL", need[i].name);
            return NULL;
        }
    }
    lora_host = host;
    return &lora_vtable;
}
