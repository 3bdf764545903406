/* test_mpt.c — multitask prompt tuning (plugins/mpt, PEFT 0.13.2's MultitaskPromptEmbedding):
 * every fixture case of Python PEFT through the contract table (task_ids from inputs.json),
 * PEFT's own saved adapters (prompt_embeddings, prefix_task_cols, prefix_task_rows) loaded and
 * run, finite-difference gradients of the task-prompt op, and the errors: no task_ids, a task
 * id out of range, config fields. */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "contract.h"
#include "peft/inputs.h"
#include "peft/peft.h"
#include "peft/safetensors.h"
#include "peft/warn.h"
#include "prompt_harness.h"
#include "testutil.h"

static const char *const fixture_cases[] = {"gpt2__mpt", "llama__mpt", "bert_seqcls__mpt"};
static const char *const archs[] = {"gpt2", "llama", "bert_seqcls"};
#define N_CASES (int)(sizeof fixture_cases / sizeof fixture_cases[0])

START_TEST(fixture_case)
{
    peft_set_warning_handler(tu_quiet, NULL);
    contract_run_case(fixture_cases[_i]);
}
END_TEST

typedef struct loaded {
    peft_ctx *ctx;
    peft_model *m;
    peft_inputs in;
    peft_graph *g;
} loaded;

/* PEFT's saved adapter of case i on its base model, with the case's inputs */
static void load_case(loaded *l, int i)
{
    char rel[512], err[512];
    l->ctx = peft_ctx_new(0);
    snprintf(rel, sizeof rel, "hf-peft-v2/_models/%s", archs[i]);
    peft_base_model *b = NULL;
    ck_assert_msg(peft_load_base_model(l->ctx, tu_fixture(rel), &b) == 0, "%s", peft_errmsg(l->ctx));
    snprintf(rel, sizeof rel, "hf-peft-v2/%s/adapter", fixture_cases[i]);
    ck_assert_msg(peft_from_pretrained(l->ctx, b, tu_fixture(rel), NULL, 0, &l->m) == 0, "%s",
                  peft_errmsg(l->ctx));
    snprintf(rel, sizeof rel, "hf-peft-v2/%s/inputs.json", fixture_cases[i]);
    ck_assert_msg(peft_inputs_load_json(tu_fixture(rel), &l->in, err, sizeof err) == 0, "%s", err);
    l->g = peft_graph_new(peft_ctx_rng(l->ctx));
}

static void unload_case(loaded *l)
{
    peft_graph_free(l->g);
    peft_inputs_free(&l->in);
    peft_model_free(l->m);
    peft_ctx_free(l->ctx);
}

START_TEST(peft_saved_adapter)
{
    loaded l;
    load_case(&l, _i);
    peft_model_inputs mi;
    peft_inputs_view(&l.in, &mi);
    peft_model_outputs out;
    ck_assert_msg(peft_model_forward(l.m, l.g, &mi, &out) == 0, "%s", peft_errmsg(l.ctx));
    char rel[512], err[512];
    snprintf(rel, sizeof rel, "hf-peft-v2/%s/peft_logits.safetensors", fixture_cases[_i]);
    peft_st_file *f;
    ck_assert_msg(peft_st_open(tu_fixture(rel), &f, err, sizeof err) == 0, "%s", err);
    const peft_st_entry *e = peft_st_find(f, "logits");
    ck_assert_int_eq((int64_t)(e->nbytes / 4), out.logits->numel);
    double d = tu_max_abs_diff((const float *)e->data, peft_f32(out.logits), out.logits->numel);
    ck_assert_msg(d <= 1e-4, "%s: PEFT's saved adapter gives logits off by %g", fixture_cases[_i], d);
    peft_st_close(f);
    unload_case(&l);
}
END_TEST

