/* t5_forward.c — the T5ForConditionalGeneration forward pass (transformers 4.44), over
 * core/ops.h; every linear goes through its site.
 *
 *   encoder: e = shared[input_ids] (B,T,C), prompt tuning prepends (B,P,C) (mask gets P ones)
 *            per block: h += o(attn(q,k,v of rms(h); bias = relative buckets, bidirectional))
 *                       h += wo(act(wi(rms(h))))     (gated: act(wi_0 x) * wi_1 x)
 *            enc = rms_f(h)                                                      (B,Te,C)
 *   decoder: d = shared[decoder_input_ids]  (or labels shifted right: decoder_start_token_id
 *            first, -100 -> pad_token_id)                                          (B,Td,C)
 *            per block: causal self-attention with the unidirectional bucket bias,
 *                       cross-attention on enc (no position bias, encoder key mask),
 *                       feed-forward; then rms_f
 *   logits = (tied ? d_model^-0.5 : 1) * h @ lm_head^T                           (B,Td,V)
 *   loss   = mean CE of logits against labels (B,Td) ignoring -100 (no shift)
 * T5 attention is unscaled (scale 1). Each stack computes its bias once (block 0's table) and
 * every block reuses it, as HF does.
 *
 * Prefix tuning (model.h's layer_prefix; PEFT 0.13.2 hands T5 a legacy past_key_values tuple):
 * only the decoder gets prefixes. Self-attention (stack 1): the P prefix keys/values are
 * prepended, the decoder key mask gets P leading ones and the queries sit at positions
 * P..P+Td-1 for the relative bias (HF computes the bias for P+Td positions and keeps the last
 * Td query rows). Cross-attention (stack 2): transformers 4.44's T5Attention.project uses the
 * past cross keys/values INSTEAD of projecting the encoder states when their length equals the
 * encoder length (P == Te), and ignores them otherwise; this does the same (the EncDecAttention
 * k/v sites then do not run). As HF zips the decoder blocks with the past tuple, a prefix
 * covering fewer layers (n_layers = num_layers) than num_decoder_layers runs only that many
 * decoder blocks.
 * Incremental decoding (in->cache, core/kv_cache.h): the first call runs the encoder and stores
 * every decoder layer's cross keys/values (projected, or the cross prefix as above) and the
 * encoder mask; each call runs only its decoder_input_ids (B, Td) at positions past..past+Td-1
 * (past = cached decoder keys, prefix included) and appends their self-attention keys/values.
 * Not modelled: dropout on the attention probabilities (op_attention_ex has none); every other
 * dropout_rate dropout is applied in training mode.
 */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "core/model/site.h"
#include "core/ops/ops.h"
#include "t5.h"
#include "t5_attention.h"
#include "core/model/kv_cache.h"

/* a (B, lead + n) i32 arena array: per row `lead` ones, then src's row (ones when src is
 * NULL): ids and labels copied (ops keep the pointers until backward), masks extended */
static int32_t *arena_rows(peft_graph *g, const int32_t *src, int64_t B, int64_t lead, int64_t n)
{
    int64_t shape[2] = {B, lead + n};
    peft_tensor *t = peft_graph_tensor_raw(g, PEFT_DTYPE_I32, 2, shape);
    if (!t) return NULL;
    int32_t *o = t->data;
    for (int64_t b = 0; b < B; b++) {
        for (int64_t i = 0; i < lead; i++) o[b * (lead + n) + i] = 1;
        for (int64_t i = 0; i < n; i++) o[b * (lead + n) + lead + i] = src ? src[b * n + i] : 1;
    }
    return o;
}

static int check_ids(const int32_t *ids, int64_t B, int64_t T, int64_t V, const char *what,
                     char *err, size_t errlen)
{
    for (int64_t i = 0; i < B * T; i++)
        if (ids[i] < 0 || ids[i] >= V) {
            snprintf(err, errlen, "t5: %s[%lld][%lld] = %d is outside the vocabulary [0, %lld)",
                     what, (long long)(i / T), (long long)(i % T), ids[i], (long long)V);
            return -1;
        }
    return 0;
}

