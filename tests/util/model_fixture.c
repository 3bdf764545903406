/* model_fixture.c — fixture models, inputs and reference tensors (model_fixture.h). */
#include "model_fixture.h"

#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "safetensors.h"
#include "testutil.h"

peft_base_model *tu_model_load_ok(const char *dir)
{
    peft_base_model *m = NULL;
    char err[1024] = "";
    ck_assert_msg(peft_base_model_load(dir, &m, err, sizeof err) == 0, "load %s: %s", dir, err);
    return m;
}

const char *tu_model_load_fails(const char *dir)
{
    static char err[1024];
    peft_base_model *m = (peft_base_model *)0x1;
    err[0] = 0;
    ck_assert_int_eq(peft_base_model_load(dir, &m, err, sizeof err), -1);
    ck_assert(m == NULL);
    ck_assert(err[0] != 0);
    if (getenv("TU_VERBOSE")) printf("  expected error: %s\n", err);
    return err;
}

static int32_t *json_matrix(json_t *root, const char *key, int64_t *B, int64_t *T)
{
    json_t *a = json_object_get(root, key);
    ck_assert_msg(json_is_array(a) && json_array_size(a) > 0, "inputs.json: no %s", key);
    *B = (int64_t)json_array_size(a);
    *T = (int64_t)json_array_size(json_array_get(a, 0));
    int32_t *out = malloc((size_t)(*B * *T) * sizeof *out);
    for (int64_t b = 0; b < *B; b++) {
        json_t *row = json_array_get(a, (size_t)b);
        ck_assert_int_eq((int64_t)json_array_size(row), *T);
        for (int64_t t = 0; t < *T; t++)
            out[b * *T + t] = (int32_t)json_integer_value(json_array_get(row, (size_t)t));
    }
    return out;
}

tu_inputs tu_inputs_load(const char *dir)
{
    char rel[512];
    snprintf(rel, sizeof rel, "%s/inputs.json", dir);
    json_error_t je;
    json_t *root = json_load_file(tu_fixture(rel), 0, &je);
    ck_assert_msg(root != NULL, "%s: %s", rel, je.text);
    tu_inputs in;
    int64_t B2, T2;
    in.ids = json_matrix(root, "input_ids", &in.B, &in.T);
    in.mask = json_matrix(root, "attention_mask", &B2, &T2);
    ck_assert(B2 == in.B && T2 == in.T);
    in.labels = json_matrix(root, "labels", &B2, &T2);
    ck_assert(B2 == in.B && T2 == in.T);
    json_decref(root);
    return in;
}

void tu_inputs_free(tu_inputs *in)
{
    free(in->ids);
    free(in->mask);
    free(in->labels);
}

void tu_peft_inputs_load(const char *rel_json, peft_inputs *in)
{
    char err[1024];
    ck_assert_msg(peft_inputs_load_json(tu_fixture(rel_json), in, err, sizeof err) == 0, "%s", err);
}

float *tu_fixture_f32(const char *rel, const char *key, int64_t *n)
{
    peft_st_file *f = NULL;
    char err[512];
    ck_assert_msg(peft_st_open(tu_fixture(rel), &f, err, sizeof err) == 0, "%s", err);
    const peft_st_entry *e = peft_st_find(f, key);
    ck_assert_msg(e && e->dtype == PEFT_DTYPE_F32, "%s: no f32 tensor %s", rel, key);
    *n = (int64_t)(e->nbytes / 4);
    float *r = malloc(e->nbytes);
    memcpy(r, e->data, e->nbytes);
    peft_st_close(f);
    return r;
}

peft_tensor *tu_output_named(const peft_model_outputs *o, const char *name)
{
    if (!strcmp(name, "logits")) return o->logits;
    if (!strcmp(name, "start_logits")) return o->start_logits;
    if (!strcmp(name, "end_logits")) return o->end_logits;
    if (!strcmp(name, "last_hidden_state")) return o->last_hidden_state;
    return NULL;
}
