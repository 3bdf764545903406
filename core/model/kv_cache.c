/* kv_cache.c — the key/value cache of incremental decoding: persistent per-layer past keys and
 * values with capacity doubling, the attention of new queries over past + new keys, and the
 * encoder-decoder cross-attention store (see kv_cache.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/model/kv_cache.h"
#include "core/ops/ops.h"

peft_kv_cache *peft_kv_cache_new(int64_t B)
{
    if (B <= 0) return NULL;
    peft_kv_cache *c = calloc(1, sizeof *c);
    if (c) c->B = B;
    return c;
}

static void free_layers(float **a, int n)
{
    if (!a) return;
    for (int i = 0; i < n; i++) free(a[i]);
    free(a);
}

static void free_cross(peft_kv_cache *c)
{
    free_layers(c->ck, c->n_layers);
    free_layers(c->cv, c->n_layers);
    free(c->enc_mask);
    c->ck = c->cv = NULL;
    c->enc_mask = NULL;
    c->Te = c->Wc = 0;
    c->cross_ready = c->cross_pending = 0;
}

/* drops every buffer: the cache is empty and unshaped */
static void free_all(peft_kv_cache *c)
{
    free_cross(c);
    free_layers(c->k, c->n_layers);
    free_layers(c->v, c->n_layers);
    free(c->mask);
    free(c->has_prefix);
    c->k = c->v = NULL;
    c->mask = NULL;
    c->has_prefix = NULL;
    c->n_layers = 0;
    c->W = c->len = c->cap = c->n_prefix = c->base = c->Tn = 0;
    c->pending = 0;
}

void peft_kv_cache_free(peft_kv_cache *c)
{
    if (!c) return;
    free_all(c);
    free(c);
}

void peft_kv_cache_reset(peft_kv_cache *c)
{
    if (!c) return;
    c->len = c->n_prefix = c->base = c->Tn = 0;
    c->pending = 0;
    c->cross_ready = c->cross_pending = 0;
}

int64_t peft_kv_cache_len(const peft_kv_cache *c) { return c ? c->len : 0; }

/* (B, cap, w) rows -> (B, ncap, w) rows keeping the first `keep` entries of each row */
static float *regrow(float *old, int64_t B, int64_t cap, int64_t ncap, int64_t w, int64_t keep)
{
    float *n = malloc((size_t)(B * ncap * w) * sizeof(float) + 1);
    if (!n) return NULL;
    for (int64_t b = 0; b < B && keep > 0; b++)
        memcpy(n + b * ncap * w, old + b * cap * w, (size_t)(keep * w) * sizeof(float));
    return n;
}

/* capacity for `need` entries per row (doubling); entries [0, keep) survive */
static int reserve(peft_kv_cache *c, int64_t need, int64_t keep)
{
    if (need <= c->cap) return 0;
    int64_t ncap = c->cap ? c->cap * 2 : 16;
    while (ncap < need) ncap *= 2;
    const int64_t B = c->B, W = c->W;
    int32_t *m = malloc((size_t)(B * ncap) * sizeof(int32_t));
    if (!m) return -1;
    for (int64_t b = 0; b < B && keep > 0; b++)
        memcpy(m + b * ncap, c->mask + b * c->cap, (size_t)keep * sizeof(int32_t));
    /* all layers are grown before any buffer is swapped, so that a failure changes nothing */
    float **nk = calloc((size_t)c->n_layers * 2 + 1, sizeof *nk);
    if (!nk) { free(m); return -1; }
    int ok = 1;
    for (int l = 0; l < c->n_layers && ok; l++) {
        nk[2 * l] = regrow(c->k[l], B, c->cap, ncap, W, keep);
        nk[2 * l + 1] = nk[2 * l] ? regrow(c->v[l], B, c->cap, ncap, W, keep) : NULL;
        ok = nk[2 * l + 1] != NULL;
    }
    if (!ok) {
        for (int i = 0; i < c->n_layers * 2; i++) free(nk[i]);
        free(nk);
        free(m);
        return -1;
    }
    for (int l = 0; l < c->n_layers; l++) {
        free(c->k[l]);
        free(c->v[l]);
        c->k[l] = nk[2 * l];
        c->v[l] = nk[2 * l + 1];
    }
    free(nk);
    free(c->mask);
    c->mask = m;
    c->cap = ncap;
    return 0;
}