/* checks the inputs; *Td = decoder length, *L = labels per row (0 without labels) */
static int check_inputs(const t5_dims *d, const peft_model_inputs *in, int64_t *Td, int64_t *L,
                        char *err, size_t errlen)
{
    if (!in || !in->input_ids || in->B <= 0 || in->T <= 0) {
        snprintf(err, errlen, "t5: inputs need input_ids with B > 0 and T > 0");
        return -1;
    }
    const int64_t B = in->B;
    const char *other = in->token_type_ids ? "token_type_ids"
                        : in->start_positions ? "start_positions"
                        : in->end_positions ? "end_positions" : NULL;
    if (other) { /* refused, never silently ignored */
        snprintf(err, errlen, "t5: T5ForConditionalGeneration takes no %s", other);
        return -1;
    }
    if (check_ids(in->input_ids, B, in->T, d->V, "input_ids", err, errlen)) return -1;
    *L = in->labels ? (in->labels_len > 0 ? in->labels_len : in->T) : 0;
    if (in->decoder_input_ids) {
        if (in->Td <= 0) {
            snprintf(err, errlen, "t5: decoder_input_ids need Td > 0 (got %lld)", (long long)in->Td);
            return -1;
        }
        *Td = in->Td;
        if (check_ids(in->decoder_input_ids, B, *Td, d->V, "decoder_input_ids", err, errlen))
            return -1;
        if (*L && *L != *Td) {
            snprintf(err, errlen, "t5: labels have %lld tokens per row but decoder_input_ids %lld; "
                     "logits (B, Td, V) are scored against labels (B, Td)", (long long)*L,
                     (long long)*Td);
            return -1;
        }
    } else if (*L) {
        if (!d->has_start || !d->has_pad) {
            snprintf(err, errlen, "t5: no decoder_input_ids, and config.json has no %s to shift the "
                     "labels right with", d->has_start ? "pad_token_id" : "decoder_start_token_id");
            return -1;
        }
        if (d->start >= d->V || d->pad >= d->V) {
            snprintf(err, errlen, "t5: decoder_start_token_id (%d) and pad_token_id (%d) must be "
                     "in the vocabulary [0, %lld) to shift the labels right", d->start, d->pad,
                     (long long)d->V);
            return -1;
        }
        *Td = *L;
    } else {
        snprintf(err, errlen, "t5: inputs need decoder_input_ids or labels (the decoder input is "
                 "the labels shifted right)");
        return -1;
    }
    if (in->decoder_attention_mask && in->Td != *Td) {
        snprintf(err, errlen, "t5: decoder_attention_mask has %lld tokens per row, the decoder "
                 "input %lld", (long long)in->Td, (long long)*Td);
        return -1;
    }
    for (int64_t i = 0; i < B * *L; i++) {
        int32_t l = in->labels[i];
        if (l != -100 && (l < 0 || l >= d->V)) {
            snprintf(err, errlen, "t5: labels[%lld][%lld] = %d is neither -100 nor in [0, %lld)",
                     (long long)(i / *L), (long long)(i % *L), l, (long long)d->V);
            return -1;
        }
    }
    return 0;
}

static int check_prompt_shape(const peft_tensor *t, int64_t B, int64_t P, int64_t W,
                              const char *what, int layer, char *err, size_t errlen)
{
    if (t && t->ndim == 3 && t->dtype == PEFT_DTYPE_F32 && t->shape[0] == B && t->shape[1] == P &&
        t->shape[2] == W)
        return 0;
    char got[96] = "NULL";
    if (t)
        snprintf(got, sizeof got, "ndim %d, (%lld, %lld, %lld)", t->ndim, (long long)t->shape[0],
                 (long long)(t->ndim > 1 ? t->shape[1] : 0), (long long)(t->ndim > 2 ? t->shape[2] : 0));
    if (layer >= 0)
        snprintf(err, errlen, "t5: the prompt hook's %s for decoder layer %d is %s, expected f32 "
                 "(%lld, %lld, %lld)", what, layer, got, (long long)B, (long long)P, (long long)W);
    else
        snprintf(err, errlen, "t5: the prompt hook's %s are %s, expected f32 (%lld, %lld, %lld)",
                 what, got, (long long)B, (long long)P, (long long)W);
    return -1;
}

static peft_tensor *activation(peft_graph *g, int act, peft_tensor *x)
{
    switch (act) {
    case T5_ACT_RELU: return op_relu(g, x);
    case T5_ACT_GELU_TANH: return op_gelu_tanh(g, x);
    case T5_ACT_GELU_ERF: return op_gelu_erf(g, x);
    default: return op_silu(g, x);
    }
}

