/* peft_mixed.c — a mixed model (PeftMixedModel) saved and loaded as a whole: the manifest
 * dir/peft_mixed.json that lists its adapters in the order added, each with its method and
 * folder (PEFT's layout: "default" in dir, others in dir/<name>), the active set, the runtime
 * scales and the enabled flag; and peft_mixed_from_pretrained, which reads it back (format in
 * core/peft.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "core/util/fs.h"
#include "core/io/cfg.h"
#include "core/peft/internal.h"
#include "peft/util.h"

#define MANIFEST "peft_mixed.json"
#define MANIFEST_FORMAT "libpeft-mixed"
#define MANIFEST_VERSION 1

static int picked(const peft_adapter *a, const char *const *selected, int n)
{
    if (!selected) return 1;
    for (int i = 0; i < n; i++)
        if (!strcmp(selected[i], a->name)) return 1;
    return 0;
}

int peft_mixed_write_manifest(peft_model *m, const char *dir, const char *const *selected,
                              int n_selected)
{
    json_t *root = json_object(), *list = json_array(), *act = json_array();
    json_object_set_new(root, "format", json_string(MANIFEST_FORMAT));
    json_object_set_new(root, "format_version", json_integer(MANIFEST_VERSION));
    for (int i = 0; i < m->n_adapters; i++) {
        peft_adapter *a = m->adapters[i];
        if (!picked(a, selected, n_selected)) continue;
        json_t *e = json_object();
        json_object_set_new(e, "name", json_string(a->name));
        json_object_set_new(e, "peft_type", json_string(a->vt->peft_type));
        json_object_set_new(e, "folder", json_string(strcmp(a->name, "default") ? a->name : "."));
        json_object_set_new(e, "scale", json_real(a->scale_mult));
        json_array_append_new(list, e);
        if (a->active) json_array_append_new(act, json_string(a->name));
    }
    json_object_set_new(root, "adapters", list);
    json_object_set_new(root, "active_adapters", act);
    json_object_set_new(root, "enabled", json_boolean(!m->base->adapters_disabled));
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17));
    json_decref(root);
    if (!text) return peft_set_error(m->ctx, PEFT_ENOMEM, "out of memory");
    char path[4200], err[1024] = "";
    snprintf(path, sizeof path, "%s/%s", dir, MANIFEST);
    size_t n = strlen(text);
    char *withnl = realloc(text, n + 2);
    if (withnl) {
        text = withnl;
        memcpy(text + n, "\n", 2);
    }
    int rc = peft_write_file_atomic_buf(path, text, strlen(text), err, sizeof err);
    free(text);
    return rc ? peft_set_error(m->ctx, rc, "%s", err) : PEFT_OK;
}

int peft_is_mixed_dir(const char *dir)
{
    char path[4200];
    struct stat st;
    if (!dir || strlen(dir) > 4000) return 0;
    snprintf(path, sizeof path, "%s/%s", dir, MANIFEST);
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* ---- loading ---- */

/* a folder the manifest may name: "." or a relative path without ".." components */
static int safe_folder(const char *f)
{
    if (!*f || f[0] == '/' || strlen(f) > 512) return 0;
    for (const char *p = f; p; p = strchr(p, '/'), p = p ? p + 1 : NULL)
        if (!strncmp(p, "..", 2) && (p[2] == 0 || p[2] == '/')) return 0;
    return 1;
}

/* peft_type of folder/adapter_config.json into type (or an error naming the manifest entry) */
static int folder_type(peft_ctx *ctx, const char *mpath, size_t i, const char *name,
                       const char *folder, char *type, size_t len)
{
    char cfg[4400];
    struct stat st;
    if (stat(folder, &st) != 0 || !S_ISDIR(st.st_mode))
        return peft_set_error(ctx, PEFT_EIO, "%s: adapters[%zu] ('%s'): folder %s is missing", mpath,
                              i, name, folder);
    snprintf(cfg, sizeof cfg, "%s/adapter_config.json", folder);
    json_error_t jerr;
    json_t *j = json_load_file(cfg, 0, &jerr);
    if (!j)
        return peft_set_error(ctx, stat(cfg, &st) ? PEFT_EIO : PEFT_EFORMAT,
                              "%s: adapters[%zu] ('%s'): %s: %s", mpath, i, name, cfg,
                              stat(cfg, &st) ? "missing" : jerr.text);
    const char *t = json_string_value(json_object_get(j, "peft_type"));
    snprintf(type, len, "%s", t ? t : "");
    json_decref(j);
    if (!t)
        return peft_set_error(ctx, PEFT_EFORMAT, "%s: adapters[%zu] ('%s'): %s has no peft_type",
                              mpath, i, name, cfg);
    return PEFT_OK;
}

