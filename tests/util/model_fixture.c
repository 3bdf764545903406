/* model_fixture.c — fixture models, inputs and reference tensors (model_fixture.h). */
#include "model_fixture.h"

#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "peft/graph.h"
#include "peft/safetensors.h"
#include "testutil.h"

peft_base_model *tu_model_load_ok(const char *dir)
{
    peft_base_model *m = NULL;
    ck_assert_msg(peft_load_base_model(tu_ctx(), dir, &m) == 0, "load %s: %s", dir,
                  peft_errmsg(tu_ctx()));
    return m;
}

const char *tu_model_load_fails(const char *dir)
{
    static char err[1024];
    peft_base_model *m = (peft_base_model *)0x1;
    err[0] = 0;
    ck_assert_int_lt(peft_load_base_model(tu_ctx(), dir, &m), 0); /* a PEFT_E* code */
    ck_assert_int_lt(peft_errcode(tu_ctx()), 0);
    snprintf(err, sizeof err, "%s", peft_errmsg(tu_ctx()));
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
    ck_assert_msg(peft_inputs_load_json(tu_ctx(), tu_fixture(rel_json), in) == 0, "%s", peft_errmsg(tu_ctx()));
}

float *tu_fixture_f32(const char *rel, const char *key, int64_t *n)
{
    peft_st_file *f = NULL;
    ck_assert_msg(peft_st_open(tu_ctx(), tu_fixture(rel), &f) == 0, "%s", peft_errmsg(tu_ctx()));
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

/* ---- writable model directories ------------------------------------------------------------ */

/* room for at least `need` tensors; re-points t[i].shape at the moved shapes */
static void tensors_reserve(tu_tensors *ts, size_t need)
{
    if (need <= ts->cap) return;
    size_t cap = ts->cap ? ts->cap : 8;
    while (cap < need) cap *= 2;
    ts->t = realloc(ts->t, cap * sizeof *ts->t);
    ts->names = realloc(ts->names, cap * sizeof *ts->names);
    ts->shapes = realloc(ts->shapes, cap * sizeof *ts->shapes);
    ts->data = realloc(ts->data, cap * sizeof *ts->data);
    ck_assert(ts->t && ts->names && ts->shapes && ts->data);
    for (size_t i = 0; i < ts->n; i++) ts->t[i].shape = ts->shapes[i];
    ts->cap = cap;
}

tu_tensors tu_tensors_read(const char *dir)
{
    char rel[512];
    snprintf(rel, sizeof rel, "%s/model.safetensors", dir);
    peft_st_file *f = NULL;
    ck_assert_msg(peft_st_open(tu_ctx(), tu_fixture(rel), &f) == 0, "%s", peft_errmsg(tu_ctx()));
    tu_tensors ts = {0};
    tensors_reserve(&ts, f->n_entries + 8);
    for (size_t i = 0; i < f->n_entries; i++) {
        const peft_st_entry *e = &f->entries[i];
        tu_tensors_add(&ts, e->name, e->dtype, e->ndim, e->shape, e->data);
    }
    peft_st_close(f);
    return ts;
}

ptrdiff_t tu_tensors_index(const tu_tensors *ts, const char *name)
{
    for (size_t i = 0; i < ts->n; i++)
        if (!strcmp(ts->names[i], name)) return (ptrdiff_t)i;
    return -1;
}

size_t tu_tensors_find(const tu_tensors *ts, const char *name)
{
    ptrdiff_t i = tu_tensors_index(ts, name);
    if (i < 0) ck_abort_msg("no tensor %s", name);
    return (size_t)i;
}

void *tu_tensors_add(tu_tensors *ts, const char *name, int32_t dtype, int ndim,
                     const int64_t *shape, const void *data)
{
    ck_assert(ndim >= 0 && ndim <= PEFT_MAX_DIMS);
    int64_t sh[PEFT_MAX_DIMS] = {0}; /* shape may point into ts->shapes, which may move */
    memcpy(sh, shape, (size_t)ndim * sizeof *shape);
    tensors_reserve(ts, ts->n + 1);
    size_t i = ts->n++;
    size_t bytes = (size_t)peft_shape_numel(ndim, shape) * peft_dtype_size(dtype);
    ts->names[i] = strdup(name);
    memcpy(ts->shapes[i], sh, sizeof sh);
    ts->data[i] = malloc(bytes ? bytes : 1);
    memcpy(ts->data[i], data, bytes);
    ts->t[i] = (peft_st_out){ts->names[i], dtype, ndim, ts->shapes[i], ts->data[i]};
    return ts->data[i];
}

void tu_tensors_remove(tu_tensors *ts, const char *name)
{
    size_t i = tu_tensors_find(ts, name);
    free(ts->names[i]);
    free(ts->data[i]);
    ts->n--;
    for (size_t j = i; j < ts->n; j++) {
        ts->names[j] = ts->names[j + 1];
        ts->data[j] = ts->data[j + 1];
        memcpy(ts->shapes[j], ts->shapes[j + 1], sizeof ts->shapes[j]);
        ts->t[j] = ts->t[j + 1];
        ts->t[j].shape = ts->shapes[j];
    }
}

void tu_tensors_rename(tu_tensors *ts, const char *from, const char *to)
{
    size_t i = tu_tensors_find(ts, from);
    free(ts->names[i]);
    ts->names[i] = strdup(to);
    ts->t[i].name = ts->names[i];
}

void tu_tensors_write(const tu_tensors *ts, const char *dir, const char *file)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, file ? file : "model.safetensors");
    ck_assert_msg(peft_st_write(tu_ctx(), path, ts->t, ts->n, NULL) == 0, "%s", peft_errmsg(tu_ctx()));
}

void tu_tensors_free(tu_tensors *ts)
{
    for (size_t i = 0; i < ts->n; i++) {
        free(ts->names[i]);
        free(ts->data[i]);
    }
    free(ts->t);
    free(ts->names);
    free(ts->shapes);
    free(ts->data);
    *ts = (tu_tensors){0};
}

void tu_write_config(const char *src, const char *dir, const char *patch, tu_config_nulls nulls)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", src);
    json_error_t je;
    json_t *cfg = json_load_file(tu_fixture(path), 0, &je);
    ck_assert_msg(cfg != NULL, "%s: %s", path, je.text);
    if (patch) {
        json_t *p = json_loads(patch, 0, &je);
        ck_assert_msg(p != NULL, "patch: %s", je.text);
        const char *k;
        json_t *v;
        json_object_foreach(p, k, v) {
            int del = nulls == TU_NULL_DELETES && json_is_null(v) &&
                      !json_is_null(json_object_get(cfg, k));
            if (del) json_object_del(cfg, k);
            else json_object_set(cfg, k, v);
        }
        json_decref(p);
    }
    snprintf(path, sizeof path, "%s/config.json", dir);
    ck_assert(json_dump_file(cfg, path, JSON_INDENT(2)) == 0);
    json_decref(cfg);
}
