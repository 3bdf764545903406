/* bert.c — BERT (Hugging Face transformers 4.44 BertModel) as a libpeft architecture: config,
 * weights, embeddings and the encoder, forward-only over core/ops.h. The four task classes
 * (BertModel, BertForSequenceClassification, BertForTokenClassification,
 * BertForQuestionAnswering) differ only in their head: core/models/bert_heads.c.
 *
 * Parameters keep HF names: "bert.embeddings.word_embeddings.weight",
 * "bert.encoder.layer.{i}.attention.self.query.weight", ..., "classifier.weight",
 * "qa_outputs.weight"; a plain BertModel has no "bert." prefix. Either checkpoint layout loads
 * under either class (the other spelling is the fallback name). Every nn.Linear is a linear site:
 * query, key, value, attention.output.dense, intermediate.dense, output.dense (layer index i),
 * pooler.dense, classifier and qa_outputs (-1).
 *
 *   ids (B,T) -> e = word[ids] + type[token_type_ids] + pos[past..past+T-1]      (B,T,C)
 *                h = dropout(LayerNorm(e))
 *   per layer:   a = attn(query(h), key(h), value(h), key mask)    H heads, 1/sqrt(D), no causal
 *                h = LayerNorm(h + dropout(attention.output.dense(a)))
 *                h = LayerNorm(h + dropout(output.dense(act(intermediate.dense(h)))))
 *   head:        bert_heads.c
 *
 * Prompt learning (model.h peft_prompt_hooks, PEFT 0.13.2): prompt tuning prepends the (B,P,C)
 * virtual tokens to the word embeddings before the type and position embeddings are added
 * (PEFT passes cat(prompts, word_embeddings(ids)) as inputs_embeds): token types get P leading
 * zeros, the mask P leading ones, positions run 0..P+T-1 and the outputs cover P+T positions.
 * Prefix tuning prepends each layer's (B,P,C) keys and values (a legacy "past"), the key mask
 * gets P leading ones and positions shift to P..P+T-1.
 *
 * Not implemented: attention-probability dropout (attention_probs_dropout_prob is read and
 * checked but not applied; hidden and classifier dropout are), relative position embeddings,
 * BERT as a decoder / with cross-attention (refused with an error).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "bert.h"
#include "core/model/site.h"
#include "core/ops/ops.h"

static const struct {
    const char *class_name, *task_type;
    bert_head head;
} CLASSES[] = {
    {"BertModel", "FEATURE_EXTRACTION", BERT_HEAD_NONE},
    {"BertForSequenceClassification", "SEQ_CLS", BERT_HEAD_SEQCLS},
    {"BertForTokenClassification", "TOKEN_CLS", BERT_HEAD_TOKCLS},
    {"BertForQuestionAnswering", "QUESTION_ANS", BERT_HEAD_QA},
};
#define N_CLASSES (sizeof CLASSES / sizeof CLASSES[0])
#define CLASS_LIST "BertModel, BertForSequenceClassification, BertForTokenClassification, " \
                   "BertForQuestionAnswering"

/* ---- config.json ------------------------------------------------------------------------- */

static int pick_class(const peft_base_model *m, const char *class_name, bert_dims *d, char *err,
                      size_t errlen)
{
    const char *cls = class_name;
    if (!cls) {
        json_t *a = json_object_get(m->config, "architectures");
        if (!a || json_is_null(a)) {
            cls = "BertModel";
        } else if (!json_is_array(a) || json_array_size(a) == 0 ||
                   !json_is_string(json_array_get(a, 0))) {
            snprintf(err, errlen, "%s/config.json: field \"architectures\" must be a non-empty "
                     "list of class names", m->dir);
            return -1;
        } else {
            cls = json_string_value(json_array_get(a, 0));
        }
    }
    for (size_t i = 0; i < N_CLASSES; i++)
        if (!strcmp(cls, CLASSES[i].class_name)) {
            d->head = CLASSES[i].head;
            d->class_name = CLASSES[i].class_name;
            d->task_type = CLASSES[i].task_type;
            return 0;
        }
    snprintf(err, errlen, "%s/config.json: %s \"%s\" is not a supported BERT class (supported: "
             CLASS_LIST ")", m->dir, class_name ? "class" : "architectures[0]", cls);
    return -1;
}

