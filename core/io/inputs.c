/* inputs.c — a batch of token ids from JSON (PEFT-style keyword arguments as nested lists:
 * input_ids, attention_mask, token_type_ids, decoder_input_ids, labels, start_positions...),
 * used by the CLI and the fixture tests. Strict: a duplicate or unknown key is refused (a typo
 * must not silently drop an input), and masks hold only 0 and 1. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "peft/inputs.h"
#include "peft/peft.h"
#include "peft/model.h"
#include "peft/util.h"

/* key as a (rows) or (rows, cols) int32 array. Absent: 0 and *out NULL. *cols = 0 for 1-D. */
static int int_array(json_t *root, const char *key, const char *path, int64_t *rows,
                     int64_t *cols, int32_t **out, char *err, size_t errlen)
{
    *out = NULL;
    *rows = *cols = 0;
    json_t *a = json_object_get(root, key);
    if (!a || json_is_null(a)) return 0;
    if (!json_is_array(a) || json_array_size(a) == 0) {
        snprintf(err, errlen, "%s: '%s' must be a non-empty list (of lists) of integers", path, key);
        return -1;
    }
    int64_t r = (int64_t)json_array_size(a);
    json_t *r0 = json_array_get(a, 0);
    int64_t c = json_is_array(r0) ? (int64_t)json_array_size(r0) : 0;
    if (json_is_array(r0) && c == 0) {
        snprintf(err, errlen, "%s: '%s'[0] is an empty list", path, key);
        return -1;
    }
    if (r > (1 << 20) || c > (1 << 24) || r * (c ? c : 1) > (1 << 26)) {
        snprintf(err, errlen, "%s: '%s' is too large", path, key);
        return -1;
    }
    int32_t *m = malloc((size_t)(r * (c ? c : 1)) * sizeof *m);
    if (!m) {
        snprintf(err, errlen, "%s: out of memory reading '%s'", path, key);
        return -1;
    }
    for (int64_t i = 0; i < r; i++) {
        json_t *row = json_array_get(a, (size_t)i);
        if (c && (!json_is_array(row) || (int64_t)json_array_size(row) != c)) {
            snprintf(err, errlen, "%s: '%s'[%lld] must have %lld integers like row 0", path, key,
                     (long long)i, (long long)c);
            free(m);
            return -1;
        }
        for (int64_t j = 0; j < (c ? c : 1); j++) {
            json_t *v = c ? json_array_get(row, (size_t)j) : row;
            if (!json_is_integer(v) || json_integer_value(v) < INT32_MIN ||
                json_integer_value(v) > INT32_MAX) {
                if (c)
                    snprintf(err, errlen, "%s: '%s'[%lld][%lld] is not a 32-bit integer", path, key,
                             (long long)i, (long long)j);
                else
                    snprintf(err, errlen, "%s: '%s'[%lld] is not a 32-bit integer", path, key,
                             (long long)i);
                free(m);
                return -1;
            }
            m[i * (c ? c : 1) + j] = (int32_t)json_integer_value(v);
        }
    }
    *rows = r;
    *cols = c;
    *out = m;
    return 0;
}

/* key must be absent or exactly (B, T) (T = 0: (B)) */
static int shaped(json_t *root, const char *key, const char *path, int64_t B, int64_t T,
                  int32_t **out, char *err, size_t errlen)
{
    int64_t r, c;
    if (int_array(root, key, path, &r, &c, out, err, errlen)) return -1;
    if (*out && (r != B || c != T)) {
        if (T)
            snprintf(err, errlen, "%s: '%s' must be %lldx%lld like its ids, got %lldx%lld", path,
                     key, (long long)B, (long long)T, (long long)r, (long long)c);
        else
            snprintf(err, errlen, "%s: '%s' must be a list of %lld integers (one per example)",
                     path, key, (long long)B);
        free(*out);
        *out = NULL;
        return -1;
    }
    return 0;
}

static const char *const known_keys[] = {
    "input_ids", "attention_mask", "token_type_ids", "decoder_input_ids",
    "decoder_attention_mask", "labels", "start_positions", "end_positions", "task_ids",
};
#define N_KNOWN (sizeof known_keys / sizeof *known_keys)

/* every key of root is one libpeft reads; 0 or -1 with err naming the first other one */
static int check_keys(json_t *root, const char *path, char *err, size_t errlen)
{
    const char *k;
    json_t *v;
    json_object_foreach(root, k, v) {
        size_t i;
        for (i = 0; i < N_KNOWN && strcmp(k, known_keys[i]); i++) {}
        if (i < N_KNOWN) continue;
        const char *near = peft_did_you_mean(k, known_keys, N_KNOWN);
        char hint[96] = "";
        if (near) snprintf(hint, sizeof hint, "did you mean '%s'? ", near);
        snprintf(err, errlen, "%s: unknown key '%.64s' (%sthe inputs libpeft reads: input_ids, "
                 "attention_mask, token_type_ids, decoder_input_ids, decoder_attention_mask, "
                 "labels, start_positions, end_positions, task_ids)", path, k, hint);
        return -1;
    }
    return 0;
}

/* a mask (B, T) of 0 and 1 only, as transformers expects (other values would scale the
 * additive mask into silent wrong numbers); 0 or -1 with err */
