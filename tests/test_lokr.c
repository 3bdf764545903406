/* test_lokr.c — the LoKr plugin (plugins/lokr/): every LoKr case of Python PEFT 0.13.2's
 * fixtures (hf-peft-v2: LLaMA, BERT SEQ_CLS; PEFT refuses GPT-2's Conv1D) through the contract
 * table; finite-difference gradients on a synthetic site (full and decomposed factors, rank
 * dropout in training); merge == forward; alpha has no effect, as in PEFT 0.13.2; a Conv1D site
 * is accepted with a warning (a libpeft extension). */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "contract.h"
#include "fd.h"
#include "peft/warn.h"
#include "plugin_site.h"
#include "testutil.h"

static const char *const fixture_cases[] = {"llama__lokr", "bert_seqcls__lokr"};
#define N_FIXTURE_CASES (int)(sizeof fixture_cases / sizeof fixture_cases[0])

START_TEST(fixture_case)
{
    peft_set_warning_handler(tu_quiet, NULL);
    contract_run_case(fixture_cases[_i]);
}
END_TEST

#define CFG(extra) "{\"peft_type\":\"LOKR\",\"target_modules\":[\"q_proj\"]" extra "}"

START_TEST(grads_full_factors)
{
    ps_site h; /* in 6 = 2 x 3, out 4 = 2 x 2; r 8 >= max/2: both factors full */
    ps_open(&h, "lokr", CFG(",\"r\":8"), PEFT_SITE_LINEAR, 3, 6, 4, 0.5f);
    ck_assert_int_eq(h.n_refs, 2);
    ck_assert_str_eq(h.refs[0].saved_name, "lokr_w1");
    ck_assert_str_eq(h.refs[1].memory_name, "lokr_w2.default");
    ps_check_grads(&h, "full", 0, 1, 1e-2, 2e-3);
    ps_check_merge(&h, 1e-5);
    ps_close(&h);
}
END_TEST

START_TEST(grads_decomposed)
{
    ps_site h; /* in 16 = 4 x 4, out 12 = 3 x 4; r 1 < 4/2: both decomposed */
    ps_open(&h, "lokr", CFG(",\"r\":1,\"decompose_both\":true"), PEFT_SITE_LINEAR, 3, 16, 12, 0.5f);
    ck_assert_int_eq(h.n_refs, 4);
    ck_assert_str_eq(h.refs[0].saved_name, "lokr_w1_a");
    ck_assert_str_eq(h.refs[3].saved_name, "lokr_w2_b");
    ps_check_grads(&h, "decomposed", 0, 1, 1e-2, 2e-3);
    ps_check_merge(&h, 1e-5);
    ps_close(&h);
}
END_TEST

START_TEST(grads_rank_dropout)
{
    ps_site h;
    ps_open(&h, "lokr", CFG(",\"r\":1,\"rank_dropout\":0.5"), PEFT_SITE_LINEAR, 3, 16, 12, 0.5f);
    ps_check_grads(&h, "rank dropout", 1, 3, 1e-2, 2e-3);
    ps_close(&h);
}
END_TEST

/* PEFT 0.13.2 never applies alpha / r: two alphas, the same outputs */
START_TEST(alpha_ignored)
{
    float *first = NULL;
    int64_t n = 0;
    for (int k = 0; k < 2; k++) {
        fd_rng = (peft_rng){0};
        peft_rng_seed(&fd_rng, 7);
        ps_site h;
        ps_open(&h, "lokr", k ? CFG(",\"r\":2,\"alpha\":64") : CFG(",\"r\":2,\"alpha\":1"),
                PEFT_SITE_LINEAR, 3, 6, 4, 0.5f);
        peft_rng r;
        peft_rng_seed(&r, 1);
        peft_graph *g = peft_graph_new(&r);
        peft_tensor *out = ps_forward(&h, g);
        if (!k) {
            n = out->numel;
            first = malloc((size_t)n * sizeof *first);
            memcpy(first, out->data, (size_t)n * sizeof *first);
        } else {
            ck_assert(memcmp(first, out->data, (size_t)n * sizeof *first) == 0);
        }
        peft_graph_free(g);
        ps_close(&h);
    }
    free(first);
}
END_TEST

static int warned;
static void count_warning(const char *msg, void *ud)
{
    (void)ud;
    if (strstr(msg, "Conv1D")) warned++;
}

/* GPT-2's Conv1D: PEFT refuses it; libpeft takes it as the linear map it is, with a warning */
START_TEST(conv1d_extension)
{
    warned = 0;
    peft_set_warning_handler(count_warning, NULL);
    ps_site h;
    ps_open(&h, "lokr", CFG(",\"r\":1"), PEFT_SITE_CONV1D, 3, 16, 12, 0.5f);
    ck_assert_int_eq(warned, 1);
    ps_check_grads(&h, "conv1d", 0, 1, 1e-2, 2e-3);
    ps_check_merge(&h, 1e-5);
    ps_close(&h);
    peft_set_warning_handler(NULL, NULL);
}
END_TEST

START_TEST(config_errors)
{
    const char *e = ps_inject_error("lokr", CFG(",\"r\":0"), PEFT_SITE_LINEAR, 4, 4);
    ck_assert_msg(strstr(e, "'r'"), "%s", e);
    e = ps_inject_error("lokr", CFG(",\"decompose_factor\":-3"), PEFT_SITE_LINEAR, 4, 4);
    ck_assert_msg(strstr(e, "decompose_factor"), "%s", e);
    e = ps_inject_error("lokr", CFG(",\"rank_dropout\":1.5"), PEFT_SITE_LINEAR, 4, 4);
    ck_assert_msg(strstr(e, "rank_dropout"), "%s", e);
}
END_TEST

int main(void)
{
    peft_rng_seed(&fd_rng, 2024);
    Suite *s = suite_create("lokr");
    TCase *tc = tcase_create("fixtures");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, fixture_case, 0, N_FIXTURE_CASES);
    suite_add_tcase(s, tc);
    TCase *tk = tcase_create("kernels");
    tcase_set_timeout(tk, 60);
    tcase_add_test(tk, grads_full_factors);
    tcase_add_test(tk, grads_decomposed);
    tcase_add_test(tk, grads_rank_dropout);
    tcase_add_test(tk, alpha_ignored);
    tcase_add_test(tk, conv1d_extension);
    tcase_add_test(tk, config_errors);
    suite_add_tcase(s, tk);
    return tu_run_suite(s) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
