/* inplace.c — ops that write into an input instead of a new step tensor: the residual add
 * (op_add_into), for an accumulator whose data nobody reads later (an op_linear or dropout
 * output), so a block keeps one (B, T, C) tensor per residual add instead of two. */
#include "core/ops/ops.h"
#include "core/ops/pool.h"

typedef struct { peft_tensor *acc, *x; } add_into_ctx;

// x (n) -> y (n) += x   (pool slices: ops_map1)
static void k_acc(const float *x, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] += x[i];
}

// d(acc + x) = acc's gradient (n) -> dx (n) += it; acc's own gradient passes on as it is
static void add_into_backward(peft_graph *g, void *p)
{
    add_into_ctx *c = p;
    const float *dy = c->acc->grad;
    float *dx = dy ? peft_grad_of(g, c->x) : NULL;
    if (dx) ops_map1(k_acc, dy, dx, c->x->numel);
}

// acc (n), x (n) -> acc (n) += x, shape of acc
peft_tensor *op_add_into(peft_graph *g, peft_tensor *acc, peft_tensor *x)
{
    if (!acc || !x || acc == x || acc->numel != x->numel || acc->dtype != PEFT_DTYPE_F32 ||
        x->dtype != PEFT_DTYPE_F32)
        return NULL;
    ops_map1(k_acc, peft_f32(x), peft_f32(acc), acc->numel); /* acc + x == x + acc, bit for bit */
    if (peft_needs_grad(g, acc, x)) {
        acc->requires_grad = 1;
        if (x->requires_grad) {
            /* no declared output: acc's gradient lives on for its producer's backward */
            add_into_ctx *c = peft_tape_push(g, add_into_backward, sizeof *c);
            if (!c) return NULL;
            c->acc = acc; c->x = x;
        }
    }
    return acc;
}