static int check_mask(const int32_t *mask, int64_t B, int64_t T, const char *key, const char *path,
                      char *err, size_t errlen)
{
    for (int64_t i = 0; mask && i < B * T; i++)
        if (mask[i] != 0 && mask[i] != 1) {
            snprintf(err, errlen, "%s: '%s'[%lld][%lld] = %d: a mask holds only 0 (masked) and 1 "
                     "(attended)", path, key, (long long)(i / T), (long long)(i % T), mask[i]);
            return -1;
        }
    return 0;
}

/* the loader with the message in err: PEFT_OK, PEFT_EIO (cannot open path) or PEFT_EFORMAT */
static int load_json(const char *path, peft_inputs *in, char *err, size_t errlen)
{
    json_error_t je;
    json_t *root = json_load_file(path, JSON_REJECT_DUPLICATES, &je);
    if (!root) {
        if (json_error_code(&je) == json_error_cannot_open_file) {
            snprintf(err, errlen, "%s: %s", path, je.text);
            return PEFT_EIO;
        }
        snprintf(err, errlen, "%s: %s (line %d)", path, je.text, je.line);
        return PEFT_EFORMAT;
    }
    int rc = PEFT_EFORMAT;
    int64_t r, c;
    if (!json_is_object(root)) {
        snprintf(err, errlen, "%s: expected a JSON object with input_ids", path);
        goto out;
    }
    if (check_keys(root, path, err, errlen)) goto out;
    if (!json_object_get(root, "input_ids")) {
        snprintf(err, errlen, "%s: missing 'input_ids'", path);
        goto out;
    }
    if (int_array(root, "input_ids", path, &in->B, &in->T, &in->input_ids, err, errlen)) goto out;
    if (in->T == 0) {
        snprintf(err, errlen, "%s: 'input_ids' must be a list of lists (batch x tokens)", path);
        goto out;
    }
    if (shaped(root, "attention_mask", path, in->B, in->T, &in->attention_mask, err, errlen) ||
        shaped(root, "token_type_ids", path, in->B, in->T, &in->token_type_ids, err, errlen) ||
        shaped(root, "start_positions", path, in->B, 0, &in->start_positions, err, errlen) ||
        shaped(root, "end_positions", path, in->B, 0, &in->end_positions, err, errlen) ||
        shaped(root, "task_ids", path, in->B, 0, &in->task_ids, err, errlen) ||
        check_mask(in->attention_mask, in->B, in->T, "attention_mask", path, err, errlen))
        goto out;
    if (int_array(root, "decoder_input_ids", path, &r, &in->Td, &in->decoder_input_ids, err, errlen))
        goto out;
    if (in->decoder_input_ids && (r != in->B || in->Td == 0)) {
        snprintf(err, errlen, "%s: 'decoder_input_ids' must be %lld lists of ids", path, (long long)in->B);
        goto out;
    }
    if (shaped(root, "decoder_attention_mask", path, in->B, in->Td, &in->decoder_attention_mask, err, errlen))
        goto out;
    if (check_mask(in->decoder_attention_mask, in->B, in->Td, "decoder_attention_mask", path, err, errlen))
        goto out;
    if (in->decoder_attention_mask && !in->decoder_input_ids) {
        snprintf(err, errlen, "%s: 'decoder_attention_mask' without 'decoder_input_ids'", path);
        goto out;
    }
    if (int_array(root, "labels", path, &r, &c, &in->labels, err, errlen)) goto out;
    if (in->labels) {
        if (r != in->B) {
            snprintf(err, errlen, "%s: 'labels' has %lld rows, input_ids %lld", path, (long long)r,
                     (long long)in->B);
            goto out;
        }
        in->labels_len = c == 0 ? 1 : (c == in->T && !in->decoder_input_ids) ? 0 : c;
    }
    rc = PEFT_OK;
out:
    json_decref(root);
    return rc;
}

int peft_inputs_load_json(peft_ctx *ctx, const char *path, peft_inputs *in)
{
    if (!in) return peft_set_error(ctx, PEFT_EINVAL, "peft_inputs_load_json: in is NULL");
    memset(in, 0, sizeof *in);
    if (!path) return peft_set_error(ctx, PEFT_EINVAL, "peft_inputs_load_json: path is NULL");
    char err[1024] = "";
    int rc = load_json(path, in, err, sizeof err);
    if (!rc) return PEFT_OK;
    peft_inputs_free(in);
    return peft_set_error(ctx, rc, "%s", err);
}

void peft_inputs_free(peft_inputs *in)
{
    free(in->input_ids);
    free(in->attention_mask);
    free(in->labels);
    free(in->token_type_ids);
    free(in->decoder_input_ids);
    free(in->decoder_attention_mask);
    free(in->start_positions);
    free(in->end_positions);
    free(in->task_ids);
    memset(in, 0, sizeof *in);
}

void peft_inputs_view(const peft_inputs *in, peft_model_inputs *out)
{
    memset(out, 0, sizeof *out);
    out->B = in->B;
    out->T = in->T;
    out->input_ids = in->input_ids;
    out->attention_mask = in->attention_mask;
    out->labels = in->labels;
    out->labels_len = in->labels_len;
    out->token_type_ids = in->token_type_ids;
    out->decoder_input_ids = in->decoder_input_ids;
    out->decoder_attention_mask = in->decoder_attention_mask;
    out->Td = in->Td;
    out->start_positions = in->start_positions;
    out->end_positions = in->end_positions;
    out->task_ids = in->task_ids;
}
