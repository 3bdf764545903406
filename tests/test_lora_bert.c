/* test_lora_bert.c — LoRA on BERT's three task heads against Python PEFT's fixtures: every
 * bert_seqcls__lora_*, bert_tokcls__lora_* and bert_qa__lora_* case through the contract table
 * (tests/util/contract.c), the classifier / qa_outputs modules_to_save copy included. */
#include <check.h>
#include <stdlib.h>
#include "contract.h"

static const char *cases[64];

START_TEST(fixture_case)
{
    contract_run_case(cases[_i]);
}
END_TEST

int main(void)
{
    static const char *const prefixes[] = {"bert_seqcls__lora", "bert_tokcls__lora", "bert_qa__lora"};
    int n = 0;
    for (size_t p = 0; p < sizeof prefixes / sizeof prefixes[0]; p++)
        for (const char *const *c = contract_cases(prefixes[p]); *c && n < 63; c++) cases[n++] = *c;
    Suite *s = suite_create("lora_bert");
    TCase *tc = tcase_create("fixtures");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, fixture_case, 0, n);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return n >= 9 && failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
