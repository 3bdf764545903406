/* test_plugin_check.c — Check suite for `peft plugin-check`, the conformance checker: it passes
 * the built-in LoRA plugin and the SDK template; it fails the fixture plugins of tests/plugins/
 * with the right check names (a forward that crashes: those checks fail with SIGSEGV and the
 * others still run; a wrong backward: the finite-difference check; ABI refusals: abi, the rest
 * skipped); its output is one line per check plus a summary, its exit status non-zero on any
 * failure; bad usage is refused. Runs build/peft on the built-in tiny GPT-2 (--no-fixtures
 * --arch gpt2). Away from the source tree, with nothing but the binary, every built-in plugin
 * passes on the built-in tiny models of all four architectures (LoHa, which refuses GPT-2's
 * Conv1D, on the other three); a --model directory without inputs.json gets made inputs (T5:
 * decoder ids); PEFT_FIXTURES or --fixtures pointing at nothing is an error. */
#define _GNU_SOURCE
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "testutil.h"

#define ASSERT_HAS(hay, needle) \
    ck_assert_msg(strstr((hay), (needle)) != NULL, "expected \"%s\" in:\n%s", (needle), (hay))

typedef struct {
    char out[65536];
    int status; /* exit status, or -1 */
} result;

/* runs `peft plugin-check <args>` (valgrind off unless with_valgrind); stdout+stderr in r */
static void run(result *r, const char *args, int with_valgrind)
{
    char cmd[8192];
    int k = snprintf(cmd, sizeof cmd, "%s %s plugin-check %s --no-fixtures --arch gpt2 2>&1",
                     with_valgrind ? "" : "PEFT_PLUGIN_CHECK_NO_VALGRIND=1", tu_build("peft"), args);
    ck_assert_int_lt(k, (int)sizeof cmd);
    char *out;
    const int ws = tu_run_cmd(cmd, &out);
    snprintf(r->out, sizeof r->out, "%s", out);
    free(out);
    r->status = WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
}

/* the line of check `name` (e.g. "inject [gpt2 (tiny)]"), or NULL */
static const char *line_of(const result *r, const char *status, const char *name)
{
    static char line[2048];
    const char *p = r->out;
    while (p && *p) {
        const char *e = strchr(p, '\n');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        snprintf(line, sizeof line, "%.*s", (int)len, p);
        char want[256];
        snprintf(want, sizeof want, "%s  %s", status, name);
        if (!strncmp(line, want, strlen(want)) &&
            (line[strlen(want)] == ' ' || line[strlen(want)] == 0))
            return line;
        p = e ? e + 1 : NULL;
    }
    return NULL;
}

#define ASSERT_LINE(r, status, name)                                                           \
    ck_assert_msg(line_of(&(r), (status), (name)) != NULL, "no \"%s  %s\" line in:\n%s", \
                  (status), (name), (r).out)

static const char *fixture_plugin(const char *name)
{
    static char buf[1024];
    snprintf(buf, sizeof buf, "%s", tu_build("tests/plugins/"));
    strncat(buf, name, sizeof buf - strlen(buf) - 1);
    strncat(buf, ".so", sizeof buf - strlen(buf) - 1);
    return buf;
}

static const char *const SITE_CHECKS[] = {"inject", "backward", "merge", "unload", "disabled",
                                          "save-load", "threads", NULL};

START_TEST(lora_passes)
{
    result r;
    run(&r, tu_build("plugins/lora.so"), 1);
    ck_assert_msg(r.status == 0, "exit %d:\n%s", r.status, r.out);
    ASSERT_LINE(r, "PASS", "abi");
    ASSERT_LINE(r, "PASS", "config-errors [gpt2 (tiny)]");
    for (int i = 0; SITE_CHECKS[i]; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s [gpt2 (tiny)]", SITE_CHECKS[i]);
        ASSERT_LINE(r, "PASS", name);
    }
    /* valgrind runs when it is on PATH (it is wherever `make valgrind` works) */
    ck_assert_msg(line_of(&r, "PASS", "valgrind [gpt2 (tiny)]") ||
                      line_of(&r, "SKIP", "valgrind [gpt2 (tiny)]"),
                  "no valgrind line:\n%s", r.out);
    ASSERT_HAS(r.out, " passed, 0 failed, ");
}
END_TEST

