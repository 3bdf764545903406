/* t5.c — T5ForConditionalGeneration (Hugging Face transformers 4.44): config.json, the weights
 * under HF's names, the linear sites, and the parameter count; the forward pass is in
 * t5_forward.c, the relative position bias in t5_attention.c.
 *
 * Parameters, in HF named_parameters() order: shared.weight (encoder.embed_tokens and
 * decoder.embed_tokens are the same tensor; "encoder.embed_tokens.weight" is accepted in the
 * file instead), encoder.block.{i}.layer.0.SelfAttention.{q,k,v,o}.weight, block 0's
 * SelfAttention.relative_attention_bias.weight (NB, H) (the other blocks reuse it),
 * layer.0.layer_norm, layer.1.DenseReluDense.{wi | wi_0, wi_1}, .wo, layer.1.layer_norm,
 * encoder.final_layer_norm; decoder blocks the same with layer.1.EncDecAttention.{q,k,v,o} and
 * its layer_norm in between (the feed-forward is layer.2), decoder.final_layer_norm;
 * lm_head.weight only when tie_word_embeddings is false (else lm_head is shared.weight).
 * Every q/k/v/o/wi/wi_0/wi_1/wo is a PEFT_SITE_LINEAR site (weight (out, in), no bias) with its
 * block index as layer index; lm_head is not a site (as GPT-2's).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "t5.h"

#define T5_CLASS "T5ForConditionalGeneration"

static void t5_free_state(void *p)
{
    t5_state *s = p;
    if (!s) return;
    free(s->enc);
    free(s->dec);
    free(s);
}

static int act_from_name(const char *name, int *act)
{
    if (!strcmp(name, "relu")) *act = T5_ACT_RELU;
    else if (!strcmp(name, "gelu_new") || !strcmp(name, "gelu_pytorch_tanh")) *act = T5_ACT_GELU_TANH;
    else if (!strcmp(name, "gelu")) *act = T5_ACT_GELU_ERF;
    else if (!strcmp(name, "silu") || !strcmp(name, "swish")) *act = T5_ACT_SILU;
    else return -1;
    return 0;
}

/* T5Config: feed_forward_proj "ACT" or "gated-ACT" sets dense_act_fn = ACT and is_gated_act
 * ("gated-gelu" means gelu_new); explicit dense_act_fn / is_gated_act in config.json win, as
 * PretrainedConfig sets the remaining keys after T5Config derived them. */
static int read_activation(const peft_base_model *m, t5_dims *d, char *err, size_t errlen)
{
    const char *ffp, *act;
    if (peft_config_str_buf(m, "feed_forward_proj", "relu", &ffp, err, errlen)) return -1;
    const char *dash = strchr(ffp, '-');
    int gated = dash && (size_t)(dash - ffp) == 5 && !strncmp(ffp, "gated", 5);
    if ((dash && !gated) || (dash && strchr(dash + 1, '-')) || !*ffp || (dash && !dash[1])) {
        snprintf(err, errlen, "%s/config.json: feed_forward_proj \"%s\" is not of the form "
                 "\"gated-ACT\" or \"ACT\" (e.g. \"gated-gelu\" or \"relu\")", m->dir, ffp);
        return -1;
    }
    const char *derived = !strcmp(ffp, "gated-gelu") ? "gelu_new" : dash ? dash + 1 : ffp;
    if (peft_config_str_buf(m, "dense_act_fn", derived, &act, err, errlen) ||
        peft_config_bool_buf(m, "is_gated_act", 1, gated, &d->gated, err, errlen))
        return -1;
    if (act_from_name(act, &d->act)) {
        snprintf(err, errlen, "%s/config.json: activation \"%s\" (feed_forward_proj \"%s\") is "
                 "unsupported (supported: relu, gelu, gelu_new, gelu_pytorch_tanh, silu, swish)",
                 m->dir, act, ffp);
        return -1;
    }
    return 0;
}

/* an optional token id field: *has = 0 when absent or null */
static int read_token_id(const peft_base_model *m, const char *key, int has_def, int64_t def,
                         int *has, int32_t *out, char *err, size_t errlen)
{
    json_t *v = json_object_get(m->config, key);
    /* an explicit null means "none" (HF then refuses to shift labels); absent: the default */
    *has = v ? !json_is_null(v) : has_def;
    if (!*has) return 0;
    int64_t x;
    if (peft_config_int_buf(m, key, has_def, def, &x, err, errlen)) return -1;
    if (x < 0 || x > INT32_MAX) {
        snprintf(err, errlen, "%s/config.json: %s (%lld) must be a non-negative token id", m->dir,
                 key, (long long)x);
        return -1;
    }
    *out = (int32_t)x;
    return 0;
}

