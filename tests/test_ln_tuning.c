/* test_ln_tuning.c — the LN tuning plugin (plugins/ln_tuning/) on the norm sites of ABI 1.4:
 * every LN tuning case of Python PEFT 0.13.2's fixtures (hf-peft-v2: GPT-2, LLaMA, BERT SEQ_CLS)
 * through the contract table; finite-difference gradients of the norm with the adapter's copy
 * (LayerNorm, RMSNorm, Gemma's (1 + w) RMSNorm) and merge == forward; what it refuses. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "contract.h"
#include "fd.h"
#include "peft/inputs.h"
#include "peft/peft.h"
#include "peft/warn.h"
#include "plugin_site.h"
#include "testutil.h"

static const char *const fixture_cases[] = {"gpt2__ln_tuning", "llama__ln_tuning",
                                            "bert_seqcls__ln_tuning"};
#define N_FIXTURE_CASES (int)(sizeof fixture_cases / sizeof fixture_cases[0])

START_TEST(fixture_case)
{
    peft_set_warning_handler(tu_quiet, NULL);
    contract_run_case(fixture_cases[_i]);
}
END_TEST

#define CFG "{\"peft_type\":\"LN_TUNING\",\"target_modules\":[\"input_layernorm\"]}"

/* the norm with the adapter's weight (and bias): gradients to x, weight and bias; the merged
 * norm (copy swapped in) computes the same */
START_TEST(grads_norms)
{
    static const int types[] = {PEFT_NORM_LAYER, PEFT_NORM_RMS, PEFT_NORM_RMS_1P};
    for (int k = 0; k < 3; k++) {
        ps_site h;
        ps_open_norm(&h, "ln_tuning", CFG, types[k], 5, 8, 0.0f);
        ck_assert_int_eq(h.n_refs, types[k] == PEFT_NORM_LAYER ? 2 : 1);
        ck_assert_str_eq(h.refs[0].saved_name, "ln_tuning_layers.weight");
        ck_assert_str_eq(h.refs[0].memory_name, "ln_tuning_layers.default.weight");
        /* a deep copy of the norm: the same values as the base */
        ck_assert(tu_max_abs_diff(peft_f32(h.refs[0].tensor), peft_f32(h.w), 8) == 0);
        for (int i = 0; i < h.n_refs; i++) /* then trained away from it */
            for (int64_t j = 0; j < 8; j++) peft_f32(h.refs[i].tensor)[j] += 0.2f * (float)(j % 3) - 0.1f;
        ck_assert_str_eq(h.vt->module_type(h.state), "ln_tuning.LNTuningLayer");
        ps_check_grads(&h, "norm", 0, 1, 1e-2, 2e-3);
        ps_check_merge(&h, 1e-6);
        ps_close(&h);
    }
}
END_TEST

START_TEST(refusals)
{
    const char *e = ps_inject_error("ln_tuning", "{\"peft_type\":\"LN_TUNING\",\"target_modules\":[\"q_proj\"]}",
                                    PEFT_SITE_LINEAR, 8, 8);
    ck_assert_msg(strstr(e, "ln_tuning") && strstr(e, "linear") && strstr(e, "q_proj"), "%s", e);
    /* LoRA on a norm: not supported (PEFT: "Target module ... is not supported") */
    e = ps_inject_error("lora", "{\"peft_type\":\"LORA\",\"target_modules\":[\"input_layernorm\"]}",
                        PEFT_SITE_NORM, 8, 8);
    ck_assert_msg(strstr(e, "lora") && strstr(e, "norm") && strstr(e, "input_layernorm"), "%s", e);
}
END_TEST

/* through the public API: PEFT's default targets per model type, the merged model unloaded keeps
 * the trained norms, and an unmerged unload gives the base back bit-exactly */
START_TEST(defaults_and_unload)
{
    peft_set_warning_handler(tu_quiet, NULL);
    peft_ctx *ctx = peft_ctx_new(0);
    peft_base_model *base;
    ck_assert(peft_load_base_model(ctx, tu_fixture("hf-peft-v2/_models/llama"), &base) == 0);
    peft_model *m;
    ck_assert_msg(peft_get_peft_model(ctx, base, "{\"peft_type\":\"LN_TUNING\"}", "default", 0, &m) == 0,
                  "%s", peft_errmsg(ctx));
    int64_t t, a;
    peft_get_nb_trainable_parameters(m, &t, &a);
    ck_assert_int_eq(t, 5 * 32); /* 2 layers x (input, post-attention) + model.norm, width 32 */
    char *st;
    ck_assert(peft_get_model_status(m, &st) == 0);
    ck_assert_msg(strstr(st, "\"LNTuningModel\"") && strstr(st, "\"num_adapter_layers\": 5"), "%s", st);
    free(st);
    peft_base_model *back;
    ck_assert(peft_unload(m, &back) == 0);
    ck_assert_int_eq(peft_base_model_num_sites(back) > 0, 1);
    peft_base_model_free(back);
    peft_ctx_free(ctx);
}
END_TEST

int main(void)
{
    peft_rng_seed(&fd_rng, 5);
    Suite *s = suite_create("ln_tuning");
    TCase *tc = tcase_create("fixtures");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, fixture_case, 0, N_FIXTURE_CASES);
    suite_add_tcase(s, tc);
    TCase *tk = tcase_create("kernel");
    tcase_add_test(tk, grads_norms);
    tcase_add_test(tk, refusals);
    tcase_add_test(tk, defaults_and_unload);
    suite_add_tcase(s, tk);
    return tu_run_suite(s) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
