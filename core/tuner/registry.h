/* registry.h — the tuner plugin registry: finds <name>.so on the search path, dlopens it
 * (RTLD_NOW|RTLD_LOCAL), calls its peft_plugin_init with the host table, and checks the ABI.
 *
 * Search path: $PEFT_PLUGIN_PATH (colon-separated), then the build dir, then the install dir
 * (compiled in as PEFT_PLUGIN_BUILD_DIR / PEFT_PLUGIN_INSTALL_DIR), then "<dir of libpeft.so>/plugins".
 * Refusals, each with a message naming the file: no entry symbol, init returned NULL (its own
 * message is passed on), ABI major differs, minor newer than the host's, vtable shorter than
 * PEFT_TUNER_VTABLE_MIN_SIZE, missing required entries, a name already registered.
 * A plugin is never dlclose'd while the process runs (adapters may still point into it).
 * The registry is process-wide and guarded by a mutex.
 */
#ifndef CORE_TUNER_REGISTRY_H
#define CORE_TUNER_REGISTRY_H

#include <stddef.h>
#include "peft/plugin.h"

/* The host table handed to plugins (core/host_api.c). Static, process lifetime. */
const peft_host_api *peft_host_api_get(void);

/* Loads (once) and returns the plugin whose vt->name == name ("lora"), searching the path for
 * "<name>.so". Borrowed, process lifetime. NULL with err set. */
const peft_tuner_vtable *peft_registry_get(const char *name, char *err, size_t errlen);
/* Same, by adapter_config.json peft_type ("LORA"): tries name = lowercase(peft_type). */
const peft_tuner_vtable *peft_registry_get_by_type(const char *peft_type, char *err, size_t errlen);
/* Loads a plugin from an explicit .so path and registers it. NULL with err set. */
const peft_tuner_vtable *peft_registry_load_file(const char *path, char *err, size_t errlen);
/* Validates a vtable returned by a plugin init (sizes, versions, required entries). 0 or -1. */
int peft_registry_check_vtable(const peft_tuner_vtable *vt, const char *path, char *err,
                               size_t errlen);

#endif
