/* peft_merge.c — merge_adapter / unmerge_adapter / merge_and_unload / unload, layer by layer
 * with progress reported to the context's handler (core/progress.c). Merging follows the order
 * the adapters were added on each layer, unmerging the reverse. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/peft/internal.h"
#include "peft/warn.h"

static int picked(const peft_adapter *a, const char *const *names, int n)
{
    if (!names) return a->active;
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], a->name) == 0) return 1;
    return 0;
}

/* names[0..n) (or the active set) checked: each exists and has weights to merge */
static int check_names(peft_model *m, const char *what, const char *const *names, int n)
{
    if (peft_model_is_prompt(m))
        return peft_set_error(m->ctx, PEFT_EINVAL,
                              "%s: prompt-learning adapters have no weights to merge (as PEFT)", what);
    for (int i = 0; !names && i < m->n_adapters; i++)
        if (m->adapters[i]->active && peft_adapter_is_attn(m->adapters[i]))
            return peft_set_error(m->ctx, PEFT_EINVAL,
                                  "%s: adapter '%s' is %s, which acts in the attention: it has no "
                                  "weights to merge (PEFT cannot merge it either)", what,
                                  m->adapters[i]->name, m->adapters[i]->vt->peft_type);
    for (int i = 0; names && i < n; i++) {
        peft_adapter *a = peft_find_adapter(m, names[i]);
        if (!a) return peft_set_error(m->ctx, PEFT_ENOTFOUND, "%s: no adapter named '%s'", what, names[i]);
        if (peft_adapter_is_attn(a))
            return peft_set_error(m->ctx, PEFT_EINVAL,
                                  "%s: adapter '%s' is %s, which acts in the attention: it has no "
                                  "weights to merge (PEFT cannot merge it either)", what, names[i],
                                  a->vt->peft_type);
        if (peft_adapter_is_prompt(a))
            return peft_set_error(m->ctx, PEFT_EINVAL,
                                  "%s: adapter '%s' is %s, a prompt-learning method: it has no "
                                  "weights to merge", what, names[i], a->vt->peft_type);
    }
    return PEFT_OK;
}

/* merges the picked adapters site by site, in the order added on each site, reporting each
 * layer to the progress handler as `task` */
static int merge_sites(peft_model *m, const char *task, const char *const *names, int n, int safe)
{
    int rc = check_names(m, task, names, n);
    if (rc) return rc;
    int64_t total = 0, done = 0;
    for (size_t i = 0; i < m->base->n_sites; i++) {
        peft_site *s = m->base->sites[i];
        int todo = 0;
        for (int j = 0; j < s->n_chain; j++)
            todo |= picked(s->chain[j].adapter, names, n) && !s->chain[j].merged;
        total += todo;
    }
    char err[1024] = "";
    for (size_t i = 0; i < m->base->n_sites; i++) {
        peft_site *s = m->base->sites[i];
        int todo = 0;
        for (int j = 0; j < s->n_chain; j++) {
            if (!picked(s->chain[j].adapter, names, n) || s->chain[j].merged) continue;
            todo = 1;
            if (s->info.tied) { /* PEFT's _check_merge_allowed warning; the merge goes on, as there */
                char msg[512];
                snprintf(msg, sizeof msg, "Model with `tie_word_embeddings=True` and the "
                         "tied_target_modules=['%s'] are part of the adapter. This can lead to "
                         "complications: merging writes into the weight shared by the input "
                         "embedding and lm_head, so the merged model differs from the unmerged "
                         "one. You can untie the embeddings by loading the model with "
                         "`tie_word_embeddings=False`.", s->info.name);
                peft_warn(msg);
            }
            /* a failure leaves the earlier sites merged (unmerge_adapter takes them out) and
             * this one as it was; the message names the adapter and the layer */
            if (peft_site_merge(s, j, safe, err, sizeof err))
                return peft_set_error(m->ctx, PEFT_EINVAL, "%s: %s", task, err);
        }
        if (todo) peft_progress(m->ctx, task, ++done, total, s->info.name);
    }
    return PEFT_OK;
}

int peft_merge_adapter(peft_model *m, const char *const *names, int n, int safe)
{
    return merge_sites(m, "merge", names, n, safe);
}

int peft_unmerge_adapter(peft_model *m)
{
    char err[1024] = "";
    /* reverse order of merging (sites too: a tied weight's two sites nest their saved copies) */
    PEFT_EACH_SITE_ADAPTER_REVERSE(it, m->base, NULL)
        if (it.sa->merged && peft_site_unmerge(it.site, it.j, err, sizeof err))
            return peft_set_error(m->ctx, PEFT_EINVAL, "unmerge: %s", err);
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
    m->base->attn_hook = NULL; /* it points into this PEFT model */
    *out = m->base;
    m->base = NULL;
    peft_model_free(m);
}

int peft_merge_and_unload(peft_model *m, int safe, const char *const *names, int n,
                          peft_base_model **out)
{
    /* an active prompt-learning adapter cannot be folded in, and unloading would drop it */
    for (int i = 0; !names && !peft_model_is_prompt(m) && i < m->n_adapters; i++)
        if (m->adapters[i]->active && peft_adapter_is_prompt(m->adapters[i]))
            return peft_set_error(m->ctx, PEFT_EINVAL,
                                  "merge_and_unload: adapter '%s' is active and %s, a "
                                  "prompt-learning method: it has no weights to merge and "
                                  "unloading would drop it; give adapter_names without it",
                                  m->adapters[i]->name, m->adapters[i]->vt->peft_type);
    int rc = merge_sites(m, "merge_and_unload", names, n, safe);
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
    for (size_t i = m->base->n_sites; i-- > 0;) /* last merged first: tied sites nest */
            peft_site_release(m->base->sites[i]);
    release_shell(m, out);
    return PEFT_OK;
}
