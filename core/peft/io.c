/* peft_io.c — state dicts with PEFT's key names, save_pretrained (adapter_config.json +
 * adapter_model.safetensors, atomically; plus a mixed model's manifest, core/peft_mixed.c),
 * load_adapter and from_pretrained. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "core/util/fs.h"
#include "core/io/safetensors.h"
#include "core/io/cfg.h"
#include "core/io/dirsave.h"
#include "core/peft/internal.h"
#include "peft/util.h"

/* ---- state dicts ---- */

static int sd_push(peft_state_dict *sd, size_t *cap, char *name, peft_tensor *t)
{
    if (!name) return -1;
    if (sd->n == *cap) {
        size_t c = *cap ? *cap * 2 : 16;
        char **n = realloc(sd->names, c * sizeof *n);
        if (!n) { free(name); return -1; }
        sd->names = n;
        peft_tensor **ts = realloc(sd->tensors, c * sizeof *ts);
        if (!ts) { free(name); return -1; }
        sd->tensors = ts;
        *cap = c;
    }
    sd->names[sd->n] = name;
    sd->tensors[sd->n++] = t;
    return 0;
}

static char *join3(const char *a, const char *b, const char *c)
{
    size_t n = strlen(a) + strlen(b) + strlen(c) + 2;
    char *s = malloc(n);
    if (s) snprintf(s, n, "%s%s%s%s", a, b, *c ? "." : "", c);
    return s;
}

void peft_state_dict_free(peft_state_dict *sd)
{
    if (!sd) return;
    for (size_t i = 0; i < sd->n; i++) free(sd->names[i]);
    free(sd->names);
    free(sd->tensors);
    free(sd);
}

/* the name a trainable bias has: "<site>.base_layer.bias" on a site with adapters (PEFT wraps
 * the layer), its own name otherwise */
static char *bias_key(const peft_model *m, const peft_trainable_bias *b)
{
    if (b->site && b->site->n_chain > 0) return join3(peft_key_prefix(m), b->site->info.name, "base_layer.bias");
    return join3(peft_key_prefix(m), b->param->name, "");
}

/* PEFT's save_embedding_layers="auto": "embed_tokens" or "lm_head" in the adapter's
 * target_modules (an entry of the list, or a substring of a regex string) */
static int targets_name_embedding_layers(const json_t *cfg)
{
    static const char *const names[] = {"embed_tokens", "lm_head"};
    const json_t *t = json_object_get(cfg, "target_modules");
    for (int k = 0; k < 2; k++) {
        if (json_is_string(t) && strstr(json_string_value(t), names[k])) return 1;
        size_t i;
        json_t *v;
        json_array_foreach(t, i, v)
            if (json_is_string(v) && !strcmp(json_string_value(v), names[k])) return 1;
    }
    return 0;
}

/* the model's input or output embedding layer (get_input_embeddings / get_output_embeddings):
 * an embedding site, or the linear lm_head */
static int is_embedding_layer(const peft_site *s)
{
    return s->info.kind == PEFT_SITE_EMBEDDING ||
           (s->info.kind == PEFT_SITE_LINEAR && !strcmp(s->info.name, "lm_head"));
}

/* "<prefix><site>.base_layer.weight" of a site the state dict may hold: the site, else NULL */
static peft_site *base_weight_site(const peft_model *m, const char *key)
{
    const char *pre = peft_key_prefix(m), *suf = ".base_layer.weight";
    size_t kl = strlen(key), pl = strlen(pre), sl = strlen(suf);
    if (kl <= pl + sl || strncmp(key, pre, pl) || strcmp(key + kl - sl, suf)) return NULL;
    char name[1024];
    if (kl - pl - sl >= sizeof name) return NULL;
    memcpy(name, key + pl, kl - pl - sl);
    name[kl - pl - sl] = 0;
    peft_site *s = peft_model_find_site(m->base, name);
    return s && is_embedding_layer(s) ? s : NULL;
}

