/* llama.c — LlamaForCausalLM and LlamaForSequenceClassification (transformers 4.44): the
 * LLaMA family's forward (rope_decoder.c) with configurable attention_bias / mlp_bias, untied
 * lm_head by default and RoPE scaling (rope_scaling: linear, dynamic, llama3 — Llama 3.x). */
#include "core/models/rope_decoder.h"

RDEC_ARCH(llama, "llama", "LlamaForCausalLM", "LlamaForSequenceClassification",
          .bias = RDEC_BIAS_CONFIG,
          .window = RDEC_WIN_NONE,
          .rope_scaling = 1,
          .tie_default = 0,
          .eps_default = 1e-6,
          .act_key = "hidden_act",
          .act_default = "silu");
