/* site.h — adapter chains on linear sites: attach/detach, merge/unmerge (core-internal). */
#ifndef PEFT_SITE_H
#define PEFT_SITE_H

#include "core/model/model_internal.h"

/* a norm site's normalisation (its norm_type, norm_eps) with parameters w (C), b (C) or NULL:
 * x (..., C) -> (..., C) on g (host->op_site_norm); NULL when info is no norm site or a shape
 * does not fit */
peft_tensor *peft_site_norm_op(peft_graph *g, const peft_site_info *info, peft_tensor *x,
                               peft_tensor *w, peft_tensor *b);
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

#endif
