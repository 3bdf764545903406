/* prefix_encoder.c — one prefix-tuning adapter (PEFT 0.13.2 PrefixEncoder and the per-layer
 * split of PeftModel.get_prompt): creation checked against the model, the keys and values each
 * attention layer gets, get_prompt_embedding_to_save, and loading a saved prompt_embeddings.
 * The block layout is described in prefix.h. */
#include <math.h>
#include <string.h>

#include "prefix.h"

static int64_t cfg_int_or(const peft_cfg *cfg, const char *key, int64_t def)
{
    return peft_pu_cfg_int_or(prefix_host, cfg, key, def);
}

static peft_tensor *param(int ndim, const int64_t *shape)
{
    return peft_pu_param(prefix_host, ndim, shape);
}

/* frees every tensor of st and clears them (emb too) */
static void free_tensors(prefix_state *st)
{
    peft_tensor *const ts[5] = {st->emb, st->w0, st->b0, st->w2, st->b2};
    peft_pu_free_tensors(prefix_host, ts, 5);
    st->emb = st->w0 = st->b0 = st->w2 = st->b2 = NULL;
}

/* the model facts the config must agree with; 0 or -1 with err naming the field */
static int check_model(const peft_prompt_info *info, int64_t L, int64_t H, int64_t W, int64_t nts,
                       char *err, size_t errlen)
{
    const char *mt = info->model_type ? info->model_type : "?";
    if (info->n_layers <= 0 || info->n_kv_heads <= 0 || info->head_dim <= 0) {
        peft_pu_errf(err, errlen, "prefix tuning needs a model with attention layers; the %s "
                     "model reports none", mt);
        return -1;
    }
    if (L != info->n_layers) {
        peft_pu_errf(err, errlen, "prefix tuning: field 'num_layers' is %lld but the %s model has "
                     "%d attention layers%s", (long long)L, mt, (int)info->n_layers,
                     info->is_encoder_decoder ? " in its decoder" : "");
        return -1;
    }
    if (H != info->n_kv_heads) {
        peft_pu_errf(err, errlen, "prefix tuning: field 'num_attention_heads' is %lld but the %s "
                     "model's attention layers have %d key/value heads", (long long)H, mt,
                     (int)info->n_kv_heads);
        return -1;
    }
    if (W != (int64_t)info->n_kv_heads * info->head_dim) {
        peft_pu_errf(err, errlen, "prefix tuning: field 'token_dim' is %lld but the %s model's "
                     "keys and values are %d wide per token (%d heads x %d): token_dim / "
                     "num_attention_heads must be the head size %d (a model whose head_dim is not "
                     "hidden_size / num_attention_heads needs token_dim = num_attention_heads x "
                     "head_dim, as in PEFT 0.13.2)", (long long)W, mt,
                     (int)(info->n_kv_heads * info->head_dim), (int)info->n_kv_heads,
                     (int)info->head_dim, (int)info->head_dim);
        return -1;
    }
    if (nts != (info->is_encoder_decoder ? 2 : 1)) {
        peft_pu_errf(err, errlen, "prefix tuning: field 'num_transformer_submodules' is %lld; the "
                     "%s model needs %d", (long long)nts, mt, info->is_encoder_decoder ? 2 : 1);
        return -1;
    }
    return 0;
}

