/* test_boft.c — the BOFT plugin (plugins/boft/): every BOFT case of Python PEFT 0.13.2's
 * fixtures (hf-peft-v2: LLaMA with one butterfly factor and with two, BERT SEQ_CLS; PEFT
 * refuses GPT-2's Conv1D, and so does libpeft) through the contract table; the butterfly
 * permutations against PEFT's boft_P buffers; finite-difference gradients (one and two
 * factors, boft_dropout in training); merge == forward and unmerge; PEFT's shape errors. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "peft/peft.h"
#include "contract.h"
#include "fd.h"
#include "peft/safetensors.h"
#include "peft/warn.h"
#include "plugin_site.h"
#include "testutil.h"

/* the plugin's permutations, compiled in (they use no host entry) */
#include "plugins/boft/boft_perm.c"
const peft_host_api *boft_host;

static const char *const fixture_cases[] = {"llama__boft", "llama__boft_butterfly2",
                                            "bert_seqcls__boft"};
#define N_FIXTURE_CASES (int)(sizeof fixture_cases / sizeof fixture_cases[0])

START_TEST(fixture_case)
{
    peft_set_warning_handler(tu_quiet, NULL);
    contract_run_case(fixture_cases[_i]);
}
END_TEST

/* boft_P (factors, in, in) of every module == the permutation matrices of boft_perms */
START_TEST(permutations_are_peft_s)
{
    static const struct {
        const char *file;
        int64_t nf;
    } files[] = {
        {"hf-peft-v2/llama__boft/boft_P.safetensors", 1},
        {"hf-peft-v2/llama__boft_butterfly2/boft_P.safetensors", 2},
    };
    for (size_t f = 0; f < 2; f++) {
        char err[512];
        peft_st_file *st;
        ck_assert_msg(peft_st_open(tu_ctx(), tu_fixture(files[f].file), &st) == 0, "%s", peft_errmsg(tu_ctx()));
        ck_assert_int_eq(st->n_entries, 4);
        for (size_t e = 0; e < st->n_entries; e++) {
            const peft_st_entry *en = &st->entries[e];
            const int64_t nf = en->shape[0], in = en->shape[1];
            ck_assert_int_eq(nf, files[f].nf);
            const boft_config c = {.block_size = 4, .n_factors = nf};
            int64_t D, H;
            ck_assert_msg(boft_shapes(&c, in, en->name, &D, &H, err, sizeof err) == 0, "%s", err);
            int64_t *perm = malloc((size_t)(nf * in) * sizeof *perm);
            ck_assert_msg(boft_perms(in, nf, D, H, perm, err, sizeof err) == 0, "%s", err);
            const float *P = (const float *)en->data;
            for (int64_t i = 0; i < nf; i++)
                for (int64_t r = 0; r < in; r++)
                    for (int64_t k = 0; k < in; k++)
                        ck_assert_msg(P[(i * in + r) * in + k] == (perm[i * in + r] == k),
                                      "%s %s: P[%lld][%lld][%lld]", files[f].file, en->name,
                                      (long long)i, (long long)r, (long long)k);
            free(perm);
        }
        peft_st_close(st);
    }
}
END_TEST

#define CFG(extra) "{\"peft_type\":\"BOFT\",\"target_modules\":[\"q_proj\"]" extra "}"

START_TEST(grads_one_factor)
{
    ps_site h;
    ps_open(&h, "boft", CFG(",\"boft_block_size\":2"), PEFT_SITE_LINEAR, 3, 6, 5, 0.5f);
    ck_assert_str_eq(h.refs[0].saved_name, "boft_R");
    ck_assert_str_eq(h.refs[1].memory_name, "boft_s.default");
    ck_assert_int_eq(ps_param(&h, "boft_R")->shape[1], 3);
    ck_assert_int_eq(ps_param(&h, "boft_s")->shape[0], 5);
    ps_check_grads(&h, "one factor", 0, 1, 1e-2, 2e-3);
    ps_check_merge(&h, 1e-5);
    ps_close(&h);
}
END_TEST

START_TEST(grads_two_factors)
{
    ps_site h;
    ps_open(&h, "boft", CFG(",\"boft_block_size\":2,\"boft_n_butterfly_factor\":2"),
            PEFT_SITE_LINEAR, 3, 8, 5, 0.5f);
    ck_assert_int_eq(ps_param(&h, "boft_R")->shape[0], 2);
    ps_check_grads(&h, "two factors", 0, 1, 1e-2, 2e-3);
    ps_check_merge(&h, 1e-5);
    ps_close(&h);
}
END_TEST

START_TEST(grads_dropout)
{
    ps_site h;
    ps_open(&h, "boft", CFG(",\"boft_block_size\":0,\"boft_block_num\":4,\"boft_dropout\":0.5"),
            PEFT_SITE_LINEAR, 3, 8, 5, 0.5f);
    ps_check_grads(&h, "dropout", 1, 4, 1e-2, 2e-3);
    ps_close(&h);
}
END_TEST

START_TEST(refusals)
{
    const char *e = ps_inject_error("boft", CFG(""), PEFT_SITE_CONV1D, 8, 8);
    ck_assert_msg(strstr(e, "q_proj") && strstr(e, "Linear"), "%s", e);
    e = ps_inject_error("boft", CFG(",\"boft_block_size\":3"), PEFT_SITE_LINEAR, 8, 8);
    ck_assert_msg(strstr(e, "divisible by boft_block_size"), "%s", e);
    e = ps_inject_error("boft", CFG(",\"boft_block_size\":4,\"boft_block_num\":2"), PEFT_SITE_LINEAR, 8, 8);
    ck_assert_msg(strstr(e, "not both"), "%s", e);
    e = ps_inject_error("boft", CFG(",\"boft_block_size\":0"), PEFT_SITE_LINEAR, 8, 8);
    ck_assert_msg(strstr(e, "either"), "%s", e);
    e = ps_inject_error("boft", CFG(",\"boft_block_size\":4,\"boft_n_butterfly_factor\":3"),
                        PEFT_SITE_LINEAR, 8, 8);
    ck_assert_msg(strstr(e, "2^(factor - 1)"), "%s", e);
    e = ps_inject_error("boft", CFG(",\"bias\":\"all\""), PEFT_SITE_LINEAR, 8, 8);
    ck_assert_msg(strstr(e, "bias"), "%s", e);
}
END_TEST

int main(void)
{
    peft_rng_seed(&fd_rng, 2024);
    Suite *s = suite_create("boft");
    TCase *tc = tcase_create("fixtures");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, fixture_case, 0, N_FIXTURE_CASES);
    tcase_add_test(tc, permutations_are_peft_s);
    suite_add_tcase(s, tc);
    TCase *tk = tcase_create("kernels");
    tcase_set_timeout(tk, 60);
    tcase_add_test(tk, grads_one_factor);
    tcase_add_test(tk, grads_two_factors);
    tcase_add_test(tk, grads_dropout);
    tcase_add_test(tk, refusals);
    suite_add_tcase(s, tk);
    return tu_run_suite(s) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
