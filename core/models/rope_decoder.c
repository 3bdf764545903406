/* rope_decoder.c — the forward of the LLaMA family (rope_decoder.h), transformers 4.44 eager,
 * forward-only over peft/ops.h.
 *
 * Each layer's model.layers.{i}.self_attn is registered as attention module i (peft_model_add_attn).
 * Parameters keep HF names (model.embed_tokens.weight, model.layers.{i}.self_attn.q_proj.weight,
 * ...). Every nn.Linear is a linear site with its layer index: q_proj, k_proj, v_proj (Phi-3:
 * one qkv_proj), o_proj, gate_proj, up_proj (Phi-3: one gate_up_proj), down_proj; lm_head (tied
 * to model.embed_tokens.weight when tie_word_embeddings) or score with index -1.
 *
 *   h = embed_tokens[ids]  (Gemma: * sqrt(C) as an f32 tensor, virtual tokens included)  (B,T,C)
 *   per layer:  a = norm(h);  q = rope(q_proj(a)) (B,T,H*D), k = rope(k_proj(a)), v = v_proj(a)
 *               o = o_proj(attn(q, k, v))  grouped-query, causal, sliding window (Mistral; Gemma2
 *                   on even layers), scores scale*q.k soft-capped (Gemma2) before the mask
 *               o = base->attn_hook(a, q, o) when set (ABI 1.4: adaption prompt)
 *               h += o  (Gemma2: h += norm(o))
 *               x = norm(h);  f = down_proj(act(gate_proj(x)) * up_proj(x))
 *               h += f  (Gemma2: h += norm(f))
 *   h = norm(h)
 *   causal LM:  logits = lm_head(h) (B,T,V) (Gemma2: cap * tanh(logits / cap)); shifted CE
 *   seq cls:    logits = score(h[b, last non-pad token]) (B,L); CE, or MSE when num_labels = 1
 * norm is RMSNorm w * x / rms (Gemma: (1 + w) * x / rms). Prompt learning and the KV cache as
 * decoder.h (prefix keys not rotated, positions after the prefix; the window counts the prefix).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "core/models/decoder.h"
#include "core/models/rope_decoder.h"
#include "core/models/rope_scaling.h"
#include "core/model/site.h"
#include "core/ops/ops.h"
#include "core/tensor/graph_internal.h"

enum { ACT_SILU, ACT_GELU_TANH, ACT_GELU, ACT_RELU };

typedef struct rdec_layer {
    peft_site *in_norm, *post_norm;    /* (C) norm sites: input_layernorm, post_attention_layernorm */
    peft_site *pre_ff, *post_ff;       /* (C): Gemma2's pre/post_feedforward_layernorm */
    peft_site *q, *k, *v, *qkv, *o;    /* (H*D, C), (Hkv*D, C) x2 or (H*D + 2 Hkv*D, C); (C, H*D) */
    peft_site *gate, *up, *gate_up, *down; /* (I, C) x2 or (2I, C); (C, I) */
    int64_t window;                    /* sliding window of this layer, 0 = none */
} rdec_layer;

typedef struct rdec_dims {
    int64_t C, H, Hkv, D, L, V, I;
    double eps;
    int qkv_bias, o_bias, mlp_bias, tie, act;
    int64_t window;                    /* config sliding_window (0 = none) */
    float scale;                       /* attention score scale */
    float attn_cap, final_cap;         /* Gemma2 soft-capping, 0 = none */
    rope_cfg rope;
    dec_head head;
} rdec_dims;

typedef struct rdec_state {
    const rdec_spec *spec;
    rdec_dims d;
    peft_tensor *embed;     /* (V, C) */
    peft_site *embed_site;  /* model.embed_tokens, an embedding site over embed */
    peft_site *norm;        /* model.norm (C), a norm site */
    peft_site *lm_head;     /* (V, C), causal LM */
    peft_site *score;       /* (num_labels, C), sequence classification */
    rdec_layer *layers;     /* L */
} rdec_state;