/* an empty cache takes the shape of the model that fills it */
static int shape(peft_kv_cache *c, int n_layers, int64_t W)
{
    if (c->n_layers == n_layers && c->W == W && c->k) return 0;
    free_all(c);
    c->k = calloc((size_t)(n_layers ? n_layers : 1), sizeof *c->k);
    c->v = calloc((size_t)(n_layers ? n_layers : 1), sizeof *c->v);
    c->has_prefix = calloc((size_t)(n_layers ? n_layers : 1), 1);
    if (!c->k || !c->v || !c->has_prefix) {
        free(c->k);
        free(c->v);
        free(c->has_prefix);
        c->k = c->v = NULL;
        c->has_prefix = NULL;
        return -1;
    }
    c->n_layers = n_layers;
    c->W = W;
    return 0;
}

int kv_cache_begin(peft_kv_cache *c, int n_layers, int64_t W, int64_t B, int64_t n_prefix,
                   int64_t Tn, const int32_t *mask, const char *name, char *err, size_t errlen)
{
    if (n_layers < 0 || W <= 0 || Tn <= 0 || n_prefix < 0) {
        snprintf(err, errlen, "%s: KV cache: bad layout (%d layers, width %lld, %lld new tokens, "
                 "%lld prefix entries)", name, n_layers, (long long)W, (long long)Tn,
                 (long long)n_prefix);
        return -1;
    }
    if (B != c->B) {
        snprintf(err, errlen, "%s: the KV cache was made for batches of %lld rows, the input has "
                 "%lld", name, (long long)c->B, (long long)B);
        return -1;
    }
    c->pending = 0;
    c->cross_pending = 0;
    if (c->len == 0) {
        c->cross_ready = 0;
        if (shape(c, n_layers, W)) goto oom;
        memset(c->has_prefix, 0, (size_t)(n_layers ? n_layers : 1));
        c->n_prefix = n_prefix;
        c->base = n_prefix;
    } else {
        if (c->n_layers != n_layers || c->W != W) {
            snprintf(err, errlen, "%s: the KV cache holds %d layers of width %lld, this model has %d "
                     "of width %lld (reset the cache for another model)", name, c->n_layers,
                     (long long)c->W, n_layers, (long long)W);
            return -1;
        }
        if (n_prefix) {
            snprintf(err, errlen, "%s: KV cache: a prefix can only be added to an empty cache", name);
            return -1;
        }
        c->base = c->len;
    }
    if (reserve(c, c->base + Tn, c->len)) goto oom;
    for (int64_t b = 0; b < B; b++) {
        int32_t *mr = c->mask + b * c->cap;
        if (c->len == 0)
            for (int64_t t = 0; t < n_prefix; t++) mr[t] = 1;
        for (int64_t t = 0; t < Tn; t++) mr[c->base + t] = mask ? mask[b * Tn + t] : 1;
    }
    c->Tn = Tn;
    c->pending = 1;
    return 0;
oom:
    snprintf(err, errlen, "%s: KV cache: out of memory (%d layers, %lld rows, width %lld)", name,
             n_layers, (long long)B, (long long)W);
    return -1;
}

static int is3(const peft_tensor *t, int64_t a, int64_t b, int64_t c)
{
    return t && t->dtype == PEFT_DTYPE_F32 && t->ndim == 3 && t->shape[0] == a &&
           t->shape[1] == b && t->shape[2] == c;
}