START_TEST(template_passes)
{
    result r;
    run(&r, tu_build("sdk/chanscale.so"), 0);
    ck_assert_msg(r.status == 0, "exit %d:\n%s", r.status, r.out);
    ASSERT_LINE(r, "PASS", "merge [gpt2 (tiny)]"); /* it declares PEFT_CAP_MERGEABLE */
    ASSERT_LINE(r, "SKIP", "valgrind [gpt2 (tiny)]");
    ASSERT_HAS(r.out, "10 passed, 0 failed, 1 skipped");
}
END_TEST

START_TEST(crash_in_forward_fails_those_checks_only)
{
    result r;
    run(&r, fixture_plugin("crash_forward"), 0);
    ck_assert_msg(r.status == 1, "exit %d:\n%s", r.status, r.out);
    ASSERT_LINE(r, "PASS", "abi");
    ASSERT_LINE(r, "PASS", "vtable [gpt2 (tiny)]");
    ASSERT_LINE(r, "PASS", "config-errors [gpt2 (tiny)]"); /* runs after the crashed inject */
    for (int i = 0; SITE_CHECKS[i]; i++) { /* every check that runs a forward: the signal */
        char name[64];
        snprintf(name, sizeof name, "%s [gpt2 (tiny)]", SITE_CHECKS[i]);
        ASSERT_LINE(r, "FAIL", name);
#ifdef __SANITIZE_ADDRESS__ /* AddressSanitizer reports the segfault itself and exits 1 */
        ASSERT_HAS(line_of(&r, "FAIL", name), "exited with status 1");
#else
        ASSERT_HAS(line_of(&r, "FAIL", name), "SIGSEGV");
#endif
    }
    ASSERT_HAS(r.out, "3 passed, 7 failed, 1 skipped");
}
END_TEST

START_TEST(wrong_gradient_fails_backward)
{
    result r;
    run(&r, fixture_plugin("wrong_grad"), 0);
    ck_assert_msg(r.status == 1, "exit %d:\n%s", r.status, r.out);
    ASSERT_LINE(r, "FAIL", "backward [gpt2 (tiny)]");
    ASSERT_HAS(line_of(&r, "FAIL", "backward [gpt2 (tiny)]"), "finite differences");
    ASSERT_HAS(line_of(&r, "FAIL", "backward [gpt2 (tiny)]"), "wronggrad_s");
    const char *others[] = {"inject", "merge", "unload", "disabled", "save-load", "threads"};
    for (size_t i = 0; i < sizeof others / sizeof others[0]; i++) {
        char name[64];
        snprintf(name, sizeof name, "%s [gpt2 (tiny)]", others[i]);
        ASSERT_LINE(r, "PASS", name);
    }
    ASSERT_HAS(r.out, "9 passed, 1 failed, 1 skipped");
}
END_TEST

START_TEST(correct_fixture_passes)
{
    result r;
    run(&r, fixture_plugin("check_ok"), 0);
    ck_assert_msg(r.status == 0, "exit %d:\n%s", r.status, r.out);
    ASSERT_HAS(r.out, "10 passed, 0 failed, 1 skipped");
}
END_TEST

