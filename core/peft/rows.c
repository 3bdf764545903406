/* peft_rows.c — mixed-batch inference: one forward in which each batch row uses its own
 * adapter (or none, "__base__"), computed in one pass with one grouped call per adapter at every
 * site (core/site.c forward_grouped) instead of a full forward per adapter. */
#include <string.h>
#include "core/peft/internal.h"

int peft_model_forward_rows(peft_model *m, peft_graph *g, const peft_model_inputs *in,
                            const char *const *row_adapters, peft_model_outputs *out)
{
    if (!row_adapters || in->B <= 0)
        return peft_set_error(m->ctx, PEFT_EINVAL, "mixed batch: one adapter name per row is needed");
    if (m->base->adapters_disabled)
        return peft_set_error(m->ctx, PEFT_ESTATE, "mixed batch: adapters are disabled");
    peft_adapter **rows = peft_arena_alloc(g->arena, (size_t)in->B * sizeof *rows);
    if (!rows) return peft_set_error(m->ctx, PEFT_ENOMEM, "out of memory");
    for (int64_t b = 0; b < in->B; b++) {
        const char *name = row_adapters[b];
        if (!name) return peft_set_error(m->ctx, PEFT_EINVAL, "mixed batch: no adapter name for row %lld", (long long)b);
        if (!strcmp(name, "__base__")) {
            rows[b] = NULL;
            continue;
        }
        peft_adapter *a = peft_find_adapter(m, name);
        if (!a)
            return peft_set_error(m->ctx, PEFT_ENOTFOUND, "mixed batch: row %lld names adapter '%s', which does not exist",
                                  (long long)b, name);
        if (a->vt->caps & PEFT_CAP_PROMPT_LEARNING)
            return peft_set_error(m->ctx, PEFT_EINVAL,
                                  "mixed batch: adapter '%s' is %s, a prompt-learning method; rows can only pick "
                                  "layer adapters", name, a->vt->peft_type);
        if (peft_adapter_is_attn(a))
            return peft_set_error(m->ctx, PEFT_EINVAL,
                                  "mixed batch: adapter '%s' is %s, which acts in the attention; rows can "
                                  "only pick layer adapters", name, a->vt->peft_type);
        rows[b] = a;
    }
    for (size_t i = 0; i < m->base->n_sites; i++)
        if (m->base->sites[i]->n_merged)
            return peft_set_error(m->ctx, PEFT_ESTATE,
                                  "mixed batch: %s has merged adapters; unmerge them first (as PEFT)",
                                  m->base->sites[i]->info.name);
    if (m->n_mts)
        return peft_set_error(m->ctx, PEFT_EINVAL,
                              "mixed batch: modules_to_save (%s) are not supported per row yet", m->mts[0].module);
    m->base->row_adapter = rows;
    m->base->row_B = in->B;
    int rc = peft_model_forward(m, g, in, out);
    m->base->row_adapter = NULL;
    m->base->row_B = 0;
    return rc;
}
