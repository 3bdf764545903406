/* rope_scaling.h — the rotary inverse frequencies of a decoder config, as transformers 4.44's
 * modeling_rope_utils computes them (f32, operation for operation): "default" (no
 * rope_scaling), "linear" (inv_freq / factor), "dynamic" (NTK base growth past
 * max_position_embeddings, per forward) and "llama3" (Llama 3.1's three frequency bands).
 *
 * Internal to core/models; nothing here is public API.
 */
#ifndef PEFT_MODELS_ROPE_SCALING_H
#define PEFT_MODELS_ROPE_SCALING_H

#include <stddef.h>
#include <stdint.h>
#include "core/model/model_internal.h"

enum { ROPE_DEFAULT, ROPE_LINEAR, ROPE_DYNAMIC, ROPE_LLAMA3 };

typedef struct rope_cfg {
    int type;
    int64_t dim;         /* rotary dimension (the head size) */
    double theta;        /* rope_theta */
    double factor;       /* linear / dynamic / llama3 */
    int64_t max_pos;     /* dynamic: max_position_embeddings */
    float inv[512];      /* dim/2 frequencies: the fixed ones (dynamic: at max_pos) */
} rope_cfg;

/* Reads rope_theta and rope_scaling from m->config for head size dim (even, <= 1024). With
 * allow_scaling 0 a non-null rope_scaling is refused (the architecture's transformers 4.44 class
 * takes none); name is the arch for messages. 0, or -1 with err naming the field. */
int rope_cfg_read(const peft_base_model *m, int64_t dim, int allow_scaling, const char *name,
                  rope_cfg *r, char *err, size_t errlen);

/* The frequencies for one forward whose largest position is max_position (dynamic: grown past
 * max_position_embeddings as transformers computes them for seq_len = max_position + 1; the
 * others: r->inv). Returns r->inv or `scratch` (dim/2 floats) filled. */
const float *rope_inv_freq(const rope_cfg *r, int64_t max_position, float *scratch);

#endif
