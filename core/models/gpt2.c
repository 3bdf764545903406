/* gpt2.c — GPT2LMHeadModel and GPT2ForSequenceClassification (Hugging Face transformers 4.44),
 * forward-only over core/ops.h.
 *
 * Parameters keep HF names (transformer.wte.weight, transformer.h.{i}.attn.c_attn.weight, ...);
 * lm_head.weight is tied to transformer.wte.weight unless tie_word_embeddings is false. The four
 * Conv1D layers of each block (attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj) are linear sites,
 * weights stored (in, out); the classification head "score" (num_labels, n_embd), no bias, and
 * the LM head "lm_head" are linear sites with layer index -1; transformer.wte is an embedding
 * site.
 *
 *   ids (B,T) -> h = wte[ids] + wpe[0..T-1] (+ wte[token_type_ids]) (B,T,C)
 *   per block:  h += c_proj(attn(split(c_attn(ln_1(h)))))      c_attn: C -> 3C
 *               h += mlp.c_proj(gelu(mlp.c_fc(ln_2(h))))        c_fc: C -> I, c_proj: I -> C
 *   LM head:  logits = ln_f(h) @ lm_head^T                      (B,T,V)
 *             loss   = mean CE of logits[:, :-1] against labels[:, 1:], ignoring -100
 *   seq cls:  logits = score(ln_f(h)[b, last non-pad token])     (B,L); CE, MSE when L = 1
 * Prompt learning (model.h hooks) as decoder.h: virtual tokens in front (positions 0..P+T-1),
 * prefix keys/values in front of each block's keys/values (positions P..P+T-1).
 * Incremental decoding (in->cache, decoder.h): only the new tokens run, at positions
 * past..past+T-1 (or in->position_ids), attending over the cached keys/values of every block.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/model/model_internal.h"
#include "core/model/site.h"
#include "core/models/decoder.h"
#include "core/ops/ops.h"
#include "core/tensor/graph_internal.h"

#define LM_CLASS "GPT2LMHeadModel"
#define CLS_CLASS "GPT2ForSequenceClassification"

typedef struct gpt2_block {
    peft_tensor *ln1_w, *ln1_b, *ln2_w, *ln2_b; /* (C) */
    peft_site *ln_1, *ln_2;                     /* norm sites over them */
    peft_site *c_attn;                          /* (C, 3C) */
    peft_site *attn_proj;                       /* (C, C) */
    peft_site *c_fc;                            /* (C, I) */
    peft_site *mlp_proj;                        /* (I, C) */
} gpt2_block;

typedef struct gpt2_state {
    int64_t C, H, L, P, V, I; /* n_embd, n_head, n_layer, n_positions, vocab_size, n_inner */
    double eps;
    float embd_pdrop, resid_pdrop;
    peft_tensor *wte;     /* (V, C) */
    peft_tensor *wpe;     /* (P, C) */
    peft_tensor *lnf_w, *lnf_b;
    peft_site *ln_f;      /* transformer.ln_f, a norm site over lnf_w, lnf_b */
    peft_site *wte_site;  /* transformer.wte, an embedding site over wte */
    peft_site *lm_head;   /* lm_head (V, C), over wte when tied; LM head only */
    peft_site *score;     /* (num_labels, C): sequence classification only */
    gpt2_block *blocks;   /* L */
    dec_head head;
} gpt2_state;

static void gpt2_free_state(void *p)
{
    gpt2_state *s = p;
    if (!s) return;
    free(s->blocks);
    free(s);
}

/* takes "transformer.<rest>" with "<rest>" as the old-checkpoint fallback */
static peft_tensor *take(peft_base_model *m, const char *name, int ndim, int64_t d0, int64_t d1,
                         char *err, size_t errlen)
{
    int64_t shape[2] = {d0, d1};
    const char *alt = strncmp(name, "transformer.", 12) == 0 ? name + 12 : NULL;
    return peft_model_take_weight(m, name, alt, ndim, shape, err, errlen);
}

