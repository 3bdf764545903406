/* decoder.c — the head choice, prompt-learning plumbing, pooling and losses shared by the
 * decoder-only architectures GPT-2 and LLaMA (see decoder.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/models/decoder.h"
#include "core/ops/ops.h"
#include "peft/warn.h"

static int present(const peft_base_model *m, const char *key)
{
    json_t *v = json_object_get(m->config, key);
    return v && !json_is_null(v);
}

int dec_head_read(const peft_base_model *m, const char *class_name, const char *lm_class,
                  const char *cls_class, dec_head *h, char *err, size_t errlen)
{
    memset(h, 0, sizeof *h);
    const char *want = class_name;
    if (!want) {
        json_t *a = json_object_get(m->config, "architectures");
        if (a && !json_is_null(a)) {
            if (!json_is_array(a) || json_array_size(a) == 0 ||
                !json_is_string(json_array_get(a, 0))) {
                snprintf(err, errlen, "%s/config.json: field \"architectures\" must be a non-empty "
                         "list of class names", m->dir);
                return -1;
            }
            want = json_string_value(json_array_get(a, 0));
        }
    }
    if (!want || strcmp(want, lm_class) == 0) {
        h->class_name = lm_class;
        return 0;
    }
    if (strcmp(want, cls_class) != 0) {
        snprintf(err, errlen, "%s/config.json: architectures[0] \"%s\" is unsupported (supported: "
                 "%s, %s)", m->dir, want, lm_class, cls_class);
        return -1;
    }
    h->class_name = cls_class;
    h->seq_cls = 1;

    /* transformers' PretrainedConfig: id2label wins; else num_labels (default 2) */
    json_t *id2label = json_object_get(m->config, "id2label");
    if (id2label && !json_is_null(id2label)) {
        if (!json_is_object(id2label)) {
            snprintf(err, errlen, "%s/config.json: field \"id2label\" must be an object {\"0\": "
                     "\"LABEL_0\", ...}", m->dir);
            return -1;
        }
        h->num_labels = (int64_t)json_object_size(id2label);
    } else if (peft_config_int_buf(m, "num_labels", 1, 2, &h->num_labels, err, errlen)) {
        return -1;
    }
    if (h->num_labels < 1) {
        snprintf(err, errlen, "%s/config.json: %s needs at least one label (id2label / num_labels "
                 "gives %lld)", m->dir, cls_class, (long long)h->num_labels);
        return -1;
    }
    if (present(m, "pad_token_id")) {
        if (peft_config_int_buf(m, "pad_token_id", 0, 0, &h->pad_id, err, errlen)) return -1;
        h->has_pad = 1;
    }
    if (present(m, "problem_type")) {
        if (peft_config_str_buf(m, "problem_type", NULL, &h->problem_type, err, errlen)) return -1;
        if (strcmp(h->problem_type, "regression") && strcmp(h->problem_type, "single_label_classification") &&
            strcmp(h->problem_type, "multi_label_classification")) {
            snprintf(err, errlen, "%s/config.json: problem_type \"%s\" is not one of regression, "
                     "single_label_classification, multi_label_classification", m->dir,
                     h->problem_type);
            return -1;
        }
    }
    return 0;
}

/* ---- the step's layout ---------------------------------------------------------------------- */

static int32_t *arena_i32(peft_graph *g, int64_t B, int64_t T)
{
    peft_tensor *t = peft_graph_tensor_raw(g, PEFT_DTYPE_I32, 2, (int64_t[]){B, T});
    return t ? t->data : NULL;
}