/* a state dict being built: sd_push appends to sd (cap: its room) */
typedef struct sd_build {
    peft_state_dict *sd;
    size_t cap;
} sd_build;

/* does the state dict take ref r? memory: trainable parameters; else the saved tensors */
static int sd_wants(const peft_param_ref *r, int memory)
{
    return memory ? peft_ref_is_param(r) && r->tensor->requires_grad : peft_ref_is_saved(r);
}

/* prompt learning saves get_prompt_embedding_to_save under "prompt_embeddings" (and the
 * plugin's PEFT_PARAM_PROMPT_KEY tensors under their saved names). PEFT_OK or a status with
 * the ctx error set */
static int push_prompt_saved(peft_model *m, peft_adapter *only, sd_build *b)
{
    peft_param_ref refs[32];
    for (int i = 0; i < m->n_adapters; i++) {
        peft_adapter *a = m->adapters[i];
        if ((only && a != only) || !peft_adapter_is_prompt(a)) continue;
        peft_tensor *t;
        int rc = peft_prompt_saved(m, a, &t);
        if (rc) return rc;
        if (sd_push(b->sd, &b->cap, join3("", "prompt_embeddings", ""), t)) goto oom;
        /* tensors the plugin saves under their own top-level keys (ABI 1.4) */
        int n = peft_prompt_params(m, a, refs, 32);
        for (int k = 0; k < n; k++)
            if ((refs[k].flags & PEFT_PARAM_PROMPT_KEY) &&
                sd_push(b->sd, &b->cap, join3("", refs[k].saved_name, ""), refs[k].tensor))
                goto oom;
    }
    return PEFT_OK;
oom:
    return peft_set_error(m->ctx, PEFT_ENOMEM, "out of memory");
}

/* the adapters' tensors on the sites, "<prefix><site>.<leaf>". 0 or -1 out of memory */
static int push_site_tensors(peft_model *m, peft_adapter *only, int memory, sd_build *b)
{
    peft_refs rs;
    PEFT_EACH_SITE_ADAPTER(it, m->base, only) {
        if (peft_refs_get(&rs, it.sa->adapter, it.sa->state)) return -1;
        for (int k = 0; k < rs.n; k++) {
            const peft_param_ref *r = &rs.v[k];
            if (!sd_wants(r, memory)) continue;
            const char *leaf = memory ? r->memory_name : r->saved_name;
            if (sd_push(b->sd, &b->cap, join3(peft_key_prefix(m), it.site->info.name, leaf), r->tensor)) {
                peft_refs_free(&rs);
                return -1;
            }
        }
        peft_refs_free(&rs);
    }
    return 0;
}

/* adapter-level tensors (ABI 1.3): model-level keys "base_model.<name>". 0 or -1 out of memory */
static int push_adapter_level(peft_model *m, peft_adapter *only, int memory, sd_build *b)
{
    peft_refs rs;
    for (int i = 0; i < m->n_adapters; i++) {
        peft_adapter *a = m->adapters[i];
        if ((only && a != only) || !a->adapter_state) continue;
        if (peft_refs_get(&rs, a, NULL)) return -1;
        for (int k = 0; k < rs.n; k++) {
            const peft_param_ref *r = &rs.v[k];
            if (!sd_wants(r, memory)) continue;
            if (sd_push(b->sd, &b->cap, join3(m->bare ? "" : "base_model.", memory ? r->memory_name : r->saved_name, ""),
                        r->tensor)) {
                peft_refs_free(&rs);
                return -1;
            }
        }
        peft_refs_free(&rs);
    }
    return 0;
}