void *prefix_init(const void *parsed, peft_cfg *cfg, const peft_prompt_info *info,
                  const char *adapter_name, peft_rng *rng, char *err, size_t errlen)
{
    const prefix_config *c = parsed;
    if (!c || !cfg || !info || !adapter_name || !rng) {
        peft_pu_errf(err, errlen, "prefix tuning: prompt_init: missing argument");
        return NULL;
    }
    int64_t L = cfg_int_or(cfg, "num_layers", 0), W = cfg_int_or(cfg, "token_dim", 0);
    int64_t H = cfg_int_or(cfg, "num_attention_heads", 0);
    const int64_t nts = cfg_int_or(cfg, "num_transformer_submodules", 0);
    /* grouped-query attention (PEFT #1901, _prepare_prompt_learning_config): a model with
     * num_key_value_heads gets token_dim // num_attention_heads * num_key_value_heads and
     * num_attention_heads = num_key_value_heads, whatever its head_dim (for Gemma's head_dim !=
     * hidden / heads, only token_dim = heads * head_dim then fits, as in PEFT). The host does
     * not say whether config.json has num_key_value_heads; a model with fewer key/value heads
     * than num_attention_heads has (GPT-2, BERT, T5 have as many and get no rewrite). */
    const int gqa = info->n_kv_heads > 0 && H > info->n_kv_heads;
    if (gqa && H > 0) {
        W = W / H * info->n_kv_heads;
        H = info->n_kv_heads;
        prefix_host->cfg_set_int(cfg, "token_dim", W);
        prefix_host->cfg_set_int(cfg, "num_attention_heads", H);
    }
    if (check_model(info, L, H, W, nts, err, errlen)) return NULL;
    int64_t E = cfg_int_or(cfg, "encoder_hidden_size", 0);
    if (E <= 0) { /* PEFT: encoder_hidden_size defaults to token_dim */
        E = W;
        prefix_host->cfg_set_int(cfg, "encoder_hidden_size", E);
    }

    prefix_state *st = prefix_host->alloc(sizeof *st);
    if (!st) goto oom;
    st->nvt = c->num_virtual_tokens;
    st->L = L;
    st->W = W;
    st->E = E;
    st->nts = (int)nts;
    st->project = c->prefix_projection && !c->inference_mode;
    const int64_t N = 2 * L * W, P = st->nvt;
    const int64_t s_emb[2] = {P, st->project ? W : N};
    if (!(st->emb = param(2, s_emb))) goto oom;
    peft_pu_fill_normal(prefix_host, st->emb, 1.0, rng); /* nn.Embedding: N(0, 1) */
    if (st->project) { /* nn.Linear: weight and bias U(+-1/sqrt(fan_in)) */
        const int64_t s_w0[2] = {E, W}, s_b0[1] = {E}, s_w2[2] = {N, E}, s_b2[1] = {N};
        if (!(st->w0 = param(2, s_w0)) || !(st->b0 = param(1, s_b0)) ||
            !(st->w2 = param(2, s_w2)) || !(st->b2 = param(1, s_b2)))
            goto oom;
        peft_pu_fill_uniform(prefix_host, st->w0, 1.0 / sqrt((double)W), rng);
        peft_pu_fill_uniform(prefix_host, st->b0, 1.0 / sqrt((double)W), rng);
        peft_pu_fill_uniform(prefix_host, st->w2, 1.0 / sqrt((double)E), rng);
        peft_pu_fill_uniform(prefix_host, st->b2, 1.0 / sqrt((double)E), rng);
    }
    return st;
oom:
    prefix_destroy(st);
    peft_pu_errf(err, errlen, "prefix tuning: out of memory creating adapter '%s'", adapter_name);
    return NULL;
}

/* ---- keys and values per layer ------------------------------------------------------------ */

/* k, v (B, P, W): blocks (2*nts*layer + j) mod 2L, j = 0, 1 (stack 0 / decoder self) or
 * 2, 3 (decoder cross). On arena OOM: 0 with *k = *v = NULL, which the model reports. */
int prefix_kv(void *state, peft_graph *g, int stack, int layer, int64_t B, peft_tensor **k,
              peft_tensor **v)
{
    prefix_state *st = state;
    *k = *v = NULL;
    if (!st || !g || B <= 0 || layer < 0 || layer >= st->L) return 1;
    int j;
    if (st->nts == 1) {
        if (stack != 0) return 1;
        j = 0;
    } else if (stack == 1 || stack == 2) {
        j = stack == 1 ? 0 : 2;
    } else {
        return 1; /* an encoder-decoder's encoder gets no prefix */
    }
    const int64_t blocks = 2 * st->L, first = 2 * st->nts * (int64_t)layer + j;
    const int64_t bk = first % blocks, bv = (first + 1) % blocks;
    if (st->project) {
        peft_tensor *h = prefix_op_hidden(g, st->emb, st->w0, st->b0);
        if (!h) return 0;
        *k = prefix_op_out_block(g, h, st->w2, st->b2, bk * st->W, st->W, B);
        *v = *k ? prefix_op_out_block(g, h, st->w2, st->b2, bv * st->W, st->W, B) : NULL;
    } else {
        *k = prefix_op_table_block(g, st->emb, bk * st->W, st->W, B);
        *v = *k ? prefix_op_table_block(g, st->emb, bv * st->W, st->W, B) : NULL;
    }
    if (!*v) *k = NULL;
    return 0;
}

/* ---- saving and loading ------------------------------------------------------------------- */

/* get_prompt_embedding_to_save: (P, 2LW), the MLP's output when it runs (computed block by
 * block exactly as prefix_kv does, so a reload reproduces the forward bit for bit) */
