/* test_cfg.c — Check suite for core/cfg.c: typed getters (missing keys, wrong types), setters,
 * PEFT's rank_pattern/alpha_pattern key lookup and the Python-flavoured regex full match. */
#include <check.h>
#include <sys/resource.h>
#include <time.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/io/cfg.h"
#include "testutil.h"

static json_t *load(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    ck_assert_msg(j != NULL, "bad test json: %s", e.text);
    return j;
}

static const char *CFG_TEXT =
    "{\"r\": 8, \"lora_alpha\": 16.5, \"fan_in_fan_out\": true, \"bias\": \"none\","
    " \"target_modules\": [\"c_attn\", \"c_proj\", 3], \"layers_to_transform\": [0, 2, \"x\"],"
    " \"modules_to_save\": null, \"rank_pattern\": {\"c_attn\": 16, \"h\\\\.1\\\\.mlp\\\\.c_fc\": 4},"
    " \"alpha_pattern\": {\"h.0.attn.c_attn\": 32, \"c_attn\": 2}, \"one\": 1}";

START_TEST(types)
{
    json_t *j = load(CFG_TEXT);
    peft_cfg c = {j};
    ck_assert_int_eq(peft_cfg_type(&c, "r"), PEFT_CFG_INT);
    ck_assert_int_eq(peft_cfg_type(&c, "lora_alpha"), PEFT_CFG_REAL);
    ck_assert_int_eq(peft_cfg_type(&c, "fan_in_fan_out"), PEFT_CFG_BOOL);
    ck_assert_int_eq(peft_cfg_type(&c, "bias"), PEFT_CFG_STRING);
    ck_assert_int_eq(peft_cfg_type(&c, "target_modules"), PEFT_CFG_LIST);
    ck_assert_int_eq(peft_cfg_type(&c, "rank_pattern"), PEFT_CFG_DICT);
    ck_assert_int_eq(peft_cfg_type(&c, "modules_to_save"), PEFT_CFG_NULL);
    ck_assert_int_eq(peft_cfg_type(&c, "nope"), PEFT_CFG_MISSING);
    ck_assert_int_eq(peft_cfg_type(NULL, "r"), PEFT_CFG_MISSING);
    ck_assert_int_eq(peft_cfg_type(&c, NULL), PEFT_CFG_MISSING);
    json_decref(j);
}
END_TEST

START_TEST(getters)
{
    json_t *j = load(CFG_TEXT);
    peft_cfg c = {j};
    int64_t i = -7;
    double d = -7;
    int b = -7;
    ck_assert_int_eq(peft_cfg_int(&c, "r", &i), 0);
    ck_assert_int_eq(i, 8);
    ck_assert_int_eq(peft_cfg_real(&c, "r", &d), 0); /* ints accepted as reals */
    ck_assert(d == 8.0);
    ck_assert_int_eq(peft_cfg_real(&c, "lora_alpha", &d), 0);
    ck_assert(d == 16.5);
    ck_assert_int_eq(peft_cfg_bool(&c, "fan_in_fan_out", &b), 0);
    ck_assert_int_eq(b, 1);
    ck_assert_str_eq(peft_cfg_str(&c, "bias"), "none");
    ck_assert_int_eq(peft_cfg_list_len(&c, "target_modules"), 3);
    ck_assert_str_eq(peft_cfg_list_str(&c, "target_modules", 1), "c_proj");
    ck_assert_int_eq(peft_cfg_list_int(&c, "layers_to_transform", 1, &i), 0);
    ck_assert_int_eq(i, 2);
    json_decref(j);
}
END_TEST