static int check_inputs(const dec_head *h, const peft_model_inputs *in, int64_t V,
                        const char *name, char *err, size_t errlen)
{
    if (!in || !in->input_ids || in->B <= 0 || in->T <= 0) {
        snprintf(err, errlen, "%s: inputs need input_ids with B > 0 and T > 0", name);
        return -1;
    }
    /* inputs a decoder-only model does not take: refused, never silently ignored */
    if (in->token_type_ids && !h->token_types) {
        snprintf(err, errlen, "%s: %s takes no token_type_ids (transformers: forward() got an "
                 "unexpected keyword argument 'token_type_ids')", name, h->class_name);
        return -1;
    }
    for (int64_t i = 0; in->token_type_ids && i < in->B * in->T; i++) {
        int32_t id = in->token_type_ids[i];
        if (id < 0 || id >= V) { /* looked up in the token embedding, as transformers' GPT-2 does */
            snprintf(err, errlen, "%s: token_type_ids[%lld][%lld] = %d is outside the vocabulary "
                     "[0, %lld) (%s looks token types up in its token embedding)", name,
                     (long long)(i / in->T), (long long)(i % in->T), id, (long long)V,
                     h->class_name);
            return -1;
        }
    }
    const char *other = in->decoder_input_ids ? "decoder_input_ids"
                        : in->decoder_attention_mask ? "decoder_attention_mask"
                        : in->start_positions ? "start_positions"
                        : in->end_positions ? "end_positions" : NULL;
    if (other) {
        snprintf(err, errlen, "%s: %s takes no %s (an input of encoder-decoder or question-"
                 "answering models)", name, h->class_name, other);
        return -1;
    }
    for (int64_t i = 0; i < in->B * in->T; i++) {
        int32_t id = in->input_ids[i];
        if (id < 0 || id >= V) {
            snprintf(err, errlen, "%s: input_ids[%lld][%lld] = %d is outside the vocabulary "
                     "[0, %lld)", name, (long long)(i / in->T), (long long)(i % in->T), id,
                     (long long)V);
            return -1;
        }
    }
    if (!in->labels) return 0;
    if (h->seq_cls) {
        if (in->labels_len != 1) {
            snprintf(err, errlen, "%s: %s takes one label per example (labels (B), labels_len 1), "
                     "got labels_len %lld", name, h->class_name, (long long)in->labels_len);
            return -1;
        }
        return 0; /* the range depends on the loss; dec_cls_loss checks */
    }
    if (in->labels_len != 0 && in->labels_len != in->T) {
        snprintf(err, errlen, "%s: %s takes labels (B, T) like input_ids, got labels_len %lld "
                 "(T = %lld)", name, h->class_name, (long long)in->labels_len, (long long)in->T);
        return -1;
    }
    for (int64_t i = 0; i < in->B * in->T; i++) {
        int32_t l = in->labels[i];
        if (l != -100 && (l < 0 || l >= V)) {
            snprintf(err, errlen, "%s: labels[%lld][%lld] = %d is neither -100 nor in [0, %lld)",
                     name, (long long)(i / in->T), (long long)(i % in->T), l, (long long)V);
            return -1;
        }
    }
    return 0;
}

/* s's sizes: B, T, the virtual tokens in front (Pp) or as a layer prefix (Px), Tq and past,
 * from the prompt hooks and the KV cache (which must agree). 0 or -1 with err */
static int seq_sizes(const peft_base_model *m, const peft_graph *g, const peft_model_inputs *in,
                     const char *name, dec_seq *s, char *err, size_t errlen)
{
    const peft_prompt_hooks *p = m->prompt;
    const int prompt_on = p && (p->virtual_tokens || p->layer_prefix);
    peft_kv_cache *c = in->cache;
    s->B = in->B;
    s->T = in->T;
    s->cache = c;
    if (prompt_on && p->n_virtual <= 0) {
        snprintf(err, errlen, "%s: the prompt-learning hooks give %lld virtual tokens (need > 0)",
                 name, (long long)p->n_virtual);
        return -1;
    }
    if (c && g->recording) {
        snprintf(err, errlen, "%s: a forward with a KV cache runs without the tape (set "
                 "g->recording = 0)", name);
        return -1;
    }
    const int cont = c && c->len > 0; /* the prompt (and any prefix) are in the cache */
    if (cont) {
        const int64_t want = p && p->layer_prefix ? p->n_virtual : 0;
        if (c->n_prefix != want) {
            snprintf(err, errlen, "%s: the KV cache was filled with %lld prefix entries, the "
                     "active adapters give %lld (reset the cache when the adapter changes)",
                     name, (long long)c->n_prefix, (long long)want);
            return -1;
        }
    }
    s->Pp = !cont && p && p->virtual_tokens ? p->n_virtual : 0;
    s->Px = !cont && p && p->layer_prefix ? p->n_virtual : 0;
    s->Tq = s->Pp + s->T;
    s->past = cont && c ? c->len : s->Px;
    return 0;
}

