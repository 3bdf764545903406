/* test_cli.c — the `peft` command end to end: forward (logits, loss, grads, --merge) against
 * Python PEFT's fixture, info --json, train + reload, init-model, and clean error exits. */
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "peft/peft.h"
#include "peft/safetensors.h"
#include "testutil.h"

static char *tmp;

static double file_diff(const char *a, const char *ka, const char *b, const char *kb)
{
    peft_st_file *fa, *fb;
    ck_assert_msg(peft_st_open(tu_ctx(), a, &fa) == 0, "%s", peft_errmsg(tu_ctx()));
    ck_assert_msg(peft_st_open(tu_ctx(), b, &fb) == 0, "%s", peft_errmsg(tu_ctx()));
    const peft_st_entry *ea = peft_st_find(fa, ka), *eb = peft_st_find(fb, kb);
    ck_assert_msg(ea && eb, "missing %s or %s", ka, kb);
    ck_assert_int_eq(ea->nbytes, eb->nbytes);
    double d = tu_max_abs_diff(ea->data, eb->data, (int64_t)(ea->nbytes / 4));
    peft_st_close(fa);
    peft_st_close(fb);
    return d;
}

static void setup(void) { tmp = tu_tmpdir(); }
static void teardown(void) { tu_rmtree(tmp); free(tmp); }

#define CASE "hf-peft/gpt2__lora_default"

START_TEST(forward_matches_peft)
{
    char *out;
    int rc = tu_run_peft(&out, "forward --model %s --adapter %s --input %s --output %s/o.safetensors --grads %s/g.safetensors",
                         tu_fixture("hf-peft/_models/gpt2"), tu_fixture(CASE "/adapter"), tu_fixture(CASE "/inputs.json"), tmp, tmp);
    ck_assert_msg(rc == 0, "%s", out);
    ck_assert_msg(strstr(out, "loss 4.8797"), "%s", out);
    free(out);
    char o[4096], g[4096];
    snprintf(o, sizeof o, "%s/o.safetensors", tmp);
    snprintf(g, sizeof g, "%s/g.safetensors", tmp);
    ck_assert(file_diff(o, "logits", tu_fixture(CASE "/peft_logits.safetensors"), "logits") <= 1e-4);
    const char *keys[2] = {"transformer.h.0.attn.c_attn.lora_A", "transformer.h.1.attn.c_attn.lora_B"};
    for (int i = 0; i < 2; i++) {
        char saved[256], mem[256];
        snprintf(saved, sizeof saved, "base_model.model.%s.weight", keys[i]);
        snprintf(mem, sizeof mem, "base_model.model.%s.default.weight", keys[i]);
        ck_assert(file_diff(g, saved, tu_fixture(CASE "/grads.safetensors"), mem) <= 1e-4);
    }
    rc = tu_run_peft(&out, "forward --model %s --adapter %s --merge --input %s --output %s/m.safetensors",
                     tu_fixture("hf-peft/_models/gpt2"), tu_fixture(CASE "/adapter"), tu_fixture(CASE "/inputs.json"), tmp);
    ck_assert_msg(rc == 0, "%s", out);
    free(out);
    snprintf(o, sizeof o, "%s/m.safetensors", tmp);
    ck_assert(file_diff(o, "logits", tu_fixture(CASE "/merged_logits.safetensors"), "logits") <= 1e-4);
}
END_TEST

/* --grads on question answering: the loss comes from start_positions / end_positions */
START_TEST(forward_grads_question_answering)
{
#define QA "hf-peft/bert_qa__lora_default"
    char *out;
    int rc = tu_run_peft(&out, "forward --model %s --adapter %s --input %s --output %s/o.safetensors --grads %s/g.safetensors",
                         tu_fixture("hf-peft/_models/bert_qa"), tu_fixture(QA "/adapter"), tu_fixture(QA "/inputs.json"), tmp, tmp);
    ck_assert_msg(rc == 0, "%s", out);
    ck_assert_msg(strstr(out, "loss "), "%s", out);
    free(out);
    char g[4096];
    snprintf(g, sizeof g, "%s/g.safetensors", tmp);
    const char *keys[2] = {"bert.encoder.layer.0.attention.self.query.lora_A", "bert.encoder.layer.0.attention.self.value.lora_B"};
    for (int i = 0; i < 2; i++) {
        char saved[256], mem[256];
        snprintf(saved, sizeof saved, "base_model.model.%s.weight", keys[i]);
        snprintf(mem, sizeof mem, "base_model.model.%s.default.weight", keys[i]);
        const double d = file_diff(g, saved, tu_fixture(QA "/grads.safetensors"), mem);
        ck_assert_msg(d <= 1e-4, "%s: max diff %g", keys[i], d);
    }
#undef QA
}
END_TEST

