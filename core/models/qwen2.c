/* qwen2.c — Qwen2ForCausalLM and Qwen2ForSequenceClassification (transformers 4.44):
 * LLaMA's block with biases on q_proj, k_proj and v_proj (none on o_proj and the MLP). The
 * sequence classifier pools the token before the first pad (decoder.c dec_pool_index). */
#include "core/models/rope_decoder.h"

RDEC_ARCH(qwen2, "qwen2", "Qwen2ForCausalLM", "Qwen2ForSequenceClassification",
          .bias = RDEC_BIAS_QKV,
          .window = RDEC_WIN_NONE,
          .tie_default = 0,
          .eps_default = 1e-6,
          .act_key = "hidden_act",
          .act_default = "silu");