START_TEST(getters_wrong_type)
{
    json_t *j = load(CFG_TEXT);
    peft_cfg c = {j};
    int64_t i = -7;
    double d = -7;
    int b = -7;
    ck_assert_int_eq(peft_cfg_int(&c, "lora_alpha", &i), -1); /* a real is not an int */
    ck_assert_int_eq(peft_cfg_int(&c, "bias", &i), -1);
    ck_assert_int_eq(peft_cfg_int(&c, "nope", &i), -1);
    ck_assert_int_eq(i, -7); /* untouched on failure */
    ck_assert_int_eq(peft_cfg_real(&c, "bias", &d), -1);
    ck_assert_int_eq(peft_cfg_real(&c, "fan_in_fan_out", &d), -1);
    ck_assert_int_eq(peft_cfg_bool(&c, "one", &b), -1); /* 1 is not true */
    ck_assert_int_eq(peft_cfg_bool(&c, "bias", &b), -1);
    ck_assert_int_eq(peft_cfg_bool(&c, "modules_to_save", &b), -1);
    ck_assert_int_eq(b, -7);
    ck_assert_ptr_null(peft_cfg_str(&c, "r"));
    ck_assert_ptr_null(peft_cfg_str(&c, "nope"));
    ck_assert_int_eq(peft_cfg_list_len(&c, "bias"), -1);
    ck_assert_int_eq(peft_cfg_list_len(&c, "rank_pattern"), -1);
    ck_assert_int_eq(peft_cfg_list_len(&c, "nope"), -1);
    ck_assert_ptr_null(peft_cfg_list_str(&c, "target_modules", 2)); /* an int element */
    ck_assert_ptr_null(peft_cfg_list_str(&c, "target_modules", 3)); /* out of range */
    ck_assert_ptr_null(peft_cfg_list_str(&c, "target_modules", -1));
    ck_assert_ptr_null(peft_cfg_list_str(&c, "bias", 0));
    ck_assert_int_eq(peft_cfg_list_int(&c, "layers_to_transform", 2, &i), -1);
    ck_assert_int_eq(peft_cfg_list_int(&c, "layers_to_transform", 9, &i), -1);
    ck_assert_int_eq(peft_cfg_list_int(&c, "r", 0, &i), -1);
    /* no object at all */
    peft_cfg empty = {NULL};
    ck_assert_int_eq(peft_cfg_int(&empty, "r", &i), -1);
    ck_assert_int_eq(peft_cfg_int(NULL, "r", &i), -1);
    ck_assert_int_eq(peft_cfg_list_len(NULL, "x"), -1);
    json_t *arr = load("[1,2]");
    peft_cfg notobj = {arr};
    ck_assert_int_eq(peft_cfg_int(&notobj, "r", &i), -1);
    peft_cfg_set_int(&notobj, "r", 3); /* nowhere to write: ignored, no crash */
    ck_assert_int_eq(peft_cfg_set_json(&notobj, "r", "1"), -1);
    peft_cfg_set_int(&empty, "r", 3);
    json_decref(arr);
    json_decref(j);
}
END_TEST

START_TEST(setters)
{
    json_t *j = load("{\"r\": 8}");
    peft_cfg c = {j};
    int64_t i;
    double d;
    int b;
    peft_cfg_set_int(&c, "r", 32);
    ck_assert_int_eq(peft_cfg_int(&c, "r", &i), 0);
    ck_assert_int_eq(i, 32);
    peft_cfg_set_real(&c, "r", 0.25); /* replaces, changing the type */
    ck_assert_int_eq(peft_cfg_type(&c, "r"), PEFT_CFG_REAL);
    ck_assert_int_eq(peft_cfg_real(&c, "r", &d), 0);
    ck_assert(d == 0.25);
    peft_cfg_set_bool(&c, "fan_in_fan_out", 1);
    ck_assert_int_eq(peft_cfg_bool(&c, "fan_in_fan_out", &b), 0);
    ck_assert_int_eq(b, 1);
    peft_cfg_set_bool(&c, "fan_in_fan_out", 0);
    ck_assert_int_eq(peft_cfg_bool(&c, "fan_in_fan_out", &b), 0);
    ck_assert_int_eq(b, 0);
    peft_cfg_set_str(&c, "bias", "all");
    ck_assert_str_eq(peft_cfg_str(&c, "bias"), "all");
    peft_cfg_set_str(&c, "bias", NULL);
    ck_assert_int_eq(peft_cfg_type(&c, "bias"), PEFT_CFG_NULL);
    ck_assert_int_eq(peft_cfg_set_json(&c, "target_modules", "[\"q\",\"v\"]"), 0);
    ck_assert_int_eq(peft_cfg_list_len(&c, "target_modules"), 2);
    ck_assert_str_eq(peft_cfg_list_str(&c, "target_modules", 1), "v");
    ck_assert_int_eq(peft_cfg_set_json(&c, "rank_pattern", "{}"), 0);
    ck_assert_int_eq(peft_cfg_type(&c, "rank_pattern"), PEFT_CFG_DICT);
    ck_assert_int_eq(peft_cfg_set_json(&c, "x", "null"), 0);
    ck_assert_int_eq(peft_cfg_type(&c, "x"), PEFT_CFG_NULL);
    ck_assert_int_eq(peft_cfg_set_json(&c, "x", "7"), 0);
    ck_assert_int_eq(peft_cfg_type(&c, "x"), PEFT_CFG_INT);
    ck_assert_int_eq(peft_cfg_set_json(&c, "y", "[1,"), -1);
    ck_assert_int_eq(peft_cfg_type(&c, "y"), PEFT_CFG_MISSING);
    ck_assert_int_eq(peft_cfg_set_json(&c, "y", NULL), -1);
    json_decref(j);
}
END_TEST