static int config_dims(const peft_base_model *m, const char *class_name, gpt2_state *s,
                       char *err, size_t errlen)
{
    const char *cfg = "config.json";
    if (peft_config_int_buf(m, "n_embd", 1, 768, &s->C, err, errlen) ||
        peft_config_int_buf(m, "n_head", 1, 12, &s->H, err, errlen) ||
        peft_config_layers(m, "n_layer", 1, 12, &s->L, err, errlen) ||
        peft_config_int_buf(m, "n_positions", 1, 1024, &s->P, err, errlen) ||
        peft_config_int_buf(m, "vocab_size", 1, 50257, &s->V, err, errlen) ||
        peft_config_real_buf(m, "layer_norm_epsilon", 1, 1e-5, &s->eps, err, errlen))
        return -1;
    if (s->C <= 0 || s->H <= 0 || s->L < 0 || s->P <= 0 || s->V <= 0) {
        snprintf(err, errlen, "%s/%s: n_embd (%lld), n_head (%lld), n_positions (%lld) and "
                 "vocab_size (%lld) must be positive, n_layer (%lld) non-negative", m->dir, cfg,
                 (long long)s->C, (long long)s->H, (long long)s->P, (long long)s->V, (long long)s->L);
        return -1;
    }
    if (s->C % s->H) {
        snprintf(err, errlen, "%s/%s: n_embd (%lld) is not a multiple of n_head (%lld)", m->dir,
                 cfg, (long long)s->C, (long long)s->H);
        return -1;
    }
    if (peft_config_int_buf(m, "n_inner", 1, 4 * s->C, &s->I, err, errlen)) return -1;
    if (s->I <= 0) {
        snprintf(err, errlen, "%s/%s: n_inner (%lld) must be positive", m->dir, cfg,
                 (long long)s->I);
        return -1;
    }

    const char *act;
    if (peft_config_str_buf(m, "activation_function", "gelu_new", &act, err, errlen)) return -1;
    if (strcmp(act, "gelu_new") != 0 && strcmp(act, "gelu_pytorch_tanh") != 0) {
        snprintf(err, errlen, "%s/%s: activation_function \"%s\" is unsupported (supported: "
                 "gelu_new, gelu_pytorch_tanh)", m->dir, cfg, act);
        return -1;
    }
    int scale_w, inv_idx, reorder;
    if (peft_config_bool_buf(m, "scale_attn_weights", 1, 1, &scale_w, err, errlen) ||
        peft_config_bool_buf(m, "scale_attn_by_inverse_layer_idx", 1, 0, &inv_idx, err, errlen) ||
        peft_config_bool_buf(m, "reorder_and_upcast_attn", 1, 0, &reorder, err, errlen))
        return -1;
    if (!scale_w) {
        snprintf(err, errlen, "%s/%s: scale_attn_weights = false is unsupported (attention is "
                 "always scaled by 1/sqrt(head_dim))", m->dir, cfg);
        return -1;
    }
    if (inv_idx || reorder) {
        snprintf(err, errlen, "%s/%s: %s = true is unsupported", m->dir, cfg,
                 inv_idx ? "scale_attn_by_inverse_layer_idx" : "reorder_and_upcast_attn");
        return -1;
    }
    double pe, pr;
    if (peft_config_real_buf(m, "embd_pdrop", 1, 0.1, &pe, err, errlen) ||
        peft_config_real_buf(m, "resid_pdrop", 1, 0.1, &pr, err, errlen))
        return -1;
    if (pe < 0 || pe >= 1 || pr < 0 || pr >= 1) {
        snprintf(err, errlen, "%s/%s: embd_pdrop (%g) and resid_pdrop (%g) must be in [0, 1)",
                 m->dir, cfg, pe, pr);
        return -1;
    }
    s->embd_pdrop = (float)pe;
    s->resid_pdrop = (float)pr;
    if (dec_head_read(m, class_name, LM_CLASS, CLS_CLASS, &s->head, err, errlen)) return -1;
    s->head.token_types = 1; /* GPT2Model adds wte(token_type_ids) */
    return 0;
}

/* registers a Conv1D site "<prefix>.<mod>" over <prefix>.<mod>.weight (in, out) and .bias (out) */
static peft_site *take_conv1d(peft_base_model *m, const char *module, int64_t in, int64_t out,
                              int layer, char *err, size_t errlen)
{
    char n[256];
    snprintf(n, sizeof n, "%s.weight", module);
    peft_tensor *w = take(m, n, 2, in, out, err, errlen);
    if (!w) return NULL;
    snprintf(n, sizeof n, "%s.bias", module);
    peft_tensor *b = take(m, n, 1, out, 0, err, errlen);
    if (!b) return NULL;
    peft_site *s = peft_model_add_site(m, module, PEFT_SITE_CONV1D, w, b, layer);
    if (!s) snprintf(err, errlen, "%s: cannot register site %s (out of memory)", m->dir, module);
    return s;
}