static int read_prob(const peft_base_model *m, const char *key, double def, float *out,
                     char *err, size_t errlen)
{
    double p;
    if (peft_config_real_buf(m, key, 1, def, &p, err, errlen)) return -1;
    if (!(p >= 0 && p < 1)) {
        snprintf(err, errlen, "%s/config.json: %s (%g) must be in [0, 1)", m->dir, key, p);
        return -1;
    }
    *out = (float)p;
    return 0;
}

/* HF: num_labels = len(id2label) (config.json stores id2label), default 2 */
static int read_num_labels(const peft_base_model *m, bert_dims *d, char *err, size_t errlen)
{
    json_t *id2label = json_object_get(m->config, "id2label");
    if (id2label && !json_is_null(id2label)) {
        if (!json_is_object(id2label)) {
            snprintf(err, errlen, "%s/config.json: field \"id2label\" must be an object", m->dir);
            return -1;
        }
        d->num_labels = (int64_t)json_object_size(id2label);
    } else if (peft_config_int_buf(m, "num_labels", 1, 2, &d->num_labels, err, errlen)) {
        return -1;
    }
    if (d->num_labels < 1) {
        snprintf(err, errlen, "%s/config.json: the number of labels (%lld, from id2label or "
                 "num_labels) must be at least 1", m->dir, (long long)d->num_labels);
        return -1;
    }
    if (d->head == BERT_HEAD_QA && d->num_labels != 2) {
        snprintf(err, errlen, "%s/config.json: BertForQuestionAnswering needs 2 labels (start, "
                 "end), id2label/num_labels gives %lld", m->dir, (long long)d->num_labels);
        return -1;
    }
    const char *pt;
    if (peft_config_str_buf(m, "problem_type", "", &pt, err, errlen)) return -1;
    if (!*pt) d->problem = d->num_labels == 1 ? BERT_REGRESSION : BERT_SINGLE_LABEL;
    else if (!strcmp(pt, "single_label_classification")) d->problem = BERT_SINGLE_LABEL;
    else if (!strcmp(pt, "regression")) d->problem = BERT_REGRESSION;
    else if (!strcmp(pt, "multi_label_classification")) d->problem = BERT_MULTI_LABEL;
    else {
        snprintf(err, errlen, "%s/config.json: problem_type \"%s\" is unknown (expected "
                 "single_label_classification, regression or multi_label_classification)",
                 m->dir, pt);
        return -1;
    }
    return 0;
}

