/* test_adalora.c — the AdaLoRA plugin (plugins/adalora/, ABI 1.3 training hooks): every AdaLoRA
 * case of Python PEFT 0.13.2 (hf-peft-v2) through the contract table (the loss includes the
 * orthogonal regulariser, whose gradient the fixtures' include); and the rank allocation over
 * optimizer steps against llama__adalora_steps: PEFT's loop (SGD lr 0.5, update_and_allocate
 * after each step) from the same start gives the same losses, rank_pattern, parameters, logits
 * and gradients, and saves PEFT's rank-cut tensors and config, which reload to the same outputs. */
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "contract.h"
#include "peft/graph.h"
#include "peft/inputs.h"
#include "peft/peft.h"
#include "peft/safetensors.h"
#include "peft/warn.h"
#include "testutil.h"

static const char *const fixture_cases[] = {"gpt2__adalora", "llama__adalora", "bert_seqcls__adalora"};
#define N_CASES (int)(sizeof fixture_cases / sizeof fixture_cases[0])

START_TEST(fixture_case)
{
    peft_set_warning_handler(tu_quiet, NULL);
    contract_run_case(fixture_cases[_i]);
}
END_TEST

#define CASE "hf-peft-v2/llama__adalora_steps/"

static double max_diff_file(const char *rel, const peft_state_dict *sd, const char *what)
{
    peft_st_file *f;
    ck_assert_msg(peft_st_open(tu_ctx(), tu_fixture(rel), &f) == 0, "%s", peft_errmsg(tu_ctx()));
    ck_assert_int_eq(f->n_entries, sd->n);
    double worst = 0;
    for (size_t i = 0; i < sd->n; i++) {
        const peft_st_entry *e = peft_st_find(f, sd->names[i]);
        ck_assert_msg(e, "%s: PEFT has no %s", rel, sd->names[i]);
        const float *mine = !strcmp(what, "grad") ? sd->tensors[i]->grad : (const float *)sd->tensors[i]->data;
        ck_assert_msg(mine, "no %s for %s", what, sd->names[i]);
        double d = tu_max_abs_diff((const float *)e->data, mine, sd->tensors[i]->numel);
        ck_assert_msg(d <= 1e-4, "%s of %s differs from PEFT's by %g", what, sd->names[i], d);
        if (d > worst) worst = d;
    }
    peft_st_close(f);
    return worst;
}