void rdec_free_state(void *p)
{
    rdec_state *s = p;
    if (!s) return;
    free(s->layers);
    free(s);
}

static int positive_real(const peft_base_model *m, const char *key, double def, int nullable,
                         double *out, char *err, size_t errlen)
{
    json_t *v = json_object_get(m->config, key);
    if (nullable && v && json_is_null(v)) { *out = 0; return 0; }
    if (peft_config_real_buf(m, key, 1, def, out, err, errlen)) return -1;
    if (!(*out > 0)) {
        snprintf(err, errlen, "%s/config.json: %s (%g) must be positive%s", m->dir, key, *out,
                 nullable ? " (or null)" : "");
        return -1;
    }
    return 0;
}

/* hidden_size, heads, layers, vocabulary, intermediate size, head_dim, key/value heads */
static int read_shape(const peft_base_model *m, const rdec_spec *sp, rdec_dims *d, char *err, size_t errlen)
{
    const char *dir = m->dir, *mt = sp->model_type;
    if (peft_config_int_buf(m, "hidden_size", 0, 0, &d->C, err, errlen) ||
        peft_config_int_buf(m, "num_attention_heads", 0, 0, &d->H, err, errlen) ||
        peft_config_layers(m, "num_hidden_layers", 0, 0, &d->L, err, errlen) ||
        peft_config_int_buf(m, "vocab_size", 0, 0, &d->V, err, errlen) ||
        peft_config_int_buf(m, "intermediate_size", 0, 0, &d->I, err, errlen))
        return -1;
    if (d->C <= 0 || d->H <= 0 || d->L < 0 || d->V <= 0 || d->I <= 0) {
        snprintf(err, errlen, "%s/config.json: hidden_size (%lld), num_attention_heads (%lld), "
                 "vocab_size (%lld) and intermediate_size (%lld) must be positive, "
                 "num_hidden_layers (%lld) non-negative", dir, (long long)d->C, (long long)d->H,
                 (long long)d->V, (long long)d->I, (long long)d->L);
        return -1;
    }
    if (sp->head_dim_key) { /* Gemma, Gemma2, Mistral: head_dim is its own field */
        if (peft_config_int_buf(m, "head_dim", 1, !strcmp(mt, "mistral") ? d->C / d->H : 256, &d->D,
                            err, errlen))
            return -1;
        if (d->D <= 0) {
            snprintf(err, errlen, "%s/config.json: head_dim (%lld) must be positive", dir,
                     (long long)d->D);
            return -1;
        }
    } else {
        if (d->C % d->H) {
            snprintf(err, errlen, "%s/config.json: hidden_size (%lld) is not divisible by "
                     "num_attention_heads (%lld)", dir, (long long)d->C, (long long)d->H);
            return -1;
        }
        d->D = d->C / d->H;
        int64_t hd;
        if (peft_config_int_buf(m, "head_dim", 1, d->D, &hd, err, errlen)) return -1;
        if (hd != d->D) {
            snprintf(err, errlen, "%s/config.json: head_dim (%lld) differs from hidden_size / "
                     "num_attention_heads (%lld); transformers 4.44's %s has no separate "
                     "head_dim", dir, (long long)hd, (long long)d->D, mt);
            return -1;
        }
    }
    if (peft_config_int_buf(m, "num_key_value_heads", 1, d->H, &d->Hkv, err, errlen)) return -1;
    if (d->Hkv <= 0 || d->H % d->Hkv) {
        snprintf(err, errlen, "%s/config.json: num_key_value_heads (%lld) must be positive and "
                 "divide num_attention_heads (%lld)", dir, (long long)d->Hkv, (long long)d->H);
        return -1;
    }
    return 0;
}

