/* vera_config.c — VeraConfig as PEFT 0.13.2 saves it: the field list, validation and the
 * defaults written back, and PEFT's default target modules per model type. */
#include <string.h>
#include "vera.h"
#include "peft/plugin_config.h"

const char *const vera_config_keys[] = {
    "auto_mapping", "base_model_name_or_path", "bias", "d_initial", "fan_in_fan_out",
    "inference_mode", "init_weights", "layers_pattern", "layers_to_transform",
    "modules_to_save", "peft_type", "projection_prng_key", "r", "revision", "save_projection",
    "target_modules", "task_type", "vera_dropout",
    "exclude_modules", "runtime_config", /* newer PEFT: accepted when loading */
    NULL,
};

int vera_config_parse(peft_cfg *cfg, void **out, char *err, size_t errlen)
{
    const peft_pu_cfg pc = {vera_host, cfg, "vera config", err, errlen};
    static const char *const biases[] = {"none", "all", "vera_only", NULL};
    vera_config c = {.r = 256, .save_projection = 1, .d_initial = 0.1, .init_weights = 1};
    int fifo = 0, bias_idx = 0;
    if (peft_pu_cfg_begin(&pc, out) || peft_pu_cfg_peft_type(&pc, "VERA") ||
        peft_pu_cfg_pos_int(&pc, "r", 256, &c.r) ||
        peft_pu_cfg_int(&pc, "projection_prng_key", 0, "an integer", &c.prng_key) ||
        peft_pu_cfg_bool(&pc, "save_projection", 1, &c.save_projection) ||
        peft_pu_cfg_prob(&pc, "vera_dropout", 0, &c.dropout) ||
        peft_pu_cfg_real(&pc, "d_initial", 0.1, 0, &c.d_initial) ||
        peft_pu_cfg_bool(&pc, "init_weights", 1, &c.init_weights) ||
        peft_pu_cfg_bool(&pc, "fan_in_fan_out", 0, &fifo) ||
        peft_pu_cfg_enum(&pc, "bias", biases, 0, &bias_idx) ||
        peft_pu_cfg_opt_dict(&pc, "runtime_config", NULL) ||
        peft_pu_cfg_peft_fields(&pc, NULL) || peft_pu_cfg_module_fields(&pc, 1))
        return -1;
    if (c.prng_key < 0) {
        peft_pu_errf(err, errlen, "vera config: field 'projection_prng_key' must be a "
                     "non-negative integer (a torch.Generator seed), got %lld", (long long)c.prng_key);
        return -1;
    }
    return peft_pu_cfg_finish(&pc, &c, sizeof c, out);
}

void vera_config_free(void *parsed) { vera_host->free(parsed); }

/* PEFT 0.13.2's TRANSFORMERS_MODELS_TO_VERA_TARGET_MODULES_MAPPING for libpeft's models */
#define L(...) (const char *const[]){__VA_ARGS__, NULL}
static const struct {
    const char *model_type;
    const char *const *targets;
} vera_default_map[] = {
    {"t5", L("q", "v")},           {"mt5", L("q", "v")},
    {"bart", L("q_proj", "v_proj")}, {"gpt2", L("c_attn")},
    {"bloom", L("query_key_value")}, {"opt", L("q_proj", "v_proj")},
    {"gptj", L("q_proj", "v_proj")}, {"gpt_neox", L("query_key_value")},
    {"gpt_neo", L("q_proj", "v_proj")}, {"bert", L("query", "value")},
    {"roberta", L("query", "value")}, {"xlm-roberta", L("query", "value")},
    {"electra", L("query", "value")}, {"deberta-v2", L("query_proj", "value_proj")},
    {"deberta", L("in_proj")},     {"layoutlm", L("query", "value")},
    {"llama", L("q_proj", "v_proj")}, {"chatglm", L("query_key_value")},
    {"gpt_bigcode", L("c_attn")},  {"mpt", L("Wqkv")},
    {"RefinedWebModel", L("query_key_value")}, {"RefinedWeb", L("query_key_value")},
    {"falcon", L("query_key_value")}, {"btlm", L("c_proj", "c_attn")},
    {"codegen", L("qkv_proj")},    {"mistral", L("q_proj", "v_proj")},
    {"mixtral", L("q_proj", "v_proj")}, {"stablelm", L("q_proj", "v_proj")},
    {"phi", L("q_proj", "v_proj")}, {"gemma", L("q_proj", "v_proj")},
    {"gemma2", L("q_proj", "v_proj")}, {"qwen2", L("q_proj", "v_proj")},
};
#undef L

const char *const *vera_default_targets(const char *model_type)
{
    if (!model_type) return NULL;
    for (size_t i = 0; i < PEFT_PU_COUNT(vera_default_map); i++)
        if (!strcmp(vera_default_map[i].model_type, model_type)) return vera_default_map[i].targets;
    return NULL;
}
