/* qwen2.c — Qwen2ForCausalLM and Qwen2ForSequenceClassification (transformers 4.44):
 * LLaMA's block with biases on q_proj, k_proj and v_proj (none on o_proj and the MLP). The
 * sequence classifier pools the token before the first pad (decoder.c dec_pool_index). */
#include "core/models/rope_decoder.h"

static const rdec_spec SPEC = {
    .model_type = "qwen2",
    .lm_class = "Qwen2ForCausalLM",
    .cls_class = "Qwen2ForSequenceClassification",
    .bias = RDEC_BIAS_QKV,
    .window = RDEC_WIN_NONE,
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

const peft_arch peft_arch_qwen2 = {
    .model_type = "qwen2",
    .class_name = "Qwen2ForCausalLM",
    .task_type = "CAUSAL_LM",
    .build = build,
    .forward = rdec_forward,
    .free_state = rdec_free_state,
    .count_params = count,
};
