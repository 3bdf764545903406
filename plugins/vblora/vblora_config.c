/* vblora_config.c — VBLoRAConfig as PEFT 0.13.2 saves it: fields, validation, defaults, and
 * PEFT's default targets. */
#include <string.h>
#include "vblora.h"
#include "peft/plugin_config.h"

const char *const vb_config_keys[] = {
    "auto_mapping", "base_model_name_or_path", "bias", "fan_in_fan_out", "inference_mode",
    "init_logits_std", "init_vector_bank_bound", "layers_pattern", "layers_to_transform",
    "modules_to_save", "num_vectors", "peft_type", "r", "revision", "save_only_topk_weights",
    "target_modules", "task_type", "topk", "vblora_dropout", "vector_length",
    "exclude_modules", "runtime_config", /* newer PEFT: accepted when loading */
    NULL,
};

int vb_config_parse(peft_cfg *cfg, void **out, char *err, size_t errlen)
{
    const peft_pu_cfg pc = {vb_host, cfg, "vblora config", err, errlen};
    static const char *const biases[] = {"none", "all", "vblora_only", NULL};
    vb_config c = {0};
    int fifo = 0, topk_only = 0, bias = 0;
    if (peft_pu_cfg_begin(&pc, out) || peft_pu_cfg_peft_type(&pc, "VBLORA") ||
        peft_pu_cfg_pos_int(&pc, "r", 4, &c.r) ||
        peft_pu_cfg_pos_int(&pc, "num_vectors", 256, &c.num_vectors) ||
        peft_pu_cfg_pos_int(&pc, "vector_length", 256, &c.vector_length) ||
        peft_pu_cfg_pos_int(&pc, "topk", 2, &c.topk) ||
        peft_pu_cfg_bool(&pc, "save_only_topk_weights", 0, &topk_only) ||
        peft_pu_cfg_prob(&pc, "vblora_dropout", 0, &c.dropout) ||
        peft_pu_cfg_bool(&pc, "fan_in_fan_out", 0, &fifo) ||
        peft_pu_cfg_enum(&pc, "bias", biases, 0, &bias) ||
        peft_pu_cfg_real(&pc, "init_vector_bank_bound", 0.02, 0, &c.init_bank_bound) ||
        peft_pu_cfg_real(&pc, "init_logits_std", 0.1, 0, &c.init_logits_std) ||
        peft_pu_cfg_opt_dict(&pc, "runtime_config", NULL) ||
        peft_pu_cfg_peft_fields(&pc, NULL) || peft_pu_cfg_module_fields(&pc, 1))
        return -1;
    if (c.topk > c.num_vectors) {
        peft_pu_errf(err, errlen, "vblora config: topk (%lld) cannot exceed num_vectors (%lld)",
                     (long long)c.topk, (long long)c.num_vectors);
        return -1;
    }
    if (topk_only) {
        peft_pu_errf(err, errlen, "vblora config: save_only_topk_weights true is not supported "
                     "by libpeft (such an adapter cannot be trained further; save the full "
                     "logits with false)");
        return -1;
    }
    return peft_pu_cfg_finish(&pc, &c, sizeof c, out);
}

void vb_config_free(void *parsed) { vb_host->free(parsed); }

/* PEFT 0.13.2's TRANSFORMERS_MODELS_TO_VBLORA_TARGET_MODULES_MAPPING for libpeft's models */
#define L(...) (const char *const[]){__VA_ARGS__, NULL}
static const struct {
    const char *model_type;
    const char *const *targets;
} vb_default_map[] = {
    {"t5", L("q", "k", "v", "o", "wi", "wo")}, {"mt5", L("q", "k", "v", "o", "wi_0", "wi_1", "wo")},
    {"bart", L("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")},
    {"gpt2", L("c_attn")}, {"bloom", L("query_key_value")},
    {"opt", L("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")},
    {"gptj", L("q_proj", "v_proj")}, {"gpt_neox", L("query_key_value")},
    {"gpt_neo", L("q_proj", "v_proj")}, {"llama", L("q_proj", "v_proj")},
    {"bert", L("query", "value")}, {"roberta", L("query", "value")},
    {"deberta-v2", L("query_proj", "key_proj", "value_proj", "dense")},
    {"gpt_bigcode", L("c_attn")}, {"deberta", L("in_proj")}, {"qwen2", L("q_proj", "v_proj")},
};
#undef L

const char *const *vb_default_targets(const char *model_type)
{
    if (!model_type) return NULL;
    for (size_t i = 0; i < PEFT_PU_COUNT(vb_default_map); i++)
        if (!strcmp(vb_default_map[i].model_type, model_type)) return vb_default_map[i].targets;
    return NULL;
}
