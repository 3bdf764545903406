/* site.c — a site (linear, Conv1D, embedding or norm) and its adapter chain (DESIGN.md 4):
 * forward through the chain, merge/unmerge adapters into the base weight, and restore the
 * weight bit-exactly. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/ops/ops.h"
#include "core/model/site.h"
#include "core/tuner/plugin_call.h"
#include "peft/quant.h"
#include "peft/warn.h"

static int runs(const peft_site *s, const peft_site_adapter *sa)
{
    return sa->adapter->active && !sa->merged && !(s->owner && s->owner->adapters_disabled);
}

/* the token rows of x (N = numel / last dim) whose batch row uses adapter a, per
 * owner->row_adapter (B entries): an arena index list, *n set; NULL with *n = 0 if none */
static int32_t *rows_of(peft_graph *g, const peft_site *s, const peft_adapter *a, const peft_tensor *x,
                        int64_t *n)
{
    const peft_base_model *m = s->owner;
    int64_t C = x->shape[x->ndim - 1], N = C ? x->numel / C : 0, per = m->row_B ? N / m->row_B : 0;
    int64_t cnt = 0;
    for (int64_t b = 0; b < m->row_B; b++) cnt += m->row_adapter[b] == a;
    *n = cnt * per;
    if (!*n) return NULL;
    int32_t *idx = peft_arena_alloc(g->arena, (size_t)*n * sizeof *idx);
    if (!idx) return NULL;
    int64_t k = 0;
    for (int64_t b = 0; b < m->row_B; b++)
        if (m->row_adapter[b] == a)
            for (int64_t t = 0; t < per; t++) idx[k++] = (int32_t)(b * per + t);
    return idx;
}

/* a plugin entry returned no tensor: the graph's error says which adapter, where (a plugin that
 * reported its own failure with host->graph_set_error keeps its message: the first one sticks) */
static peft_tensor *plugin_failed(peft_graph *g, const peft_site *s, const peft_site_adapter *sa,
                                  const char *entry)
{
    peft_graph_fail(g, PEFT_EPLUGIN, "adapter '%s' (plugin '%s'): %s on %s returned no tensor",
                         sa->adapter->name, sa->adapter->vt->name, entry, s->info.name);
    return NULL;
}

peft_tensor *peft_site_norm_op(peft_graph *g, const peft_site_info *info, peft_tensor *x,
                               peft_tensor *w, peft_tensor *b)
{
    if (!info || info->kind != PEFT_SITE_NORM || !x || !w || w->numel != info->in_features ||
        x->ndim < 1 || x->shape[x->ndim - 1] != info->in_features)
        return NULL;
    if (info->norm_type == PEFT_NORM_LAYER) {
        if (b && b->numel != w->numel) return NULL;
        return op_layernorm(g, x, w, b, info->norm_eps);
    }
    if (b) return NULL; /* RMS norms have no bias */
    return op_rmsnorm_offset(g, x, w, info->norm_eps, info->norm_type == PEFT_NORM_RMS_1P ? 1.0f : 0.0f);
}

/* the base module on x: the linear layer, the norm, or (x: I32 ids (B, T)) the table lookup */
static peft_tensor *base_forward(peft_graph *g, peft_site *s, peft_tensor *x)
{
    switch (s->info.kind) {
    case PEFT_SITE_NORM:
        return peft_site_norm_op(g, &s->info, x, s->info.weight, s->info.bias);
    case PEFT_SITE_EMBEDDING: {
        int32_t bad = 0;
        if (!x || x->dtype != PEFT_DTYPE_I32 || x->ndim != 2) return NULL;
        return op_embedding(g, s->info.weight, x->data, x->shape[0], x->shape[1], &bad);
    }
    default:
        return op_linear(g, x, s->info.weight, s->info.bias, s->info.fan_in_fan_out);
    }
}

/* an embedding site in a mixed batch: each adapter on the token rows of its batch rows; ids
 * (B, T) I32, y (B, T, C) the base lookup */
