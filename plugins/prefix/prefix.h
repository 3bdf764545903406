/* prefix.h — declarations shared by the prefix-tuning plugin's files (never installed, never
 * seen by the host). Built with -fvisibility=hidden: only peft_plugin_init is exported.
 *
 * Prefix tuning (PEFT 0.13.2 PrefixEncoder + PeftModel.get_prompt): per virtual token a row of
 * 2 * L * W values, W = token_dim = Hkv * D, read as 2L blocks of W: for layer l, block 2l is
 * the prefix keys and block 2l+1 the values (decoder-only and encoder-only models). For
 * encoder-decoders (num_transformer_submodules 2) PEFT concatenates the 2L blocks with
 * themselves and hands decoder layer l the blocks (4l + j) mod 2L, j = 0..3: self k, self v,
 * cross k, cross v; the encoder gets none.
 *
 * The row comes from a table embedding.weight (nvt, 2LW), or with prefix_projection (not in
 * inference mode) from embedding.weight (nvt, W) through transform.0 Linear(W, E), tanh,
 * transform.2 Linear(E, 2LW). A loaded prompt_embeddings (the MLP's output as PEFT saves it)
 * becomes the table: the MLP is gone from then on, as in PEFT's inference mode.
 *
 *   prefix_config.c   config_keys, config_parse/free (PrefixTuningConfig fields, defaults)
 *   prefix_encoder.c  prompt_init, prefix_kv, prompt_to_save / prompt_load, state_dict, destroy
 *   prefix_ops.c      the kernels on the host's tape: block of the table, the MLP's hidden
 *                     layer, block of its output; each with its backward
 *   prefix_plugin.c   the vtable and the exported entry point
 */
#ifndef PEFT_PREFIX_PLUGIN_H
#define PEFT_PREFIX_PLUGIN_H

#include <stddef.h>
#include <stdint.h>
#include "peft/plugin.h"
#include "peft/plugin_kernels.h"
#include "peft/plugin_util.h"

/* The host table handed to peft_plugin_init; set once, before any other entry is called. */
extern const peft_host_api *prefix_host;

/* The parsed adapter_config.json; model-dependent fields are read at prompt_init. */
typedef struct prefix_config {
    int64_t num_virtual_tokens;
    int prefix_projection;
    int inference_mode; /* 1: no MLP even with prefix_projection (PEFT's PrefixEncoder) */
} prefix_config;

/* One prefix-tuning adapter. Owns its tensors (freed by prefix_destroy). */
typedef struct prefix_state {
    int64_t nvt; /* P */
    int64_t L;   /* num_layers */
    int64_t W;   /* token_dim = Hkv * D: one block */
    int64_t E;   /* encoder_hidden_size */
    int nts;     /* num_transformer_submodules: 1, or 2 for encoder-decoders */
    int project; /* 1: the MLP runs (emb is (P, W)) */
    peft_tensor *emb;    /* embedding.weight: (P, 2LW), or (P, W) when project */
    peft_tensor *w0, *b0; /* transform.0: (E, W), (E) */
    peft_tensor *w2, *b2; /* transform.2: (2LW, E), (2LW) */
} prefix_state;

/* prefix_config.c */
extern const char *const prefix_config_keys[];
int prefix_config_parse(peft_cfg *cfg, void **out, char *err, size_t errlen);
void prefix_config_free(void *parsed);

/* prefix_encoder.c */
void *prefix_init(const void *parsed, peft_cfg *cfg, const peft_prompt_info *info,
                  const char *adapter_name, peft_rng *rng, char *err, size_t errlen);
int prefix_kv(void *state, peft_graph *g, int stack, int layer, int64_t B, peft_tensor **k,
              peft_tensor **v);
peft_tensor *prefix_to_save(void *state);
int prefix_load(void *state, const peft_tensor *saved, char *err, size_t errlen);
int64_t prefix_num_virtual(void *state);
int prefix_state_dict(void *state, peft_param_ref *out, int max);
const char *prefix_module_type(void *state);
void prefix_destroy(void *state);

/* prefix_ops.c — ops on the host's graph: arena outputs, backward on the tape when recording
 * and an input requires grad; NULL on arena OOM */
/* table (P, N) columns [off, off+w) -> (B, P, w) */
peft_tensor *prefix_op_table_block(peft_graph *g, peft_tensor *table, int64_t off, int64_t w,
                                   int64_t B);
/* x (P, W), w0 (E, W), b0 (E) -> tanh(x w0^T + b0) (P, E) */
peft_tensor *prefix_op_hidden(peft_graph *g, peft_tensor *x, peft_tensor *w0, peft_tensor *b0);
/* h (P, E), w2 (N, E), b2 (N) -> rows [off, off+w) of the output: h w2[off:off+w]^T +
 * b2[off:off+w] broadcast to (B, P, w) */
peft_tensor *prefix_op_out_block(peft_graph *g, peft_tensor *h, peft_tensor *w2, peft_tensor *b2,
                                 int64_t off, int64_t w, int64_t B);
/* the same arithmetic without a graph, into plain buffers (prompt_to_save):
 * hidden: out (P, E); out_block: out (P, w) */
void prefix_hidden_into(const float *x, const float *w0, const float *b0, int64_t P, int64_t W,
                        int64_t E, float *out);
void prefix_out_block_into(const float *h, const float *w2, const float *b2, int64_t P, int64_t E,
                           int64_t off, int64_t w, float *out);

#endif
