/* llama.c — LlamaForCausalLM and LlamaForSequenceClassification (Hugging Face transformers 4.44),
 * forward-only over core/ops.h.
 *
 * Parameters keep HF names (model.embed_tokens.weight, model.layers.{i}.self_attn.q_proj.weight,
 * ...). Every nn.Linear is a linear site: q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj,
 * down_proj with their layer index; lm_head (tied to model.embed_tokens.weight when
 * tie_word_embeddings) or score (the classification head, no bias) with index -1.
 *
 *   h = embed_tokens[ids]                                        (B,T,C)
 *   per layer:  a = rmsnorm(h);  q = rope(q_proj(a)), k = rope(k_proj(a)), v = v_proj(a)
 *               h += o_proj(attn(q (B,T,H*D), k, v (B,T,Hkv*D)))  grouped-query, causal
 *               x = rmsnorm(h);  h += down_proj(silu(gate_proj(x)) * up_proj(x))
 *   h = rmsnorm(h)
 *   causal LM:  logits = lm_head(h) (B,T,V); loss = mean CE of logits[:, :-1] vs labels[:, 1:]
 *   seq cls:    logits = score(h[b, last non-pad token]) (B,L); CE, or MSE when num_labels = 1
 * Prompt learning (model.h hooks) as decoder.h: virtual tokens in front, prefix keys/values
 * prepended to each layer's keys/values (not rotated), positions shifted by the prefix length.
 * Incremental decoding (in->cache, decoder.h): only the new tokens run; their keys are rotated
 * at their positions (past + t or in->position_ids) before they join the cache.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "peft/model.h"
#include "core/models/decoder.h"
#include "peft/ops.h"

#define LM_CLASS "LlamaForCausalLM"
#define CLS_CLASS "LlamaForSequenceClassification"

typedef struct llama_layer {
    peft_tensor *in_norm, *post_norm;      /* (C) */
    peft_site *q, *k, *v, *o;              /* (H*D, C), (Hkv*D, C), (Hkv*D, C), (C, H*D) */
    peft_site *gate, *up, *down;           /* (I, C), (I, C), (C, I) */
} llama_layer;

typedef struct llama_dims {
    int64_t C, H, Hkv, D, L, V, I;
    double eps, theta;
    int attn_bias, mlp_bias, tie;
    dec_head head;
} llama_dims;

typedef struct llama_state {
    llama_dims d;
    peft_tensor *embed;     /* (V, C) */
    peft_tensor *norm;      /* (C) */
    peft_site *lm_head;     /* (V, C), causal LM */
    peft_site *score;       /* (num_labels, C), sequence classification */
    llama_layer *layers;    /* L */
} llama_state;

static void llama_free_state(void *p)
{
    llama_state *s = p;
    if (!s) return;
    free(s->layers);
    free(s);
}

