/* peft_merge.c — merge_adapter / unmerge_adapter / merge_and_unload / unload. */
#include <stdlib.h>
#include <string.h>
#include "peft_internal.h"

static int picked(const peft_adapter *a, const char *const *names, int n)
{
    if (!names) return a->active;
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], a->name) == 0) return 1;
    return 0;
}

int peft_merge_adapter(peft_model *m, const char *const *names, int n, int safe)
{
    if (peft_model_is_prompt(m))
        return peft_set_error(m->ctx, PEFT_EINVAL,
                              "merge: prompt-learning adapters have no weights to merge (as PEFT)");
    for (int i = 0; names && i < n; i++)
        if (!peft_find_adapter(m, names[i]))
            return peft_set_error(m->ctx, PEFT_ENOTFOUND, "merge: no adapter named '%s'", names[i]);
    char err[1024] = "";
    for (size_t i = 0; i < m->base->n_sites; i++) {
        peft_site *s = m->base->sites[i];
        for (int j = 0; j < s->n_chain; j++) {
            if (!picked(s->chain[j].adapter, names, n) || s->chain[j].merged) continue;
            if (peft_site_merge(s, j, safe, err, sizeof err)) {
                /* roll back what this call merged so far is not possible to tell apart from
                 * earlier merges cheaply; leave earlier sites merged and report precisely */
                return peft_set_error(m->ctx, PEFT_EINVAL, "merge: %s", err);
            }
        }
    }
    return PEFT_OK;
}

int peft_unmerge_adapter(peft_model *m)
{
    char err[1024] = "";
    for (size_t i = 0; i < m->base->n_sites; i++) {
        peft_site *s = m->base->sites[i];
        for (int j = s->n_chain - 1; j >= 0; j--) /* reverse order of merging */
            if (s->chain[j].merged && peft_site_unmerge(s, j, err, sizeof err))
                return peft_set_error(m->ctx, PEFT_EINVAL, "unmerge: %s", err);
    }
    return PEFT_OK;
}

/* hand the base back to the caller and free the PEFT shell */
static void release_shell(peft_model *m, peft_base_model **out)
{
    peft_mts_release(m, 1); /* as PEFT: the active adapter's trained copy stays */
    for (size_t i = 0; i < m->base->n_sites; i++) {
        peft_site *s = m->base->sites[i];
        while (s->n_chain > 0) peft_site_detach(s, s->n_chain - 1);
    }
    for (size_t i = 0; i < m->base->n_params; i++) {
        m->base->params[i].t->requires_grad = 0;
    }
    m->base->adapters_disabled = 0;
    *out = m->base;
    m->base = NULL;
    peft_model_free(m);
}

int peft_merge_and_unload(peft_model *m, int safe, const char *const *names, int n,
                          peft_base_model **out)
{
    int rc = peft_merge_adapter(m, names, n, safe);
    if (rc) return rc;
    for (size_t i = 0; i < m->base->n_sites; i++) {
        peft_site *s = m->base->sites[i];
        /* unmerged adapters are dropped; merged ones stay folded in */
        peft_site_keep_merged(s);
        for (int j = 0; j < s->n_chain; j++) s->chain[j].merged = 0;
    }
    release_shell(m, out);
    return PEFT_OK;
}

int peft_unload(peft_model *m, peft_base_model **out)
{
    /* no plugin unmerge needed (nor one that may refuse, like IA3 near a zero scale): the
     * loaded weights come back exactly */
    for (size_t i = 0; i < m->base->n_sites; i++) peft_site_release(m->base->sites[i]);
    release_shell(m, out);
    return PEFT_OK;
}
