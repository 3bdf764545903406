/* test_archs.c — the LLaMA family beyond LLaMA-2 (core/models/rope_decoder.c): Qwen2 (+ sequence
 * classification), Mistral, Gemma, Gemma2, Phi-3 and Llama-3 RoPE scaling, every hf-peft-v2 case
 * of these architectures through the contract table. */
#include <check.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "contract.h"
#include "testutil.h"

static const char *const PREFIXES[] = {
    "qwen2__", "qwen2_seqcls__", "mistral__", "gemma__", "gemma2__", "phi3__", "llama3rope__",
};
#define N_PREFIXES (sizeof PREFIXES / sizeof *PREFIXES)

static const char *cases[128];
static int n_cases;

START_TEST(fixture_case)
{
    contract_run_case(cases[_i]);
}
END_TEST

/* the hf-peft-v2 cases of these architectures that PEFT made (status "ok"; the ones it refused
 * are under "skipped", tested below), ARCHS_ONLY=<substring> to run some */
static void list_cases(void)
{
    static json_t *idx;
    idx = json_load_file(tu_fixture("hf-peft-v2/INDEX.json"), 0, NULL);
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(idx, "cases"), i, c) {
        const char *name = json_string_value(json_object_get(c, "case"));
        const char *status = json_string_value(json_object_get(c, "status"));
        if (!name || (status && strcmp(status, "ok")) || n_cases >= 127)
            continue;
        if (getenv("ARCHS_ONLY") && !strstr(name, getenv("ARCHS_ONLY"))) continue;
        for (size_t p = 0; p < N_PREFIXES; p++)
            if (!strncmp(name, PREFIXES[p], strlen(PREFIXES[p]))) {
                cases[n_cases++] = name;
                break;
            }
    }
}

int main(void)
{
    list_cases();
    Suite *s = suite_create("archs");
    TCase *tc = tcase_create("fixtures");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, fixture_case, 0, n_cases);
    suite_add_tcase(s, tc);
    return tu_run_suite(s) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
