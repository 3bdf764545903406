/* decoder.h — what the decoder-only architectures (GPT-2, LLaMA) share: the choice of head from
 * config.json "architectures" (causal LM or sequence classification), the prompt-learning
 * plumbing (virtual tokens prepended, prefix keys/values, masks and positions as PEFT 0.13.2 and
 * transformers 4.44 do them) and the two heads' pooling and losses.
 *
 * Internal to core/models; nothing here is public API.
 */
#ifndef PEFT_MODELS_DECODER_H
#define PEFT_MODELS_DECODER_H

#include <stddef.h>
#include <stdint.h>
#include "core/model/model_internal.h"
#include "core/model/kv_cache.h"

/* the head a config.json asks for */
typedef struct dec_head {
    const char *class_name;   /* the HF class (static string: lm_class or cls_class) */
    int seq_cls;              /* 1: *ForSequenceClassification ("score" head, task SEQ_CLS) */
    int64_t num_labels;       /* seq_cls: len(id2label), else "num_labels", else 2 */
    int has_pad;              /* pad_token_id set */
    int64_t pad_id;
    const char *problem_type; /* config "problem_type" or NULL (inferred as HF does); borrowed
                                 from m->config */
    int token_types;          /* set by the arch after dec_head_read: it takes token_type_ids
                                 (GPT-2: wte[token_type_ids] is added to the embeddings) */
} dec_head;

/* Reads the head from m->config: class_name (NULL = config "architectures"[0], absent = lm_class)
 * must be lm_class or cls_class; then num_labels, pad_token_id and problem_type for the
 * classification head. 0, or -1 with err naming <m->dir>/config.json and the field. */
int dec_head_read(const peft_base_model *m, const char *class_name, const char *lm_class,
                  const char *cls_class, dec_head *h, char *err, size_t errlen);

/* One forward's sequence layout with prompt learning (model.h peft_prompt_hooks):
 *   Pp virtual tokens (prompt tuning) are prepended to the T input embeddings: the model runs
 *   over Tq = Pp + T positions; Px prefix keys/values (prefix tuning) are a "past" of length Px:
 *   positions run Px .. Px+Tq-1 and layers with a prefix see Px + Tq keys. Arrays live in the
 *   step arena.
 * With a KV cache (in->cache, core/kv_cache.h) the past is the cache: the first call on an empty
 * cache stores the prefix as its first Px entries and runs the virtual tokens as ordinary ones;
 * later calls have Pp = Px = 0 and positions continue from past = the cached length. Explicit
 * in->position_ids replace past + t unless a prompt-learning adapter is active (PEFT ignores
 * them then). in->token_type_ids (only for a head with token_types) likewise: a causal LM with a
 * prompt-learning adapter drops them with PEFT's warning; a sequence classifier keeps them, with
 * Pp leading zeros for the virtual tokens (PeftModelForSequenceClassification). */
typedef struct dec_seq {
    int64_t B, T, Pp, Px, Tq;
    int32_t *ids;     /* (B, T) arena copy of input_ids */
    int32_t *mask;    /* (B, Tq) key mask (Pp leading ones), NULL = no attention_mask given */
    int32_t *mask_px; /* (B, Px + Tq) key mask for a layer with a prefix (NULL likewise; not
                         used with a cache) */
    int32_t *pos;     /* (B, Tq) position ids: past + t, or in->position_ids */
    int32_t *tt;      /* (B, Tq) token type ids (Pp leading zeros), NULL = none given, or
                         dropped (a causal LM with a prompt-learning adapter: PEFT ignores them) */
    int64_t past;     /* keys before this call's tokens: Px, or the cached length */
    peft_kv_cache *cache; /* in->cache (borrowed) or NULL */
} dec_seq;

/* Validates in (ids in [0, V), labels per head: (B, T) token ids or -100 for the causal LM, one
 * per example (labels_len 1) for sequence classification) and lays out the step. name is the
 * arch ("gpt2") for messages. 0 or -1 with err. */
int dec_seq_begin(peft_base_model *m, peft_graph *g, const peft_model_inputs *in,
                  const dec_head *h, int64_t V, const char *name, dec_seq *s, char *err,
                  size_t errlen);

/* emb (B, T, C) -> (B, Pp + T, C) with the virtual tokens in front (emb itself when Pp = 0).
 * NULL with err when the hook fails or returns the wrong shape. */
peft_tensor *dec_prepend_prompt(peft_base_model *m, peft_graph *g, const dec_seq *s,
                                peft_tensor *emb, const char *name, char *err, size_t errlen);

