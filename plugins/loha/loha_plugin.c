/* loha_plugin.c — the LoHa tuner's vtable and the one exported symbol, peft_plugin_init, which
 * checks the host's ABI and keeps its service table for the other files (loha.h). */
#include <stddef.h>

#include "loha.h"

const peft_host_api *loha_host;

/* No default_targets: PEFT's LycorisTuner has no per-model mapping and asks for
 * target_modules. MIXABLE: LoHa is one of the tuner types PEFT's mixed models accept. */
static const peft_tuner_vtable loha_vtable = {
    .struct_size = sizeof(peft_tuner_vtable),
    .abi_major = PEFT_ABI_MAJOR,
    .abi_minor = PEFT_ABI_MINOR,
    .name = "loha",
    .peft_type = "LOHA",
    .prefix = "hada_",
    .caps = PEFT_CAP_MERGEABLE | PEFT_CAP_MIXABLE,
    .config_keys = loha_config_keys,
    .default_targets = NULL,
    .config_parse = loha_config_parse,
    .config_free = loha_config_free,
    .inject = loha_inject,
    .pre_forward = NULL,
    .forward = loha_forward,
    .merge = loha_merge,
    .destroy = loha_destroy,
    .state_dict = loha_state_dict,
    .module_type = loha_module_type,
    .set_scale = loha_set_scale,
    .model_class = "LoHaModel",
};

/* the host entries this plugin calls (all ABI 1.0) */
#define HOST_NEEDS_SIZE (offsetof(peft_host_api, warn) + sizeof(void (*)(const char *)))

PEFT_PLUGIN_EXPORT const peft_tuner_vtable *peft_plugin_init(const peft_host_api *host, char *err,
                                                             size_t errlen)
{
    if (!host) {
        loha_errf(err, errlen, "loha: no host API table given");
        return NULL;
    }
    if (host->abi_major != PEFT_ABI_MAJOR) {
        loha_errf(err, errlen, "loha: host ABI major %u, plugin built for %d",
                  (unsigned)host->abi_major, PEFT_ABI_MAJOR);
        return NULL;
    }
    if (host->struct_size < HOST_NEEDS_SIZE) {
        loha_errf(err, errlen, "loha: host API table too short (%u bytes, need %zu)",
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
        {"graph_training", host->graph_training != NULL},
        {"graph_recording", host->graph_recording != NULL},
        {"graph_rng", host->graph_rng != NULL},
        {"tape_push", host->tape_push != NULL},
        {"grad_of", host->grad_of != NULL},
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
    };
    for (size_t i = 0; i < sizeof need / sizeof need[0]; i++) {
        if (!need[i].present) {
            loha_errf(err, errlen, "loha: host API entry '%s' is NULL", need[i].name);
            return NULL;
        }
    }
    loha_host = host;
    return &loha_vtable;
}
