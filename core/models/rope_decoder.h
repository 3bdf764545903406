/* rope_decoder.h — the LLaMA family of decoder-only transformers (transformers 4.44): LLaMA
 * (Llama-2 and Llama-3 with RoPE scaling), Qwen2, Mistral, Gemma, Gemma2 and Phi-3 share one
 * forward (RMS-normed pre-norm blocks, rotary grouped-query attention, gated MLP), told apart by
 * a spec: biases, fused projections (Phi-3), Gemma's norms and embedding scale, Gemma2's extra
 * norms, soft-capping and alternating sliding window, Mistral's sliding window, RoPE scaling.
 * Each architecture file (llama.c, qwen2.c, ...) holds its spec and its peft_arch.
 *
 * Internal to core/models; nothing here is public API.
 */
#ifndef PEFT_MODELS_ROPE_DECODER_H
#define PEFT_MODELS_ROPE_DECODER_H

#include <stddef.h>
#include <stdint.h>
#include "core/model/model_internal.h"

enum { RDEC_BIAS_CONFIG, /* attention_bias / mlp_bias from config.json (LLaMA) */
       RDEC_BIAS_QKV,    /* q_proj, k_proj, v_proj with bias, o_proj and the MLP without (Qwen2) */
       RDEC_BIAS_NONE };
enum { RDEC_WIN_NONE,    /* full causal attention */
       RDEC_WIN_ALL,     /* config sliding_window (null = none) on every layer (Mistral) */
       RDEC_WIN_EVEN };  /* config sliding_window on layers 0, 2, 4, ... (Gemma2) */

typedef struct rdec_spec {
    const char *model_type;   /* config.json model_type, also the name in messages */
    const char *lm_class;     /* "...ForCausalLM" */
    const char *cls_class;    /* "...ForSequenceClassification" */
    int bias;                 /* RDEC_BIAS_* */
    int head_dim_key;         /* config "head_dim" may differ from hidden_size / heads */
    int fused;                /* Phi-3: qkv_proj (q | k | v rows) and gate_up_proj (gate | up) */
    int gemma;                /* (1 + w) RMS norms, embeddings * sqrt(hidden_size) */
    int gemma2;               /* + post-attention / pre- and post-feed-forward norms, soft-capping
                                 of scores and final logits, query_pre_attn_scalar */
    int window;               /* RDEC_WIN_* */
    int rope_scaling;         /* rope_scaling accepted (LLaMA) */
    int tie_default;          /* tie_word_embeddings when config.json does not say */
    double eps_default;       /* rms_norm_eps when config.json does not say */
    const char *act_key;      /* "hidden_act", or Gemma's "hidden_activation" */
    const char *act_default;  /* its default */
    const char *no_past_kv;   /* why prefix tuning (past keys/values) is refused, or NULL */
} rdec_spec;

/* peft_arch entries over a spec (the per-arch files wrap build and count_params) */
int rdec_build(peft_base_model *m, const rdec_spec *spec, char *err, size_t errlen);
int rdec_forward(peft_base_model *m, peft_graph *g, const peft_model_inputs *in,
                 peft_model_outputs *out, char *err, size_t errlen);
void rdec_free_state(void *state);
int rdec_count_params(const rdec_spec *spec, const json_t *config, const char *class_name,
                      int64_t *n, char *err, size_t errlen);

/* One architecture of the family: its spec (model_type, the causal-LM and classifier class
 * names, then the spec's other fields as designated initializers) and `const peft_arch
 * peft_arch_<id>` over it (CAUSAL_LM by default), e.g.
 *     RDEC_ARCH(qwen2, "qwen2", "Qwen2ForCausalLM", "Qwen2ForSequenceClassification",
 *               .bias = RDEC_BIAS_QKV, .eps_default = 1e-6, ...); */
#define RDEC_ARCH(id, type, lm, cls, ...)                                                     \
    static const rdec_spec id##_spec = {.model_type = type, .lm_class = lm, .cls_class = cls, \
                                        __VA_ARGS__};                                       \
    static int id##_build(peft_base_model *m, char *err, size_t errlen)                       \
    {                                                                                         \
        return rdec_build(m, &id##_spec, err, errlen);                                        \
    }                                                                                         \
    static int id##_count(const json_t *config, const char *class_name, int64_t *n,          \
                          char *err, size_t errlen)                                           \
    {                                                                                         \
        return rdec_count_params(&id##_spec, config, class_name, n, err, errlen);             \
    }                                                                                         \
    const peft_arch peft_arch_##id = {.model_type = type,                                     \
                                      .class_name = lm,                                       \
                                      .task_type = "CAUSAL_LM",                               \
                                      .build = id##_build,                                    \
                                      .forward = rdec_forward,                                \
                                      .free_state = rdec_free_state,                          \
                                      .count_params = id##_count}

#endif
