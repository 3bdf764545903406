/* phi3.c — Phi3ForCausalLM and Phi3ForSequenceClassification (transformers 4.44):
 * LLaMA's block with fused projections, qkv_proj (q | k | v rows) and gate_up_proj (gate | up
 * rows); an adapter on a fused projection acts on the whole fused output, as in PEFT. Eager
 * attention has no sliding window (config sliding_window is not applied, as in 4.44's eager
 * Phi-3). PEFT 0.13.2 has no default target_modules for phi3. */
#include "core/models/rope_decoder.h"

RDEC_ARCH(phi3, "phi3", "Phi3ForCausalLM", "Phi3ForSequenceClassification",
          .bias = RDEC_BIAS_NONE,
          .fused = 1,
          .window = RDEC_WIN_NONE,
          .tie_default = 0,
          .eps_default = 1e-5,
          .act_key = "hidden_act",
          .act_default = "silu");