START_TEST(pattern_lookup)
{
    json_t *j = load(CFG_TEXT);
    peft_cfg c = {j};
    double d = -1;
    ck_assert_int_eq(peft_cfg_pattern_real(&c, "rank_pattern", "transformer.h.0.attn.c_attn", &d),
                     1);
    ck_assert(d == 16);
    d = -1;
    ck_assert_int_eq(
        peft_cfg_pattern_real(&c, "rank_pattern", "transformer.h.0.attn.c_attn2", &d), 0);
    ck_assert(d == -1);
    /* needs a '.' before the key: "xc_attn" does not end in ".c_attn" */
    ck_assert_int_eq(peft_cfg_pattern_real(&c, "rank_pattern", "transformer.h.0.attn.xc_attn", &d),
                     0);
    /* a regex key (escaped dots) */
    ck_assert_int_eq(peft_cfg_pattern_real(&c, "rank_pattern", "transformer.h.1.mlp.c_fc", &d),
                     1);
    ck_assert(d == 4);
    ck_assert_int_eq(peft_cfg_pattern_real(&c, "rank_pattern", "transformer.h.2.mlp.c_fc", &d),
                     0);
    /* first matching key in insertion order wins: "h.0.attn.c_attn" precedes "c_attn" */
    ck_assert_int_eq(peft_cfg_pattern_real(&c, "alpha_pattern", "transformer.h.0.attn.c_attn", &d),
                     1);
    ck_assert(d == 32);
    ck_assert_int_eq(peft_cfg_pattern_real(&c, "alpha_pattern", "transformer.h.1.attn.c_attn", &d),
                     1);
    ck_assert(d == 2);
    /* wrong dict types, missing dicts */
    ck_assert_int_eq(peft_cfg_pattern_real(&c, "r", "transformer.h.0.attn.c_attn", &d), 0);
    ck_assert_int_eq(peft_cfg_pattern_real(&c, "nope", "transformer.h.0.attn.c_attn", &d), 0);
    ck_assert_int_eq(peft_cfg_pattern_real(NULL, "rank_pattern", "a.c_attn", &d), 0);
    json_decref(j);
}
END_TEST

START_TEST(pattern_exact_and_order)
{
    /* PEFT: the regex pass over all keys comes first, exact equality only as the fallback */
    json_t *j = load("{\"p\": {\"c_attn\": 1, \"a.c_attn\": 2, \"q\": \"str\", \"v|w\": 5,"
                     " \"bad(\": 6}}");
    peft_cfg c = {j};
    double d = 0;
    ck_assert_int_eq(peft_cfg_pattern_real(&c, "p", "c_attn", &d), 1); /* no dot: exact key */
    ck_assert(d == 1);
    ck_assert_int_eq(peft_cfg_pattern_real(&c, "p", "a.c_attn", &d), 1); /* regex "c_attn" */
    ck_assert(d == 1);
    ck_assert_int_eq(peft_cfg_pattern_real(&c, "p", "x.q", &d), 0); /* value not a number */
    /* raw insertion, Python precedence: ".*\.v|w$" matches "x.v" (and "w", but not "x.w") */
    ck_assert_int_eq(peft_cfg_pattern_real(&c, "p", "x.v", &d), 1);
    ck_assert(d == 5);
    ck_assert_int_eq(peft_cfg_pattern_real(&c, "p", "w", &d), 1);
    ck_assert_int_eq(peft_cfg_pattern_real(&c, "p", "x.w", &d), 0);
    /* an invalid regex key is skipped, not a crash */
    ck_assert_int_eq(peft_cfg_pattern_real(&c, "p", "x.bad(", &d), 0);
    json_decref(j);
}
END_TEST