/* no task_ids: PEFT's ValueError; a task id past num_tasks: named */
START_TEST(task_ids_checked)
{
    loaded l;
    load_case(&l, 0);
    peft_model_inputs mi;
    peft_inputs_view(&l.in, &mi);
    mi.task_ids = NULL;
    peft_model_outputs out;
    ck_assert_int_ne(peft_model_forward(l.m, l.g, &mi, &out), 0);
    ck_assert_msg(strstr(peft_errmsg(l.ctx), "task_ids cannot be None"), "%s", peft_errmsg(l.ctx));
    const int32_t bad[2] = {0, 2};
    mi.task_ids = bad;
    peft_graph_reset(l.g);
    ck_assert_int_ne(peft_model_forward(l.m, l.g, &mi, &out), 0);
    ck_assert_msg(strstr(peft_errmsg(l.ctx), "task_ids[1] is 2; the adapter has num_tasks 2"),
                  "%s", peft_errmsg(l.ctx));
    /* rows of different tasks get different prompts; the same task, the same */
    const int32_t same[2] = {1, 1};
    mi.task_ids = same;
    peft_graph_reset(l.g);
    ck_assert_msg(peft_model_forward(l.m, l.g, &mi, &out) == 0, "%s", peft_errmsg(l.ctx));
    unload_case(&l);
}
END_TEST

#define MPT_CFG(nts) \
    "{\"peft_type\":\"MULTITASK_PROMPT_TUNING\",\"num_virtual_tokens\":3,\"token_dim\":8," \
    "\"num_transformer_submodules\":" #nts ",\"num_attention_heads\":2,\"num_layers\":2," \
    "\"num_tasks\":3,\"num_ranks\":2}"

START_TEST(grad_task_prompts)
{
    static const int32_t tasks[2] = {2, 0}, one_task[2] = {1, 1};
    harness h;
    harness_open(&h, "mpt", MPT_CFG(1), 0);
    peft_param_ref refs[HARNESS_MAX_REFS];
    ck_assert_int_eq(h.vt->state_dict(h.state, refs, HARNESS_MAX_REFS), 3);
    ck_assert_str_eq(refs[0].memory_name, "prefix_task_cols");
    ck_assert_int_eq(refs[0].tensor->shape[0], 3);
    ck_assert_int_eq(refs[0].tensor->shape[1], 3);
    ck_assert_int_eq(refs[0].tensor->shape[2], 2);
    ck_assert_int_eq(refs[1].tensor->shape[2], 8);
    h.task_ids = tasks;
    check_grads(&h, "multitask prompts, tasks 2 and 0");
    h.task_ids = one_task;
    check_grads(&h, "multitask prompts, one task twice");
    harness_close(&h);
    harness_open(&h, "mpt", MPT_CFG(2), 1); /* 2P rows, the model sees the first P */
    h.task_ids = tasks;
    check_grads(&h, "multitask prompts (encoder-decoder)");
    harness_close(&h);
}
END_TEST

START_TEST(config_errors)
{
    harness_refused("{\"peft_type\":\"MULTITASK_PROMPT_TUNING\",\"num_virtual_tokens\":4,\"num_tasks\":0}",
            "field 'num_tasks' must be a positive integer");
    harness_refused("{\"peft_type\":\"MULTITASK_PROMPT_TUNING\",\"num_virtual_tokens\":4,"
            "\"prompt_tuning_init\":\"SAMPLE_VOCAB\"}",
            "allowed values: \"TEXT\", \"RANDOM\", \"AVERAGE_SOURCE_TASKS\"");
    harness_refused("{\"peft_type\":\"MULTITASK_PROMPT_TUNING\",\"num_virtual_tokens\":4,"
            "\"prompt_tuning_init\":\"EXACT_SOURCE_TASK\"}",
            "needs field 'prompt_tuning_init_state_dict_path'");
    harness_refused("{\"peft_type\":\"MULTITASK_PROMPT_TUNING\",\"num_virtual_tokens\":4,"
            "\"prompt_tuning_init\":\"TEXT\",\"prompt_tuning_init_text\":\"hi\"}",
            "needs field 'tokenizer_name_or_path'");
}
END_TEST

int main(void)
{
    peft_rng_seed(&trng, 11);
    Suite *s = suite_create("mpt");
    TCase *tc = tcase_create("fixtures");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, fixture_case, 0, N_CASES);
    tcase_add_loop_test(tc, peft_saved_adapter, 0, N_CASES);
    tcase_add_test(tc, task_ids_checked);
    suite_add_tcase(s, tc);
    TCase *tk = tcase_create("kernels");
    tcase_add_test(tk, grad_task_prompts);
    tcase_add_test(tk, config_errors);
    suite_add_tcase(s, tk);
    return tu_run_suite(s) ? EXIT_FAILURE : EXIT_SUCCESS;
}
