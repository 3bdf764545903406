/* vblora.h — PEFT 0.13.2's VB-LoRA as a tuner plugin (internal to vblora.so). One vector bank
 * per adapter, shared by all its layers (the adapter-level state of ABI 1.3, saved as
 * base_model.vblora_vector_bank (num_vectors, L)); per layer logits over the bank:
 * vblora_logits_A (r, in/L, n), vblora_logits_B (out/L, r, n). Each L-sized piece of A's rows
 * and B's columns is the softmax(top-k logits)-weighted sum of its k chosen bank vectors:
 *     y = base(x) + (dropout(x) A^T) B^T, A (r, in), B (out, r), no scaling. */
#ifndef VBLORA_H
#define VBLORA_H

#include <stdint.h>
#include "peft/plugin.h"
#include "peft/plugin_util.h"

extern const peft_host_api *vb_host; /* set once by peft_plugin_init */

typedef struct vb_config {
    int64_t r, num_vectors, vector_length, topk;
    double dropout, init_bank_bound, init_logits_std;
} vb_config;

typedef struct vb_bank {
    int64_t n, L;
    peft_tensor *bank; /* (n, L): trainable */
    char *mem;         /* "model.<first module>.vblora_vector_bank.<adapter>" (PEFT's name) */
} vb_bank;

typedef struct vb_layer {
    const vb_bank *b;
    int64_t in, out, r, k;
    double dropout;
    peft_tensor *la, *lb; /* logits (r, in/L, n), (out/L, r, n): trainable */
    char *mem[2];
} vb_layer;

extern const char *const vb_config_keys[];
int vb_config_parse(peft_cfg *cfg, void **out, char *err, size_t errlen);
void vb_config_free(void *parsed);
const char *const *vb_default_targets(const char *model_type);

void *vb_adapter_init(const void *parsed, peft_cfg *cfg, const peft_adapter_info *info,
                      const char *adapter_name, peft_rng *rng, char *err, size_t errlen);
void vb_adapter_destroy(void *adapter_state);
int vb_adapter_state_dict(void *adapter_state, peft_param_ref *out, int max);

void *vb_inject_in(void *adapter_state, const void *parsed, peft_cfg *cfg,
                   const peft_site_info *site, const char *adapter_name, peft_rng *rng,
                   char *err, size_t errlen);
peft_tensor *vb_forward(void *state, peft_graph *g, const peft_site_info *site, peft_tensor *x,
                        peft_tensor *y);
int vb_merge(void *state, const peft_site_info *site, float *weight, float *bias, int sign,
             char *err, size_t errlen);
void vb_destroy(void *state);
int vb_state_dict(void *state, peft_param_ref *out, int max);
const char *vb_module_type(void *state);

#endif
