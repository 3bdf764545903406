/* model_init.h — writes freshly initialised Hugging Face model directories (config.json +
 * model.safetensors) for benchmarks and tests that need a full-size base model without
 * downloading one. Initialisation follows transformers' _init_weights, driven by libpeft's
 * seeded RNG (DESIGN.md 10): the same shape and seed give the same bytes.
 */
#ifndef PEFT_MODEL_INIT_H
#define PEFT_MODEL_INIT_H

#include "peft/export.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct peft_ctx peft_ctx; /* peft/peft.h */

/* GPT-2 hyper-parameters (GPT2Config names). GPT-2 124M: 12, 768, 12, 50257, 1024. */
typedef struct peft_gpt2_shape {
    int n_layer;
    int n_embd;      /* must be a multiple of n_head */
    int n_head;
    int vocab_size;
    int n_positions;
} peft_gpt2_shape;

/* Creates dir (mkdir -p) and writes dir/config.json (GPT2Config.to_dict() fields, model_type
 * "gpt2", GPT2LMHeadModel, tied embeddings) and dir/model.safetensors (f32, HF tensor names,
 * metadata {"format": "pt"}, no lm_head.weight since it is tied to transformer.wte.weight),
 * both atomically. Weights: N(0, 0.02); attn.c_proj / mlp.c_proj weights N(0, 0.02/sqrt(2 L));
 * biases 0; layer norms weight 1, bias 0. PEFT_OK, or PEFT_EINVAL (a shape refused), PEFT_EIO
 * (dir or a file could not be written) or PEFT_ENOMEM, with a message naming the file and the
 * problem on ctx (may be NULL: the code alone). Needs about 4 bytes per parameter of memory
 * while writing. */
PEFT_API int peft_write_random_gpt2(peft_ctx *ctx, const char *dir, const peft_gpt2_shape *shape,
                                    uint64_t seed);

#ifdef __cplusplus
}
#endif
#endif