/* the MLP's activation (sp->act_key) and the attention dropout (only 0) */
static int read_act(const peft_base_model *m, const rdec_spec *sp, rdec_dims *d, char *err, size_t errlen)
{
    const char *dir = m->dir;
    const char *act;
    json_t *av = json_object_get(m->config, sp->act_key);
    if (!av || json_is_null(av)) act = sp->act_default; /* Gemma: null -> gelu_pytorch_tanh */
    else if (peft_config_str_buf(m, sp->act_key, sp->act_default, &act, err, errlen)) return -1;
    if (!strcmp(act, "silu") || !strcmp(act, "swish")) d->act = ACT_SILU;
    else if (!strcmp(act, "gelu_pytorch_tanh") || !strcmp(act, "gelu_new")) d->act = ACT_GELU_TANH;
    else if (!strcmp(act, "gelu")) d->act = ACT_GELU;
    else if (!strcmp(act, "relu")) d->act = ACT_RELU;
    else {
        snprintf(err, errlen, "%s/config.json: %s \"%s\" is unsupported (supported: silu, swish, "
                 "gelu, gelu_new, gelu_pytorch_tanh, relu)", dir, sp->act_key, act);
        return -1;
    }
    double adrop;
    if (peft_config_real_buf(m, "attention_dropout", 1, 0.0, &adrop, err, errlen)) return -1;
    if (adrop != 0.0) {
        snprintf(err, errlen, "%s/config.json: attention_dropout %g is unsupported (only 0.0)", dir,
                 adrop);
        return -1;
    }
    return 0;
}

/* which projections have a bias (per sp->bias), and tie_word_embeddings */
static int read_bias(const peft_base_model *m, const rdec_spec *sp, rdec_dims *d, char *err, size_t errlen)
{
    if (sp->bias == RDEC_BIAS_CONFIG) {
        int64_t tp;
        if (peft_config_int_buf(m, "pretraining_tp", 1, 1, &tp, err, errlen)) return -1;
        if (tp < 1) {
            snprintf(err, errlen, "%s/config.json: pretraining_tp (%lld) must be >= 1", m->dir,
                     (long long)tp);
            return -1;
        } /* tp > 1 only splits the same products into slices: the same function */
        if (peft_config_bool_buf(m, "attention_bias", 1, 0, &d->qkv_bias, err, errlen) ||
            peft_config_bool_buf(m, "mlp_bias", 1, 0, &d->mlp_bias, err, errlen))
            return -1;
        d->o_bias = d->qkv_bias;
    } else if (sp->bias == RDEC_BIAS_QKV) {
        d->qkv_bias = 1;
    } else if (sp->gemma) { /* Gemma / Gemma2: attention_bias on all four projections */
        if (peft_config_bool_buf(m, "attention_bias", 1, 0, &d->qkv_bias, err, errlen)) return -1;
        d->o_bias = d->qkv_bias;
    }
    return peft_config_bool_buf(m, "tie_word_embeddings", 1, sp->tie_default, &d->tie, err, errlen);
}

/* the attention: score scale, sliding window, Gemma2's soft-capping */
static int read_attention(const peft_base_model *m, const rdec_spec *sp, rdec_dims *d, char *err,
                          size_t errlen)
{
    const char *dir = m->dir;
    d->scale = (float)(1.0 / sqrt((double)d->D));
    if (sp->window != RDEC_WIN_NONE) {
        json_t *w = json_object_get(m->config, "sliding_window");
        if (w && !json_is_null(w)) {
            if (peft_config_int_buf(m, "sliding_window", 0, 0, &d->window, err, errlen)) return -1;
            if (d->window <= 0) {
                snprintf(err, errlen, "%s/config.json: sliding_window (%lld) must be positive or "
                         "null", dir, (long long)d->window);
                return -1;
            }
        } else if (sp->gemma2) {
            d->window = 4096; /* Gemma2Config's default */
        }
    }
    if (!strcmp(sp->model_type, "qwen2")) { /* transformers 4.44 applies it only in flash-attention */
        int sw;
        if (peft_config_bool_buf(m, "use_sliding_window", 1, 0, &sw, err, errlen)) return -1;
        if (sw) {
            snprintf(err, errlen, "%s/config.json: use_sliding_window true is unsupported "
                     "(transformers 4.44's eager Qwen2 attention ignores it, flash-attention "
                     "applies it: set it to false)", dir);
            return -1;
        }
    }
    if (sp->gemma2) {
        double qp, ac, fc;
        if (positive_real(m, "query_pre_attn_scalar", 224, 0, &qp, err, errlen) ||
            positive_real(m, "attn_logit_softcapping", 50.0, 1, &ac, err, errlen) ||
            positive_real(m, "final_logit_softcapping", 30.0, 1, &fc, err, errlen))
            return -1;
        d->scale = (float)pow(qp, -0.5); /* query_pre_attn_scalar ** -0.5 */
        d->attn_cap = (float)ac;
        d->final_cap = (float)fc;
    }
    return 0;
}

