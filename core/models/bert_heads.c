/* bert_heads.c — the heads on top of BERT's encoder and their losses, as transformers 4.44 (and
 * PEFT 0.13.2's prefix-tuning copies of them) compute them, plus the parameter count a
 * config.json implies for each class.
 *
 *   BertModel                       last_hidden_state h                          (B,T2,C)
 *   BertForSequenceClassification   logits = classifier(dropout(tanh(pooler.dense(h[:,0]))))  (B,L)
 *       loss: single_label_classification: CE over labels (B), -100 ignored;
 *             regression (num_labels == 1 by default): MSE against the labels read as floats
 *             (B, num_labels); multi_label_classification: refused (needs float labels)
 *   BertForTokenClassification      logits = classifier(dropout(h))             (B,T2,L)
 *       loss: CE over labels (B, T2), -100 ignored
 *   BertForQuestionAnswering        qa_outputs(h) (B,T2,2) -> start_logits, end_logits (B,T2)
 *       loss: (CE(start) + CE(end)) / 2, positions clamped to [0, T2], ignore_index T2
 *
 * T2 = P + T with P prompt-tuning virtual tokens (0 otherwise). With virtual tokens, PEFT passes
 * token-classification labels and QA positions through unchanged: labels must then cover the
 * P + T positions (PEFT raises otherwise); as a convenience, labels of length T get P leading
 * -100 here. Sequence classification pools position 0, the first virtual token, as PEFT does.
 */
#include <stdio.h>
#include <string.h>
#include "bert.h"
#include "core/model/site.h"
#include "core/ops/ops.h"

static int oom(const peft_model_inputs *in, char *err, size_t errlen)
{
    snprintf(err, errlen, "bert: head failed: out of memory in the step arena (B=%lld, T=%lld)",
             (long long)in->B, (long long)in->T);
    return -1;
}

/* labels per row as given: labels_len, 0 meaning T */
static int64_t labels_per_row(const peft_model_inputs *in)
{
    return in->labels_len ? in->labels_len : in->T;
}

/* class targets (n values) into the arena: each in [0, L) or -100 */
static int32_t *class_targets(peft_graph *g, const int32_t *labels, int64_t B, int64_t n,
                              int64_t pad, int64_t L, const char *what, char *err, size_t errlen)
{
    int32_t *t = bert_arena_i32(g, NULL, B, pad + n);
    if (!t) return NULL;
    for (int64_t b = 0; b < B; b++)
        for (int64_t j = 0; j < pad + n; j++) {
            int32_t v = j < pad ? -100 : labels[b * n + j - pad];
            if (v != -100 && (v < 0 || v >= L)) {
                snprintf(err, errlen, "bert: labels[%lld][%lld] = %d is neither -100 nor a %s in "
                         "[0, %lld)", (long long)b, (long long)(j - pad), v, what, (long long)L);
                return NULL;
            }
            t[b * (pad + n) + j] = v;
        }
    return t;
}

static int seqcls_loss(const bert_state *s, peft_graph *g, const peft_model_inputs *in,
                       peft_tensor *logits, peft_model_outputs *out, char *err, size_t errlen)
{
    const int64_t B = in->B, L = s->d.num_labels, n = labels_per_row(in);
    switch (s->d.problem) {
    case BERT_SINGLE_LABEL: {
        if (n != 1) {
            snprintf(err, errlen, "bert: sequence classification takes one label per example "
                     "(labels of shape (%lld)), got %lld per example", (long long)B, (long long)n);
            return -1;
        }
        err[0] = 0;
        int32_t *t = class_targets(g, in->labels, B, 1, 0, L, "class", err, errlen);
        if (!t) return err[0] ? -1 : oom(in, err, errlen);
        return (out->loss = op_cross_entropy(g, logits, t, -100)) ? 0 : oom(in, err, errlen);
    }
    case BERT_REGRESSION: {
        if (n != L) {
            snprintf(err, errlen, "bert: regression (num_labels %lld) takes %lld target(s) per "
                     "example, got %lld", (long long)L, (long long)L, (long long)n);
            return -1;
        }
        int64_t shape[2] = {B, L};
        peft_tensor *t = peft_graph_tensor_raw(g, PEFT_DTYPE_F32, 2, shape);
        if (!t) return oom(in, err, errlen);
        float *td = t->data;
        for (int64_t i = 0; i < B * L; i++) td[i] = (float)in->labels[i];
        return (out->loss = op_mse(g, logits, td)) ? 0 : oom(in, err, errlen);
    }
    case BERT_MULTI_LABEL:
        snprintf(err, errlen, "bert: problem_type multi_label_classification (BCE over float "
                 "multi-hot labels) is unsupported; labels are integer class ids");
        return -1;
    }
    return -1;
}

