/* fourierft_config.c — FourierFTConfig as PEFT 0.13.2 saves it in adapter_config.json: every
 * field, validation and the defaults written back; default target modules (PEFT's FourierFT
 * mapping). bias other than "none" needs a trainable, saved base bias, which the plugin ABI
 * does not offer yet: refused with a message saying so. */
#include <string.h>

#include "fourierft.h"
#include "peft/plugin_config.h"

/* FourierFTConfig 0.13.2 (+ PeftConfig fields) */
const char *const fourierft_config_keys[] = {
    "auto_mapping", "base_model_name_or_path", "bias", "fan_in_fan_out", "inference_mode",
    "init_weights", "layers_pattern", "layers_to_transform", "modules_to_save", "n_frequency",
    "n_frequency_pattern", "peft_type", "random_loc_seed", "revision", "scaling",
    "target_modules", "task_type", NULL,
};

static const char *const bias_values[] = {"none", "all", "fourier_only", NULL};

int fourierft_config_parse(peft_cfg *cfg, void **out, char *err, size_t errlen)
{
    const peft_pu_cfg pc = {fourierft_host, cfg, "fourierft config", err, errlen};
    fourierft_config c = {0};
    int bias = 0;
    if (peft_pu_cfg_begin(&pc, out) || peft_pu_cfg_peft_type(&pc, "FOURIERFT") ||
        peft_pu_cfg_pos_int(&pc, "n_frequency", 1000, &c.n_frequency) ||
        peft_pu_cfg_real(&pc, "scaling", 150.0, 0, &c.scaling) ||
        peft_pu_cfg_int(&pc, "random_loc_seed", 777, "an integer", &c.random_loc_seed) ||
        peft_pu_cfg_bool(&pc, "fan_in_fan_out", 0, NULL) ||
        peft_pu_cfg_bool(&pc, "init_weights", 0, &c.init_weights) ||
        peft_pu_cfg_enum(&pc, "bias", bias_values, 0, &bias))
        return -1;
    if (bias != 0) {
        peft_pu_errf(err, errlen, "fourierft config: field 'bias' is \"%s\": a trainable base "
                     "bias is not supported by this plugin yet; use \"none\"", bias_values[bias]);
        return -1;
    }
    if (c.random_loc_seed < 0) {
        peft_pu_errf(err, errlen, "fourierft config: field 'random_loc_seed' must be a "
                     "non-negative integer (a torch.Generator seed), got %lld",
                     (long long)c.random_loc_seed);
        return -1;
    }
    if (peft_pu_cfg_peft_fields(&pc, NULL) || peft_pu_cfg_module_fields(&pc, 1) ||
        peft_pu_cfg_opt_dict(&pc, "n_frequency_pattern", "{}"))
        return -1;
    return peft_pu_cfg_finish(&pc, &c, sizeof c, out);
}

void fourierft_config_free(void *parsed) { fourierft_host->free(parsed); }

static const char *const gpt2_t[] = {"mlp.c_proj", NULL};
static const char *const llama_t[] = {"q_proj", "v_proj", NULL};
static const char *const bert_t[] = {"query", "value", NULL};
static const char *const t5_t[] = {"q", "v", NULL};

const char *const *fourierft_default_targets(const char *model_type)
{
    if (!model_type) return NULL;
    if (!strcmp(model_type, "gpt2")) return gpt2_t;
    if (!strcmp(model_type, "llama") || !strcmp(model_type, "mistral") ||
        !strcmp(model_type, "qwen2") || !strcmp(model_type, "gemma") ||
        !strcmp(model_type, "gemma2"))
        return llama_t;
    if (!strcmp(model_type, "bert")) return bert_t;
    if (!strcmp(model_type, "t5")) return t5_t;
    return NULL;
}