/* reads and checks every dimension from m->config (also used without weights, by count) */
static int read_dims(const peft_base_model *m, const rdec_spec *sp, const char *class_name,
                     rdec_dims *d, char *err, size_t errlen)
{
    memset(d, 0, sizeof *d);
    if (read_shape(m, sp, d, err, errlen) ||
        positive_real(m, "rms_norm_eps", sp->eps_default, 0, &d->eps, err, errlen) ||
        rope_cfg_read(m, d->D, sp->rope_scaling, sp->model_type, &d->rope, err, errlen) ||
        read_act(m, sp, d, err, errlen) || read_bias(m, sp, d, err, errlen) ||
        read_attention(m, sp, d, err, errlen))
        return -1;
    return dec_head_read(m, class_name, sp->lm_class, sp->cls_class, &d->head, err, errlen);
}

/* takes "<module>.weight" (C) and registers the RMSNorm "<module>" (Gemma's (1 + w)) as a
 * norm site */
static peft_site *take_norm(peft_base_model *m, const rdec_spec *sp, const rdec_dims *d,
                            const char *module, int layer, char *err, size_t errlen)
{
    char n[300];
    snprintf(n, sizeof n, "%s.weight", module);
    peft_tensor *w = peft_model_take_weight(m, n, NULL, 1, (int64_t[]){d->C}, err, errlen);
    if (!w) return NULL;
    peft_site *s = peft_model_add_norm_site(m, module, w, NULL, layer,
                                            sp->gemma ? PEFT_NORM_RMS_1P : PEFT_NORM_RMS,
                                            (float)d->eps);
    if (!s) snprintf(err, errlen, "%s: cannot register site %s (out of memory)", m->dir, module);
    return s;
}

/* registers the nn.Linear "<module>" (weight (out, in), bias (out) when has_bias) as a site */
static peft_site *take_linear(peft_base_model *m, const char *module, int64_t in, int64_t out,
                              int has_bias, int layer, char *err, size_t errlen)
{
    char n[256];
    if (snprintf(n, sizeof n, "%s.weight", module) >= (int)sizeof n) {
        snprintf(err, errlen, "%s: parameter name %s.weight too long", m->dir, module);
        return NULL;
    }
    peft_tensor *w = peft_model_take_weight(m, n, NULL, 2, (int64_t[]){out, in}, err, errlen);
    if (!w) return NULL;
    peft_tensor *b = NULL;
    if (has_bias) {
        snprintf(n, sizeof n, "%s.bias", module);
        if (!(b = peft_model_take_weight(m, n, NULL, 1, (int64_t[]){out}, err, errlen))) return NULL;
    }
    peft_site *s = peft_model_add_site(m, module, PEFT_SITE_LINEAR, w, b, layer);
    if (!s) snprintf(err, errlen, "%s: cannot register site %s (out of memory)", m->dir, module);
    return s;
}