/* s's token types and attention masks (B, Tq) (and (B, Px + Tq) for a layer prefix), over
 * the virtual tokens too. 0 or -1 out of memory */
static int seq_types_masks(peft_graph *g, const peft_model_inputs *in, const dec_head *h, int prompt_on,
                           dec_seq *s)
{
    const int64_t B = s->B, T = s->T, Tq = s->Tq, Pp = s->Pp, Px = s->Px;
    if (in->token_type_ids && prompt_on && !h->seq_cls) {
        /* PeftModelForCausalLM.forward, prompt learning: warns and sets them to None */
        peft_warn("Token type ids are not supported for parameter efficient tuning. Ignoring "
                  "token type ids");
    } else if (in->token_type_ids) {
        /* PeftModelForSequenceClassification: P zeros in front for the virtual tokens (prompt
         * tuning); prefix tuning passes them as given */
        if (!(s->tt = arena_i32(g, B, Tq))) return -1;
        for (int64_t b = 0; b < B; b++)
            for (int64_t t = 0; t < Tq; t++)
                s->tt[b * Tq + t] = t < Pp ? 0 : in->token_type_ids[b * T + t - Pp];
    }
    if (in->attention_mask) {
        if (!(s->mask = arena_i32(g, B, Tq))) return -1;
        for (int64_t b = 0; b < B; b++)
            for (int64_t t = 0; t < Tq; t++)
                s->mask[b * Tq + t] = t < Pp ? 1 : in->attention_mask[b * T + t - Pp];
        if (Px && !s->cache) {
            if (!(s->mask_px = arena_i32(g, B, Px + Tq))) return -1;
            for (int64_t b = 0; b < B; b++)
                for (int64_t t = 0; t < Px + Tq; t++)
                    s->mask_px[b * (Px + Tq) + t] = t < Px ? 1 : s->mask[b * Tq + t - Px];
        }
    }
    return 0;
}

int dec_seq_begin(peft_base_model *m, peft_graph *g, const peft_model_inputs *in,
                  const dec_head *h, int64_t V, const char *name, dec_seq *s, char *err,
                  size_t errlen)
{
    memset(s, 0, sizeof *s);
    if (check_inputs(h, in, V, name, err, errlen) || seq_sizes(m, g, in, name, s, err, errlen)) return -1;
    const peft_prompt_hooks *p = m->prompt;
    const int prompt_on = p && (p->virtual_tokens || p->layer_prefix);
    const int64_t B = s->B, T = s->T, Tq = s->Tq;

    if (!(s->ids = arena_i32(g, B, T)) || !(s->pos = arena_i32(g, B, Tq))) goto oom;
    memcpy(s->ids, in->input_ids, (size_t)(B * T) * sizeof(int32_t));
    /* transformers 4.44 (GPT-2 and LLaMA): position_ids = arange(past, past + Tq) when not
     * given, even with an attention mask; past = the prefix (or cached) length */
    for (int64_t i = 0; i < B * Tq; i++) s->pos[i] = (int32_t)(s->past + i % Tq);
    if (in->position_ids && prompt_on) {
        peft_warn("position ids are not supported for parameter efficient tuning (PEFT "
                  "ignores them): positions run from the past length");
    } else if (in->position_ids) {
        for (int64_t i = 0; i < B * T; i++) {
            if (in->position_ids[i] < 0) {
                snprintf(err, errlen, "%s: position_ids[%lld][%lld] = %d is negative", name,
                         (long long)(i / T), (long long)(i % T), in->position_ids[i]);
                return -1;
            }
            s->pos[i] = in->position_ids[i]; /* Tq == T: no virtual tokens */
        }
    }
    if (seq_types_masks(g, in, h, prompt_on, s)) goto oom;
    return 0;
oom:
    snprintf(err, errlen, "%s: forward failed: out of memory in the step arena (B=%lld, T=%lld)",
             name, (long long)B, (long long)T);
    return -1;
}

