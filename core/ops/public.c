/* public.c — the ops the public API offers applications (peft/graph.h: peft_graph_add,
 * peft_graph_mse), over the core's internal ops (core/ops/ops.h), with their input checked and
 * a failure left on the graph's sticky error instead of a bare NULL. */
#include "core/ops/ops.h"
#include "peft/status.h"

/* a (n), b (n) -> a + b (shape of a) */
peft_tensor *peft_graph_add(peft_graph *g, peft_tensor *a, peft_tensor *b)
{
    if (!g) return NULL;
    if (!a || !b || a->dtype != PEFT_DTYPE_F32 || b->dtype != PEFT_DTYPE_F32 || a->numel != b->numel) {
        peft_graph_fail(g, PEFT_EINVAL, "peft_graph_add: needs two f32 tensors of the same size");
        return NULL;
    }
    peft_tensor *y = op_add(g, a, b);
    if (!y) peft_graph_fail(g, PEFT_ENOMEM, "out of memory in the step arena (peft_graph_add)");
    return y;
}

/* x (n), target (n) -> () mean((x - target)^2) */
peft_tensor *peft_graph_mse(peft_graph *g, peft_tensor *x, const float *target)
{
    if (!g) return NULL;
    if (!x || !target || x->dtype != PEFT_DTYPE_F32 || x->numel <= 0) {
        peft_graph_fail(g, PEFT_EINVAL, "peft_graph_mse: needs a non-empty f32 tensor and a target");
        return NULL;
    }
    peft_tensor *y = op_mse(g, x, target);
    if (!y) peft_graph_fail(g, PEFT_ENOMEM, "out of memory in the step arena (peft_graph_mse)");
    return y;
}
