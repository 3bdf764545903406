/* p_tuning.h — declarations shared by the P-tuning plugin's files (never installed, never seen
 * by the host). Built with -fvisibility=hidden: only peft_plugin_init is exported.
 *
 * P-tuning (PEFT 0.13.2 PromptEncoder): a table of R = num_virtual_tokens *
 * num_transformer_submodules rows of token_dim values (embedding.weight) run through an encoder
 * whose output is the virtual tokens; the model sees its first P = num_virtual_tokens rows.
 *   MLP:  Linear(C, H) ReLU Linear(H, H) ReLU Linear(H, C)                     (mlp_head.0/2/4)
 *   LSTM: a bidirectional LSTM(C -> H, encoder_num_layers layers, dropout between layers)
 *         (lstm_head) then Linear(2H, 2H) ReLU Linear(2H, C)                   (mlp_head.0/2)
 * H = encoder_hidden_size (default token_dim). PEFT saves the encoder's OUTPUT (R, C) as
 * prompt_embeddings and never the encoder: an adapter loaded from a file (inference_mode) is a
 * plain table, which is what a load turns this state into (pt_load).
 *
 *   pt_config.c   config_keys, config_parse/free (PromptEncoderConfig fields, defaults)
 *   pt_state.c    prompt_init (PyTorch's default inits), the virtual tokens, prompt_to_save /
 *                 prompt_load, state_dict, destroy
 *   pt_encoder.c  the encoder as one op on the host's tape: forward into a workspace, backward
 *                 through the MLP head and the LSTM
 *   pt_lstm.c     one direction of one LSTM layer, forward and backward (the kernels)
 *   pt_plugin.c   the vtable and the exported entry point
 */
#ifndef PEFT_P_TUNING_PLUGIN_H
#define PEFT_P_TUNING_PLUGIN_H

#include <stddef.h>
#include <stdint.h>
#include "peft/plugin.h"
#include "peft/plugin_kernels.h"
#include "peft/plugin_util.h"

/* The host table handed to peft_plugin_init; set once, before any other entry is called. */
extern const peft_host_api *pt_host;

#define PT_MLP 0  /* encoder_reparameterization_type "MLP" */
#define PT_LSTM 1 /* "LSTM" */

#define PT_MAX_LSTM_LAYERS 8 /* encoder_num_layers beyond this is refused */
#define PT_MAX_HEAD 3        /* linears in the MLP head */
/* embedding + 8 per LSTM layer + 2 per linear */
#define PT_MAX_PARAMS (1 + 8 * PT_MAX_LSTM_LAYERS + 2 * PT_MAX_HEAD)

/* The parsed adapter_config.json (token_dim and encoder_hidden_size are read at prompt_init,
 * after the host has filled token_dim from the model). */
typedef struct pt_config {
    int64_t num_virtual_tokens;
    int type;           /* PT_MLP / PT_LSTM */
    int64_t num_layers; /* encoder_num_layers (the LSTM's; the MLP always has 3 linears) */
    double dropout;     /* encoder_dropout (between LSTM layers, in training) */
    int inference_mode; /* 1: no encoder, the table is the output (a loaded adapter) */
} pt_config;

/* One P-tuning adapter. Owns its tensors (freed by pt_destroy). */
typedef struct pt_state {
    int64_t nvt, rows, dim, hidden; /* P, R, C, H */
    int encoder;                    /* 1: the encoder runs (training), 0: a plain table */
    int type;                       /* PT_MLP / PT_LSTM */
    int n_lstm;                     /* LSTM layers (0 for the MLP) */
    int n_head;                     /* linears in the MLP head */
    double dropout;
    peft_tensor *emb;                              /* embedding.weight (R, C) */
    peft_tensor *lstm[PT_MAX_LSTM_LAYERS][2][4];   /* [layer][dir] W_ih (4H, in), W_hh (4H, H),
                                                      b_ih (4H), b_hh (4H) */
    peft_tensor *head_w[PT_MAX_HEAD], *head_b[PT_MAX_HEAD]; /* mlp_head.<2i> (out, in), (out) */
    int64_t head_dims[PT_MAX_HEAD + 1];            /* d0 -> d1 -> ... -> C */
    char names[PT_MAX_PARAMS][40];                 /* state-dict names, in PEFT's order */
    peft_tensor *params[PT_MAX_PARAMS];
    int n_params;
} pt_state;

/* pt_config.c */
extern const char *const pt_config_keys[];
int pt_config_parse(peft_cfg *cfg, void **out, char *err, size_t errlen);
void pt_config_free(void *parsed);

/* pt_state.c */
void *pt_init(const void *parsed, peft_cfg *cfg, const peft_prompt_info *info,
              const char *adapter_name, peft_rng *rng, char *err, size_t errlen);
peft_tensor *pt_embeddings(void *state, peft_graph *g, int64_t B);
peft_tensor *pt_to_save(void *state);
int pt_load(void *state, const peft_tensor *saved, char *err, size_t errlen);
int64_t pt_num_virtual(void *state);
int pt_state_dict(void *state, peft_param_ref *out, int max);
const char *pt_module_type(void *state);
void pt_destroy(void *state);

/* pt_encoder.c */
/* the encoder's output (R, C) for the table, an arena tensor with its backward on the tape
 * (dropout between LSTM layers when the graph trains); NULL on arena/tape OOM */
peft_tensor *pt_encoder_op(pt_state *st, peft_graph *g);
/* the same arithmetic without a graph (no dropout) into out (R, C); 0, or -1 on OOM */
int pt_encoder_eval(const pt_state *st, float *out);

/* pt_lstm.c — one direction (rev 0 forward in time, 1 backward) of one LSTM layer over T steps.
 * x (T, in), w_ih (4H, in), w_hh (4H, H), b_ih, b_hh (4H); gate order i, f, g, o (PyTorch).
 * Forward: gates (T, 4H) the activated gates, c (T, H) the cell states, y (T, ldy) gets h_t at
 * columns [0, H) of each row (pass y + rev * H for the reverse half). */
void pt_lstm_forward(const float *x, int64_t T, int64_t in, int64_t H, const float *w_ih,
                     const float *w_hh, const float *b_ih, const float *b_hh, int rev,
                     float *gates, float *c, float *y, int64_t ldy);
/* Backward from dy (T, ldy) (the same columns as y), given the forward's x, gates, c, y:
 * dx (T, in) += (may be NULL), dw_ih, dw_hh, db_ih, db_hh += (each may be NULL). scratch:
 * (T * 4H + T * H + 2 * H) floats. */
void pt_lstm_backward(const float *x, int64_t T, int64_t in, int64_t H, const float *w_ih,
                      const float *w_hh, int rev, const float *gates, const float *c,
                      const float *y, int64_t ldy, const float *dy, float *dx, float *dw_ih,
                      float *dw_hh, float *db_ih, float *db_hh, float *scratch);

#endif