// x (B,T,C) -> wo(dropout(act(wi x) [* wi_1 x])) (B,T,C)
static peft_tensor *feed_forward(peft_graph *g, const t5_dims *d, const t5_block *b, peft_tensor *x)
{
    peft_tensor *h = peft_site_forward(g, b->wi, x); /* (B,T,F) */
    if (!h || !(h = activation(g, d->act, h))) return NULL;
    if (b->wi1) {
        peft_tensor *lin = peft_site_forward(g, b->wi1, x);
        if (!lin || !(h = op_mul(g, h, lin))) return NULL;
    }
    if (!(h = op_dropout(g, h, d->dropout))) return NULL;
    return peft_site_forward(g, b->wo, h);
}

// x (B,T,C); prefix pk, pv (B,P,inner) or NULL; bias (H,T,S) -> o(attn) (B,T,C), over
// [prefix +] these keys (S = P+T), or with a cache over the cached past + these (S = past+T)
static peft_tensor *self_attention(peft_graph *g, const t5_dims *d, const t5_attn *a,
                                   peft_tensor *x, peft_tensor *pk, peft_tensor *pv, int causal,
                                   const int32_t *mask, peft_tensor *bias, peft_kv_cache *c,
                                   int layer)
{
    peft_tensor *q = peft_site_forward(g, a->q, x); /* (B,T,inner) */
    peft_tensor *k = q ? peft_site_forward(g, a->k, x) : NULL;
    peft_tensor *v = k ? peft_site_forward(g, a->v, x) : NULL;
    if (!v) return NULL;
    peft_tensor *att;
    if (c) {
        if (pk && kv_cache_put_prefix(c, layer, pk, pv)) return NULL;
        att = kv_cache_attend(g, c, layer, q, k, v, (int)d->H, (int)d->H, 1.0f, causal, bias);
    } else {
        if (pk && (!(k = op_concat_seq(g, pk, k)) || !(v = op_concat_seq(g, pv, v)))) return NULL;
        att = op_attention_ex(g, q, k, v, (int)d->H, (int)d->H, 1.0f, causal, mask, bias);
    }
    return att ? peft_site_forward(g, a->o, att) : NULL;
}

// x (B,Td,C), enc (B,Te,C) or the past ck, cv (B,Te,inner) (a cross prefix, or the cache's)
//   -> o(attn) (B,Td,C); with a cache and enc (its first fill) the keys/values used are stored
static peft_tensor *cross_attention(peft_graph *g, const t5_dims *d, const t5_attn *a,
                                    peft_tensor *x, peft_tensor *enc, peft_tensor *ck,
                                    peft_tensor *cv, const int32_t *mask, peft_kv_cache *c,
                                    int layer)
{
    peft_tensor *q = peft_site_forward(g, a->q, x);
    if (!q) return NULL;
    peft_tensor *k = ck, *v = cv;
    if (!ck && (!(k = peft_site_forward(g, a->k, enc)) || !(v = peft_site_forward(g, a->v, enc))))
        return NULL;
    if (c && enc && kv_cache_put_cross(c, layer, k, v)) return NULL;
    peft_tensor *att = op_attention_ex(g, q, k, v, (int)d->H, (int)d->H, 1.0f, 0, mask, NULL);
    return att ? peft_site_forward(g, a->o, att) : NULL;
}

/* h + dropout(y) */
static peft_tensor *residual(peft_graph *g, const t5_dims *d, peft_tensor *h, peft_tensor *y)
{
    if (!y || !(y = op_dropout(g, y, d->dropout))) return NULL;
    return op_add(g, h, y);
}

/* one block (peft_block_fn, checkpointed in training when asked): h (B,T,C) -> h (B,T,C).
 * Encoder: self-attention (bidirectional) + feed-forward; decoder: causal self-attention over
 * [prefix +] these keys (or the cache), cross-attention on enc (or the past ck, cv), feed-forward */
typedef struct t5_block_ud {
    const t5_dims *d;
    const t5_block *b;
    int dec, layer;
    peft_tensor *pk, *pv, *ck, *cv; /* prefixes (decoder, prompt learning) or NULL */
    peft_tensor *enc;               /* (B,Te,C) encoder states (decoder) or NULL */
    peft_tensor *bias;              /* (H,T,S) relative position bias */
    const int32_t *self_mask, *enc_mask;
    peft_kv_cache *c;               /* decoder with a cache (never while recording) */
} t5_block_ud;

