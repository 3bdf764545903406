/* test_oft.c — the OFT plugin (plugins/oft/): every OFT case of Python PEFT 0.13.2's fixtures
 * (hf-peft-v2: LLaMA, BERT SEQ_CLS; PEFT refuses GPT-2's Conv1D, and so does libpeft) through
 * the contract table; the Cayley transform (orthogonal, its backward by finite differences);
 * finite-difference gradients of the layer (blocks, a cut last block, block_share, a bias);
 * merge == forward and unmerge; coft's projection (in place, radius eps b^2 / sqrt(blocks)). */
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

static const char *const fixture_cases[] = {"llama__oft", "bert_seqcls__oft"};
#define N_FIXTURE_CASES (int)(sizeof fixture_cases / sizeof fixture_cases[0])

START_TEST(fixture_case)
{
    peft_set_warning_handler(tu_quiet, NULL);
    contract_run_case(fixture_cases[_i]);
}
END_TEST

#define CFG(extra) "{\"peft_type\":\"OFT\",\"target_modules\":[\"q_proj\"]" extra "}"

/* r = 2 blocks of 3 on out = 6, random R: R_full is orthogonal, so the rotated output keeps
 * each row's norm (of y - bias) */
START_TEST(rotation_orthogonal)
{
    ps_site h;
    ps_open(&h, "oft", CFG(",\"r\":2"), PEFT_SITE_LINEAR, 3, 5, 6, 0.7f);
    peft_rng r;
    peft_rng_seed(&r, 1);
    peft_graph *g = peft_graph_new(&r);
    peft_tensor *y = op_linear(g, h.x, h.w, h.b, 0);
    peft_tensor *out = h.vt->forward(h.state, g, &h.site, h.x, y);
    ck_assert_ptr_nonnull(out);
    for (int64_t i = 0; i < 3; i++)
        for (int blk = 0; blk < 2; blk++) {
            double n0 = 0, n1 = 0;
            for (int64_t o = blk * 3; o < blk * 3 + 3; o++) {
                const double a = peft_f32(y)[i * 6 + o] - peft_f32(h.b)[o];
                const double c = peft_f32(out)[i * 6 + o] - peft_f32(h.b)[o];
                n0 += a * a;
                n1 += c * c;
            }
            ck_assert_msg(fabs(sqrt(n0) - sqrt(n1)) < 1e-5, "row %ld block %d: |y| %g -> %g",
                          (long)i, blk, sqrt(n0), sqrt(n1));
        }
    peft_graph_free(g);
    ps_close(&h);
}
END_TEST

START_TEST(grads_blocks)
{
    ps_site h;
    ps_open(&h, "oft", CFG(",\"r\":2"), PEFT_SITE_LINEAR, 3, 5, 6, 0.5f);
    ps_check_grads(&h, "r=2", 0, 1, 1e-2, 2e-3);
    ps_check_merge(&h, 1e-5);
    ps_close(&h);
}
END_TEST

/* out = 7, r = 3: blocks of 3, the last cut to 1 row */
START_TEST(grads_cut_block)
{
    ps_site h;
    ps_open(&h, "oft", CFG(",\"r\":3"), PEFT_SITE_LINEAR, 3, 4, 7, 0.5f);
    ck_assert_int_eq(h.refs[0].tensor->shape[0], 3);
    ck_assert_int_eq(h.refs[0].tensor->shape[1], 3);
    ps_check_grads(&h, "cut block", 0, 1, 1e-2, 2e-3);
    ps_check_merge(&h, 1e-5);
    ps_close(&h);
}
END_TEST

START_TEST(grads_block_share)
{
    ps_site h;
    ps_open(&h, "oft", CFG(",\"r\":3,\"block_share\":true"), PEFT_SITE_LINEAR, 3, 4, 6, 0.5f);
    ck_assert_int_eq(h.refs[0].tensor->shape[0], 1);
    ck_assert_str_eq(h.refs[0].saved_name, "oft_r");
    ck_assert_str_eq(h.refs[0].memory_name, "oft_r.default");
    ps_check_grads(&h, "block_share", 0, 1, 1e-2, 2e-3);
    ps_check_merge(&h, 1e-5);
    ps_close(&h);
}
END_TEST

