/* fd.h — the finite-difference gradient harness shared by the op suites (test_ops.c,
 * test_ops_ext.c): random test tensors, and the tape's gradient of every input with
 * requires_grad against double-precision central differences of L = sum(out * R). */
#ifndef PEFT_TEST_FD_H
#define PEFT_TEST_FD_H

#include <stdint.h>

#include "peft/graph.h"

/* the test data's generator (rand_tensor and the random R); each suite seeds it in main */
extern peft_rng fd_rng;

/* a builder computes the op's output from the inputs on graph g */
typedef peft_tensor *(*fd_build_fn)(peft_graph *g, peft_tensor **in, const void *ud);

/* how each graph the harness builds is set up: its own RNG seeded with graph_seed (dropout),
 * and the graph's training flag */
typedef struct {
    uint64_t graph_seed;
    int training;
} fd_opts;

/* an f32 tensor of N(0, scale^2) entries from fd_rng */
peft_tensor *fd_rand_tensor(int ndim, const int64_t *shape, float scale, int requires_grad);

/* Compares the tape's gradients of every input with requires_grad against double-precision
 * central differences of L = sum(out * R), R random from fd_rng (or L = out for a scalar
 * output, using peft_graph_backward): |num - ana| <= atol + rtol * max(|num|, |ana|). Inputs
 * without requires_grad must get no gradient buffer. */
void fd_check_grads(const fd_opts *o, const char *name, fd_build_fn f, peft_tensor **in, int n_in,
                    const void *ud, double eps, double rtol, double atol);

/* peft_tensor_free of in[0..n) */
void fd_free_all(peft_tensor **in, int n);

#endif