static int seqcls(const bert_state *s, peft_graph *g, const peft_model_inputs *in, peft_tensor *h,
                  peft_model_outputs *out, char *err, size_t errlen)
{
    const int64_t B = in->B;
    int32_t *first = bert_arena_i32(g, NULL, B, 1);
    if (!first) return oom(in, err, errlen);
    memset(first, 0, (size_t)B * sizeof *first);
    peft_tensor *x = op_gather_rows(g, h, first);         /* (B,C): h[:, 0] */
    peft_tensor *p = x ? peft_site_forward(g, s->pooler, x) : NULL;
    if (!p || !(p = op_tanh(g, p)) || !(p = op_dropout(g, p, s->d.cls_pdrop))) return oom(in, err, errlen);
    peft_tensor *logits = peft_site_forward(g, s->head, p); /* (B,L) */
    if (!logits) return oom(in, err, errlen);
    out->logits = logits;
    return in->labels ? seqcls_loss(s, g, in, logits, out, err, errlen) : 0;
}

static int tokcls(const bert_state *s, peft_graph *g, const peft_model_inputs *in, peft_tensor *h,
                  int64_t Pv, peft_model_outputs *out, char *err, size_t errlen)
{
    const int64_t B = in->B, T2 = Pv + in->T;
    peft_tensor *x = op_dropout(g, h, s->d.cls_pdrop);
    peft_tensor *logits = x ? peft_site_forward(g, s->head, x) : NULL; /* (B,T2,L) */
    if (!logits) return oom(in, err, errlen);
    out->logits = logits;
    if (!in->labels) return 0;
    const int64_t n = labels_per_row(in);
    if (n != T2 && !(Pv && n == in->T)) {
        if (Pv)
            snprintf(err, errlen, "bert: token classification with %lld virtual tokens takes "
                     "labels of shape (%lld, %lld) (or (%lld, %lld), padded here), got %lld per row",
                     (long long)Pv, (long long)B, (long long)T2, (long long)B, (long long)in->T,
                     (long long)n);
        else
            snprintf(err, errlen, "bert: token classification takes labels of shape (%lld, %lld), "
                     "got %lld per row", (long long)B, (long long)T2, (long long)n);
        return -1;
    }
    err[0] = 0;
    int32_t *t = class_targets(g, in->labels, B, n, T2 - n, s->d.num_labels, "class", err, errlen);
    if (!t) return err[0] ? -1 : oom(in, err, errlen);
    /* logits (B,T2,L) are read as (B*T2, L) rows */
    return (out->loss = op_cross_entropy(g, logits, t, -100)) ? 0 : oom(in, err, errlen);
}

/* x (B,T2,2) column c -> (B,T2) */
static peft_tensor *qa_column(peft_graph *g, peft_tensor *x, int c)
{
    peft_tensor *y = op_slice_lastdim(g, x, c, 1); /* (B,T2,1) */
    if (y) y->ndim = 2;                            /* a view: same data, (B,T2) */
    return y;
}

