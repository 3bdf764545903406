/* loha.h — declarations shared by the LoHa plugin's files (never installed, never seen by the
 * host). Built with -fvisibility=hidden: only peft_plugin_init (loha_plugin.c) is exported.
 *
 *   loha_config.c  config_keys, config_parse/free (LoHaConfig 0.13.2: validation + defaults)
 *   loha_layer.c   inject (shapes, PEFT's init), merge/unmerge, state_dict, module_type,
 *                  set_scale, destroy
 *   loha_kernel.c  delta W = s * (w1_a @ w1_b) ⊙ (w2_a @ w2_b), built once per forward call,
 *                  the forward y + x @ dW^T with rank/module dropout, and its backward
 *   loha_plugin.c  the vtable and the exported entry point
 *
 * rank_pattern / alpha_pattern follow PEFT's LyCORIS rule: a key matches a module whose name
 * is "(.*\.)?key" (the host's cfg_pattern_real_lycoris, ABI 1.2, which the plugin requires).
 */
#ifndef PEFT_LOHA_H
#define PEFT_LOHA_H

#include <stddef.h>
#include <stdint.h>
#include "peft/plugin.h"
#include "peft/plugin_kernels.h"
#include "peft/plugin_util.h"

/* The host table handed to peft_plugin_init; set once, before any other entry is called. */
extern const peft_host_api *loha_host;

/* The parsed adapter_config.json (what is the same for every site). Per-site rank and alpha
 * (rank_pattern / alpha_pattern) are read from the live cfg at inject time. */
typedef struct loha_config {
    int64_t r;
    double alpha;
    double rank_dropout;
    double module_dropout;
    int init_weights; /* 1: w2_b zeros (delta starts at 0); 0: all four kaiming-uniform */
} loha_config;

/* One LoHa adapter on one nn.Linear site. Owns its tensors and strings (loha_destroy). */
typedef struct loha_state {
    int64_t in_features, out_features, r;
    double alpha;
    double scaling;      /* alpha / r */
    double mult;         /* runtime multiplier (set_scale), 1.0 by default */
    double merged_scale; /* scaling*mult folded into the base weight, valid when merged */
    int merged;
    float rank_dropout, module_dropout;
    peft_tensor *w1a; /* hada_w1_a (out, r) */
    peft_tensor *w1b; /* hada_w1_b (r, in) */
    peft_tensor *w2a; /* hada_w2_a (out, r) */
    peft_tensor *w2b; /* hada_w2_b (r, in) */
    char *saved[4];   /* "hada_w1_a", "hada_w1_b", "hada_w2_a", "hada_w2_b" */
    char *memory[4];  /* "hada_w1_a.<adapter>", ... */
} loha_state;

/* loha_config.c */
extern const char *const loha_config_keys[];
int loha_config_parse(peft_cfg *cfg, void **out, char *err, size_t errlen);
void loha_config_free(void *parsed);

/* loha_layer.c */
void *loha_inject(const void *parsed, peft_cfg *cfg, const peft_site_info *site,
                  const char *adapter_name, peft_rng *rng, char *err, size_t errlen);
int loha_merge(void *state, const peft_site_info *site, float *weight, float *bias, int sign,
               char *err, size_t errlen);
void loha_destroy(void *state);
int loha_state_dict(void *state, peft_param_ref *out, int max);
const char *loha_module_type(void *state);
int loha_set_scale(void *state, double mult);

/* loha_kernel.c */
/* p1 (out, in) = w1a @ w1b, p2 (out, in) = w2a @ w2b (either may be NULL to skip it) */
void loha_products(const loha_state *st, float *p1, float *p2);
peft_tensor *loha_forward(void *state, peft_graph *g, const peft_site_info *site,
                          peft_tensor *x, peft_tensor *y);

#endif
