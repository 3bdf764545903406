/* softcap.c — tanh soft-capping, cap * tanh(x / cap), and its backward (Gemma2's final logits;
 * the attention scores are capped inside op_attention_opt). The order of operations is
 * transformers' (x / cap, tanh, * cap), each in f32. */
#include "core/ops/ops.h"

#include <math.h>

typedef struct { peft_tensor *x, *out; float cap; } softcap_ctx;

// dy (n); x (n) -> dx (n) += dy * (1 - tanh^2(x / cap))
static void softcap_backward(peft_graph *g, void *p)
{
    softcap_ctx *c = p;
    const float *dy = c->out->grad;
    float *dx = dy ? peft_grad_of(g, c->x) : NULL;
    if (!dx) return;
    const float *x = peft_f32(c->x);
    for (int64_t i = 0; i < c->x->numel; i++) {
        const float th = tanhf(x[i] / c->cap);
        dx[i] += dy[i] * (1.0f - th * th);
    }
}

// x (n) -> y (n) = cap * tanh(x / cap), shape of x
peft_tensor *op_softcap(peft_graph *g, peft_tensor *x, float cap)
{
    if (!x || x->dtype != PEFT_DTYPE_F32 || !(cap > 0.0f)) return NULL;
    peft_tensor *y = peft_graph_tensor_raw(g, PEFT_DTYPE_F32, x->ndim, x->shape);
    if (!y) return NULL;
    const float *xd = peft_f32(x);
    float *yd = peft_f32(y);
    for (int64_t i = 0; i < x->numel; i++) yd[i] = tanhf(xd[i] / cap) * cap;
    y->requires_grad = peft_needs_grad(g, x, NULL);
    if (y->requires_grad) {
        softcap_ctx *c = peft_tape_push(g, softcap_backward, sizeof *c);
        if (!c) return NULL;
        c->x = x; c->out = y; c->cap = cap;
        peft_tape_output(g, c->out);
    }
    return y;
}
