/* oft.h — declarations shared by the OFT plugin's files (never installed, never seen by the
 * host). Built with -fvisibility=hidden: only peft_plugin_init (oft_plugin.c) is exported.
 *
 * OFT (PEFT 0.13.2 peft/tuners/oft, nn.Linear): the layer OUTPUT is rotated by a block-diagonal
 * orthogonal matrix built from the trainable oft_r (nblk, b, b), b = ceil(out / r), nblk = r (or
 * 1 shared block with block_share):
 *
 *     Q_i = (I - S_i)(I + S_i)^-1,  S_i = (R_i - R_i^T) / 2      (Cayley transform)
 *     R_full = block_diag(Q_0, ..., Q_{r-1})  cut to (out, out)
 *     y' = (y - bias) @ R_full + bias        (y the output so far, bias the base bias)
 *     merge: W' = R_full^T W;  unmerge: W = (R_full^T)^-1 W'
 *
 * coft (constrained OFT): before every use each block is projected in place onto the ball
 * ||R_i||_F <= eps * b * b / sqrt(nblk) (PEFT's _project_batch under no_grad), and the
 * gradient is the plain gradient at the projected value: a straight-through gradient.
 *
 *   oft_config.c  config keys, config_parse/free (OFTConfig 0.13.2 fields and defaults)
 *   oft_project.c coft's projection (the Cayley transform and its backward are the SDK's,
 *                 peft/plugin_cayley.h, shared with BOFT)
 *   oft_layer.c   inject, forward and backward, merge/unmerge, state dict, destroy
 *   oft_plugin.c  the vtable and the exported entry point
 *
 * rank_pattern follows PEFT's LyCORIS rule "(.*\.)?key$" (the host's cfg_pattern_real_lycoris,
 * ABI 1.2). GPT-2's Conv1D is refused as PEFT 0.13.2 refuses it.
 */
#ifndef PEFT_OFT_H
#define PEFT_OFT_H

#include <stddef.h>
#include <stdint.h>
#include "peft/plugin.h"
#include "peft/plugin_cayley.h"
#include "peft/plugin_kernels.h"
#include "peft/plugin_util.h"

/* The host table handed to peft_plugin_init; set once, before any other entry is called. */
extern const peft_host_api *oft_host;

/* The parsed adapter_config.json. Per-site r (rank_pattern) is read at inject time. */
typedef struct oft_config {
    int64_t r;
    double module_dropout;
    int init_weights; /* 1: oft_r zeros (R_full = I); 0: kaiming-uniform */
    int coft;
    double eps;
    int block_share;
} oft_config;

/* One OFT adapter on one nn.Linear site. Owns its tensor and strings (oft_destroy). */
typedef struct oft_state {
    int64_t in, out;
    int64_t r;    /* blocks along the output */
    int64_t b;    /* block size ceil(out / r) */
    int64_t nblk; /* blocks stored in oft_r: r, or 1 with block_share */
    int coft;
    double eps; /* coft radius before the 1/sqrt(nblk): eps * b * b, as PEFT's self.eps */
    double module_dropout;
    peft_tensor *oft_r; /* (nblk, b, b) */
    char *saved, *memory;
} oft_state;

/* oft_config.c */
extern const char *const oft_config_keys[];
int oft_config_parse(peft_cfg *cfg, void **out, char *err, size_t errlen);
void oft_config_free(void *parsed);

/* oft_project.c (the Cayley transform: peft/plugin_cayley.h, shared with BOFT) */
/* coft: each of the nblk blocks (n, n) of r with ||r_i||_F > radius is scaled in place to
 * radius * r_i / ||r_i||_F (PEFT's _project_batch, whose "I" is zeros); a block within
 * 1e-5 relative of the radius (one already projected) is left as it is */
void oft_project(int64_t nblk, int64_t n, float *r, double radius);

/* oft_layer.c */
void *oft_inject(const void *parsed, peft_cfg *cfg, const peft_site_info *site,
                 const char *adapter_name, peft_rng *rng, char *err, size_t errlen);
peft_tensor *oft_forward(void *state, peft_graph *g, const peft_site_info *site, peft_tensor *x,
                         peft_tensor *y);
int oft_merge(void *state, const peft_site_info *site, float *weight, float *bias, int sign,
              char *err, size_t errlen);
void oft_destroy(void *state);
int oft_state_dict(void *state, peft_param_ref *out, int max);
const char *oft_module_type(void *state);

#endif
