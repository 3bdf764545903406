/* ap_config.c — AdaptionPromptConfig as PEFT 0.13.2 saves it: the field list, validation (its
 * adapter_len and adapter_layers default to None, which fails in PEFT: required here) and the
 * target_modules string, and the default target ("self_attn", PEFT's for llama and mistral). */
#include <string.h>
#include "adaption_prompt.h"
#include "peft/plugin_config.h"

const char *const ap_config_keys[] = {
    "adapter_layers", "adapter_len", "auto_mapping", "base_model_name_or_path",
    "inference_mode", "peft_type", "revision", "target_modules", "task_type",
    NULL,
};

static int required_pos(const peft_pu_cfg *pc, const char *key, int64_t *out)
{
    if (peft_pu_cfg_opt_pos_int(pc, key, 0, out)) return -1;
    if (*out > 0) return 0;
    peft_pu_errf(pc->err, pc->errlen, "%s: field '%s' is required (a positive integer; PEFT's "
                 "default None fails)", pc->who, key);
    return -1;
}

int ap_config_parse(peft_cfg *cfg, void **out, char *err, size_t errlen)
{
    const peft_pu_cfg pc = {ap_host, cfg, "adaption_prompt config", err, errlen};
    ap_config c = {0};
    if (peft_pu_cfg_begin(&pc, out) || peft_pu_cfg_peft_type(&pc, "ADAPTION_PROMPT") ||
        required_pos(&pc, "adapter_len", &c.adapter_len) ||
        required_pos(&pc, "adapter_layers", &c.adapter_layers) ||
        peft_pu_cfg_peft_fields(&pc, NULL) || peft_pu_cfg_names(&pc, "target_modules", 1, 0))
        return -1;
    /* PEFT's target_modules is one name suffix; the host's default comes as a one-name list */
    const char *t = ap_host->cfg_str(cfg, "target_modules");
    if (!t && ap_host->cfg_type(cfg, "target_modules") == PEFT_CFG_LIST &&
        ap_host->cfg_list_len(cfg, "target_modules") == 1)
        t = ap_host->cfg_list_str(cfg, "target_modules", 0);
    if (!t || !*t) {
        peft_pu_errf(err, errlen, "%s: field 'target_modules' must be one module name suffix "
                     "(a string such as \"self_attn\")", pc.who);
        return -1;
    }
    if (strlen(t) >= sizeof c.target) {
        peft_pu_errf(err, errlen, "%s: field 'target_modules' is too long (%zu characters)",
                     pc.who, strlen(t));
        return -1;
    }
    strcpy(c.target, t);
    ap_host->cfg_set_str(cfg, "target_modules", c.target);
    return peft_pu_cfg_finish(&pc, &c, sizeof c, out);
}

void ap_config_free(void *parsed) { ap_host->free(parsed); }

/* every model type gets "self_attn", so that adapter_init can refuse the unsupported ones with
 * PEFT's message rather than the host's "no default targets" */
const char *const *ap_default_targets(const char *model_type)
{
    static const char *const targets[] = {"self_attn", NULL};
    (void)model_type;
    return targets;
}