int dec_cache_begin(const dec_seq *s, const dec_head *h, int n_layers, int64_t W,
                    const char *name, char *err, size_t errlen)
{
    if (!s->cache) return 0;
    if (h->seq_cls) {
        snprintf(err, errlen, "%s: %s has no use for a KV cache (it is for causal-LM generation)",
                 name, h->class_name);
        return -1;
    }
    return kv_cache_begin(s->cache, n_layers, W, s->B, s->Px, s->Tq, s->mask, name, err, errlen);
}

void dec_cache_commit(const dec_seq *s)
{
    if (s->cache) kv_cache_commit(s->cache);
}

static int shape3(const peft_tensor *t, int64_t a, int64_t b, int64_t c)
{
    return t && t->dtype == PEFT_DTYPE_F32 && t->ndim == 3 && t->shape[0] == a &&
           t->shape[1] == b && t->shape[2] == c;
}

static const char *shape_str(char *buf, size_t n, const peft_tensor *t)
{
    if (!t) { snprintf(buf, n, "NULL"); return buf; }
    size_t o = (size_t)snprintf(buf, n, "(");
    for (int i = 0; i < t->ndim && o < n; i++)
        o += (size_t)snprintf(buf + o, n - o, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
    if (o < n) snprintf(buf + o, n - o, ")");
    return buf;
}

// emb (B, T, C), prompts (B, Pp, C) -> (B, Pp + T, C)
peft_tensor *dec_prepend_prompt(peft_base_model *m, peft_graph *g, const dec_seq *s,
                                peft_tensor *emb, const char *name, char *err, size_t errlen)
{
    if (!s->Pp) return emb;
    const peft_prompt_hooks *p = m->prompt;
    const int64_t C = emb->shape[2];
    peft_tensor *pr = p->virtual_tokens(p->ud, g, s->B);
    if (!shape3(pr, s->B, s->Pp, C)) {
        char b[64];
        snprintf(err, errlen, "%s: the prompt-tuning hook returned virtual tokens of shape %s, "
                 "expected f32 (%lld, %lld, %lld)", name, shape_str(b, sizeof b, pr),
                 (long long)s->B, (long long)s->Pp, (long long)C);
        return NULL;
    }
    peft_tensor *h = op_concat_seq(g, pr, emb);
    if (!h) snprintf(err, errlen, "%s: forward failed: out of memory in the step arena", name);
    return h;
}

/* the hook's prefix of one layer, checked against (B, Px, W): 0 and *pk, *pv; 1 when the layer
 * has none; -1 with err */
static int layer_prefix(peft_base_model *m, peft_graph *g, const dec_seq *s, int layer, int64_t W,
                        peft_tensor **pk, peft_tensor **pv, const char *name, char *err,
                        size_t errlen)
{
    const peft_prompt_hooks *p = m->prompt;
    *pk = *pv = NULL;
    if (p->layer_prefix(p->ud, g, 0, layer, s->B, pk, pv) != 0) return 1; /* no prefix here */
    if (!shape3(*pk, s->B, s->Px, W) || !shape3(*pv, s->B, s->Px, W)) {
        char a[64], b[64];
        snprintf(err, errlen, "%s: the prefix-tuning hook gave layer %d keys %s and values %s, "
                 "expected f32 (%lld, %lld, %lld) each", name, layer, shape_str(a, sizeof a, *pk),
                 shape_str(b, sizeof b, *pv), (long long)s->B, (long long)s->Px, (long long)W);
        return -1;
    }
    return 0;
}

// k, v (B, Tq, W), prefix pk, pv (B, Px, W) -> (B, Px + Tq, W)
int dec_layer_prefix(peft_base_model *m, peft_graph *g, const dec_seq *s, int layer,
                     peft_tensor **k, peft_tensor **v, const int32_t **mask, const char *name,
                     char *err, size_t errlen)
{
    *mask = s->mask;
    if (!s->Px) return 0;
    peft_tensor *pk, *pv;
    int rc = layer_prefix(m, g, s, layer, (*k)->shape[2], &pk, &pv, name, err, errlen);
    if (rc) return rc < 0 ? -1 : 0;
    peft_tensor *kk = op_concat_seq(g, pk, *k);
    peft_tensor *vv = kk ? op_concat_seq(g, pv, *v) : NULL;
    if (!vv) {
        snprintf(err, errlen, "%s: forward failed: out of memory in the step arena", name);
        return -1;
    }
    *k = kk;
    *v = vv;
    *mask = s->mask_px;
    return 0;
}

// q (B, Tq, H*D), k, v (B, Tq, Hkv*D) [+ prefix or cached past (B, S - Tq, Hkv*D)]
//   -> (B, Tq, H*D)
peft_tensor *dec_attention_opt(peft_base_model *m, peft_graph *g, const dec_seq *s, int layer,
                               peft_tensor *q, peft_tensor *k, peft_tensor *v, int H, int Hkv,
                               float scale, int64_t window, float softcap, const char *name,
                               char *err, size_t errlen)
{
    peft_tensor *att;
    peft_attn_opts o = {.causal = 1, .window = window, .softcap = softcap};
    if (!s->cache) {
        const int32_t *mask;
        if (dec_layer_prefix(m, g, s, layer, &k, &v, &mask, name, err, errlen)) return NULL;
        o.key_mask = mask;
        att = op_attention_opt(g, q, k, v, H, Hkv, scale, &o);
    } else {
        if (s->Px) { /* first fill: the prefix becomes the cache's first Px entries */
            peft_tensor *pk, *pv;
            int rc = layer_prefix(m, g, s, layer, k->shape[2], &pk, &pv, name, err, errlen);
            if (rc < 0) return NULL;
            if (rc == 0 && kv_cache_put_prefix(s->cache, layer, pk, pv)) {
                snprintf(err, errlen, "%s: KV cache: layer %d's prefix does not fit the cache",
                         name, layer);
                return NULL;
            }
        }
        att = kv_cache_attend_opt(g, s->cache, layer, q, k, v, H, Hkv, scale, &o);
    }
    if (!att)
        snprintf(err, errlen, "%s: forward failed: out of memory in the step arena (attention "
                 "of layer %d)", name, layer);
    return att;
}

peft_tensor *dec_attention(peft_base_model *m, peft_graph *g, const dec_seq *s, int layer,
                           peft_tensor *q, peft_tensor *k, peft_tensor *v, int H, int Hkv,
                           float scale, const char *name, char *err, size_t errlen)
{
    return dec_attention_opt(m, g, s, layer, q, k, v, H, Hkv, scale, 0, 0.0f, name, err, errlen);
}

int dec_chunked_loss_ok_w(const peft_base_model *m, const peft_graph *g,
                          const peft_model_inputs *in, const peft_tensor *w)
{
    return m->chunked_loss && g->recording && in->labels && !in->cache && w &&
           !w->requires_grad && !m->row_adapter;
}

int dec_chunked_loss_ok(const peft_base_model *m, const peft_graph *g,
                        const peft_model_inputs *in, const peft_site *head)
{
    if (!head || !dec_chunked_loss_ok_w(m, g, in, head->info.weight) || head->info.fan_in_fan_out)
        return 0;
    for (int i = 0; i < head->n_chain; i++)
        if (head->chain[i].adapter->active && !head->chain[i].merged && !m->adapters_disabled)
            return 0;
    return 1;
}

/* (B, Tq) shifted targets: PEFT prepends Pp labels -100; HF shifts, row (b, t) predicts label
 * t + 1 */
static int32_t *shifted_targets(peft_graph *g, const dec_seq *s, const int32_t *labels)
{
    const int64_t B = s->B, T = s->T, Tq = s->Tq, Pp = s->Pp;
    int32_t *tgt = arena_i32(g, B, Tq);
    if (!tgt) return NULL;
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < Tq; t++) {
            int64_t j = t + 1 - Pp; /* index of label t + 1 in the caller's (B, T) labels */
            tgt[b * Tq + t] = t + 1 < Tq && j >= 0 ? labels[b * T + j] : -100;
        }
    return tgt;
}

