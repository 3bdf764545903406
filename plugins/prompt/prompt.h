/* prompt.h — declarations shared by the prompt-tuning plugin's files (never installed, never
 * seen by the host). Built with -fvisibility=hidden: only peft_plugin_init is exported.
 *
 * Prompt tuning (PEFT 0.13.2 PromptEmbedding): a table of num_virtual_tokens *
 * num_transformer_submodules trainable rows of token_dim values; the first num_virtual_tokens
 * rows are the virtual-token embeddings the model prepends to its input embeddings (the second
 * half, for encoder-decoders, is kept and saved but never used, as in PEFT).
 *
 *   prompt_config.c     config_keys, config_parse/free (PromptTuningConfig fields, defaults)
 *   prompt_embedding.c  prompt_init (RANDOM / SAMPLE_VOCAB / TEXT init), the prompt_embeddings op and
 *                       its backward, prompt_to_save / prompt_load, state_dict, destroy
 *   prompt_plugin.c     the vtable and the exported entry point
 */
#ifndef PEFT_PROMPT_PLUGIN_H
#define PEFT_PROMPT_PLUGIN_H

#include <stddef.h>
#include <stdint.h>
#include "peft/plugin.h"
#include "peft/plugin_kernels.h"
#include "peft/plugin_util.h"

/* The host table handed to peft_plugin_init; set once, before any other entry is called. */
extern const peft_host_api *prompt_host;

/* prompt_tuning_init */
#define PROMPT_INIT_RANDOM 0       /* nn.Embedding's default: N(0, 1) */
#define PROMPT_INIT_SAMPLE_VOCAB 1 /* rows of the word embeddings at uniformly drawn token ids */
#define PROMPT_INIT_TEXT 2         /* the embeddings of a tokenized text (the host's tokenizer) */

/* The parsed adapter_config.json. Model-dependent fields (token_dim, num_transformer_submodules)
 * are read from the live cfg at prompt_init, after the host has filled them from the model. */
typedef struct prompt_config {
    int64_t num_virtual_tokens;
    int init;           /* PROMPT_INIT_* */
    int inference_mode; /* 1: no init from the vocabulary (the values come from a saved file) */
} prompt_config;

/* One prompt-tuning adapter. Owns its tensor (freed by prompt_destroy). */
typedef struct prompt_state {
    int64_t nvt;        /* P: the rows prepended to the input */
    int64_t rows;       /* nvt * num_transformer_submodules */
    int64_t dim;        /* token_dim */
    peft_tensor *table; /* embedding.weight (rows, dim) */
} prompt_state;

/* prompt_config.c */
extern const char *const prompt_config_keys[];
int prompt_config_parse(peft_cfg *cfg, void **out, char *err, size_t errlen);
void prompt_config_free(void *parsed);

/* prompt_embedding.c */
void *prompt_init(const void *parsed, peft_cfg *cfg, const peft_prompt_info *info,
                  const char *adapter_name, peft_rng *rng, char *err, size_t errlen);
peft_tensor *prompt_embeddings(void *state, peft_graph *g, int64_t B);
peft_tensor *prompt_to_save(void *state);
int prompt_load(void *state, const peft_tensor *saved, char *err, size_t errlen);
int64_t prompt_num_virtual(void *state);
int prompt_state_dict(void *state, peft_param_ref *out, int max);
const char *prompt_module_type(void *state);
void prompt_destroy(void *state);

#endif
