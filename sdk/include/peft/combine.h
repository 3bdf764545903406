/* peft/combine.h — PEFT's add_weighted_adapter: a new adapter made from a weighted combination
 * of existing ones (LoraModel.add_weighted_adapter, PEFT 0.13.2), for any method whose plugin
 * implements the vtable's `combine` (LoRA does).
 *
 * The new adapter's config is the first source's adapter_config.json with target_modules
 * united (below) and the method's own fields written by its plugin's `combine_config` entry
 * (ABI 1.4; the core names no method). LoRA's, as PEFT:
 *   r           the sources' common rank (linear, ties, dare_linear, dare_ties,
 *               magnitude_prune: every source must have the same r), their sum (cat), or
 *               svd_rank, else the largest rank (the *svd types); a source's rank is the max of
 *               r and its rank_pattern values (PEFT after 0.13.2)
 *   lora_alpha  = r, so that the new adapter's scaling is 1 (each source's scaling is folded
 *               into the combined weights)
 *   target_modules  the union of the sources' lists (in order of first appearance), or
 *               "(t1)|(t2)|..." when they are regexes; a mix of both is refused
 *   rank_pattern, alpha_pattern  {} (as PEFT after 0.13.2: the new rank is uniform)
 *   init_lora_weights  true when a source's was a string ("pissa", "olora"...: their init would
 *               rewrite the base weights; the new adapter's weights are computed anyway)
 * One source is always combined with "linear" (PEFT does the same). The new adapter is
 * added, frozen (requires_grad off) and not made active: peft_set_adapter() it.
 *
 * Refused, with a message naming the adapter: an unknown or missing source, sources of several
 * methods or of a method without `combine`, and from LoRA's combine_config: DoRA sources (use_dora), unequal ranks where they
 * must be equal, a negative weight where A and B are weighted by sqrt(weight * scaling)
 * (linear, ties, dare_*, magnitude_prune: PEFT fails there with a math domain error), two
 * sources with modules_to_save copies of the same module, a missing density where one is
 * needed, an existing adapter_name (PEFT 0.13.2 silently returns; here it is an error).
 * Where libpeft departs from PEFT 0.13.2 (bugs PEFT fixed later) is listed in
 * plugins/lora/lora_combine.c.
 */
#ifndef PEFT_COMBINE_H
#define PEFT_COMBINE_H

#include "peft/export.h"

#include "peft/peft.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct peft_combine_opts {
    const char *combination_type;     /* "svd" (PEFT's default), "linear", "cat", "ties",
                                         "ties_svd", "dare_linear", "dare_ties",
                                         "dare_linear_svd", "dare_ties_svd", "magnitude_prune",
                                         "magnitude_prune_svd"; NULL = "svd" */
    int svd_rank;                     /* the *svd types' new rank; 0 = the sources' largest */
    double svd_clamp;                 /* quantile in [0, 1] clamping the SVD factors; NaN = none */
    int svd_full_matrices;            /* PEFT's default 1: refuses svd_rank > min(in, out) */
    double density;                   /* fraction kept by ties/dare/magnitude_prune; NaN = none */
    const char *majority_sign_method; /* "total" (default, NULL) or "frequency" */
} peft_combine_opts;

/* PEFT's defaults: combination_type "svd", svd_rank 0, svd_clamp NaN, svd_full_matrices 1,
 * density NaN, majority_sign_method "total". */
PEFT_API void peft_combine_opts_init(peft_combine_opts *o);

/* Adds adapter `adapter_name` = the combination of adapters[0..n) weighted by weights[0..n)
 * (borrowed arrays; opts NULL = defaults). DARE's random masks come from the context's seeded
 * RNG. On failure nothing is added. PEFT_OK, or PEFT_ENOTFOUND (a source does not exist),
 * PEFT_EINVAL (a refusal above), PEFT_ENOMEM, with the message in peft_errmsg(). */
PEFT_API int peft_add_weighted_adapter(peft_model *m, const char *const *adapters, const double *weights,
                                       int n, const char *adapter_name, const peft_combine_opts *opts);

#ifdef __cplusplus
}
#endif
#endif