static peft_tensor *embed_grouped(peft_graph *g, peft_site *s, peft_tensor *ids, peft_tensor *y)
{
    const peft_base_model *m = s->owner;
    const int64_t B = ids->shape[0], T = ids->shape[1];
    for (int i = 0; i < s->n_chain && y; i++) {
        peft_site_adapter *sa = &s->chain[i];
        if (sa->merged) continue;
        int64_t nb = 0;
        for (int64_t b = 0; b < B && b < m->row_B; b++) nb += m->row_adapter[b] == sa->adapter;
        if (!nb) continue;
        int32_t *idx = peft_arena_alloc(g->arena, (size_t)(nb * T) * sizeof *idx);
        peft_tensor *sub = peft_graph_tensor_raw(g, PEFT_DTYPE_I32, 2, (int64_t[]){nb, T});
        if (!idx || !sub) return NULL;
        int64_t k = 0;
        for (int64_t b = 0; b < B && b < m->row_B; b++)
            if (m->row_adapter[b] == sa->adapter)
                for (int64_t t = 0; t < T; t++, k++) {
                    idx[k] = (int32_t)(b * T + t);
                    ((int32_t *)sub->data)[k] = ((const int32_t *)ids->data)[b * T + t];
                }
        peft_tensor *ys = op_take_rows(g, y, idx, nb * T); /* (nb*T, C) */
        peft_tensor *yt = ys ? PEFT_PLUGIN_CALL(sa->adapter->vt, "forward", sa->adapter->name, s->info.name,
                                                sa->adapter->vt->forward(sa->state, g, &s->info, sub, ys)) : NULL;
        if (ys && !yt) return plugin_failed(g, s, sa, "forward");
        y = yt ? op_put_rows(g, y, yt, idx, nb * T) : NULL;
    }
    return y;
}

/* one batch, one adapter per row (mixed-batch inference): each adapter runs on its own rows
 * only, one grouped call per adapter, the results put back in place */
static peft_tensor *forward_grouped(peft_graph *g, peft_site *s, peft_tensor *x)
{
    if (s->info.kind == PEFT_SITE_EMBEDDING) {
        peft_tensor *y = base_forward(g, s, x);
        return y ? embed_grouped(g, s, x, y) : NULL;
    }
    for (int i = 0; i < s->n_chain && x; i++) {
        peft_site_adapter *sa = &s->chain[i];
        if (sa->merged || !sa->adapter->vt->pre_forward) continue;
        int64_t n;
        int32_t *idx = rows_of(g, s, sa->adapter, x, &n);
        if (!n) continue;
        peft_tensor *xs = idx ? op_take_rows(g, x, idx, n) : NULL;
        peft_tensor *xt = xs ? PEFT_PLUGIN_CALL(sa->adapter->vt, "pre_forward", sa->adapter->name, s->info.name,
                                                sa->adapter->vt->pre_forward(sa->state, g, &s->info, xs)) : NULL;
        if (xs && !xt) return plugin_failed(g, s, sa, "pre_forward");
        x = xt ? op_put_rows(g, x, xt, idx, n) : NULL;
    }
    if (!x) return NULL;
    peft_tensor *y = base_forward(g, s, x);
    for (int i = 0; i < s->n_chain && y; i++) {
        peft_site_adapter *sa = &s->chain[i];
        if (sa->merged) continue;
        int64_t n;
        int32_t *idx = rows_of(g, s, sa->adapter, x, &n);
        if (!n) continue;
        peft_tensor *xs = idx ? op_take_rows(g, x, idx, n) : NULL;
        peft_tensor *ys = xs ? op_take_rows(g, y, idx, n) : NULL;
        peft_tensor *yt = ys ? PEFT_PLUGIN_CALL(sa->adapter->vt, "forward", sa->adapter->name, s->info.name,
                                                sa->adapter->vt->forward(sa->state, g, &s->info, xs, ys)) : NULL;
        if (ys && !yt) return plugin_failed(g, s, sa, "forward");
        y = yt ? op_put_rows(g, y, yt, idx, n) : NULL;
    }
    return y;
}