peft_tensor *prefix_to_save(void *state)
{
    prefix_state *st = state;
    if (!st) return NULL;
    const int64_t P = st->nvt, W = st->W, E = st->E, N = 2 * st->L * W, shape[2] = {P, N};
    peft_tensor *t = prefix_host->tensor_new(2, shape);
    if (!t) return NULL;
    if (!st->project) {
        memcpy(t->data, st->emb->data, (size_t)(P * N) * sizeof(float));
        return t;
    }
    float *h = prefix_host->alloc((size_t)(P * E) * sizeof(float));
    float *blk = prefix_host->alloc((size_t)(P * W) * sizeof(float));
    if (!h || !blk) {
        prefix_host->free(h);
        prefix_host->free(blk);
        prefix_host->tensor_free(t);
        return NULL;
    }
    prefix_hidden_into(peft_f32(st->emb), peft_f32(st->w0), peft_f32(st->b0), P, W, E, h);
    for (int64_t b = 0; b < 2 * st->L; b++) {
        prefix_out_block_into(h, peft_f32(st->w2), peft_f32(st->b2), P, E, b * W, W, blk);
        for (int64_t p = 0; p < P; p++)
            memcpy(peft_f32(t) + p * N + b * W, blk + p * W, (size_t)W * sizeof(float));
    }
    prefix_host->free(h);
    prefix_host->free(blk);
    return t;
}

/* a saved prompt_embeddings (P, 2LW) becomes the table; an MLP is dropped (PEFT's inference
 * mode never builds it). The new table keeps the old embedding's trainable flags. */
int prefix_load(void *state, const peft_tensor *saved, char *err, size_t errlen)
{
    prefix_state *st = state;
    if (!st || !saved) {
        peft_pu_errf(err, errlen, "prefix tuning: prompt_load: missing state or tensor");
        return -1;
    }
    const int64_t P = st->nvt, N = 2 * st->L * st->W;
    if (saved->ndim != 2 || saved->shape[0] != P || saved->shape[1] != N ||
        saved->dtype == PEFT_DTYPE_I32) {
        char got[96];
        peft_pu_errf(err, errlen, "prefix tuning: prompt_embeddings has shape %s%s, the adapter "
                     "expects [%lld, %lld] (num_virtual_tokens, 2 * num_layers * token_dim)",
                     peft_pu_shape_str(saved, got, sizeof got),
                     saved->dtype == PEFT_DTYPE_I32 ? " (int32)" : "", (long long)P, (long long)N);
        return -1;
    }
    if (st->project) {
        const int64_t shape[2] = {P, N};
        peft_tensor *t = prefix_host->tensor_new(2, shape);
        if (!t) {
            peft_pu_errf(err, errlen, "prefix tuning: out of memory loading prompt_embeddings");
            return -1;
        }
        t->requires_grad = st->emb->requires_grad;
        t->flags |= st->emb->flags & PEFT_T_PARAM;
        free_tensors(st);
        st->emb = t;
        st->project = 0;
    }
    prefix_host->tensor_to_f32(saved, peft_f32(st->emb));
    return 0;
}

int64_t prefix_num_virtual(void *state)
{
    prefix_state *st = state;
    return st ? st->nvt : 0;
}

/* ---- state dict, type, destroy ------------------------------------------------------------ */

/* names relative to the host's "prompt_encoder.<adapter>.", in PEFT's parameter order */
int prefix_state_dict(void *state, peft_param_ref *out, int max)
{
    prefix_state *st = state;
    if (!st) return 0;
    const peft_param_ref refs[5] = {
        {.saved_name = "embedding.weight", .memory_name = "embedding.weight", .tensor = st->emb,
         .trainable = 1},
        {.saved_name = "transform.0.weight", .memory_name = "transform.0.weight",
         .tensor = st->w0, .trainable = 1},
        {.saved_name = "transform.0.bias", .memory_name = "transform.0.bias", .tensor = st->b0,
         .trainable = 1},
        {.saved_name = "transform.2.weight", .memory_name = "transform.2.weight",
         .tensor = st->w2, .trainable = 1},
        {.saved_name = "transform.2.bias", .memory_name = "transform.2.bias", .tensor = st->b2,
         .trainable = 1},
    };
    return peft_pu_state_refs(out, max, refs, st->project ? 5 : 1);
}

const char *prefix_module_type(void *state)
{
    (void)state;
    return "PrefixEncoder";
}

void prefix_destroy(void *state)
{
    prefix_state *st = state;
    if (!st) return;
    free_tensors(st);
    prefix_host->free(st);
}
