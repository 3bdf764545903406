/* phi3.c — Phi3ForCausalLM and Phi3ForSequenceClassification (transformers 4.44):
 * LLaMA's block with fused projections, qkv_proj (q | k | v rows) and gate_up_proj (gate | up
 * rows); an adapter on a fused projection acts on the whole fused output, as in PEFT. Eager
 * attention has no sliding window (config sliding_window is not applied, as in 4.44's eager
 * Phi-3). PEFT 0.13.2 has no default target_modules for phi3. */
#include "core/models/rope_decoder.h"

static const rdec_spec SPEC = {
    .model_type = "phi3",
    .lm_class = "Phi3ForCausalLM",
    .cls_class = "Phi3ForSequenceClassification",
    .bias = RDEC_BIAS_NONE,
    .fused = 1,
    .window = RDEC_WIN_NONE,
    .tie_default = 0,
    .eps_default = 1e-5,
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

const peft_arch peft_arch_phi3 = {
    .model_type = "phi3",
    .class_name = "Phi3ForCausalLM",
    .task_type = "CAUSAL_LM",
    .build = build,
    .forward = rdec_forward,
    .free_state = rdec_free_state,
    .count_params = count,
};
