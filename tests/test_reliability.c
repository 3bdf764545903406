/* test_reliability.c — regression tests for issue 16's smaller defects: the Strip decoder on
 * an empty token (it did NULL + 0, undefined behaviour; `make asan` runs this under UBSan). */
#define _GNU_SOURCE
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "testutil.h"

START_TEST(strip_decoder_empty_token)
{
    char *dir = tu_tmpdir(), p[4200];
    snprintf(p, sizeof p, "%s/tokenizer.json", dir);
    const char *tk =
        "{\"version\": \"1.0\", \"truncation\": null, \"padding\": null, \"added_tokens\": [],"
        " \"normalizer\": null, \"pre_tokenizer\": {\"type\": \"Whitespace\"}, \"post_processor\": null,"
        " \"decoder\": {\"type\": \"Strip\", \"content\": \" \", \"start\": 1, \"stop\": 1},"
        " \"model\": {\"type\": \"WordLevel\", \"vocab\": {\"\": 0, \"a\": 1, \"[UNK]\": 2},"
        " \"unk_token\": \"[UNK]\"}}";
    ck_assert(tu_write_file(p, tk, strlen(tk)) == 0);
    char *out = NULL;
    int st = tu_run_peft(&out, "tokenize --tokenizer %s --decode --text '0 1 0'", p);
    ck_assert_msg(st == 0 && strstr(out, "a"), "status %d: %s", st, out);
    free(out);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("reliability");
    TCase *tc = tcase_create("regressions");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, strip_decoder_empty_token);
    suite_add_tcase(s, tc);
    return tu_run_suite(s) ? 1 : 0;
}
