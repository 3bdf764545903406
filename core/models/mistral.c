/* mistral.c — MistralForCausalLM and MistralForSequenceClassification
 * (transformers 4.44): LLaMA's block without biases, its own head_dim, and sliding-window
 * attention on every layer (config sliding_window: query at position p sees keys at positions
 * p - window < j <= p, positions counting prefix-tuning keys and the KV cache). */
#include "core/models/rope_decoder.h"

static const rdec_spec SPEC = {
    .model_type = "mistral",
    .lm_class = "MistralForCausalLM",
    .cls_class = "MistralForSequenceClassification",
    .bias = RDEC_BIAS_NONE,
    .head_dim_key = 1,
    .window = RDEC_WIN_ALL,
    .tie_default = 0,
    .eps_default = 1e-6,
    .act_key = "hidden_act",
    .act_default = "silu",
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

const peft_arch peft_arch_mistral = {
    .model_type = "mistral",
    .class_name = "MistralForCausalLM",
    .task_type = "CAUSAL_LM",
    .build = build,
    .forward = rdec_forward,
    .free_state = rdec_free_state,
    .count_params = count,
};