/* registers the LayerNorm "<module>" over its taken weight and bias as a norm site */
static peft_site *norm_site(peft_base_model *m, const char *module, peft_tensor *w, peft_tensor *b,
                            int layer, double eps, char *err, size_t errlen)
{
    peft_site *s = peft_model_add_norm_site(m, module, w, b, layer, PEFT_NORM_LAYER, (float)eps);
    if (!s) snprintf(err, errlen, "%s: cannot register site %s (out of memory)", m->dir, module);
    return s;
}

/* block li's norms and Conv1D sites (HF named_parameters() order). 0 or -1 with err */
static int build_block(peft_base_model *m, gpt2_state *s, int li, char *err, size_t errlen)
{
    const int64_t C = s->C, I = s->I;
    gpt2_block *b = &s->blocks[li];
    char n[256];
#define TAKE1(dst, fmt)                                                        \
    do {                                                                       \
        snprintf(n, sizeof n, fmt, li);                                        \
        if (!((dst) = take(m, n, 1, C, 0, err, errlen))) return -1;            \
    } while (0)
#define SITE(dst, fmt, in, out)                                                \
    do {                                                                       \
        snprintf(n, sizeof n, fmt, li);                                        \
        if (!((dst) = take_conv1d(m, n, in, out, li, err, errlen))) return -1; \
    } while (0)
#define NORM(dst, fmt, w, bias)                                                 \
    do {                                                                        \
        snprintf(n, sizeof n, fmt, li);                                         \
        if (!((dst) = norm_site(m, n, w, bias, li, s->eps, err, errlen))) return -1; \
    } while (0)
    TAKE1(b->ln1_w, "transformer.h.%d.ln_1.weight");
    TAKE1(b->ln1_b, "transformer.h.%d.ln_1.bias");
    NORM(b->ln_1, "transformer.h.%d.ln_1", b->ln1_w, b->ln1_b);
    SITE(b->c_attn, "transformer.h.%d.attn.c_attn", C, 3 * C);
    SITE(b->attn_proj, "transformer.h.%d.attn.c_proj", C, C);
    TAKE1(b->ln2_w, "transformer.h.%d.ln_2.weight");
    TAKE1(b->ln2_b, "transformer.h.%d.ln_2.bias");
    NORM(b->ln_2, "transformer.h.%d.ln_2", b->ln2_w, b->ln2_b);
    SITE(b->c_fc, "transformer.h.%d.mlp.c_fc", C, I);
    SITE(b->mlp_proj, "transformer.h.%d.mlp.c_proj", I, C);
#undef TAKE1
#undef SITE
#undef NORM
    return 0;
}

/* the head: score (sequence classification), or lm_head (nn.Linear, no bias; tied, its weight
 * is wte's, registered once as transformer.wte.weight). 0 or -1 with err */
static int build_head(peft_base_model *m, gpt2_state *s, char *err, size_t errlen)
{
    int tie;
    if (peft_config_bool_buf(m, "tie_word_embeddings", 1, 1, &tie, err, errlen)) return -1;
    if (s->head.seq_cls) {
        peft_tensor *w = peft_model_take_weight(m, "score.weight", NULL, 2,
                                                (int64_t[]){s->head.num_labels, s->C}, err, errlen);
        if (!w) return -1;
        if (!(s->score = peft_model_add_site(m, "score", PEFT_SITE_LINEAR, w, NULL, -1))) {
            snprintf(err, errlen, "%s: cannot register site score (out of memory)", m->dir);
            return -1;
        }
        return 0;
    }
    int64_t shape[2] = {s->V, s->C};
    peft_tensor *w = tie ? s->wte : peft_model_take_weight(m, "lm_head.weight", NULL, 2, shape,
                                                           err, errlen);
    if (!w) return -1;
    if (!(s->lm_head = peft_model_add_site(m, "lm_head", PEFT_SITE_LINEAR, w, NULL, -1))) {
        snprintf(err, errlen, "%s: cannot register site lm_head (out of memory)", m->dir);
        return -1;
    }
    if (tie) {
        peft_site_set_tied(s->lm_head);
        peft_site_set_tied(s->wte_site);
    }
    return 0;
}

