/* model_fixture.h — the base-model suites' shared fixture plumbing (test_gpt2.c, test_llama.c,
 * test_bert.c, test_t5.c): loading a fixture model (or expecting it to fail), a fixture's
 * inputs.json, reference tensors from a fixture safetensors file, an output by its name, and
 * writable model directories (an editable copy of a fixture's weights, a patched config.json). */
#ifndef PEFT_TEST_MODEL_FIXTURE_H
#define PEFT_TEST_MODEL_FIXTURE_H

#include <stddef.h>
#include <stdint.h>

#include "peft/inputs.h"
#include "peft/peft.h"
#include "peft/safetensors.h"

/* peft_load_base_model(dir) that must succeed */
peft_base_model *tu_model_load_ok(const char *dir);
/* peft_load_base_model(dir) that must fail with a message (and leave no model); the message,
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

/* ---- writable model directories ----------------------------------------------------------- */

/* An editable copy of a model's tensors: t[i] (what tu_tensors_write writes) points at names[i],
 * shapes[i] and data[i], all owned (malloc'd) by the set. Tests may edit t[i] / names[i] /
 * shapes[i] / data[i] in place (keeping t[i] pointing at them), or write a prefix by lowering n
 * for a moment; n of cap slots are in use. */
typedef struct tu_tensors {
    peft_st_out *t;
    char **names;
    int64_t (*shapes)[PEFT_MAX_DIMS];
    void **data;
    size_t n, cap;
} tu_tensors;

/* a copy of <dir>/model.safetensors (dir relative to the fixtures), with spare capacity for
 * tu_tensors_add */
tu_tensors tu_tensors_read(const char *dir);
/* the index of tensor `name`, or -1 */
ptrdiff_t tu_tensors_index(const tu_tensors *ts, const char *name);
/* the index of tensor `name`; aborts the test if there is none */
size_t tu_tensors_find(const tu_tensors *ts, const char *name);
/* appends tensor `name` (dtype, shape[ndim]) with a copy of data; returns the copy */
void *tu_tensors_add(tu_tensors *ts, const char *name, int32_t dtype, int ndim,
                     const int64_t *shape, const void *data);
/* removes tensor `name` (aborts the test if there is none); the later ones move down */
void tu_tensors_remove(tu_tensors *ts, const char *name);
/* renames tensor `from` (aborts the test if there is none) to `to` */
void tu_tensors_rename(tu_tensors *ts, const char *from, const char *to);
/* writes the set to <dir>/<file> (file NULL: model.safetensors); must succeed */
void tu_tensors_write(const tu_tensors *ts, const char *dir, const char *file);
void tu_tensors_free(tu_tensors *ts);

/* how tu_write_config treats a null value in the patch */
typedef enum tu_config_nulls {
    TU_NULL_SETS,    /* stored as null (json_object_update) */
    TU_NULL_DELETES, /* deletes the key, unless the source already holds null there (kept) */
} tu_config_nulls;
/* <src>/config.json (src relative to the fixtures) with `patch` (a JSON object text, or NULL)
 * merged in, written to <dir>/config.json */
void tu_write_config(const char *src, const char *dir, const char *patch, tu_config_nulls nulls);

#endif