int t5_read_dims(const peft_base_model *m, t5_dims *d, char *err, size_t errlen)
{
    memset(d, 0, sizeof *d);
    double drop;
    if (peft_config_int_buf(m, "d_model", 1, 512, &d->C, err, errlen) ||
        peft_config_int_buf(m, "d_kv", 1, 64, &d->D, err, errlen) ||
        peft_config_int_buf(m, "d_ff", 1, 2048, &d->F, err, errlen) ||
        peft_config_int_buf(m, "num_heads", 1, 8, &d->H, err, errlen) ||
        peft_config_layers(m, "num_layers", 1, 6, &d->L, err, errlen))
        return -1;
    if (peft_config_layers(m, "num_decoder_layers", 1, d->L, &d->Ld, err, errlen) ||
        peft_config_int_buf(m, "vocab_size", 1, 32128, &d->V, err, errlen) ||
        peft_config_int_buf(m, "relative_attention_num_buckets", 1, 32, &d->NB, err, errlen) ||
        peft_config_int_buf(m, "relative_attention_max_distance", 1, 128, &d->maxd, err, errlen) ||
        peft_config_real_buf(m, "layer_norm_epsilon", 1, 1e-6, &d->eps, err, errlen) ||
        peft_config_real_buf(m, "dropout_rate", 1, 0.1, &drop, err, errlen) ||
        peft_config_bool_buf(m, "tie_word_embeddings", 1, 1, &d->tie, err, errlen))
        return -1;
    const struct { const char *key; int64_t v; } pos[] = {
        {"d_model", d->C}, {"d_kv", d->D}, {"d_ff", d->F}, {"num_heads", d->H},
        {"num_layers", d->L}, {"num_decoder_layers", d->Ld}, {"vocab_size", d->V},
    };
    for (size_t i = 0; i < sizeof pos / sizeof pos[0]; i++)
        if (pos[i].v <= 0 || pos[i].v > INT32_MAX) {
            snprintf(err, errlen, "%s/config.json: %s (%lld) must be a positive integer", m->dir,
                     pos[i].key, (long long)pos[i].v);
            return -1;
        }
    /* the bucket function needs one exact bucket per direction and a log range */
    if (d->NB < 4 || d->NB > INT32_MAX || d->maxd <= d->NB / 2 || d->maxd > INT32_MAX) {
        snprintf(err, errlen, "%s/config.json: relative_attention_num_buckets (%lld) must be at "
                 "least 4 and relative_attention_max_distance (%lld) larger than half of it",
                 m->dir, (long long)d->NB, (long long)d->maxd);
        return -1;
    }
    if (!(d->eps > 0)) {
        snprintf(err, errlen, "%s/config.json: layer_norm_epsilon (%g) must be positive", m->dir,
                 d->eps);
        return -1;
    }
    if (!(drop >= 0 && drop < 1)) {
        snprintf(err, errlen, "%s/config.json: dropout_rate (%g) must be in [0, 1)", m->dir, drop);
        return -1;
    }
    d->dropout = (float)drop;
    if (read_activation(m, d, err, errlen) ||
        read_token_id(m, "pad_token_id", 1, 0, &d->has_pad, &d->pad, err, errlen) ||
        read_token_id(m, "decoder_start_token_id", 0, 0, &d->has_start, &d->start, err, errlen))
        return -1;
    return 0;
}

/* ---- weights and sites ------------------------------------------------------------------------ */

static peft_tensor *take(peft_base_model *m, const char *name, const char *alt, int ndim,
                         int64_t d0, int64_t d1, char *err, size_t errlen)
{
    int64_t shape[2] = {d0, d1};
    return peft_model_take_weight(m, name, alt, ndim, shape, err, errlen);
}

