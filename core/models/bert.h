/* bert.h — what core/models/bert.c (config, weights, embeddings, encoder) and
 * core/models/bert_heads.c (the task heads, their losses, the parameter count) share. Internal
 * to the BERT architecture; nothing outside core/models/bert*.c includes it. */
#ifndef PEFT_MODELS_BERT_H
#define PEFT_MODELS_BERT_H

#include <stdint.h>
#include "core/model/model_internal.h"

/* the Hugging Face class on top of BertModel */
typedef enum bert_head {
    BERT_HEAD_NONE = 0, /* BertModel: FEATURE_EXTRACTION, last_hidden_state */
    BERT_HEAD_SEQCLS,   /* BertForSequenceClassification: SEQ_CLS */
    BERT_HEAD_TOKCLS,   /* BertForTokenClassification: TOKEN_CLS */
    BERT_HEAD_QA,       /* BertForQuestionAnswering: QUESTION_ANS */
} bert_head;

typedef enum bert_act { BERT_ACT_GELU, BERT_ACT_GELU_TANH, BERT_ACT_RELU } bert_act;

/* how BertForSequenceClassification computes its loss (config.json problem_type) */
typedef enum bert_problem {
    BERT_SINGLE_LABEL, /* cross-entropy over integer class labels (B) */
    BERT_REGRESSION,   /* mean squared error against labels (B, num_labels) read as floats */
    BERT_MULTI_LABEL,  /* BCE with logits: refused at forward (needs float multi-hot labels) */
} bert_problem;

/* config.json, read once by bert_read_config */
typedef struct bert_dims {
    bert_head head;
    const char *class_name, *task_type; /* static strings */
    int64_t C, H, L, I;                 /* hidden_size, heads, layers, intermediate_size */
    int64_t V, P, TV;                   /* vocab, max_position_embeddings, type_vocab_size */
    int64_t num_labels;                 /* len(id2label), else num_labels, else 2 */
    double eps;                         /* layer_norm_eps */
    bert_act act;
    float hidden_pdrop;                 /* hidden_dropout_prob */
    float cls_pdrop;                    /* classifier_dropout, else hidden_dropout_prob */
    bert_problem problem;
} bert_dims;

typedef struct bert_layer {
    peft_site *query, *key, *value; /* (C, C) each */
    peft_site *attn_out;            /* attention.output.dense (C, C) */
    peft_tensor *ln1_w, *ln1_b;     /* attention.output.LayerNorm (C) */
    peft_site *ln1, *ln2;           /* norm sites over ln1_w/b and ln2_w/b */
    peft_site *inter;               /* intermediate.dense (I, C) */
    peft_site *out;                 /* output.dense (C, I) */
    peft_tensor *ln2_w, *ln2_b;     /* output.LayerNorm (C) */
} bert_layer;

typedef struct bert_state {
    bert_dims d;
    peft_tensor *word, *pos, *type; /* (V, C), (P, C), (TV, C) */
    peft_site *word_site;           /* embeddings.word_embeddings, an embedding site over word */
    peft_tensor *emb_ln_w, *emb_ln_b;
    peft_site *emb_ln;              /* embeddings.LayerNorm, a norm site over them */
    bert_layer *layers;             /* L */
    peft_site *pooler;              /* pooler.dense (C, C): BertModel and SEQ_CLS only */
    peft_site *head;                /* classifier (num_labels, C) or qa_outputs (2, C); NULL for
                                       BertModel */
} bert_state;

/* Reads and checks config.json; class_name picks the head (NULL: architectures[0], BertModel
 * when absent). 0 or -1 with err naming the file and field. m needs only dir and config. */
int bert_read_config(const peft_base_model *m, const char *class_name, bert_dims *d, char *err,
                     size_t errlen);

/* i32 (B, T) array in g's arena, copied from src when not NULL (ops keep the pointer until
 * backward). NULL on arena OOM. */
int32_t *bert_arena_i32(peft_graph *g, const int32_t *src, int64_t B, int64_t T);

/* The head on top of the sequence output h (B, T2, C), T2 = Pv + T (Pv virtual tokens
 * prepended by prompt tuning): fills out (logits / start+end logits / last_hidden_state, loss
 * when labels or positions are given). 0, or -1 with err (bad labels, or arena OOM). */
int bert_head_forward(const bert_state *s, peft_graph *g, const peft_model_inputs *in,
                      peft_tensor *h, int64_t Pv, peft_model_outputs *out, char *err,
                      size_t errlen);

/* arch->count_params: the parameter count config.json implies for class_name */
int bert_count_params(const json_t *config, const char *class_name, int64_t *n, char *err,
                      size_t errlen);

#endif
