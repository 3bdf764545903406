/* gemma2.c — Gemma2ForCausalLM and Gemma2ForSequenceClassification (transformers
 * 4.44): Gemma's block plus post-attention and pre/post-feed-forward norms, attention scores
 * scaled by query_pre_attn_scalar^-0.5 and soft-capped (attn_logit_softcapping) before the mask,
 * a sliding window on layers 0, 2, 4, ..., and soft-capped final logits
 * (final_logit_softcapping). Prefix tuning is refused: transformers 4.44's Gemma2 takes no
 * legacy tuple cache, so PEFT 0.13.2 fails on it too. */
#include "core/models/rope_decoder.h"

static const rdec_spec SPEC = {
    .model_type = "gemma2",
    .lm_class = "Gemma2ForCausalLM",
    .cls_class = "Gemma2ForSequenceClassification",
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
                  "0.13.2 fails with AttributeError: 'tuple' object has no attribute 'update')",
};

static int build(peft_base_model *m, char *err, size_t errlen)
{
    return rdec_build(m, &SPEC, err, errlen);
}

static int count(const json_t *config, const char *class_name, int64_t *n, char *err,
                 size_t errlen)
{
    return rdec_count_params(&SPEC, config, class_name, n, err, errlen);
}

const peft_arch peft_arch_gemma2 = {
    .model_type = "gemma2",
    .class_name = "Gemma2ForCausalLM",
    .task_type = "CAUSAL_LM",
    .build = build,
    .forward = rdec_forward,
    .free_state = rdec_free_state,
    .count_params = count,
};