int kv_cache_put_prefix(peft_kv_cache *c, int layer, const peft_tensor *pk, const peft_tensor *pv)
{
    const int64_t P = c->n_prefix, W = c->W;
    if (!c->pending || c->len != 0 || layer < 0 || layer >= c->n_layers || P == 0 ||
        !is3(pk, c->B, P, W) || !is3(pv, c->B, P, W))
        return -1;
    for (int64_t b = 0; b < c->B; b++) {
        memcpy(c->k[layer] + b * c->cap * W, peft_f32(pk) + b * P * W, (size_t)(P * W) * 4);
        memcpy(c->v[layer] + b * c->cap * W, peft_f32(pv) + b * P * W, (size_t)(P * W) * 4);
    }
    c->has_prefix[layer] = 1;
    return 0;
}

int64_t kv_cache_keys(const peft_kv_cache *c, int layer)
{
    const int64_t start = layer >= 0 && layer < c->n_layers && c->has_prefix[layer] ? 0 : c->n_prefix;
    return c->base + c->Tn - start;
}

/* an arena header over borrowed memory (cache rows or a slice of an arena tensor) */
static peft_tensor *view3(peft_graph *g, float *data, int64_t a, int64_t b, int64_t w)
{
    peft_tensor *t = peft_arena_alloc(g->arena, sizeof *t);
    if (!t) return NULL;
    memset(t, 0, sizeof *t);
    t->dtype = PEFT_DTYPE_F32;
    t->ndim = 3;
    t->shape[0] = a;
    t->shape[1] = b;
    t->shape[2] = w;
    for (int i = 3; i < PEFT_MAX_DIMS; i++) t->shape[i] = 1;
    t->numel = a * b * w;
    t->data = data;
    t->flags = PEFT_T_ARENA;
    return t;
}

// q (B,Tn,H*D), k, v (B,Tn,W) new; cache (B,cap,W) per layer; bias (H,Tn,S) or NULL
//   -> out (B,Tn,H*D): each row's queries over its keys [start, base + Tn)
peft_tensor *kv_cache_attend(peft_graph *g, peft_kv_cache *c, int layer, peft_tensor *q,
                             peft_tensor *k, peft_tensor *v, int H, int Hkv, float scale,
                             int causal, peft_tensor *bias)
{
    const peft_attn_opts o = {.causal = causal, .bias = bias};
    return kv_cache_attend_opt(g, c, layer, q, k, v, H, Hkv, scale, &o);
}

// q (B,Tn,H*D), k, v (B,Tn,W) new; cache (B,cap,W) per layer; opts->bias (H,Tn,S) or NULL
//   -> out (B,Tn,H*D)
peft_tensor *kv_cache_attend_opt(peft_graph *g, peft_kv_cache *c, int layer, peft_tensor *q,
                                 peft_tensor *k, peft_tensor *v, int H, int Hkv, float scale,
                                 const peft_attn_opts *opts)
{
    peft_tensor *bias = opts ? opts->bias : NULL;
    const int64_t B = c->B, Tn = c->Tn, W = c->W, cap = c->cap;
    if (!c->pending || layer < 0 || layer >= c->n_layers || !is3(k, B, Tn, W) || !is3(v, B, Tn, W) ||
        !q || q->ndim != 3 || q->shape[0] != B || q->shape[1] != Tn)
        return NULL;
    if (g->recording && (q->requires_grad || k->requires_grad || v->requires_grad ||
                         (bias && bias->requires_grad)))
        return NULL; /* the cache holds copies: no gradient could reach k and v */
    const int64_t HD = q->shape[2], start = c->has_prefix[layer] ? 0 : c->n_prefix;
    const int64_t S = c->base + Tn - start;
    float *kc = c->k[layer], *vc = c->v[layer];
    for (int64_t b = 0; b < B; b++) {
        memcpy(kc + (b * cap + c->base) * W, peft_f32(k) + b * Tn * W, (size_t)(Tn * W) * 4);
        memcpy(vc + (b * cap + c->base) * W, peft_f32(v) + b * Tn * W, (size_t)(Tn * W) * 4);
    }
    peft_tensor *out = peft_graph_tensor_raw(g, PEFT_DTYPE_F32, 3, q->shape);
    if (!out) return NULL;
    for (int64_t b = 0; b < B; b++) {
        peft_tensor *qb = view3(g, peft_f32(q) + b * Tn * HD, 1, Tn, HD);
        peft_tensor *kb = view3(g, kc + (b * cap + start) * W, 1, S, W);
        peft_tensor *vb = view3(g, vc + (b * cap + start) * W, 1, S, W);
        if (!qb || !kb || !vb) return NULL;
        peft_attn_opts o = opts ? *opts : (peft_attn_opts){0};
        o.key_mask = c->mask + b * cap + start; /* the window counts cache entries, as HF */
        peft_tensor *ob = op_attention_opt(g, qb, kb, vb, H, Hkv, scale, &o);
        if (!ob) return NULL;
        memcpy(peft_f32(out) + b * Tn * HD, peft_f32(ob), (size_t)(Tn * HD) * 4);
    }
    return out;
}

