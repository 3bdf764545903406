/* adaption_prompt.h — declarations shared by the adaption prompt plugin's files (never
 * installed, never seen by the host). Built with -fvisibility=hidden: only peft_plugin_init
 * (ap_plugin.c) is exported.
 *
 * Adaption prompt (LLaMA-Adapter; PEFT 0.13.2 peft/tuners/adaption_prompt): the top
 * adapter_layers attention modules whose name ends with target_modules ("self_attn") each get
 * adaption_prompt P (1, L, C) (N(0, 1) init) and adaption_gate g (1) (zero init). On each, after
 * the attention's own output o (after o_proj):
 *
 *     kp = k_proj(P) (1, L, Hkv*D),  vp = v_proj(P)           (the frozen base projections)
 *     s  = q kp^T / sqrt(D)      q (B,T,H*D): the layer's queries, RoPE applied
 *     a  = g * softmax(s) vp     (B,T,H*D), query head h reads kv head h / (H / Hkv)
 *     o' = o + o_proj(a)         (o_proj with its bias, as PEFT calls the module)
 *
 * The prompt's scores are neither masked nor causal: every position, padding included, sees all
 * L prompt tokens (PEFT). Only llama and mistral (PEFT's TRANSFORMERS_MODEL_CONFIG); no merge.
 * PEFT keeps no adapter name in the tensors' names: they are model-level keys
 * "base_model.model.<module>.adaption_prompt" / ".adaption_gate", saved and in memory.
 *
 *   ap_config.c  config keys, config_parse/free (AdaptionPromptConfig 0.13.2), default targets
 *   ap_attn.c    the gated prompt attention kernel and its backward on the tape
 *   ap_plugin.c  adapter_init/destroy, the state dict, attn_forward, the vtable and entry point
 */
#ifndef PEFT_ADAPTION_PROMPT_H
#define PEFT_ADAPTION_PROMPT_H

#include <stddef.h>
#include <stdint.h>
#include "peft/plugin.h"
#include "peft/plugin_kernels.h"
#include "peft/plugin_util.h"

/* The host table handed to peft_plugin_init; set once, before any other entry is called. */
extern const peft_host_api *ap_host;

/* The parsed adapter_config.json. */
typedef struct ap_config {
    int64_t adapter_len;    /* L */
    int64_t adapter_layers; /* how many of the last matching attention modules */
    char target[128];       /* target_modules: a module name suffix */
} ap_config;

/* One adapted attention module. Owns its tensors and names. */
typedef struct ap_layer {
    const peft_attn_info *attn; /* borrowed from the base model */
    peft_tensor *prompt;        /* (1, L, C) */
    peft_tensor *gate;          /* (1) */
    char *prompt_name, *gate_name; /* "model.<module>.adaption_prompt" / ".adaption_gate" */
} ap_layer;

/* One adapter: the adapted modules, indexed by attention index (NULL where not adapted). */
typedef struct ap_state {
    int n_attn;
    ap_layer **by_attn; /* n_attn entries */
    int n_layers;       /* adapted ones, in module order */
    ap_layer **layers;
} ap_state;

/* ap_config.c */
extern const char *const ap_config_keys[];
int ap_config_parse(peft_cfg *cfg, void **out, char *err, size_t errlen);
void ap_config_free(void *parsed);
const char *const *ap_default_targets(const char *model_type);

/* ap_attn.c: q (B,T,H*D), kp and vp (1,L,Hkv*D), gate (1) -> (B,T,H*D) = gate * softmax(q kp^T /
 * sqrt(D)) vp per head (kv head h / (H / Hkv)); NULL on a shape mismatch or out of arena */
peft_tensor *ap_prompt_attention(peft_graph *g, peft_tensor *q, peft_tensor *kp, peft_tensor *vp,
                                 peft_tensor *gate, int H, int Hkv, int D);

#endif
