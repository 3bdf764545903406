/* ia3.h — declarations shared by the (IA)^3 plugin's files (never installed, never seen by the
 * host). Built with -fvisibility=hidden: only peft_plugin_init (ia3_plugin.c) is exported.
 *
 *   ia3_config.c  config_keys, config_parse/free (IA3Config 0.13.2: validation, defaults, the
 *                 feedforward_modules ⊆ target_modules rule), default target and feedforward
 *                 modules per model_type (peft/utils/constants.py)
 *   ia3_match.c   is a module feed-forward? (PEFT's endswith / re.fullmatch rule, the regex
 *                 through the host's regex_fullmatch, ABI 1.2)
 *   ia3_layer.c   inject (shapes, init, fan_in_fan_out rewrite), merge/unmerge, state_dict,
 *                 module_type, destroy
 *   ia3_kernel.c  pre_forward (x * l, feed-forward sites) and forward (y * l, other sites) with
 *                 their backward on the host's tape
 *   ia3_plugin.c  the vtable and the exported entry point
 */
#ifndef PEFT_IA3_H
#define PEFT_IA3_H

#include <stddef.h>
#include <stdint.h>
#include "peft/plugin.h"
#include "peft/plugin_kernels.h"
#include "peft/plugin_util.h"

/* The host table handed to peft_plugin_init; set once, before any other entry is called. */
extern const peft_host_api *ia3_host;

/* |l| below this cannot be divided out again by unmerge (PEFT adds 1e-8 and divides anyway) */
#define IA3_UNMERGE_MIN_ABS 1e-8

/* The parsed adapter_config.json (what is the same for every site). feedforward_modules and
 * fan_in_fan_out are read from the live cfg at inject time (both may be rewritten there). */
typedef struct ia3_config {
    int init_ia3_weights; /* 1: l = 1; 0: l ~ N(0, 1) (torch.randn) */
} ia3_config;

/* One (IA)^3 vector on one site. Owns its tensor, strings and merge copy (ia3_destroy). */
typedef struct ia3_state {
    int64_t in_features, out_features;
    int is_feedforward; /* 1: scales the input, l (1, in); 0: scales the output, l (out, 1) */
    int merged;
    peft_tensor *l;      /* ia3_l: (out, 1) or (1, in) */
    float *merged_l;     /* l as it was folded into the weight (valid while merged) */
    char *saved_name;    /* "ia3_l" */
    char *memory_name;   /* "ia3_l.<adapter>" */
} ia3_state;

/* ia3_config.c */
extern const char *const ia3_config_keys[];
const char *const *ia3_default_targets(const char *model_type);
/* PEFT's TRANSFORMERS_MODELS_TO_IA3_FEEDFORWARD_MODULES_MAPPING entry; NULL if the model type
 * has none (an empty list for mt5 is a valid answer) */
const char *const *ia3_default_feedforward(const char *model_type);
int ia3_config_parse(peft_cfg *cfg, void **out, char *err, size_t errlen);
void ia3_config_free(void *parsed);

/* ia3_match.c: 1 feed-forward, 0 not, -1 with err set (bad regex / config, or a regex on a
 * host older than ABI 1.2, which has no regex_fullmatch) */
int ia3_is_feedforward(const peft_cfg *cfg, const char *module_name, char *err, size_t errlen);

/* ia3_layer.c */
void *ia3_inject(const void *parsed, peft_cfg *cfg, const peft_site_info *site,
                 const char *adapter_name, peft_rng *rng, char *err, size_t errlen);
int ia3_merge(void *state, const peft_site_info *site, float *weight, float *bias, int sign,
              char *err, size_t errlen);
void ia3_destroy(void *state);
int ia3_state_dict(void *state, peft_param_ref *out, int max);
const char *ia3_module_type(void *state);

/* ia3_kernel.c */
peft_tensor *ia3_pre_forward(void *state, peft_graph *g, const peft_site_info *site,
                             peft_tensor *x);
peft_tensor *ia3_forward(void *state, peft_graph *g, const peft_site_info *site, peft_tensor *x,
                         peft_tensor *y);

#endif