START_TEST(regex_fullmatch)
{
    ck_assert_int_eq(peft_regex_fullmatch("abc", "abc"), 1);
    ck_assert_int_eq(peft_regex_fullmatch("abc", "abcd"), 0); /* full, not prefix */
    ck_assert_int_eq(peft_regex_fullmatch("bc", "abc"), 0);
    ck_assert_int_eq(peft_regex_fullmatch("a|abc", "abc"), 1); /* alternation grouped whole */
    ck_assert_int_eq(peft_regex_fullmatch(".*\\.h\\.\\d+\\.attn\\.c_attn",
                                          "transformer.h.11.attn.c_attn"),
                     1);
    ck_assert_int_eq(peft_regex_fullmatch(".*\\.h\\.\\d+\\.attn\\.c_attn",
                                          "transformer.h.x.attn.c_attn"),
                     0);
    ck_assert_int_eq(peft_regex_fullmatch(".*\\.(q|v)_proj", "model.layers.0.self_attn.q_proj"),
                     1);
    ck_assert_int_eq(
        peft_regex_fullmatch(".*\\.(?:q|v)_proj", "model.layers.0.self_attn.v_proj"), 1);
    ck_assert_int_eq(
        peft_regex_fullmatch(".*\\.(?:q|v)_proj", "model.layers.0.self_attn.k_proj"), 0);
    ck_assert_int_eq(peft_regex_fullmatch("\\w+\\s\\S\\D\\W", "ab_9 x.-"), 1);
    ck_assert_int_eq(peft_regex_fullmatch("\\w+", "a-b"), 0);
    ck_assert_int_eq(peft_regex_fullmatch("[\\d.]+", "1.2.3"), 1);
    ck_assert_int_eq(peft_regex_fullmatch("[\\d.]+", "1.a"), 0);
    ck_assert_int_eq(peft_regex_fullmatch("[^\\]x]", "]"), 0);
    ck_assert_int_eq(peft_regex_fullmatch("[^\\]x]", "y"), 1);
    ck_assert_int_eq(peft_regex_fullmatch("[a\\-z]+", "a-z"), 1);
    ck_assert_int_eq(peft_regex_fullmatch("[a\\-z]+", "b"), 0);
    ck_assert_int_eq(peft_regex_fullmatch("[\\^]", "^"), 1);
    ck_assert_int_eq(peft_regex_fullmatch("a.*?b", "axxb"), 1); /* lazy == greedy here */
    ck_assert_int_eq(peft_regex_fullmatch("h\\.\\d{1,2}", "h.12"), 1);
    ck_assert_int_eq(peft_regex_fullmatch("h\\.\\d{1,2}", "h.123"), 0);
    ck_assert_int_eq(peft_regex_fullmatch("(?P<n>ab)+", "abab"), 1);
    /* invalid */
    ck_assert_int_eq(peft_regex_fullmatch("(abc", "abc"), -1);
    ck_assert_int_eq(peft_regex_fullmatch("[abc", "abc"), -1);
    ck_assert_int_eq(peft_regex_fullmatch("a\\", "a"), -1);
    /* PCRE2: look-around, \b and back-references work as in Python */
    ck_assert_int_eq(peft_regex_fullmatch("(?=a)a", "a"), 1);
    ck_assert_int_eq(peft_regex_fullmatch("\\bq", "q"), 1);
    ck_assert_int_eq(peft_regex_fullmatch(".*\\.(?!k_proj)\\w+_proj", "model.layers.0.self_attn.q_proj"), 1);
    ck_assert_int_eq(peft_regex_fullmatch(".*\\.(?!k_proj)\\w+_proj", "model.layers.0.self_attn.k_proj"), 0);
    ck_assert_int_eq(peft_regex_fullmatch(".*(?<!mlp)\\.(q|v)_proj", "m.attn.q_proj"), 1);
    ck_assert_int_eq(peft_regex_fullmatch(".*(?<!mlp)\\.(q|v)_proj", "m.mlp.q_proj"), 0);
    ck_assert_int_eq(peft_regex_fullmatch("(\\w)\\1", "aa"), 1);
    ck_assert_int_eq(peft_regex_fullmatch("(?P<x>a)(?P=x)", "aa"), 1);
    ck_assert_int_eq(peft_regex_fullmatch(NULL, "q"), -1);
    ck_assert_int_eq(peft_regex_fullmatch("", ""), 1);
    ck_assert_int_eq(peft_regex_fullmatch("", "a"), 0);
}
END_TEST