int bert_read_config(const peft_base_model *m, const char *class_name, bert_dims *d, char *err,
                     size_t errlen)
{
    memset(d, 0, sizeof *d);
    if (pick_class(m, class_name, d, err, errlen)) return -1;
    if (peft_config_int_buf(m, "hidden_size", 1, 768, &d->C, err, errlen) ||
        peft_config_int_buf(m, "num_attention_heads", 1, 12, &d->H, err, errlen) ||
        peft_config_layers(m, "num_hidden_layers", 1, 12, &d->L, err, errlen) ||
        peft_config_int_buf(m, "intermediate_size", 1, 3072, &d->I, err, errlen) ||
        peft_config_int_buf(m, "vocab_size", 1, 30522, &d->V, err, errlen) ||
        peft_config_int_buf(m, "max_position_embeddings", 1, 512, &d->P, err, errlen) ||
        peft_config_int_buf(m, "type_vocab_size", 1, 2, &d->TV, err, errlen) ||
        peft_config_real_buf(m, "layer_norm_eps", 1, 1e-12, &d->eps, err, errlen))
        return -1;
    if (d->C <= 0 || d->H <= 0 || d->I <= 0 || d->V <= 0 || d->P <= 0 || d->TV <= 0 || d->L < 0) {
        snprintf(err, errlen, "%s/config.json: hidden_size (%lld), num_attention_heads (%lld), "
                 "intermediate_size (%lld), vocab_size (%lld), max_position_embeddings (%lld) and "
                 "type_vocab_size (%lld) must be positive, num_hidden_layers (%lld) non-negative",
                 m->dir, (long long)d->C, (long long)d->H, (long long)d->I, (long long)d->V,
                 (long long)d->P, (long long)d->TV, (long long)d->L);
        return -1;
    }
    if (d->C % d->H) {
        snprintf(err, errlen, "%s/config.json: hidden_size (%lld) is not a multiple of "
                 "num_attention_heads (%lld)", m->dir, (long long)d->C, (long long)d->H);
        return -1;
    }
    if (!(d->eps > 0)) {
        snprintf(err, errlen, "%s/config.json: layer_norm_eps (%g) must be positive", m->dir, d->eps);
        return -1;
    }

    const char *act, *pet;
    if (peft_config_str_buf(m, "hidden_act", "gelu", &act, err, errlen) ||
        peft_config_str_buf(m, "position_embedding_type", "absolute", &pet, err, errlen))
        return -1;
    if (!strcmp(act, "gelu")) d->act = BERT_ACT_GELU;
    else if (!strcmp(act, "gelu_new") || !strcmp(act, "gelu_pytorch_tanh")) d->act = BERT_ACT_GELU_TANH;
    else if (!strcmp(act, "relu")) d->act = BERT_ACT_RELU;
    else {
        snprintf(err, errlen, "%s/config.json: hidden_act \"%s\" is unsupported (supported: gelu, "
                 "gelu_new, gelu_pytorch_tanh, relu)", m->dir, act);
        return -1;
    }
    if (strcmp(pet, "absolute") != 0) {
        snprintf(err, errlen, "%s/config.json: position_embedding_type \"%s\" is unsupported (only "
                 "\"absolute\")", m->dir, pet);
        return -1;
    }
    int is_decoder, cross;
    if (peft_config_bool_buf(m, "is_decoder", 1, 0, &is_decoder, err, errlen) ||
        peft_config_bool_buf(m, "add_cross_attention", 1, 0, &cross, err, errlen))
        return -1;
    if (is_decoder || cross) {
        snprintf(err, errlen, "%s/config.json: %s = true is unsupported (BERT runs as an encoder "
                 "only)", m->dir, is_decoder ? "is_decoder" : "add_cross_attention");
        return -1;
    }

    float attn_pdrop;
    if (read_prob(m, "hidden_dropout_prob", 0.1, &d->hidden_pdrop, err, errlen) ||
        read_prob(m, "attention_probs_dropout_prob", 0.1, &attn_pdrop, err, errlen) ||
        read_prob(m, "classifier_dropout", d->hidden_pdrop, &d->cls_pdrop, err, errlen))
        return -1;
    return read_num_labels(m, d, err, errlen);
}

/* ---- weights ------------------------------------------------------------------------------- */

/* "<prefix><rest>" with the other spelling ("bert." added or dropped) as the fallback */
static peft_tensor *take(peft_base_model *m, const char *prefix, const char *rest, int ndim,
                         int64_t d0, int64_t d1, char *err, size_t errlen)
{
    char name[256], alt[256];
    int64_t shape[2] = {d0, d1};
    if (snprintf(name, sizeof name, "%s%s", prefix, rest) >= (int)sizeof name ||
        snprintf(alt, sizeof alt, "%s%s", *prefix ? "" : "bert.", rest) >= (int)sizeof alt) {
        snprintf(err, errlen, "%s: parameter name %s%s too long", m->dir, prefix, rest);
        return NULL;
    }
    return peft_model_take_weight(m, name, alt, ndim, shape, err, errlen);
}

/* an nn.Linear site "<prefix><module>": weight (out, in), bias (out) */
static peft_site *take_linear(peft_base_model *m, const char *prefix, const char *module,
                              int64_t in, int64_t out, int layer, char *err, size_t errlen)
{
    char n[256];
    snprintf(n, sizeof n, "%s.weight", module);
    peft_tensor *w = take(m, prefix, n, 2, out, in, err, errlen);
    if (!w) return NULL;
    snprintf(n, sizeof n, "%s.bias", module);
    peft_tensor *b = take(m, prefix, n, 1, out, 0, err, errlen);
    if (!b) return NULL;
    snprintf(n, sizeof n, "%s%s", prefix, module);
    peft_site *s = peft_model_add_site(m, n, PEFT_SITE_LINEAR, w, b, layer);
    if (!s) snprintf(err, errlen, "%s: cannot register site %s (out of memory)", m->dir, n);
    return s;
}

static void bert_free_state(void *p)
{
    bert_state *s = p;
    if (!s) return;
    free(s->layers);
    free(s);
}

/* encoder layer li's sites and norms (HF named_parameters() order; pre: "bert." under a head).
 * 0 or -1 with err */