START_TEST(rank_allocation_steps)
{
    peft_set_warning_handler(tu_quiet, NULL);
    json_t *steps = json_load_file(tu_fixture(CASE "adalora_steps.json"), 0, NULL);
    json_t *cfg = json_load_file(tu_fixture(CASE "adapter/adapter_config.json"), 0, NULL);
    ck_assert(steps && cfg);
    json_object_set_new(cfg, "rank_pattern", json_null()); /* the start: no allocation yet */
    json_object_set_new(cfg, "inference_mode", json_false());
    char *text = json_dumps(cfg, JSON_COMPACT);
    peft_ctx *ctx = peft_ctx_new(0);
    peft_base_model *base;
    ck_assert(peft_load_base_model(ctx, tu_fixture("hf-peft-v2/_models/llama"), &base) == 0);
    peft_model *m;
    ck_assert_msg(peft_get_peft_model(ctx, base, text, "default", 0, &m) == 0, "%s", peft_errmsg(ctx));
    free(text);
    ck_assert_msg(peft_set_peft_model_state_dict(m, tu_fixture(CASE "params_before_steps.safetensors"), "default", 1) == 0,
                  "%s", peft_errmsg(ctx));
    peft_inputs in;
    ck_assert_msg(peft_inputs_load_json(tu_ctx(), tu_fixture(CASE "inputs.json"), &in) == 0, "%s", peft_errmsg(tu_ctx()));
    peft_model_inputs mi;
    peft_inputs_view(&in, &mi);
    peft_graph *g = peft_graph_new(peft_ctx_rng(ctx));
    peft_state_dict *tp;
    ck_assert(peft_trainable_parameters(m, &tp) == 0);
    json_t *list = json_object_get(steps, "steps");
    const int n_steps = (int)json_array_size(list);
    for (int s = 0; s < n_steps; s++) {
        for (size_t i = 0; i < tp->n; i++) peft_tensor_zero_grad(tp->tensors[i]);
        peft_graph_reset(g);
        peft_graph_set_recording(g, 1);
        peft_model_outputs out;
        ck_assert_msg(peft_model_forward(m, g, &mi, &out) == 0, "%s", peft_errmsg(ctx));
        double want = json_real_value(json_object_get(json_array_get(list, (size_t)s), "loss_before_update"));
        ck_assert_msg(fabs(peft_f32(out.loss)[0] - want) <= 1e-5, "step %d: loss %.9g, PEFT %.9g", s,
                      peft_f32(out.loss)[0], want);
        ck_assert(peft_graph_backward(g, out.loss) == 0);
        for (size_t i = 0; i < tp->n; i++) { /* torch.optim.SGD(lr=0.5) */
            float *w = peft_f32(tp->tensors[i]);
            for (int64_t k = 0; k < tp->tensors[i]->numel; k++) w[k] -= 0.5f * tp->tensors[i]->grad[k];
        }
        ck_assert_msg(peft_model_step_end(m, s, n_steps) == 0, "%s", peft_errmsg(ctx));
    }
    /* the parameters after the steps (masked lora_E exactly 0) */
    max_diff_file(CASE "trainable_params.safetensors", tp, "value");
    /* logits and gradients of the allocated model */
    for (size_t i = 0; i < tp->n; i++) peft_tensor_zero_grad(tp->tensors[i]);
    peft_graph_reset(g);
    peft_graph_set_recording(g, 1);
    peft_model_outputs out;
    ck_assert(peft_model_forward(m, g, &mi, &out) == 0);
    peft_st_file *lf;
    ck_assert(peft_st_open(tu_ctx(), tu_fixture(CASE "peft_logits.safetensors"), &lf) == 0);
    const peft_st_entry *le = peft_st_find(lf, "logits");
    ck_assert(le && (int64_t)(le->nbytes / 4) == out.logits->numel);
    double ld = tu_max_abs_diff((const float *)le->data, peft_f32(out.logits), out.logits->numel);
    ck_assert_msg(ld <= 1e-4, "logits after the steps differ from PEFT's by %g", ld);
    peft_st_close(lf);
    ck_assert(peft_graph_backward(g, out.loss) == 0);
    max_diff_file(CASE "grads.safetensors", tp, "grad");
    /* save: PEFT's rank-cut tensors and rank_pattern */
    char *dir = tu_tmpdir(), path[4096];
    ck_assert_msg(peft_save_pretrained(m, dir, NULL, 0, 1) == 0, "%s", peft_errmsg(ctx));
    snprintf(path, sizeof path, "%s/adapter_config.json", dir);
    json_t *saved = json_load_file(path, 0, NULL), *want_cfg = json_load_file(tu_fixture(CASE "adapter/adapter_config.json"), 0, NULL);
    ck_assert_msg(json_equal(json_object_get(saved, "rank_pattern"), json_object_get(want_cfg, "rank_pattern")),
                  "rank_pattern differs from PEFT's");
    snprintf(path, sizeof path, "%s/adapter_model.safetensors", dir);
    peft_st_file *mine, *theirs;
    ck_assert(peft_st_open(tu_ctx(), path, &mine) == 0);
    ck_assert(peft_st_open(tu_ctx(), tu_fixture(CASE "adapter/adapter_model.safetensors"), &theirs) == 0);
    ck_assert_int_eq(mine->n_entries, theirs->n_entries);
    for (size_t i = 0; i < theirs->n_entries; i++) {
        const peft_st_entry *a = &theirs->entries[i], *b = peft_st_find(mine, a->name);
        ck_assert_msg(b, "saved adapter lacks %s", a->name);
        ck_assert_int_eq(a->ndim, b->ndim);
        for (int d = 0; d < a->ndim; d++) ck_assert_int_eq(a->shape[d], b->shape[d]);
        double dd = tu_max_abs_diff((const float *)a->data, (const float *)b->data, (int64_t)(a->nbytes / 4));
        ck_assert_msg(dd <= 1e-4, "saved %s differs from PEFT's by %g", a->name, dd);
    }
    peft_st_close(mine);
    peft_st_close(theirs);
    /* reload (rank_pattern sizes the layers, ranknum stays init_r): the same logits */
    peft_base_model *base2;
    ck_assert(peft_load_base_model(ctx, tu_fixture("hf-peft-v2/_models/llama"), &base2) == 0);
    peft_model *m2;
    ck_assert_msg(peft_from_pretrained(ctx, base2, dir, "default", 0, &m2) == 0, "%s", peft_errmsg(ctx));
    float *before = malloc((size_t)out.logits->numel * sizeof *before);
    memcpy(before, out.logits->data, (size_t)out.logits->numel * sizeof *before);
    peft_graph_reset(g);
    peft_graph_set_recording(g, 0);
    mi.labels = NULL; /* PEFT 0.13.2 cannot compute a loaded AdaLoRA's loss; logits suffice */
    ck_assert(peft_model_forward(m2, g, &mi, &out) == 0);
    double rd = tu_max_abs_diff(before, peft_f32(out.logits), out.logits->numel);
    ck_assert_msg(rd <= 1e-5, "reloaded adapter differs by %g", rd);
    free(before);
    peft_model_free(m2);
    tu_rmtree(dir);
    free(dir);
    json_decref(saved);
    json_decref(want_cfg);
    peft_state_dict_free(tp);
    peft_graph_free(g);
    peft_inputs_free(&in);
    peft_model_free(m);
    peft_ctx_free(ctx);
    json_decref(cfg);
    json_decref(steps);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("adalora");
    TCase *tf = tcase_create("fixtures");
    tcase_set_timeout(tf, 120);
    tcase_add_loop_test(tf, fixture_case, 0, N_CASES);
    tcase_add_test(tf, rank_allocation_steps);
    suite_add_tcase(s, tf);
    return tu_run_suite(s) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