/* x (..., in) -> (..., out), the adapters nested in the order added as PEFT's mixed model
 * nests them: each adapter wraps the layer as it was, so an input transform (IA3 on a
 * feed-forward layer) scales the input of the base layer and of the adapters added BEFORE it,
 * and an output adapter acts on the base output plus the earlier adapters' deltas. Adapter i
 * thus reads x transformed by the adapters added after it; the base reads x transformed by all. */
peft_tensor *peft_site_forward(peft_graph *g, peft_site *s, peft_tensor *x)
{
    if (s->owner && s->owner->row_adapter && !s->owner->adapters_disabled) return forward_grouped(g, s, x);
    peft_tensor *xin_small[8], **xin = xin_small; /* xin[i]: the input adapter i reads */
    if (s->n_chain + 1 > 8 && !(xin = peft_arena_alloc(g->arena, (size_t)(s->n_chain + 1) * sizeof *xin)))
        return NULL;
    xin[s->n_chain] = x;
    for (int i = s->n_chain - 1; i >= 0; i--) {
        peft_site_adapter *sa = &s->chain[i];
        peft_tensor *xi = xin[i + 1];
        if (xi && runs(s, sa) && sa->adapter->vt->pre_forward &&
            !(xi = PEFT_PLUGIN_CALL(sa->adapter->vt, "pre_forward", sa->adapter->name, s->info.name,
                                   sa->adapter->vt->pre_forward(sa->state, g, &s->info, xi))))
            return plugin_failed(g, s, sa, "pre_forward");
        xin[i] = xi;
    }
    if (!xin[0]) return NULL;
    peft_tensor *y = base_forward(g, s, xin[0]);
    /* a linear's output is read by nobody but the chain (op_linear's backward reads x and W,
     * never y): the first adapter may add into it in place (PEFT_T_INPLACE) */
    int inplace = y && (s->info.kind == PEFT_SITE_LINEAR || s->info.kind == PEFT_SITE_CONV1D) &&
                  (y->flags & PEFT_T_ARENA) && y->dtype == PEFT_DTYPE_F32;
    for (int i = 0; i < s->n_chain && y; i++) {
        peft_site_adapter *sa = &s->chain[i];
        if (!runs(s, sa)) continue;
        peft_tensor *in_y = y;
        if (inplace) y->flags |= PEFT_T_INPLACE;
        y = PEFT_PLUGIN_CALL(sa->adapter->vt, "forward", sa->adapter->name, s->info.name,
                             sa->adapter->vt->forward(sa->state, g, &s->info, xin[i + 1], y));
        in_y->flags &= ~PEFT_T_INPLACE;
        inplace = 0;
        if (!y) return plugin_failed(g, s, sa, "forward");
    }
    return y;
}

/* 1 when no adapter takes part in the site's forward in this step */
static int no_adapter_runs(const peft_site *s)
{
    const int grouped = s->owner && s->owner->row_adapter && !s->owner->adapters_disabled;
    for (int i = 0; i < s->n_chain; i++)
        if (!s->chain[i].merged && (grouped || runs(s, &s->chain[i]))) return 0;
    return 1;
}

int peft_site_plain_linear(const peft_site *s)
{
    if (!s || (s->info.kind != PEFT_SITE_LINEAR && s->info.kind != PEFT_SITE_CONV1D)) return 0;
    return no_adapter_runs(s);
}

peft_tensor *peft_site_norm_to(peft_graph *g, peft_site *s, peft_tensor *x, int slot)
{
    if (!g || !s || s->info.kind != PEFT_SITE_NORM || s->info.norm_type != PEFT_NORM_LAYER ||
        !no_adapter_runs(s) || !x || !s->info.weight || s->info.weight->numel != s->info.in_features ||
        x->ndim < 1 || x->shape[x->ndim - 1] != s->info.in_features ||
        (s->info.bias && s->info.bias->numel != s->info.in_features))
        return peft_site_norm(g, s, x); /* the site's own way (and its checks) */
    return op_layernorm_to(g, x, s->info.weight, s->info.bias, s->info.norm_eps, slot);
}