/* the modules_to_save copies and the trainable biases. 0 or -1 out of memory */
static int push_copies_biases(peft_model *m, peft_adapter *only, int memory, sd_build *b)
{
    for (int i = 0; i < m->n_mts; i++) {
        peft_mts *e = &m->mts[i];
        for (int j = 0; j < e->n_copies; j++) {
            peft_mts_copy *c = &e->copies[j];
            if (only && c->owner != only) continue;
            if (memory && !c->t->requires_grad) continue;
            char leaf[512];
            if (memory) snprintf(leaf, sizeof leaf, "modules_to_save.%s.%s", c->owner->name, e->leaf);
            else snprintf(leaf, sizeof leaf, "%s", e->leaf);
            const char *prefix = memory ? peft_key_prefix(m) : peft_saved_prefix(m, c->owner);
            if (sd_push(b->sd, &b->cap, join3(prefix, e->module, leaf), c->t)) return -1;
        }
    }
    for (int i = 0; i < m->n_biases; i++) {
        peft_trainable_bias *tb = &m->biases[i];
        if (only && tb->owner != only) continue;
        if (memory && !tb->param->t->requires_grad) continue;
        if (sd_push(b->sd, &b->cap, bias_key(m, tb), tb->param->t)) return -1;
    }
    return 0;
}

/* in memory, PEFT's prompt encoders come after the base model's parameters:
 * "prompt_encoder.<adapter>.<name>". 0 or -1 out of memory */
static int push_prompt_encoders(peft_model *m, peft_adapter *only, sd_build *b)
{
    peft_param_ref refs[32];
    for (int i = 0; i < m->n_adapters; i++) {
        peft_adapter *a = m->adapters[i];
        if (only && a != only) continue;
        int n = peft_prompt_params(m, a, refs, 32);
        for (int k = 0; k < n; k++) {
            if (!refs[k].tensor->requires_grad) continue;
            char head[512];
            snprintf(head, sizeof head, "prompt_encoder.%s.", a->name);
            if (sd_push(b->sd, &b->cap, join3(head, refs[k].memory_name, ""), refs[k].tensor)) return -1;
        }
    }
    return 0;
}

/* memory != 0: in-memory names (adapter name kept), trainable only; else saved names of one
 * adapter */
static int build_state_dict(peft_model *m, peft_adapter *only, int memory, peft_state_dict **out)
{
    sd_build b = {calloc(1, sizeof *b.sd), 0};
    if (!b.sd) return peft_set_error(m->ctx, PEFT_ENOMEM, "out of memory");
    int rc = memory ? PEFT_OK : push_prompt_saved(m, only, &b);
    if (rc) {
        peft_state_dict_free(b.sd);
        return rc;
    }
    if (push_site_tensors(m, only, memory, &b)) goto oom;
    /* PEFT's save_embedding_layers="auto": with embed_tokens / lm_head named in the targets,
     * the wrapped embedding layers' whole base weight ("<module>.base_layer.weight") */
    for (size_t i = 0; !memory && only && i < m->base->n_sites; i++) {
        peft_site *s = m->base->sites[i];
        if (s->n_chain == 0 || !is_embedding_layer(s) || !targets_name_embedding_layers(only->config))
            continue;
        if (sd_push(b.sd, &b.cap, join3(peft_key_prefix(m), s->info.name, "base_layer.weight"), s->info.weight))
            goto oom;
    }
    if (push_adapter_level(m, only, memory, &b) || push_copies_biases(m, only, memory, &b) ||
        (memory && push_prompt_encoders(m, only, &b)))
        goto oom;
    *out = b.sd;
    return PEFT_OK;
oom:
    peft_state_dict_free(b.sd);
    return peft_set_error(m->ctx, PEFT_ENOMEM, "out of memory");
}

int peft_get_peft_model_state_dict(peft_model *m, const char *adapter_name, peft_state_dict **out)
{
    const char *name = adapter_name ? adapter_name : "default";
    peft_adapter *a = peft_find_adapter(m, name);
    if (!a) return peft_set_error(m->ctx, PEFT_ENOTFOUND, "no adapter named '%s'", name);
    return build_state_dict(m, a, 0, out);
}

int peft_trainable_parameters(peft_model *m, peft_state_dict **out)
{
    return build_state_dict(m, NULL, 1, out);
}

