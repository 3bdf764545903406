/* checkpoint.c — gradient checkpointing of one block (graph.h peft_checkpoint): the forward
 * runs the block, keeps its output and rewinds the arena and the tape to before it; one tape
 * node recomputes the block in backward (RNG as in the forward), walks the block's own nodes,
 * and rewinds again, so that a step holds the block inputs plus one block's activations.
 * peft_block_scoped is the inference counterpart: a block's scratch rewound once it returns. */
#include <string.h>
#include "core/tensor/tape.h"

typedef struct {
    peft_block_fn fn;
    void *ud;
    peft_tensor *x, *out;
    peft_tensor **extra; /* n_extra other differentiable inputs (arena copy of the list) */
    int n_extra;
    peft_rng rng; /* the RNG state the forward started the block with */
    int has_rng;
} ckpt_ctx;

/* drops free-list entries that point into memory the rewind gives back */
static void keep_free_before(peft_graph *g, peft_arena_mark m)
{
    size_t k = 0;
    for (size_t i = 0; i < g->n_free; i++)
        if (!peft_arena_after_mark(g->arena, m, g->free_grads[i].buf)) g->free_grads[k++] = g->free_grads[i];
    g->n_free = k;
}

// dout (like x) -> dx += d fn(x)/dx dout, parameters' gradients accumulated
static void ckpt_backward(peft_graph *g, void *p)
{
    ckpt_ctx *c = p;
    float *dy = c->out->grad;
    if (!dy) return;
    if (c->x->requires_grad && !peft_grad_of(g, c->x)) { /* before the mark */
        peft_graph_set_error(g, "gradient checkpointing: out of memory for a block input's gradient");
        return;
    }
    for (int i = 0; i < c->n_extra; i++) /* accumulated by the recompute: allocated before the mark */
        if (c->extra[i]->requires_grad && !peft_grad_of(g, c->extra[i])) {
            peft_graph_set_error(g, "gradient checkpointing: out of memory for a block input's "
                                    "gradient");
            return;
        }
    peft_arena_mark m = peft_arena_get_mark(g->arena);
    const size_t n0 = g->n_nodes;
    peft_rng now;
    if (c->has_rng) { now = *g->rng; *g->rng = c->rng; }
    const int rec = g->recording;
    g->recording = 1;
    peft_tensor *y = c->fn(g, c->ud, c->x);
    g->recording = rec;
    if (!y || y->numel != c->out->numel) {
        peft_graph_set_error(g, "gradient checkpointing: recomputing a block in backward failed "
                                "(out of memory in the step arena)");
    } else if (y->requires_grad) {
        y->grad = dy; /* borrowed: the outer walk recycles it as c->out's */
        for (size_t i = g->n_nodes; i-- > n0;) {
            g->nodes[i].fn(g, g->nodes[i].ctx);
            if (g->nodes[i].out != y) peft_graph_recycle_grad(g, g->nodes[i].out);
        }
    }
    g->n_nodes = n0;
    keep_free_before(g, m);
    peft_arena_rewind(g->arena, m);
    if (c->has_rng) *g->rng = now;
}

peft_tensor *peft_checkpoint_ex(peft_graph *g, peft_block_fn fn, const void *ud, size_t ud_bytes,
                                peft_tensor *x, peft_tensor *const *extra, int n_extra)
{
    if (!g || !fn || !x || n_extra < 0 || (n_extra && !extra)) return NULL;
    if (!g->recording) return fn(g, (void *)ud, x);
    peft_tensor *out = peft_graph_tensor_raw(g, PEFT_DTYPE_F32, x->ndim, x->shape);
    void *udc = peft_arena_alloc(g->arena, ud_bytes ? ud_bytes : 1);
    peft_tensor **ex = peft_arena_alloc(g->arena, sizeof *ex * (size_t)(n_extra ? n_extra : 1));
    ckpt_ctx *c = peft_tape_push(g, ckpt_backward, sizeof *c);
    if (!out || !udc || !ex || !c) return NULL;
    if (ud_bytes) memcpy(udc, ud, ud_bytes);
    for (int i = 0; i < n_extra; i++) {
        if (!extra[i]) return NULL;
        ex[i] = extra[i];
    }
    c->extra = ex;
    c->n_extra = n_extra;
    c->fn = fn;
    c->ud = udc;
    c->x = x;
    c->out = out;
    if (g->rng) { c->rng = *g->rng; c->has_rng = 1; }
    const size_t n0 = g->n_nodes; /* the checkpoint node is n0 - 1 */
    peft_arena_mark m = peft_arena_get_mark(g->arena);
    peft_tensor *y = fn(g, udc, x);
    if (!y || y->numel != out->numel || y->dtype != PEFT_DTYPE_F32) return NULL;
    memcpy(out->data, y->data, (size_t)out->numel * sizeof(float));
    out->requires_grad = y->requires_grad;
    g->n_nodes = n0;
    peft_arena_rewind(g->arena, m);
    if (!out->requires_grad) g->n_nodes--; /* nothing to recompute for */
    else g->nodes[n0 - 1].out = out;
    return out;
}

peft_tensor *peft_block_scoped(peft_graph *g, peft_block_fn fn, void *ud, peft_tensor *x)
{
    if (!g || !fn || !x) return NULL;
    if (g->recording) return fn(g, ud, x);
    peft_tensor *out = peft_graph_tensor_raw(g, PEFT_DTYPE_F32, x->ndim, x->shape);
    if (!out) return NULL;
    peft_arena_mark m = peft_arena_get_mark(g->arena);
    peft_tensor *y = fn(g, ud, x);
    if (!y || y->numel != out->numel || y->dtype != PEFT_DTYPE_F32) return NULL;
    memcpy(out->data, y->data, (size_t)out->numel * sizeof(float));
    peft_arena_rewind(g->arena, m);
    return out;
}

peft_tensor *peft_checkpoint(peft_graph *g, peft_block_fn fn, const void *ud, size_t ud_bytes,
                             peft_tensor *x)
{
    return peft_checkpoint_ex(g, fn, ud, ud_bytes, x, NULL, 0);
}