int peft_site_input_unread(const peft_site *s)
{
    return peft_site_plain_linear(s) && !s->info.weight->requires_grad;
}

peft_tensor *peft_site_embed(peft_graph *g, peft_site *s, const int32_t *ids, int64_t B, int64_t T,
                             int32_t *bad_id)
{
    if (!g || !s || s->info.kind != PEFT_SITE_EMBEDDING || !ids || B <= 0 || T <= 0) return NULL;
    const int64_t V = s->info.in_features;
    for (int64_t i = 0; i < B * T; i++)
        if (ids[i] < 0 || ids[i] >= V) {
            if (bad_id) *bad_id = ids[i];
            return NULL;
        }
    peft_tensor *x = peft_graph_tensor_raw(g, PEFT_DTYPE_I32, 2, (int64_t[]){B, T});
    if (!x) return NULL;
    memcpy(x->data, ids, (size_t)(B * T) * sizeof *ids);
    return peft_site_forward(g, s, x);
}

peft_tensor *peft_site_norm(peft_graph *g, peft_site *s, peft_tensor *x)
{
    if (!g || !s || s->info.kind != PEFT_SITE_NORM) return NULL;
    return peft_site_forward(g, s, x);
}

int peft_site_attach(peft_site *s, peft_adapter *a, void *state)
{
    if (s->n_chain == s->cap_chain) {
        int cap = s->cap_chain ? s->cap_chain * 2 : 2;
        peft_site_adapter *c = realloc(s->chain, (size_t)cap * sizeof *c);
        if (!c) return -1;
        s->chain = c;
        s->cap_chain = cap;
    }
    s->chain[s->n_chain++] = (peft_site_adapter){.adapter = a, .state = state, .merged = 0};
    return 0;
}

int peft_site_find(const peft_site *s, const peft_adapter *a)
{
    for (int i = 0; i < s->n_chain; i++)
        if (s->chain[i].adapter == a) return i;
    return -1;
}

void peft_site_detach(peft_site *s, int idx)
{
    peft_site_adapter *sa = &s->chain[idx];
    PEFT_PLUGIN_CALL_VOID(sa->adapter->vt, "destroy", sa->adapter->name, s->info.name,
                          sa->adapter->vt->destroy(sa->state));
    memmove(&s->chain[idx], &s->chain[idx + 1], (size_t)(s->n_chain - idx - 1) * sizeof *sa);
    s->n_chain--;
}

static int all_finite(const float *p, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(p[i])) return 0;
    return 1;
}

/* the other site over the same weight tensor (tied input / output embeddings) that has merged
 * adapters, or NULL */
static peft_site *merged_partner(const peft_site *s)
{
    if (!s->info.tied || !s->owner) return NULL;
    for (size_t i = 0; i < s->owner->n_sites; i++) {
        peft_site *p = s->owner->sites[i];
        if (p != s && p->info.weight == s->info.weight && p->n_merged > 0) return p;
    }
    return NULL;
}

/* Before the first merge, the weight (and bias) become owned f32 copies; the loaded data is
 * kept so that the last unmerge puts it back exactly. A tied weight's two sites share one copy:
 * the site that merged first keeps the loaded data, the other merges into the copy (as PEFT
 * adds both deltas into the one shared tensor). */
static int begin_merging(peft_site *s)
{
    if (s->n_merged > 0) return 0;
    if (merged_partner(s)) return 0; /* already an owned f32 copy; the partner keeps the original */
    if (peft_tensor_make_f32_owned(s->info.weight, &s->orig_weight_data, &s->orig_weight_dtype,
                                   &s->orig_weight_owned))
        return -1;
    if (s->info.bias &&
        peft_tensor_make_f32_owned(s->info.bias, &s->orig_bias_data, &s->orig_bias_dtype,
                                   &s->orig_bias_owned))
        return -1;
    return 0;
}

