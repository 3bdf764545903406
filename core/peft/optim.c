/* optim.c — AdamW (torch.optim.AdamW semantics: p -= lr*wd*p, then the Adam step with bias
 * correction) over the parameters that require grad or an explicit tensor list; its state saved
 * and restored for resuming; transformers' learning-rate schedules. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/io/safetensors.h"
#include "peft/optim.h"
#include "core/peft/internal.h"
#include "peft/safetensors.h"

struct peft_adamw {
    peft_adamw_config cfg;
    size_t n;
    peft_tensor **params; /* borrowed from the model */
    float **m, **v;       /* owned moments, one per param */
    int64_t t;
    peft_ctx *ctx; /* borrowed: where the state calls leave their errors */
};

peft_adamw *peft_adamw_new_params(peft_ctx *ctx, peft_tensor *const *params, size_t n,
                                  const peft_adamw_config *cfg)
{
    for (size_t i = 0; i < n; i++)
        if (!params[i] || params[i]->dtype != PEFT_DTYPE_F32) {
            peft_set_error(ctx, PEFT_EINVAL, "optimizer parameter %zu is %s: AdamW needs owned f32 "
                           "tensors (convert frozen weights with peft_tensor_make_f32_owned)", i,
                           params[i] ? "not f32" : "NULL");
            return NULL;
        }
    peft_adamw *o = calloc(1, sizeof *o);
    if (!o) goto oom;
    o->cfg = *cfg;
    o->ctx = ctx;
    o->n = n;
    o->params = calloc(n + 1, sizeof *o->params);
    o->m = calloc(n + 1, sizeof *o->m);
    o->v = calloc(n + 1, sizeof *o->v);
    if (!o->params || !o->m || !o->v) goto oom;
    for (size_t i = 0; i < n; i++) {
        peft_tensor *p = params[i];
        o->params[i] = p;
        o->m[i] = calloc((size_t)p->numel + 1, sizeof(float));
        o->v[i] = calloc((size_t)p->numel + 1, sizeof(float));
        if (!o->m[i] || !o->v[i] || !peft_tensor_ensure_grad(p)) goto oom;
    }
    return o;
oom:
    peft_adamw_free(o);
    peft_set_error(ctx, PEFT_ENOMEM, "out of memory for the optimizer");
    return NULL;
}

peft_adamw *peft_adamw_new(peft_model *model, const peft_adamw_config *cfg)
{
    peft_state_dict *sd;
    if (peft_trainable_parameters(model, &sd)) return NULL;
    peft_adamw *o = peft_adamw_new_params(peft_model_ctx(model), sd->tensors, sd->n, cfg);
    peft_state_dict_free(sd);
    return o;
}

void peft_adamw_free(peft_adamw *o)
{
    if (!o) return;
    for (size_t i = 0; i < o->n; i++) {
        if (o->m) free(o->m[i]);
        if (o->v) free(o->v[i]);
    }
    free(o->m);
    free(o->v);
    free(o->params);
    free(o);
}

void peft_adamw_zero_grad(peft_adamw *o)
{
    for (size_t i = 0; i < o->n; i++) peft_tensor_zero_grad(o->params[i]);
}

double peft_adamw_clip_grad_norm(peft_adamw *o, double max_norm)
{
    double ss = 0;
    for (size_t i = 0; i < o->n; i++)
        for (int64_t j = 0; j < o->params[i]->numel; j++) ss += (double)o->params[i]->grad[j] * o->params[i]->grad[j];
    double norm = sqrt(ss);
    if (max_norm > 0 && norm > max_norm) {
        float s = (float)(max_norm / (norm + 1e-6));
        for (size_t i = 0; i < o->n; i++)
            for (int64_t j = 0; j < o->params[i]->numel; j++) o->params[i]->grad[j] *= s;
    }
    return norm;
}

void peft_adamw_step(peft_adamw *o, double lr)
{
    peft_adamw_update(o, lr);
    peft_adamw_zero_grad(o);
}

