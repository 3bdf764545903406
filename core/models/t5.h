/* t5.h — T5ForConditionalGeneration's state, shared by core/models/t5.c (config.json, weights,
 * sites, parameter count) and core/models/t5_forward.c (the forward pass). Internal to the
 * architecture; the rest of libpeft sees only peft_arch_t5. */
#ifndef PEFT_T5_H
#define PEFT_T5_H

#include <stdint.h>
#include "core/model/model_internal.h"

/* dense_act_fn values T5 configs use */
enum { T5_ACT_RELU, T5_ACT_GELU_TANH, T5_ACT_GELU_ERF, T5_ACT_SILU };

/* hyper-parameters from config.json (T5Config names and defaults) */
typedef struct t5_dims {
    int64_t C;      /* d_model */
    int64_t D;      /* d_kv: head size; inner = H * D may differ from C */
    int64_t F;      /* d_ff */
    int64_t H;      /* num_heads */
    int64_t L, Ld;  /* num_layers (encoder), num_decoder_layers (default num_layers) */
    int64_t V;      /* vocab_size */
    int64_t NB;     /* relative_attention_num_buckets */
    int64_t maxd;   /* relative_attention_max_distance */
    double eps;     /* layer_norm_epsilon */
    float dropout;  /* dropout_rate */
    int gated;      /* is_gated_act: wi_0 / wi_1 */
    int act;        /* T5_ACT_* of dense_act_fn */
    int tie;        /* tie_word_embeddings: lm_head = shared, output scaled by d_model^-0.5 */
    int has_pad, has_start;
    int32_t pad, start; /* pad_token_id, decoder_start_token_id (for shifting labels right) */
} t5_dims;

/* one attention (SelfAttention or EncDecAttention): four bias-free linear sites */
typedef struct t5_attn {
    peft_site *q, *k, *v; /* (inner, C) */
    peft_site *o;         /* (C, inner) */
} t5_attn;

typedef struct t5_block {
    t5_attn self;
    peft_site *ln_self;    /* (C) layer.0.layer_norm (norm sites, T5LayerNorm = RMSNorm) */
    t5_attn cross;         /* decoder only */
    peft_site *ln_cross;   /* (C) decoder layer.1.layer_norm */
    peft_site *wi, *wi1;   /* (F, C): wi, or wi_0 and wi_1 when gated (wi1 NULL otherwise) */
    peft_site *wo;         /* (C, F) */
    peft_site *ln_ff;      /* (C) */
} t5_block;

typedef struct t5_state {
    t5_dims d;
    peft_tensor *shared;           /* (V, C): both stacks' embed_tokens */
    peft_tensor *lm_head;          /* (V, C): shared when tied */
    peft_tensor *enc_rel, *dec_rel; /* (NB, H): block 0's relative_attention_bias of each stack */
    peft_site *enc_ln, *dec_ln;    /* (C) final_layer_norm (norm sites) */
    t5_block *enc, *dec;           /* L and Ld blocks */
} t5_state;

/* reads and checks the dimensions; m only needs dir and config. 0 or -1 with err naming
 * config.json and the field. */
int t5_read_dims(const peft_base_model *m, t5_dims *d, char *err, size_t errlen);

/* arch->forward (t5_forward.c) */
int t5_forward(peft_base_model *m, peft_graph *g, const peft_model_inputs *in,
               peft_model_outputs *out, char *err, size_t errlen);

#endif
