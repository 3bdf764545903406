/* convert.c — peft_save_pretrained_convert (PEFT 0.13.2 save_pretrained with
 * path_initial_model_for_weight_conversion): the adapter's state dict and config rewritten
 * against the adapter as it was at init, then saved as one set. The method's part (which
 * tensors, how they combine with the initial ones, the config's fields) is the plugin's
 * convert_config / convert_tensor entries (LoRA: PiSSA/OLoRA -> plain LoRA); the core reads
 * the initial file, walks the state dict and writes the directory. See peft/convert.h. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/util/fs.h"
#include "core/io/safetensors.h"
#include "peft/convert.h"
#include "core/io/cfg.h"
#include "core/io/dirsave.h"
#include "core/peft/internal.h"
#include "peft/safetensors.h"
#include "peft/util.h"
#include "core/tuner/plugin_call.h"

typedef struct conv_out {
    peft_st_out *outs;
    peft_tensor **tensors; /* the plugin's converted tensors (freed here) */
    int64_t (*shapes)[2];
    size_t n;
} conv_out;

static void conv_out_free(conv_out *c)
{
    for (size_t i = 0; c->tensors && i < c->n; i++) peft_tensor_free(c->tensors[i]);
    free(c->tensors);
    free(c->outs);
    free(c->shapes);
}

/* the initial adapter's tensor `key` as a new f32 tensor in *out (NULL when the file lacks
 * it); PEFT_OK or the error set */
static int initial_tensor(peft_model *m, peft_st_file *f, const char *path, const char *key,
                          peft_tensor **out)
{
    *out = NULL;
    const peft_st_entry *e = peft_st_find(f, key);
    if (!e) return PEFT_OK;
    if (e->dtype != PEFT_DTYPE_F32 && e->dtype != PEFT_DTYPE_F16 && e->dtype != PEFT_DTYPE_BF16)
        return peft_set_error(m->ctx, PEFT_EFORMAT, "%s: tensor '%s' is not a float tensor (F32, "
                              "F16 or BF16)", path, key);
    peft_tensor *t = peft_tensor_new(PEFT_DTYPE_F32, e->ndim, e->shape);
    if (!t) return peft_set_error(m->ctx, PEFT_ENOMEM, "out of memory reading '%s'", key);
    peft_convert_to_f32(e->dtype, e->data, peft_f32(t), t->numel);
    *out = t;
    return PEFT_OK;
}

