/* common.h — small helpers shared by the op files (core/ops/ only). */
#ifndef PEFT_CORE_OPS_COMMON_H
#define PEFT_CORE_OPS_COMMON_H

#include "peft/dtype.h"
#include "peft/graph.h"
#include "core/tensor/graph_internal.h"

/* f32 view of a (maybe bf16/f16) tensor: the data itself, or a converted copy in g's arena
 * (valid until the arena is reset); NULL when the arena is out of memory */
static inline const float *ops_as_f32(peft_graph *g, const peft_tensor *t)
{
    if (t->dtype == PEFT_DTYPE_F32) return (const float *)t->data;
    peft_tensor *c = peft_graph_tensor_raw(g, PEFT_DTYPE_F32, 1, &t->numel);
    if (!c) return NULL;
    peft_tensor_to_f32(t, (float *)c->data);
    return (const float *)c->data;
}

/* the weight and bias gradients of a norm over rows: dw (C) += sum_n dy[n] ((x[n] - mean[n])
 * rstd[n]) (mean NULL: 0, the RMS norm), db (C) += sum_n dy[n]; dw or db may be NULL. Columns
 * split over the pool's threads, each summed over the rows in order (any thread count gives
 * the same bytes). x, dy (N, C); mean, rstd (N). */
__attribute__((visibility("hidden"))) void ops_norm_param_grads(const float *x, const float *dy,
                                                                const float *mean,
                                                                const float *rstd, int64_t N,
                                                                int64_t C, float *dw, float *db);

#endif
