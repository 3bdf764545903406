/* mistral.c — MistralForCausalLM and MistralForSequenceClassification
 * (transformers 4.44): LLaMA's block without biases, its own head_dim, and sliding-window
 * attention on every layer (config sliding_window: query at position p sees keys at positions
 * p - window < j <= p, positions counting prefix-tuning keys and the KV cache). */
#include "core/models/rope_decoder.h"

RDEC_ARCH(mistral, "mistral", "MistralForCausalLM", "MistralForSequenceClassification",
          .bias = RDEC_BIAS_NONE,
          .head_dim_key = 1,
          .window = RDEC_WIN_ALL,
          .tie_default = 0,
          .eps_default = 1e-6,
          .act_key = "hidden_act",
          .act_default = "silu");
