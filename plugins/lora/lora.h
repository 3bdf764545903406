/* lora.h — declarations shared by the LoRA plugin's files (never installed, never seen by the
 * host). The plugin is built with -fvisibility=hidden, so everything declared here stays
 * internal to lora.so; only peft_plugin_init (lora_plugin.c) is exported.
 *
 *   lora_config.c  config_keys, config_parse/free (validation + PEFT 0.13.2 defaults),
 *                  default_targets (TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING)
 *   lora_layer.c   inject (shapes + init), forward kernel and its backward, merge,
 *                  state_dict, module_type, set_scale, destroy
 *   lora_dora.c    DoRA (use_dora): the magnitude vector's init, its forward kernel and
 *                  backward, merge/unmerge
 *   lora_init_svd.c  PiSSA and OLoRA: A and B from an SVD / QR of the base weight, the residual
 *                  written back as the new base weight
 *   lora_embedding.c  LoRA on an embedding site (lora.Embedding): init, forward kernel and
 *                  its backward, and DoRA's embedding forward (DoraEmbeddingLayer); merge shares
 *                  lora_layer.c's transposed product (DoRA: lora_dora.c's merge)
 *   lora_combine.c add_weighted_adapter on one site (cat, svd, linear, ties, dare, magnitude
 *                  prune and their svd variants)
 *   lora_combine_config.c  add_weighted_adapter's new config (ranks, lora_alpha)
 *   lora_convert.c  PiSSA/OLoRA -> plain LoRA conversion at save (config and tensors)
 *   lora_plugin.c  the vtable and the exported entry point
 */
#ifndef PEFT_LORA_H
#define PEFT_LORA_H

#include <stddef.h>
#include <stdint.h>
#include "peft/plugin.h"
#include "peft/plugin_kernels.h"
#include "peft/plugin_util.h"

/* The host table handed to peft_plugin_init; set once, before any other entry is called. */
extern const peft_host_api *lora_host;

/* init_lora_weights */
#define LORA_INIT_DEFAULT 0  /* true: A kaiming_uniform(a=sqrt(5)), B zeros */
#define LORA_INIT_GAUSSIAN 1 /* "gaussian": A ~ N(0, (1/r)^2), B zeros */
#define LORA_INIT_NONE 2     /* false: A and B keep nn.Linear's default init */
#define LORA_INIT_PISSA 3    /* "pissa" / "pissa_niter_<n>": principal singular vectors */
#define LORA_INIT_OLORA 4    /* "olora": QR of the base weight */

/* The parsed adapter_config.json (what is the same for every site). Per-site values (rank and
 * alpha patterns, fan_in_fan_out rewrites) are read from the live cfg at inject time. */
typedef struct lora_config {
    int64_t r;
    double lora_alpha;
    double lora_dropout;
    int init;        /* LORA_INIT_* */
    int pissa_niter; /* LORA_INIT_PISSA: 0 for "pissa", n for "pissa_niter_<n>" */
    int use_rslora;
    int use_dora;
} lora_config;

