/* test_lora_llama.c — LoRA on LLaMA against Python PEFT's fixtures: every llama__lora_* case
 * (default, rsLoRA, dropout + bias lora_only, no dropout, all seven projections) through the
 * contract table (tests/util/contract.c). */
#include <check.h>
#include <stdlib.h>
#include "contract.h"

static const char *const *cases;

START_TEST(fixture_case)
{
    contract_run_case(cases[_i]);
}
END_TEST

int main(void)
{
    cases = contract_cases("llama__lora");
    int n = 0;
    while (cases[n]) n++;
    Suite *s = suite_create("lora_llama");
    TCase *tc = tcase_create("fixtures");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, fixture_case, 0, n);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return n >= 5 && failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