/* "<module>.weight" (out, in) as a bias-free linear site */
static peft_site *take_linear(peft_base_model *m, const char *module, int64_t in, int64_t out,
                              int layer, char *err, size_t errlen)
{
    char n[256];
    if (snprintf(n, sizeof n, "%s.weight", module) >= (int)sizeof n) {
        snprintf(err, errlen, "%s: parameter name %s.weight too long", m->dir, module);
        return NULL;
    }
    peft_tensor *w = take(m, n, NULL, 2, out, in, err, errlen);
    if (!w) return NULL;
    peft_site *s = peft_model_add_site(m, module, PEFT_SITE_LINEAR, w, NULL, layer);
    if (!s) snprintf(err, errlen, "%s: cannot register site %s (out of memory)", m->dir, module);
    return s;
}

/* "<stack>.block.<i>.layer.<j>.<Name>.{q,k,v,o}" (and block 0's relative_attention_bias) */
static int take_attention(peft_base_model *m, t5_state *s, const char *prefix, t5_attn *a,
                          peft_tensor **rel, int layer, char *err, size_t errlen)
{
    const int64_t C = s->d.C, I = s->d.H * s->d.D;
    char n[256];
    const char *qkv[3] = {"q", "k", "v"};
    peft_site **dst[3] = {&a->q, &a->k, &a->v};
    for (int i = 0; i < 3; i++) {
        snprintf(n, sizeof n, "%s.%s", prefix, qkv[i]);
        if (!(*dst[i] = take_linear(m, n, C, I, layer, err, errlen))) return -1;
    }
    snprintf(n, sizeof n, "%s.o", prefix);
    if (!(a->o = take_linear(m, n, I, C, layer, err, errlen))) return -1;
    if (rel) {
        snprintf(n, sizeof n, "%s.relative_attention_bias.weight", prefix);
        if (!(*rel = take(m, n, NULL, 2, s->d.NB, s->d.H, err, errlen))) return -1;
    }
    return 0;
}

/* takes "<module>.weight" (C) and registers the T5LayerNorm (an RMSNorm) "<module>" as a norm
 * site; fmt names the module, layer i is its block (-1 for final_layer_norm) */
static peft_site *take_norm(peft_base_model *m, const t5_state *s, const char *fmt,
                            const char *stack, int i, int j, char *err, size_t errlen)
{
    char n[256], w[300];
    snprintf(n, sizeof n, fmt, stack, i, j);
    snprintf(w, sizeof w, "%s.weight", n);
    peft_tensor *t = take(m, w, NULL, 1, s->d.C, 0, err, errlen);
    if (!t) return NULL;
    peft_site *site = peft_model_add_norm_site(m, n, t, NULL, strstr(n, "final_layer_norm") ? -1 : i,
                                               PEFT_NORM_RMS, (float)s->d.eps);
    if (!site) snprintf(err, errlen, "%s: cannot register site %s (out of memory)", m->dir, n);
    return site;
}

static int take_ff(peft_base_model *m, t5_state *s, const char *stack, int i, int j,
                   t5_block *b, char *err, size_t errlen)
{
    char n[256];
    const int64_t C = s->d.C, F = s->d.F;
    if (s->d.gated) {
        snprintf(n, sizeof n, "%s.block.%d.layer.%d.DenseReluDense.wi_0", stack, i, j);
        if (!(b->wi = take_linear(m, n, C, F, i, err, errlen))) return -1;
        snprintf(n, sizeof n, "%s.block.%d.layer.%d.DenseReluDense.wi_1", stack, i, j);
        if (!(b->wi1 = take_linear(m, n, C, F, i, err, errlen))) return -1;
    } else {
        snprintf(n, sizeof n, "%s.block.%d.layer.%d.DenseReluDense.wi", stack, i, j);
        if (!(b->wi = take_linear(m, n, C, F, i, err, errlen))) return -1;
    }
    snprintf(n, sizeof n, "%s.block.%d.layer.%d.DenseReluDense.wo", stack, i, j);
    if (!(b->wo = take_linear(m, n, F, C, i, err, errlen))) return -1;
    if (!(b->ln_ff = take_norm(m, s, "%s.block.%d.layer.%d.layer_norm", stack, i, j, err,
                               errlen)))
        return -1;
    return 0;
}