static int find_key(const peft_state_dict *sd, const char *key)
{
    for (size_t i = 0; i < sd->n; i++)
        if (strcmp(sd->names[i], key) == 0) return (int)i;
    return -1;
}

static void shape_str(int ndim, const int64_t *shape, char *buf, size_t len)
{
    size_t o = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < ndim && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (o < len) snprintf(buf + o, len - o, "]");
}

/* a saved "<module>.base_layer.weight" (PEFT's save_embedding_layers): as PEFT's load, it
 * replaces the base weight (tied: of both modules); the same values leave the base as it is */
static int load_base_weight(peft_model *m, peft_site *s, const peft_st_entry *e, const char *path)
{
    peft_tensor *w = s->info.weight;
    float *nv = malloc((size_t)w->numel * sizeof *nv), *cur = malloc((size_t)w->numel * sizeof *cur);
    if (!nv || !cur) {
        free(nv);
        free(cur);
        return peft_set_error(m->ctx, PEFT_ENOMEM, "out of memory");
    }
    peft_convert_to_f32(e->dtype, e->data, nv, w->numel);
    peft_tensor_to_f32(w, cur);
    int same = memcmp(nv, cur, (size_t)w->numel * sizeof *nv) == 0;
    free(cur);
    int rc = PEFT_OK;
    if (!same) {
        void *old;
        int32_t dt;
        int owned;
        if (s->n_merged > 0)
            rc = peft_set_error(m->ctx, PEFT_ESTATE, "%s: '%s' replaces the base weight of %s, "
                                "which has merged adapters: unmerge first", path, e->name, s->info.name);
        else if (peft_tensor_make_f32_owned(w, &old, &dt, &owned))
            rc = peft_set_error(m->ctx, PEFT_ENOMEM, "out of memory");
        else {
            if (owned) free(old); /* the loaded weight is the base from now on, as in PEFT */
            memcpy(peft_f32(w), nv, (size_t)w->numel * sizeof *nv);
        }
    }
    free(nv);
    return rc;
}

/* copy every tensor of file f into the state dict entries of the same name */
static int load_into(peft_model *m, const peft_state_dict *sd, const peft_st_file *f,
                     int allow_missing_bias)
{
    for (size_t i = 0; i < f->n_entries; i++) {
        const peft_st_entry *e = &f->entries[i];
        int k = find_key(sd, e->name);
        if (k < 0)
            return peft_set_error(m->ctx, PEFT_EFORMAT,
                                  "%s: unexpected tensor '%s': the adapter has no such parameter "
                                  "(expected keys like '%s')",
                                  f->path, e->name, sd->n ? sd->names[0] : "?");
        peft_tensor *t = sd->tensors[k];
        if (e->dtype != PEFT_DTYPE_F32 && e->dtype != PEFT_DTYPE_F16 && e->dtype != PEFT_DTYPE_BF16)
            return peft_set_error(m->ctx, PEFT_EFORMAT,
                                  "%s: tensor '%s' has dtype %s; adapter weights must be F32, F16 "
                                  "or BF16",
                                  f->path, e->name, e->dtype == PEFT_DTYPE_I32 ? "I32" : "(unknown)");
        int same = e->ndim == t->ndim;
        for (int d = 0; same && d < e->ndim; d++) same = e->shape[d] == t->shape[d];
        if (!same) {
            char a[96], b[96];
            shape_str(e->ndim, e->shape, a, sizeof a);
            shape_str(t->ndim, t->shape, b, sizeof b);
            return peft_set_error(m->ctx, PEFT_EFORMAT,
                                  "%s: tensor '%s' has shape %s, the adapter expects %s", f->path,
                                  e->name, a, b);
        }
    }
    for (size_t k = 0; k < sd->n; k++) {
        const peft_st_entry *e = peft_st_find(f, sd->names[k]);
        if (!e) {
            size_t nl = strlen(sd->names[k]);
            if (allow_missing_bias && nl > 16 && strcmp(sd->names[k] + nl - 16, ".base_layer.bias") == 0)
                continue; /* PEFT 0.13 never saves lora_only biases; keep the base ones */
            if (base_weight_site(m, sd->names[k])) continue; /* saved without the base: keep it */
            return peft_set_error(m->ctx, PEFT_EFORMAT, "%s: missing tensor '%s'", f->path,
                                  sd->names[k]);
        }
        peft_site *bs = base_weight_site(m, sd->names[k]);
        if (bs && bs->info.weight == sd->tensors[k]) {
            int rc = load_base_weight(m, bs, e, f->path);
            if (rc) return rc;
            continue;
        }
        peft_convert_to_f32(e->dtype, e->data, peft_f32(sd->tensors[k]), sd->tensors[k]->numel);
    }
    return PEFT_OK;
}

