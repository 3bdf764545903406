/* adalora.h — PEFT 0.13.2's AdaLoRA as a tuner plugin (internal to adalora.so). Per layer an
 * SVD-shaped delta P diag(E) Q: lora_A (r, in), lora_E (r, 1), lora_B (out, r),
 *     y = base(x) + (dropout(x) (A*E)^T B^T) * scaling / (ranknum + 1e-5),
 * scaling = lora_alpha (or r when lora_alpha <= 0), ranknum = init_r (kept through resizing).
 * Training (ABI 1.3 hooks): the orthogonal regulariser orth_reg_weight * mean ||P P^T - I||_F
 * added to the loss, and PEFT's RankAllocator after each optimizer step (importance EMA,
 * cubic budget schedule, masking lora_E, rank_pattern written to the config). */
#ifndef ADALORA_H
#define ADALORA_H

#include <stdint.h>
#include "peft/plugin.h"
#include "peft/plugin_util.h"

extern const peft_host_api *ada_host; /* set once by peft_plugin_init */

typedef struct ada_config {
    int64_t init_r, target_r, tinit, tfinal, delta_t, total_step; /* total_step 0: unset */
    double beta1, beta2, orth_reg_weight, lora_alpha, dropout;
    int init_weights, inference_mode;
} ada_config;

struct ada_adapter;

/* One layer. */
typedef struct ada_layer {
    struct ada_adapter *ad;
    char *site; /* module name (rank_pattern keys) */
    int64_t in, out, r;
    float ranknum;        /* the ranknum parameter (init_r) */
    double scaling;
    double dropout;
    peft_tensor *A, *B, *E; /* (r, in), (out, r), (r, 1): trainable */
    peft_tensor *rn;        /* ranknum (1): a frozen parameter, counted, never saved */
    char *mem[4];           /* in-memory names */
    /* importance (RankAllocator): exp_avg_ipt and exp_avg_unc per element of A, B, E */
    float *ipt_avg[3], *ipt_unc[3];
    /* after an in-memory allocation: the kept ranks, and rank-cut copies for saving */
    uint8_t *kept; /* r flags, NULL when no pattern applies */
    peft_tensor *cut[3];
} ada_layer;

/* The adapter-level state: its layers in module order and the allocator's state. */
typedef struct ada_adapter {
    ada_config c;
    ada_layer **layers;
    int n_layers, cap_layers;
    int64_t init_bgt, target_bgt;
    int have_ipt;
} ada_adapter;

extern const char *const ada_config_keys[];
int ada_config_parse(peft_cfg *cfg, void **out, char *err, size_t errlen);
void ada_config_free(void *parsed);
const char *const *ada_default_targets(const char *model_type);

/* adalora_layer.c */
void *ada_inject_in(void *adapter_state, const void *parsed, peft_cfg *cfg,
                    const peft_site_info *site, const char *adapter_name, peft_rng *rng,
                    char *err, size_t errlen);
peft_tensor *ada_forward(void *state, peft_graph *g, const peft_site_info *site, peft_tensor *x,
                         peft_tensor *y);
int ada_merge(void *state, const peft_site_info *site, float *weight, float *bias, int sign,
              char *err, size_t errlen);
void ada_destroy(void *state);
int ada_state_dict(void *state, peft_param_ref *out, int max);
const char *ada_module_type(void *state);
int ada_loaded(void *adapter_state, void *site_state, char *err, size_t errlen);
/* the kept-rank pattern applies to l: cut copies sized, l->kept set (takes kept) */
int ada_layer_set_pattern(ada_layer *l, uint8_t *kept);

/* adalora_train.c */
void *ada_adapter_init(const void *parsed, peft_cfg *cfg, const peft_adapter_info *info,
                       const char *adapter_name, peft_rng *rng, char *err, size_t errlen);
void ada_adapter_destroy(void *adapter_state);
int ada_loss_term(void *adapter_state, peft_graph *g, peft_tensor **term);
int ada_step_end(void *adapter_state, peft_cfg *cfg, int64_t step, int64_t total_steps, char *err,
                 size_t errlen);

#endif