static int build_layer(peft_base_model *m, bert_state *s, const char *pre, int li, char *err, size_t errlen)
{
    const bert_dims *d = &s->d;
    const int64_t C = d->C, I = d->I;
    bert_layer *l = &s->layers[li];
    char n[256];
#define SITE(dst, mod, in, out)                                                         \
    do {                                                                                \
        snprintf(n, sizeof n, "encoder.layer.%d." mod, li);                             \
        if (!((dst) = take_linear(m, pre, n, in, out, li, err, errlen))) return -1;     \
    } while (0)
#define LN(dst, mod)                                                                    \
    do {                                                                                \
        snprintf(n, sizeof n, "encoder.layer.%d." mod, li);                             \
        if (!((dst) = take(m, pre, n, 1, C, 0, err, errlen))) return -1;                \
    } while (0)
#define NORM(dst, mod, w, b)                                                            \
    do {                                                                                \
        snprintf(n, sizeof n, "%sencoder.layer.%d." mod, pre, li);                      \
        if (!((dst) = peft_model_add_norm_site(m, n, w, b, li, PEFT_NORM_LAYER, (float)d->eps))) { \
            snprintf(err, errlen, "%s: cannot register site %s (out of memory)", m->dir, n); \
            return -1;                                                                  \
        }                                                                               \
    } while (0)
    SITE(l->query, "attention.self.query", C, C);
    SITE(l->key, "attention.self.key", C, C);
    SITE(l->value, "attention.self.value", C, C);
    SITE(l->attn_out, "attention.output.dense", C, C);
    LN(l->ln1_w, "attention.output.LayerNorm.weight");
    LN(l->ln1_b, "attention.output.LayerNorm.bias");
    NORM(l->ln1, "attention.output.LayerNorm", l->ln1_w, l->ln1_b);
    SITE(l->inter, "intermediate.dense", C, I);
    SITE(l->out, "output.dense", I, C);
    LN(l->ln2_w, "output.LayerNorm.weight");
    LN(l->ln2_b, "output.LayerNorm.bias");
    NORM(l->ln2, "output.LayerNorm", l->ln2_w, l->ln2_b);
#undef SITE
#undef LN
#undef NORM
    return 0;
}

static int bert_build(peft_base_model *m, char *err, size_t errlen)
{
    bert_state *s = calloc(1, sizeof *s);
    if (!s) { snprintf(err, errlen, "%s: out of memory", m->dir); return -1; }
    m->arch_state = s; /* freed by peft_base_model_free on any failure below */
    bert_dims *d = &s->d;
    if (bert_read_config(m, NULL, d, err, errlen)) return -1;
    s->layers = calloc((size_t)(d->L ? d->L : 1), sizeof *s->layers);
    if (!s->layers) { snprintf(err, errlen, "%s: out of memory", m->dir); return -1; }
    const char *pre = d->head == BERT_HEAD_NONE ? "" : "bert.";
    const int64_t C = d->C;

    /* HF named_parameters() order */
    if (!(s->word = take(m, pre, "embeddings.word_embeddings.weight", 2, d->V, C, err, errlen)) ||
        !(s->pos = take(m, pre, "embeddings.position_embeddings.weight", 2, d->P, C, err, errlen)) ||
        !(s->type = take(m, pre, "embeddings.token_type_embeddings.weight", 2, d->TV, C, err, errlen)) ||
        !(s->emb_ln_w = take(m, pre, "embeddings.LayerNorm.weight", 1, C, 0, err, errlen)) ||
        !(s->emb_ln_b = take(m, pre, "embeddings.LayerNorm.bias", 1, C, 0, err, errlen)))
        return -1;
    char n[256];
    snprintf(n, sizeof n, "%sembeddings.word_embeddings", pre);
    if (!(s->word_site = peft_model_add_site(m, n, PEFT_SITE_EMBEDDING, s->word, NULL, -1))) {
        snprintf(err, errlen, "%s: cannot register site %s (out of memory)", m->dir, n);
        return -1;
    }
    snprintf(n, sizeof n, "%sembeddings.LayerNorm", pre);
    if (!(s->emb_ln = peft_model_add_norm_site(m, n, s->emb_ln_w, s->emb_ln_b, -1, PEFT_NORM_LAYER,
                                               (float)d->eps))) {
        snprintf(err, errlen, "%s: cannot register site %s (out of memory)", m->dir, n);
        return -1;
    }
    for (int64_t i = 0; i < d->L; i++)
        if (build_layer(m, s, pre, (int)i, err, errlen)) return -1;
    /* BertForTokenClassification / QuestionAnswering: add_pooling_layer=False */
    if (d->head == BERT_HEAD_NONE || d->head == BERT_HEAD_SEQCLS)
        if (!(s->pooler = take_linear(m, pre, "pooler.dense", C, C, -1, err, errlen))) return -1;
    if (d->head == BERT_HEAD_SEQCLS || d->head == BERT_HEAD_TOKCLS)
        if (!(s->head = take_linear(m, "", "classifier", C, d->num_labels, -1, err, errlen))) return -1;
    if (d->head == BERT_HEAD_QA)
        if (!(s->head = take_linear(m, "", "qa_outputs", C, 2, -1, err, errlen))) return -1;

    m->class_name = d->class_name;
    m->task_type = d->task_type;
    m->word_embeddings = s->word;
    m->n_layers = (int)d->L;
    m->n_kv_heads = (int)d->H;
    m->head_dim = (int)(C / d->H);
    m->hidden_size = (int)C;
    m->is_encoder_decoder = 0;
    return 0;
}