START_TEST(info_json_is_peft_status)
{
    char *out;
    int rc = tu_run_peft(&out, "info --model %s --adapter %s --json 2>/dev/null", tu_fixture("hf-peft/_models/gpt2"),
                         tu_fixture(CASE "/adapter"));
    ck_assert_msg(rc == 0, "%s", out);
    json_t *j = json_loads(out, 0, NULL);
    ck_assert_msg(j, "not JSON: %s", out);
    json_t *want = json_load_file(tu_fixture(CASE "/model_status.json"), 0, NULL);
    json_t *ms = json_object_get(j, "model_status");
    /* loaded for inference: not trainable (PEFT's from_pretrained default) */
    ck_assert_int_eq(json_integer_value(json_object_get(ms, "total_params")),
                     json_integer_value(json_object_get(want, "total_params")));
    ck_assert(json_equal(json_object_get(ms, "peft_types"), json_object_get(want, "peft_types")));
    ck_assert_int_eq(json_array_size(json_object_get(j, "layer_status")), 2);
    json_decref(j);
    json_decref(want);
    free(out);
    rc = tu_run_peft(&out, "info --model %s --adapter %s", tu_fixture("hf-peft/_models/gpt2"), tu_fixture(CASE "/adapter"));
    ck_assert_msg(rc == 0 && strstr(out, "trainable params: 0 || all params: 32,640 || trainable%: 0.0000") &&
                      strstr(out, "transformer.h.0.attn.c_attn") && strstr(out, "default:lora"),
                  "%s", out);
    free(out);
}
END_TEST

/* the base's storage in peft info: dtypes, and a 4-bit base's quantization in bitsandbytes' terms */
START_TEST(info_reports_storage_and_quantization)
{
    char *out;
    int rc = tu_run_peft(&out, "info --model %s --quant nf4 --json 2>/dev/null", tu_fixture("hf-peft/_models/llama"));
    ck_assert_msg(rc == 0, "%s", out);
    json_t *j = json_loads(out, 0, NULL);
    ck_assert_msg(j, "not JSON: %s", out);
    json_t *q = json_object_get(json_object_get(j, "base"), "quantization");
    ck_assert_str_eq(json_string_value(json_object_get(q, "quant_type")), "nf4");
    ck_assert_int_eq(json_integer_value(json_object_get(q, "bits")), 4);
    ck_assert_int_eq(json_integer_value(json_object_get(q, "blocksize")), 64);
    ck_assert(json_is_true(json_object_get(q, "double_quant")));
    ck_assert_int_gt(json_integer_value(json_object_get(q, "layers")), 0);
    const double e = json_real_value(json_object_get(q, "relative_error"));
    ck_assert(e > 0.01 && e < 0.2); /* NF4 on Gaussian-like weights: ~0.09 */
    ck_assert(json_object_get(json_object_get(json_object_get(j, "base"), "dtypes"), "nf4"));
    json_decref(j);
    free(out);
    rc = tu_run_peft(&out, "info --model %s --quant int8", tu_fixture("hf-peft/_models/llama"));
    ck_assert_msg(rc == 0 && strstr(out, "quantization: int8 (bitsandbytes, 8-bit, per-row absmax)") &&
                      strstr(out, "int8: "), "%s", out);
    free(out);
    rc = tu_run_peft(&out, "info --model %s --json 2>/dev/null", tu_fixture("hf-peft/_models/llama"));
    ck_assert_msg(rc == 0 && (j = json_loads(out, 0, NULL)), "%s", out);
    ck_assert(json_is_null(json_object_get(json_object_get(j, "base"), "quantization")));
    ck_assert(json_object_get(json_object_get(json_object_get(j, "base"), "dtypes"), "f32"));
    json_decref(j);
    free(out);
}
END_TEST