/* coft: a block whose norm exceeds eps * b^2 / sqrt(blocks) is scaled onto that radius, in
 * place, by the forward; a block inside the ball is left alone */
START_TEST(coft_projection)
{
    ps_site h;
    ps_open(&h, "oft", CFG(",\"r\":2,\"coft\":true,\"eps\":0.01"), PEFT_SITE_LINEAR, 2, 4, 8, 0);
    peft_tensor *R = ps_param(&h, "oft_r");
    const int64_t b = 4;
    for (int64_t j = 0; j < b * b; j++) {
        peft_f32(R)[j] = 0.5f * (float)peft_rng_normal(&fd_rng);       /* far outside */
        peft_f32(R)[b * b + j] = 1e-4f * (float)peft_rng_normal(&fd_rng); /* inside */
    }
    float inside[16];
    memcpy(inside, peft_f32(R) + b * b, sizeof inside);
    peft_rng r;
    peft_rng_seed(&r, 1);
    peft_graph *g = peft_graph_new(&r);
    ps_forward(&h, g);
    const double radius = 0.01 * 16 / sqrt(2.0);
    double ss = 0;
    for (int64_t j = 0; j < b * b; j++) ss += (double)peft_f32(R)[j] * peft_f32(R)[j];
    ck_assert_msg(fabs(sqrt(ss) - radius) < 1e-6, "projected norm %g, radius %g", sqrt(ss), radius);
    ck_assert(memcmp(inside, peft_f32(R) + b * b, sizeof inside) == 0);
    /* a projected block stays put: a second forward leaves every bit */
    float once[32];
    memcpy(once, peft_f32(R), sizeof once);
    peft_graph_reset(g);
    ps_forward(&h, g);
    ck_assert(memcmp(once, peft_f32(R), sizeof once) == 0);
    peft_graph_free(g);
    ps_check_merge(&h, 1e-5);
    ps_close(&h);
}
END_TEST

/* r = 5 > out = 3: blocks of 1, two of them past out (PEFT accepts this; they stay unused) */
START_TEST(more_blocks_than_outputs)
{
    ps_site h;
    ps_open(&h, "oft", CFG(",\"r\":5"), PEFT_SITE_LINEAR, 2, 4, 3, 0.5f);
    ck_assert_int_eq(h.refs[0].tensor->shape[0], 5);
    ck_assert_int_eq(h.refs[0].tensor->shape[1], 1);
    ps_check_grads(&h, "r > out", 0, 1, 1e-2, 2e-3);
    ps_check_merge(&h, 1e-5);
    ps_close(&h);
}
END_TEST

START_TEST(refusals)
{
    const char *e = ps_inject_error("oft", CFG(",\"r\":2"), PEFT_SITE_CONV1D, 4, 4);
    ck_assert_msg(strstr(e, "q_proj") && strstr(e, "Linear"), "%s", e);
    e = ps_inject_error("oft", CFG(",\"r\":0"), PEFT_SITE_LINEAR, 4, 4);
    ck_assert_msg(strstr(e, "'r'"), "%s", e);
    e = ps_inject_error("oft", CFG(",\"eps\":0"), PEFT_SITE_LINEAR, 4, 4);
    ck_assert_msg(strstr(e, "eps"), "%s", e);
}
END_TEST

int main(void)
{
    peft_rng_seed(&fd_rng, 2024);
    Suite *s = suite_create("oft");
    TCase *tc = tcase_create("fixtures");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, fixture_case, 0, N_FIXTURE_CASES);
    suite_add_tcase(s, tc);
    TCase *tk = tcase_create("kernels");
    tcase_set_timeout(tk, 60);
    tcase_add_test(tk, rotation_orthogonal);
    tcase_add_test(tk, grads_blocks);
    tcase_add_test(tk, grads_cut_block);
    tcase_add_test(tk, grads_block_share);
    tcase_add_test(tk, coft_projection);
    tcase_add_test(tk, more_blocks_than_outputs);
    tcase_add_test(tk, refusals);
    suite_add_tcase(s, tk);
    return tu_run_suite(s) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
