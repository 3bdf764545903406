/* attn.c — adapters of attention-hook methods (PEFT_CAP_ATTENTION, ABI 1.4: adaption prompt).
 * Such an adapter sits on no linear site: its plugin's adapter_init sees the model's attention
 * modules (registered by the architecture, core/model/attn.c) and owns every tensor as
 * adapter-level state; base->attn_hook points at this model's dispatch, which runs the active
 * adapters' attn_forward, in the order added, while adapters are enabled. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/io/cfg.h"
#include "core/peft/internal.h"
#include "core/tuner/plugin_call.h"

int peft_adapter_is_attn(const peft_adapter *a)
{
    return a && (a->vt->caps & PEFT_CAP_ATTENTION) != 0;
}

static peft_tensor *dispatch(void *ud, peft_graph *g, int attn, peft_tensor *x, peft_tensor *q,
                             peft_tensor *out)
{
    peft_model *m = ud;
    /* per-row adapters (peft_forward_rows) never pick an attention method: the rows use theirs */
    if (m->base->adapters_disabled || m->base->row_adapter || attn < 0 || attn >= m->base->n_attn)
        return out;
    const peft_attn_info *info = m->base->attn[attn];
    for (int i = 0; i < m->n_adapters && out; i++) {
        peft_adapter *a = m->adapters[i];
        if (!peft_adapter_is_attn(a) || !a->adapter_state) continue;
        if (!a->active) continue;
        out = PEFT_PLUGIN_CALL(a->vt, "attn_forward", a->name, info->name,
                               a->vt->attn_forward(a->adapter_state, g, info, x, q, out));
        if (!out && !peft_graph_error(g)) {
            char msg[256];
            snprintf(msg, sizeof msg, "adapter '%s' on %s: the plugin's attn_forward failed "
                     "(no message)", a->name, info->name);
            peft_graph_set_error(g, msg);
        }
    }
    return out;
}

int peft_attn_inject(peft_model *m, peft_adapter *a)
{
    const char *mt = m->base->arch->model_type;
    if (m->mixed)
        return peft_set_error(m->ctx, PEFT_EINVAL,
                              "adapter '%s' on %s: %s acts in the attention and cannot join a "
                              "mixed model (PEFT's PeftMixedModel refuses it too)",
                              a->name, mt, a->vt->peft_type);
    for (int i = 0; i < m->n_adapters; i++)
        if (m->adapters[i] != a && m->adapters[i]->vt != a->vt)
            return peft_set_error(m->ctx, PEFT_EINVAL,
                                  "adapter '%s' on %s: %s cannot share a model with adapter '%s' "
                                  "(%s): PEFT's %s holds only its own method's adapters",
                                  a->name, mt, a->vt->peft_type, m->adapters[i]->name,
                                  m->adapters[i]->vt->peft_type, a->vt->model_class);
    if (m->base->n_attn == 0)
        return peft_set_error(m->ctx, PEFT_EINVAL,
                              "adapter '%s' on %s: %s acts on attention modules through the "
                              "attention hook, which the %s architecture does not call (the LLaMA "
                              "family does)", a->name, mt, a->vt->peft_type, mt);
    void **peers = calloc((size_t)m->n_adapters + 1, sizeof *peers);
    const char **names = calloc((size_t)m->n_adapters + 1, sizeof *names);
    if (!peers || !names) {
        free(peers);
        free(names);
        return peft_set_error(m->ctx, PEFT_ENOMEM, "out of memory");
    }
    int np = 0;
    for (int i = 0; i < m->n_adapters; i++)
        if (m->adapters[i] != a && m->adapters[i]->vt == a->vt && m->adapters[i]->adapter_state) {
            peers[np] = m->adapters[i]->adapter_state;
            names[np++] = m->adapters[i]->name;
        }
    peft_adapter_info info = {.struct_size = sizeof info, .model_type = mt, .n_sites = 0,
                              .sites = NULL, .n_peers = np, .peers = peers, .peer_names = names,
                              .n_attn = m->base->n_attn,
                              .attn = (const peft_attn_info *const *)m->base->attn};
    peft_cfg pc = {a->config};
    char err[1024] = "";
    a->adapter_state = PEFT_PLUGIN_CALL(a->vt, "adapter_init", a->name, NULL,
                                        a->vt->adapter_init(a->parsed, &pc, &info, a->name,
                                                            &m->ctx->rng, err, sizeof err));
    free(peers);
    free(names);
    if (!a->adapter_state)
        return peft_set_error(m->ctx, PEFT_EINVAL, "adapter '%s' on %s: %s", a->name, mt,
                              err[0] ? err : "the plugin's adapter_init failed (no message)");
    m->attn_hooks.ud = m;
    m->attn_hooks.output = dispatch;
    m->base->attn_hook = &m->attn_hooks;
    return PEFT_OK;
}

int peft_model_has_attn(const peft_model *m)
{
    for (int i = 0; i < m->n_adapters; i++)
        if (peft_adapter_is_attn(m->adapters[i])) return 1;
    return 0;
}