/* layer li's sites (HF named_parameters() order), attention module and norms. 0 or -1 with err */
static int build_layer(peft_base_model *m, rdec_state *s, int li, char *err, size_t errlen)
{
    const rdec_spec *spec = s->spec;
    const rdec_dims *d = &s->d;
    const int64_t C = d->C, I = d->I, QW = d->H * d->D, KW = d->Hkv * d->D;
    rdec_layer *y = &s->layers[li];
    char n[256];
#define SITE(dst, mod, in, out, bias)                                                 \
    do {                                                                              \
        snprintf(n, sizeof n, "model.layers.%d.%s", li, mod);                         \
        if (!((dst) = take_linear(m, n, in, out, bias, li, err, errlen))) return -1;  \
    } while (0)
#define VEC(dst, mod)                                                                 \
    do {                                                                              \
        snprintf(n, sizeof n, "model.layers.%d.%s", li, mod);                         \
        if (!((dst) = take_norm(m, spec, d, n, li, err, errlen))) return -1;         \
    } while (0)
    if (spec->fused) { /* Phi3Attention registers o_proj before qkv_proj */
        SITE(y->o, "self_attn.o_proj", QW, C, 0);
        SITE(y->qkv, "self_attn.qkv_proj", C, QW + 2 * KW, 0);
        SITE(y->gate_up, "mlp.gate_up_proj", C, 2 * I, 0);
        SITE(y->down, "mlp.down_proj", I, C, 0);
    } else {
        SITE(y->q, "self_attn.q_proj", C, QW, d->qkv_bias);
        SITE(y->k, "self_attn.k_proj", C, KW, d->qkv_bias);
        SITE(y->v, "self_attn.v_proj", C, KW, d->qkv_bias);
        SITE(y->o, "self_attn.o_proj", QW, C, d->o_bias);
        SITE(y->gate, "mlp.gate_proj", C, I, d->mlp_bias);
        SITE(y->up, "mlp.up_proj", C, I, d->mlp_bias);
        SITE(y->down, "mlp.down_proj", I, C, d->mlp_bias);
    }
    snprintf(n, sizeof n, "model.layers.%d.self_attn", li);
    if (peft_model_add_attn(m, n, li, y->q, y->k, y->v, y->o, (int)d->H, (int)d->Hkv,
                            (int)d->D, (int)C) < 0) {
        snprintf(err, errlen, "%s: cannot register attention module %s (out of memory)",
                 m->dir, n);
        return -1;
    }
    VEC(y->in_norm, "input_layernorm");
    VEC(y->post_norm, "post_attention_layernorm");
    if (spec->gemma2) {
        VEC(y->pre_ff, "pre_feedforward_layernorm");
        VEC(y->post_ff, "post_feedforward_layernorm");
    }
#undef SITE
#undef VEC
    y->window = spec->window == RDEC_WIN_ALL || (spec->window == RDEC_WIN_EVEN && li % 2 == 0)
                    ? d->window
                    : 0;
    return 0;
}

/* the head: score (sequence classification), or lm_head (tied to the embedding, or its own
 * weight). 0 or -1 with err */
static int build_head(peft_base_model *m, rdec_state *s, char *err, size_t errlen)
{
    const rdec_dims *d = &s->d;
    if (d->head.seq_cls) {
        if (!(s->score = take_linear(m, "score", d->C, d->head.num_labels, 0, -1, err, errlen)))
            return -1;
    } else if (d->tie) { /* lm_head.weight is model.embed_tokens.weight, registered once */
        if (!(s->lm_head = peft_model_add_site(m, "lm_head", PEFT_SITE_LINEAR, s->embed, NULL, -1))) {
            snprintf(err, errlen, "%s: cannot register site lm_head (out of memory)", m->dir);
            return -1;
        }
        peft_site_set_tied(s->lm_head);
        peft_site_set_tied(s->embed_site);
    } else if (!(s->lm_head = take_linear(m, "lm_head", d->C, d->V, 0, -1, err, errlen))) {
        return -1;
    }
    return 0;
}

