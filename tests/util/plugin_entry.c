/* plugin_entry.c — tu_plugin_entry (plugin_entry.h). */
#define _GNU_SOURCE /* dladdr */
#include "plugin_entry.h"

#include <check.h>
#include <dlfcn.h>

#include "peft/registry.h"

peft_plugin_init_fn tu_plugin_entry(const char *name, const peft_tuner_vtable **vt, void **so)
{
    peft_ctx *ctx = peft_ctx_new(0);
    ck_assert_msg(peft_plugin_get(ctx, name, vt) == PEFT_OK, "%s", peft_errmsg(ctx));
    peft_ctx_free(ctx);
    Dl_info info;
    ck_assert(dladdr(*vt, &info) && info.dli_fname);
    *so = dlopen(info.dli_fname, RTLD_NOW | RTLD_LOCAL | RTLD_NOLOAD);
    ck_assert_ptr_nonnull(*so);
    peft_plugin_init_fn init = (peft_plugin_init_fn)dlsym(*so, PEFT_PLUGIN_ENTRY);
    ck_assert_ptr_nonnull(init);
    return init;
}
