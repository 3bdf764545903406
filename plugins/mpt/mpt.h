/* mpt.h — declarations shared by the multitask prompt tuning plugin's files (never installed,
 * never seen by the host). Built with -fvisibility=hidden: only peft_plugin_init is exported.
 *
 * Multitask prompt tuning (PEFT 0.13.2 MultitaskPromptEmbedding): a shared table of R =
 * num_virtual_tokens * num_transformer_submodules rows of token_dim values (embedding.weight)
 * and, per task t, a rank-K factorisation prefix_task_cols[t] (R, K) @ prefix_task_rows[t]
 * (K, C); batch row b of task t_b (the inputs' task_ids) gets the virtual tokens
 *     out[b] = table[:P] * (cols[t_b] @ rows[t_b])[:P]            (element-wise; P = nvt)
 * Saved: prompt_embeddings (the table), prefix_task_cols (T, R, K), prefix_task_rows (T, K, C).
 *
 *   mpt_config.c  config_keys, config_parse/free (MultitaskPromptTuningConfig fields)
 *   mpt_state.c   prompt_init (RANDOM / TEXT), saving and loading, state_dict, destroy
 *   mpt_source.c  the source-task inits (AVERAGE_SOURCE_TASKS, EXACT_SOURCE_TASK,
 *                 ONLY_SOURCE_SHARED) from prompt_tuning_init_state_dict_path
 *   mpt_ops.c     the task-prompt op and its backward
 *   mpt_plugin.c  the vtable and the exported entry point
 */
#ifndef PEFT_MPT_PLUGIN_H
#define PEFT_MPT_PLUGIN_H

#include <stddef.h>
#include <stdint.h>
#include "peft/plugin.h"
#include "peft/plugin_kernels.h"
#include "peft/plugin_util.h"

/* The host table handed to peft_plugin_init; set once, before any other entry is called. */
extern const peft_host_api *mpt_host;

/* prompt_tuning_init (MultitaskPromptTuningInit) */
#define MPT_INIT_TEXT 0
#define MPT_INIT_RANDOM 1
#define MPT_INIT_AVERAGE_SOURCE_TASKS 2
#define MPT_INIT_EXACT_SOURCE_TASK 3
#define MPT_INIT_ONLY_SOURCE_SHARED 4

typedef struct mpt_config {
    int64_t num_virtual_tokens, num_tasks, num_ranks;
    int64_t init_task;  /* prompt_tuning_init_task (EXACT_SOURCE_TASK; negative counts from the end) */
    int init;           /* MPT_INIT_* */
    int inference_mode; /* 1: no init from the vocabulary or a source (values come from a file) */
} mpt_config;

/* One adapter. Owns its tensors (freed by mpt_destroy). */
typedef struct mpt_state {
    int64_t nvt, rows, dim, tasks, ranks; /* P, R, C, T, K */
    peft_tensor *cols;  /* prefix_task_cols (T, R, K) */
    peft_tensor *trows; /* prefix_task_rows (T, K, C) */
    peft_tensor *table; /* embedding.weight (R, C) */
} mpt_state;

/* mpt_config.c */
extern const char *const mpt_config_keys[];
int mpt_config_parse(peft_cfg *cfg, void **out, char *err, size_t errlen);
void mpt_config_free(void *parsed);

/* mpt_state.c */
void *mpt_init(const void *parsed, peft_cfg *cfg, const peft_prompt_info *info,
               const char *adapter_name, peft_rng *rng, char *err, size_t errlen);
peft_tensor *mpt_to_save(void *state);
int mpt_load(void *state, const peft_tensor *saved, char *err, size_t errlen);
int64_t mpt_num_virtual(void *state);
int mpt_state_dict(void *state, peft_param_ref *out, int max);
const char *mpt_module_type(void *state);
void mpt_destroy(void *state);

/* mpt_source.c: overwrites st's values from the source adapter's file at path, as PEFT 0.13.2's
 * MultitaskPromptEmbedding.__init__ does for c->init. 0, or -1 with err naming the file */
int mpt_source_init(mpt_state *st, const mpt_config *c, const char *path, char *err,
                    size_t errlen);

/* mpt_ops.c: (B, P, C) for a batch whose row b is of task task_ids[b]; NULL with the graph's
 * error set when task_ids is NULL or names no task */
peft_tensor *mpt_embeddings_tasks(void *state, peft_graph *g, int64_t B, const int32_t *task_ids);
peft_tensor *mpt_embeddings(void *state, peft_graph *g, int64_t B);

#endif