// h (B, Tq, C), w (V, C), labels (B, T) -> scalar
peft_tensor *dec_lm_loss_chunked(peft_graph *g, const dec_seq *s, peft_tensor *h, peft_tensor *w,
                                 const int32_t *labels)
{
    int32_t *tgt = shifted_targets(g, s, labels);
    return tgt ? op_linear_cross_entropy(g, h, w, tgt, -100) : NULL;
}

// logits (B, Tq, V), labels (B, T) -> scalar
peft_tensor *dec_lm_loss(peft_graph *g, const dec_seq *s, peft_tensor *logits,
                         const int32_t *labels)
{
    int32_t *tgt = shifted_targets(g, s, labels);
    return tgt ? op_cross_entropy(g, logits, tgt, -100) : NULL; /* (B*Tq, V) rows */
}

int dec_pool_index(const dec_head *h, const dec_seq *s, int32_t *idx, const char *name,
                   char *err, size_t errlen)
{
    if (!h->has_pad && s->B != 1) {
        snprintf(err, errlen, "%s: %s cannot handle batch sizes > 1 if no padding token is "
                 "defined (config.json pad_token_id)", name, h->class_name);
        return -1;
    }
    for (int64_t b = 0; b < s->B; b++) {
        if (!h->has_pad || s->Pp) { /* HF: sequence_lengths = -1 */
            idx[b] = (int32_t)(s->Tq - 1);
            continue;
        }
        int64_t first = 0; /* argmax of (ids == pad): the first pad, 0 when there is none */
        for (int64_t t = 0; t < s->T; t++)
            if (s->ids[b * s->T + t] == h->pad_id) { first = t; break; }
        idx[b] = (int32_t)(((first - 1) % s->T + s->T) % s->T);
    }
    return 0;
}