/* ---- forward ------------------------------------------------------------------------------- */

int32_t *bert_arena_i32(peft_graph *g, const int32_t *src, int64_t B, int64_t T)
{
    int64_t shape[2] = {B, T};
    peft_tensor *t = peft_graph_tensor_raw(g, PEFT_DTYPE_I32, 2, shape);
    if (!t) return NULL;
    if (src) memcpy(t->data, src, (size_t)(B * T) * sizeof(int32_t));
    return t->data;
}

static int check_inputs(const bert_dims *d, const peft_model_inputs *in, char *err, size_t errlen)
{
    if (!in || !in->input_ids || in->B <= 0 || in->T <= 0) {
        snprintf(err, errlen, "bert: inputs need input_ids with B > 0 and T > 0");
        return -1;
    }
    for (int64_t i = 0; i < in->B * in->T; i++) {
        int32_t id = in->input_ids[i];
        if (id < 0 || id >= d->V) {
            snprintf(err, errlen, "bert: input_ids[%lld][%lld] = %d is outside the vocabulary "
                     "[0, %lld)", (long long)(i / in->T), (long long)(i % in->T), id,
                     (long long)d->V);
            return -1;
        }
        if (in->token_type_ids) {
            int32_t t = in->token_type_ids[i];
            if (t < 0 || t >= d->TV) {
                snprintf(err, errlen, "bert: token_type_ids[%lld][%lld] = %d is outside [0, %lld) "
                         "(type_vocab_size)", (long long)(i / in->T), (long long)(i % in->T), t,
                         (long long)d->TV);
                return -1;
            }
        }
    }
    return 0;
}

/* prefix tuning: every layer's past keys/values, (B, P, C) each; *past = P (0 without) */
static int layer_prefixes(peft_base_model *m, const bert_state *s, peft_graph *g, int64_t B,
                          peft_tensor **pk, peft_tensor **pv, int64_t *past, char *err,
                          size_t errlen)
{
    const peft_prompt_hooks *hk = m->prompt;
    *past = 0;
    for (int64_t l = 0; l < s->d.L; l++) {
        pk[l] = pv[l] = NULL;
        if (!hk || !hk->layer_prefix) continue;
        peft_tensor *k = NULL, *v = NULL;
        if (hk->layer_prefix(hk->ud, g, 0, (int)l, B, &k, &v) != 0) continue;
        if (!k || !v || k->ndim != 3 || v->ndim != 3 || k->shape[0] != B || v->shape[0] != B ||
            k->shape[2] != s->d.C || v->shape[2] != s->d.C || k->shape[1] != v->shape[1] ||
            k->shape[1] <= 0 || (*past && k->shape[1] != *past)) {
            snprintf(err, errlen, "bert: the prefix of layer %lld must be keys and values of shape "
                     "(%lld, P, %lld) with the same P > 0 in every layer", (long long)l,
                     (long long)B, (long long)s->d.C);
            return -1;
        }
        *past = k->shape[1];
        pk[l] = k;
        pv[l] = v;
    }
    return 0;
}