/* the loader's refusals (tested on their own in test_registry) show as the abi check */
START_TEST(loader_refusals_fail_abi)
{
    const struct {
        const char *fixture, *says;
    } cases[] = {
        {"bad_major", "ABI major 2"},
        {"newer_minor", "needs ABI"},
        {"short_vtable", "bytes, at least"},
        {"no_entry", "exports no 'peft_plugin_init'"},
        {"init_fails", "cannot start: missing licence file"},
        {"missing_fn", "is NULL"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        result r;
        run(&r, fixture_plugin(cases[i].fixture), 0);
        ck_assert_msg(r.status == 1, "%s: exit %d:\n%s", cases[i].fixture, r.status, r.out);
        ASSERT_LINE(r, "FAIL", "abi");
        ASSERT_HAS(line_of(&r, "FAIL", "abi"), cases[i].says);
        ASSERT_LINE(r, "SKIP", "backward [gpt2 (tiny)]");
        ASSERT_HAS(line_of(&r, "SKIP", "backward [gpt2 (tiny)]"), "did not load");
        ASSERT_HAS(r.out, "0 passed, 1 failed, 10 skipped");
    }
}
END_TEST

/* a plugin that loads but breaks the vtable's declarations (no model_class) */
START_TEST(vtable_declarations)
{
    result r;
    run(&r, fixture_plugin("good_scale"), 0);
    ck_assert_msg(r.status == 1, "exit %d:\n%s", r.status, r.out);
    ASSERT_LINE(r, "PASS", "abi");
    ASSERT_LINE(r, "FAIL", "vtable [gpt2 (tiny)]");
    ASSERT_HAS(line_of(&r, "FAIL", "vtable [gpt2 (tiny)]"), "model_class");
    ASSERT_LINE(r, "PASS", "backward [gpt2 (tiny)]"); /* the rest still runs */
}
END_TEST

START_TEST(usage_errors)
{
    result r;
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "%s plugin-check 2>&1", tu_build("peft"));
    char *out;
    const int ws = tu_run_cmd(cmd, &out);
    snprintf(r.out, sizeof r.out, "%s", out);
    free(out);
    ck_assert_int_eq(WEXITSTATUS(ws), 2);
    ASSERT_HAS(r.out, "which plugin");

    char *dir = tu_tmpdir(), cfg[4200], args[8400];
    snprintf(cfg, sizeof cfg, "%s/bad.json", dir);
    ck_assert_int_eq(tu_write_file(cfg, "[1, 2", 5), 0);
    snprintf(args, sizeof args, "%s --config %s", tu_build("plugins/lora.so"), cfg);
    run(&r, args, 0);
    ck_assert_int_eq(r.status, 2);
    ASSERT_HAS(r.out, "bad.json");
    ASSERT_HAS(r.out, "expected a JSON object");

    run(&r, "/nonexistent/plugin.so", 0);
    ck_assert_int_eq(r.status, 1);
    ASSERT_HAS(line_of(&r, "FAIL", "abi"), "does not exist");
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* --config fields reach the plugin: a bad value there is the plugin's error, by field name */
START_TEST(config_option)
{
    char *dir = tu_tmpdir(), cfg[4200], args[8400];
    snprintf(cfg, sizeof cfg, "%s/c.json", dir);
    const char *text = "{\"init_scale\": \"big\"}";
    ck_assert_int_eq(tu_write_file(cfg, text, strlen(text)), 0);
    snprintf(args, sizeof args, "%s --config %s --only inject", tu_build("sdk/chanscale.so"), cfg);
    result r;
    run(&r, args, 0);
    ck_assert_msg(r.status == 1, "exit %d:\n%s", r.status, r.out);
    ASSERT_HAS(line_of(&r, "FAIL", "inject [gpt2 (tiny)]"), "init_scale");
    text = "{\"init_scale\": 0.25, \"target_modules\": [\"c_fc\"]}";
    ck_assert_int_eq(tu_write_file(cfg, text, strlen(text)), 0);
    run(&r, args, 0);
    ck_assert_msg(r.status == 0, "exit %d:\n%s", r.status, r.out);
    ASSERT_HAS(line_of(&r, "PASS", "inject [gpt2 (tiny)]"), "2 layers");
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* runs `cd <tmp> && env -u PEFT_FIXTURES peft plugin-check <args>` (valgrind off) */
static void run_elsewhere(result *r, const char *envs, const char *args)
{
    char *dir = tu_tmpdir(), cmd[16384];
    snprintf(cmd, sizeof cmd, "cd %s && env -u PEFT_FIXTURES PEFT_PLUGIN_CHECK_NO_VALGRIND=1 %s "
             "%s plugin-check %s 2>&1", dir, envs, tu_build("peft"), args);
    char *out;
    const int ws = tu_run_cmd(cmd, &out);
    snprintf(r->out, sizeof r->out, "%s", out);
    free(out);
    r->status = WIFEXITED(ws) ? WEXITSTATUS(ws) : -1;
    tu_rmtree(dir);
    free(dir);
}

/* issue 17: nothing beside the binary; every kind of layer a plugin accepts */
START_TEST(builtin_models_every_arch)
{
    const char *plugins[] = {"lora", "loha", "ia3", "prefix", "prompt"};
    for (size_t i = 0; i < sizeof plugins / sizeof plugins[0]; i++) {
        char so[1024];
        snprintf(so, sizeof so, "plugins/%s.so", plugins[i]);
        result r;
        run_elsewhere(&r, "", tu_build(so));
        ck_assert_msg(r.status == 0, "%s: exit %d:\n%s", plugins[i], r.status, r.out);
        const char *archs[] = {"llama", "bert", "t5"};
        for (size_t a = 0; a < 3; a++) {
            char name[64];
            snprintf(name, sizeof name, "backward [%s (tiny)]", archs[a]);
            ASSERT_LINE(r, "PASS", name);
        }
        if (strcmp(plugins[i], "loha")) ASSERT_LINE(r, "PASS", "inject [gpt2 (tiny)]");
        else ASSERT_HAS(line_of(&r, "SKIP", "inject [gpt2 (tiny)]"), "Conv1D");
    }
}
END_TEST

START_TEST(model_dir_without_inputs)
{
    char *dir = tu_tmpdir(), cmd[8192], args[8192];
    snprintf(cmd, sizeof cmd, "cp %s/config.json %s/model.safetensors %s/",
             tu_fixture("hf-peft/_models/t5"), tu_fixture("hf-peft/_models/t5"), dir);
    ck_assert_int_eq(system(cmd), 0);
    snprintf(args, sizeof args, "%s --model %s", tu_build("plugins/lora.so"), dir);
    result r;
    run_elsewhere(&r, "", args);
    ck_assert_msg(r.status == 0, "exit %d:\n%s", r.status, r.out);
    ck_assert_msg(line_of(&r, "PASS", "backward [t5]"), "%s", r.out);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

START_TEST(fixtures_that_point_nowhere)
{
    result r;
    run_elsewhere(&r, "PEFT_FIXTURES=/nonexistent/fixtures", tu_build("plugins/lora.so"));
    ck_assert_int_eq(r.status, 2);
    ASSERT_HAS(r.out, "/nonexistent/fixtures");
    char args[4096];
    snprintf(args, sizeof args, "%s --fixtures /nonexistent/f2", tu_build("plugins/lora.so"));
    run_elsewhere(&r, "", args);
    ck_assert_int_eq(r.status, 2);
    ASSERT_HAS(r.out, "/nonexistent/f2");
    snprintf(args, sizeof args, "%s --arch gpt3", tu_build("plugins/lora.so"));
    run_elsewhere(&r, "", args);
    ck_assert_int_eq(r.status, 2);
    ASSERT_HAS(r.out, "gpt3");
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("plugin_check");
    TCase *tc = tcase_create("checker");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, template_passes);
    tcase_add_test(tc, crash_in_forward_fails_those_checks_only);
    tcase_add_test(tc, wrong_gradient_fails_backward);
    tcase_add_test(tc, correct_fixture_passes);
    tcase_add_test(tc, loader_refusals_fail_abi);
    tcase_add_test(tc, vtable_declarations);
    tcase_add_test(tc, usage_errors);
    tcase_add_test(tc, config_option);
    tcase_add_test(tc, builtin_models_every_arch);
    tcase_add_test(tc, model_dir_without_inputs);
    tcase_add_test(tc, fixtures_that_point_nowhere);
    suite_add_tcase(s, tc);
    /* the run under valgrind, the longest, in a case of its own: `make check` runs it beside
     * the rest (TU_PART2) */
    TCase *p2 = tcase_create("valgrind");
    tcase_set_tags(p2, TU_PART2);
    tcase_set_timeout(p2, 300);
    tcase_add_test(p2, lora_passes);
    suite_add_tcase(s, p2);
    return s;
}

int main(void)
{
    int failed = tu_run_suite(suite());
    return failed ? 1 : 0;
}
