/* test_mpt.c — multitask prompt tuning (plugins/mpt, PEFT 0.13.2's MultitaskPromptEmbedding):
 * every fixture case of Python PEFT through the contract table (task_ids from inputs.json),
 * PEFT's own saved adapters (prompt_embeddings, prefix_task_cols, prefix_task_rows) loaded and
 * run, finite-difference gradients of the task-prompt op, and the errors: no task_ids, a task
 * id out of range, config fields. The source-task inits (AVERAGE_SOURCE_TASKS, EXACT_SOURCE_TASK,
 * ONLY_SOURCE_SHARED) from our own save of a 3-task adapter, checked against PEFT's formulas,
 * and their refusals (pickles, shapes, missing keys, task index). */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

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
    char rel[512];
    l->ctx = peft_ctx_new(0);
    snprintf(rel, sizeof rel, "hf-peft-v2/_models/%s", archs[i]);
    peft_base_model *b = NULL;
    ck_assert_msg(peft_load_base_model(l->ctx, tu_fixture(rel), &b) == 0, "%s", peft_errmsg(l->ctx));
    snprintf(rel, sizeof rel, "hf-peft-v2/%s/adapter", fixture_cases[i]);
    ck_assert_msg(peft_from_pretrained(l->ctx, b, tu_fixture(rel), NULL, 0, &l->m) == 0, "%s",
                  peft_errmsg(l->ctx));
    snprintf(rel, sizeof rel, "hf-peft-v2/%s/inputs.json", fixture_cases[i]);
    ck_assert_msg(peft_inputs_load_json(tu_ctx(), tu_fixture(rel), &l->in) == 0, "%s", peft_errmsg(tu_ctx()));
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
    char rel[512];
    snprintf(rel, sizeof rel, "hf-peft-v2/%s/peft_logits.safetensors", fixture_cases[_i]);
    peft_st_file *f;
    ck_assert_msg(peft_st_open(tu_ctx(), tu_fixture(rel), &f) == 0, "%s", peft_errmsg(tu_ctx()));
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

/* ---- the source-task inits (prompt_tuning_init_state_dict_path) ---- */

#define SRC_CFG(init, tasks, extra) \
    "{\"peft_type\":\"MULTITASK_PROMPT_TUNING\",\"task_type\":\"CAUSAL_LM\"," \
    "\"num_virtual_tokens\":3,\"num_tasks\":" #tasks ",\"num_ranks\":2," \
    "\"prompt_tuning_init\":\"" init "\"" extra "}"

/* a model on the gpt2 fixture with config (a %s for the source path); NULL when refused */
static peft_model *mpt_model(peft_ctx *ctx, const char *fmt, const char *path)
{
    char config[1024];
    snprintf(config, sizeof config, fmt, path);
    peft_base_model *b = NULL;
    ck_assert(peft_load_base_model(ctx, tu_fixture("hf-peft-v2/_models/gpt2"), &b) == 0);
    peft_model *m = NULL;
    if (peft_get_peft_model(ctx, b, config, NULL, 0, &m)) {
        peft_base_model_free(b); /* refused: the base stays ours */
        return NULL;
    }
    return m;
}

/* the adapter's saved tensor `key` (f32) */
static const peft_tensor *sd_get(const peft_state_dict *sd, const char *key)
{
    for (size_t i = 0; i < sd->n; i++)
        if (strcmp(sd->names[i], key) == 0) return sd->tensors[i];
    ck_abort_msg("no key %s", key);
    return NULL;
}

typedef struct source {
    char *dir;
    char path[1100];
    peft_ctx *ctx;
    peft_model *m;
    peft_state_dict *sd; /* the source's saved tensors */
} source;