static peft_tensor *t5_block_fn(peft_graph *g, void *p, peft_tensor *h)
{
    const t5_block_ud *u = p;
    const t5_dims *d = u->d;
    const t5_block *b = u->b;
    peft_tensor *x = peft_site_norm(g, b->ln_self, h);
    if (!x || !(h = residual(g, d, h, self_attention(g, d, &b->self, x, u->pk, u->pv, u->dec,
                                                     u->self_mask, u->bias, u->c, u->layer))))
        return NULL;
    if (u->dec && (!(x = peft_site_norm(g, b->ln_cross, h)) ||
                   !(h = residual(g, d, h, cross_attention(g, d, &b->cross, x, u->enc, u->ck,
                                                           u->cv, u->enc_mask, u->c, u->layer)))))
        return NULL;
    if (!(x = peft_site_norm(g, b->ln_ff, h))) return NULL;
    return residual(g, d, h, feed_forward(g, d, b, x));
}

/* the block, checkpointed when ckpt: the encoder states and a trainable bias are its other
 * differentiable inputs */
static peft_tensor *run_block(peft_graph *g, int ckpt, t5_block_ud *u, peft_tensor *h)
{
    if (!ckpt) return t5_block_fn(g, u, h);
    peft_tensor *extra[2];
    int n = 0;
    if (u->enc && u->enc->requires_grad) extra[n++] = u->enc;
    if (u->bias && u->bias->requires_grad) extra[n++] = u->bias;
    return peft_checkpoint_ex(g, t5_block_fn, u, sizeof *u, h, extra, n);
}

#define OOM_IF(cond) do { if (cond) goto oom; } while (0)

/* a forward with a KV cache: decoder_input_ids, no tape, a cache this model filled */
static int check_cache(const peft_kv_cache *c, const peft_graph *g, const peft_model_inputs *in,
                       int64_t Pp, char *err, size_t errlen)
{
    if (g->recording) {
        snprintf(err, errlen, "t5: a forward with a KV cache runs without the tape (set "
                 "g->recording = 0)");
        return -1;
    }
    if (!in->decoder_input_ids) {
        snprintf(err, errlen, "t5: a forward with a KV cache needs decoder_input_ids (the new "
                 "decoder tokens)");
        return -1;
    }
    if (c->len > 0 && !c->cross_ready) {
        snprintf(err, errlen, "t5: the KV cache holds no encoder states (filled by a decoder-only "
                 "model?); reset it");
        return -1;
    }
    if (c->len > 0 && c->n_prefix != Pp) {
        snprintf(err, errlen, "t5: the KV cache was filled with %lld prefix entries, the active "
                 "adapters give %lld (reset the cache when the adapter changes)",
                 (long long)c->n_prefix, (long long)Pp);
        return -1;
    }
    return 0;
}

/* The encoder over the prompt's virtual tokens (prompt tuning, P of them) and the ids:
 * (B, P + T, C) in *enc, the key mask (B, P + T) or NULL in *enc_mask. 0, -1 with err, or 1 when
 * the step arena ran out. */
static int t5_encode(peft_base_model *m, peft_graph *g, const peft_model_inputs *in,
                     const peft_prompt_hooks *ph, int64_t P, int ckpt, int32_t **enc_mask,
                     peft_tensor **enc, char *err, size_t errlen)
{
    t5_state *s = m->arch_state;
    const t5_dims *d = &s->d;
    const int64_t B = in->B, T = in->T, Te = P + T;
    int32_t bad = 0;
    int32_t *ids = arena_rows(g, in->input_ids, B, 0, T);
    if (!ids || (in->attention_mask && !(*enc_mask = arena_rows(g, in->attention_mask, B, P, T))))
        return 1;
    peft_tensor *h = op_embedding(g, s->shared, ids, B, T, &bad); /* (B,T,C) */
    if (!h) return 1;
    if (P) {
        peft_tensor *vt = ph->virtual_tokens(ph->ud, g, B);
        if (check_prompt_shape(vt, B, P, d->C, "virtual tokens", -1, err, errlen)) return -1;
        if (!(h = op_concat_seq(g, vt, h))) return 1; /* (B,Te,C) */
    }
    if (!(h = op_dropout(g, h, d->dropout))) return 1;
    peft_tensor *ebias = t5_position_bias(g, s->enc_rel, Te, Te, 0, 1, (int)d->NB, (int)d->maxd);
    if (!ebias) return 1; /* (H,Te,Te) */
    if (m->embed_outputs_require_grad && g->recording) h->requires_grad = 1; /* enable_input_require_grads */
    for (int64_t l = 0; l < d->L; l++) {
        t5_block_ud u = {.d = d, .b = &s->enc[l], .bias = ebias, .self_mask = *enc_mask};
        if (!(h = run_block(g, ckpt, &u, h))) return 1;
    }
    h = peft_site_norm(g, s->enc_ln, h);
    if (!h || !(*enc = op_dropout(g, h, d->dropout))) return 1; /* (B,Te,C) */
    return 0;
}

