/* ap_plugin.c — the adaption prompt tuner: adapter_init picks the attention modules (PEFT's
 * AdaptionPromptModel.add_adapter), the adapter-level state dict, attn_forward (AdaptedAttention
 * .forward after the wrapped attention), the vtable and the exported entry point. */
#include <stdio.h>
#include <string.h>

#include "adaption_prompt.h"

const peft_host_api *ap_host;

static void ap_layer_free(ap_layer *y)
{
    if (!y) return;
    ap_host->tensor_free(y->prompt);
    ap_host->tensor_free(y->gate);
    ap_host->free(y->prompt_name);
    ap_host->free(y->gate_name);
    ap_host->free(y);
}

static void ap_adapter_destroy(void *p)
{
    ap_state *st = p;
    if (!st) return;
    for (int i = 0; i < st->n_layers; i++) ap_layer_free(st->layers[i]);
    ap_host->free(st->layers);
    ap_host->free(st->by_attn);
    ap_host->free(st);
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

static ap_layer *ap_layer_new(const ap_config *c, const peft_attn_info *a, peft_rng *rng,
                              char *err, size_t errlen)
{
    if (!a->q_proj || !a->k_proj || !a->v_proj || !a->o_proj) {
        peft_pu_errf(err, errlen, "%s: adaption prompt needs separate q_proj, k_proj, v_proj and "
                     "o_proj", a->name);
        return NULL;
    }
    /* PEFT views k_proj(P) as (L, num_heads // (in // out), head_dim): only consistent when
     * hidden_size == num_heads * head_dim */
    if ((int64_t)a->n_heads * a->head_dim != a->hidden_size || a->n_heads % a->n_kv_heads) {
        peft_pu_errf(err, errlen, "%s: PEFT 0.13.2's adaption prompt assumes hidden_size (%d) == "
                     "num_heads (%d) * head_dim (%d) and whole key/value head groups", a->name,
                     a->hidden_size, a->n_heads, a->head_dim);
        return NULL;
    }
    ap_layer *y = ap_host->alloc(sizeof *y);
    if (!y) goto oom;
    y->attn = a;
    y->prompt = peft_pu_param(ap_host, 3, (int64_t[]){1, c->adapter_len, a->hidden_size});
    y->gate = peft_pu_param(ap_host, 1, (int64_t[]){1}); /* zeros: PEFT's zero-init gate */
    y->prompt_name = peft_pu_concat(ap_host, "model.", a->name, ".adaption_prompt");
    y->gate_name = peft_pu_concat(ap_host, "model.", a->name, ".adaption_gate");
    if (!y->prompt || !y->gate || !y->prompt_name || !y->gate_name) goto oom;
    peft_pu_fill_normal(ap_host, y->prompt, 1.0, rng); /* PEFT: torch.empty(...).normal_() */
    return y;
oom:
    ap_layer_free(y);
    peft_pu_errf(err, errlen, "%s: out of memory", a->name);
    return NULL;
}

static void *ap_adapter_init(const void *parsed, peft_cfg *cfg, const peft_adapter_info *info,
                             const char *adapter_name, peft_rng *rng, char *err, size_t errlen)
{
    (void)cfg;
    (void)adapter_name;
    const ap_config *c = parsed;
    const char *mt = info->model_type ? info->model_type : "?";
    if (strcmp(mt, "llama") && strcmp(mt, "mistral")) {
        peft_pu_errf(err, errlen, "Unsupported model type for adaption prompt: '%s' (PEFT 0.13.2 "
                     "supports llama and mistral)", mt);
        return NULL;
    }
    if (info->struct_size < offsetof(peft_adapter_info, attn) + sizeof info->attn || !info->attn) {
        peft_pu_errf(err, errlen, "adaption prompt needs the host's attention modules (ABI 1.4)");
        return NULL;
    }
    /* PEFT: every module whose name ends with target_modules, the last adapter_layers of them */
    int n_match = 0;
    for (int i = 0; i < info->n_attn; i++) n_match += ends_with(info->attn[i]->name, c->target);
    if (n_match < c->adapter_layers) {
        peft_pu_errf(err, errlen, "Config specifies more adapter layers '%lld' than the model has "
                     "'%d'.", (long long)c->adapter_layers, n_match);
        return NULL;
    }
    ap_state *st = ap_host->alloc(sizeof *st);
    if (!st) goto oom;
    st->n_attn = info->n_attn;
    st->by_attn = ap_host->alloc(sizeof *st->by_attn * (size_t)info->n_attn);
    st->layers = ap_host->alloc(sizeof *st->layers * (size_t)c->adapter_layers);
    if (!st->by_attn || !st->layers) goto oom;
    int seen = 0;
    for (int i = 0; i < info->n_attn; i++) {
        const peft_attn_info *a = info->attn[i];
        if (!ends_with(a->name, c->target) || seen++ < n_match - c->adapter_layers) continue;
        ap_layer *y = ap_layer_new(c, a, rng, err, errlen);
        if (!y) {
            ap_adapter_destroy(st);
            return NULL;
        }
        st->layers[st->n_layers++] = y;
        st->by_attn[a->index] = y;
    }
    return st;
oom:
    ap_adapter_destroy(st);
    peft_pu_errf(err, errlen, "adaption prompt: out of memory");
    return NULL;
}

/* PEFT's named_parameters order: per module, adaption_prompt then adaption_gate */
static int ap_adapter_state_dict(void *p, peft_param_ref *out, int max)
{
    ap_state *st = p;
    int n = 0;
    for (int i = 0; i < st->n_layers; i++) {
        ap_layer *y = st->layers[i];
        if (n < max) out[n] = (peft_param_ref){y->prompt_name, y->prompt_name, y->prompt, 1, 0};
        n++;
        if (n < max) out[n] = (peft_param_ref){y->gate_name, y->gate_name, y->gate, 1, 0};
        n++;
    }
    return n;
}

static peft_tensor *ap_attn_forward(void *p, peft_graph *g, const peft_attn_info *attn,
                                    peft_tensor *x, peft_tensor *q, peft_tensor *out)
{
    (void)x;
    ap_state *st = p;
    if (!attn || attn->index < 0 || attn->index >= st->n_attn || !st->by_attn[attn->index])
        return out;
    ap_layer *y = st->by_attn[attn->index];
    const peft_site_info *K = attn->k_proj, *V = attn->v_proj, *O = attn->o_proj;
    peft_tensor *kp = ap_host->op_linear(g, y->prompt, K->weight, K->bias, peft_pu_in_out(K));
    peft_tensor *vp = kp ? ap_host->op_linear(g, y->prompt, V->weight, V->bias, peft_pu_in_out(V)) : NULL;
    peft_tensor *a = vp ? ap_prompt_attention(g, q, kp, vp, y->gate, attn->n_heads,
                                              attn->n_kv_heads, attn->head_dim)
                        : NULL;
    peft_tensor *o = a ? ap_host->op_linear(g, a, O->weight, O->bias, peft_pu_in_out(O)) : NULL;
    peft_tensor *r = o ? ap_host->op_add(g, out, o) : NULL;
    if (!r) {
        char msg[256];
        snprintf(msg, sizeof msg, "adaption prompt on %s: shape mismatch or out of arena memory",
                 attn->name);
        ap_host->graph_set_error(g, msg);
    }
    return r;
}

/* no site states: the host never injects an attention-hook method into a linear site */
static void ap_destroy(void *state) { (void)state; }
static int ap_state_dict(void *state, peft_param_ref *out, int max)
{
    (void)state;
    (void)out;
    (void)max;
    return 0;
}
static const char *ap_module_type(void *state)
{
    (void)state;
    return "AdaptedAttention";
}

/* Not MERGEABLE (PEFT cannot merge it), not MIXABLE (PEFT's mixed model refuses it). */
static const peft_tuner_vtable ap_vtable = {
    PEFT_PU_VTABLE_HEADER,
    .name = "adaption_prompt",
    .peft_type = "ADAPTION_PROMPT",
    .prefix = "adaption_",
    .caps = PEFT_CAP_ATTENTION,
    .config_keys = ap_config_keys,
    .default_targets = ap_default_targets,
    .config_parse = ap_config_parse,
    .config_free = ap_config_free,
    .destroy = ap_destroy,
    .state_dict = ap_state_dict,
    .module_type = ap_module_type,
    .model_class = "AdaptionPromptModel",
    .adapter_init = ap_adapter_init,
    .adapter_destroy = ap_adapter_destroy,
    .adapter_state_dict = ap_adapter_state_dict,
    .check_config = "{\"adapter_len\": 4, \"adapter_layers\": 1}",
    .attn_forward = ap_attn_forward,
};

static const peft_pu_need ap_needs[] = {
    PEFT_PU_NEED(op_linear), PEFT_PU_NEED(op_add), PEFT_PU_NEED(graph_set_error),
};

PEFT_PLUGIN_EXPORT const peft_tuner_vtable *peft_plugin_init(const peft_host_api *host, char *err,
                                                             size_t errlen)
{
    if (peft_pu_host_check(host, "adaption_prompt", 4, ap_needs, PEFT_PU_COUNT(ap_needs), err,
                           errlen))
        return NULL;
    ap_host = host;
    return &ap_vtable;
}
