/* ce_rows.h — the cross-entropy row kernels shared by op_cross_entropy (embed_loss.c) and the
 * chunked head + loss (chunked_ce.c), run over rows in the pool's threads (core/ops/ only).
 * Each row depends on its own logits only: any thread count gives the same bytes. */
#ifndef PEFT_CORE_OPS_CE_ROWS_H
#define PEFT_CORE_OPS_CE_ROWS_H

#include <stdint.h>

typedef struct {
    const float *x;          /* logits (N, V) */
    float *dl;               /* backward: dlogits (N, V) */
    float *lse;              /* (N) log-sum-exp: written by forward, read by backward */
    double *l;               /* forward: (N) the row's loss lse - x[target], 0 when ignored */
    const int32_t *targets;  /* (N) */
    int32_t ignore;
    int64_t V;
    float k;                 /* backward: dloss / n_valid */
} ops_ce_job;

/* ops_range_fn over rows of an ops_ce_job:
 *   fwd: lse[n], l[n] (0 and 0 for an ignored row)
 *   bwd: dl[n] += k (softmax(x[n]) - onehot(target)), ignored rows untouched */
__attribute__((visibility("hidden"))) void ops_ce_fwd_rows(void *job, int64_t lo, int64_t hi);
__attribute__((visibility("hidden"))) void ops_ce_bwd_rows(void *job, int64_t lo, int64_t hi);

#endif
