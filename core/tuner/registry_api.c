/* registry_api.c — the registry as applications see it (peft/registry.h): the core's
 * char *err calls with the library's one error convention, code + message on the context. */
#include "peft/registry.h"
#include "core/tuner/registry.h"

int peft_plugin_get(peft_ctx *ctx, const char *name, const peft_tuner_vtable **out)
{
    char err[1536];
    *out = peft_registry_get(name, err, sizeof err);
    return *out ? PEFT_OK : peft_set_error(ctx, PEFT_EPLUGIN, "%s", err);
}

int peft_plugin_load_file(peft_ctx *ctx, const char *path, const peft_tuner_vtable **out)
{
    char err[1536];
    *out = peft_registry_load_file(path, err, sizeof err);
    return *out ? PEFT_OK : peft_set_error(ctx, PEFT_EPLUGIN, "%s", err);
}
