/* gemma.c — GemmaForCausalLM and GemmaForSequenceClassification (transformers 4.44):
 * head_dim independent of hidden_size / heads, embeddings (virtual tokens included) scaled by
 * sqrt(hidden_size) as an f32 tensor, RMSNorm x * (1 + w), GeGLU with hidden_activation
 * (gelu_pytorch_tanh), lm_head tied to the embeddings by default. */
#include "core/models/rope_decoder.h"

RDEC_ARCH(gemma, "gemma", "GemmaForCausalLM", "GemmaForSequenceClassification",
          .bias = RDEC_BIAS_NONE,
          .head_dim_key = 1,
          .gemma = 1,
          .window = RDEC_WIN_NONE,
          .tie_default = 1,
          .eps_default = 1e-6,
          .act_key = "hidden_activation",
          .act_default = "gelu_pytorch_tanh");
