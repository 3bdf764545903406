/* peft/plugin_targets.h — PEFT 0.13.2's default target modules shared by several methods:
 * TRANSFORMERS_MODELS_TO_LORA_TARGET_MODULES_MAPPING, which PEFT's BOFT and HRA models read
 * too (boft/model.py, hra/model.py). Header-only, static data; no ABI, no libpeft. A plugin's
 * default_targets(model_type) may return peft_pu_lora_targets(model_type). */
#ifndef PEFT_PLUGIN_TARGETS_H
#define PEFT_PLUGIN_TARGETS_H

#include <stddef.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/* NULL-terminated target_modules for model_type (static storage), or NULL when PEFT has none */
static inline const char *const *peft_pu_lora_targets(const char *model_type)
{
    /* in PEFT's order: the model type, then its targets, NULL-terminated */
    static const char *const map[][6] = {
        {"t5", "q", "v", NULL},
        {"mt5", "q", "v", NULL},
        {"bart", "q_proj", "v_proj", NULL},
        {"gpt2", "c_attn", NULL},
        {"bloom", "query_key_value", NULL},
        {"blip-2", "q", "v", "q_proj", "v_proj", NULL},
        {"opt", "q_proj", "v_proj", NULL},
        {"gptj", "q_proj", "v_proj", NULL},
        {"gpt_neox", "query_key_value", NULL},
        {"gpt_neo", "q_proj", "v_proj", NULL},
        {"bert", "query", "value", NULL},
        {"roberta", "query", "value", NULL},
        {"xlm-roberta", "query", "value", NULL},
        {"electra", "query", "value", NULL},
        {"deberta-v2", "query_proj", "value_proj", NULL},
        {"deberta", "in_proj", NULL},
        {"layoutlm", "query", "value", NULL},
        {"llama", "q_proj", "v_proj", NULL},
        {"chatglm", "query_key_value", NULL},
        {"gpt_bigcode", "c_attn", NULL},
        {"mpt", "Wqkv", NULL},
        {"RefinedWebModel", "query_key_value", NULL},
        {"RefinedWeb", "query_key_value", NULL},
        {"falcon", "query_key_value", NULL},
        {"btlm", "c_proj", "c_attn", NULL},
        {"codegen", "qkv_proj", NULL},
        {"mistral", "q_proj", "v_proj", NULL},
        {"mixtral", "q_proj", "v_proj", NULL},
        {"stablelm", "q_proj", "v_proj", NULL},
        {"phi", "q_proj", "v_proj", "fc1", "fc2", NULL},
        {"gemma", "q_proj", "v_proj", NULL},
        {"gemma2", "q_proj", "v_proj", NULL},
        {"qwen2", "q_proj", "v_proj", NULL},
    };
    if (!model_type) return NULL;
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (!strcmp(map[i][0], model_type)) return &map[i][1];
    return NULL;
}

#ifdef __cplusplus
}
#endif
#endif
