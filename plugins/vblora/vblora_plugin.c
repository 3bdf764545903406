/* vblora_plugin.c — the VB-LoRA tuner's vtable (ABI 1.3: adapter-level state for the shared
 * vector bank) and the one exported symbol, peft_plugin_init. */
#include <stddef.h>
#include "vblora.h"

const peft_host_api *vb_host;

/* not MIXABLE: PEFT's mixed model accepts LoRA, LoHa, LoKr, AdaLoRA, OFT only.
 * STRAIGHT_THROUGH: the top-k selection makes the adapter piecewise smooth; its gradient (PEFT's,
 * matched on the fixtures) holds inside a piece, and plugin-check's finite differences, which
 * step across the selection's boundaries, check it as a descent direction instead. */
static const peft_tuner_vtable vb_vtable = {
    PEFT_PU_VTABLE_HEADER,
    .name = "vblora",
    .peft_type = "VBLORA",
    .prefix = "vblora_",
    .caps = PEFT_CAP_MERGEABLE | PEFT_CAP_STRAIGHT_THROUGH,
    .config_keys = vb_config_keys,
    .default_targets = vb_default_targets,
    .config_parse = vb_config_parse,
    .config_free = vb_config_free,
    .forward = vb_forward,
    .merge = vb_merge,
    .destroy = vb_destroy,
    .state_dict = vb_state_dict,
    .module_type = vb_module_type,
    .model_class = "VBLoRAModel",
    .adapter_init = vb_adapter_init,
    .adapter_destroy = vb_adapter_destroy,
    .inject_in = vb_inject_in,
    .adapter_state_dict = vb_adapter_state_dict,
    .check_config = "{\"vector_length\": 4, \"num_vectors\": 8, \"init_logits_std\": 1.0}",
};

static const peft_pu_need vb_needs[] = {
    PEFT_PU_NEED(sgemm),      PEFT_PU_NEED(op_linear),       PEFT_PU_NEED(op_add),
    PEFT_PU_NEED(op_dropout), PEFT_PU_NEED(graph_set_error),
};

PEFT_PLUGIN_EXPORT const peft_tuner_vtable *peft_plugin_init(const peft_host_api *host, char *err,
                                                             size_t errlen)
{
    if (peft_pu_host_check(host, "vblora", 3, vb_needs, PEFT_PU_COUNT(vb_needs), err, errlen))
        return NULL;
    vb_host = host;
    return &vb_vtable;
}