static int t5_build(peft_base_model *m, char *err, size_t errlen)
{
    t5_state *s = calloc(1, sizeof *s);
    if (!s) { snprintf(err, errlen, "%s: out of memory", m->dir); return -1; }
    m->arch_state = s; /* freed by peft_base_model_free on any failure below */
    if (t5_read_dims(m, &s->d, err, errlen)) return -1;
    const t5_dims *d = &s->d;
    s->enc = calloc((size_t)d->L, sizeof *s->enc);
    s->dec = calloc((size_t)d->Ld, sizeof *s->dec);
    if (!s->enc || !s->dec) { snprintf(err, errlen, "%s: out of memory", m->dir); return -1; }

    if (!(s->shared = take(m, "shared.weight", "encoder.embed_tokens.weight", 2, d->V, d->C, err,
                           errlen)))
        return -1;
    char n[256];
    for (int i = 0; i < (int)d->L; i++) {
        t5_block *b = &s->enc[i];
        snprintf(n, sizeof n, "encoder.block.%d.layer.0.SelfAttention", i);
        if (take_attention(m, s, n, &b->self, i == 0 ? &s->enc_rel : NULL, i, err, errlen) ||
            !(b->ln_self = take_norm(m, s, "%s.block.%d.layer.%d.layer_norm", "encoder", i,
                                     0, err, errlen)) ||
            take_ff(m, s, "encoder", i, 1, b, err, errlen))
            return -1;
    }
    if (!(s->enc_ln = take_norm(m, s, "%s.final_layer_norm", "encoder", -1, 0, err, errlen)))
        return -1;
    for (int i = 0; i < (int)d->Ld; i++) {
        t5_block *b = &s->dec[i];
        snprintf(n, sizeof n, "decoder.block.%d.layer.0.SelfAttention", i);
        if (take_attention(m, s, n, &b->self, i == 0 ? &s->dec_rel : NULL, i, err, errlen) ||
            !(b->ln_self = take_norm(m, s, "%s.block.%d.layer.%d.layer_norm", "decoder", i,
                                     0, err, errlen)))
            return -1;
        snprintf(n, sizeof n, "decoder.block.%d.layer.1.EncDecAttention", i);
        if (take_attention(m, s, n, &b->cross, NULL, i, err, errlen) ||
            !(b->ln_cross = take_norm(m, s, "%s.block.%d.layer.%d.layer_norm", "decoder",
                                      i, 1, err, errlen)) ||
            take_ff(m, s, "decoder", i, 2, b, err, errlen))
            return -1;
    }
    if (!(s->dec_ln = take_norm(m, s, "%s.final_layer_norm", "decoder", -1, 0, err, errlen)))
        return -1;
    if (d->tie) {
        s->lm_head = s->shared; /* registered once, as shared.weight */
    } else if (!(s->lm_head = take(m, "lm_head.weight", NULL, 2, d->V, d->C, err, errlen))) {
        return -1;
    }

    m->class_name = T5_CLASS;
    m->task_type = "SEQ_2_SEQ_LM";
    m->word_embeddings = s->shared;
    /* PEFT's prompt-learning num_layers is config.num_layers (the encoder's count) */
    m->n_layers = (int)d->L;
    m->n_kv_heads = (int)d->H;
    m->head_dim = (int)d->D;
    m->hidden_size = (int)d->C;
    m->is_encoder_decoder = 1;
    return 0;
}

/* transformers' num_parameters(): shared once (both embed_tokens and a tied lm_head are that
 * tensor), block 0's relative bias in each stack, no relative bias in cross-attention */
static int t5_count_params(const json_t *config, const char *class_name, int64_t *n, char *err,
                           size_t errlen)
{
    if (class_name && strcmp(class_name, T5_CLASS) != 0) {
        snprintf(err, errlen, "t5: class %s is unsupported (supported: %s)", class_name, T5_CLASS);
        return -1;
    }
    peft_base_model tmp = {0};
    tmp.dir = (char *)".";
    tmp.config = (json_t *)config;
    t5_dims d;
    if (t5_read_dims(&tmp, &d, err, errlen)) return -1;
    const int64_t C = d.C, I = d.H * d.D;
    const int64_t attn = 4 * C * I + C; /* q, k, v, o and the layer norm before it */
    const int64_t ff = (d.gated ? 3 : 2) * C * d.F + C;
    int64_t total = d.V * C;
    total += d.L * (attn + ff) + d.NB * d.H + C;
    total += d.Ld * (2 * attn + ff) + d.NB * d.H + C;
    if (!d.tie) total += d.V * C;
    *n = total;
    return 0;
}

const peft_arch peft_arch_t5 = {
    .model_type = "t5",
    .class_name = T5_CLASS,
    .task_type = "SEQ_2_SEQ_LM",
    .build = t5_build,
    .forward = t5_forward,
    .free_state = t5_free_state,
    .count_params = t5_count_params,
};