// pooled (B, L), labels (B) -> scalar
int dec_cls_loss(peft_graph *g, const dec_head *h, peft_tensor *pooled, const int32_t *labels,
                 int64_t B, peft_tensor **loss, const char *name, char *err, size_t errlen)
{
    const int64_t L = h->num_labels;
    const char *pt = h->problem_type ? h->problem_type
                     : L == 1       ? "regression"
                                    : "single_label_classification";
    *loss = NULL;
    if (!strcmp(pt, "multi_label_classification") || (!strcmp(pt, "regression") && L != 1)) {
        snprintf(err, errlen, "%s: problem_type %s with num_labels %lld needs float labels (B, %lld); "
                 "only integer labels (B) are supported", name, pt, (long long)L, (long long)L);
        return -1;
    }
    if (!strcmp(pt, "regression")) {
        peft_tensor *t = peft_graph_tensor_raw(g, PEFT_DTYPE_F32, 1, (int64_t[]){B});
        if (!t) goto oom;
        float *tf = t->data;
        for (int64_t b = 0; b < B; b++) tf[b] = (float)labels[b];
        if (!(*loss = op_mse(g, pooled, tf))) goto oom;
        return 0;
    }
    for (int64_t b = 0; b < B; b++)
        if (labels[b] != -100 && (labels[b] < 0 || labels[b] >= L)) {
            snprintf(err, errlen, "%s: labels[%lld] = %d is neither -100 nor a class in [0, %lld)",
                     name, (long long)b, labels[b], (long long)L);
            return -1;
        }
    int32_t *tgt = arena_i32(g, B, 1); /* the op keeps the pointer until backward */
    if (!tgt) goto oom;
    memcpy(tgt, labels, (size_t)B * sizeof(int32_t));
    if (!(*loss = op_cross_entropy(g, pooled, tgt, -100))) goto oom;
    return 0;
oom:
    snprintf(err, errlen, "%s: forward failed: out of memory in the step arena", name);
    return -1;
}