/* Prefix tuning for one attention layer: k, v (B, Tq, W) become (B, Px + Tq, W) when the hook
 * gives this layer a prefix, and *mask the key mask to use (s->mask or s->mask_px). 0, or -1
 * with err (hook shape mismatch, out of memory). */
int dec_layer_prefix(peft_base_model *m, peft_graph *g, const dec_seq *s, int layer,
                     peft_tensor **k, peft_tensor **v, const int32_t **mask, const char *name,
                     char *err, size_t errlen);

/* With a cache: starts it for this call (kv_cache_begin with n_layers, W = Hkv*D, the prefix
 * on a first fill, the (B, Tq) mask); a sequence-classification head refuses a cache. 0 without
 * a cache; -1 with err. Call dec_cache_commit after the last layer. */
int dec_cache_begin(const dec_seq *s, const dec_head *h, int n_layers, int64_t W,
                    const char *name, char *err, size_t errlen);
void dec_cache_commit(const dec_seq *s);

/* Self-attention of one layer: q (B, Tq, H*D), k and v (B, Tq, Hkv*D) (after RoPE for LLaMA),
 * causal, with the layer's prefix (dec_layer_prefix) or, with a cache, over the cached past +
 * these keys (the prefix stored on the first fill). -> (B, Tq, H*D), or NULL with err. */
peft_tensor *dec_attention(peft_base_model *m, peft_graph *g, const dec_seq *s, int layer,
                           peft_tensor *q, peft_tensor *k, peft_tensor *v, int H, int Hkv,
                           float scale, const char *name, char *err, size_t errlen);

/* dec_attention with a sliding window (window > 0: query at position p sees keys at positions
 * > p - window, positions counting the prefix / cached entries, as transformers' cache
 * positions) and soft-capped scores (softcap > 0: cap * tanh(score / cap) before the mask). */
peft_tensor *dec_attention_opt(peft_base_model *m, peft_graph *g, const dec_seq *s, int layer,
                               peft_tensor *q, peft_tensor *k, peft_tensor *v, int H, int Hkv,
                               float scale, int64_t window, float softcap, const char *name,
                               char *err, size_t errlen);

/* Causal-LM loss: logits (B, Tq, V), labels (B, T) given Pp leading -100, shifted (row t
 * predicts label t+1), mean CE over labels != -100. NULL on OOM. */
peft_tensor *dec_lm_loss(peft_graph *g, const dec_seq *s, peft_tensor *logits,
                         const int32_t *labels);

/* 1 when a causal-LM forward may compute its loss without the logits (op_linear_cross_entropy):
 * m->chunked_loss set, recording (training), labels given, no cache, the head frozen and
 * without running adapters. The forward then returns the loss and no logits. */
int dec_chunked_loss_ok(const peft_base_model *m, const peft_graph *g,
                        const peft_model_inputs *in, const peft_site *head);
/* the same for a head that is a bare weight (V, C) (GPT-2's lm_head, tied to wte), not a site */
int dec_chunked_loss_ok_w(const peft_base_model *m, const peft_graph *g,
                          const peft_model_inputs *in, const peft_tensor *w);
/* dec_lm_loss over h (B, Tq, C) and the head weight (V, C), chunked; NULL on OOM */
peft_tensor *dec_lm_loss_chunked(peft_graph *g, const dec_seq *s, peft_tensor *h, peft_tensor *w,
                                 const int32_t *labels);

/* Sequence classification pooling, transformers 4.44: with pad_token_id and input_ids, row
 * (argmax(input_ids == pad) - 1) mod T (the token before the first pad; the last when there is
 * none); with prompt tuning (HF gets inputs_embeds only) or no pad_token_id, the last position.
 * No pad_token_id and B > 1 is an error, as in HF. idx (B) is filled. 0 or -1 with err. */
int dec_pool_index(const dec_head *h, const dec_seq *s, int32_t *idx, const char *name,
                   char *err, size_t errlen);

/* Sequence classification loss over pooled logits (B, num_labels) and labels (B), as HF:
 * regression (MSE of the squeezed logits and the float labels) when problem_type is
 * "regression" or absent with num_labels == 1, else mean CE ignoring -100. Labels a head cannot
 * take here (multi-label, regression with num_labels > 1: float (B, L) targets) are an error.
 * *loss set, 0; or -1 with err. */
int dec_cls_loss(peft_graph *g, const dec_head *h, peft_tensor *pooled, const int32_t *labels,
                 int64_t B, peft_tensor **loss, const char *name, char *err, size_t errlen);

#endif
