/* vera.h — the VeRA example of the plugin guide (docs/plugin-guide.md, section 10), built out of
 * tree against the installed SDK; the same code ships as plugins/vera.
 * (internal to vera.so; only peft_plugin_init is exported). One pair of frozen random
 * projections per adapter, shared by all its layers (the adapter-level state of ABI 1.3:
 * vera_A (r, max in), vera_B (max out, r), kaiming-uniform from torch's CPU generator seeded
 * with projection_prng_key); per layer two trained vectors lambda_b (out) and lambda_d (r):
 *     y = base(x) + lambda_b * ((lambda_d * (dropout(x) @ A[:, :in]^T)) @ B[:out, :]^T). */
#ifndef VERA_H
#define VERA_H

#include <stdint.h>
#include "peft/plugin.h"
#include "peft/plugin_util.h"

extern const peft_host_api *vera_host; /* set once by peft_plugin_init */

typedef struct vera_config {
    int64_t r;
    int64_t prng_key;    /* projection_prng_key */
    int save_projection; /* vera_A / vera_B saved (persistent buffers) */
    double dropout;      /* vera_dropout */
    double d_initial;
    int init_weights;
} vera_config;

/* The adapter-level state: the shared projections (buffers). */
typedef struct vera_proj {
    int64_t r, max_in, max_out;
    int64_t key;
    int save;
    peft_tensor *A, *B;   /* (r, max_in), (max_out, r) */
    char *a_mem, *b_mem;  /* "vera_A.<adapter>", "vera_B.<adapter>" */
} vera_proj;

/* One layer's state. */
typedef struct vera_layer {
    const vera_proj *p; /* the adapter's projections (outlive the layer) */
    int64_t in, out, r;
    double dropout;
    peft_tensor *lb, *ld;  /* vera_lambda_b (out), vera_lambda_d (r): trainable */
    char *names[2];        /* in-memory names */
} vera_layer;

extern const char *const vera_config_keys[];
int vera_config_parse(peft_cfg *cfg, void **out, char *err, size_t errlen);
void vera_config_free(void *parsed);
const char *const *vera_default_targets(const char *model_type);

/* vera_proj.c: torch's CPU generator (mt19937) and kaiming_uniform_, bit for bit */
void *vera_adapter_init(const void *parsed, peft_cfg *cfg, const peft_adapter_info *info,
                        const char *adapter_name, peft_rng *rng, char *err, size_t errlen);
void vera_adapter_destroy(void *adapter_state);
int vera_adapter_state_dict(void *adapter_state, peft_param_ref *out, int max);
/* the projections PEFT generates for (r, max_in, max_out, key): A (r, max_in) then B
 * (max_out, r) from one generator; 0 or -1 (OOM) */
int vera_generate(int64_t key, int64_t r, int64_t max_in, int64_t max_out, float *A, float *B);

/* vera_layer.c */
void *vera_inject_in(void *adapter_state, const void *parsed, peft_cfg *cfg,
                     const peft_site_info *site, const char *adapter_name, peft_rng *rng,
                     char *err, size_t errlen);
peft_tensor *vera_forward(void *state, peft_graph *g, const peft_site_info *site, peft_tensor *x,
                          peft_tensor *y);
int vera_merge(void *state, const peft_site_info *site, float *weight, float *bias, int sign,
               char *err, size_t errlen);
void vera_destroy(void *state);
int vera_state_dict(void *state, peft_param_ref *out, int max);
const char *vera_module_type(void *state);

#endif