/* word (+ prompt) + token type + position embeddings, LayerNorm, dropout -> (B, Pv+T, C) */
static peft_tensor *embeddings(peft_base_model *m, const bert_state *s, peft_graph *g,
                               const peft_model_inputs *in, int64_t past, int64_t *Pv_out,
                               char *err, size_t errlen)
{
    const int64_t B = in->B, T = in->T, C = s->d.C;
    const peft_prompt_hooks *hk = m->prompt;
    int32_t bad = 0;
    int32_t *ids = bert_arena_i32(g, in->input_ids, B, T);
    peft_tensor *x = ids ? peft_site_embed(g, s->word_site, ids, B, T, &bad) : NULL; /* (B,T,C) */
    if (!x) goto oom;
    int64_t Pv = 0;
    if (hk && hk->virtual_tokens) {
        peft_tensor *vt = hk->virtual_tokens(hk->ud, g, B); /* (B,Pv,C) */
        if (!vt || vt->ndim != 3 || vt->shape[0] != B || vt->shape[2] != C || vt->shape[1] <= 0) {
            snprintf(err, errlen, "bert: the prompt-tuning hook must give virtual tokens of shape "
                     "(%lld, P, %lld)", (long long)B, (long long)C);
            return NULL;
        }
        Pv = vt->shape[1];
        if (!(x = op_concat_seq(g, vt, x))) goto oom; /* (B,Pv+T,C) */
    }
    const int64_t T2 = Pv + T;
    if (past + T2 > s->d.P) {
        snprintf(err, errlen, "bert: %lld positions (%lld virtual or prefix tokens + %lld tokens) "
                 "exceed max_position_embeddings %lld", (long long)(past + T2),
                 (long long)(past + Pv), (long long)T, (long long)s->d.P);
        return NULL;
    }
    int32_t *types = bert_arena_i32(g, NULL, B, T2), *pos = bert_arena_i32(g, NULL, B, T2);
    if (!types || !pos) goto oom;
    for (int64_t b = 0; b < B; b++)
        for (int64_t t = 0; t < T2; t++) {
            types[b * T2 + t] = t < Pv || !in->token_type_ids ? 0 : in->token_type_ids[b * T + t - Pv];
            pos[b * T2 + t] = (int32_t)(past + t);
        }
    peft_tensor *te = op_embedding(g, s->type, types, B, T2, &bad); /* (B,T2,C) */
    peft_tensor *pe = te ? op_embedding(g, s->pos, pos, B, T2, &bad) : NULL;
    peft_tensor *e = pe ? op_add(g, x, te) : NULL;
    if (!e || !(e = op_add(g, e, pe))) goto oom;
    e = peft_site_norm(g, s->emb_ln, e);
    if (!e || !(e = op_dropout(g, e, s->d.hidden_pdrop))) goto oom;
    *Pv_out = Pv;
    return e;
oom:
    snprintf(err, errlen, "bert: embeddings failed: out of memory in the step arena (B=%lld, T=%lld)",
             (long long)B, (long long)T);
    return NULL;
}

static peft_tensor *activation(peft_graph *g, bert_act act, peft_tensor *x)
{
    switch (act) {
    case BERT_ACT_GELU: return op_gelu_erf(g, x);
    case BERT_ACT_GELU_TANH: return op_gelu_tanh(g, x);
    case BERT_ACT_RELU: return op_relu(g, x);
    }
    return NULL;
}

/* one encoder layer (peft_block_fn, checkpointed in training when asked): h (B,T2,C) ->
 * h (B,T2,C) */
typedef struct bert_layer_ud {
    const bert_state *s;
    int layer;
    peft_tensor *pk, *pv;  /* the layer's prefix (B,past,C) or NULL */
    const int32_t *mask;   /* key mask (arena) or NULL */
} bert_layer_ud;

