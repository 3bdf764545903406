/* site.h — running a site (linear, embedding, norm: what the architectures call), adapter
 * chains on sites: attach/detach, merge/unmerge (core-internal). */
#ifndef PEFT_SITE_H
#define PEFT_SITE_H

#include "core/model/model_internal.h"

/* The sites as the architectures run them (inside the library: not exported). */
/* Run one linear site: input transforms of active adapters, the base layer, then each active
 * unmerged adapter in the order added. x (..., in) -> (..., out). */
peft_tensor *peft_site_forward(peft_graph *g, peft_site *s, peft_tensor *x);
/* Run an embedding site: ids (B, T) looked up in the base table, then each active unmerged
 * adapter in the order added -> (B, T, dim). NULL when out of memory, an adapter failed (the
 * graph's error says which) or an id is outside the table (*bad_id set to it). */
peft_tensor *peft_site_embed(peft_graph *g, peft_site *s, const int32_t *ids, int64_t B,
                             int64_t T, int32_t *bad_id);
/* Run a norm site: the base norm of x (..., C), then each active unmerged adapter (LN tuning
 * replaces the output with its own copy's) -> (..., C) */
peft_tensor *peft_site_norm(peft_graph *g, peft_site *s, peft_tensor *x);

/* a norm site's normalisation (its norm_type, norm_eps) with parameters w (C), b (C) or NULL:
 * x (..., C) -> (..., C) on g (host->op_site_norm); NULL when info is no norm site or a shape
 * does not fit */
peft_tensor *peft_site_norm_op(peft_graph *g, const peft_site_info *info, peft_tensor *x,
                               peft_tensor *w, peft_tensor *b);
/* 1 when a linear (or Conv1D) site's forward is its base op alone in g's step: no adapter takes
 * part (none attached, or all merged, inactive or disabled), so its output is op_linear's, whose
 * data nobody reads after (op_linear's backward reads x and W only). 0 for other sites. */
int peft_site_plain_linear(const peft_site *s);
/* 1 when, besides, the site's backward never reads its input x (the weight is frozen): x may
 * then live in a transient buffer (peft_graph_tensor_transient) */
int peft_site_input_unread(const peft_site *s);
/* peft_site_norm with the output's data in the graph's transient buffer `slot`
 * (peft_graph_tensor_transient) when the site is a LayerNorm with no adapter taking part (its
 * backward reads x only), else plainly peft_site_norm: for a norm whose output only the next
 * op's forward reads (see peft_site_input_unread) */
peft_tensor *peft_site_norm_to(peft_graph *g, peft_site *s, peft_tensor *x, int slot);
/* append an adapter state to the chain (order = order added). 0 or -1 (OOM). */
int peft_site_attach(peft_site *s, peft_adapter *a, void *state);
/* index of adapter a in the chain or -1 */
int peft_site_find(const peft_site *s, const peft_adapter *a);
/* destroy the state at idx and remove it from the chain (the adapter must be unmerged) */
void peft_site_detach(peft_site *s, int idx);
/* fold chain[idx] into the weight (safe: on a copy, refusing NaN/Inf). 0 or -1 with err. */
int peft_site_merge(peft_site *s, int idx, int safe, char *err, size_t errlen);
/* take chain[idx] out again; the last unmerge restores the loaded weight bit-exactly */
int peft_site_unmerge(peft_site *s, int idx, char *err, size_t errlen);
/* after merge_and_unload: keep the merged weight as the new base */
void peft_site_keep_merged(peft_site *s);
/* detach every adapter and restore the loaded weight */
void peft_site_release(peft_site *s);

/* ---- the site x adapter traversal (core/model/traverse.c) ----
 * The one way the core visits adapters on sites: every entry of every site's adapter chain,
 * sites in module order and each chain in the order its adapters were added; with `only`, just
 * that adapter's entries (one per site it is on). The reverse traversal runs the last site first
 * and each chain last entry first: the order unmerging takes (a tied weight's two sites nest
 * their saved copies). The body may detach the entry it stands on (peft_site_detach(it.site,
 * it.j)); the traversal goes on with the entry after it.
 *
 *     PEFT_EACH_SITE_ADAPTER(it, base, a)      // or PEFT_EACH_SITE_ADAPTER_REVERSE
 *         use(it.site, it.sa);                 // it.j: the entry's index in it.site->chain
 *
 * `break` and `return` leave it as they leave any loop. Applications read the same chains
 * through peft/model.h's peft_base_model_site_adapter. */
typedef struct peft_site_iter {
    peft_base_model *base;     /* borrowed */
    const peft_adapter *only;  /* NULL: every adapter */
    int reverse;
    size_t i;                  /* the site's index in base->sites */
    int j;                     /* the entry's index in site->chain */
    int n_chain;               /* site->n_chain when the entry was reached (detach detection) */
    peft_site *site;           /* the site standing on, NULL when done */
    peft_site_adapter *sa;     /* &site->chain[j], NULL when done */
} peft_site_iter;

/* the first entry (it.sa NULL when there is none) */
peft_site_iter peft_site_iter_first(peft_base_model *base, const peft_adapter *only, int reverse);
/* moves to the next entry; it->sa NULL past the last */
void peft_site_iter_next(peft_site_iter *it);

#define PEFT_EACH_SITE_ADAPTER(it, base, only)                                                  \
    for (peft_site_iter it = peft_site_iter_first((base), (only), 0); it.sa; peft_site_iter_next(&it))
#define PEFT_EACH_SITE_ADAPTER_REVERSE(it, base, only)                                          \
    for (peft_site_iter it = peft_site_iter_first((base), (only), 1); it.sa; peft_site_iter_next(&it))

#endif
