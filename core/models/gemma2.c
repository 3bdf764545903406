/* gemma2.c — Gemma2ForCausalLM and Gemma2ForSequenceClassification (transformers
 * 4.44): Gemma's block plus post-attention and pre/post-feed-forward norms, attention scores
 * scaled by query_pre_attn_scalar^-0.5 and soft-capped (attn_logit_softcapping) before the mask,
 * a sliding window on layers 0, 2, 4, ..., and soft-capped final logits
 * (final_logit_softcapping). Prefix tuning is refused: transformers 4.44's Gemma2 takes no
 * legacy tuple cache, so PEFT 0.13.2 fails on it too. */
#include "core/models/rope_decoder.h"

RDEC_ARCH(gemma2, "gemma2", "Gemma2ForCausalLM", "Gemma2ForSequenceClassification",
          .bias = RDEC_BIAS_NONE,
          .head_dim_key = 1,
          .gemma = 1,
          .gemma2 = 1,
          .window = RDEC_WIN_EVEN,
          .tie_default = 1,
          .eps_default = 1e-6,
          .act_key = "hidden_activation",
          .act_default = "gelu_pytorch_tanh",
          .no_past_kv = "transformers 4.44's Gemma2 takes no legacy tuple of past keys/values (PEFT "
                        "0.13.2 fails with AttributeError: 'tuple' object has no attribute 'update')");
