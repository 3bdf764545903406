/* ln_tuning.h — declarations shared by the LN tuning plugin's files (internal to ln_tuning.so;
 * only peft_plugin_init is exported).
 *
 *   ln_tuning_config.c  config_keys, config_parse/free (LNTuningConfig 0.13.2), default_targets
 *                       (TRANSFORMERS_MODELS_TO_LNTUNING_TARGET_MODULES_MAPPING)
 *   ln_tuning_layer.c   inject (a trainable copy of the norm), forward (the norm with the copy's
 *                       parameters), merge (the copy swapped in), state_dict, module_type
 *   ln_tuning_plugin.c  the vtable and the exported entry point
 */
#ifndef PEFT_LN_TUNING_H
#define PEFT_LN_TUNING_H

#include <stddef.h>
#include <stdint.h>
#include "peft/plugin.h"
#include "peft/plugin_util.h"

/* The host table handed to peft_plugin_init; set once, before any other entry is called. */
extern const peft_host_api *ln_host;

/* One adapter on one norm site: PEFT's ln_tuning_layers[adapter], a deep copy of the norm.
 * Owns its tensors and strings (freed by ln_destroy). */
typedef struct ln_state {
    int64_t c;                 /* the norm's width */
    peft_tensor *w;            /* ln_tuning_layers.weight (C) */
    peft_tensor *b;            /* ln_tuning_layers.bias (C), LayerNorm only; else NULL */
    char *saved_w, *saved_b;   /* "ln_tuning_layers.weight", "ln_tuning_layers.bias" */
    char *memory_w, *memory_b; /* "ln_tuning_layers.<adapter>.weight", ... */
} ln_state;

/* ln_tuning_config.c */
extern const char *const ln_config_keys[];
const char *const *ln_default_targets(const char *model_type);
int ln_config_parse(peft_cfg *cfg, void **out, char *err, size_t errlen);
void ln_config_free(void *parsed);

/* ln_tuning_layer.c */
void *ln_inject(const void *parsed, peft_cfg *cfg, const peft_site_info *site,
                const char *adapter_name, peft_rng *rng, char *err, size_t errlen);
peft_tensor *ln_forward(void *state, peft_graph *g, const peft_site_info *site, peft_tensor *x,
                        peft_tensor *y);
int ln_merge(void *state, const peft_site_info *site, float *weight, float *bias, int sign,
             char *err, size_t errlen);
void ln_destroy(void *state);
int ln_state_dict(void *state, peft_param_ref *out, int max);
const char *ln_module_type(void *state);

#endif
