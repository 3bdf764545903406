/* t5_attention.h — T5's relative position bias (transformers 4.44 T5Attention.compute_bias):
 * the bucket of a key-minus-query distance, and the differentiable gather of the bias table
 * into the additive (H, T, S) score bias that op_attention_ex takes. Used by core/models/t5.c
 * (and exported for tests/test_t5.c). */
#ifndef PEFT_T5_ATTENTION_H
#define PEFT_T5_ATTENTION_H

#include <stdint.h>
#include "peft/graph.h"

/* HF _relative_position_bucket for rel = key_position - query_position: bidirectional (the
 * encoder) splits num_buckets between negative and positive distances; unidirectional (the
 * decoder) maps every positive distance to bucket 0. Distances below half the buckets get one
 * bucket each, larger ones log-spaced up to max_distance (computed in float32 as torch does),
 * everything beyond in the last bucket. Returns a bucket in [0, num_buckets). */
int t5_relative_bucket(int64_t rel, int bidirectional, int num_buckets, int max_distance);

/* table (NB, H) (relative_attention_bias.weight, f32/bf16/f16) -> bias (H, T, S), an arena
 * tensor: bias[h][t][s] = table[bucket(s - (t + q_off))][h]. q_off shifts the query positions
 * (prefix tuning: the T decoder queries sit at q_off..q_off+T-1 after q_off prefix keys).
 * The gradient flows to table when it requires one (a scatter-add). NULL on bad arguments
 * (table not 2-D, T/S not positive, num_buckets != NB) or arena OOM. */
peft_tensor *t5_position_bias(peft_graph *g, peft_tensor *table, int64_t T, int64_t S,
                              int64_t q_off, int bidirectional, int num_buckets, int max_distance);

#endif
