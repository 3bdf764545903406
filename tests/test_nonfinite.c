/* test_nonfinite.c — NaN and Inf propagate as in PyTorch (issue 16.1): through the attention
 * softmax (a NaN score makes its row NaN, never "no visible key"), ReLU, the norms, GELU/SiLU
 * and the cross-entropy; a NaN in a base weight gives NaN logits and a NaN loss, not finite
 * numbers; and `peft run` stops with a message naming the step when the loss or a gradient is
 * not finite, or drops those updates with training.on_nonfinite: skip. */
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model_fixture.h"
#include "peft/graph.h"
#include "peft/inputs.h"
#include "peft/model.h"
#include "core/ops/ops.h"
#include "runner/runner.h"
#include "peft/util.h"
#include "testutil.h"

static peft_tensor *filled(peft_graph *g, int ndim, const int64_t *shape, float v)
{
    peft_tensor *t = peft_graph_tensor(g, ndim, shape);
    float *d = peft_f32(t);
    for (int64_t i = 0; i < t->numel; i++) d[i] = v + 0.01f * (float)(i % 7);
    return t;
}

static int row_nan(const peft_tensor *t, int64_t row, int64_t width)
{
    const float *d = peft_f32(t) + row * width;
    for (int64_t i = 0; i < width; i++)
        if (!isnan(d[i])) return 0;
    return 1;
}

static int row_finite(const peft_tensor *t, int64_t row, int64_t width)
{
    const float *d = peft_f32(t) + row * width;
    for (int64_t i = 0; i < width; i++)
        if (!isfinite(d[i])) return 0;
    return 1;
}

/* q (1, 3, 4) with one NaN in query row 1: that row is NaN, the others finite (causal) */
START_TEST(attention_nan_query_row)
{
    peft_graph *g = peft_graph_new(NULL);
    int64_t sh[3] = {1, 3, 4};
    peft_tensor *q = filled(g, 3, sh, 0.1f), *k = filled(g, 3, sh, 0.2f), *v = filled(g, 3, sh, 0.3f);
    peft_f32(q)[4 + 1] = NAN;
    peft_tensor *o = op_attention(g, q, k, v, 1, 1, NULL);
    ck_assert(o);
    ck_assert_msg(row_nan(o, 1, 4), "a NaN score row must give NaN (PyTorch), not zeros");
    ck_assert(row_finite(o, 0, 4) && row_finite(o, 2, 4));
    /* a NaN key: every query that sees it is NaN (rows 1 and 2), row 0 does not see it */
    peft_f32(q)[4 + 1] = 0.1f;
    peft_f32(k)[4 + 2] = NAN;
    o = op_attention(g, q, k, v, 1, 1, NULL);
    ck_assert(row_finite(o, 0, 4) && row_nan(o, 1, 4) && row_nan(o, 2, 4));
    /* +Inf score: exp(inf - inf) is NaN in PyTorch too */
    peft_f32(k)[4 + 2] = 0.2f;
    peft_f32(q)[8] = INFINITY;
    o = op_attention(g, q, k, v, 1, 1, NULL);
    ck_assert(row_nan(o, 2, 4) && row_finite(o, 0, 4));
    /* a row with no visible key stays zeros (documented departure, not a NaN case) */
    int32_t mask[3] = {0, 0, 0};
    peft_f32(q)[8] = 0.1f;
    o = op_attention(g, q, k, v, 1, 0, mask);
    for (int i = 0; i < 12; i++) ck_assert(peft_f32(o)[i] == 0.0f);
    peft_graph_free(g);
}
END_TEST

START_TEST(elementwise_and_norms)
{
    peft_graph *g = peft_graph_new(NULL);
    int64_t sh[2] = {2, 4};
    peft_tensor *x = filled(g, 2, sh, -0.5f);
    peft_f32(x)[1] = NAN;
    peft_tensor *(*unary[])(peft_graph *, peft_tensor *) = {op_relu, op_silu, op_tanh,
                                                            op_gelu_erf, op_gelu_tanh};
    for (size_t i = 0; i < sizeof unary / sizeof unary[0]; i++) {
        peft_tensor *y = unary[i](g, x);
        ck_assert_msg(isnan(peft_f32(y)[1]), "unary op %zu: NaN in, %g out", i, peft_f32(y)[1]);
        ck_assert(isfinite(peft_f32(y)[0]));
    }
    int64_t c = 4;
    peft_tensor *w = filled(g, 1, &c, 1.0f), *b = filled(g, 1, &c, 0.0f);
    peft_tensor *ln = op_layernorm(g, x, w, b, 1e-5f), *rn = op_rmsnorm(g, x, w, 1e-6f);
    ck_assert(row_nan(ln, 0, 4) && row_finite(ln, 1, 4));
    ck_assert(row_nan(rn, 0, 4) && row_finite(rn, 1, 4));
    int32_t tgt[2] = {0, 3};
    peft_tensor *l = op_cross_entropy(g, x, tgt, -100);
    ck_assert_msg(isnan(peft_f32(l)[0]), "cross-entropy over a NaN logit: %g", peft_f32(l)[0]);
    peft_f32(x)[1] = INFINITY;
    l = op_cross_entropy(g, x, tgt, -100);
    ck_assert(!isfinite(peft_f32(l)[0]));
    peft_graph_free(g);
}
END_TEST

