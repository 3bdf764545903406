/* prompt_embedding.c — one prompt-tuning adapter (PEFT 0.13.2 PromptEmbedding): the table and
 * its initialisation, the virtual-token embeddings handed to the model (with their backward on
 * the host's tape), get_prompt_embedding_to_save and loading a saved table.
 *
 * Shapes: table (R, C), R = num_virtual_tokens * num_transformer_submodules, C = token_dim;
 * the model sees rows [0, P), P = num_virtual_tokens, broadcast over the batch. */
#include <stddef.h>
#include <string.h>

#include "prompt.h"
#include "peft/plugin_prompt.h"

void *prompt_init(const void *parsed, peft_cfg *cfg, const peft_prompt_info *info,
                  const char *adapter_name, peft_rng *rng, char *err, size_t errlen)
{
    const prompt_config *c = parsed;
    if (!c || !cfg || !info || !adapter_name || !rng) {
        peft_pu_errf(err, errlen, "prompt tuning: prompt_init: missing argument");
        return NULL;
    }
    const int64_t dim = peft_pu_cfg_int_or(prompt_host, cfg, "token_dim", 0);
    const int64_t nts = peft_pu_cfg_int_or(prompt_host, cfg, "num_transformer_submodules", 0);
    if (dim != info->hidden_size) {
        peft_pu_errf(err, errlen, "prompt tuning: field 'token_dim' is %lld but the %s model's "
                     "word embeddings are %d wide (its hidden size)", (long long)dim,
                     info->model_type ? info->model_type : "?", (int)info->hidden_size);
        return NULL;
    }
    /* PEFT prepends nvt * num_transformer_submodules rows to a decoder-only or encoder-only model
     * but only nvt mask ones (a shape error); encoder-decoders take the first nvt rows */
    if (nts != 1 && !(nts == 2 && info->is_encoder_decoder)) {
        peft_pu_errf(err, errlen, "prompt tuning: field 'num_transformer_submodules' is %lld; "
                     "allowed: 1%s", (long long)nts,
                     info->is_encoder_decoder ? " or 2 (encoder-decoder models)"
                                             : " (the model is not an encoder-decoder)");
        return NULL;
    }
    prompt_state *st = prompt_host->alloc(sizeof *st);
    if (!st) goto oom;
    st->nvt = c->num_virtual_tokens;
    st->rows = st->nvt * nts;
    st->dim = dim;
    const int64_t shape[2] = {st->rows, dim};
    st->table = peft_pu_param(prompt_host, 2, shape);
    if (!st->table) goto oom;

    float *t = peft_f32(st->table);
    const peft_tensor *we = info->word_embeddings;
    if (c->init == PROMPT_INIT_SAMPLE_VOCAB && !c->inference_mode) {
        /* PEFT >= 0.14: word_embeddings(randint(0, vocab, (R,))) */
        if (!peft_pu_word_embeddings_ok(we, dim)) {
            peft_pu_errf(err, errlen, "prompt tuning: prompt_tuning_init \"SAMPLE_VOCAB\" needs "
                         "the model's word embeddings (vocab, %lld); the %s model gives none",
                         (long long)dim, info->model_type ? info->model_type : "?");
            prompt_destroy(st);
            return NULL;
        }
        const int64_t V = we->shape[0];
        for (int64_t r = 0; r < st->rows; r++) {
            int64_t id = (int64_t)(prompt_host->rng_uniform(rng) * (double)V);
            if (id >= V) id = V - 1;
            if (we->data) peft_pu_word_row(prompt_host, we, id, t + r * dim); /* a meta model: zeros */
        }
    } else if (c->init == PROMPT_INIT_TEXT && !c->inference_mode) {
        /* PEFT: ids = tokenizer(text)["input_ids"], cut to or repeated up to R rows, then
         * word_embeddings(ids); the text and the tokenizer are this config's fields */
        if (peft_pu_prompt_text_init(prompt_host, cfg, info, "prompt tuning", t, st->rows, dim,
                                     err, errlen)) {
            prompt_destroy(st);
            return NULL;
        }
    } else { /* RANDOM (and any init in inference mode): nn.Embedding's N(0, 1) */
        peft_pu_fill_normal(prompt_host, st->table, 1.0, rng);
    }
    return st;
oom:
    prompt_destroy(st);
    peft_pu_errf(err, errlen, "prompt tuning: out of memory creating adapter '%s'", adapter_name);
    return NULL;
}

/* ---- the virtual tokens and their backward ------------------------------------------------ */

/* table (R, C) rows [0, P) -> out (B, P, C), the same rows for every batch item; the backward
 * sums over the batch into the table's rows [0, P) (rows P..R-1 get nothing, as in PEFT) */
peft_tensor *prompt_embeddings(void *state, peft_graph *g, int64_t B)
{
    prompt_state *st = state;
    if (!st || !g || B <= 0) return NULL;
    return peft_pu_op_batch_rows(prompt_host, g, st->table, st->nvt, B);
}

/* ---- saving and loading ------------------------------------------------------------------- */

/* get_prompt_embedding_to_save: the whole table, every row (R, C) */
peft_tensor *prompt_to_save(void *state)
{
    prompt_state *st = state;
    if (!st) return NULL;
    peft_tensor *t = prompt_host->tensor_new(2, st->table->shape);
    if (t) memcpy(t->data, st->table->data, (size_t)st->table->numel * sizeof(float));
    return t;
}

/* embedding.load_state_dict({"weight": saved}, strict=True): the shape must be (R, C) */
int prompt_load(void *state, const peft_tensor *saved, char *err, size_t errlen)
{
    prompt_state *st = state;
    if (!st || !saved) {
        peft_pu_errf(err, errlen, "prompt tuning: prompt_load: missing state or tensor");
        return -1;
    }
    if (saved->ndim != 2 || saved->shape[0] != st->rows || saved->shape[1] != st->dim ||
        saved->dtype == PEFT_DTYPE_I32) {
        char got[96];
        peft_pu_errf(err, errlen, "prompt tuning: prompt_embeddings has shape %s%s, the adapter "
                     "expects [%lld, %lld] (num_virtual_tokens * num_transformer_submodules, "
                     "token_dim)", peft_pu_shape_str(saved, got, sizeof got),
                     saved->dtype == PEFT_DTYPE_I32 ? " (int32)" : "", (long long)st->rows,
                     (long long)st->dim);
        return -1;
    }
    prompt_host->tensor_to_f32(saved, peft_f32(st->table));
    return 0;
}

int64_t prompt_num_virtual(void *state)
{
    prompt_state *st = state;
    return st ? st->nvt : 0;
}

/* ---- state dict, type, destroy ------------------------------------------------------------ */

/* names relative to the host's "prompt_encoder.<adapter>." */
int prompt_state_dict(void *state, peft_param_ref *out, int max)
{
    prompt_state *st = state;
    if (!st) return 0;
    const peft_param_ref ref = {.saved_name = "embedding.weight",
                                .memory_name = "embedding.weight", .tensor = st->table,
                                .trainable = 1};
    return peft_pu_state_refs(out, max, &ref, 1);
}

const char *prompt_module_type(void *state)
{
    (void)state;
    return "PromptEmbedding";
}

void prompt_destroy(void *state)
{
    prompt_state *st = state;
    if (!st) return;
    peft_pu_free_tensors(prompt_host, &st->table, 1);
    prompt_host->free(st);
}
