/* gpt2.c — GPT2LMHeadModel (Hugging Face transformers 4.44), forward-only over core/ops.h.
 *
 * Parameters keep HF names (transformer.wte.weight, transformer.h.{i}.attn.c_attn.weight, ...);
 * lm_head.weight is tied to transformer.wte.weight unless tie_word_embeddings is false. The four
 * Conv1D layers of each block (attn.c_attn, attn.c_proj, mlp.c_fc, mlp.c_proj) are linear sites,
 * weights stored (in, out).
 *
 *   ids (B,T) -> h = wte[ids] + wpe[0..T-1]                     (B,T,C)
 *   per block:  h += c_proj(attn(split(c_attn(ln_1(h)))))      c_attn: C -> 3C
 *               h += mlp.c_proj(gelu(mlp.c_fc(ln_2(h))))        c_fc: C -> I, c_proj: I -> C
 *   logits = ln_f(h) @ lm_head^T                                (B,T,V)
 *   loss   = mean CE of logits[:, :-1] against labels[:, 1:], ignoring -100
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "model.h"
#include "ops.h"

typedef struct gpt2_block {
    peft_tensor *ln1_w, *ln1_b, *ln2_w, *ln2_b; /* (C) */
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
    peft_tensor *lm_head; /* (V, C): wte when tied */
    gpt2_block *blocks;   /* L */
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