/* layers_pattern: PEFT's re.match(rf".*\.{pattern}\.(\d+)\.", name).group(1) */
START_TEST(layer_index)
{
    ck_assert_int_eq(peft_regex_layer_index("h", "transformer.h.11.attn.c_attn"), 11);
    ck_assert_int_eq(peft_regex_layer_index(NULL, "model.layers.3.mlp.up_proj"), 3);
    ck_assert_int_eq(peft_regex_layer_index("(?:h|layers)", "model.layers.2.self_attn.q_proj"), 2);
    ck_assert_int_eq(peft_regex_layer_index("model\\.layers", "model.model.layers.7.self_attn.q_proj"), 7);
    ck_assert_int_eq(peft_regex_layer_index("model\\.layers", "model.layers.7.self_attn.q_proj"), -1); /* no "." before */
    ck_assert_int_eq(peft_regex_layer_index("blocks", "model.layers.2.self_attn.q_proj"), -1);
    ck_assert_int_eq(peft_regex_layer_index("h", "transformer.h.x.attn.c_attn"), -1);
    /* greedy .*: the last block of an encoder-decoder name */
    ck_assert_int_eq(peft_regex_layer_index(NULL, "encoder.block.1.layer.0.SelfAttention.q"), 0);
    ck_assert_int_eq(peft_regex_layer_index("block", "encoder.block.1.layer.0.SelfAttention.q"), 1);
    ck_assert_int_eq(peft_regex_layer_index("(", "transformer.h.1.attn"), -1); /* invalid */
}
END_TEST

/* issue 16: a 40-byte pattern cost 35 s and 1.2 GB in glibc's regcomp. Now refused (PCRE2's
 * compiled-size limit) or bounded (match limits) at once, with a message. */
START_TEST(regex_bounded)
{
    struct rusage r0, r1;
    struct timespec t0, t1;
    char err[512];
    getrusage(RUSAGE_SELF, &r0);
    clock_gettime(CLOCK_MONOTONIC, &t0);
    ck_assert_int_eq(peft_regex_fullmatch_err("((a{1,100}){1,100}){1,100}", "aaaa", err, sizeof err), -1);
    ck_assert_msg(strstr(err, "too large"), "%s", err);
    /* catastrophic backtracking on a long name: the match limit stops it */
    char name[200];
    memset(name, 'a', sizeof name - 2);
    name[sizeof name - 3] = 'b'; /* "aaa...abc": 'b' is there, so the search cannot be skipped */
    name[sizeof name - 2] = 'c';
    name[sizeof name - 1] = 0;
    ck_assert_int_eq(peft_regex_fullmatch_err("(a+)+b", name, err, sizeof err), -1);
    ck_assert_msg(strstr(err, "limit"), "%s", err);
    ck_assert_int_eq(peft_regex_fullmatch_err("(a|aa)*(b|c)*\\1d", name, err, sizeof err) <= 0, 1);
    /* a pattern over 4 KiB */
    char *big = malloc(5000);
    memset(big, 'a', 4999);
    big[4999] = 0;
    ck_assert_int_eq(peft_regex_fullmatch_err(big, "a", err, sizeof err), -1);
    ck_assert_msg(strstr(err, "limit"), "%s", err);
    free(big);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    getrusage(RUSAGE_SELF, &r1);
    double s = (double)(t1.tv_sec - t0.tv_sec) + 1e-9 * (double)(t1.tv_nsec - t0.tv_nsec);
    double cpu = (double)(r1.ru_utime.tv_sec - r0.ru_utime.tv_sec + r1.ru_stime.tv_sec -
                          r0.ru_stime.tv_sec) +
                 1e-6 * (double)(r1.ru_utime.tv_usec - r0.ru_utime.tv_usec + r1.ru_stime.tv_usec -
                                 r0.ru_stime.tv_usec);
    long kb = r1.ru_maxrss - r0.ru_maxrss;
    fprintf(stderr, "regex limits: refused/bounded in %.3f s (%.3f CPU s), max RSS grew by %ld KiB\n",
            s, cpu, kb);
    /* CPU time, not wall time (a loaded CI machine stretches the latter), with a wide margin:
     * the defect took 35 s; bounded, it takes ~0.07 s */
    ck_assert_msg(cpu < 5.0, "took %.3f CPU s", cpu);
    ck_assert_msg(kb < 64 * 1024, "RSS grew by %ld KiB", kb);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cfg");
    TCase *tc = tcase_create("cfg");
    tcase_add_test(tc, types);
    tcase_add_test(tc, getters);
    tcase_add_test(tc, getters_wrong_type);
    tcase_add_test(tc, setters);
    tcase_add_test(tc, pattern_lookup);
    tcase_add_test(tc, pattern_exact_and_order);
    tcase_add_test(tc, regex_fullmatch);
    tcase_add_test(tc, regex_bounded);
    tcase_add_test(tc, layer_index);
    suite_add_tcase(s, tc);
    int failed = tu_run_suite(s);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
