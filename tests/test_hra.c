/* test_hra.c — the HRA plugin (plugins/hra/): every HRA case of Python PEFT 0.13.2's fixtures
 * (hf-peft-v2: LLaMA, BERT SEQ_CLS; PEFT refuses GPT-2's Conv1D, and so does libpeft) through
 * the contract table; finite-difference gradients of the layer (reflections in order, and
 * Gram-Schmidt), merge == forward and unmerge; PEFT's symmetric init (even r: H = I). */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "contract.h"
#include "fd.h"
#include "core/ops/ops.h"
#include "peft/warn.h"
#include "plugin_site.h"
#include "testutil.h"

static const char *const fixture_cases[] = {"llama__hra", "bert_seqcls__hra"};
#define N_FIXTURE_CASES (int)(sizeof fixture_cases / sizeof fixture_cases[0])

START_TEST(fixture_case)
{
    peft_set_warning_handler(tu_quiet, NULL);
    contract_run_case(fixture_cases[_i]);
}
END_TEST

#define CFG(extra) "{\"peft_type\":\"HRA\",\"target_modules\":[\"q_proj\"]" extra "}"

START_TEST(grads_reflections)
{
    ps_site h;
    ps_open(&h, "hra", CFG(",\"r\":3"), PEFT_SITE_LINEAR, 3, 5, 4, 0.5f);
    ck_assert_int_eq(ps_param(&h, "hra_u")->shape[0], 5);
    ck_assert_int_eq(ps_param(&h, "hra_u")->shape[1], 3);
    ck_assert_str_eq(h.refs[0].memory_name, "hra_u.default");
    ps_check_grads(&h, "reflections", 0, 1, 1e-2, 2e-3);
    ps_check_merge(&h, 1e-5);
    ps_close(&h);
}
END_TEST

START_TEST(grads_gram_schmidt)
{
    ps_site h;
    ps_open(&h, "hra", CFG(",\"r\":3,\"apply_GS\":true"), PEFT_SITE_LINEAR, 3, 5, 4, 0.5f);
    ps_check_grads(&h, "Gram-Schmidt", 0, 1, 1e-2, 2e-3);
    ps_check_merge(&h, 1e-5);
    ps_close(&h);
}
END_TEST

/* even r: pairs of equal columns, so the adapter starts as the identity */
START_TEST(symmetric_init)
{
    ps_site h;
    ps_open(&h, "hra", CFG(",\"r\":4"), PEFT_SITE_LINEAR, 3, 6, 4, 0);
    const float *u = peft_f32(ps_param(&h, "hra_u"));
    for (int64_t k = 0; k < 6; k++) {
        ck_assert(u[k * 4] == u[k * 4 + 1] && u[k * 4 + 2] == u[k * 4 + 3]);
        ck_assert(u[k * 4] != 0);
    }
    peft_rng r;
    peft_rng_seed(&r, 1);
    peft_graph *g = peft_graph_new(&r);
    peft_tensor *y = op_linear(g, h.x, h.w, h.b, 0);
    peft_tensor *out = h.vt->forward(h.state, g, &h.site, h.x, y);
    ck_assert_double_le(tu_max_abs_diff(peft_f32(y), peft_f32(out), y->numel), 1e-5);
    peft_graph_free(g);
    ps_close(&h);
}
END_TEST

START_TEST(refusals)
{
    const char *e = ps_inject_error("hra", CFG(",\"r\":2"), PEFT_SITE_CONV1D, 4, 4);
    ck_assert_msg(strstr(e, "q_proj") && strstr(e, "Linear"), "%s", e);
    e = ps_inject_error("hra", CFG(",\"bias\":\"all\""), PEFT_SITE_LINEAR, 4, 4);
    ck_assert_msg(strstr(e, "bias"), "%s", e);
    e = ps_inject_error("hra", CFG(",\"r\":0"), PEFT_SITE_LINEAR, 4, 4);
    ck_assert_msg(strstr(e, "'r'"), "%s", e);
}
END_TEST

int main(void)
{
    peft_rng_seed(&fd_rng, 2024);
    Suite *s = suite_create("hra");
    TCase *tc = tcase_create("fixtures");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, fixture_case, 0, N_FIXTURE_CASES);
    suite_add_tcase(s, tc);
    TCase *tk = tcase_create("kernels");
    tcase_set_timeout(tk, 60);
    tcase_add_test(tk, grads_reflections);
    tcase_add_test(tk, grads_gram_schmidt);
    tcase_add_test(tk, symmetric_init);
    tcase_add_test(tk, refusals);
    suite_add_tcase(s, tk);
    return tu_run_suite(s) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