/* our own save of a 3-task source adapter (random factors: every task differs) */
static void source_open(source *s)
{
    s->dir = tu_tmpdir();
    s->ctx = peft_ctx_new(21);
    s->m = mpt_model(s->ctx, SRC_CFG("RANDOM", 3, ""), "");
    ck_assert_msg(s->m, "%s", peft_errmsg(s->ctx));
    ck_assert_msg(peft_save_pretrained(s->m, s->dir, NULL, 0, 1) == 0, "%s", peft_errmsg(s->ctx));
    snprintf(s->path, sizeof s->path, "%s/adapter_model.safetensors", s->dir);
    ck_assert(peft_get_peft_model_state_dict(s->m, NULL, &s->sd) == 0);
}

static void source_close(source *s)
{
    peft_state_dict_free(s->sd);
    peft_model_free(s->m);
    peft_ctx_free(s->ctx);
    tu_rmtree(s->dir);
    free(s->dir);
}

static void expect_eq(const float *got, const float *want, int64_t n, const char *what)
{
    double d = tu_max_abs_diff(got, want, n);
    ck_assert_msg(d <= 1e-7, "%s off by %g", what, d);
}

START_TEST(source_inits)
{
    source s;
    source_open(&s);
    const peft_tensor *pe = sd_get(s.sd, "prompt_embeddings"),
                      *cols = sd_get(s.sd, "prefix_task_cols"),
                      *rows = sd_get(s.sd, "prefix_task_rows");
    const int64_t R = 3, K = 2, C = pe->shape[1], nc = R * K, nr = K * C;
    ck_assert_int_eq(cols->shape[0], 3);
    const float *sc = peft_f32(cols), *sr = peft_f32(rows);
    float want_c[64], want_r[4096];
    ck_assert(nr <= 4096);
    peft_ctx *ctx = peft_ctx_new(5);
    peft_state_dict *sd = NULL;

    /* AVERAGE_SOURCE_TASKS: PEFT's prefix_task_cols_.mean(0, keepdim=True) */
    peft_model *m = mpt_model(ctx, SRC_CFG("AVERAGE_SOURCE_TASKS", 1,
                                           ",\"prompt_tuning_init_state_dict_path\":\"%s\""),
                              s.path);
    ck_assert_msg(m, "%s", peft_errmsg(ctx));
    ck_assert(peft_get_peft_model_state_dict(m, NULL, &sd) == 0);
    for (int64_t i = 0; i < nc; i++) want_c[i] = (sc[i] + sc[nc + i] + sc[2 * nc + i]) / 3.0f;
    for (int64_t i = 0; i < nr; i++) want_r[i] = (sr[i] + sr[nr + i] + sr[2 * nr + i]) / 3.0f;
    ck_assert_int_eq(sd_get(sd, "prefix_task_cols")->shape[0], 1);
    expect_eq(peft_f32(sd_get(sd, "prefix_task_cols")), want_c, nc, "averaged cols");
    expect_eq(peft_f32(sd_get(sd, "prefix_task_rows")), want_r, nr, "averaged rows");
    expect_eq(peft_f32(sd_get(sd, "prompt_embeddings")), peft_f32(pe), R * C, "shared table");
    peft_state_dict_free(sd);
    peft_model_free(m);

    /* EXACT_SOURCE_TASK: task 2, and -1 (Python's index from the end) is the same task */
    for (int k = 0; k < 2; k++) {
        m = mpt_model(ctx, k ? SRC_CFG("EXACT_SOURCE_TASK", 1, ",\"prompt_tuning_init_task\":-1,"
                                       "\"prompt_tuning_init_state_dict_path\":\"%s\"")
                             : SRC_CFG("EXACT_SOURCE_TASK", 1, ",\"prompt_tuning_init_task\":2,"
                                       "\"prompt_tuning_init_state_dict_path\":\"%s\""),
                      s.path);
        ck_assert_msg(m, "%s", peft_errmsg(ctx));
        ck_assert(peft_get_peft_model_state_dict(m, NULL, &sd) == 0);
        ck_assert(memcmp(peft_f32(sd_get(sd, "prefix_task_cols")), sc + 2 * nc, nc * 4) == 0);
        ck_assert(memcmp(peft_f32(sd_get(sd, "prefix_task_rows")), sr + 2 * nr, nr * 4) == 0);
        ck_assert(memcmp(peft_f32(sd_get(sd, "prompt_embeddings")), peft_f32(pe), R * C * 4) == 0);
        peft_state_dict_free(sd);
        peft_model_free(m);
    }

    /* ONLY_SOURCE_SHARED: the table from the source, the factors as a RANDOM init draws them */
    peft_ctx *c2 = peft_ctx_new(9), *c3 = peft_ctx_new(9);
    m = mpt_model(c2, SRC_CFG("ONLY_SOURCE_SHARED", 2,
                              ",\"prompt_tuning_init_state_dict_path\":\"%s\""), s.path);
    ck_assert_msg(m, "%s", peft_errmsg(c2));
    peft_model *r = mpt_model(c3, SRC_CFG("RANDOM", 2, ""), "");
    peft_state_dict *rsd = NULL;
    ck_assert(peft_get_peft_model_state_dict(m, NULL, &sd) == 0);
    ck_assert(peft_get_peft_model_state_dict(r, NULL, &rsd) == 0);
    ck_assert(memcmp(peft_f32(sd_get(sd, "prompt_embeddings")), peft_f32(pe), R * C * 4) == 0);
    ck_assert(memcmp(peft_f32(sd_get(sd, "prefix_task_cols")),
                     peft_f32(sd_get(rsd, "prefix_task_cols")), 2 * nc * 4) == 0);
    ck_assert(memcmp(peft_f32(sd_get(sd, "prefix_task_rows")),
                     peft_f32(sd_get(rsd, "prefix_task_rows")), 2 * nr * 4) == 0);
    peft_state_dict_free(rsd);
    peft_model_free(r);
    /* its save keeps the init fields; loading it reads its own values, not the source (which
     * may be gone by then; PEFT 0.13.2 would read it again) */
    char *out = tu_tmpdir();
    ck_assert_msg(peft_save_pretrained(m, out, NULL, 0, 1) == 0, "%s", peft_errmsg(c2));
    peft_ctx *c4 = peft_ctx_new(1);
    peft_base_model *b = NULL;
    ck_assert(peft_load_base_model(c4, tu_fixture("hf-peft-v2/_models/gpt2"), &b) == 0);
    unlink(s.path);
    peft_model *l = NULL;
    ck_assert_msg(peft_from_pretrained(c4, b, out, NULL, 1, &l) == 0, "%s", peft_errmsg(c4));
    ck_assert(peft_get_peft_model_state_dict(l, NULL, &rsd) == 0);
    ck_assert(memcmp(peft_f32(sd_get(rsd, "prompt_embeddings")), peft_f32(pe), R * C * 4) == 0);
    peft_state_dict_free(rsd);
    peft_model_free(l);
    peft_ctx_free(c4);
    tu_rmtree(out);
    free(out);
    peft_state_dict_free(sd);
    peft_model_free(m);
    peft_ctx_free(c2);
    peft_ctx_free(c3);
    peft_ctx_free(ctx);
    source_close(&s);
}
END_TEST

