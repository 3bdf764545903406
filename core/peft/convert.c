/* peft_convert.c — save a PiSSA/OLoRA adapter converted to a plain LoRA for the original base
 * model (PEFT 0.13.2 save_pretrained with path_initial_model_for_weight_conversion, and
 * LoraModel.subtract_mutated_init). See peft_convert.h. */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include "peft/convert.h"
#include "core/io/dirsave.h"
#include "core/peft/internal.h"
#include "peft/safetensors.h"
#include "peft/util.h"
#include "peft/warn.h"


/* a non-empty JSON object */
static int nonempty_dict(const json_t *v)
{
    return json_is_object(v) && json_object_size(v) > 0;
}

/* v * f keeping an integer an integer when f == 2 (Python: int * 2 is an int, * 2**0.5 a float) */
static json_t *scaled(const json_t *v, double f)
{
    if (json_is_integer(v) && f == 2.0) return json_integer(json_integer_value(v) * 2);
    return json_real(json_number_value(v) * f);
}

/* every value of dict `key` doubled (rank_pattern / alpha_pattern) */
static void double_dict(json_t *cfg, const char *key)
{
    json_t *d = json_object_get(cfg, key);
    if (!json_is_object(d)) return;
    const char *k;
    json_t *v;
    json_object_foreach(d, k, v)
        if (json_is_number(v)) json_object_set_new(d, k, scaled(v, 2.0));
}

/* PEFT: any(str(init_lora_weights).lower().startswith(p) for p in ("pissa", "olora", "true")) */
static int convertible_init(const json_t *init)
{
    if (json_is_true(init)) return 1;
    const char *s = json_string_value(init);
    return s && (!strncasecmp(s, "pissa", 5) || !strncasecmp(s, "olora", 5) ||
                 !strncasecmp(s, "true", 4));
}

/* the converted config (new reference) */
static json_t *converted_config(const json_t *orig)
{
    json_t *cfg = json_deep_copy(orig);
    if (!cfg) return NULL;
    int rslora = json_is_true(json_object_get(cfg, "use_rslora"));
    json_object_set_new(cfg, "init_lora_weights", json_true());
    json_t *r = json_object_get(cfg, "r");
    if (json_is_number(r)) json_object_set_new(cfg, "r", scaled(r, 2.0));
    json_t *alpha = json_object_get(cfg, "lora_alpha");
    if (json_is_number(alpha))
        json_object_set_new(cfg, "lora_alpha", scaled(alpha, rslora ? sqrt(2.0) : 2.0));
    double_dict(cfg, "rank_pattern");
    double_dict(cfg, "alpha_pattern");
    json_object_set_new(cfg, "inference_mode", json_true());
    return cfg;
}

typedef struct conv_out {
    peft_st_out *outs;
    float **bufs;
    int64_t (*shapes)[2];
    size_t n;
} conv_out;

static void conv_out_free(conv_out *c, size_t n_alloc)
{
    for (size_t i = 0; c->bufs && i < n_alloc; i++) free(c->bufs[i]);
    free(c->bufs);
    free(c->outs);
    free(c->shapes);
}

/* [A ; A0] (dim 0) for lora_A, [B | -B0] (dim 1) for lora_B, into a new buffer. 0 or a PEFT_E*
 * with the error set. t (r, in) / (out, r), e the initial tensor. */