int peft_set_peft_model_state_dict(peft_model *m, const char *path, const char *adapter_name,
                                   int memory_names)
{
    char err[1024] = "";
    peft_st_file *f;
    int orc = peft_st_open_buf(path, &f, err, sizeof err);
    if (orc) return peft_set_error(m->ctx, orc, "%s", err);
    peft_state_dict *sd;
    int rc;
    if (memory_names) {
        rc = peft_trainable_parameters(m, &sd);
    } else {
        rc = peft_get_peft_model_state_dict(m, adapter_name, &sd);
    }
    if (!rc) {
        rc = load_into(m, sd, f, !memory_names);
        peft_state_dict_free(sd);
    }
    peft_st_close(f);
    /* plugins take in what was written (ABI 1.3 `loaded`) */
    for (int i = 0; !rc && i < m->n_adapters; i++)
        if (memory_names || !strcmp(m->adapters[i]->name, adapter_name ? adapter_name : "default"))
            rc = peft_adapter_loaded(m, m->adapters[i]);
    /* the saved prompt_embeddings were copied into the adapter's snapshot: hand it over */
    peft_adapter *a = peft_find_adapter(m, adapter_name ? adapter_name : "default");
    if (!rc && !memory_names && peft_adapter_is_prompt(a)) rc = peft_prompt_load_saved(m, a, path);
    return rc;
}

/* ---- saving ---- */