/* Prefix tuning, decoder layer l: its self-attention past keys and values *pk, *pv (B, Pp,
 * inner), and the cross-attention ones *ck, *cv when the hook has them and they are as long as
 * the encoder states (Pp == Te; else the encoder states are used). 0 or -1 with err. */
static int dec_prefix(const peft_prompt_hooks *ph, peft_graph *g, int l, int64_t B, int64_t Pp,
                      int64_t Te, int64_t inner, peft_tensor **pk, peft_tensor **pv,
                      peft_tensor **ck, peft_tensor **cv, char *err, size_t errlen)
{
    if (ph->layer_prefix(ph->ud, g, 1, l, B, pk, pv) != 0) {
        snprintf(err, errlen, "t5: the prefix hook has no self-attention prefix for "
                 "decoder layer %lld (T5's past_key_values cover every decoder layer)",
                 (long long)l);
        return -1;
    }
    if (check_prompt_shape(*pk, B, Pp, inner, "prefix keys", l, err, errlen) ||
        check_prompt_shape(*pv, B, Pp, inner, "prefix values", l, err, errlen))
        return -1;
    /* cross past used instead of the encoder states only when as long as them */
    if (Pp == Te && ph->layer_prefix(ph->ud, g, 2, l, B, ck, cv) == 0 &&
        (check_prompt_shape(*ck, B, Pp, inner, "cross-attention prefix keys", l, err, errlen) ||
         check_prompt_shape(*cv, B, Pp, inner, "cross-attention prefix values", l, err, errlen)))
        return -1;
    return 0;
}

/* The decoder's input ids (B, Td) in the arena: decoder_input_ids, else T5._shift_right(labels)
 * (the start token, then the labels with -100 as pad). NULL when the arena ran out. */
static int32_t *decoder_ids(peft_graph *g, const t5_dims *d, const peft_model_inputs *in,
                            int64_t Td, int64_t L)
{
    const int64_t B = in->B;
    int32_t *dids = arena_rows(g, in->decoder_input_ids, B, 0, Td);
    if (!dids || in->decoder_input_ids) return dids;
    for (int64_t bi = 0; bi < B; bi++)
        for (int64_t t = 0; t < Td; t++) {
            int32_t v = t == 0 ? d->start : in->labels[bi * L + t - 1];
            dids[bi * Td + t] = v == -100 ? d->pad : v;
        }
    return dids;
}

/* the decoder's last hidden state h (B,Td,C) -> final norm, lm_head (B,Td,V) and the loss over
 * L labels; the KV cache's step committed. 0, or -1 out of memory */
static int lm_head(peft_base_model *m, peft_graph *g, const peft_model_inputs *in, peft_tensor *h,
                   int64_t L, peft_model_outputs *out)
{
    t5_state *s = m->arch_state;
    const t5_dims *d = &s->d;
    const int64_t B = in->B;
    peft_kv_cache *c = in->cache;
    OOM_IF(!(h = peft_site_norm(g, s->dec_ln, h)) || !(h = op_dropout(g, h, d->dropout)));
    if (d->tie) OOM_IF(!(h = op_scale(g, h, (float)(1.0 / sqrt((double)d->C)))));
    if (L && m->chunked_loss && g->recording && !c && !s->lm_head->requires_grad &&
        !m->row_adapter) {
        /* training: the loss over row chunks, never the whole (B,Td,V) logits */
        int32_t *tgt = arena_rows(g, in->labels, B, 0, L);
        OOM_IF(!tgt || !(out->loss = op_linear_cross_entropy(g, h, s->lm_head, tgt, -100)));
        return 0;
    }
    peft_tensor *logits = op_linear(g, h, s->lm_head, NULL, 0); /* (B,Td,V) */
    OOM_IF(!logits);
    out->logits = logits;
    if (L) {
        int32_t *tgt = arena_rows(g, in->labels, B, 0, L);
        OOM_IF(!tgt || !(out->loss = op_cross_entropy(g, logits, tgt, -100)));
    }
    if (c) kv_cache_commit(c); /* only a forward that succeeded joins the past */
    return 0;
oom:
    return -1;
}