/* reads and checks every dimension from m->config (also used without weights, by count) */
static int read_dims(const peft_base_model *m, const char *class_name, llama_dims *d, char *err,
                     size_t errlen)
{
    memset(d, 0, sizeof *d);
    const char *dir = m->dir;
    if (peft_config_int(m, "hidden_size", 0, 0, &d->C, err, errlen) ||
        peft_config_int(m, "num_attention_heads", 0, 0, &d->H, err, errlen) ||
        peft_config_int(m, "num_hidden_layers", 0, 0, &d->L, err, errlen) ||
        peft_config_int(m, "vocab_size", 0, 0, &d->V, err, errlen) ||
        peft_config_int(m, "intermediate_size", 0, 0, &d->I, err, errlen))
        return -1;
    if (d->C <= 0 || d->H <= 0 || d->L < 0 || d->V <= 0 || d->I <= 0) {
        snprintf(err, errlen, "%s/config.json: hidden_size (%lld), num_attention_heads (%lld), "
                 "vocab_size (%lld) and intermediate_size (%lld) must be positive, "
                 "num_hidden_layers (%lld) non-negative", dir, (long long)d->C, (long long)d->H,
                 (long long)d->V, (long long)d->I, (long long)d->L);
        return -1;
    }
    if (d->C % d->H) {
        snprintf(err, errlen, "%s/config.json: hidden_size (%lld) is not divisible by "
                 "num_attention_heads (%lld)", dir, (long long)d->C, (long long)d->H);
        return -1;
    }
    d->D = d->C / d->H;
    if (d->D % 2) {
        snprintf(err, errlen, "%s/config.json: head size hidden_size / num_attention_heads = %lld "
                 "must be even for rotary embeddings", dir, (long long)d->D);
        return -1;
    }
    int64_t hd;
    if (peft_config_int(m, "head_dim", 1, d->D, &hd, err, errlen)) return -1;
    if (hd != d->D) {
        snprintf(err, errlen, "%s/config.json: head_dim (%lld) differs from hidden_size / "
                 "num_attention_heads (%lld); transformers 4.44 Llama has no separate head_dim",
                 dir, (long long)hd, (long long)d->D);
        return -1;
    }
    if (peft_config_int(m, "num_key_value_heads", 1, d->H, &d->Hkv, err, errlen)) return -1;
    if (d->Hkv <= 0 || d->H % d->Hkv) {
        snprintf(err, errlen, "%s/config.json: num_key_value_heads (%lld) must be positive and "
                 "divide num_attention_heads (%lld)", dir, (long long)d->Hkv, (long long)d->H);
        return -1;
    }
    if (peft_config_real(m, "rms_norm_eps", 1, 1e-6, &d->eps, err, errlen) ||
        peft_config_real(m, "rope_theta", 1, 10000.0, &d->theta, err, errlen))
        return -1;
    if (!(d->eps > 0) || !(d->theta > 0)) {
        snprintf(err, errlen, "%s/config.json: rms_norm_eps (%g) and rope_theta (%g) must be "
                 "positive", dir, d->eps, d->theta);
        return -1;
    }
    json_t *rs = json_object_get(m->config, "rope_scaling");
    if (rs && !json_is_null(rs)) {
        char *txt = json_dumps(rs, JSON_COMPACT | JSON_ENCODE_ANY);
        snprintf(err, errlen, "%s/config.json: rope_scaling %s is unsupported (only null: plain "
                 "RoPE with rope_theta)", dir, txt ? txt : "(set)");
        free(txt);
        return -1;
    }
    const char *act;
    if (peft_config_str(m, "hidden_act", "silu", &act, err, errlen)) return -1;
    if (strcmp(act, "silu") && strcmp(act, "swish")) {
        snprintf(err, errlen, "%s/config.json: hidden_act \"%s\" is unsupported (supported: silu)",
                 dir, act);
        return -1;
    }
    double adrop;
    if (peft_config_real(m, "attention_dropout", 1, 0.0, &adrop, err, errlen)) return -1;
    if (adrop != 0.0) {
        snprintf(err, errlen, "%s/config.json: attention_dropout %g is unsupported (only 0.0)", dir,
                 adrop);
        return -1;
    }
    int64_t tp;
    if (peft_config_int(m, "pretraining_tp", 1, 1, &tp, err, errlen)) return -1;
    if (tp < 1) {
        snprintf(err, errlen, "%s/config.json: pretraining_tp (%lld) must be >= 1", dir,
                 (long long)tp);
        return -1;
    } /* tp > 1 only splits the same products into slices: the same function */
    if (peft_config_bool(m, "attention_bias", 1, 0, &d->attn_bias, err, errlen) ||
        peft_config_bool(m, "mlp_bias", 1, 0, &d->mlp_bias, err, errlen) ||
        peft_config_bool(m, "tie_word_embeddings", 1, 0, &d->tie, err, errlen))
        return -1;
    return dec_head_read(m, class_name, LM_CLASS, CLS_CLASS, &d->head, err, errlen);
}