/* One adapter on one site. Owns its tensors and strings (freed by lora_destroy). */
typedef struct lora_state {
    int64_t in_features, out_features, r;
    double lora_alpha;
    double scaling;       /* alpha/r or alpha/sqrt(r) (rsLoRA) */
    double mult;          /* runtime multiplier (set_scale), 1.0 by default */
    double merged_scale;  /* scaling*mult folded into the base weight, valid when merged */
    int merged;
    int embedding;        /* on an embedding site: lora_embedding_A/B (lora.Embedding) */
    float dropout;
    peft_tensor *A;       /* lora_A.weight (r, in); embedding: lora_embedding_A (r, V) */
    peft_tensor *B;       /* lora_B.weight (out, r); embedding: lora_embedding_B (dim, r) */
    char *saved_A, *saved_B;   /* "lora_A.weight", "lora_B.weight" */
    char *memory_A, *memory_B; /* "lora_A.<adapter>.weight", "lora_B.<adapter>.weight" */
    /* DoRA (use_dora); NULL otherwise */
    peft_tensor *magnitude;    /* lora_magnitude_vector (out) */
    char *saved_M;             /* "lora_magnitude_vector" (no ".weight" on disk, as PEFT) */
    char *memory_M;            /* "lora_magnitude_vector.<adapter>.weight" */
    float *merged_norm;        /* (out) ||W + s B A||_row cached by merge for unmerge (PEFT's
                                  _cache_store), host->alloc'd */
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

/* lora_dora.c */
/* Creates st->magnitude (trainable) = ||W + s B A||_row of the site's current weight. 0 or -1
 * with err set. */
int lora_dora_init(lora_state *st, const peft_site_info *site, const char *adapter_name,
                   char *err, size_t errlen);
/* x (N..., in) the site input, xu the (dropped-out) input the adapter uses, y (N..., out) the
 * output so far -> y + (m/n - 1) * (xu W^T) + (m/n) * s * B(A(xu)), n = ||W + s B A||_row
 * (detached). Arena tensor, or NULL on a shape mismatch / out of memory. */
peft_tensor *lora_dora_forward(lora_state *st, peft_graph *g, const peft_site_info *site,
                               peft_tensor *xu, peft_tensor *y);
/* 1 when the site's weight is stored (in, out) for DoRA: Conv1D, fan_in_fan_out, embeddings */
int lora_dora_in_out(const peft_site_info *site);
/* the site's weight as f32 (the tensor itself, or converted into buf of numel floats) */
const float *lora_dora_weight_view(const peft_site_info *site, float *buf);
/* norm (out) = ||W + s B A||_row of w (site layout; in_out: stored (in, out)); scratch (out, in) */
void lora_dora_norm(const lora_state *st, const float *w, int in_out, float s, float *scratch,
                    float *norm);
/* W <- (m/n) (W + s BA) (sign +1), or back (sign -1) with the norm cached by the merge. */
int lora_dora_merge(lora_state *st, const peft_site_info *site, float *weight, int sign,
                    char *err, size_t errlen);

/* lora_embedding.c */
/* an embedding site's A, B, names and init (st->r, scaling set); 0 or -1 with err set */
int lora_embedding_init(lora_state *st, const lora_config *c, const peft_site_info *site,
                        const char *adapter_name, peft_rng *rng, char *err, size_t errlen);
/* ids (N...) I32 token ids, y (N..., out) -> y + s * A^T[ids] @ B^T, or with DoRA
 * (st->magnitude) f * y + f * s * A^T[ids] @ B^T, f = m / ||W^T + s B A||_row (detached);
 * NULL on a bad shape or id, or out of arena memory */
peft_tensor *lora_embedding_forward(lora_state *st, peft_graph *g, const peft_site_info *site,
                                    peft_tensor *ids, peft_tensor *y);

/* lora_init_svd.c: fill st->A, st->B and rewrite the site's base weight (ABI 1.1 host). */
int lora_init_pissa(lora_state *st, const peft_site_info *site, int niter, char *err,
                    size_t errlen);
int lora_init_olora(lora_state *st, const peft_site_info *site, char *err, size_t errlen);

/* lora_combine.c: the vtable's combine (ABI 1.2). dst: the new adapter's state on the site,
 * srcs[n] the sources' states there (NULL where absent), opts the host's options object
 * (combination_type, density, majority_sign_method, svd_clamp, svd_full_matrices). Borrowed
 * arguments; fills dst->A and dst->B. 0 or -1 with err set. */
#define LORA_COMBINE_MAX 1024
int lora_combine(void *dst, void *const *srcs, const double *weights, int n,
                 const peft_cfg *opts, const peft_site_info *site, peft_rng *rng, char *err,
                 size_t errlen);

/* lora_combine_config.c: the vtable's combine_config (ABI 1.4): the sources checked for the
 * combination, the new config's r, lora_alpha and patterns, opts' svd_rank. 0 or -1 with err. */
int lora_combine_config(peft_cfg *cfg, const peft_cfg *const *srcs, const char *const *names,
                        const double *weights, int n, peft_cfg *opts, char *err, size_t errlen);

/* lora_convert.c: the vtable's convert_config / convert_tensor (ABI 1.4): PiSSA/OLoRA saved as
 * a plain LoRA for the original base model (see peft/convert.h). */
int lora_convert_config(peft_cfg *cfg, char *err, size_t errlen);
int lora_convert_tensor(const char *key, const peft_tensor *cur, const peft_tensor *initial,
                        peft_tensor **out, char *err, size_t errlen);

#endif