static peft_tensor *bert_layer_fn(peft_graph *g, void *p, peft_tensor *h)
{
    const bert_layer_ud *u = p;
    const bert_dims *d = &u->s->d;
    const bert_layer *ly = &u->s->layers[u->layer];
    peft_tensor *q = peft_site_forward(g, ly->query, h); /* (B,T2,C) */
    peft_tensor *k = q ? peft_site_forward(g, ly->key, h) : NULL;
    peft_tensor *v = k ? peft_site_forward(g, ly->value, h) : NULL;
    if (!v) return NULL;
    if (u->pk && (!(k = op_concat_seq(g, u->pk, k)) || !(v = op_concat_seq(g, u->pv, v))))
        return NULL; /* (B,past+T2,C) */
    peft_tensor *a = op_attention(g, q, k, v, (int)d->H, 0, u->mask);
    peft_tensor *o = a ? peft_site_forward(g, ly->attn_out, a) : NULL;
    if (!o || !(o = op_dropout(g, o, d->hidden_pdrop)) || !(o = op_add(g, o, h))) return NULL;
    peft_tensor *h1 = peft_site_norm(g, ly->ln1, o);
    peft_tensor *f = h1 ? peft_site_forward(g, ly->inter, h1) : NULL; /* (B,T2,I) */
    if (!f || !(f = activation(g, d->act, f))) return NULL;
    peft_tensor *pp = peft_site_forward(g, ly->out, f); /* (B,T2,C) */
    if (!pp || !(pp = op_dropout(g, pp, d->hidden_pdrop)) || !(pp = op_add(g, pp, h1))) return NULL;
    return peft_site_norm(g, ly->ln2, pp);
}

static int bert_forward(peft_base_model *m, peft_graph *g, const peft_model_inputs *in,
                        peft_model_outputs *out, char *err, size_t errlen)
{
    bert_state *s = m->arch_state;
    const bert_dims *d = &s->d;
    memset(out, 0, sizeof *out);
    if (check_inputs(d, in, err, errlen)) return -1;
    const int64_t B = in->B, T = in->T;

    int64_t past = 0, Pv = 0;
    peft_tensor **pk = calloc((size_t)(2 * d->L + 1), sizeof *pk);
    if (!pk) { snprintf(err, errlen, "bert: out of memory"); return -1; }
    peft_tensor **pv = pk + d->L;
    int rc = -1;
    if (layer_prefixes(m, s, g, B, pk, pv, &past, err, errlen)) goto out;
    peft_tensor *h = embeddings(m, s, g, in, past, &Pv, err, errlen); /* (B,T2,C) */
    if (!h) goto out;
    const int64_t T2 = Pv + T;

    /* key masks: (B, T2) for layers without a prefix, (B, past+T2) with; NULL = every key */
    int32_t *mask = NULL, *mask_past = NULL;
    if (in->attention_mask) {
        mask = bert_arena_i32(g, NULL, B, T2);
        mask_past = past ? bert_arena_i32(g, NULL, B, past + T2) : mask;
        if (!mask || !mask_past) goto oom;
        for (int64_t b = 0; b < B; b++) {
            for (int64_t t = 0; t < T2; t++)
                mask[b * T2 + t] = t < Pv ? 1 : in->attention_mask[b * T + t - Pv] != 0;
            if (past) {
                for (int64_t t = 0; t < past; t++) mask_past[b * (past + T2) + t] = 1;
                memcpy(mask_past + b * (past + T2) + past, mask + b * T2, (size_t)T2 * sizeof *mask);
            }
        }
    }

    if (m->embed_outputs_require_grad && g->recording) h->requires_grad = 1; /* enable_input_require_grads */
    /* prefix hooks add differentiable inputs to every layer: those run plain */
    const int ckpt = m->gradient_checkpointing && g->recording && !m->prompt;
    for (int64_t l = 0; l < d->L; l++) {
        bert_layer_ud u = {s, (int)l, pk[l], pv[l], pk[l] ? mask_past : mask};
        h = ckpt ? peft_checkpoint(g, bert_layer_fn, &u, sizeof u, h) : bert_layer_fn(g, &u, h);
        if (!h) goto oom;
    }
    rc = bert_head_forward(s, g, in, h, Pv, out, err, errlen);
    goto out;
oom:
    snprintf(err, errlen, "bert: forward failed: out of memory in the step arena (B=%lld, T=%lld)",
             (long long)B, (long long)T);
out:
    free(pk);
    return rc;
}

const peft_arch peft_arch_bert = {
    .model_type = "bert",
    .class_name = "BertModel",
    .task_type = "FEATURE_EXTRACTION",
    .build = bert_build,
    .forward = bert_forward,
    .free_state = bert_free_state,
    .count_params = bert_count_params,
};
