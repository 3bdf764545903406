/* test_vblora.c — the VB-LoRA plugin (plugins/vblora/, ABI 1.3 adapter-level state): every
 * VB-LoRA case of Python PEFT 0.13.2 (hf-peft-v2: GPT-2 Conv1D, LLaMA, BERT) through the
 * contract table (outputs, loss, the gradients of the logits through the top-k softmax and of
 * the shared bank, saved as base_model.vblora_vector_bank, counts, merge, save/load); config
 * errors (vector_length must divide the layers, save_only_topk_weights refused). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "contract.h"
#include "peft/peft.h"
#include "peft/warn.h"
#include "testutil.h"

static const char *const fixture_cases[] = {"gpt2__vblora", "llama__vblora", "bert_seqcls__vblora"};
#define N_CASES (int)(sizeof fixture_cases / sizeof fixture_cases[0])

START_TEST(fixture_case)
{
    peft_set_warning_handler(tu_quiet, NULL);
    contract_run_case(fixture_cases[_i]);
}
END_TEST

START_TEST(config_errors)
{
    peft_set_warning_handler(tu_quiet, NULL);
    peft_ctx *ctx = peft_ctx_new(0);
    peft_base_model *base;
    ck_assert(peft_load_base_model(ctx, tu_fixture("hf-peft-v2/_models/llama"), &base) == 0);
    peft_model *m = NULL;
    static const struct {
        const char *cfg, *want;
    } bad[] = {
        {"{\"peft_type\": \"VBLORA\", \"vector_length\": 5, \"num_vectors\": 8}", "must be divisible by `vector_length` 5"},
        {"{\"peft_type\": \"VBLORA\", \"vector_length\": 8, \"num_vectors\": 4, \"topk\": 5}", "topk (5) cannot exceed"},
        {"{\"peft_type\": \"VBLORA\", \"vector_length\": 8, \"save_only_topk_weights\": true}", "save_only_topk_weights"},
        {"{\"peft_type\": \"VBLORA\", \"r\": 0}", "'r' must be a positive integer"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_int_ne(peft_get_peft_model(ctx, base, bad[i].cfg, "default", 0, &m), 0);
        ck_assert_msg(strstr(peft_errmsg(ctx), bad[i].want), "%s: %s", bad[i].cfg, peft_errmsg(ctx));
    }
    peft_base_model_free(base);
    peft_ctx_free(ctx);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("vblora");
    TCase *tf = tcase_create("fixtures");
    tcase_set_timeout(tf, 120);
    tcase_add_loop_test(tf, fixture_case, 0, N_CASES);
    tcase_add_test(tf, config_errors);
    suite_add_tcase(s, tf);
    return tu_run_suite(s) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
