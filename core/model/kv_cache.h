/* kv_cache.h — the key/value cache of incremental decoding (generation, core/generate.h).
 *
 * Per self-attention layer the cache keeps the past keys and values of every batch row,
 * (B, cap, W) with W = Hkv*D in the layout of the layer's projected keys/values (LLaMA: after
 * RoPE), and one key mask (B, cap) shared by the layers. It lives outside the step arena
 * (malloc'd, capacity doubling) so that one graph is reset between steps. A forward with a
 * cache (peft_model_inputs.cache) runs only the new tokens, appends their keys/values and
 * attends over past + new; the first call fills it:
 *   - prefix tuning: the Px prefix keys/values are the first Px entries (mask ones); a layer the
 *     hook gives no prefix reads its keys from entry Px on;
 *   - prompt tuning: the virtual tokens are ordinary entries of the first call;
 *   - encoder-decoders (T5): the cross-attention keys/values of the encoder states, per decoder
 *     layer (B, Te, Wc), and the encoder key mask (B, Te), computed once.
 * A failed forward leaves the cache as it was before the call (nothing is committed).
 *
 * Public: peft_kv_cache_new / _free / _reset / _len. The kv_cache_* functions below them are
 * for the architectures (core/models) only. Thread safety: a cache belongs to one thread.
 */
#ifndef PEFT_KV_CACHE_H
#define PEFT_KV_CACHE_H

#include <stddef.h>
#include <stdint.h>
#include "peft/graph.h"
#include "core/ops/ops.h"

typedef struct peft_kv_cache {
    int64_t B;                  /* batch rows (fixed at creation) */
    int n_layers;               /* self-attention layers, set by the first forward */
    int64_t W;                  /* per-layer key/value width Hkv*D */
    int64_t len, cap;           /* committed / allocated entries per row */
    int64_t n_prefix;           /* the first n_prefix entries are prefix-tuning keys/values */
    unsigned char *has_prefix;  /* (n_layers): 1 when that layer's keys start with the prefix */
    float **k, **v;             /* (n_layers) arrays of (B, cap, W) */
    int32_t *mask;              /* (B, cap) key mask, 0 = masked */
    /* the forward in progress: new entries go to [base, base + Tn) until kv_cache_commit */
    int64_t base, Tn;
    int pending;
    /* encoder-decoder cross-attention */
    int cross_ready;            /* committed: ck, cv, enc_mask hold the encoder's keys/values */
    int cross_pending;          /* being filled by the forward in progress */
    int64_t Te, Wc;
    float **ck, **cv;           /* (n_layers) arrays of (B, Te, Wc) */
    int32_t *enc_mask;          /* (B, Te), or NULL: every encoder position visible */
} peft_kv_cache;

/* ---- public ---- */
/* An empty cache for batches of B rows; shaped by the first forward that uses it. Free with
 * peft_kv_cache_free. NULL when B <= 0 or out of memory. */
peft_kv_cache *peft_kv_cache_new(int64_t B);
void peft_kv_cache_free(peft_kv_cache *c); /* NULL ok */
/* empties the cache (keeps its memory): the next forward starts a new sequence */
void peft_kv_cache_reset(peft_kv_cache *c);
/* committed entries per row (prefix + prompt + generated tokens) */
int64_t peft_kv_cache_len(const peft_kv_cache *c);

/* ---- for the architectures ---- */
/* Starts a forward of Tn new tokens per row. On an empty cache: shapes it (n_layers, W),
 * reserves n_prefix entries for prefix tuning (mask ones) and places the new tokens after them;
 * otherwise n_layers, W and B must match what filled it and n_prefix must be 0. Writes the new
 * tokens' key mask: mask (B, Tn) or NULL (ones). name is the arch for messages. 0, or -1 with
 * err (mismatch, out of memory). */
int kv_cache_begin(peft_kv_cache *c, int n_layers, int64_t W, int64_t B, int64_t n_prefix,
                   int64_t Tn, const int32_t *mask, const char *name, char *err, size_t errlen);
/* entries before the new tokens: the position offset of the first new token (prefix included) */
static inline int64_t kv_cache_past(const peft_kv_cache *c) { return c->base; }
/* first fill only: layer's prefix keys/values pk, pv (B, n_prefix, W) f32 into entries
 * [0, n_prefix). 0, or -1 on a shape mismatch. */
int kv_cache_put_prefix(peft_kv_cache *c, int layer, const peft_tensor *pk, const peft_tensor *pv);
/* keys a layer attends over after this forward's new tokens (its prefix included or not) */
int64_t kv_cache_keys(const peft_kv_cache *c, int layer);
/* Writes the new k, v (B, Tn, W) of layer into the cache and returns the attention of
 * q (B, Tn, H*D) over the layer's past + new keys (op_attention_ex with H, Hkv, scale, causal
 * offset past, the cached key mask and bias (H, Tn, S) or NULL, S = kv_cache_keys): (B, Tn, H*D)
 * in the arena. No tape: NULL when g records with an input requiring grad, on a shape mismatch
 * or arena OOM. */
peft_tensor *kv_cache_attend(peft_graph *g, peft_kv_cache *c, int layer, peft_tensor *q,
                             peft_tensor *k, peft_tensor *v, int H, int Hkv, float scale,
                             int causal, peft_tensor *bias);
/* kv_cache_attend with every attention option (peft/ops.h peft_attn_opts: causal, bias, sliding
 * window, soft-capping; key_mask is the cache's). The window counts cache entries (prefix
 * included), as transformers' cache positions do. */
peft_tensor *kv_cache_attend_opt(peft_graph *g, peft_kv_cache *c, int layer, peft_tensor *q,
                                 peft_tensor *k, peft_tensor *v, int H, int Hkv, float scale,
                                 const peft_attn_opts *opts);
/* Encoder-decoders, first forward: room for Te encoder positions of width Wc per layer and a
 * copy of the encoder key mask (B, Te) (NULL = all visible). 0, or -1 on OOM. */
int kv_cache_begin_cross(peft_kv_cache *c, int64_t Te, int64_t Wc, const int32_t *enc_mask);
/* stores layer's cross keys/values (B, Te, Wc). 0, or -1 on a shape mismatch. */
int kv_cache_put_cross(peft_kv_cache *c, int layer, const peft_tensor *ck, const peft_tensor *cv);
/* arena views (B, Te, Wc) of layer's stored cross keys and values (no copy); -1 on OOM */
int kv_cache_cross(peft_graph *g, peft_kv_cache *c, int layer, peft_tensor **ck, peft_tensor **cv);
/* the forward succeeded: the new entries (and cross keys/values) become part of the past */
void kv_cache_commit(peft_kv_cache *c);

#endif
