/* plugin_entry.c — tu_plugin_entry (plugin_entry.h). */
#define _GNU_SOURCE /* dladdr */
#include "plugin_entry.h"

#include <check.h>
#include <dlfcn.h>

#include "core/tuner/registry.h"

peft_plugin_init_fn tu_plugin_entry(const char *name, const peft_tuner_vtable **vt, void **so)
{
    char err[512] = "";
    *vt = peft_registry_get(name, err, sizeof err);
    ck_assert_msg(*vt, "%s", err);
    Dl_info info;
    ck_assert(dladdr(*vt, &info) && info.dli_fname);
    *so = dlopen(info.dli_fname, RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
    ck_assert_ptr_nonnull(*so);
    peft_plugin_init_fn init = (peft_plugin_init_fn)dlsym(*so, PEFT_PLUGIN_ENTRY);
    ck_assert_ptr_nonnull(init);
    return init;
}