static void restore_tensor(peft_tensor *t, void **orig, int32_t dtype, int *owned)
{
    if (!t || !*orig || t->data == *orig) return;
    if (t->flags & PEFT_T_OWNS_DATA) free(t->data);
    t->data = *orig;
    t->dtype = dtype;
    t->flags = *owned ? (t->flags | PEFT_T_OWNS_DATA) : (t->flags & ~PEFT_T_OWNS_DATA);
    *orig = NULL;
}

static void end_merging(peft_site *s)
{
    restore_tensor(s->info.weight, &s->orig_weight_data, s->orig_weight_dtype,
                   &s->orig_weight_owned);
    restore_tensor(s->info.bias, &s->orig_bias_data, s->orig_bias_dtype, &s->orig_bias_owned);
}

/* A quantized base (as PEFT's bnb layers merge): the merged f32 weight goes through the base's
 * quantization and back, so that the merged layer computes what the re-quantized one does. */
static int requantize(peft_site *s, char *err, size_t errlen)
{
    peft_tensor *w = s->info.weight;
    peft_tensor *q = peft_tensor_quantize(w, s->orig_weight_dtype, NULL);
    if (!q) {
        snprintf(err, errlen, "out of memory re-quantizing %s after the merge", s->info.name);
        return -1;
    }
    peft_tensor_to_f32(q, peft_f32(w));
    peft_tensor_free(q);
    char msg[512];
    snprintf(msg, sizeof msg, "Merge lora module to %s linear may get different generations due "
             "to rounding errors (%s: dequantized, merged and re-quantized)",
             s->orig_weight_dtype == PEFT_DTYPE_INT8 ? "8-bit" : "4-bit", s->info.name);
    peft_warn(msg);
    return 0;
}

int peft_site_merge(peft_site *s, int idx, int safe, char *err, size_t errlen)
{
    peft_site_adapter *sa = &s->chain[idx];
    const peft_tuner_vtable *vt = sa->adapter->vt;
    if (sa->merged) return 0;
    if (!vt->merge || !(vt->caps & PEFT_CAP_MERGEABLE)) {
        snprintf(err, errlen, "adapter '%s' (%s) cannot be merged", sa->adapter->name, vt->name);
        return -1;
    }
    if (begin_merging(s)) {
        snprintf(err, errlen, "out of memory preparing %s for merging", s->info.name);
        return -1;
    }
    float *w = peft_f32(s->info.weight), *b = s->info.bias ? peft_f32(s->info.bias) : NULL;
    int64_t nw = s->info.weight->numel, nb = s->info.bias ? s->info.bias->numel : 0;
    if (!safe) {
        if (PEFT_PLUGIN_CALL(vt, "merge", sa->adapter->name, s->info.name,
                             vt->merge(sa->state, &s->info, w, b, +1, err, errlen))) goto fail;
    } else {
        float *cw = malloc((size_t)nw * sizeof *cw), *cb = nb ? malloc((size_t)nb * sizeof *cb) : NULL;
        if (!cw || (nb && !cb)) {
            free(cw); free(cb);
            snprintf(err, errlen, "out of memory for a safe merge of %s", s->info.name);
            goto fail;
        }
        memcpy(cw, w, (size_t)nw * sizeof *cw);
        if (nb) memcpy(cb, b, (size_t)nb * sizeof *cb);
        int rc = PEFT_PLUGIN_CALL(vt, "merge", sa->adapter->name, s->info.name,
                                  vt->merge(sa->state, &s->info, cw, cb, +1, err, errlen));
        if (!rc && (!all_finite(cw, nw) || (nb && !all_finite(cb, nb)))) {
            snprintf(err, errlen,
                     "safe merge: merging adapter '%s' into %s gives NaN/Inf weights; the layer "
                     "is left unmerged",
                     sa->adapter->name, s->info.name);
            rc = -1;
        }
        if (!rc) {
            memcpy(w, cw, (size_t)nw * sizeof *cw);
            if (nb) memcpy(b, cb, (size_t)nb * sizeof *cb);
        }
        free(cw);
        free(cb);
        if (rc) goto fail;
    }
    if (peft_dtype_is_quantized(s->orig_weight_dtype) && requantize(s, err, errlen)) goto fail;
    sa->merged = 1;
    s->n_merged++;
    return 0;
fail:
    if (s->n_merged == 0) end_merging(s);
    return -1;
}

