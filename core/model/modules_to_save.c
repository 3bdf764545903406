/* modules_to_save.c — PEFT's modules_to_save: whole base modules (e.g. a classifier head or a
 * layer norm) trained and saved in full, one copy per adapter, the original kept for when the
 * adapter is off. Matching is PEFT 0.13's: a module whose name ends with an entry. */
#include <stdlib.h>
#include <string.h>
#include "core/peft/internal.h"

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static peft_mts *find_or_add(peft_model *m, peft_param *p)
{
    for (int i = 0; i < m->n_mts; i++)
        if (m->mts[i].param == p) return &m->mts[i];
    peft_mts *n = realloc(m->mts, (size_t)(m->n_mts + 1) * sizeof *n);
    if (!n) return NULL;
    m->mts = n;
    peft_mts *e = &m->mts[m->n_mts++];
    memset(e, 0, sizeof *e);
    e->param = p;
    const char *dot = strrchr(p->name, '.');
    e->module = strndup(p->name, dot ? (size_t)(dot - p->name) : 0);
    e->leaf = dot ? dot + 1 : p->name;
    e->original = *p->t;
    return e;
}

static int add_copy(peft_mts *e, peft_adapter *a)
{
    peft_tensor *src = &e->original;
    peft_tensor *c = peft_tensor_new(PEFT_DTYPE_F32, src->ndim, src->shape);
    peft_mts_copy *cs = realloc(e->copies, (size_t)(e->n_copies + 1) * sizeof *cs);
    if (!c || !cs) {
        peft_tensor_free(c);
        if (cs) e->copies = cs;
        return -1;
    }
    e->copies = cs;
    peft_tensor_to_f32(src, peft_f32(c));
    c->flags |= PEFT_T_PARAM;
    if (!peft_tensor_ensure_grad(c)) {
        peft_tensor_free(c);
        return -1;
    }
    e->copies[e->n_copies++] = (peft_mts_copy){a, c};
    return 0;
}

int peft_mts_add(peft_model *m, peft_adapter *a)
{
    json_t *list = json_object_get(a->config, "modules_to_save");
    if (!list || json_is_null(list)) return PEFT_OK;
    if (!json_is_array(list))
        return peft_set_error(m->ctx, PEFT_EINVAL, "modules_to_save must be a list of module names");
    if (m->bare)
        return peft_set_error(m->ctx, PEFT_EINVAL,
                              "modules_to_save needs a PeftModel (inject_adapter_in_model has none)");
    size_t i;
    json_t *v;
    int total = 0;
    json_array_foreach(list, i, v) {
        const char *want = json_string_value(v);
        if (!want)
            return peft_set_error(m->ctx, PEFT_EINVAL, "modules_to_save[%zu] is not a string", i);
        int hits = 0;
        for (size_t k = 0; k < m->base->n_params; k++) {
            peft_param *p = &m->base->params[k];
            const char *dot = strrchr(p->name, '.');
            if (!dot) continue;
            char module[1024];
            snprintf(module, sizeof module, "%.*s", (int)(dot - p->name), p->name);
            if (!ends_with(module, want)) continue;
            for (size_t s = 0; s < m->base->n_sites; s++)
                if (!strcmp(m->base->sites[s]->info.name, module) && m->base->sites[s]->n_chain > 0)
                    return peft_set_error(m->ctx, PEFT_EINVAL,
                                          "modules_to_save '%s' is also an adapter target (%s)", want,
                                          module);
            /* a base bias made trainable by `bias` is trained in the copies from now on */
            int kb = 0;
            for (int b = 0; b < m->n_biases; b++)
                if (m->biases[b].param != p) m->biases[kb++] = m->biases[b];
            m->n_biases = kb;
            peft_mts *e = find_or_add(m, p);
            if (!e || add_copy(e, a)) return peft_set_error(m->ctx, PEFT_ENOMEM, "out of memory");
            hits++;
        }
        total += hits;
    }
    /* as PEFT, an entry that matches nothing is skipped (the task heads add "classifier" and
     * "score" for every model); a list of which nothing matches is a mistake */
    if (total == 0 && json_array_size(list) > 0) {
        char *s = json_dumps(list, JSON_COMPACT);
        peft_set_error(m->ctx, PEFT_EINVAL, "modules_to_save %s matches no module with parameters",
                       s ? s : "");
        free(s);
        return PEFT_EINVAL;
    }
    peft_mts_apply(m);
    return PEFT_OK;
}

static void show(peft_mts *e, const peft_tensor *src)
{
    peft_tensor *live = e->param->t;
    live->dtype = src->dtype;
    live->data = src->data;
    live->grad = src->grad;
    live->requires_grad = src->requires_grad;
    /* the live struct never owns what it shows: the original's buffers stay with `original` */
    live->flags = src->flags & ~(PEFT_T_OWNS_DATA | PEFT_T_OWNS_GRAD);
}

void peft_mts_apply(peft_model *m)
{
    for (int i = 0; i < m->n_mts; i++) {
        peft_mts *e = &m->mts[i];
        const peft_tensor *src = &e->original;
        if (!m->base->adapters_disabled)
            for (int j = 0; j < e->n_copies; j++)
                if (e->copies[j].owner->active) { src = e->copies[j].t; break; }
        show(e, src);
    }
}

void peft_mts_set_trainable(peft_model *m, peft_adapter *a, int on)
{
    for (int i = 0; i < m->n_mts; i++)
        for (int j = 0; j < m->mts[i].n_copies; j++)
            if (m->mts[i].copies[j].owner == a) m->mts[i].copies[j].t->requires_grad = on;
    peft_mts_apply(m);
}

void peft_mts_drop(peft_model *m, peft_adapter *a)
{
    for (int i = 0; i < m->n_mts; i++) {
        peft_mts *e = &m->mts[i];
        int k = 0;
        for (int j = 0; j < e->n_copies; j++) {
            if (e->copies[j].owner == a) peft_tensor_free(e->copies[j].t);
            else e->copies[k++] = e->copies[j];
        }
        e->n_copies = k;
    }
    peft_mts_apply(m);
}

void peft_mts_release(peft_model *m, int keep_active)
{
    for (int i = 0; i < m->n_mts; i++) {
        peft_mts *e = &m->mts[i];
        peft_tensor *live = e->param->t;
        peft_tensor *keep = NULL;
        if (keep_active)
            for (int j = 0; j < e->n_copies; j++)
                if (e->copies[j].owner->active) keep = e->copies[j].t;
        if (keep) { /* the trained copy becomes the base parameter */
            if (e->original.flags & PEFT_T_OWNS_DATA) free(e->original.data);
            if (e->original.flags & PEFT_T_OWNS_GRAD) free(e->original.grad);
            live->dtype = PEFT_DTYPE_F32;
            live->data = keep->data;
            live->grad = NULL;
            live->flags = (e->original.flags | PEFT_T_OWNS_DATA) & ~PEFT_T_OWNS_GRAD;
            free(keep->grad);
            keep->data = NULL;
            keep->grad = NULL;
            keep->flags = 0;
        } else {
            *live = e->original;
        }
        live->requires_grad = 0;
        for (int j = 0; j < e->n_copies; j++) peft_tensor_free(e->copies[j].t);
        free(e->copies);
        free(e->module);
    }
    free(m->mts);
    m->mts = NULL;
    m->n_mts = 0;
}