/* undo a partial load: the base goes back to the caller as it came */
static void discard(peft_model *m)
{
    for (size_t i = m->base->n_sites; i-- > 0;) /* last merged first: tied sites nest */
            peft_site_release(m->base->sites[i]);
    for (size_t i = 0; i < m->base->n_params; i++) m->base->params[i].t->requires_grad = 0;
    m->base->adapters_disabled = 0;
    m->base = NULL;
    peft_model_free(m);
}

/* the manifest's entries checked against each other and the folders, before anything loads */
static int check_manifest(peft_ctx *ctx, const char *dir, const char *mpath, json_t *root)
{
    if (!json_is_object(root))
        return peft_set_error(ctx, PEFT_EFORMAT, "%s: expected a JSON object", mpath);
    const char *fmt = json_string_value(json_object_get(root, "format"));
    if (!fmt || strcmp(fmt, MANIFEST_FORMAT))
        return peft_set_error(ctx, PEFT_EFORMAT, "%s: field 'format' must be \"%s\"", mpath,
                              MANIFEST_FORMAT);
    json_t *v = json_object_get(root, "format_version");
    if (!json_is_integer(v) || json_integer_value(v) < 1)
        return peft_set_error(ctx, PEFT_EFORMAT, "%s: field 'format_version' must be a positive "
                              "integer", mpath);
    if (json_integer_value(v) > MANIFEST_VERSION)
        return peft_set_error(ctx, PEFT_EFORMAT, "%s: format_version %lld is newer than this "
                              "libpeft reads (%d)", mpath, (long long)json_integer_value(v),
                              MANIFEST_VERSION);
    json_t *list = json_object_get(root, "adapters");
    if (!json_is_array(list) || json_array_size(list) == 0)
        return peft_set_error(ctx, PEFT_EFORMAT, "%s: field 'adapters' must be a non-empty list",
                              mpath);
    size_t i;
    json_t *e;
    json_array_foreach(list, i, e) {
        const char *name = json_string_value(json_object_get(e, "name"));
        const char *type = json_string_value(json_object_get(e, "peft_type"));
        const char *folder = json_string_value(json_object_get(e, "folder"));
        json_t *scale = json_object_get(e, "scale");
        if (!json_is_object(e) || !name || !type || !folder)
            return peft_set_error(ctx, PEFT_EFORMAT, "%s: adapters[%zu] needs string fields "
                                  "'name', 'peft_type' and 'folder'", mpath, i);
        if (scale && !json_is_number(scale))
            return peft_set_error(ctx, PEFT_EFORMAT, "%s: adapters[%zu] ('%s'): 'scale' must be a "
                                  "number", mpath, i, name);
        if (!safe_folder(folder))
            return peft_set_error(ctx, PEFT_EFORMAT, "%s: adapters[%zu] ('%s'): folder '%s' must be "
                                  "a relative path inside %s", mpath, i, name, folder, dir);
        for (size_t k = 0; k < i; k++)
            if (!strcmp(name, json_string_value(json_object_get(json_array_get(list, k), "name"))))
                return peft_set_error(ctx, PEFT_EFORMAT, "%s: adapters[%zu]: the name '%s' is "
                                      "already taken by adapters[%zu]", mpath, i, name, k);
        char path[4200], have[64];
        snprintf(path, sizeof path, "%s/%s", dir, folder);
        int rc = folder_type(ctx, mpath, i, name, path, have, sizeof have);
        if (rc) return rc;
        if (strcmp(have, type))
            return peft_set_error(ctx, PEFT_EFORMAT, "%s: adapters[%zu] ('%s'): the manifest says "
                                  "peft_type %s but %s/adapter_config.json is %s", mpath, i, name,
                                  type, path, have);
    }
    json_t *act = json_object_get(root, "active_adapters");
    if (act && !json_is_array(act))
        return peft_set_error(ctx, PEFT_EFORMAT, "%s: field 'active_adapters' must be a list of "
                              "adapter names", mpath);
    json_array_foreach(act, i, e) {
        const char *name = json_string_value(e);
        int known = 0;
        size_t k;
        json_t *a;
        json_array_foreach(list, k, a) known |= name && !strcmp(name, json_string_value(json_object_get(a, "name")));
        if (!known)
            return peft_set_error(ctx, PEFT_EFORMAT, "%s: active_adapters[%zu] is not one of the "
                                  "adapters listed", mpath, i);
    }
    v = json_object_get(root, "enabled");
    if (v && !json_is_boolean(v))
        return peft_set_error(ctx, PEFT_EFORMAT, "%s: field 'enabled' must be true or false", mpath);
    return PEFT_OK;
}

