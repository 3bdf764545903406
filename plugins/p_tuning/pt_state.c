/* pt_state.c — one P-tuning adapter (PEFT 0.13.2 PromptEncoder): the table and the encoder with
 * PyTorch's default inits, the virtual tokens handed to the model, get_prompt_embedding_to_save
 * (the encoder's output), loading a saved prompt_embeddings, the state dict in PEFT's order. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "p_tuning.h"

/* a trainable tensor named `name` appended to st->params; NULL on OOM */
static peft_tensor *add_param(pt_state *st, const char *name, int ndim, const int64_t *shape)
{
    peft_tensor *t = peft_pu_param(pt_host, ndim, shape);
    if (!t) return NULL;
    snprintf(st->names[st->n_params], sizeof st->names[0], "%s", name);
    st->params[st->n_params++] = t;
    return t;
}

/* nn.Linear(din, dout) as mlp_head.<idx>: weight and bias U(+-1/sqrt(din)) */
static int add_linear(pt_state *st, int i, int idx, int64_t din, int64_t dout, peft_rng *rng)
{
    char name[40];
    const int64_t ws[2] = {dout, din}, bs[1] = {dout};
    snprintf(name, sizeof name, "mlp_head.%d.weight", idx);
    if (!(st->head_w[i] = add_param(st, name, 2, ws))) return -1;
    snprintf(name, sizeof name, "mlp_head.%d.bias", idx);
    if (!(st->head_b[i] = add_param(st, name, 1, bs))) return -1;
    peft_pu_fill_uniform(pt_host, st->head_w[i], 1.0 / sqrt((double)din), rng);
    peft_pu_fill_uniform(pt_host, st->head_b[i], 1.0 / sqrt((double)din), rng);
    return 0;
}

/* nn.LSTM(C, H, layers, bidirectional): every tensor U(+-1/sqrt(H)), PyTorch's names */
static int add_lstm(pt_state *st, peft_rng *rng)
{
    static const char *const kind[4] = {"weight_ih", "weight_hh", "bias_ih", "bias_hh"};
    const int64_t H = st->hidden;
    for (int l = 0; l < st->n_lstm; l++)
        for (int d = 0; d < 2; d++)
            for (int k = 0; k < 4; k++) {
                char name[40];
                const int64_t in = l ? 2 * H : st->dim;
                const int64_t shape[2] = {4 * H, k == 0 ? in : H};
                snprintf(name, sizeof name, "lstm_head.%s_l%d%s", kind[k], l, d ? "_reverse" : "");
                peft_tensor *t = add_param(st, name, k < 2 ? 2 : 1, shape);
                if (!t) return -1;
                peft_pu_fill_uniform(pt_host, t, 1.0 / sqrt((double)H), rng);
                st->lstm[l][d][k] = t;
            }
    return 0;
}

void *pt_init(const void *parsed, peft_cfg *cfg, const peft_prompt_info *info,
              const char *adapter_name, peft_rng *rng, char *err, size_t errlen)
{
    const pt_config *c = parsed;
    if (!c || !cfg || !info || !adapter_name || !rng) {
        peft_pu_errf(err, errlen, "p-tuning: prompt_init: missing argument");
        return NULL;
    }
    const int64_t dim = peft_pu_cfg_int_or(pt_host, cfg, "token_dim", 0);
    const int64_t nts = peft_pu_cfg_int_or(pt_host, cfg, "num_transformer_submodules", 0);
    if (dim != info->hidden_size) {
        peft_pu_errf(err, errlen, "p-tuning: field 'token_dim' is %lld but the %s model's word "
                     "embeddings are %d wide (its hidden size)", (long long)dim,
                     info->model_type ? info->model_type : "?", (int)info->hidden_size);
        return NULL;
    }
    if (nts != 1 && !(nts == 2 && info->is_encoder_decoder)) {
        peft_pu_errf(err, errlen, "p-tuning: field 'num_transformer_submodules' is %lld; "
                     "allowed: 1%s", (long long)nts,
                     info->is_encoder_decoder ? " or 2 (encoder-decoder models)"
                                             : " (the model is not an encoder-decoder)");
        return NULL;
    }
    int64_t H = peft_pu_cfg_int_or(pt_host, cfg, "encoder_hidden_size", 0);
    if (H <= 0) { /* PEFT's _prepare_prompt_learning_config: token_dim */
        H = dim;
        pt_host->cfg_set_int(cfg, "encoder_hidden_size", H);
    }
    pt_state *st = pt_host->alloc(sizeof *st);
    if (!st) goto oom;
    st->nvt = c->num_virtual_tokens;
    st->rows = st->nvt * nts;
    st->dim = dim;
    st->hidden = H;
    st->type = c->type;
    st->dropout = c->dropout;
    st->encoder = !c->inference_mode;
    const int64_t es[2] = {st->rows, dim};
    if (!add_param(st, "embedding.weight", 2, es)) goto oom;
    st->emb = st->params[0];
    peft_pu_fill_normal(pt_host, st->emb, 1.0, rng); /* nn.Embedding: N(0, 1) */
    if (!st->encoder) return st; /* inference mode: PEFT builds no encoder */
    if (c->type == PT_LSTM) {
        st->n_lstm = (int)c->num_layers;
        st->n_head = 2;
        const int64_t dims[3] = {2 * H, 2 * H, dim};
        memcpy(st->head_dims, dims, sizeof dims);
        if (add_lstm(st, rng) || add_linear(st, 0, 0, 2 * H, 2 * H, rng) ||
            add_linear(st, 1, 2, 2 * H, dim, rng))
            goto oom;
    } else {
        st->n_head = 3;
        const int64_t dims[4] = {dim, H, H, dim};
        memcpy(st->head_dims, dims, sizeof dims);
        if (add_linear(st, 0, 0, dim, H, rng) || add_linear(st, 1, 2, H, H, rng) ||
            add_linear(st, 2, 4, H, dim, rng))
            goto oom;
    }
    return st;
oom:
    pt_destroy(st);
    peft_pu_errf(err, errlen, "p-tuning: out of memory creating adapter '%s'", adapter_name);
    return NULL;
}

