/* adalora_config.c — AdaLoraConfig (a LoraConfig) as PEFT 0.13.2 saves it: the field list,
 * validation and defaults, and PEFT's AdaLoRA default targets. */
#include <string.h>
#include "adalora.h"
#include "peft/plugin_config.h"

const char *const ada_config_keys[] = {
    "alpha_pattern", "auto_mapping", "base_model_name_or_path", "beta1", "beta2", "bias",
    "deltaT", "fan_in_fan_out", "inference_mode", "init_lora_weights", "init_r",
    "layer_replication", "layers_pattern", "layers_to_transform", "loftq_config", "lora_alpha",
    "lora_dropout", "megatron_config", "megatron_core", "modules_to_save", "orth_reg_weight",
    "peft_type", "r", "rank_pattern", "revision", "target_modules", "target_r", "task_type",
    "tfinal", "tinit", "total_step", "use_dora", "use_rslora",
    "exclude_modules", "runtime_config", /* newer PEFT: accepted when loading */
    NULL,
};

static int beta(const peft_pu_cfg *pc, const char *key, double *out)
{
    if (peft_pu_cfg_real(pc, key, 0.85, 0, out)) return -1;
    if (*out > 0 && *out < 1) return 0;
    peft_pu_errf(pc->err, pc->errlen, "adalora config: field '%s' must be in (0, 1) (PEFT's "
                 "RankAllocator asserts it), got %g", key, *out);
    return -1;
}

int ada_config_parse(peft_cfg *cfg, void **out, char *err, size_t errlen)
{
    const peft_pu_cfg pc = {ada_host, cfg, "adalora config", err, errlen};
    static const char *const biases[] = {"none", "all", "lora_only", NULL};
    ada_config c = {0};
    int64_t r = 8, total = 0;
    int fifo = 0, rslora = 0, dora = 0, bias = 0;
    if (peft_pu_cfg_begin(&pc, out) || peft_pu_cfg_peft_type(&pc, "ADALORA") ||
        peft_pu_cfg_pos_int(&pc, "r", 8, &r) ||
        peft_pu_cfg_pos_int(&pc, "init_r", 12, &c.init_r) ||
        peft_pu_cfg_pos_int(&pc, "target_r", 8, &c.target_r) ||
        peft_pu_cfg_int(&pc, "tinit", 0, "a non-negative integer", &c.tinit) ||
        peft_pu_cfg_int(&pc, "tfinal", 0, "a non-negative integer", &c.tfinal) ||
        peft_pu_cfg_pos_int(&pc, "deltaT", 1, &c.delta_t) || beta(&pc, "beta1", &c.beta1) ||
        beta(&pc, "beta2", &c.beta2) ||
        peft_pu_cfg_real(&pc, "orth_reg_weight", 0.5, 0, &c.orth_reg_weight) ||
        peft_pu_cfg_opt_pos_int(&pc, "total_step", 1, &total) ||
        peft_pu_cfg_real(&pc, "lora_alpha", 8, 1, &c.lora_alpha) ||
        peft_pu_cfg_prob(&pc, "lora_dropout", 0, &c.dropout) ||
        peft_pu_cfg_bool(&pc, "init_lora_weights", 1, &c.init_weights) ||
        peft_pu_cfg_bool(&pc, "fan_in_fan_out", 0, &fifo) ||
        peft_pu_cfg_bool(&pc, "use_rslora", 0, &rslora) ||
        peft_pu_cfg_bool(&pc, "use_dora", 0, &dora) ||
        peft_pu_cfg_enum(&pc, "bias", biases, 0, &bias) ||
        peft_pu_cfg_opt_dict(&pc, "rank_pattern", "null") ||
        peft_pu_cfg_opt_dict(&pc, "alpha_pattern", "{}") ||
        peft_pu_cfg_opt_dict(&pc, "loftq_config", "{}") ||
        peft_pu_cfg_opt_dict(&pc, "megatron_config", "null") ||
        peft_pu_cfg_opt_str(&pc, "megatron_core", "megatron.core") ||
        peft_pu_cfg_opt_dict(&pc, "runtime_config", NULL) ||
        peft_pu_cfg_peft_fields(&pc, &c.inference_mode) || peft_pu_cfg_module_fields(&pc, 1))
        return -1;
    if (ada_host->cfg_type(cfg, "layer_replication") == PEFT_CFG_MISSING)
        ada_host->cfg_set_json(cfg, "layer_replication", "null");
    else if (ada_host->cfg_type(cfg, "layer_replication") != PEFT_CFG_NULL) {
        peft_pu_errf(err, errlen, "adalora config: field 'layer_replication' must be null "
                     "(AdaLoRA does not replicate layers)");
        return -1;
    }
    if (dora) {
        peft_pu_errf(err, errlen, "adalora config: ADALORA does not support DoRA (use_dora "
                     "must be false)");
        return -1;
    }
    if (c.tinit < 0 || c.tfinal < 0) {
        peft_pu_errf(err, errlen, "adalora config: tinit and tfinal must be non-negative");
        return -1;
    }
    if (c.orth_reg_weight <= 0) {
        peft_pu_errf(err, errlen, "adalora config: field 'orth_reg_weight' should be greater "
                     "than 0 (PEFT raises when computing the loss), got %g", c.orth_reg_weight);
        return -1;
    }
    if (r != 8)
        ada_host->warn("Note that `r` is not used in AdaLora and will be ignored.If you intended "
                       "to set the initial rank, use `init_r` instead.");
    c.total_step = total;
    return peft_pu_cfg_finish(&pc, &c, sizeof c, out);
}

void ada_config_free(void *parsed) { ada_host->free(parsed); }

/* PEFT 0.13.2's TRANSFORMERS_MODELS_TO_ADALORA_TARGET_MODULES_MAPPING for libpeft's models */
#define L(...) (const char *const[]){__VA_ARGS__, NULL}
static const struct {
    const char *model_type;
    const char *const *targets;
} ada_default_map[] = {
    {"t5", L("q", "k", "v", "o", "wi", "wo")}, {"mt5", L("q", "k", "v", "o", "wi_0", "wi_1", "wo")},
    {"bart", L("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")},
    {"gpt2", L("c_attn")}, {"bloom", L("query_key_value")}, {"opt", L("q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2")},
    {"gptj", L("q_proj", "v_proj")}, {"gpt_neox", L("query_key_value")},
    {"gpt_neo", L("q_proj", "v_proj")}, {"llama", L("q_proj", "v_proj")},
    {"bert", L("query", "value")}, {"roberta", L("query", "key", "value", "dense")},
    {"deberta-v2", L("query_proj", "key_proj", "value_proj", "dense")},
    {"gpt_bigcode", L("c_attn")}, {"deberta", L("in_proj")},
    {"qwen2", L("q_proj", "v_proj")},
};
#undef L

const char *const *ada_default_targets(const char *model_type)
{
    if (!model_type) return NULL;
    for (size_t i = 0; i < PEFT_PU_COUNT(ada_default_map); i++)
        if (!strcmp(ada_default_map[i].model_type, model_type)) return ada_default_map[i].targets;
    return NULL;
}
