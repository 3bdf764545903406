/* model_fixture.h — the base-model suites' shared fixture plumbing (test_gpt2.c, test_llama.c,
 * test_bert.c, test_t5.c): loading a fixture model (or expecting it to fail), a fixture's
 * inputs.json, reference tensors from a fixture safetensors file, an output by its name. */
#ifndef PEFT_TEST_MODEL_FIXTURE_H
#define PEFT_TEST_MODEL_FIXTURE_H

#include <stdint.h>

#include "inputs.h"
#include "model.h"

/* peft_base_model_load(dir) that must succeed */
peft_base_model *tu_model_load_ok(const char *dir);
/* peft_base_model_load(dir) that must fail with a message (and leave no model); the message,
 * static (printed when TU_VERBOSE is set) */
const char *tu_model_load_fails(const char *dir);

/* input_ids, attention_mask and labels of a fixture's inputs.json, each (B, T), read directly
 * with jansson */
typedef struct tu_inputs {
    int64_t B, T;
    int32_t *ids, *mask, *labels; /* (B, T) */
} tu_inputs;
/* <dir>/inputs.json, dir relative to the fixtures */
tu_inputs tu_inputs_load(const char *dir);
void tu_inputs_free(tu_inputs *in);

/* peft_inputs_load_json of fixture file rel_json, which must succeed */
void tu_peft_inputs_load(const char *rel_json, peft_inputs *in);

/* a copy (caller frees) of f32 tensor `key` of fixture safetensors file rel; *n its numel */
float *tu_fixture_f32(const char *rel, const char *key, int64_t *n);

/* the output called `name` (logits, start_logits, end_logits, last_hidden_state), or NULL */
peft_tensor *tu_output_named(const peft_model_outputs *o, const char *name);

#endif