int peft_site_unmerge(peft_site *s, int idx, char *err, size_t errlen)
{
    peft_site_adapter *sa = &s->chain[idx];
    if (!sa->merged) return 0;
    peft_site *partner = s->n_merged == 1 ? merged_partner(s) : NULL;
    if (s->n_merged == 1 && !partner) { /* the last one: the loaded weight comes back bit-exactly */
        end_merging(s);
    } else if (partner && !s->orig_weight_data) { /* the partner keeps the loaded data */
        if (PEFT_PLUGIN_CALL(sa->adapter->vt, "merge", sa->adapter->name, s->info.name,
                             sa->adapter->vt->merge(sa->state, &s->info, peft_f32(s->info.weight), NULL, -1, err, errlen)))
            return -1;
    } else if (partner) { /* the tied partner still has merged adapters: take ours out and hand
                             it the loaded data, which its last unmerge restores */
        if (PEFT_PLUGIN_CALL(sa->adapter->vt, "merge", sa->adapter->name, s->info.name,
                             sa->adapter->vt->merge(sa->state, &s->info, peft_f32(s->info.weight), NULL, -1, err, errlen)))
            return -1;
        partner->orig_weight_data = s->orig_weight_data;
        partner->orig_weight_dtype = s->orig_weight_dtype;
        partner->orig_weight_owned = s->orig_weight_owned;
        s->orig_weight_data = NULL;
    } else {
        float *b = s->info.bias ? peft_f32(s->info.bias) : NULL;
        if (PEFT_PLUGIN_CALL(sa->adapter->vt, "unmerge", sa->adapter->name, s->info.name,
                             sa->adapter->vt->merge(sa->state, &s->info, peft_f32(s->info.weight), b, -1, err,
                                                    errlen)))
            return -1;
        if (peft_dtype_is_quantized(s->orig_weight_dtype) && requantize(s, err, errlen)) return -1;
    }
    sa->merged = 0;
    s->n_merged--;
    return 0;
}

void peft_site_keep_merged(peft_site *s)
{
    /* merge_and_unload: the merged weights become the base, stored quantized again when the
     * base was; drop the saved originals */
    if (s->orig_weight_data && peft_dtype_is_quantized(s->orig_weight_dtype)) {
        peft_tensor *q = peft_tensor_quantize(s->info.weight, s->orig_weight_dtype, NULL);
        if (q) { /* else (out of memory) the merged weight stays f32: same values */
            peft_tensor *w = s->info.weight;
            if (w->flags & PEFT_T_OWNS_DATA) free(w->data);
            w->data = q->data;
            w->dtype = q->dtype;
            w->flags |= PEFT_T_OWNS_DATA;
            q->flags &= ~PEFT_T_OWNS_DATA;
            peft_tensor_free(q);
        }
    }
    if (s->orig_weight_data && s->orig_weight_owned) free(s->orig_weight_data);
    if (s->orig_bias_data && s->orig_bias_owned) free(s->orig_bias_data);
    s->orig_weight_data = s->orig_bias_data = NULL;
    s->n_merged = 0;
}

void peft_site_release(peft_site *s)
{
    while (s->n_chain > 0) peft_site_detach(s, s->n_chain - 1);
    end_merging(s);
    s->n_merged = 0;
}
