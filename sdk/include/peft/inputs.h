/* inputs.h — read a batch (input_ids, attention_mask, labels) from a JSON file. */
#ifndef PEFT_INPUTS_H
#define PEFT_INPUTS_H

#include "peft/export.h"

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* owned (B, T) int arrays; attention_mask / labels NULL when absent. Free with peft_inputs_free. */
typedef struct peft_inputs {
    int64_t B, T;
    int32_t *input_ids, *attention_mask, *labels;
    int64_t labels_len;                 /* as peft_model_inputs.labels_len */
    int32_t *token_type_ids;            /* (B, T) */
    int32_t *decoder_input_ids, *decoder_attention_mask; /* (B, Td) */
    int64_t Td;
    int32_t *start_positions, *end_positions; /* (B) */
    int32_t *task_ids;                  /* (B): multitask prompt tuning's task per row */
} peft_inputs;

typedef struct peft_ctx peft_ctx; /* peft/peft.h */

/* Keys: input_ids (required), attention_mask, token_type_ids, decoder_input_ids,
 * decoder_attention_mask, labels ((B) class ids, (B, T) token labels, or (B, L) seq2seq
 * targets), start_positions, end_positions, task_ids ((B)). PEFT_OK and *in (free with
 * peft_inputs_free), or PEFT_EIO (cannot open path) / PEFT_EFORMAT (not JSON, an unknown key,
 * ragged rows: all rows of one key must have the same length, a mask other than 0/1...) with
 * the message naming the file and the key on ctx; *in is then empty. */
PEFT_API int peft_inputs_load_json(peft_ctx *ctx, const char *path, peft_inputs *in);
PEFT_API void peft_inputs_free(peft_inputs *in);

/* a view for peft_model_forward (borrowed arrays) */
struct peft_model_inputs;
PEFT_API void peft_inputs_view(const peft_inputs *in, struct peft_model_inputs *out);

#ifdef __cplusplus
}
#endif
#endif