int t5_forward(peft_base_model *m, peft_graph *g, const peft_model_inputs *in,
               peft_model_outputs *out, char *err, size_t errlen)
{
    t5_state *s = m->arch_state;
    const t5_dims *d = &s->d;
    memset(out, 0, sizeof *out);
    int64_t Td = 0, L = 0;
    if (check_inputs(d, in, &Td, &L, err, errlen)) return -1;
    const int64_t B = in->B, T = in->T, inner = d->H * d->D;
    const peft_prompt_hooks *ph = m->prompt && m->prompt->n_virtual > 0 ? m->prompt : NULL;
    const int64_t P = ph && ph->virtual_tokens ? ph->n_virtual : 0;  /* prompt tuning */
    const int64_t Pp = ph && ph->layer_prefix ? ph->n_virtual : 0;   /* prefix tuning */
    peft_kv_cache *c = in->cache;
    if (c && check_cache(c, g, in, Pp, err, errlen)) return -1;
    const int cont = c && c->len > 0; /* encoder states, prefix and past decoder keys cached */
    /* per block recomputation in backward; prompt hooks add inputs to the blocks: those run plain */
    const int ckpt = m->gradient_checkpointing && g->recording && !m->prompt;
    const int64_t Te = cont ? c->Te : P + T;
    const int64_t past = cont ? c->len : Pp; /* decoder keys before these Td tokens */
    int32_t bad = 0;
    peft_tensor *h, *enc = NULL;
    int32_t *enc_mask = NULL;

    /* ---- encoder (once per cache) ---- */
    if (cont) {
        enc_mask = c->enc_mask;
    } else {
        int e = t5_encode(m, g, in, ph, P, ckpt, &enc_mask, &enc, err, errlen);
        if (e < 0) return -1;
        OOM_IF(e);
    }

    /* ---- decoder ---- */
    int32_t *dids = decoder_ids(g, d, in, Td, L);
    OOM_IF(!dids);
    int32_t *dec_mask = NULL; /* without a cache: (B, Pp + Td); the cache keeps its own */
    OOM_IF(!c && in->decoder_attention_mask &&
           !(dec_mask = arena_rows(g, in->decoder_attention_mask, B, Pp, Td)));
    OOM_IF(!(h = op_embedding(g, s->shared, dids, B, Td, &bad))); /* (B,Td,C) */
    OOM_IF(!(h = op_dropout(g, h, d->dropout)));
    if (m->embed_outputs_require_grad && g->recording) h->requires_grad = 1; /* shared embeddings */
    /* queries at past..past+Td-1 over keys 0..past+Td-1 (HF keeps the last Td rows) */
    peft_tensor *dbias = t5_position_bias(g, s->dec_rel, Td, past + Td, past, 0, (int)d->NB,
                                          (int)d->maxd);
    OOM_IF(!dbias); /* (H,Td,past+Td) */
    const int64_t n_run = Pp && m->n_layers < d->Ld ? m->n_layers : d->Ld;
    if (c) {
        if (kv_cache_begin(c, (int)n_run, inner, B, cont ? 0 : Pp, Td, in->decoder_attention_mask,
                           "t5", err, errlen))
            return -1;
        OOM_IF(!cont && kv_cache_begin_cross(c, Te, inner, enc_mask));
    }
    for (int64_t l = 0; l < n_run; l++) {
        peft_tensor *pk = NULL, *pv = NULL, *ck = NULL, *cv = NULL;
        if (Pp && !cont && dec_prefix(ph, g, (int)l, B, Pp, Te, inner, &pk, &pv, &ck, &cv, err, errlen))
            return -1;
        if (cont) OOM_IF(kv_cache_cross(g, c, (int)l, &ck, &cv)); /* (B,Te,inner) */
        t5_block_ud u = {.d = d, .b = &s->dec[l], .dec = 1, .layer = (int)l, .pk = pk, .pv = pv,
                         .ck = ck, .cv = cv, .enc = enc, .bias = dbias, .self_mask = dec_mask,
                         .enc_mask = enc_mask, .c = c};
        OOM_IF(!(h = run_block(g, ckpt, &u, h)));
    }
    OOM_IF(lm_head(m, g, in, h, L, out));
    return 0;
oom:
    snprintf(err, errlen, "t5: forward failed: out of memory in the step arena (B=%lld, T=%lld, "
             "Td=%lld)", (long long)B, (long long)T, (long long)Td);
    return -1;
}
