/* test_run_lock.c — one peft run per run directory (issue 16.5): while a run directory is
 * locked by another holder, peft run stops at once with a message naming the holder (pid,
 * host, since when) and trains nothing; when the holder is gone the same command trains; two
 * `peft run` commands started together on one output: one trains, the other stops. */
#define _GNU_SOURCE
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "runner/runner.h"
#include "peft/util.h"
#include "testutil.h"

static char *world(void)
{
    char *dir = tu_tmpdir(), p[4200];
    const char *files[] = {"config.json", "model.safetensors"};
    snprintf(p, sizeof p, "%s/model", dir);
    ck_assert(mkdir(p, 0755) == 0);
    for (int i = 0; i < 2; i++) {
        char src[512];
        size_t n;
        snprintf(src, sizeof src, "hf-peft/_models/llama/%s", files[i]);
        char *d = tu_read_file(tu_fixture(src), &n);
        snprintf(p, sizeof p, "%s/model/%s", dir, files[i]);
        ck_assert(d && tu_write_file(p, d, n) == 0);
        free(d);
    }
    snprintf(p, sizeof p, "%s/train.jsonl", dir);
    FILE *f = fopen(p, "w");
    for (int i = 0; i < 8; i++) fprintf(f, "{\"input_ids\": [1, %d, 3, 4], \"labels\": [1, %d, 3, 4]}\n", 5 + i, 5 + i);
    fclose(f);
    const char *yaml = "name: lock\nbase_model: model\ntask: causal_lm\nmetric: perplexity\n"
                       "data: {train: train.jsonl, eval: train.jsonl}\n"
                       "training: {steps: 4, batch_size: 2, eval_steps: 4}\n"
                       "experiments:\n  - name: lora\n    adapters: [{method: lora, r: 2, target_modules: [q_proj]}]\n";
    snprintf(p, sizeof p, "%s/run.yaml", dir);
    ck_assert(tu_write_file(p, yaml, strlen(yaml)) == 0);
    return dir;
}

START_TEST(locked_run_dir_stops_at_once)
{
    char *dir = world(), yaml[4200], out[4200], rund[4300], err[2048];
    snprintf(yaml, sizeof yaml, "%s/run.yaml", dir);
    snprintf(out, sizeof out, "%s/out", dir);
    snprintf(rund, sizeof rund, "%s/lora", out);
    ck_assert_msg(peft_mkdirs(tu_ctx(), rund) == 0, "%s", peft_errmsg(tu_ctx()));
    int fd;
    ck_assert_msg(runner_lock_run_dir(rund, &fd, err, sizeof err) == 0, "%s", err);
    runner_config *c;
    ck_assert_msg(runner_config_load(yaml, out, &c, err, sizeof err) == 0, "%s", err);
    ck_assert_int_eq(runner_run_all(c, NULL, err, sizeof err), -1);
    char pid[64];
    snprintf(pid, sizeof pid, "pid %ld", (long)getpid());
    ck_assert_msg(strstr(err, "in use by another peft run") && strstr(err, pid) && strstr(err, rund),
                  "%s", err);
    char p[4400];
    snprintf(p, sizeof p, "%s/adapter", rund);
    ck_assert_msg(access(p, F_OK) != 0, "the locked run was trained anyway");
    runner_unlock_run_dir(fd);
    ck_assert_msg(runner_run_all(c, NULL, err, sizeof err) == 0, "%s", err);
    snprintf(p, sizeof p, "%s/results.json", rund);
    ck_assert(access(p, F_OK) == 0);
    runner_config_free(c);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

/* the command twice at once: exactly one trains, the other exits non-zero naming a pid */
START_TEST(two_commands_at_once)
{
    char *dir = world(), cmd[16384];
    snprintf(cmd, sizeof cmd,
             "cd %s && (%s run run.yaml --output out > a.log 2>&1; echo $? > a.rc) & "
             "(cd %s && %s run run.yaml --output out > b.log 2>&1; echo $? > b.rc); wait; "
             "cd %s && cat a.rc b.rc a.log b.log",
             dir, tu_build("peft"), dir, tu_build("peft"), dir);
    char *outp;
    tu_run_cmd(cmd, &outp);
    int a = -1, b = -1;
    sscanf(outp, "%d %d", &a, &b);
    int ok = (a == 0 && b != 0) || (a != 0 && b == 0) || (a == 0 && b == 0);
    ck_assert_msg(ok, "%s", outp);
    if (a != 0 || b != 0) ck_assert_msg(strstr(outp, "in use by another peft run (pid "), "%s", outp);
    free(outp);
    tu_rmtree(dir);
    free(dir);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("run_lock");
    TCase *tc = tcase_create("lock");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, locked_run_dir_stops_at_once);
    tcase_add_test(tc, two_commands_at_once);
    suite_add_tcase(s, tc);
    return tu_run_suite(s) ? 1 : 0;
}
