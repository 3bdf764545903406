/* llama.c — LlamaForCausalLM and LlamaForSequenceClassification (transformers 4.44): the
 * LLaMA family's forward (rope_decoder.c) with configurable attention_bias / mlp_bias, untied
 * lm_head by default and RoPE scaling (rope_scaling: linear, dynamic, llama3 — Llama 3.x). */
#include "core/models/rope_decoder.h"

static const rdec_spec SPEC = {
    .model_type = "llama",
    .lm_class = "LlamaForCausalLM",
    .cls_class = "LlamaForSequenceClassification",
    .bias = RDEC_BIAS_CONFIG,
    .window = RDEC_WIN_NONE,
    .rope_scaling = 1,
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

const peft_arch peft_arch_llama = {
    .model_type = "llama",
    .class_name = "LlamaForCausalLM",
    .task_type = "CAUSAL_LM",
    .build = build,
    .forward = rdec_forward,
    .free_state = rdec_free_state,
    .count_params = count,
};