/* registers the nn.Linear "<module>" (weight (out, in), bias (out) when has_bias) as a site */
static peft_site *take_linear(peft_base_model *m, const char *module, int64_t in, int64_t out,
                              int has_bias, int layer, char *err, size_t errlen)
{
    char n[256];
    snprintf(n, sizeof n, "%s.weight", module);
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

static peft_tensor *take_vec(peft_base_model *m, const char *name, int64_t n, char *err,
                             size_t errlen)
{
    return peft_model_take_weight(m, name, NULL, 1, (int64_t[]){n}, err, errlen);
}

static int llama_build(peft_base_model *m, char *err, size_t errlen)
{
    llama_state *s = calloc(1, sizeof *s);
    if (!s) { snprintf(err, errlen, "%s: out of memory", m->dir); return -1; }
    m->arch_state = s; /* freed by peft_base_model_free on any failure below */
    if (read_dims(m, NULL, &s->d, err, errlen)) return -1;
    const llama_dims *d = &s->d;
    s->layers = calloc((size_t)(d->L ? d->L : 1), sizeof *s->layers);
    if (!s->layers) { snprintf(err, errlen, "%s: out of memory", m->dir); return -1; }
    const int64_t C = d->C, I = d->I, QW = d->H * d->D, KW = d->Hkv * d->D;

    /* HF named_parameters() order */
    if (!(s->embed = peft_model_take_weight(m, "model.embed_tokens.weight", NULL, 2,
                                            (int64_t[]){d->V, C}, err, errlen)))
        return -1;
    char n[256];
    for (int64_t i = 0; i < d->L; i++) {
        llama_layer *y = &s->layers[i];
        int li = (int)i;
#define SITE(dst, mod, in, out, bias)                                                 \
    do {                                                                              \
        snprintf(n, sizeof n, "model.layers.%d.%s", li, mod);                         \
        if (!((dst) = take_linear(m, n, in, out, bias, li, err, errlen))) return -1;  \
    } while (0)
#define VEC(dst, mod)                                                                 \
    do {                                                                              \
        snprintf(n, sizeof n, "model.layers.%d.%s.weight", li, mod);                  \
        if (!((dst) = take_vec(m, n, C, err, errlen))) return -1;                     \
    } while (0)
        SITE(y->q, "self_attn.q_proj", C, QW, d->attn_bias);
        SITE(y->k, "self_attn.k_proj", C, KW, d->attn_bias);
        SITE(y->v, "self_attn.v_proj", C, KW, d->attn_bias);
        SITE(y->o, "self_attn.o_proj", QW, C, d->attn_bias);
        SITE(y->gate, "mlp.gate_proj", C, I, d->mlp_bias);
        SITE(y->up, "mlp.up_proj", C, I, d->mlp_bias);
        SITE(y->down, "mlp.down_proj", I, C, d->mlp_bias);
        VEC(y->in_norm, "input_layernorm");
        VEC(y->post_norm, "post_attention_layernorm");
#undef SITE
#undef VEC
    }
    if (!(s->norm = take_vec(m, "model.norm.weight", C, err, errlen))) return -1;

    if (d->head.seq_cls) {
        if (!(s->score = take_linear(m, "score", C, d->head.num_labels, 0, -1, err, errlen)))
            return -1;
    } else if (d->tie) { /* lm_head.weight is model.embed_tokens.weight, registered once */
        if (!(s->lm_head = peft_model_add_site(m, "lm_head", PEFT_SITE_LINEAR, s->embed, NULL, -1))) {
            snprintf(err, errlen, "%s: cannot register site lm_head (out of memory)", m->dir);
            return -1;
        }
    } else if (!(s->lm_head = take_linear(m, "lm_head", C, d->V, 0, -1, err, errlen))) {
        return -1;
    }
    m->class_name = d->head.class_name;
    m->task_type = d->head.seq_cls ? "SEQ_CLS" : "CAUSAL_LM";
    m->word_embeddings = s->embed;
    m->n_layers = (int)d->L;
    m->n_kv_heads = (int)d->Hkv;
    m->head_dim = (int)d->D;
    m->hidden_size = (int)C;
    m->is_encoder_decoder = 0;
    return 0;
}

static int llama_forward(peft_base_model *m, peft_graph *g, const peft_model_inputs *in,
                         peft_model_outputs *out, char *err, size_t errlen)
{
    llama_state *s = m->arch_state;
    const llama_dims *d = &s->d;
    memset(out, 0, sizeof *out);
    dec_seq q;
    if (dec_seq_begin(m, g, in, &d->head, d->V, "llama", &q, err, errlen)) return -1;
    const float scale = (float)(1.0 / sqrt((double)d->D));
    const int H = (int)d->H, Hkv = (int)d->Hkv;
    if (dec_cache_begin(&q, &d->head, (int)d->L, d->Hkv * d->D, "llama", err, errlen)) return -1;

    int32_t bad = 0;
    peft_tensor *h = op_embedding(g, s->embed, q.ids, q.B, q.T, &bad); /* (B,T,C) */
    if (!h) goto oom;
    if (!(h = dec_prepend_prompt(m, g, &q, h, "llama", err, errlen))) return -1; /* (B,Tq,C) */

    for (int64_t l = 0; l < d->L; l++) {
        llama_layer *y = &s->layers[l];
        peft_tensor *a = op_rmsnorm(g, h, y->in_norm, (float)d->eps);
        peft_tensor *qq = a ? peft_site_forward(g, y->q, a) : NULL; /* (B,Tq,H*D) */
        peft_tensor *k = qq ? peft_site_forward(g, y->k, a) : NULL;  /* (B,Tq,Hkv*D) */
        peft_tensor *v = k ? peft_site_forward(g, y->v, a) : NULL;   /* (B,Tq,Hkv*D) */
        if (!v || !(qq = op_rope(g, qq, H, q.pos, (float)d->theta)) ||
            !(k = op_rope(g, k, Hkv, q.pos, (float)d->theta)))
            goto oom;
        peft_tensor *att = dec_attention(m, g, &q, (int)l, qq, k, v, H, Hkv, scale, "llama", err,
                                         errlen); /* (B,Tq,H*D) */
        if (!att) return -1;
        peft_tensor *o = peft_site_forward(g, y->o, att); /* (B,Tq,C) */
        if (!o || !(h = op_add(g, h, o))) goto oom;

        peft_tensor *x = op_rmsnorm(g, h, y->post_norm, (float)d->eps);
        peft_tensor *gt = x ? peft_site_forward(g, y->gate, x) : NULL; /* (B,Tq,I) */
        peft_tensor *up = gt ? peft_site_forward(g, y->up, x) : NULL;  /* (B,Tq,I) */
        peft_tensor *f = up ? op_silu(g, gt) : NULL;
        if (!f || !(f = op_mul(g, f, up))) goto oom;
        peft_tensor *dn = peft_site_forward(g, y->down, f); /* (B,Tq,C) */
        if (!dn || !(h = op_add(g, h, dn))) goto oom;
    }
    if (!(h = op_rmsnorm(g, h, s->norm, (float)d->eps))) goto oom;
    out->last_hidden_state = h;

    if (!d->head.seq_cls) {
        peft_tensor *logits = peft_site_forward(g, s->lm_head, h); /* (B,Tq,V) */
        if (!logits) goto oom;
        out->logits = logits;
        if (in->labels && !(out->loss = dec_lm_loss(g, &q, logits, in->labels))) goto oom;
        dec_cache_commit(&q); /* only a forward that succeeded joins the past */
        return 0;
    }
    peft_tensor *it = peft_graph_tensor_raw(g, PEFT_DTYPE_I32, 1, (int64_t[]){q.B});
    if (!it) goto oom;
    if (dec_pool_index(&d->head, &q, it->data, "llama", err, errlen)) return -1;
    peft_tensor *pooled = op_gather_rows(g, h, it->data);                     /* (B,C) */
    peft_tensor *logits = pooled ? peft_site_forward(g, s->score, pooled) : NULL; /* (B,L) */
    if (!logits) goto oom;
    out->logits = logits;
    if (in->labels &&
        dec_cls_loss(g, &d->head, logits, in->labels, q.B, &out->loss, "llama", err, errlen))
        return -1;
    return 0;
oom:
    snprintf(err, errlen, "llama: forward failed: out of memory in the step arena (B=%lld, T=%lld)",
             (long long)in->B, (long long)in->T);
    return -1;
}

/* parameters implied by config.json: embeddings, layers, final norm, the head (lm_head only when
 * untied; score without bias) */
static int llama_count_params(const json_t *config, const char *class_name, int64_t *n,
                              char *err, size_t errlen)
{
    peft_base_model tmp = {0};
    tmp.dir = (char *)".";
    tmp.config = (json_t *)config;
    llama_dims d;
    if (read_dims(&tmp, class_name, &d, err, errlen)) return -1;
    const int64_t C = d.C, QW = d.H * d.D, KW = d.Hkv * d.D, I = d.I;
    int64_t layer = C * QW + 2 * C * KW + QW * C + 3 * C * I + 2 * C;
    if (d.attn_bias) layer += QW + 2 * KW + C;
    if (d.mlp_bias) layer += 2 * I + C;
    int64_t total = d.V * C + d.L * layer + C;
    if (d.head.seq_cls) total += d.head.num_labels * C;
    else if (!d.tie) total += d.V * C;
    *n = total;
    return 0;
}

const peft_arch peft_arch_llama = {
    .model_type = "llama",
    .class_name = LM_CLASS,
    .task_type = "CAUSAL_LM",
    .build = llama_build,
    .forward = llama_forward,
    .free_state = llama_free_state,
    .count_params = llama_count_params,
};