int rdec_build(peft_base_model *m, const rdec_spec *spec, char *err, size_t errlen)
{
    rdec_state *s = calloc(1, sizeof *s);
    if (!s) { snprintf(err, errlen, "%s: out of memory", m->dir); return -1; }
    m->arch_state = s; /* freed by peft_base_model_free on any failure below */
    s->spec = spec;
    if (read_dims(m, spec, NULL, &s->d, err, errlen)) return -1;
    const rdec_dims *d = &s->d;
    s->layers = calloc((size_t)(d->L ? d->L : 1), sizeof *s->layers);
    if (!s->layers) { snprintf(err, errlen, "%s: out of memory", m->dir); return -1; }

    /* HF named_parameters() order */
    if (!(s->embed = peft_model_take_weight(m, "model.embed_tokens.weight", NULL, 2,
                                            (int64_t[]){d->V, d->C}, err, errlen)))
        return -1;
    if (!(s->embed_site = peft_model_add_site(m, "model.embed_tokens", PEFT_SITE_EMBEDDING,
                                              s->embed, NULL, -1))) {
        snprintf(err, errlen, "%s: cannot register site model.embed_tokens (out of memory)", m->dir);
        return -1;
    }
    for (int64_t i = 0; i < d->L; i++)
        if (build_layer(m, s, (int)i, err, errlen)) return -1;
    if (!(s->norm = take_norm(m, spec, d, "model.norm", -1, err, errlen))) return -1;
    if (build_head(m, s, err, errlen)) return -1;
    m->class_name = d->head.class_name;
    m->task_type = d->head.seq_cls ? "SEQ_CLS" : "CAUSAL_LM";
    m->word_embeddings = s->embed;
    m->n_layers = (int)d->L;
    m->n_kv_heads = (int)d->Hkv;
    m->head_dim = (int)d->D;
    m->hidden_size = (int)d->C;
    m->is_encoder_decoder = 0;
    m->no_past_key_values = spec->no_past_kv;
    return 0;
}

/* the RMSNorm site w on x (its kind and eps were set at build: Gemma's (1 + w)) */
static peft_tensor *norm(peft_graph *g, const rdec_spec *sp, const rdec_dims *d, peft_tensor *x,
                         peft_site *w)
{
    (void)sp, (void)d;
    return peft_site_norm(g, w, x);
}

static peft_tensor *act(peft_graph *g, int a, peft_tensor *x)
{
    switch (a) {
    case ACT_GELU_TANH: return op_gelu_tanh(g, x);
    case ACT_GELU: return op_gelu_erf(g, x);
    case ACT_RELU: return op_relu(g, x);
    default: return op_silu(g, x);
    }
}

/* one decoder layer (peft_block_fn, checkpointed in training when asked): h (B,Tq,C) ->
 * h (B,Tq,C) */
typedef struct rdec_block_ud {
    peft_base_model *m;
    int layer;
    dec_seq q;          /* the step's layout (arrays in the arena, before any checkpoint) */
    const float *inv;   /* RoPE inverse frequencies (arena copy) */
    char *err;          /* the forward's message buffer; NULL in a backward recompute */
    size_t errlen;
} rdec_block_ud;

