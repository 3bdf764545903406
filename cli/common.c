/* common.c — option helpers, IN.json batches and model + adapter setup for the CLI. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>
#include "cli.h"

int cli_fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("peft: error: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return 1;
}

const char *cli_opt(int argc, char **argv, int *i, const char *name)
{
    if (strcmp(argv[*i], name) != 0) return NULL;
    if (*i + 1 >= argc) {
        cli_fail("%s needs a value", name);
        return "";
    }
    return argv[++*i];
}

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

int cli_inputs_load(const char *path, cli_inputs *in, char *err, size_t errlen)
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
    if (rc) cli_inputs_free(in);
    return rc;
}

void cli_inputs_free(cli_inputs *in)
{
    free(in->input_ids);
    free(in->attention_mask);
    free(in->labels);
    memset(in, 0, sizeof *in);
}

/* "DIR[:NAME]" */
static void split_adapter(const char *spec, char *dir, size_t len, char *name, size_t nlen, int idx)
{
    const char *colon = strrchr(spec, ':');
    if (colon && colon[1] && !strchr(colon, '/')) {
        snprintf(dir, len, "%.*s", (int)(colon - spec), spec);
        snprintf(name, nlen, "%s", colon + 1);
    } else {
        snprintf(dir, len, "%s", spec);
        if (idx == 0) snprintf(name, nlen, "default");
        else snprintf(name, nlen, "adapter%d", idx);
    }
}

int cli_open_model(peft_ctx *ctx, const char *model_dir, char **adapters, int n_adapters,
                   int trainable, peft_base_model **pbase, peft_model **pm)
{
    *pm = NULL;
    *pbase = NULL;
    peft_base_model *base;
    if (peft_load_base_model(ctx, model_dir, &base)) return cli_fail("%s", peft_errmsg(ctx));
    if (n_adapters == 0) {
        *pbase = base;
        return 0;
    }
    char dir[4096], name[256];
    const char *names[CLI_MAX_ADAPTERS];
    char name_store[CLI_MAX_ADAPTERS][256];
    peft_model *m = NULL;
    for (int i = 0; i < n_adapters; i++) {
        split_adapter(adapters[i], dir, sizeof dir, name, sizeof name, i);
        snprintf(name_store[i], sizeof name_store[i], "%s", name);
        names[i] = name_store[i];
        int rc = i == 0 ? peft_from_pretrained(ctx, base, dir, name, trainable, &m)
                        : peft_load_adapter(m, dir, name, trainable);
        if (rc) {
            if (i == 0) peft_base_model_free(base);
            peft_model_free(m);
            return cli_fail("%s", peft_errmsg(ctx));
        }
    }
    if (peft_set_adapters(m, names, n_adapters)) {
        peft_model_free(m);
        return cli_fail("%s", peft_errmsg(ctx));
    }
    *pm = m;
    return 0;
}