void peft_adamw_update(peft_adamw *o, double lr)
{
    if (lr <= 0) lr = o->cfg.lr;
    o->t++;
    double b1 = o->cfg.beta1, b2 = o->cfg.beta2;
    double bc1 = 1.0 - pow(b1, (double)o->t), bc2 = 1.0 - pow(b2, (double)o->t);
    double step = lr / bc1, decay = 1.0 - lr * o->cfg.weight_decay;
    for (size_t i = 0; i < o->n; i++) {
        peft_tensor *p = o->params[i];
        float *w = peft_f32(p), *g = p->grad, *m = o->m[i], *v = o->v[i];
        for (int64_t j = 0; j < p->numel; j++) {
            m[j] = (float)(b1 * m[j] + (1 - b1) * g[j]);
            v[j] = (float)(b2 * v[j] + (1 - b2) * (double)g[j] * g[j]);
            double denom = sqrt(v[j] / bc2) + o->cfg.eps;
            w[j] = (float)(w[j] * decay - step * m[j] / denom);
        }
    }
}

size_t peft_adamw_state_bytes(const peft_adamw *o)
{
    size_t b = 0;
    for (size_t i = 0; i < o->n; i++) b += 2 * (size_t)o->params[i]->numel * sizeof(float);
    return b;
}

void peft_adamw_scale_grads(peft_adamw *o, double s)
{
    float f = (float)s;
    for (size_t i = 0; i < o->n; i++)
        for (int64_t j = 0; j < o->params[i]->numel; j++) o->params[i]->grad[j] *= f;
}

int64_t peft_adamw_steps_done(const peft_adamw *o) { return o->t; }
size_t peft_adamw_n_params(const peft_adamw *o) { return o->n; }
peft_ctx *peft_adamw_ctx(const peft_adamw *o) { return o ? o->ctx : NULL; }
peft_tensor *peft_adamw_param(const peft_adamw *o, size_t i) { return i < o->n ? o->params[i] : NULL; }

/* ---- state file -------------------------------------------------------------------------- */

static const char *const KIND[3] = {"param", "exp_avg", "exp_avg_sq"};

int peft_adamw_save_state(const peft_adamw *o, const char *path, const char *const *meta_kv)
{
    char err[1024] = "";
    const size_t errlen = sizeof err;
    size_t nt = 3 * o->n, nm = 0;
    while (meta_kv && meta_kv[2 * nm]) nm++;
    peft_st_out *outs = calloc(nt + 1, sizeof *outs);
    char (*names)[32] = calloc(nt + 1, sizeof *names);
    const char **meta = calloc(2 * nm + 3, sizeof *meta);
    char step[32];
    int rc = PEFT_ENOMEM;
    if (!outs || !names || !meta) {
        snprintf(err, errlen, "%s: out of memory", path);
        goto out;
    }
    for (size_t i = 0; i < o->n; i++)
        for (int k = 0; k < 3; k++) {
            size_t j = 3 * i + (size_t)k;
            snprintf(names[j], sizeof names[j], "%s.%zu", KIND[k], i);
            outs[j] = (peft_st_out){names[j], PEFT_DTYPE_F32, o->params[i]->ndim, o->params[i]->shape,
                                    k == 0 ? o->params[i]->data : k == 1 ? (void *)o->m[i] : (void *)o->v[i]};
        }
    snprintf(step, sizeof step, "%lld", (long long)o->t);
    meta[0] = "adamw_step";
    meta[1] = step;
    for (size_t i = 0; i < 2 * nm; i++) meta[2 + i] = meta_kv[i];
    /* PEFT_EIO (the file system), PEFT_EINVAL or PEFT_ENOMEM */
    rc = peft_st_write_buf(path, outs, nt, meta, err, errlen);
out:
    free(outs);
    free(names);
    free(meta);
    return rc ? peft_set_error(o->ctx, rc, "%s", err) : PEFT_OK;
}

