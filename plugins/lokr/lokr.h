/* lokr.h — declarations shared by the LoKr plugin's files (never installed, never seen by the
 * host; its Makefile builds the same folder out of tree, as a third party would). LoKr
 * (PEFT 0.13.2 peft/tuners/lokr): the weight update of a linear layer is a Kronecker product
 *
 *     delta W (out, in) = kron(w1 (out_l, in_m), w2 (out_k, in_n)),  out = out_l out_k,
 *                                                                    in = in_m in_n
 *
 * with w1 = lokr_w1 or lokr_w1_a @ lokr_w1_b, w2 = lokr_w2 or lokr_w2_a @ lokr_w2_b, and
 * y' = y + x @ delta W^T. PEFT 0.13.2 computes scaling = alpha / r but never applies it to
 * delta W (get_delta_weight calls make_kron(w1, w2) with its default scale 1.0); this plugin
 * does the same on purpose, so that its numbers and files match PEFT 0.13.2's both ways
 * (README, "Where libpeft departs": alpha is kept in the config but has no effect).
 *
 * Built against sdk/include only (peft/plugin.h and the header-only helpers peft/plugin_util.h,
 * peft/plugin_config.h, peft/plugin_kernels.h); exported: peft_plugin_init alone. rank_pattern
 * follows PEFT's LyCORIS rule "(.*\.)?key$" (the host's cfg_pattern_real_lycoris, ABI 1.2, which
 * the plugin requires).
 *   lokr_config.c  config keys, config_parse (LoKrConfig 0.13.2 fields and defaults),
 *                  default targets, factorization()
 *   lokr_layer.c   inject (shapes, init), forward and backward, merge, state dict, destroy
 *   lokr_plugin.c  the vtable and the entry point */
#ifndef LOKR_H
#define LOKR_H

#include <stddef.h>
#include <stdint.h>
#include "peft/plugin.h"
#include "peft/plugin_kernels.h"
#include "peft/plugin_util.h"

extern const peft_host_api *lokr_host; /* set by peft_plugin_init */

typedef struct lokr_config {
    int64_t r;
    double alpha;
    double rank_dropout;   /* training: drop rows of delta W, rescaled by their mean */
    double module_dropout; /* training: skip the whole adapter with this probability */
    int init_weights;      /* 1: w1 (or w1_a) zeros; 0: everything kaiming-uniform */
    int decompose_both;    /* factor w1 too (w1_a @ w1_b) when r is small enough */
    int64_t decompose_factor;
} lokr_config;

/* the tensors of one factor: full (w) or low-rank (a @ b) */
typedef struct lokr_factor {
    peft_tensor *w;    /* (rows, cols) or NULL */
    peft_tensor *a, *b; /* (rows, r), (r, cols) or NULL */
    int64_t rows, cols;
} lokr_factor;

/* One adapter on one site; owns its tensors and names (lokr_destroy frees them). */
typedef struct lokr_state {
    int64_t in, out, r;
    lokr_factor f1, f2;   /* f1 (out_l, in_m), f2 (out_k, in_n) */
    double rank_dropout, module_dropout;
    double mult;          /* set_scale: runtime multiplier on delta W (1.0) */
    double merged_mult;
    int n_refs;
    peft_param_ref refs[4];
    char *names[8];       /* saved and memory names of refs (host->alloc'd) */
} lokr_state;

/* lokr_config.c */
extern const char *const lokr_config_keys[];
const char *const *lokr_default_targets(const char *model_type);
int lokr_config_parse(peft_cfg *cfg, void **out, char *err, size_t errlen);
void lokr_config_free(void *parsed);
/* PEFT's factorization(dimension, factor) -> (m, n), m <= n, m n = dimension */
void lokr_factorization(int64_t dimension, int64_t factor, int64_t *m, int64_t *n);

/* lokr_layer.c */
void *lokr_inject(const void *parsed, peft_cfg *cfg, const peft_site_info *site,
                  const char *adapter_name, peft_rng *rng, char *err, size_t errlen);
peft_tensor *lokr_forward(void *state, peft_graph *g, const peft_site_info *site,
                          peft_tensor *x, peft_tensor *y);
int lokr_merge(void *state, const peft_site_info *site, float *weight, float *bias, int sign,
               char *err, size_t errlen);
void lokr_destroy(void *state);
int lokr_state_dict(void *state, peft_param_ref *out, int max);
const char *lokr_module_type(void *state);
int lokr_set_scale(void *state, double mult);

#endif