int kv_cache_begin_cross(peft_kv_cache *c, int64_t Te, int64_t Wc, const int32_t *enc_mask)
{
    if (!c->pending || Te <= 0 || Wc <= 0) return -1;
    free_layers(c->ck, c->n_layers);
    free_layers(c->cv, c->n_layers);
    free(c->enc_mask);
    c->enc_mask = NULL;
    c->ck = calloc((size_t)(c->n_layers ? c->n_layers : 1), sizeof *c->ck);
    c->cv = calloc((size_t)(c->n_layers ? c->n_layers : 1), sizeof *c->cv);
    if (!c->ck || !c->cv) goto oom;
    for (int l = 0; l < c->n_layers; l++) {
        c->ck[l] = malloc((size_t)(c->B * Te * Wc) * sizeof(float));
        c->cv[l] = malloc((size_t)(c->B * Te * Wc) * sizeof(float));
        if (!c->ck[l] || !c->cv[l]) goto oom;
    }
    if (enc_mask) {
        if (!(c->enc_mask = malloc((size_t)(c->B * Te) * sizeof(int32_t)))) goto oom;
        memcpy(c->enc_mask, enc_mask, (size_t)(c->B * Te) * sizeof(int32_t));
    }
    c->Te = Te;
    c->Wc = Wc;
    c->cross_pending = 1;
    return 0;
oom:
    free_cross(c);
    return -1;
}

int kv_cache_put_cross(peft_kv_cache *c, int layer, const peft_tensor *ck, const peft_tensor *cv)
{
    if (!c->cross_pending || layer < 0 || layer >= c->n_layers || !is3(ck, c->B, c->Te, c->Wc) ||
        !is3(cv, c->B, c->Te, c->Wc))
        return -1;
    memcpy(c->ck[layer], ck->data, (size_t)ck->numel * sizeof(float));
    memcpy(c->cv[layer], cv->data, (size_t)cv->numel * sizeof(float));
    return 0;
}

int kv_cache_cross(peft_graph *g, peft_kv_cache *c, int layer, peft_tensor **ck, peft_tensor **cv)
{
    if (!c->cross_ready || layer < 0 || layer >= c->n_layers) return -1;
    *ck = view3(g, c->ck[layer], c->B, c->Te, c->Wc);
    *cv = view3(g, c->cv[layer], c->B, c->Te, c->Wc);
    return *ck && *cv ? 0 : -1;
}

void kv_cache_commit(peft_kv_cache *c)
{
    if (!c->pending) return;
    c->len = c->base + c->Tn;
    c->Tn = 0;
    c->pending = 0;
    if (c->cross_pending) c->cross_ready = 1;
    c->cross_pending = 0;
}