START_TEST(train_then_reload)
{
    char data[4096], *out;
    snprintf(data, sizeof data, "%s/tokens.txt", tmp);
    FILE *f = fopen(data, "w");
    for (int i = 0; i < 400; i++) fprintf(f, "%d%c", (i * 7) % 128, i % 16 == 15 ? '\n' : ' ');
    fclose(f);
    int rc = tu_run_peft(&out, "train --model %s --data %s --output %s/ad --steps 5 --batch 2 --seq 8 --eval-every 5",
                         tu_fixture("hf-peft/_models/gpt2"), data, tmp);
    ck_assert_msg(rc == 0 && strstr(out, "step 5: train loss") && strstr(out, "saved the adapter"), "%s", out);
    free(out);
    rc = tu_run_peft(&out, "forward --model %s --adapter %s/ad --input %s --output %s/o.safetensors",
                     tu_fixture("hf-peft/_models/gpt2"), tmp, tu_fixture(CASE "/inputs.json"), tmp);
    ck_assert_msg(rc == 0, "%s", out);
    free(out);
}
END_TEST

START_TEST(merge_writes_a_model_dir)
{
    char *out;
    int rc = tu_run_peft(&out, "merge --model %s --adapter %s --output %s/merged --probe %s", tu_fixture("hf-peft/_models/gpt2"),
                         tu_fixture(CASE "/adapter"), tmp, tu_fixture(CASE "/inputs.json"));
    ck_assert_msg(rc == 0 && strstr(out, "largest |merged - unmerged|"), "%s", out);
    free(out);
    rc = tu_run_peft(&out, "forward --model %s/merged --input %s --output %s/o.safetensors", tmp, tu_fixture(CASE "/inputs.json"), tmp);
    ck_assert_msg(rc == 0, "%s", out);
    free(out);
    char o[4096];
    snprintf(o, sizeof o, "%s/o.safetensors", tmp);
    ck_assert(file_diff(o, "logits", tu_fixture(CASE "/merged_logits.safetensors"), "logits") <= 1e-4);
    /* bf16 output: loads, close to the f32 merge */
    rc = tu_run_peft(&out, "merge --model %s --adapter %s --output %s/m16 --dtype bf16", tu_fixture("hf-peft/_models/gpt2"),
                     tu_fixture(CASE "/adapter"), tmp);
    ck_assert_msg(rc == 0, "%s", out);
    free(out);
    rc = tu_run_peft(&out, "forward --model %s/m16 --input %s --output %s/o16.safetensors", tmp, tu_fixture(CASE "/inputs.json"), tmp);
    ck_assert_msg(rc == 0, "%s", out);
    free(out);
    char o16[4096];
    snprintf(o16, sizeof o16, "%s/o16.safetensors", tmp);
    ck_assert(file_diff(o16, "logits", o, "logits") <= 2e-2);
}
END_TEST

/* rows of a (2, T, V) logits file */
static double row_diff(const char *a, const char *b, int row)
{
    peft_st_file *fa, *fb;
    ck_assert(peft_st_open(tu_ctx(), a, &fa) == 0 && peft_st_open(tu_ctx(), b, &fb) == 0);
    const peft_st_entry *ea = peft_st_find(fa, "logits"), *eb = peft_st_find(fb, "logits");
    int64_t per = (int64_t)(ea->nbytes / 4 / 2);
    double d = tu_max_abs_diff((const float *)ea->data + row * per, (const float *)eb->data + row * per, per);
    peft_st_close(fa);
    peft_st_close(fb);
    return d;
}