/* (B, P, C): the encoder's output (or the table, without an encoder), rows [0, P) for every
 * batch item (PEFT runs the encoder once and repeats it over the batch) */
peft_tensor *pt_embeddings(void *state, peft_graph *g, int64_t B)
{
    pt_state *st = state;
    if (!st || !g || B <= 0) return NULL;
    peft_tensor *src = st->encoder ? pt_encoder_op(st, g) : st->emb;
    return src ? peft_pu_op_batch_rows(pt_host, g, src, st->nvt, B) : NULL;
}

/* get_prompt_embedding_to_save: the encoder's output for all R rows (R, C) */
peft_tensor *pt_to_save(void *state)
{
    pt_state *st = state;
    if (!st) return NULL;
    peft_tensor *t = pt_host->tensor_new(2, st->emb->shape);
    if (!t) return NULL;
    if (!st->encoder) {
        memcpy(t->data, st->emb->data, (size_t)st->emb->numel * sizeof(float));
    } else if (pt_encoder_eval(st, peft_f32(t))) {
        pt_host->tensor_free(t);
        return NULL;
    }
    return t;
}

/* A saved prompt_embeddings is the encoder's output: it becomes the table and the encoder is
 * dropped (PEFT's inference mode never builds one; PEFT loading it trainable would run its new,
 * random encoder over the saved output instead). The table keeps its trainable flags. */
int pt_load(void *state, const peft_tensor *saved, char *err, size_t errlen)
{
    pt_state *st = state;
    if (!st || !saved) {
        peft_pu_errf(err, errlen, "p-tuning: prompt_load: missing state or tensor");
        return -1;
    }
    if (saved->ndim != 2 || saved->shape[0] != st->rows || saved->shape[1] != st->dim ||
        saved->dtype == PEFT_DTYPE_I32) {
        char got[96];
        peft_pu_errf(err, errlen, "p-tuning: prompt_embeddings has shape %s%s, the adapter "
                     "expects [%lld, %lld] (num_virtual_tokens * num_transformer_submodules, "
                     "token_dim)", peft_pu_shape_str(saved, got, sizeof got),
                     saved->dtype == PEFT_DTYPE_I32 ? " (int32)" : "", (long long)st->rows,
                     (long long)st->dim);
        return -1;
    }
    if (st->encoder) {
        peft_pu_free_tensors(pt_host, st->params + 1, st->n_params - 1);
        memset(st->lstm, 0, sizeof st->lstm);
        memset(st->head_w, 0, sizeof st->head_w);
        memset(st->head_b, 0, sizeof st->head_b);
        st->n_params = 1;
        st->n_lstm = st->n_head = 0;
        st->encoder = 0;
    }
    pt_host->tensor_to_f32(saved, peft_f32(st->emb));
    return 0;
}

int64_t pt_num_virtual(void *state)
{
    pt_state *st = state;
    return st ? st->nvt : 0;
}

/* names relative to the host's "prompt_encoder.<adapter>.", in PEFT's order: embedding,
 * lstm_head, mlp_head */
int pt_state_dict(void *state, peft_param_ref *out, int max)
{
    pt_state *st = state;
    if (!st) return 0;
    for (int i = 0; out && i < st->n_params && i < max; i++)
        out[i] = (peft_param_ref){.saved_name = st->names[i], .memory_name = st->names[i],
                                  .tensor = st->params[i], .trainable = 1};
    return st->n_params;
}

const char *pt_module_type(void *state)
{
    (void)state;
    return "PromptEncoder";
}

void pt_destroy(void *state)
{
    pt_state *st = state;
    if (!st) return;
    peft_pu_free_tensors(pt_host, st->params, st->n_params);
    pt_host->free(st);
}