static const peft_st_entry *state_entry(const peft_st_file *f, int kind, size_t i,
                                        const peft_tensor *p, char *err, size_t errlen)
{
    char key[48];
    snprintf(key, sizeof key, "%s.%zu", KIND[kind], i);
    const peft_st_entry *e = peft_st_find(f, key);
    if (!e) {
        snprintf(err, errlen, "%s: missing tensor '%s' (an optimizer state for %zu parameters)",
                 f->path, key, i + 1);
        return NULL;
    }
    int same = e->dtype == PEFT_DTYPE_F32 && e->ndim == p->ndim;
    for (int d = 0; same && d < p->ndim; d++) same = e->shape[d] == p->shape[d];
    if (!same) {
        char want[96] = "", got[96] = "";
        for (int d = 0, o1 = 0; d < p->ndim; d++)
            o1 += snprintf(want + o1, sizeof want - (size_t)o1, "%s%lld", d ? ", " : "", (long long)p->shape[d]);
        for (int d = 0, o2 = 0; d < e->ndim; d++)
            o2 += snprintf(got + o2, sizeof got - (size_t)o2, "%s%lld", d ? ", " : "", (long long)e->shape[d]);
        snprintf(err, errlen, "%s: tensor '%s' is %s (%s) but the parameter is f32 (%s)", f->path,
                 key, e->dtype == PEFT_DTYPE_F32 ? "f32" : "not f32", got, want);
        return NULL;
    }
    return e;
}

int peft_adamw_load_state(peft_adamw *o, const char *path, const char *meta_key,
                          char **meta_value)
{
    char err[1024] = "";
    const size_t errlen = sizeof err;
    if (meta_value) *meta_value = NULL;
    peft_st_file *f;
    int rc = peft_st_open_buf(path, &f, err, errlen);
    if (rc) return peft_set_error(o->ctx, rc, "%s", err);
    rc = PEFT_EFORMAT; /* below, what the file holds does not fit this optimizer */
    json_t *meta = NULL;
    char *value = NULL;
    json_error_t je;
    if (f->n_entries != 3 * o->n) {
        snprintf(err, errlen, "%s: %zu tensors, expected %zu (3 per parameter for %zu parameters)",
                 path, f->n_entries, 3 * o->n, o->n);
        goto out;
    }
    for (size_t i = 0; i < o->n; i++)
        for (int k = 0; k < 3; k++)
            if (!state_entry(f, k, i, o->params[i], err, errlen)) goto out;
    meta = f->metadata_json ? json_loads(f->metadata_json, 0, &je) : NULL;
    const char *step = json_string_value(json_object_get(meta, "adamw_step"));
    char *end = NULL;
    long long t = step ? strtoll(step, &end, 10) : -1;
    if (!step || *end || t < 0) {
        snprintf(err, errlen, "%s: metadata 'adamw_step' is missing or not a count", path);
        goto out;
    }
    if (meta_key && meta_value) {
        const char *s = json_string_value(json_object_get(meta, meta_key));
        if (s && !(value = strdup(s))) {
            snprintf(err, errlen, "%s: out of memory", path);
            rc = PEFT_ENOMEM;
            goto out;
        }
    }
    for (size_t i = 0; i < o->n; i++) {
        size_t bytes = (size_t)o->params[i]->numel * sizeof(float);
        memcpy(o->params[i]->data, state_entry(f, 0, i, o->params[i], err, errlen)->data, bytes);
        memcpy(o->m[i], state_entry(f, 1, i, o->params[i], err, errlen)->data, bytes);
        memcpy(o->v[i], state_entry(f, 2, i, o->params[i], err, errlen)->data, bytes);
        peft_tensor_zero_grad(o->params[i]);
    }
    o->t = t;
    if (meta_value) *meta_value = value;
    value = NULL;
    rc = PEFT_OK;
out:
    free(value);
    json_decref(meta);
    peft_st_close(f);
    return rc ? peft_set_error(o->ctx, rc, "%s", err) : PEFT_OK;
}

/* ---- schedules --------------------------------------------------------------------------- */

double peft_lr_at(int schedule, double base_lr, int64_t step, int64_t total, int64_t warmup)
{
    if (step < warmup) return base_lr * (double)step / (double)(warmup > 1 ? warmup : 1);
    double rest = (double)(total - warmup > 1 ? total - warmup : 1);
    double progress = (double)(step - warmup) / rest;
    switch (schedule) {
    case PEFT_SCHED_LINEAR: return base_lr * fmax(0.0, (double)(total - step) / rest);
    case PEFT_SCHED_COSINE: return base_lr * fmax(0.0, 0.5 * (1.0 + cos(M_PI * progress)));
    default: return base_lr;
    }
}
