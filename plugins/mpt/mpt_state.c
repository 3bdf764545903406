/* mpt_state.c — one multitask prompt-tuning adapter: the shared table and the per-task factors
 * with PEFT 0.13.2's inits (table N(0, 1) or the init text's embeddings; factors N(0, 0.02^2);
 * then a source adapter's values for the source-task inits, mpt_source.c),
 * get_peft_model_state_dict's three keys, loading, and the state dict in PEFT's order. */
#include <string.h>

#include "mpt.h"
#include "peft/plugin_prompt.h"

void *mpt_init(const void *parsed, peft_cfg *cfg, const peft_prompt_info *info,
               const char *adapter_name, peft_rng *rng, char *err, size_t errlen)
{
    const mpt_config *c = parsed;
    if (!c || !cfg || !info || !adapter_name || !rng) {
        peft_pu_errf(err, errlen, "multitask prompt tuning: prompt_init: missing argument");
        return NULL;
    }
    const int64_t dim = peft_pu_cfg_int_or(mpt_host, cfg, "token_dim", 0);
    const int64_t nts = peft_pu_cfg_int_or(mpt_host, cfg, "num_transformer_submodules", 0);
    if (dim != info->hidden_size) {
        peft_pu_errf(err, errlen, "multitask prompt tuning: field 'token_dim' is %lld but the %s "
                     "model's word embeddings are %d wide (its hidden size)", (long long)dim,
                     info->model_type ? info->model_type : "?", (int)info->hidden_size);
        return NULL;
    }
    if (nts != 1 && !(nts == 2 && info->is_encoder_decoder)) {
        peft_pu_errf(err, errlen, "multitask prompt tuning: field 'num_transformer_submodules' "
                     "is %lld; allowed: 1%s", (long long)nts,
                     info->is_encoder_decoder ? " or 2 (encoder-decoder models)"
                                             : " (the model is not an encoder-decoder)");
        return NULL;
    }
    mpt_state *st = mpt_host->alloc(sizeof *st);
    if (!st) goto oom;
    st->nvt = c->num_virtual_tokens;
    st->rows = st->nvt * nts;
    st->dim = dim;
    st->tasks = c->num_tasks;
    st->ranks = c->num_ranks;
    const int64_t ts[2] = {st->rows, dim}, cs[3] = {st->tasks, st->rows, st->ranks},
                  rs[3] = {st->tasks, st->ranks, dim};
    if (!(st->table = peft_pu_param(mpt_host, 2, ts)) || !(st->cols = peft_pu_param(mpt_host, 3, cs)) ||
        !(st->trows = peft_pu_param(mpt_host, 3, rs)))
        goto oom;
    peft_pu_fill_normal(mpt_host, st->table, 1.0, rng); /* nn.Embedding: N(0, 1) */
    if (c->init == MPT_INIT_TEXT && !c->inference_mode &&
        peft_pu_prompt_text_init(mpt_host, cfg, info, "multitask prompt tuning",
                                 peft_f32(st->table), st->rows, dim, err, errlen)) {
        mpt_destroy(st);
        return NULL;
    }
    peft_pu_fill_normal(mpt_host, st->cols, 0.02, rng); /* torch.normal(0, 0.02) */
    peft_pu_fill_normal(mpt_host, st->trows, 0.02, rng);
    /* the source-task inits replace the values just drawn (PEFT draws them all the same) */
    if (c->init >= MPT_INIT_AVERAGE_SOURCE_TASKS && !c->inference_mode &&
        mpt_source_init(st, c, mpt_host->cfg_str(cfg, "prompt_tuning_init_state_dict_path"), err,
                        errlen)) {
        mpt_destroy(st);
        return NULL;
    }
    return st;
oom:
    mpt_destroy(st);
    peft_pu_errf(err, errlen, "multitask prompt tuning: out of memory creating adapter '%s'",
                 adapter_name);
    return NULL;
}

/* get_peft_model_state_dict: prompt_embeddings is the table itself (R, C) */
peft_tensor *mpt_to_save(void *state)
{
    mpt_state *st = state;
    if (!st) return NULL;
    peft_tensor *t = mpt_host->tensor_new(2, st->table->shape);
    if (t) memcpy(t->data, st->table->data, (size_t)st->table->numel * sizeof(float));
    return t;
}

int mpt_load(void *state, const peft_tensor *saved, char *err, size_t errlen)
{
    mpt_state *st = state;
    if (!st || !saved) {
        peft_pu_errf(err, errlen, "multitask prompt tuning: prompt_load: missing state or tensor");
        return -1;
    }
    if (saved->ndim != 2 || saved->shape[0] != st->rows || saved->shape[1] != st->dim ||
        saved->dtype == PEFT_DTYPE_I32) {
        char got[96];
        peft_pu_errf(err, errlen, "multitask prompt tuning: prompt_embeddings has shape %s%s, "
                     "the adapter expects [%lld, %lld] (num_virtual_tokens * "
                     "num_transformer_submodules, token_dim)",
                     peft_pu_shape_str(saved, got, sizeof got),
                     saved->dtype == PEFT_DTYPE_I32 ? " (int32)" : "", (long long)st->rows,
                     (long long)st->dim);
        return -1;
    }
    mpt_host->tensor_to_f32(saved, peft_f32(st->table));
    return 0;
}

int64_t mpt_num_virtual(void *state)
{
    mpt_state *st = state;
    return st ? st->nvt : 0;
}

/* names relative to the host's "prompt_encoder.<adapter>.", in PEFT's order; the task factors
 * are also saved under their own top-level keys (PEFT_PARAM_PROMPT_KEY) */
int mpt_state_dict(void *state, peft_param_ref *out, int max)
{
    mpt_state *st = state;
    if (!st) return 0;
    const peft_param_ref refs[3] = {
        {.saved_name = "prefix_task_cols", .memory_name = "prefix_task_cols", .tensor = st->cols,
         .trainable = 1, .flags = PEFT_PARAM_PROMPT_KEY},
        {.saved_name = "prefix_task_rows", .memory_name = "prefix_task_rows",
         .tensor = st->trows, .trainable = 1, .flags = PEFT_PARAM_PROMPT_KEY},
        {.saved_name = "embedding.weight", .memory_name = "embedding.weight",
         .tensor = st->table, .trainable = 1},
    };
    return peft_pu_state_refs(out, max, refs, 3);
}

const char *mpt_module_type(void *state)
{
    (void)state;
    return "MultitaskPromptEmbedding";
}

void mpt_destroy(void *state)
{
    mpt_state *st = state;
    if (!st) return;
    peft_tensor *const ts[3] = {st->table, st->cols, st->trows};
    peft_pu_free_tensors(mpt_host, ts, 3);
    mpt_host->free(st);
}
