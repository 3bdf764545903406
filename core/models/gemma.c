/* gemma.c — GemmaForCausalLM and GemmaForSequenceClassification (transformers 4.44):
 * head_dim independent of hidden_size / heads, embeddings (virtual tokens included) scaled by
 * sqrt(hidden_size) as an f32 tensor, RMSNorm x * (1 + w), GeGLU with hidden_activation
 * (gelu_pytorch_tanh), lm_head tied to the embeddings by default. */
#include "core/models/rope_decoder.h"

static const rdec_spec SPEC = {
    .model_type = "gemma",
    .lm_class = "GemmaForCausalLM",
    .cls_class = "GemmaForSequenceClassification",
    .bias = RDEC_BIAS_NONE,
    .head_dim_key = 1,
    .gemma = 1,
    .window = RDEC_WIN_NONE,
    .tie_default = 1,
    .eps_default = 1e-6,
    .act_key = "hidden_activation",
    .act_default = "gelu_pytorch_tanh",
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

const peft_arch peft_arch_gemma = {
    .model_type = "gemma",
    .class_name = "GemmaForCausalLM",
    .task_type = "CAUSAL_LM",
    .build = build,
    .forward = rdec_forward,
    .free_state = rdec_free_state,
    .count_params = count,
};
