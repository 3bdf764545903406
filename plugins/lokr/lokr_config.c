/* lokr_config.c — LoKrConfig as PEFT 0.13.2 saves it in adapter_config.json: every field,
 * validation (errors name the field and what is allowed), the defaults written back so that a
 * saved config has PEFT's exact field set, the default target modules (PEFT 0.13.2 has no LoKr
 * mapping: target_modules is required there; here the LoRA mapping's entries for the
 * architectures libpeft runs are offered), and LyCORIS's factorization(). */
#include <string.h>

#include "lokr.h"
#include "peft/plugin_config.h"

/* LoKrConfig 0.13.2 (LycorisConfig + PeftConfig fields) */
const char *const lokr_config_keys[] = {
    "alpha", "alpha_pattern", "auto_mapping", "base_model_name_or_path", "decompose_both",
    "decompose_factor", "inference_mode", "init_weights", "layers_pattern",
    "layers_to_transform", "module_dropout", "modules_to_save", "peft_type", "r",
    "rank_dropout", "rank_pattern", "revision", "target_modules", "task_type",
    "use_effective_conv2d", NULL,
};

int lokr_config_parse(peft_cfg *cfg, void **out, char *err, size_t errlen)
{
    const peft_pu_cfg pc = {lokr_host, cfg, "lokr config", err, errlen};
    lokr_config c = {0};
    if (peft_pu_cfg_begin(&pc, out) || peft_pu_cfg_peft_type(&pc, "LOKR") ||
        peft_pu_cfg_pos_int(&pc, "r", 8, &c.r) || peft_pu_cfg_real(&pc, "alpha", 8, 1, &c.alpha) ||
        peft_pu_cfg_prob(&pc, "rank_dropout", 0, &c.rank_dropout) ||
        peft_pu_cfg_prob(&pc, "module_dropout", 0, &c.module_dropout) ||
        peft_pu_cfg_bool(&pc, "use_effective_conv2d", 0, NULL) ||
        peft_pu_cfg_bool(&pc, "decompose_both", 0, &c.decompose_both) ||
        peft_pu_cfg_bool(&pc, "init_weights", 1, &c.init_weights) ||
        peft_pu_cfg_int(&pc, "decompose_factor", -1, "an integer (-1: near the square root)",
                        &c.decompose_factor))
        return -1;
    if (c.decompose_factor == 0 || c.decompose_factor < -1) {
        peft_pu_errf(err, errlen, "lokr config: field 'decompose_factor' must be -1 or a positive "
                     "integer, got %lld", (long long)c.decompose_factor);
        return -1;
    }
    if (peft_pu_cfg_peft_fields(&pc, NULL) || peft_pu_cfg_module_fields(&pc, 1) ||
        peft_pu_cfg_opt_dict(&pc, "rank_pattern", "{}") ||
        peft_pu_cfg_opt_dict(&pc, "alpha_pattern", "{}"))
        return -1;
    return peft_pu_cfg_finish(&pc, &c, sizeof c, out);
}

void lokr_config_free(void *parsed) { lokr_host->free(parsed); }

static const char *const gpt2_t[] = {"c_attn", NULL};
static const char *const llama_t[] = {"q_proj", "v_proj", NULL};
static const char *const bert_t[] = {"query", "value", NULL};
static const char *const t5_t[] = {"q", "v", NULL};

const char *const *lokr_default_targets(const char *model_type)
{
    if (!model_type) return NULL;
    if (!strcmp(model_type, "gpt2")) return gpt2_t;
    if (!strcmp(model_type, "llama")) return llama_t;
    if (!strcmp(model_type, "bert")) return bert_t;
    if (!strcmp(model_type, "t5")) return t5_t;
    return NULL;
}

/* PEFT 0.13.2 peft/tuners/lokr/layer.py factorization (from LyCORIS), line for line */
void lokr_factorization(int64_t dimension, int64_t factor, int64_t *pm, int64_t *pn)
{
    if (factor > 0 && dimension % factor == 0) {
        *pm = factor;
        *pn = dimension / factor;
        return;
    }
    if (factor == -1) factor = dimension;
    int64_t m = 1, n = dimension, length = m + n;
    while (m < n) {
        int64_t new_m = m + 1;
        while (dimension % new_m != 0) new_m++;
        int64_t new_n = dimension / new_m;
        if (new_m + new_n > length || new_m > factor) break;
        m = new_m;
        n = new_n;
    }
    if (m > n) {
        int64_t t = m;
        m = n;
        n = t;
    }
    *pm = m;
    *pn = n;
}
