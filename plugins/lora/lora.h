/* lora.h — declarations shared by the LoRA plugin's files (never installed, never seen by the
 * host). The plugin is built with -fvisibility=hidden, so everything declared here stays
 * internal to lora.so; only peft_plugin_init (lora_plugin.c) is exported.
 *
 *   lora_config.c  config_keys, config_parse/free (validation + PEFT 0.13.2 defaults),
 *                  default_targets (TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING)
 *   lora_layer.c   inject (shapes + init), forward kernel and its backward, merge,
 *                  state_dict, module_type, set_scale, destroy
 *   lora_plugin.c  the vtable and the exported entry point
 */
#ifndef PEFT_LORA_H
#define PEFT_LORA_H

#include <stddef.h>
#include <stdint.h>
#include "peft/plugin.h"

/* The host table handed to peft_plugin_init; set once, before any other entry is called. */
extern const peft_host_api *lora_host;

/* init_lora_weights */
#define LORA_INIT_DEFAULT 0  /* true: A kaiming_uniform(a=sqrt(5)), B zeros */
#define LORA_INIT_GAUSSIAN 1 /* "gaussian": A ~ N(0, (1/r)^2), B zeros */
#define LORA_INIT_NONE 2     /* false: A and B keep nn.Linear's default init */

/* The parsed adapter_config.json (what is the same for every site). Per-site values (rank and
 * alpha patterns, fan_in_fan_out rewrites) are read from the live cfg at inject time. */
typedef struct lora_config {
    int64_t r;
    double lora_alpha;
    double lora_dropout;
    int init;        /* LORA_INIT_* */
    int use_rslora;
} lora_config;

/* One adapter on one site. Owns its tensors and strings (freed by lora_destroy). */
typedef struct lora_state {
    int64_t in_features, out_features, r;
    double lora_alpha;
    double scaling;       /* alpha/r or alpha/sqrt(r) (rsLoRA) */
    double mult;          /* runtime multiplier (set_scale), 1.0 by default */
    double merged_scale;  /* scaling*mult folded into the base weight, valid when merged */
    int merged;
    float dropout;
    peft_tensor *A;       /* lora_A.weight (r, in) */
    peft_tensor *B;       /* lora_B.weight (out, r) */
    char *saved_A, *saved_B;   /* "lora_A.weight", "lora_B.weight" */
    char *memory_A, *memory_B; /* "lora_A.<adapter>.weight", "lora_B.<adapter>.weight" */
} lora_state;

/* lora_config.c */
extern const char *const lora_config_keys[];
const char *const *lora_default_targets(const char *model_type);
int lora_config_parse(peft_cfg *cfg, void **out, char *err, size_t errlen);
void lora_config_free(void *parsed);

/* lora_layer.c */
void *lora_inject(const void *parsed, peft_cfg *cfg, const peft_site_info *site,
                  const char *adapter_name, peft_rng *rng, char *err, size_t errlen);
peft_tensor *lora_forward(void *state, peft_graph *g, const peft_site_info *site,
                          peft_tensor *x, peft_tensor *y);
int lora_merge(void *state, const peft_site_info *site, float *weight, float *bias, int sign,
               char *err, size_t errlen);
void lora_destroy(void *state);
int lora_state_dict(void *state, peft_param_ref *out, int max);
const char *lora_module_type(void *state);
int lora_set_scale(void *state, double mult);

/* helpers (lora_config.c) */
void lora_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
char *lora_strdup(const char *s); /* host->alloc'd copy, NULL on OOM */

#endif
