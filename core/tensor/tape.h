/* tape.h — the tape's internals shared by graph.c and checkpoint.c (core-internal). */
#ifndef PEFT_TAPE_H
#define PEFT_TAPE_H

#include "peft/graph.h"
#include "core/tensor/graph_internal.h"

/* after the producer of t ran its backward, t's arena gradient is dead: kept for reuse */
void peft_graph_recycle_grad(peft_graph *g, peft_tensor *t);

#endif
