/* test_reliability.c — regression tests for issue 16's smaller defects: the Strip decoder on
 * an empty token (it did NULL + 0, undefined behaviour; `make asan` runs this under UBSan);
 * building a model with many layers (parameter and site lookups were linear scans, so building
 * was quadratic: 4000 layers took 100 s). */
#define _GNU_SOURCE
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "peft/model.h"
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

/* 10000 GPT-2 blocks of width 4 (120004 parameters, 40000 sites): quadratic lookups would take
 * hours; indexed, well under a second. Not timed: the suite's timeout is the guard. */
START_TEST(many_layers_build_fast)
{
    char *dir = tu_tmpdir(), p[4200], err[512];
    snprintf(p, sizeof p, "%s/config.json", dir);
    const char *cfg = "{\"model_type\": \"gpt2\", \"n_layer\": 10000, \"n_embd\": 4, \"n_head\": 1,"
                      " \"vocab_size\": 8, \"n_positions\": 8}";
    ck_assert(tu_write_file(p, cfg, strlen(cfg)) == 0);
    peft_load_options o = {.struct_size = sizeof o, .random_init = 1, .seed = 1};
    peft_base_model *m = NULL;
    int rc = peft_base_model_load_ex(dir, &o, &m, err, sizeof err);
    ck_assert_msg(rc == 0, "%s", err);
    ck_assert_uint_eq(m->n_params, 12u * 10000 + 4);
    ck_assert_uint_eq(m->n_sites, 4u * 10000);
    peft_param *q = peft_model_find_param(m, "transformer.h.7777.attn.c_attn.weight");
    ck_assert_ptr_nonnull(q);
    ck_assert_str_eq(q->name, "transformer.h.7777.attn.c_attn.weight");
    ck_assert_ptr_null(peft_model_find_param(m, "transformer.h.10000.attn.c_attn.weight"));
    peft_site *s = peft_model_find_site(m, "transformer.h.9999.mlp.c_proj");
    ck_assert_ptr_nonnull(s);
    ck_assert_str_eq(s->info.name, "transformer.h.9999.mlp.c_proj");
    ck_assert_ptr_null(peft_model_find_site(m, "transformer.h.9999.mlp"));
    peft_base_model_free(m);
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
    tcase_add_test(tc, many_layers_build_fast);
    suite_add_tcase(s, tc);
    return tu_run_suite(s) ? 1 : 0;
}