/* every adapter of the manifest, in order, then its active set, scales and enabled flag */
static int load_manifest(peft_model *m, const char *dir, const char *mpath, json_t *root,
                         int is_trainable)
{
    json_t *list = json_object_get(root, "adapters"), *e;
    size_t i;
    json_array_foreach(list, i, e) {
        const char *name = json_string_value(json_object_get(e, "name"));
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", dir, json_string_value(json_object_get(e, "folder")));
        int rc = peft_load_adapter(m, path, name, is_trainable);
        if (rc) {
            char msg[sizeof m->ctx->err];
            snprintf(msg, sizeof msg, "%s", peft_errmsg(m->ctx));
            return peft_set_error(m->ctx, rc, "%s: adapters[%zu] ('%s'): %s", mpath, i, name, msg);
        }
    }
    json_t *act = json_object_get(root, "active_adapters");
    size_t n = json_array_size(act);
    const char **names = calloc(n ? n : 1, sizeof *names);
    if (!names) return peft_set_error(m->ctx, PEFT_ENOMEM, "out of memory");
    json_array_foreach(act, i, e) names[i] = json_string_value(e);
    int rc = peft_set_adapters(m, names, (int)n);
    free(names);
    if (rc) {
        char msg[sizeof m->ctx->err];
        snprintf(msg, sizeof msg, "%s", peft_errmsg(m->ctx));
        return peft_set_error(m->ctx, rc, "%s: active_adapters: %s", mpath, msg);
    }
    json_array_foreach(list, i, e) {
        json_t *s = json_object_get(e, "scale");
        const char *name = json_string_value(json_object_get(e, "name"));
        if (!s || json_number_value(s) == 1.0) continue;
        rc = peft_set_adapter_scale(m, name, json_number_value(s));
        if (rc) {
            char msg[sizeof m->ctx->err];
            snprintf(msg, sizeof msg, "%s", peft_errmsg(m->ctx));
            return peft_set_error(m->ctx, rc, "%s: adapters[%zu] ('%s'): scale: %s", mpath, i, name, msg);
        }
    }
    if (json_is_false(json_object_get(root, "enabled"))) return peft_disable_adapter(m);
    return PEFT_OK;
}

int peft_mixed_from_pretrained(peft_ctx *ctx, peft_base_model *base, const char *dir,
                               const char *adapter_name, int is_trainable, peft_model **out)
{
    if (!base) return peft_set_error(ctx, PEFT_EINVAL, "mixed_from_pretrained: no base model");
    if (!dir || strlen(dir) > 3000)
        return peft_set_error(ctx, PEFT_EINVAL, "mixed_from_pretrained: the directory path is "
                              "empty or too long");
    int manifest = peft_is_mixed_dir(dir);
    char mpath[4200];
    snprintf(mpath, sizeof mpath, "%s/%s", dir, MANIFEST);
    if (manifest && adapter_name)
        return peft_set_error(ctx, PEFT_EINVAL, "%s: a mixed model's adapter names come from its "
                              "manifest; pass adapter_name NULL (not '%s')", mpath, adapter_name);
    json_t *root = NULL;
    if (manifest) {
        json_error_t jerr;
        root = json_load_file(mpath, JSON_REJECT_DUPLICATES, &jerr);
        if (!root)
            return peft_set_error(ctx, PEFT_EFORMAT, "%s: invalid JSON at line %d: %s", mpath,
                                  jerr.line, jerr.text);
        int rc = check_manifest(ctx, dir, mpath, root);
        if (rc) {
            json_decref(root);
            return rc;
        }
    }
    peft_model *m = calloc(1, sizeof *m);
    if (!m) {
        json_decref(root);
        return peft_set_error(ctx, PEFT_ENOMEM, "out of memory");
    }
    m->ctx = ctx;
    m->base = base;
    m->mixed = 1;
    int rc;
    if (manifest) {
        rc = load_manifest(m, dir, mpath, root, is_trainable);
    } else { /* PEFT's PeftMixedModel.from_pretrained: one adapter, active */
        rc = peft_load_adapter(m, dir, adapter_name, is_trainable);
        if (!rc) rc = peft_set_adapter(m, m->adapters[0]->name);
    }
    json_decref(root);
    if (rc) {
        discard(m);
        return rc;
    }
    *out = m;
    return PEFT_OK;
}