static int concat_one(peft_model *m, const char *key, const peft_tensor *t,
                      const peft_st_entry *e, const char *path, int is_b, float **out,
                      int64_t shape[2])
{
    if (t->ndim != 2 || e->ndim != 2 || e->dtype == PEFT_DTYPE_I32 ||
        (is_b ? e->shape[0] != t->shape[0] : e->shape[1] != t->shape[1]))
        return peft_set_error(m->ctx, PEFT_EFORMAT,
                              "%s: tensor '%s' has shape [%lld, %lld], but the adapter's is "
                              "[%lld, %lld]: expected the same %s (the initial adapter of this "
                              "model, saved before training)",
                              path, key, (long long)(e->ndim > 0 ? e->shape[0] : 0),
                              (long long)(e->ndim > 1 ? e->shape[1] : 0), (long long)t->shape[0],
                              (long long)t->shape[1],
                              is_b ? "number of rows (out_features)" : "number of columns (in_features)");
    const int64_t rows = t->shape[0], cols = t->shape[1], r0 = is_b ? e->shape[1] : e->shape[0];
    float *init = malloc((size_t)(e->shape[0] * e->shape[1] + 1) * sizeof *init);
    float *buf = malloc((size_t)(is_b ? rows * (cols + r0) : (rows + r0) * cols) * sizeof *buf + 1);
    if (!init || !buf) {
        free(init);
        free(buf);
        return peft_set_error(m->ctx, PEFT_ENOMEM, "out of memory converting '%s'", key);
    }
    peft_convert_to_f32(e->dtype, e->data, init, e->shape[0] * e->shape[1]);
    const float *cur = peft_f32(t);
    if (!is_b) { /* (r + r0, in): the current rows, then the initial ones */
        memcpy(buf, cur, (size_t)(rows * cols) * sizeof *buf);
        memcpy(buf + rows * cols, init, (size_t)(r0 * cols) * sizeof *buf);
        shape[0] = rows + r0;
        shape[1] = cols;
    } else { /* (out, r + r0): each row = current row, then minus the initial row */
        for (int64_t i = 0; i < rows; i++) {
            float *dst = buf + i * (cols + r0);
            memcpy(dst, cur + i * cols, (size_t)cols * sizeof *buf);
            for (int64_t j = 0; j < r0; j++) dst[cols + j] = -init[i * r0 + j];
        }
        shape[0] = rows;
        shape[1] = cols + r0;
    }
    free(init);
    *out = buf;
    return PEFT_OK;
}