static int gpt2_build(peft_base_model *m, char *err, size_t errlen)
{
    gpt2_state *s = calloc(1, sizeof *s);
    if (!s) { snprintf(err, errlen, "%s: out of memory", m->dir); return -1; }
    m->arch_state = s; /* freed by peft_base_model_free on any failure below */
    if (config_dims(m, NULL, s, err, errlen)) return -1;
    s->blocks = calloc((size_t)(s->L ? s->L : 1), sizeof *s->blocks);
    if (!s->blocks) { snprintf(err, errlen, "%s: out of memory", m->dir); return -1; }
    const int64_t C = s->C;

    /* HF named_parameters() order */
    if (!(s->wte = take(m, "transformer.wte.weight", 2, s->V, C, err, errlen)) ||
        !(s->wpe = take(m, "transformer.wpe.weight", 2, s->P, C, err, errlen)))
        return -1;
    if (!(s->wte_site = peft_model_add_site(m, "transformer.wte", PEFT_SITE_EMBEDDING, s->wte,
                                            NULL, -1))) {
        snprintf(err, errlen, "%s: cannot register site transformer.wte (out of memory)", m->dir);
        return -1;
    }
    for (int64_t i = 0; i < s->L; i++)
        if (build_block(m, s, (int)i, err, errlen)) return -1;
    if (!(s->lnf_w = take(m, "transformer.ln_f.weight", 1, C, 0, err, errlen)) ||
        !(s->lnf_b = take(m, "transformer.ln_f.bias", 1, C, 0, err, errlen)) ||
        !(s->ln_f = norm_site(m, "transformer.ln_f", s->lnf_w, s->lnf_b, -1, s->eps, err, errlen)))
        return -1;
    if (build_head(m, s, err, errlen)) return -1;
    m->class_name = s->head.class_name;
    m->task_type = s->head.seq_cls ? "SEQ_CLS" : "CAUSAL_LM";
    m->word_embeddings = s->wte;
    m->n_layers = (int)s->L;
    m->n_kv_heads = (int)s->H;
    m->head_dim = (int)(C / s->H);
    m->hidden_size = (int)C;
    m->is_encoder_decoder = 0;
    return 0;
}

/* one block (peft_block_fn, checkpointed in training when asked): h (B,Tq,C) -> h (B,Tq,C) */
typedef struct gpt2_block_ud {
    peft_base_model *m;
    int layer;
    dec_seq q;    /* the step's layout (arrays in the arena, before any checkpoint) */
    float scale;  /* attention scale */
    char *err;    /* the forward's message buffer; NULL in a backward recompute */
    size_t errlen;
} gpt2_block_ud;

/* h (B,Tq,C) + dropout(o), o the output of `site` (B,Tq,C): added into o (or dropout's fresh
 * output) in place when nobody reads that after (op_add_into), else a new tensor */
static peft_tensor *residual(peft_graph *g, const peft_site *site, peft_tensor *o, float p,
                             peft_tensor *h)
{
    peft_tensor *d = op_dropout(g, o, p);
    if (!d) return NULL;
    if (d != o || peft_site_plain_linear(site)) return op_add_into(g, d, h);
    return op_add(g, h, d);
}

