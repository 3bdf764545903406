/* inputs.c — a batch of token ids from JSON (PEFT-style kwargs: input_ids, attention_mask,
 * labels as nested lists), used by the CLI and the fixture tests. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "inputs.h"

/* one (B, T) int matrix from key; returns 0 (absent: *out NULL), -1 on error */
static int int_matrix(json_t *root, const char *key, const char *path, int64_t *B, int64_t *T,
                      int32_t **out, char *err, size_t errlen)
{
    *out = NULL;
    json_t *rows = json_object_get(root, key);
    if (!rows || json_is_null(rows)) return 0;
    if (!json_is_array(rows) || json_array_size(rows) == 0) {
        snprintf(err, errlen, "%s: '%s' must be a non-empty list of lists of integers", path, key);
        return -1;
    }
    int64_t b = (int64_t)json_array_size(rows);
    json_t *r0 = json_array_get(rows, 0);
    int64_t t = json_is_array(r0) ? (int64_t)json_array_size(r0) : 0;
    if (t == 0) {
        snprintf(err, errlen, "%s: '%s'[0] must be a non-empty list of integers", path, key);
        return -1;
    }
    if (*B && (*B != b || *T != t)) {
        snprintf(err, errlen, "%s: '%s' is %lldx%lld but input_ids is %lldx%lld", path, key,
                 (long long)b, (long long)t, (long long)*B, (long long)*T);
        return -1;
    }
    int32_t *m = malloc((size_t)(b * t) * sizeof *m);
    if (!m) return -1;
    for (int64_t i = 0; i < b; i++) {
        json_t *r = json_array_get(rows, (size_t)i);
        if (!json_is_array(r) || (int64_t)json_array_size(r) != t) {
            snprintf(err, errlen, "%s: '%s'[%lld] must have %lld integers like row 0", path, key,
                     (long long)i, (long long)t);
            free(m);
            return -1;
        }
        for (int64_t j = 0; j < t; j++) {
            json_t *v = json_array_get(r, (size_t)j);
            if (!json_is_integer(v) || json_integer_value(v) < INT32_MIN || json_integer_value(v) > INT32_MAX) {
                snprintf(err, errlen, "%s: '%s'[%lld][%lld] is not a 32-bit integer", path, key,
                         (long long)i, (long long)j);
                free(m);
                return -1;
            }
            m[i * t + j] = (int32_t)json_integer_value(v);
        }
    }
    *B = b;
    *T = t;
    *out = m;
    return 0;
}

int peft_inputs_load_json(const char *path, peft_inputs *in, char *err, size_t errlen)
{
    memset(in, 0, sizeof *in);
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root) {
        snprintf(err, errlen, "%s: %s (line %d)", path, je.text, je.line);
        return -1;
    }
    int rc = -1;
    if (!json_is_object(root)) {
        snprintf(err, errlen, "%s: expected a JSON object with input_ids", path);
        goto out;
    }
    if (!json_object_get(root, "input_ids")) {
        snprintf(err, errlen, "%s: missing 'input_ids'", path);
        goto out;
    }
    if (int_matrix(root, "input_ids", path, &in->B, &in->T, &in->input_ids, err, errlen) ||
        int_matrix(root, "attention_mask", path, &in->B, &in->T, &in->attention_mask, err, errlen) ||
        int_matrix(root, "labels", path, &in->B, &in->T, &in->labels, err, errlen))
        goto out;
    rc = 0;
out:
    json_decref(root);
    if (rc) peft_inputs_free(in);
    return rc;
}

void peft_inputs_free(peft_inputs *in)
{
    free(in->input_ids);
    free(in->attention_mask);
    free(in->labels);
    memset(in, 0, sizeof *in);
}

