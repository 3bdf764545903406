/* inputs.h — read a batch (input_ids, attention_mask, labels) from a JSON file. */
#ifndef PEFT_INPUTS_H
#define PEFT_INPUTS_H

#include <stddef.h>
#include <stdint.h>

/* owned (B, T) int arrays; attention_mask / labels NULL when absent. Free with peft_inputs_free. */
typedef struct peft_inputs {
    int64_t B, T;
    int32_t *input_ids, *attention_mask, *labels;
} peft_inputs;

/* 0, or -1 with err naming the file and the key (all rows must have the same length) */
int peft_inputs_load_json(const char *path, peft_inputs *in, char *err, size_t errlen);
void peft_inputs_free(peft_inputs *in);

#endif