static peft_tensor *gpt2_block_fn(peft_graph *g, void *p, peft_tensor *h)
{
    gpt2_block_ud *u = p;
    gpt2_state *s = u->m->arch_state;
    gpt2_block *b = &s->blocks[u->layer];
    const int64_t C = s->C;
    char spare[256];
    char *err = u->err ? u->err : spare;
    size_t errlen = u->err ? u->errlen : sizeof spare;
    peft_tensor *a = peft_site_norm(g, b->ln_1, h);
    peft_tensor *qkv = a ? peft_site_forward(g, b->c_attn, a) : NULL; /* (B,Tq,3C) */
    if (!qkv) return NULL;
    peft_tensor *att; /* (B,Tq,C) */
    if (!u->q.cache && !u->q.Px) {
        /* q, k, v read in place from c_attn's output (no slice copies) */
        /* its output only feeds c_proj's forward when c_proj reads it in no backward */
        const peft_attn_opts o = {.causal = 1, .key_mask = u->q.mask,
                                  .transient_out = peft_site_input_unread(b->attn_proj)};
        if (!(att = op_attention_packed(g, qkv, (int)s->H, (int)s->H, u->scale, &o))) {
            snprintf(err, errlen, "gpt2: forward failed: out of memory in the step arena "
                     "(attention of layer %d)", u->layer);
            return NULL;
        }
    } else { /* prefix keys/values or the KV cache join k and v: separate tensors */
        peft_tensor *qq = op_slice_lastdim(g, qkv, 0, C);
        peft_tensor *k = op_slice_lastdim(g, qkv, C, C);
        peft_tensor *v = op_slice_lastdim(g, qkv, 2 * C, C);
        if (!qq || !k || !v) return NULL;
        att = dec_attention(u->m, g, &u->q, u->layer, qq, k, v, (int)s->H, (int)s->H, u->scale,
                            "gpt2", err, errlen);
        if (!att) return NULL;
    }
    peft_tensor *o = peft_site_forward(g, b->attn_proj, att);
    if (!o || !(h = residual(g, b->attn_proj, o, s->resid_pdrop, h))) return NULL;

    peft_tensor *x = peft_site_input_unread(b->c_fc)
                         ? peft_site_norm_to(g, b->ln_2, h, PEFT_TRANSIENT_NORM)
                         : peft_site_norm(g, b->ln_2, h);
    peft_tensor *f = x ? peft_site_forward(g, b->c_fc, x) : NULL; /* (B,Tq,I) */
    /* GELU's output lives until mlp.c_proj's forward only when that reads it in no backward
     * (frozen, no adapter): then one buffer serves every layer, not one (B,Tq,I) each */
    const int slot = peft_site_input_unread(b->mlp_proj) ? PEFT_TRANSIENT_MLP : -1;
    if (!f || !(f = op_gelu_tanh_to(g, f, slot))) return NULL;
    peft_tensor *pp = peft_site_forward(g, b->mlp_proj, f); /* (B,Tq,C) */
    if (!pp || !(h = residual(g, b->mlp_proj, pp, s->resid_pdrop, h))) return NULL;
    return h;
}

/* the sequence (cached, new and virtual tokens) and every position id within n_positions
 * (wpe's rows). 0 or -1 with err */
static int check_positions(const gpt2_state *s, const dec_seq *q, char *err, size_t errlen)
{
    if (q->past + q->Tq > s->P) {
        snprintf(err, errlen, "gpt2: sequence length %lld exceeds n_positions %lld",
                 (long long)(q->past + q->Tq), (long long)s->P);
        if (q->cache && q->cache->len)
            snprintf(err + strlen(err), errlen - strlen(err), " (%lld cached + %lld new tokens)",
                     (long long)q->past, (long long)q->T);
        else if (q->Px + q->Pp)
            snprintf(err + strlen(err), errlen - strlen(err), " (%lld tokens + %lld virtual)",
                     (long long)q->T, (long long)(q->Px + q->Pp));
        return -1;
    }
    for (int64_t i = 0; i < q->B * q->Tq; i++)
        if (q->pos[i] >= s->P) {
            snprintf(err, errlen, "gpt2: position_ids[%lld][%lld] = %d is beyond n_positions %lld",
                     (long long)(i / q->Tq), (long long)(i % q->Tq), q->pos[i], (long long)s->P);
            return -1;
        }
    return 0;
}

