/* mpt_source.c — multitask prompt tuning's source-task inits (PEFT 0.13.2's
 * MultitaskPromptEmbedding.__init__), read from a source multitask adapter's file
 * (prompt_tuning_init_state_dict_path: its adapter_model.safetensors, whose keys are
 * prompt_embeddings (R, C), prefix_task_cols (S, R, K) and prefix_task_rows (S, K, C)) through
 * the host's safetensors_read (ABI 1.5):
 *   AVERAGE_SOURCE_TASKS  table = prompt_embeddings, cols[0] = mean_s cols_s, rows[0] = mean_s rows_s
 *   EXACT_SOURCE_TASK     table = prompt_embeddings, cols[0] = cols_t, rows[0] = rows_t
 *                         (t = prompt_tuning_init_task; negative counts from the end, as Python)
 *   ONLY_SOURCE_SHARED    table = prompt_embeddings; the factors keep their random init
 * PEFT decides by the path: ".safetensors" is read as safetensors, anything else with
 * torch.load (a pickle), which libpeft refuses with a message. */
#include <stdio.h>
#include <string.h>

#include "mpt.h"

static const char *const init_names[] = {"TEXT", "RANDOM", "AVERAGE_SOURCE_TASKS",
                                         "EXACT_SOURCE_TASK", "ONLY_SOURCE_SHARED"};

static int shape_is(const peft_tensor *t, int ndim, int64_t d0, int64_t d1, int64_t d2)
{
    const int64_t d[3] = {d0, d1, d2};
    if (t->ndim != ndim) return 0;
    for (int i = 0; i < ndim; i++)
        if (d[i] >= 0 && t->shape[i] != d[i]) return 0;
    return 1;
}

/* the task factors (prefix_task_cols t[1] (S, R, K), prefix_task_rows t[2] (S, K, C)) into
 * st: one source task's (EXACT_SOURCE_TASK) or their mean over the S tasks. 0 or -1 with err */
static int task_factors(mpt_state *st, const mpt_config *c, const char *path, peft_tensor *const *t,
                        char *err, size_t errlen)
{
    char got[96];
    const int64_t R = st->rows, C = st->dim, K = st->ranks;
    const int64_t S = t[1]->ndim == 3 ? t[1]->shape[0] : -1;
    if (S <= 0 || !shape_is(t[1], 3, S, R, K) || !shape_is(t[2], 3, S, K, C)) {
        char got2[96];
        peft_pu_errf(err, errlen, "multitask prompt tuning: %s: prefix_task_cols is %s and "
                     "prefix_task_rows %s; this adapter needs [tasks, %lld, %lld] and "
                     "[tasks, %lld, %lld] (num_ranks %lld, token_dim %lld)", path,
                     peft_pu_shape_str(t[1], got, sizeof got),
                     peft_pu_shape_str(t[2], got2, sizeof got2), (long long)R, (long long)K,
                     (long long)K, (long long)C, (long long)K, (long long)C);
        return -1;
    }
    const int64_t nc = R * K, nr = K * C;
    const float *sc = peft_f32(t[1]), *sr = peft_f32(t[2]);
    float *dc = peft_f32(st->cols), *dr = peft_f32(st->trows);
    if (c->init == MPT_INIT_EXACT_SOURCE_TASK) {
        const int64_t task = c->init_task < 0 ? c->init_task + S : c->init_task;
        if (task < 0 || task >= S) { /* PEFT: IndexError */
            peft_pu_errf(err, errlen, "multitask prompt tuning: field "
                         "'prompt_tuning_init_task' is %lld but %s holds %lld source tasks "
                         "(0..%lld, or -1..-%lld from the end)", (long long)c->init_task,
                         path, (long long)S, (long long)S - 1, (long long)S);
            return -1;
        }
        memcpy(dc, sc + task * nc, (size_t)nc * sizeof(float));
        memcpy(dr, sr + task * nr, (size_t)nr * sizeof(float));
    } else { /* AVERAGE_SOURCE_TASKS: mean over the source tasks (dim 0) */
        for (int64_t i = 0; i < nc; i++) {
            double s = 0;
            for (int64_t k = 0; k < S; k++) s += sc[k * nc + i];
            dc[i] = (float)(s / (double)S);
        }
        for (int64_t i = 0; i < nr; i++) {
            double s = 0;
            for (int64_t k = 0; k < S; k++) s += sr[k * nr + i];
            dr[i] = (float)(s / (double)S);
        }
    }
    return 0;
}

int mpt_source_init(mpt_state *st, const mpt_config *c, const char *path, char *err,
                    size_t errlen)
{
    const char *init = init_names[c->init];
    if (!PEFT_HOST_HAS(mpt_host, safetensors_read)) {
        peft_pu_errf(err, errlen, "multitask prompt tuning: prompt_tuning_init \"%s\" reads the "
                     "source adapter's file through the host's safetensors_read (ABI 1.5); this "
                     "host is ABI %u.%u", init, (unsigned)mpt_host->abi_major,
                     (unsigned)mpt_host->abi_minor);
        return -1;
    }
    const size_t len = path ? strlen(path) : 0;
    static const char ext[] = ".safetensors";
    if (len < sizeof ext - 1 || strcmp(path + len - (sizeof ext - 1), ext) != 0) {
        peft_pu_errf(err, errlen, "multitask prompt tuning: prompt_tuning_init_state_dict_path "
                     "'%s' does not end in .safetensors: PEFT 0.13.2 reads such a file with "
                     "torch.load (a pickle), which libpeft does not read; give the source "
                     "adapter's adapter_model.safetensors (or convert the file with "
                     "safetensors.torch.save_file)", path ? path : "");
        return -1;
    }
    static const char *const names[3] = {"prompt_embeddings", "prefix_task_cols",
                                         "prefix_task_rows"};
    const int n = c->init == MPT_INIT_ONLY_SOURCE_SHARED ? 1 : 3;
    peft_tensor *t[3] = {NULL, NULL, NULL};
    char rerr[1024];
    if (mpt_host->safetensors_read(path, names, n, t, rerr, sizeof rerr)) {
        peft_pu_errf(err, errlen, "multitask prompt tuning: prompt_tuning_init \"%s\": %s", init,
                     rerr);
        return -1;
    }
    int rc = -1;
    char got[96];
    const int64_t R = st->rows, C = st->dim;
    for (int i = 0; i < n; i++)
        if (!t[i]) { /* PEFT: KeyError */
            peft_pu_errf(err, errlen, "multitask prompt tuning: %s has no tensor '%s' (a "
                         "multitask prompt tuning adapter's file has prompt_embeddings, "
                         "prefix_task_cols and prefix_task_rows)", path, names[i]);
            goto out;
        }
    if (!shape_is(t[0], 2, R, C, -1)) {
        peft_pu_errf(err, errlen, "multitask prompt tuning: %s: prompt_embeddings is %s, this "
                     "adapter's embedding.weight is [%lld, %lld] (num_virtual_tokens * "
                     "num_transformer_submodules, token_dim)", path,
                     peft_pu_shape_str(t[0], got, sizeof got), (long long)R, (long long)C);
        goto out;
    }
    if (n == 3 && task_factors(st, c, path, t, err, errlen)) goto out;
    memcpy(peft_f32(st->table), peft_f32(t[0]), (size_t)(R * C) * sizeof(float));
    rc = 0;
out:
    for (int i = 0; i < 3; i++) mpt_host->tensor_free(t[i]);
    return rc;
}
