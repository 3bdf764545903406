/* traverse.c — the site x adapter traversal (core/model/site.h: PEFT_EACH_SITE_ADAPTER): every
 * entry of every site's adapter chain, forward or reverse, all adapters or one. */
#include "core/model/site.h"

/* settles on the entry at (i, j) or the next one that qualifies, moving in the traversal's
 * direction; j may start past either end of the chain (the walk then moves to the next site) */
static void settle(peft_site_iter *it)
{
    peft_base_model *b = it->base;
    /* reverse: i-- past site 0 wraps to SIZE_MAX, past n_sites, which ends the walk */
    for (; it->i < b->n_sites; it->reverse ? it->i-- : it->i++) {
        peft_site *s = b->sites[it->i];
        if (it->j == -2) it->j = it->reverse ? s->n_chain - 1 : 0; /* entering this site */
        for (; it->j >= 0 && it->j < s->n_chain; it->reverse ? it->j-- : it->j++)
            if (!it->only || s->chain[it->j].adapter == it->only) {
                it->site = s;
                it->sa = &s->chain[it->j];
                it->n_chain = s->n_chain;
                return;
            }
        it->j = -2;
    }
    it->site = NULL;
    it->sa = NULL;
}

peft_site_iter peft_site_iter_first(peft_base_model *base, const peft_adapter *only, int reverse)
{
    peft_site_iter it = {.base = base, .only = only, .reverse = reverse, .j = -2};
    if (!base || base->n_sites == 0) return it;
    it.i = reverse ? base->n_sites - 1 : 0;
    settle(&it);
    return it;
}

void peft_site_iter_next(peft_site_iter *it)
{
    if (!it->sa) return;
    /* the body detached the entry: the one after it has moved into its place (forward); the one
     * before it is where it was (reverse) */
    int detached = it->site->n_chain < it->n_chain;
    if (it->reverse) it->j--;
    else if (!detached) it->j++;
    settle(it);
}