/* config (with %s for the path) refused with an error containing want */
static void source_refused(const char *config, const char *path, const char *want)
{
    peft_ctx *ctx = peft_ctx_new(0);
    peft_model *m = mpt_model(ctx, config, path);
    ck_assert_msg(!m, "accepted: %s", config);
    ck_assert_msg(strstr(peft_errmsg(ctx), want), "error '%s' lacks '%s'", peft_errmsg(ctx), want);
    peft_ctx_free(ctx);
}

START_TEST(source_errors)
{
    source s;
    source_open(&s);
    const char *path_field = ",\"prompt_tuning_init_state_dict_path\":\"%s\"";
    char cfg[512];
    /* PEFT's strict load of one task's factors */
    snprintf(cfg, sizeof cfg, SRC_CFG("EXACT_SOURCE_TASK", 2, "%s"), path_field);
    source_refused(cfg, s.path, "field 'num_tasks' must be 1 (got 2");
    snprintf(cfg, sizeof cfg, SRC_CFG("EXACT_SOURCE_TASK", 1, ",\"prompt_tuning_init_task\":3%s"),
             path_field);
    source_refused(cfg, s.path, "'prompt_tuning_init_task' is 3 but");
    snprintf(cfg, sizeof cfg, SRC_CFG("EXACT_SOURCE_TASK", 1, ",\"prompt_tuning_init_task\":-4%s"),
             path_field);
    source_refused(cfg, s.path, "holds 3 source tasks");
    /* a pickle (PEFT's torch.load branch), a missing file, a file of another shape */
    snprintf(cfg, sizeof cfg, SRC_CFG("AVERAGE_SOURCE_TASKS", 1, "%s"), path_field);
    source_refused(cfg, "/tmp/source/adapter_model.bin", "does not end in .safetensors: PEFT "
                   "0.13.2 reads such a file with torch.load (a pickle)");
    source_refused(cfg, "/nonexistent/adapter_model.safetensors", "/nonexistent/adapter_model.safetensors");
    char fake[1200];
    snprintf(fake, sizeof fake, "%s/pickle.safetensors", s.dir);
    FILE *f = fopen(fake, "wb");
    ck_assert(f);
    fwrite("\x80\x02}q\x00.", 1, 6, f);
    fclose(f);
    source_refused(cfg, fake, "a PyTorch torch.save file, a pickle");
    snprintf(cfg, sizeof cfg,
             "{\"peft_type\":\"MULTITASK_PROMPT_TUNING\",\"num_virtual_tokens\":5,"
             "\"num_tasks\":1,\"num_ranks\":2,\"prompt_tuning_init\":\"ONLY_SOURCE_SHARED\"%s}",
             path_field);
    source_refused(cfg, s.path, "prompt_embeddings is [3, ");
    /* a file without the factors (a plain prompt tuning adapter's) */
    peft_ctx *ctx = peft_ctx_new(0);
    peft_base_model *b = NULL;
    ck_assert(peft_load_base_model(ctx, tu_fixture("hf-peft-v2/_models/gpt2"), &b) == 0);
    peft_model *pm = NULL;
    ck_assert_msg(peft_get_peft_model(ctx, b, "{\"peft_type\":\"PROMPT_TUNING\",\"task_type\":"
                                      "\"CAUSAL_LM\",\"num_virtual_tokens\":3}", NULL, 0,
                                      &pm) == 0, "%s", peft_errmsg(ctx));
    char *pdir = tu_tmpdir();
    ck_assert(peft_save_pretrained(pm, pdir, NULL, 0, 1) == 0);
    char ppath[1100];
    snprintf(ppath, sizeof ppath, "%s/adapter_model.safetensors", pdir);
    snprintf(cfg, sizeof cfg, SRC_CFG("AVERAGE_SOURCE_TASKS", 1, "%s"), path_field);
    source_refused(cfg, ppath, "has no tensor 'prefix_task_cols'");
    snprintf(cfg, sizeof cfg, SRC_CFG("ONLY_SOURCE_SHARED", 1, "%s"), path_field);
    peft_ctx *c2 = peft_ctx_new(0);
    peft_model *ok = mpt_model(c2, cfg, ppath); /* only prompt_embeddings is needed */
    ck_assert_msg(ok, "%s", peft_errmsg(c2));
    peft_model_free(ok);
    peft_ctx_free(c2);
    peft_model_free(pm);
    peft_ctx_free(ctx);
    tu_rmtree(pdir);
    free(pdir);
    source_close(&s);
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
    tcase_add_test(tk, source_inits);
    tcase_add_test(tk, source_errors);
    suite_add_tcase(s, tk);
    return tu_run_suite(s) ? EXIT_FAILURE : EXIT_SUCCESS;
}