static int save_one(peft_model *m, peft_adapter *a, const char *dir)
{
    char path[4200], err[1024] = "";
    /* the longer of the two names: when it fits, both do */
    if (peft_path_join(path, sizeof path, dir, "adapter_model.safetensors"))
        return peft_set_error(m->ctx, PEFT_EINVAL, "%s: path too long", dir);
    if (peft_mkdirs_buf(dir, err, sizeof err)) return peft_set_error(m->ctx, PEFT_EIO, "%s", err);
    peft_state_dict *sd;
    int rc = peft_get_peft_model_state_dict(m, a->name, &sd);
    if (rc) return rc;
    peft_st_out *outs = calloc(sd->n ? sd->n : 1, sizeof *outs);
    if (!outs) {
        peft_state_dict_free(sd);
        return peft_set_error(m->ctx, PEFT_ENOMEM, "out of memory");
    }
    /* f32 on disk; a base weight kept bf16/f16 (base_layer.weight) goes through a copy */
    float **conv = calloc(sd->n ? sd->n : 1, sizeof *conv);
    if (!conv) {
        free(outs);
        peft_state_dict_free(sd);
        return peft_set_error(m->ctx, PEFT_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < sd->n && rc == PEFT_OK; i++) {
        const peft_tensor *t = sd->tensors[i];
        const void *data = t->data;
        if (t->dtype != PEFT_DTYPE_F32) {
            if (!(conv[i] = malloc((size_t)(t->numel ? t->numel : 1) * sizeof(float))))
                rc = peft_set_error(m->ctx, PEFT_ENOMEM, "out of memory");
            else
                peft_tensor_to_f32(t, conv[i]);
            data = conv[i];
        }
        outs[i] = (peft_st_out){sd->names[i], PEFT_DTYPE_F32, t->ndim, t->shape, data};
    }
    static const char *const meta[] = {"format", "pt", NULL};
    peft_path_join(path, sizeof path, dir, "adapter_model.safetensors");
    if (rc == PEFT_OK) {
        rc = peft_st_write_buf(path, outs, sd->n, meta, err, sizeof err);
        if (rc) rc = peft_set_error(m->ctx, rc, "%s", err);
    }
    for (size_t i = 0; i < sd->n; i++) free(conv[i]);
    free(conv);
    free(outs);
    peft_state_dict_free(sd);
    if (rc) return rc;

    json_t *cfg = json_deep_copy(a->config);
    json_object_set_new(cfg, "inference_mode", json_true());
    char *text = json_dumps(cfg, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(cfg);
    if (!text) return peft_set_error(m->ctx, PEFT_ENOMEM, "out of memory");
    peft_path_join(path, sizeof path, dir, "adapter_config.json");
    rc = peft_write_file_atomic_buf(path, text, strlen(text), err, sizeof err);
    free(text);
    return rc ? peft_set_error(m->ctx, rc, "%s", err) : PEFT_OK;
}

int peft_save_pretrained(peft_model *m, const char *dir, const char *const *selected,
                         int n_selected, int is_main_process)
{
    if (!is_main_process) return PEFT_OK;
    if (!dir || strlen(dir) > 3000)
        return peft_set_error(m->ctx, PEFT_EINVAL, "save_pretrained: the directory path is empty or too long");
    for (int i = 0; selected && i < n_selected; i++)
        if (!peft_find_adapter(m, selected[i]))
            return peft_set_error(m->ctx, PEFT_ENOTFOUND, "save_pretrained: no adapter named '%s'",
                                  selected[i]);
    /* every file of the set goes to a staging dir swapped in at the end (core/io/dirsave.h): a
     * reader or a kill never sees adapters of two saves side by side */
    peft_dirsave ds;
    char err[1024] = "";
    if (peft_dirsave_begin(&ds, dir, err, sizeof err)) return peft_set_error(m->ctx, PEFT_EIO, "%s", err);
    for (int i = 0; i < m->n_adapters; i++) {
        peft_adapter *a = m->adapters[i];
        int pick = !selected;
        for (int j = 0; selected && j < n_selected; j++) pick |= strcmp(selected[j], a->name) == 0;
        if (!pick) continue;
        char sub[4300];
        if (strcmp(a->name, "default") == 0)
            snprintf(sub, sizeof sub, "%s", ds.stage);
        else
            snprintf(sub, sizeof sub, "%s/%s", ds.stage, a->name);
        int rc = save_one(m, a, sub);
        if (rc) {
            peft_dirsave_abort(&ds);
            return rc;
        }
    }
    /* a mixed model: the manifest lists the folders of this save */
    int rc = m->mixed ? peft_mixed_write_manifest(m, ds.stage, selected, n_selected) : PEFT_OK;
    if (rc) {
        peft_dirsave_abort(&ds);
        return rc;
    }
    if (peft_dirsave_commit(&ds, err, sizeof err)) return peft_set_error(m->ctx, PEFT_EIO, "%s", err);
    return PEFT_OK;
}

/* ---- loading ---- */

/* the adapter's folder: dir itself, or dir/<name> when dir holds a named adapter */
static int adapter_files(const char *dir, const char *name, char *cfg_path, char *w_path, size_t len)
{
    struct stat st;
    snprintf(cfg_path, len, "%s/adapter_config.json", dir);
    if (stat(cfg_path, &st) == 0) {
        snprintf(w_path, len, "%s/adapter_model.safetensors", dir);
        return 0;
    }
    snprintf(cfg_path, len, "%s/%s/adapter_config.json", dir, name);
    if (stat(cfg_path, &st) == 0) {
        snprintf(w_path, len, "%s/%s/adapter_model.safetensors", dir, name);
        return 0;
    }
    snprintf(cfg_path, len, "%s/adapter_config.json", dir);
    return -1;
}

int peft_load_adapter(peft_model *m, const char *dir, const char *adapter_name, int is_trainable)
{
    const char *name = adapter_name ? adapter_name : "default";
    char cfg_path[4200], w_path[4200];
    if (!dir || strlen(dir) > 3000)
        return peft_set_error(m->ctx, PEFT_EINVAL, "load_adapter: the directory path is empty or too long");
    if (adapter_files(dir, name, cfg_path, w_path, sizeof cfg_path))
        return peft_set_error(m->ctx, PEFT_EIO, "%s: no adapter_config.json (nor in %s/%s/)%s", dir,
                              dir, name,
                              peft_is_mixed_dir(dir) ? "; it holds a mixed model (peft_mixed.json): "
                                                       "load it with peft_mixed_from_pretrained" : "");
    FILE *f = fopen(cfg_path, "rb");
    if (!f) return peft_set_error(m->ctx, PEFT_EIO, "%s: %s", cfg_path, strerror(errno));
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    if (len < 0 || len > (1 << 24)) {
        fclose(f);
        return peft_set_error(m->ctx, PEFT_EFORMAT, "%s: not a plausible config file", cfg_path);
    }
    char *text = calloc(1, (size_t)len + 1);
    size_t got = text ? fread(text, 1, (size_t)len, f) : 0;
    fclose(f);
    if (!text || got != (size_t)len) {
        free(text);
        return peft_set_error(m->ctx, PEFT_EIO, "%s: read failed", cfg_path);
    }
    struct stat st;
    if (stat(w_path, &st) != 0) {
        free(text);
        return peft_set_error(m->ctx, PEFT_EIO,
                              "%s: missing (only safetensors adapters are supported)", w_path);
    }
    peft_adapter *a = NULL;
    /* the weights' header first: the config's sizes are checked against it as the adapter is
     * created (core/peft/bounds.c) */
    char oerr[1024] = "";
    peft_st_file *wf = NULL;
    int orc = peft_st_open_buf(w_path, &wf, oerr, sizeof oerr);
    if (orc) {
        free(text);
        return peft_set_error(m->ctx, orc, "%s", oerr);
    }
    m->load_file = wf;
    int rc = peft_add_adapter_from(m, name, text, cfg_path, &a);
    m->load_file = NULL;
    peft_st_close(wf);
    free(text);
    if (rc) return rc;
    peft_adapter_set_trainable(m, a, 0);
    rc = peft_set_peft_model_state_dict(m, w_path, name, 0);
    if (rc) {
        char msg[2048];
        snprintf(msg, sizeof msg, "%s", peft_errmsg(m->ctx));
        peft_delete_adapter(m, name);
        return peft_set_error(m->ctx, rc, "%s", msg);
    }
    a->trainable_allowed = is_trainable != 0;
    peft_adapter_set_trainable(m, a, 0);
    return PEFT_OK;
}

int peft_from_pretrained(peft_ctx *ctx, peft_base_model *base, const char *adapter_dir,
                         const char *adapter_name, int is_trainable, peft_model **out)
{
    peft_model *m = calloc(1, sizeof *m);
    if (!m) return peft_set_error(ctx, PEFT_ENOMEM, "out of memory");
    m->ctx = ctx;
    m->base = base;
    /* mixed until the first adapter decides */
    int rc = peft_load_adapter(m, adapter_dir, adapter_name, is_trainable);
    if (rc) {
        m->base = NULL;
        peft_model_free(m);
        return rc;
    }
    m->adapters[0]->active = 1;
    peft_adapter_set_trainable(m, m->adapters[0], is_trainable != 0);
    peft_prompt_apply(m); /* one active adapter: cannot fail */
    *out = m;
    return PEFT_OK;
}
