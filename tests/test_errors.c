/* test_errors.c — the one error convention, through the public API only (this suite links
 * libpeft.so): the right code for each failure with its message on the context (peft_errcode),
 * and the graph's sticky error: a plugin's own failure in forward reaches the caller with its
 * code and message, a plugin that just returns NULL is named, a failure inside backward is
 * returned (never a dropped gradient and PEFT_OK), reset clears it. Also the run-time version. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "peft/inputs.h"
#include "peft/model_init.h"
#include "peft/model_save.h"
#include "peft/util.h"
#include "core/ops/ops.h"
#include "peft/peft.h"
#include "peft/registry.h"
#include "peft/safetensors.h"
#include "peft/warn.h"
#include "testutil.h"

#define ASSERT_HAS(s, sub) ck_assert_msg(strstr((s), (sub)) != NULL, "'%s' lacks '%s'", (s), (sub))

START_TEST(version_matches_headers)
{
    ck_assert_str_eq(peft_libversion(), PEFT_VERSION);
    ck_assert_int_eq(peft_libversion_number(), PEFT_VERSION_NUMBER);
}
END_TEST

START_TEST(missing_model_dir_is_eio)
{
    peft_ctx *ctx = peft_ctx_new(0);
    ck_assert_int_eq(peft_errcode(ctx), PEFT_OK);
    peft_base_model *b = NULL;
    ck_assert_int_eq(peft_load_base_model(ctx, "/nonexistent/model-dir", &b), PEFT_EIO);
    ck_assert_int_eq(peft_errcode(ctx), PEFT_EIO);
    ASSERT_HAS(peft_errmsg(ctx), "/nonexistent/model-dir: no such model directory");
    ck_assert_ptr_null(b);
    /* a directory without config.json: EIO too, naming the file */
    char *dir = tu_tmpdir();
    ck_assert_int_eq(peft_load_base_model(ctx, dir, &b), PEFT_EIO);
    ASSERT_HAS(peft_errmsg(ctx), "config.json: no such file");
    /* config.json that is not JSON: EFORMAT */
    char p[4200];
    snprintf(p, sizeof p, "%s/config.json", dir);
    ck_assert_int_eq(tu_write_file(p, "{not json", 9), 0);
    ck_assert_int_eq(peft_load_base_model(ctx, dir, &b), PEFT_EFORMAT);
    /* the same codes from the option and weight-free loaders */
    ck_assert_int_eq(peft_load_base_model_meta(ctx, p, NULL, &b), PEFT_EFORMAT);
    ck_assert_int_eq(peft_load_base_model_meta(ctx, "/nonexistent/config.json", NULL, &b), PEFT_EIO);
    ASSERT_HAS(peft_errmsg(ctx), "/nonexistent/config.json: no such file");
    ck_assert_int_eq(peft_load_base_model_meta(ctx, tu_fixture("hf-peft/_models/gpt2/config.json"),
                                               "QUESTION_ANS", &b), PEFT_EINVAL);
    ASSERT_HAS(peft_errmsg(ctx), "no QUESTION_ANS head");
    peft_load_options o = {.struct_size = sizeof o, .torch_dtype = "float64"};
    ck_assert_int_eq(peft_load_base_model_ex(ctx, "/nonexistent/model-dir", &o, &b), PEFT_EIO);
    ck_assert_int_eq(peft_load_base_model_ex(ctx, tu_fixture("hf-peft/_models/gpt2"), &o, &b),
                     PEFT_EINVAL);
    ASSERT_HAS(peft_errmsg(ctx), "torch_dtype \"float64\" is unknown");
    ck_assert_ptr_null(b);
    /* inputs: a missing file is EIO, a file that is not inputs EFORMAT, both named */
    peft_inputs in;
    ck_assert_int_eq(peft_inputs_load_json(ctx, "/nonexistent/inputs.json", &in), PEFT_EIO);
    ASSERT_HAS(peft_errmsg(ctx), "/nonexistent/inputs.json");
    ck_assert_int_eq(peft_inputs_load_json(ctx, p, &in), PEFT_EFORMAT);
    ASSERT_HAS(peft_errmsg(ctx), "config.json");
    ck_assert_ptr_null(in.input_ids);
    peft_clear_error(ctx);
    ck_assert_int_eq(peft_errcode(ctx), PEFT_OK);
    ck_assert_str_eq(peft_errmsg(ctx), "");
    tu_rmtree(dir);
    free(dir);
    peft_ctx_free(ctx);
}
END_TEST

