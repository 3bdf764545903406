/* fixture.h — a minimal, valid do-nothing tuner shared by the registry's fixture plugins. Each
 * fixture .c sets a few FIX_* macros before including this to break exactly one rule:
 *   FIX_NAME, FIX_PEFT_TYPE (strings), FIX_MAJOR, FIX_MINOR, FIX_SIZE (vtable struct_size),
 *   FIX_FORWARD (the forward entry, NULL to omit it), FIX_INIT_FAIL (a message: init fails). */
#ifndef PEFT_TEST_FIXTURE_H
#define PEFT_TEST_FIXTURE_H

#include <stdio.h>
#include "peft/plugin.h"

#ifndef FIX_NAME
#define FIX_NAME "fixture"
#endif
#ifndef FIX_PEFT_TYPE
#define FIX_PEFT_TYPE "FIXTURE"
#endif
#ifndef FIX_MAJOR
#define FIX_MAJOR PEFT_ABI_MAJOR
#endif
#ifndef FIX_MINOR
#define FIX_MINOR PEFT_ABI_MINOR
#endif
#ifndef FIX_SIZE
#define FIX_SIZE sizeof(peft_tuner_vtable)
#endif
#ifndef FIX_FORWARD
#define FIX_FORWARD fix_forward
#endif

static const peft_host_api *fix_host;
static int fix_state_token; /* the (stateless) adapter state */

static int fix_config_parse(peft_cfg *cfg, void **out, char *err, size_t errlen)
{
    (void)cfg, (void)err, (void)errlen;
    *out = &fix_state_token;
    return 0;
}
static void fix_config_free(void *parsed) { (void)parsed; }
static void *fix_inject(const void *parsed, peft_cfg *cfg, const peft_site_info *site,
                        const char *adapter_name, peft_rng *rng, char *err, size_t errlen)
{
    (void)parsed, (void)cfg, (void)site, (void)adapter_name, (void)rng, (void)err, (void)errlen;
    return &fix_state_token;
}
static peft_tensor *fix_forward(void *state, peft_graph *g, const peft_site_info *site,
                                peft_tensor *x, peft_tensor *y)
{
    (void)state, (void)g, (void)site, (void)x;
    return y; /* identity adapter */
}
static void fix_destroy(void *state) { (void)state; }
static int fix_state_dict(void *state, peft_param_ref *out, int max)
{
    (void)state, (void)out, (void)max;
    return 0;
}
static const char *fix_module_type(void *state)
{
    (void)state;
    return "fixture.Linear";
}

static const char *const fix_keys[] = {"peft_type", "target_modules", NULL};

static const peft_tuner_vtable fix_vt = {
    .struct_size = (uint32_t)(FIX_SIZE),
    .abi_major = FIX_MAJOR,
    .abi_minor = FIX_MINOR,
    .name = FIX_NAME,
    .peft_type = FIX_PEFT_TYPE,
    .prefix = "fixture_",
    .caps = 0,
    .config_keys = fix_keys,
    .default_targets = NULL,
    .config_parse = fix_config_parse,
    .config_free = fix_config_free,
    .inject = fix_inject,
    .pre_forward = NULL,
    .forward = FIX_FORWARD,
    .merge = NULL,
    .destroy = fix_destroy,
    .state_dict = fix_state_dict,
    .module_type = fix_module_type,
    .set_scale = NULL,
};

PEFT_PLUGIN_EXPORT const peft_tuner_vtable *peft_plugin_init(const peft_host_api *host,
                                                             char *err, size_t errlen)
{
    fix_host = host;
    (void)fix_forward;
#ifdef FIX_INIT_FAIL
    snprintf(err, errlen, "%s", FIX_INIT_FAIL);
    return NULL;
#else
    (void)err, (void)errlen;
    return &fix_vt;
#endif
}

#endif