int peft_save_pretrained_convert(peft_model *m, const char *dir, const char *adapter_name,
                                 const char *initial_adapter_dir)
{
    peft_dirsave ds; /* the staging dir of the save (set up near the end) */
    ds.stage[0] = 0;
    const char *name = adapter_name ? adapter_name : "default";
    if (!m) return PEFT_EINVAL;
    if (!dir || !*dir || strlen(dir) > 3000 || !initial_adapter_dir || !*initial_adapter_dir ||
        strlen(initial_adapter_dir) > 3000)
        return peft_set_error(m->ctx, PEFT_EINVAL, "save_pretrained (conversion): the output or "
                              "initial adapter directory path is empty or too long");
    peft_adapter *a = peft_find_adapter(m, name);
    if (!a) return peft_set_error(m->ctx, PEFT_ENOTFOUND, "save_pretrained (conversion): no "
                                  "adapter named '%s'", name);
    if (strcmp(a->vt->peft_type, "LORA") != 0)
        return peft_set_error(m->ctx, PEFT_EINVAL, "save_pretrained (conversion): adapter '%s' is "
                              "%s; only LoRA adapters (PiSSA / OLoRA init) can be converted",
                              name, a->vt->peft_type);
    if (json_is_true(json_object_get(a->config, "use_rslora")) &&
        (nonempty_dict(json_object_get(a->config, "rank_pattern")) ||
         nonempty_dict(json_object_get(a->config, "alpha_pattern"))))
        return peft_set_error(m->ctx, PEFT_EINVAL,
                              "Passing `path_initial_model_for_weight_conversion` to "
                              "`save_pretrained` is not supported when using `rank_pattern` or "
                              "`alpha_pattern` at the same time as `use_rslora=True` (adapter "
                              "'%s').", name);
    if (!convertible_init(json_object_get(a->config, "init_lora_weights")))
        peft_warn("`path_initial_model_for_weight_conversion` only works for converting a PiSSA "
                  "or OLoRA adapter to a LoRA adapter");

    char path[4200], err[1024] = "";
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", initial_adapter_dir);
    peft_st_file *f;
    int orc = peft_st_open(path, &f, err, sizeof err);
    if (orc) return peft_set_error(m->ctx, orc, "initial adapter for the conversion: %s", err);
    peft_state_dict *sd;
    int rc = peft_get_peft_model_state_dict(m, name, &sd);
    if (rc) {
        peft_st_close(f);
        return rc;
    }

    conv_out c = {calloc(sd->n + 1, sizeof *c.outs), calloc(sd->n + 1, sizeof *c.bufs),
                  calloc(sd->n + 1, sizeof *c.shapes), 0};
    if (!c.outs || !c.bufs || !c.shapes) {
        rc = peft_set_error(m->ctx, PEFT_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < sd->n; i++) {
        const char *key = sd->names[i];
        int is_a = strstr(key, "lora_A") != NULL, is_b = !is_a && strstr(key, "lora_B") != NULL;
        if (!is_a && !is_b) continue; /* dropped, as subtract_mutated_init does */
        const peft_st_entry *e = peft_st_find(f, key);
        if (!e) {
            rc = peft_set_error(m->ctx, PEFT_EFORMAT, "%s: missing tensor '%s' (the initial "
                                "adapter must have the same targets as adapter '%s')", path, key,
                                name);
            goto out;
        }
        rc = concat_one(m, key, sd->tensors[i], e, path, is_b, &c.bufs[c.n], c.shapes[c.n]);
        if (rc) goto out;
        c.outs[c.n] = (peft_st_out){key, PEFT_DTYPE_F32, 2, c.shapes[c.n], c.bufs[c.n]};
        c.n++;
    }

    /* both files as one set: staged, then swapped in (core/io/dirsave.h) */
    if (peft_dirsave_begin(&ds, dir, err, sizeof err)) {
        rc = peft_set_error(m->ctx, PEFT_EIO, "%s", err);
        goto out;
    }
    char sub[4300];
    int too_long = strcmp(name, "default") == 0 ? snprintf(sub, sizeof sub, "%s", ds.stage) >= (int)sizeof sub
                                                : peft_path_join(sub, sizeof sub, ds.stage, name) != 0;
    /* the longer of the two file names: when it fits, both do */
    if (too_long || peft_path_join(path, sizeof path, sub, "adapter_model.safetensors")) {
        rc = peft_set_error(m->ctx, PEFT_EINVAL, "%s: path too long", ds.stage);
        goto out;
    }
    if (peft_mkdirs(sub, err, sizeof err)) {
        rc = peft_set_error(m->ctx, PEFT_EIO, "%s", err);
        goto out;
    }
    static const char *const meta[] = {"format", "pt", NULL};
    peft_path_join(path, sizeof path, sub, "adapter_model.safetensors");
    if (peft_st_write(path, c.outs, c.n, meta, err, sizeof err)) {
        rc = peft_set_error(m->ctx, PEFT_EIO, "%s", err);
        goto out;
    }
    json_t *cfg = converted_config(a->config);
    char *text = cfg ? json_dumps(cfg, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
    json_decref(cfg);
    if (!text) {
        rc = peft_set_error(m->ctx, PEFT_ENOMEM, "out of memory");
        goto out;
    }
    peft_path_join(path, sizeof path, sub, "adapter_config.json");
    if (peft_write_file_atomic(path, text, strlen(text), err, sizeof err))
        rc = peft_set_error(m->ctx, PEFT_EIO, "%s", err);
    free(text);
    if (rc == 0 && peft_dirsave_commit(&ds, err, sizeof err)) rc = peft_set_error(m->ctx, PEFT_EIO, "%s", err);
out:
    if (rc) peft_dirsave_abort(&ds);
    conv_out_free(&c, c.n);
    peft_state_dict_free(sd);
    peft_st_close(f);
    return rc;
}
