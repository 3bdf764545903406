/* graph_internal.h — the body of peft_graph (opaque in peft/graph.h): the step's arena, its tape,
 * the recycled gradient buffers and the sticky error. Core-internal: the ops, the tape walker,
 * the host table and white-box tests read these fields; applications and plugins go through
 * peft/graph.h's calls (and the host table). */
#ifndef PEFT_GRAPH_INTERNAL_H
#define PEFT_GRAPH_INTERNAL_H

#include "peft/graph.h"

typedef struct peft_tape_node {
    peft_backward_fn fn;
    void *ctx;
    peft_tensor *out; /* the op's output, when declared: its gradient dies after fn runs */
} peft_tape_node;

/* a dead gradient buffer, reused by the next peft_grad_of of the same size */
#define PEFT_GRAPH_TRANSIENT_SLOTS 3

typedef struct peft_free_grad {
    float *buf;
    size_t bytes;
} peft_free_grad;

struct peft_graph {
    peft_arena *arena;
    peft_tape_node *nodes;
    size_t n_nodes, cap_nodes;
    int recording; /* 1: ops push backward nodes */
    int training;  /* 1: dropout active */
    peft_rng *rng; /* borrowed */
    peft_free_grad *free_grads; /* recycled activation gradients (backward only) */
    size_t n_free, cap_free;
    /* transient buffers (peft_graph_tensor_transient): mapped once, kept across steps */
    void *transient[PEFT_GRAPH_TRANSIENT_SLOTS];
    size_t transient_bytes[PEFT_GRAPH_TRANSIENT_SLOTS];
    /* the sticky error (peft_graph_set_error / peft_graph_fail): the first message of the step,
     * "" when none, and its PEFT_E* code (PEFT_OK when none); cleared by peft_graph_reset */
    char error[512];
    int err_code;
};

/* A step tensor (header in the arena) whose data lives in the graph's transient buffer `slot`
 * instead of the arena: that buffer is kept across steps and reused by the next tensor of the
 * same slot, so the data is valid only until then. For an output that the next op's forward
 * reads and nobody's backward does (GELU's output feeding a frozen linear): a step then keeps
 * one such buffer, not one per layer. NULL (error set) when out of memory or slot is bad. */
enum {
    PEFT_TRANSIENT_MLP = 0, /* an MLP's activation (GELU's output) */
    PEFT_TRANSIENT_ATTN,    /* attention's output before the output projection */
    PEFT_TRANSIENT_NORM     /* a norm's output before a frozen projection */
};
peft_tensor *peft_graph_tensor_transient(peft_graph *g, int slot, int ndim, const int64_t *shape);

/* 1 if an op output must require grad: recording and any input requires grad */
static inline int peft_needs_grad(const peft_graph *g, const peft_tensor *a, const peft_tensor *b)
{
    return g->recording && ((a && a->requires_grad) || (b && b->requires_grad));
}

/* A model block run for inference with its scratch given back: when g is not recording, out
 * (shaped as x) is carved before a mark, fn(g, ud, x) runs, its output (same numel as x) is
 * copied into out and the arena rewinds to the mark, so that a forward holds one block's
 * activations, not every block's. Nothing fn allocates in the arena may be used after it
 * returns. When recording, plainly fn(g, ud, x). NULL on failure. (core/tensor/checkpoint.c) */
peft_tensor *peft_block_scoped(peft_graph *g, peft_block_fn fn, void *ud, peft_tensor *x);

#endif