/* the converted config text (caller frees), or NULL with the error set and its code in *rc */
static char *converted_config(peft_model *m, const peft_adapter *a, int *rc)
{
    json_t *cfg = json_deep_copy(a->config);
    char *text = NULL, err[1024] = "";
    peft_cfg pc = {cfg};
    if (cfg && PEFT_PLUGIN_CALL(a->vt, "convert_config", a->name, NULL,
                                a->vt->convert_config(&pc, err, sizeof err))) {
        *rc = peft_set_error(m->ctx, PEFT_EINVAL, "save_pretrained (conversion) of adapter '%s': "
                             "%s", a->name, err);
        json_decref(cfg);
        return NULL;
    }
    if (cfg) json_object_set_new(cfg, "inference_mode", json_true());
    text = cfg ? json_dumps(cfg, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
    json_decref(cfg);
    if (!text) *rc = peft_set_error(m->ctx, PEFT_ENOMEM, "out of memory");
    return text;
}

/* every tensor of sd (the adapter's saved state dict) through the plugin's convert_tensor,
 * against the initial adapter's file f (at path), into c; PEFT_OK or the error set */
static int convert_all(peft_model *m, const peft_adapter *a, peft_st_file *f, const char *path,
                       const peft_state_dict *sd, conv_out *c)
{
    char err[1024] = "";
    *c = (conv_out){calloc(sd->n + 1, sizeof *c->outs), calloc(sd->n + 1, sizeof *c->tensors),
                    calloc(sd->n + 1, sizeof *c->shapes), 0};
    if (!c->outs || !c->tensors || !c->shapes) return peft_set_error(m->ctx, PEFT_ENOMEM, "out of memory");
    for (size_t i = 0; i < sd->n; i++) {
        const char *key = sd->names[i];
        peft_tensor *init = NULL, *conv = NULL;
        int rc = initial_tensor(m, f, path, key, &init);
        if (rc) return rc;
        int keep = PEFT_PLUGIN_CALL(a->vt, "convert_tensor", a->name, key,
                                    a->vt->convert_tensor(key, sd->tensors[i], init, &conv, err, sizeof err));
        peft_tensor_free(init);
        if (keep < 0) return peft_set_error(m->ctx, PEFT_EFORMAT, "%s: %s (adapter '%s')", path, err, a->name);
        if (!keep) continue;
        if (!conv || conv->dtype != PEFT_DTYPE_F32 || conv->ndim < 1 || conv->ndim > 2) {
            peft_tensor_free(conv);
            return peft_set_error(m->ctx, PEFT_EPLUGIN, "plugin %s: convert_tensor gave no 1-D or "
                                  "2-D f32 tensor for '%s'", a->vt->name, key);
        }
        c->tensors[c->n] = conv;
        c->shapes[c->n][0] = conv->shape[0];
        c->shapes[c->n][1] = conv->ndim > 1 ? conv->shape[1] : 1;
        c->outs[c->n] = (peft_st_out){key, PEFT_DTYPE_F32, conv->ndim, c->shapes[c->n], conv->data};
        c->n++;
    }
    return PEFT_OK;
}

/* the converted tensors and config text as adapter `name`'s files under dir, both as one set:
 * staged in ds, then swapped in (core/io/dirsave.h; the caller aborts ds on failure). PEFT_OK
 * or the error set */
static int write_converted(peft_model *m, peft_dirsave *ds, const char *dir, const char *name,
                           const conv_out *c, const char *text)
{
    char path[4200], err[1024] = "";
    if (peft_dirsave_begin(ds, dir, err, sizeof err)) return peft_set_error(m->ctx, PEFT_EIO, "%s", err);
    char sub[4300];
    int too_long = strcmp(name, "default") == 0 ? snprintf(sub, sizeof sub, "%s", ds->stage) >= (int)sizeof sub
                                                : peft_path_join(sub, sizeof sub, ds->stage, name) != 0;
    /* the longer of the two file names: when it fits, both do */
    if (too_long || peft_path_join(path, sizeof path, sub, "adapter_model.safetensors"))
        return peft_set_error(m->ctx, PEFT_EINVAL, "%s: path too long", ds->stage);
    if (peft_mkdirs_buf(sub, err, sizeof err)) return peft_set_error(m->ctx, PEFT_EIO, "%s", err);
    static const char *const meta[] = {"format", "pt", NULL};
    peft_path_join(path, sizeof path, sub, "adapter_model.safetensors");
    int wrc = peft_st_write_buf(path, c->outs, c->n, meta, err, sizeof err);
    if (wrc) return peft_set_error(m->ctx, wrc, "%s", err);
    peft_path_join(path, sizeof path, sub, "adapter_config.json");
    if (peft_write_file_atomic_buf(path, text, strlen(text), err, sizeof err) ||
        peft_dirsave_commit(ds, err, sizeof err))
        return peft_set_error(m->ctx, PEFT_EIO, "%s", err);
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
    if (!a->vt->convert_config || !a->vt->convert_tensor)
        return peft_set_error(m->ctx, PEFT_EINVAL, "save_pretrained (conversion): adapter '%s' is "
                              "%s, whose plugin (%s) has no conversion to a plain adapter (no "
                              "convert_config/convert_tensor entries)", name, a->vt->peft_type,
                              a->vt->name);
    int rc = PEFT_OK;
    char *text = converted_config(m, a, &rc);
    if (!text) return rc;

    char path[4200], err[1024] = "";
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", initial_adapter_dir);
    peft_st_file *f;
    int orc = peft_st_open_buf(path, &f, err, sizeof err);
    if (orc) {
        free(text);
        return peft_set_error(m->ctx, orc, "initial adapter for the conversion: %s", err);
    }
    peft_state_dict *sd;
    rc = peft_get_peft_model_state_dict(m, name, &sd);
    if (rc) {
        free(text);
        peft_st_close(f);
        return rc;
    }
    conv_out c = {0};
    rc = convert_all(m, a, f, path, sd, &c);
    if (!rc) rc = write_converted(m, &ds, dir, name, &c, text);
    if (rc) peft_dirsave_abort(&ds);
    free(text);
    conv_out_free(&c);
    peft_state_dict_free(sd);
    peft_st_close(f);
    return rc;
}