static int qa(const bert_state *s, peft_graph *g, const peft_model_inputs *in, peft_tensor *h,
              int64_t Pv, peft_model_outputs *out, char *err, size_t errlen)
{
    const int64_t B = in->B, T2 = Pv + in->T;
    peft_tensor *logits = peft_site_forward(g, s->head, h); /* (B,T2,2) */
    peft_tensor *st = logits ? qa_column(g, logits, 0) : NULL;
    peft_tensor *en = st ? qa_column(g, logits, 1) : NULL;
    if (!en) return oom(in, err, errlen);
    out->start_logits = st;
    out->end_logits = en;
    if (!in->start_positions || !in->end_positions) return 0;
    int32_t *sp = bert_arena_i32(g, NULL, B, 1), *ep = bert_arena_i32(g, NULL, B, 1);
    if (!sp || !ep) return oom(in, err, errlen);
    /* transformers: positions outside the input are clamped to T2, the ignored index */
    for (int64_t b = 0; b < B; b++) {
        int32_t a = in->start_positions[b], e = in->end_positions[b];
        sp[b] = a < 0 ? 0 : a > T2 ? (int32_t)T2 : a;
        ep[b] = e < 0 ? 0 : e > T2 ? (int32_t)T2 : e;
    }
    peft_tensor *ls = op_cross_entropy(g, st, sp, (int32_t)T2); /* st read as (B, T2) rows */
    peft_tensor *le = ls ? op_cross_entropy(g, en, ep, (int32_t)T2) : NULL;
    peft_tensor *sum = le ? op_add(g, ls, le) : NULL;
    if (!sum || !(out->loss = op_scale(g, sum, 0.5f))) return oom(in, err, errlen);
    return 0;
}

int bert_head_forward(const bert_state *s, peft_graph *g, const peft_model_inputs *in,
                      peft_tensor *h, int64_t Pv, peft_model_outputs *out, char *err,
                      size_t errlen)
{
    out->last_hidden_state = h;
    switch (s->d.head) {
    case BERT_HEAD_NONE:
        if (in->labels || in->start_positions || in->end_positions) {
            snprintf(err, errlen, "bert: BertModel has no head and takes no labels or positions");
            return -1;
        }
        return 0;
    case BERT_HEAD_SEQCLS: return seqcls(s, g, in, h, out, err, errlen);
    case BERT_HEAD_TOKCLS: return tokcls(s, g, in, h, Pv, out, err, errlen);
    case BERT_HEAD_QA: return qa(s, g, in, h, Pv, out, err, errlen);
    }
    return -1;
}

/* ---- parameter count ----------------------------------------------------------------------- */

int bert_count_params(const json_t *config, const char *class_name, int64_t *n, char *err,
                      size_t errlen)
{
    *n = 0;
    if (!json_is_object(config)) {
        snprintf(err, errlen, "config.json: expected a JSON object");
        return -1;
    }
    peft_base_model tmp;
    memset(&tmp, 0, sizeof tmp);
    tmp.dir = (char *)".";
    tmp.config = (json_t *)config; /* read only */
    bert_dims d;
    if (bert_read_config(&tmp, class_name, &d, err, errlen)) return -1;
    const int64_t C = d.C, I = d.I;
    int64_t total = (d.V + d.P + d.TV) * C + 2 * C;          /* embeddings + LayerNorm */
    total += d.L * (4 * (C * C + C) + 2 * C                  /* query, key, value, output.dense */
                    + (C * I + I) + (I * C + C) + 2 * C);    /* intermediate, output, LayerNorm */
    if (d.head == BERT_HEAD_NONE || d.head == BERT_HEAD_SEQCLS) total += C * C + C; /* pooler */
    if (d.head == BERT_HEAD_SEQCLS || d.head == BERT_HEAD_TOKCLS) total += d.num_labels * (C + 1);
    if (d.head == BERT_HEAD_QA) total += 2 * (C + 1);
    *n = total;
    return 0;
}
