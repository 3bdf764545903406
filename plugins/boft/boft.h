/* boft.h — declarations shared by the BOFT plugin's files (never installed, never seen by the
 * host). Built with -fvisibility=hidden: only peft_plugin_init (boft_plugin.c) is exported.
 *
 * BOFT (PEFT 0.13.2 peft/tuners/boft, nn.Linear): the base weight is rotated on its input side
 * by a product of butterfly factors and its rows scaled:
 *
 *     Q_{i,j} = cayley(boft_R[i, j]) (H, H),  B_i = block_diag(Q_{i,0}, ..., Q_{i,D-1}) (in, in)
 *     M_i = P_i B_i P_i^T,  R = M_{N-1} ... M_1 M_0,  W' = (W R^T) * boft_s   (s: (out, 1))
 *     y' = x W'^T + b = s * ((y - b) + (x R - x) W^T) + b
 *
 * with D blocks of size H (D H = in), N = boft_n_butterfly_factor factors and P_i PEFT's
 * butterfly permutations (block_butterfly_perm; P_0 = I). PEFT 0.13.2 without its CUDA
 * extension (every CPU-only machine) silently forces N to 1; libpeft always applies the
 * configured N, the extension's math (README: departures; boft_butterfly2 is the fixture).
 *
 *   boft_config.c  config keys, config_parse/free (BOFTConfig 0.13.2), default targets
 *   (the Cayley transform and its backward: peft/plugin_cayley.h, shared with OFT)
 *   boft_perm.c    the butterfly permutations and the shape checks of update_layer
 *   boft_layer.c   inject, the two ops of the forward and their backward, merge, state dict
 *   boft_plugin.c  the vtable and the exported entry point
 */
#ifndef PEFT_BOFT_H
#define PEFT_BOFT_H

#include <stddef.h>
#include <stdint.h>
#include "peft/plugin.h"
#include "peft/plugin_cayley.h"
#include "peft/plugin_kernels.h"
#include "peft/plugin_util.h"

extern const peft_host_api *boft_host;

typedef struct boft_config {
    int64_t block_size, block_num; /* exactly one non-zero */
    int64_t n_factors;             /* boft_n_butterfly_factor (>= 1) */
    double dropout;                /* boft_dropout: multiplicative (blocks -> identity) */
    int init_weights;
} boft_config;

/* One BOFT adapter on one nn.Linear site. Owns everything (boft_destroy). */
typedef struct boft_state {
    int64_t in, out;
    int64_t nf, D, H; /* factors, blocks per factor, block size */
    double dropout;
    peft_tensor *R; /* boft_R (nf, D, H, H) */
    peft_tensor *s; /* boft_s (out, 1) */
    int64_t *perm;  /* (nf, in): P_i[k, perm_i[k]] = 1 */
    char *names[4];
} boft_state;

/* boft_config.c */
extern const char *const boft_config_keys[];
int boft_config_parse(peft_cfg *cfg, void **out, char *err, size_t errlen);
void boft_config_free(void *parsed);
const char *const *boft_default_targets(const char *model_type);

/* the Cayley transform, its backward and the small inverse: peft/plugin_cayley.h (shared with
 * OFT) */
/* boft_perm.c */
/* D and H for in features from the config (PEFT's update_layer checks, its messages), and
 * the nf permutations perm (nf, in). 0, or -1 with err naming the module. */
int boft_shapes(const boft_config *c, int64_t in, const char *module, int64_t *D, int64_t *H,
                char *err, size_t errlen);
int boft_perms(int64_t in, int64_t nf, int64_t D, int64_t H, int64_t *perm, char *err,
               size_t errlen);

/* boft_layer.c */
void *boft_inject(const void *parsed, peft_cfg *cfg, const peft_site_info *site,
                  const char *adapter_name, peft_rng *rng, char *err, size_t errlen);
peft_tensor *boft_forward(void *state, peft_graph *g, const peft_site_info *site, peft_tensor *x,
                          peft_tensor *y);
int boft_merge(void *state, const peft_site_info *site, float *weight, float *bias, int sign,
               char *err, size_t errlen);
void boft_destroy(void *state);
int boft_state_dict(void *state, peft_param_ref *out, int max);
const char *boft_module_type(void *state);

#endif