/* the fixture LLaMA with one NaN in a layer-0 weight, written to dir */
static void nan_llama(const char *dir, const char *tensor)
{
    tu_tensors ts = tu_tensors_read("hf-peft/_models/llama");
    size_t i = tu_tensors_find(&ts, tensor);
    ((float *)ts.data[i])[3] = NAN;
    tu_tensors_write(&ts, dir, NULL);
    tu_tensors_free(&ts);
    char src[4096], dst[4096];
    snprintf(src, sizeof src, "%s", tu_fixture("hf-peft/_models/llama/config.json"));
    snprintf(dst, sizeof dst, "%s/config.json", dir);
    size_t n;
    char *d = tu_read_file(src, &n);
    ck_assert(d && tu_write_file(dst, d, n) == 0);
    free(d);
}

START_TEST(nan_weight_gives_nan_logits)
{
    char *dir = tu_tmpdir();
    nan_llama(dir, "model.layers.0.self_attn.k_proj.weight");
    peft_base_model *m = tu_model_load_ok(dir);
    peft_inputs in;
    tu_peft_inputs_load("hf-peft/_models/llama/inputs.json", &in);
    peft_model_inputs mi;
    peft_inputs_view(&in, &mi);
    peft_graph *g = peft_graph_new(NULL);
    peft_model_outputs out;
    ck_assert_msg(peft_base_model_forward(m, g, &mi, &out) == 0, "%s", peft_graph_error(g));
    ck_assert_msg(out.loss && isnan(peft_f32(out.loss)[0]), "loss %g with a NaN weight",
                  out.loss ? peft_f32(out.loss)[0] : 0.0);
    int64_t nan = 0;
    for (int64_t i = 0; i < out.logits->numel; i++) nan += isnan(peft_f32(out.logits)[i]);
    ck_assert_msg(nan == out.logits->numel, "%lld of %lld logits are NaN", (long long)nan,
                  (long long)out.logits->numel);
    peft_graph_free(g);
    peft_inputs_free(&in);
    peft_base_model_free(m);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* peft run on a model whose loss is NaN: stop naming the step, or skip every update */
START_TEST(runner_stops_or_skips)
{
    char *dir = tu_tmpdir(), p[4096], err[2048];
    snprintf(p, sizeof p, "%s/model", dir);
    ck_assert(peft_mkdirs(tu_ctx(), p) == 0);
    nan_llama(p, "model.layers.1.mlp.down_proj.weight");
    snprintf(p, sizeof p, "%s/train.jsonl", dir);
    FILE *f = fopen(p, "w");
    for (int i = 0; i < 8; i++) fprintf(f, "{\"input_ids\": [1, %d, 3, 4], \"labels\": [1, %d, 3, 4]}\n", 5 + i, 5 + i);
    fclose(f);
    for (int skip = 0; skip < 2; skip++) {
        char yaml[2048];
        snprintf(yaml, sizeof yaml,
                 "name: nan\nbase_model: model\ntask: causal_lm\nmetric: perplexity\n"
                 "data: {train: train.jsonl, eval: train.jsonl}\n"
                 "training: {steps: 3, batch_size: 2, eval_steps: 3%s}\n"
                 "experiments:\n  - name: lora\n    adapters: [{method: lora, r: 2, target_modules: [q_proj]}]\n",
                 skip ? ", on_nonfinite: skip" : "");
        snprintf(p, sizeof p, "%s/run%d.yaml", dir, skip);
        ck_assert(tu_write_file(p, yaml, strlen(yaml)) == 0);
        char out[4200];
        snprintf(out, sizeof out, "%s/out%d", dir, skip);
        runner_config *c;
        ck_assert_msg(runner_config_load(p, out, &c, err, sizeof err) == 0, "%s", err);
        err[0] = 0;
        int rc = runner_run_all(c, NULL, err, sizeof err);
        if (!skip) {
            ck_assert_int_eq(rc, -1);
            ck_assert_msg(strstr(err, "step 1") && strstr(err, "nan") && strstr(err, "on_nonfinite"),
                          "%s", err);
        } else {
            ck_assert_msg(rc == 0, "%s", err);
            char rj[4400];
            snprintf(rj, sizeof rj, "%s/lora/results.json", out);
            json_t *j = json_load_file(rj, 0, NULL);
            ck_assert(j);
            ck_assert_int_eq(json_integer_value(json_object_get(j, "skipped_steps")), 3);
            json_decref(j);
        }
        runner_config_free(c);
    }
    tu_rmtree(dir);
    free(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("nonfinite");
    TCase *tc = tcase_create("nan");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, attention_nan_query_row);
    tcase_add_test(tc, elementwise_and_norms);
    tcase_add_test(tc, nan_weight_gives_nan_logits);
    tcase_add_test(tc, runner_stops_or_skips);
    suite_add_tcase(s, tc);
    return tu_run_suite(s) ? 1 : 0;
}