START_TEST(safetensors_open_codes)
{
    char *dir = tu_tmpdir(), p[4200];
    peft_st_file *f = NULL;
    snprintf(p, sizeof p, "%s/missing.safetensors", dir);
    ck_assert_int_eq(peft_st_open(tu_ctx(), p, &f), PEFT_EIO);
    snprintf(p, sizeof p, "%s/garbage.safetensors", dir);
    ck_assert_int_eq(tu_write_file(p, "\xff\xff\xff\xff\xff\xff\xff\x7f garbage", 17), 0);
    ck_assert_int_eq(peft_st_open(tu_ctx(), p, &f), PEFT_EFORMAT);
    ASSERT_HAS(peft_errmsg(tu_ctx()), p);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* the file helpers, the writers and the config getters report a code and a message on the
 * context (and only the code without one) */
START_TEST(writers_and_getters_report_on_the_context)
{
    peft_ctx *ctx = peft_ctx_new(0);
    char *dir = tu_tmpdir(), p[4200];
    snprintf(p, sizeof p, "%s/file", dir);
    ck_assert_int_eq(tu_write_file(p, "x", 1), 0);
    char sub_[4300];
    snprintf(sub_, sizeof sub_, "%s/below", p); /* below a regular file */
    ck_assert_int_eq(peft_mkdirs(ctx, sub_), PEFT_EIO);
    ck_assert_int_eq(peft_errcode(ctx), PEFT_EIO);
    ASSERT_HAS(peft_errmsg(ctx), p);
    ck_assert_int_eq(peft_mkdirs(NULL, sub_), PEFT_EIO);
    snprintf(sub_, sizeof sub_, "%s/missing", dir);
    ck_assert_ptr_null(peft_read_file(ctx, sub_, NULL));
    ck_assert_int_eq(peft_errcode(ctx), PEFT_EIO);
    ASSERT_HAS(peft_errmsg(ctx), sub_);
    snprintf(sub_, sizeof sub_, "%s/below/x.json", p);
    ck_assert_int_eq(peft_write_file_atomic(ctx, sub_, "{}", 2), PEFT_EIO);
    ASSERT_HAS(peft_errmsg(ctx), sub_);
    peft_gpt2_shape bad = {2, 30, 4, 64, 16}; /* 30 is not a multiple of 4 */
    ck_assert_int_eq(peft_write_random_gpt2(ctx, sub_, &bad, 0), PEFT_EINVAL);
    ASSERT_HAS(peft_errmsg(ctx), "multiple of n_head");
    /* a meta model cannot be saved; its config getters name the file and the field */
    peft_base_model *meta = NULL;
    ck_assert_int_eq(peft_load_base_model_meta(ctx, tu_fixture("hf-peft/_models/gpt2/config.json"),
                                               NULL, &meta), PEFT_OK);
    snprintf(sub_, sizeof sub_, "%s/saved", dir);
    ck_assert_int_eq(peft_base_model_save(ctx, meta, sub_, PEFT_DTYPE_F32), PEFT_EINVAL);
    ASSERT_HAS(peft_errmsg(ctx), "weight-free");
    int64_t v = 0;
    ck_assert_int_eq(peft_config_int(ctx, meta, "n_embd", 0, 0, &v), PEFT_OK);
    ck_assert_int_gt(v, 0);
    ck_assert_int_eq(peft_config_int(ctx, meta, "no_such_key", 0, 0, &v), PEFT_EFORMAT);
    ASSERT_HAS(peft_errmsg(ctx), "no_such_key");
    ck_assert_int_eq(peft_config_int(ctx, NULL, "n_embd", 0, 0, &v), PEFT_EINVAL);
    ck_assert_ptr_nonnull(peft_base_model_find_param(meta, "transformer.h.0.attn.c_attn.weight"));
    ck_assert_ptr_null(peft_base_model_find_param(meta, "transformer.h.0.attn.nope"));
    peft_base_model_free(meta);
    tu_rmtree(dir);
    free(dir);
    peft_ctx_free(ctx);
}
END_TEST

/* a GPT-2 fixture model with a fixture plugin's adapter on c_attn, run forward */
static int forward_with(const char *plugin, const char *peft_type, peft_ctx *ctx)
{
    char path[1024];
    snprintf(path, sizeof path, "tests/plugins/%s.so", plugin);
    const peft_tuner_vtable *vt;
    ck_assert_msg(peft_plugin_load_file(ctx, tu_build(path), &vt) == PEFT_OK, "%s", peft_errmsg(ctx));
    peft_base_model *b;
    ck_assert_msg(peft_load_base_model(ctx, tu_fixture("hf-peft/_models/gpt2"), &b) == 0, "%s",
                  peft_errmsg(ctx));
    char cfg[256];
    snprintf(cfg, sizeof cfg, "{\"peft_type\": \"%s\", \"target_modules\": [\"c_attn\"]}", peft_type);
    peft_model *m;
    ck_assert_msg(peft_get_peft_model(ctx, b, cfg, NULL, 0, &m) == 0, "%s", peft_errmsg(ctx));
    peft_inputs in;
    ck_assert(peft_inputs_load_json(tu_ctx(), tu_fixture("hf-peft/_models/gpt2/inputs.json"), &in) == 0);
    peft_model_inputs mi;
    peft_inputs_view(&in, &mi);
    peft_graph *g = peft_graph_new(peft_ctx_rng(ctx));
    peft_model_outputs out;
    int rc = peft_model_forward(m, g, &mi, &out);
    ck_assert_int_eq(peft_graph_errcode(g), rc); /* the graph kept it until reset */
    peft_graph_reset(g);
    ck_assert_int_eq(peft_graph_errcode(g), PEFT_OK);
    ck_assert_ptr_null(peft_graph_error(g));
    peft_graph_free(g);
    peft_inputs_free(&in);
    peft_model_free(m);
    return rc;
}

START_TEST(plugin_failure_reaches_the_caller)
{
    peft_set_warning_handler(tu_quiet, NULL);
    peft_ctx *ctx = peft_ctx_new(0);
    ck_assert_int_eq(forward_with("fail_forward", "FAILFWD", ctx), PEFT_EPLUGIN);
    ck_assert_int_eq(peft_errcode(ctx), PEFT_EPLUGIN);
    ASSERT_HAS(peft_errmsg(ctx), "failfwd: refuses the input of transformer.h.0.attn.c_attn");
    ck_assert_ptr_null(strstr(peft_errmsg(ctx), "out of memory"));
    peft_ctx_free(ctx);
}
END_TEST

START_TEST(plugin_null_is_named)
{
    peft_set_warning_handler(tu_quiet, NULL);
    peft_ctx *ctx = peft_ctx_new(0);
    ck_assert_int_eq(forward_with("null_forward", "NULLFWD", ctx), PEFT_EPLUGIN);
    ASSERT_HAS(peft_errmsg(ctx), "adapter 'default' (plugin 'nullfwd'): forward on "
                                 "transformer.h.0.attn.c_attn returned no tensor");
    peft_ctx_free(ctx);
}
END_TEST

/* a backward step that cannot produce its gradient reports it on the graph */
static void failing_backward(peft_graph *g, void *ctx)
{
    (void)ctx;
    peft_graph_fail(g, PEFT_ENOMEM, "test: no memory for this gradient");
}

START_TEST(backward_never_drops_a_gradient_silently)
{
    peft_rng rng;
    peft_rng_seed(&rng, 0);
    peft_graph *g = peft_graph_new(&rng);
    int64_t shape[1] = {3};
    peft_tensor *w = peft_tensor_new(PEFT_DTYPE_F32, 1, shape);
    w->requires_grad = 1;
    peft_graph_set_recording(g, 1);
    peft_tensor *y = op_scale(g, w, 2.0f);
    /* not a scalar: refused with a message */
    ck_assert_int_eq(peft_graph_backward(g, y), PEFT_EINVAL);
    ASSERT_HAS(peft_graph_error(g), "must be a scalar");
    peft_graph_reset(g);

    peft_graph_set_recording(g, 1);
    int64_t one[1] = {1};
    peft_tensor *x = peft_tensor_new(PEFT_DTYPE_F32, 1, one);
    x->requires_grad = 1;
    peft_tensor *loss = op_scale(g, x, 3.0f);
    ck_assert_ptr_nonnull(peft_tape_push(g, failing_backward, 0)); /* runs first in backward */
    ck_assert_int_eq(peft_graph_backward(g, loss), PEFT_ENOMEM);
    ASSERT_HAS(peft_graph_error(g), "test: no memory for this gradient");
    peft_graph_reset(g);

    /* a clean step after reset */
    peft_graph_set_recording(g, 1);
    peft_tensor_zero_grad(x);
    loss = op_scale(g, x, 3.0f);
    ck_assert_int_eq(peft_graph_backward(g, loss), PEFT_OK);
    ck_assert(x->grad && x->grad[0] == 3.0f);
    peft_tensor_free(x);
    peft_tensor_free(w);
    peft_graph_free(g);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("errors");
    TCase *tc = tcase_create("errors");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, version_matches_headers);
    tcase_add_test(tc, missing_model_dir_is_eio);
    tcase_add_test(tc, safetensors_open_codes);
    tcase_add_test(tc, writers_and_getters_report_on_the_context);
    tcase_add_test(tc, plugin_failure_reaches_the_caller);
    tcase_add_test(tc, plugin_null_is_named);
    tcase_add_test(tc, backward_never_drops_a_gradient_silently);
    suite_add_tcase(s, tc);
    return tu_run_suite(s) ? 1 : 0;
}