static peft_tensor *rdec_block(peft_graph *g, void *p, peft_tensor *h)
{
    rdec_block_ud *u = p;
    peft_base_model *m = u->m;
    rdec_state *s = m->arch_state;
    const rdec_spec *sp = s->spec;
    const rdec_dims *d = &s->d;
    const char *name = sp->model_type;
    const int H = (int)d->H, Hkv = (int)d->Hkv;
    const int64_t I = d->I, QW = d->H * d->D, KW = d->Hkv * d->D;
    const float *inv = u->inv;
    char spare[256];
    char *err = u->err ? u->err : spare;
    size_t errlen = u->err ? u->errlen : sizeof spare;
    rdec_layer *y = &s->layers[u->layer];
    peft_tensor *a = norm(g, sp, d, h, y->in_norm), *qq, *k, *v;
    if (!a) return NULL;
    if (sp->fused) {
        peft_tensor *qkv = peft_site_forward(g, y->qkv, a); /* (B,Tq,QW+2KW) */
        qq = qkv ? op_slice_lastdim(g, qkv, 0, QW) : NULL;
        k = qq ? op_slice_lastdim(g, qkv, QW, KW) : NULL;
        v = k ? op_slice_lastdim(g, qkv, QW + KW, KW) : NULL;
    } else {
        qq = peft_site_forward(g, y->q, a); /* (B,Tq,H*D) */
        k = qq ? peft_site_forward(g, y->k, a) : NULL; /* (B,Tq,Hkv*D) */
        v = k ? peft_site_forward(g, y->v, a) : NULL;  /* (B,Tq,Hkv*D) */
    }
    if (!v || !(qq = op_rope_freqs(g, qq, H, u->q.pos, inv)) ||
        !(k = op_rope_freqs(g, k, Hkv, u->q.pos, inv)))
        return NULL;
    peft_tensor *att = dec_attention_opt(m, g, &u->q, u->layer, qq, k, v, H, Hkv, d->scale,
                                         y->window, d->attn_cap, name, err, errlen);
    if (!att) return NULL; /* (B,Tq,H*D) */
    peft_tensor *o = peft_site_forward(g, y->o, att); /* (B,Tq,C) */
    /* the attention hook (adaption prompt): a, the rotated queries and the output */
    if (o && m->attn_hook && !(o = m->attn_hook->output(m->attn_hook->ud, g, u->layer, a, qq, o)))
        return NULL;
    if (!o || (sp->gemma2 && !(o = norm(g, sp, d, o, y->post_norm))) || !(h = op_add(g, h, o)))
        return NULL;

    peft_tensor *x = norm(g, sp, d, h, sp->gemma2 ? y->pre_ff : y->post_norm), *gt, *up;
    if (!x) return NULL;
    if (sp->fused) {
        peft_tensor *gu = peft_site_forward(g, y->gate_up, x); /* (B,Tq,2I) */
        gt = gu ? op_slice_lastdim(g, gu, 0, I) : NULL;
        up = gt ? op_slice_lastdim(g, gu, I, I) : NULL;
    } else {
        gt = peft_site_forward(g, y->gate, x);        /* (B,Tq,I) */
        up = gt ? peft_site_forward(g, y->up, x) : NULL; /* (B,Tq,I) */
    }
    peft_tensor *f = up ? act(g, d->act, gt) : NULL;
    if (!f || !(f = op_mul(g, f, up))) return NULL;
    peft_tensor *dn = peft_site_forward(g, y->down, f); /* (B,Tq,C) */
    if (!dn || (sp->gemma2 && !(dn = norm(g, sp, d, dn, y->post_ff))) ||
        !(h = op_add(g, h, dn)))
        return NULL;
    return h;
}