static int gpt2_forward(peft_base_model *m, peft_graph *g, const peft_model_inputs *in,
                        peft_model_outputs *out, char *err, size_t errlen)
{
    gpt2_state *s = m->arch_state;
    memset(out, 0, sizeof *out);
    dec_seq q;
    if (dec_seq_begin(m, g, in, &s->head, s->V, "gpt2", &q, err, errlen)) return -1;
    if (check_positions(s, &q, err, errlen)) return -1;
    const int64_t B = q.B, Tq = q.Tq, C = s->C;
    const float scale = 1.0f / sqrtf((float)(C / s->H)); /* op_attention's */
    if (dec_cache_begin(&q, &s->head, (int)s->L, C, "gpt2", err, errlen)) return -1;

    int32_t bad = 0;
    peft_tensor *tok = peft_site_embed(g, s->wte_site, q.ids, B, q.T, &bad); /* (B,T,C) */
    if (!tok) goto oom;
    if (!(tok = dec_prepend_prompt(m, g, &q, tok, "gpt2", err, errlen))) return -1; /* (B,Tq,C) */
    /* HF 4.44: position_ids = arange(past, past + Tq), repeated over the batch so that the
     * position embedding adds row for row */
    peft_tensor *pe = op_embedding(g, s->wpe, q.pos, B, Tq, &bad); /* (B,Tq,C) */
    peft_tensor *h = pe ? op_add(g, tok, pe) : NULL;
    if (h && q.tt) { /* HF 4.44: hidden + self.wte(token_type_ids), through the wte site */
        peft_tensor *tte = peft_site_embed(g, s->wte_site, q.tt, B, Tq, &bad); /* (B,Tq,C) */
        h = tte ? op_add(g, h, tte) : NULL;
    }
    if (!h || !(h = op_dropout(g, h, s->embd_pdrop))) goto oom;

    if (m->embed_outputs_require_grad && g->recording) h->requires_grad = 1; /* enable_input_require_grads */
    /* prefix hooks add differentiable inputs to every block: those run plain */
    const int ckpt = m->gradient_checkpointing && g->recording && !m->prompt;
    if (err && errlen) err[0] = 0;
    for (int64_t l = 0; l < s->L; l++) {
        gpt2_block_ud u = {m, (int)l, q, scale, ckpt ? NULL : err, errlen};
        /* inference: each block's scratch rewound (peft_block_scoped) */
        h = ckpt ? peft_checkpoint(g, gpt2_block_fn, &u, sizeof u, h) : peft_block_scoped(g, gpt2_block_fn, &u, h);
        if (!h) {
            if (err && errlen && err[0]) return -1;
            goto oom;
        }
    }
    if (!(h = peft_site_norm(g, s->ln_f, h))) goto oom;
    out->last_hidden_state = h;

    if (!s->head.seq_cls && dec_chunked_loss_ok(m, g, in, s->lm_head)) {
        /* training: the loss over row chunks, never the whole (B,Tq,V) logits */
        if (!(out->loss = dec_lm_loss_chunked(g, &q, h, s->lm_head->info.weight, in->labels))) goto oom;
        return 0;
    }
    if (!s->head.seq_cls) {
        peft_tensor *logits = peft_site_forward(g, s->lm_head, h); /* (B,Tq,V) */
        if (!logits) goto oom;
        out->logits = logits;
        if (in->labels && !(out->loss = dec_lm_loss(g, &q, logits, in->labels))) goto oom;
        dec_cache_commit(&q); /* only a forward that succeeded joins the past */
        return 0;
    }
    peft_tensor *it = peft_graph_tensor_raw(g, PEFT_DTYPE_I32, 1, (int64_t[]){B});
    if (!it) goto oom;
    if (dec_pool_index(&s->head, &q, it->data, "gpt2", err, errlen)) return -1;
    peft_tensor *pooled = op_gather_rows(g, h, it->data);                         /* (B,C) */
    peft_tensor *logits = pooled ? peft_site_forward(g, s->score, pooled) : NULL; /* (B,L) */
    if (!logits) goto oom;
    out->logits = logits;
    if (in->labels &&
        dec_cls_loss(g, &s->head, logits, in->labels, B, &out->loss, "gpt2", err, errlen))
        return -1;
    return 0;
oom:
    snprintf(err, errlen, "gpt2: forward failed: out of memory in the step arena (B=%lld, T=%lld)",
             (long long)in->B, (long long)in->T);
    return -1;
}

/* parameters implied by config.json: wte, wpe, the blocks, ln_f and the head (lm_head only when
 * untied; score without bias) */
static int gpt2_count_params(const json_t *config, const char *class_name, int64_t *n,
                             char *err, size_t errlen)
{
    peft_base_model tmp = {0};
    tmp.dir = (char *)".";
    tmp.config = (json_t *)config;
    gpt2_state s;
    memset(&s, 0, sizeof s);
    if (config_dims(&tmp, class_name, &s, err, errlen)) return -1;
    int tie;
    if (peft_config_bool_buf(&tmp, "tie_word_embeddings", 1, 1, &tie, err, errlen)) return -1;
    const int64_t C = s.C, I = s.I;
    const int64_t block = 4 * C                    /* ln_1, ln_2 */
                          + C * 3 * C + 3 * C      /* attn.c_attn */
                          + C * C + C              /* attn.c_proj */
                          + C * I + I              /* mlp.c_fc */
                          + I * C + C;             /* mlp.c_proj */
    int64_t total = s.V * C + s.P * C + s.L * block + 2 * C;
    if (s.head.seq_cls) total += s.head.num_labels * C;
    else if (!tie) total += s.V * C;
    *n = total;
    return 0;
}

const peft_arch peft_arch_gpt2 = {
    .model_type = "gpt2",
    .class_name = LM_CLASS,
    .task_type = "CAUSAL_LM",
    .build = gpt2_build,
    .forward = gpt2_forward,
    .free_state = gpt2_free_state,
    .count_params = gpt2_count_params,
};
