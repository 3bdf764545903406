/* lokr_plugin.c — the LoKr example plugin's vtable and its one exported symbol. */
#include <stddef.h>

#include "lokr.h"

const peft_host_api *lokr_host;

static const peft_tuner_vtable lokr_vtable = {
    .struct_size = sizeof(peft_tuner_vtable),
    .abi_major = PEFT_ABI_MAJOR,
    .abi_minor = PEFT_ABI_MINOR,
    .name = "lokr",
    .peft_type = "LOKR",
    .prefix = "lokr_",
    .caps = PEFT_CAP_MERGEABLE | PEFT_CAP_MIXABLE,
    .config_keys = lokr_config_keys,
    .default_targets = lokr_default_targets,
    .config_parse = lokr_config_parse,
    .config_free = lokr_config_free,
    .inject = lokr_inject,
    .forward = lokr_forward,
    .merge = lokr_merge,
    .destroy = lokr_destroy,
    .state_dict = lokr_state_dict,
    .module_type = lokr_module_type,
    .set_scale = lokr_set_scale,
    .model_class = "LoKrModel",
};

/* every host entry this plugin calls is ABI 1.0: the table must reach `warn` */
#define HOST_NEEDS (offsetof(peft_host_api, warn) + sizeof(void (*)(const char *)))

PEFT_PLUGIN_EXPORT const peft_tuner_vtable *peft_plugin_init(const peft_host_api *host,
                                                             char *err, size_t errlen)
{
    if (!host || host->abi_major != PEFT_ABI_MAJOR) {
        lokr_errf(err, errlen, "lokr: needs a host speaking ABI %d.x", PEFT_ABI_MAJOR);
        return NULL;
    }
    if (host->struct_size < HOST_NEEDS) {
        lokr_errf(err, errlen, "lokr: the host's API table is %u bytes, at least %zu needed",
                  (unsigned)host->struct_size, (size_t)HOST_NEEDS);
        return NULL;
    }
    lokr_host = host;
    return &lokr_vtable;
}