static int config_dims(peft_base_model *m, gpt2_state *s, char *err, size_t errlen)
{
    const char *cfg = "config.json";
    if (peft_config_int(m, "n_embd", 1, 768, &s->C, err, errlen) ||
        peft_config_int(m, "n_head", 1, 12, &s->H, err, errlen) ||
        peft_config_int(m, "n_layer", 1, 12, &s->L, err, errlen) ||
        peft_config_int(m, "n_positions", 1, 1024, &s->P, err, errlen) ||
        peft_config_int(m, "vocab_size", 1, 50257, &s->V, err, errlen) ||
        peft_config_real(m, "layer_norm_epsilon", 1, 1e-5, &s->eps, err, errlen))
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
    if (peft_config_int(m, "n_inner", 1, 4 * s->C, &s->I, err, errlen)) return -1;
    if (s->I <= 0) {
        snprintf(err, errlen, "%s/%s: n_inner (%lld) must be positive", m->dir, cfg,
                 (long long)s->I);
        return -1;
    }

    const char *act;
    if (peft_config_str(m, "activation_function", "gelu_new", &act, err, errlen)) return -1;
    if (strcmp(act, "gelu_new") != 0 && strcmp(act, "gelu_pytorch_tanh") != 0) {
        snprintf(err, errlen, "%s/%s: activation_function \"%s\" is unsupported (supported: "
                 "gelu_new, gelu_pytorch_tanh)", m->dir, cfg, act);
        return -1;
    }
    int scale_w, inv_idx, reorder;
    if (peft_config_bool(m, "scale_attn_weights", 1, 1, &scale_w, err, errlen) ||
        peft_config_bool(m, "scale_attn_by_inverse_layer_idx", 1, 0, &inv_idx, err, errlen) ||
        peft_config_bool(m, "reorder_and_upcast_attn", 1, 0, &reorder, err, errlen))
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
    if (peft_config_real(m, "embd_pdrop", 1, 0.1, &pe, err, errlen) ||
        peft_config_real(m, "resid_pdrop", 1, 0.1, &pr, err, errlen))
        return -1;
    if (pe < 0 || pe >= 1 || pr < 0 || pr >= 1) {
        snprintf(err, errlen, "%s/%s: embd_pdrop (%g) and resid_pdrop (%g) must be in [0, 1)",
                 m->dir, cfg, pe, pr);
        return -1;
    }
    s->embd_pdrop = (float)pe;
    s->resid_pdrop = (float)pr;
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

static int gpt2_build(peft_base_model *m, char *err, size_t errlen)
{
    gpt2_state *s = calloc(1, sizeof *s);
    if (!s) { snprintf(err, errlen, "%s: out of memory", m->dir); return -1; }
    m->arch_state = s; /* freed by peft_base_model_free on any failure below */
    if (config_dims(m, s, err, errlen)) return -1;
    s->blocks = calloc((size_t)(s->L ? s->L : 1), sizeof *s->blocks);
    if (!s->blocks) { snprintf(err, errlen, "%s: out of memory", m->dir); return -1; }
    const int64_t C = s->C, I = s->I;

    /* HF named_parameters() order */
    if (!(s->wte = take(m, "transformer.wte.weight", 2, s->V, C, err, errlen)) ||
        !(s->wpe = take(m, "transformer.wpe.weight", 2, s->P, C, err, errlen)))
        return -1;
    char n[256];
    for (int64_t i = 0; i < s->L; i++) {
        gpt2_block *b = &s->blocks[i];
        int li = (int)i;
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
        TAKE1(b->ln1_w, "transformer.h.%d.ln_1.weight");
        TAKE1(b->ln1_b, "transformer.h.%d.ln_1.bias");
        SITE(b->c_attn, "transformer.h.%d.attn.c_attn", C, 3 * C);
        SITE(b->attn_proj, "transformer.h.%d.attn.c_proj", C, C);
        TAKE1(b->ln2_w, "transformer.h.%d.ln_2.weight");
        TAKE1(b->ln2_b, "transformer.h.%d.ln_2.bias");
        SITE(b->c_fc, "transformer.h.%d.mlp.c_fc", C, I);
        SITE(b->mlp_proj, "transformer.h.%d.mlp.c_proj", I, C);
#undef TAKE1
#undef SITE
    }
    if (!(s->lnf_w = take(m, "transformer.ln_f.weight", 1, C, 0, err, errlen)) ||
        !(s->lnf_b = take(m, "transformer.ln_f.bias", 1, C, 0, err, errlen)))
        return -1;

    int tie;
    if (peft_config_bool(m, "tie_word_embeddings", 1, 1, &tie, err, errlen)) return -1;
    if (tie) {
        s->lm_head = s->wte; /* registered once, as transformer.wte.weight */
    } else {
        int64_t shape[2] = {s->V, C};
        if (!(s->lm_head = peft_model_take_weight(m, "lm_head.weight", NULL, 2, shape, err, errlen)))
            return -1;
    }
    return 0;
}

static int check_inputs(const gpt2_state *s, const peft_model_inputs *in, char *err, size_t errlen)
{
    if (!in || !in->input_ids || in->B <= 0 || in->T <= 0) {
        snprintf(err, errlen, "gpt2: inputs need input_ids with B > 0 and T > 0");
        return -1;
    }
    if (in->T > s->P) {
        snprintf(err, errlen, "gpt2: sequence length %lld exceeds n_positions %lld",
                 (long long)in->T, (long long)s->P);
        return -1;
    }
    for (int64_t i = 0; i < in->B * in->T; i++) {
        int32_t id = in->input_ids[i];
        if (id < 0 || id >= s->V) {
            snprintf(err, errlen, "gpt2: input_ids[%lld][%lld] = %d is outside the vocabulary "
                     "[0, %lld)", (long long)(i / in->T), (long long)(i % in->T), id,
                     (long long)s->V);
            return -1;
        }
        if (in->labels) {
            int32_t l = in->labels[i];
            if (l != -100 && (l < 0 || l >= s->V)) {
                snprintf(err, errlen, "gpt2: labels[%lld][%lld] = %d is neither -100 nor in "
                         "[0, %lld)", (long long)(i / in->T), (long long)(i % in->T), l,
                         (long long)s->V);
                return -1;
            }
        }
    }
    return 0;
}

/* i32 copy of a (B, T) array in the arena (ops may keep pointers until backward) */
static int32_t *arena_i32(peft_graph *g, const int32_t *src, int64_t B, int64_t T)
{
    int64_t shape[2] = {B, T};
    peft_tensor *t = peft_graph_tensor_raw(g, PEFT_DTYPE_I32, 2, shape);
    if (!t) return NULL;
    if (src) memcpy(t->data, src, (size_t)(B * T) * sizeof(int32_t));
    return t->data;
}

static int gpt2_forward(peft_base_model *m, peft_graph *g, const peft_model_inputs *in,
                        peft_model_outputs *out, char *err, size_t errlen)
{
    gpt2_state *s = m->arch_state;
    out->logits = NULL;
    out->loss = NULL;
    if (check_inputs(s, in, err, errlen)) return -1;
    const int64_t B = in->B, T = in->T, C = s->C;

    int32_t *ids = arena_i32(g, in->input_ids, B, T);
    int32_t *pos = arena_i32(g, NULL, B, T);
    int32_t *mask = in->attention_mask ? arena_i32(g, in->attention_mask, B, T) : NULL;
    if (!ids || !pos || (in->attention_mask && !mask)) goto oom;
    /* HF 4.44: position_ids = arange(T) when not given, even with an attention mask; repeated
     * over the batch so that the position embedding adds row for row */
    for (int64_t i = 0; i < B * T; i++) pos[i] = (int32_t)(i % T);

    int32_t bad = 0;
    peft_tensor *tok = op_embedding(g, s->wte, ids, B, T, &bad); /* (B,T,C) */
    peft_tensor *pe = tok ? op_embedding(g, s->wpe, pos, B, T, &bad) : NULL; /* (B,T,C) */
    peft_tensor *h = pe ? op_add(g, tok, pe) : NULL;
    if (!h || !(h = op_dropout(g, h, s->embd_pdrop))) goto oom;

    for (int64_t l = 0; l < s->L; l++) {
        gpt2_block *b = &s->blocks[l];
        peft_tensor *a = op_layernorm(g, h, b->ln1_w, b->ln1_b, (float)s->eps);
        peft_tensor *qkv = a ? peft_site_forward(g, b->c_attn, a) : NULL; /* (B,T,3C) */
        if (!qkv) goto oom;
        peft_tensor *q = op_slice_lastdim(g, qkv, 0, C);
        peft_tensor *k = op_slice_lastdim(g, qkv, C, C);
        peft_tensor *v = op_slice_lastdim(g, qkv, 2 * C, C);
        if (!q || !k || !v) goto oom;
        peft_tensor *att = op_attention(g, q, k, v, (int)s->H, 1, mask); /* (B,T,C) */
        peft_tensor *o = att ? peft_site_forward(g, b->attn_proj, att) : NULL;
        if (!o || !(o = op_dropout(g, o, s->resid_pdrop)) || !(h = op_add(g, h, o))) goto oom;

        peft_tensor *x = op_layernorm(g, h, b->ln2_w, b->ln2_b, (float)s->eps);
        peft_tensor *f = x ? peft_site_forward(g, b->c_fc, x) : NULL; /* (B,T,I) */
        if (!f || !(f = op_gelu_tanh(g, f))) goto oom;
        peft_tensor *p = peft_site_forward(g, b->mlp_proj, f); /* (B,T,C) */
        if (!p || !(p = op_dropout(g, p, s->resid_pdrop)) || !(h = op_add(g, h, p))) goto oom;
    }
    if (!(h = op_layernorm(g, h, s->lnf_w, s->lnf_b, (float)s->eps))) goto oom;
    peft_tensor *logits = op_linear(g, h, s->lm_head, NULL, 0); /* (B,T,V) */
    if (!logits) goto oom;
    out->logits = logits;

    if (in->labels) {
        /* HF shift: row (b,t) predicts labels[b][t+1]; the last position predicts nothing */
        int32_t *tgt = arena_i32(g, NULL, B, T);
        if (!tgt) goto oom;
        for (int64_t bi = 0; bi < B; bi++)
            for (int64_t t = 0; t < T; t++)
                tgt[bi * T + t] = t + 1 < T ? in->labels[bi * T + t + 1] : -100;
        /* logits (B,T,V) are read as (B*T, V): contiguous rows */
        peft_tensor *loss = op_cross_entropy(g, logits, tgt, -100);
        if (!loss) goto oom;
        out->loss = loss;
    }
    return 0;
oom:
    snprintf(err, errlen, "gpt2: forward failed: out of memory in the step arena (B=%lld, T=%lld)", (long long)B,
             (long long)T);
    return -1;
}

const peft_arch peft_arch_gpt2 = {
    .model_type = "gpt2",
    .class_name = "GPT2LMHeadModel",
    .task_type = "CAUSAL_LM",
    .build = gpt2_build,
    .forward = gpt2_forward,
    .free_state = gpt2_free_state,
};