START_TEST(row_adapters_and_active)
{
    char *out, o[4096];
    int rc = tu_run_peft(&out, "forward --model %s --adapter %s --adapter %s:r2 --row-adapters r2,__base__ --input %s --output %s/rows.st",
                         tu_fixture("hf-peft/_models/gpt2"), tu_fixture(CASE "/adapter"), tu_fixture("hf-peft/gpt2__lora_rslora/adapter"),
                         tu_fixture(CASE "/inputs.json"), tmp);
    ck_assert_msg(rc == 0, "%s", out);
    free(out);
    snprintf(o, sizeof o, "%s/rows.st", tmp);
    ck_assert(row_diff(o, tu_fixture("hf-peft/gpt2__lora_rslora/peft_logits.safetensors"), 0) <= 1e-4);
    ck_assert(row_diff(o, tu_fixture("hf-peft/_models/gpt2/base_logits.safetensors"), 1) <= 1e-4);
    rc = tu_run_peft(&out, "forward --model %s --adapter %s --adapter %s:r2 --active r2 --input %s --output %s/act.st",
                     tu_fixture("hf-peft/_models/gpt2"), tu_fixture(CASE "/adapter"), tu_fixture("hf-peft/gpt2__lora_rslora/adapter"),
                     tu_fixture(CASE "/inputs.json"), tmp);
    ck_assert_msg(rc == 0, "%s", out);
    free(out);
    snprintf(o, sizeof o, "%s/act.st", tmp);
    ck_assert(file_diff(o, "logits", tu_fixture("hf-peft/gpt2__lora_rslora/peft_logits.safetensors"), "logits") <= 1e-4);
    rc = tu_run_peft(&out, "forward --model %s --adapter %s --row-adapters default --input %s --output %s/x.st",
                     tu_fixture("hf-peft/_models/gpt2"), tu_fixture(CASE "/adapter"), tu_fixture(CASE "/inputs.json"), tmp);
    ck_assert_msg(rc == 1 && strstr(out, "1 names for a batch of 2 rows"), "%s", out);
    free(out);
}
END_TEST

START_TEST(init_model_runs)
{
    char *out;
    int rc = tu_run_peft(&out, "init-model --out %s/tiny --layers 1 --embd 16 --heads 2 --vocab 128 --positions 16", tmp);
    ck_assert_msg(rc == 0, "%s", out);
    free(out);
    rc = tu_run_peft(&out, "forward --model %s/tiny --input %s --output %s/o.safetensors", tmp, tu_fixture(CASE "/inputs.json"), tmp);
    ck_assert_msg(rc == 0 && strstr(out, "loss"), "%s", out);
    free(out);
}
END_TEST

START_TEST(errors_exit_cleanly)
{
    struct { const char *args; const char *msg; } cases[] = {
        {"forward --input x.json --output y", "--model"},
        {"frobnicate", "unknown command"},
        {"forward --model /nonexistent --input x --output y", "x"},
        {"info --model /nonexistent", "/nonexistent"},
        {"forward --bogus", "unknown option '--bogus'"},
        {"train --model m --data d --output o --eval-every 0", "--eval-every >= 1"},
        {"train --model m --data d --output o --batch 40000000000", "--batch"},
        {"forward --model", "--model needs a value"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char *out;
        int rc = tu_run_peft(&out, "%s", cases[i].args);
        ck_assert_msg(rc != 0 && rc < 128, "case %zu: rc %d", i, rc);
        ck_assert_msg(strstr(out, cases[i].msg), "case %zu: '%s' lacks '%s'", i, out, cases[i].msg);
        free(out);
    }
    char bad[4096], *out;
    snprintf(bad, sizeof bad, "%s/bad.json", tmp);
    tu_write_file(bad, "{\"input_ids\": [[1, 2], [3]]}", 28);
    int rc = tu_run_peft(&out, "forward --model %s --input %s --output %s/o", tu_fixture("hf-peft/_models/gpt2"), bad, tmp);
    ck_assert_msg(rc == 1 && strstr(out, "bad.json") && strstr(out, "input_ids"), "%s", out);
    free(out);
    rc = tu_run_peft(&out, "forward --model %s --adapter %s/none --input %s --output %s/o", tu_fixture("hf-peft/_models/gpt2"),
                     tmp, tu_fixture(CASE "/inputs.json"), tmp);
    ck_assert_msg(rc == 1 && strstr(out, "none"), "%s", out);
    free(out);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cli");
    TCase *tc = tcase_create("cli");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, forward_matches_peft);
    tcase_add_test(tc, forward_grads_question_answering);
    tcase_add_test(tc, info_json_is_peft_status);
    tcase_add_test(tc, info_reports_storage_and_quantization);
    tcase_add_test(tc, train_then_reload);
    tcase_add_test(tc, init_model_runs);
    tcase_add_test(tc, merge_writes_a_model_dir);
    tcase_add_test(tc, row_adapters_and_active);
    tcase_add_test(tc, errors_exit_cleanly);
    suite_add_tcase(s, tc);
    int failed = tu_run_suite(s);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