int rdec_forward(peft_base_model *m, peft_graph *g, const peft_model_inputs *in,
                 peft_model_outputs *out, char *err, size_t errlen)
{
    rdec_state *s = m->arch_state;
    const rdec_spec *sp = s->spec;
    const rdec_dims *d = &s->d;
    const char *name = sp->model_type;
    memset(out, 0, sizeof *out);
    if (sp->no_past_kv && m->prompt && m->prompt->layer_prefix) {
        snprintf(err, errlen, "%s: prefix tuning is refused: %s", name, sp->no_past_kv);
        return -1;
    }
    dec_seq q;
    if (dec_seq_begin(m, g, in, &d->head, d->V, name, &q, err, errlen)) return -1;
    const int64_t C = d->C, KW = d->Hkv * d->D;
    if (dec_cache_begin(&q, &d->head, (int)d->L, KW, name, err, errlen)) return -1;
    int32_t maxpos = 0;
    for (int64_t i = 0; i < q.B * q.Tq; i++)
        if (q.pos[i] > maxpos) maxpos = q.pos[i];
    float scratch[512];
    const float *inv = rope_inv_freq(&d->rope, maxpos, scratch);

    int32_t bad = 0;
    peft_tensor *h = peft_site_embed(g, s->embed_site, q.ids, q.B, q.T, &bad); /* (B,T,C) */
    if (!h) goto oom;
    if (!(h = dec_prepend_prompt(m, g, &q, h, name, err, errlen))) return -1; /* (B,Tq,C) */
    if (sp->gemma && !(h = op_scale(g, h, (float)sqrt((double)C)))) goto oom;

    /* the RoPE table outlives this frame when layers are recomputed in backward */
    float *inv_a = peft_arena_alloc(g->arena, sizeof(float) * (size_t)(d->rope.dim / 2 + 1));
    if (!inv_a) goto oom;
    memcpy(inv_a, inv, sizeof(float) * (size_t)(d->rope.dim / 2));
    if (m->embed_outputs_require_grad && g->recording) h->requires_grad = 1; /* enable_input_require_grads */
    const int ckpt = m->gradient_checkpointing && g->recording && !m->prompt;
    if (err && errlen) err[0] = 0;
    for (int64_t l = 0; l < d->L; l++) {
        rdec_block_ud u = {m, (int)l, q, inv_a, ckpt ? NULL : err, errlen};
        /* inference: each block's scratch rewound (peft_block_scoped) */
        h = ckpt ? peft_checkpoint(g, rdec_block, &u, sizeof u, h) : peft_block_scoped(g, rdec_block, &u, h);
        if (!h) {
            if (err && errlen && err[0]) return -1;
            goto oom;
        }
    }
    if (!(h = norm(g, sp, d, h, s->norm))) goto oom;
    out->last_hidden_state = h;

    if (!d->head.seq_cls && d->final_cap <= 0 && dec_chunked_loss_ok(m, g, in, s->lm_head)) {
        /* training: the loss over row chunks, never the whole (B,Tq,V) logits */
        if (!(out->loss = dec_lm_loss_chunked(g, &q, h, s->lm_head->info.weight, in->labels)))
            goto oom;
        return 0;
    }
    if (!d->head.seq_cls) {
        peft_tensor *logits = peft_site_forward(g, s->lm_head, h); /* (B,Tq,V) */
        if (!logits || (d->final_cap > 0 && !(logits = op_softcap(g, logits, d->final_cap))))
            goto oom;
        out->logits = logits;
        if (in->labels && !(out->loss = dec_lm_loss(g, &q, logits, in->labels))) goto oom;
        dec_cache_commit(&q); /* only a forward that succeeded joins the past */
        return 0;
    }
    peft_tensor *it = peft_graph_tensor_raw(g, PEFT_DTYPE_I32, 1, (int64_t[]){q.B});
    if (!it) goto oom;
    if (dec_pool_index(&d->head, &q, it->data, name, err, errlen)) return -1;
    peft_tensor *pooled = op_gather_rows(g, h, it->data);                        /* (B,C) */
    peft_tensor *logits = pooled ? peft_site_forward(g, s->score, pooled) : NULL; /* (B,L) */
    if (!logits) goto oom;
    out->logits = logits;
    if (in->labels &&
        dec_cls_loss(g, &d->head, logits, in->labels, q.B, &out->loss, name, err, errlen))
        return -1;
    return 0;
oom:
    snprintf(err, errlen, "%s: forward failed: out of memory in the step arena (B=%lld, T=%lld)",
             name, (long long)in->B, (long long)in->T);
    return -1;
}

/* parameters implied by config.json: embeddings, layers, final norm, the head (lm_head only when
 * untied; score without bias) */
int rdec_count_params(const rdec_spec *spec, const json_t *config, const char *class_name,
                      int64_t *n, char *err, size_t errlen)
{
    peft_base_model tmp = {0};
    tmp.dir = (char *)".";
    tmp.config = (json_t *)config;
    rdec_dims d;
    if (read_dims(&tmp, spec, class_name, &d, err, errlen)) return -1;
    const int64_t C = d.C, QW = d.H * d.D, KW = d.Hkv * d.D, I = d.I;
    int64_t layer = C * QW + 2 * C * KW + QW * C + 3 * C * I + (spec->gemma2 ? 4 : 2) * C;
    if (d.qkv_bias) layer += QW + 2 * KW;
    if (d.o_bias) layer += C;
    if (d.mlp_bias) layer += 2 * I + C;
    int64_t total = d.V * C + d.L * layer + C;
    if (d.head.seq_cls) total += d.head.num_labels * C;
    else if (!d.tie) total += d.V * C;
    *n = total;
    return 0;
}
