/* peft/registry.h — the tuner plugins an application can see: find a method's plugin by name on
 * the search path or load one from a file, and read its vtable (peft/plugin.h): its name,
 * peft_type, config keys and capabilities. `peft plugin-check` and `peft run`'s validation use
 * this; adapters are normally created by peft_get_peft_model, which loads plugins by peft_type
 * itself.
 *
 * Search path for a name: $PEFT_PLUGIN_PATH (colon-separated), the build dir, the install dir,
 * then plugins/ and libpeft/plugins/ next to libpeft.so. The registry is process-wide and
 * thread-safe; a plugin is never unloaded while the process runs, so the vtables returned here
 * are borrowed for the life of the process.
 */
#ifndef PEFT_REGISTRY_H
#define PEFT_REGISTRY_H

#include "peft/export.h"

#include "peft/peft.h"
#include "peft/plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Loads (once) the plugin whose vtable name is `name` ("lora": the file <name>.so on the search
 * path). PEFT_OK and *out, or PEFT_EPLUGIN with ctx's message naming every directory searched or
 * why the file was refused (no entry symbol, init failed with its own message, ABI mismatch,
 * missing required entries, a name already registered from another file). */
PEFT_API int peft_plugin_get(peft_ctx *ctx, const char *name, const peft_tuner_vtable **out);
/* The same from an explicit .so path, registered under the vtable's name. */
PEFT_API int peft_plugin_load_file(peft_ctx *ctx, const char *path,
                                   const peft_tuner_vtable **out);

#ifdef __cplusplus
}
#endif
#endif
