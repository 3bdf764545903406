/* test_atomic_save.c — multi-file saves are atomic as a set (issue 16.4): save_pretrained and a
 * merged model's save stage every file in "<dir>.tmp.<pid>" and swap it in, so the directory
 * always holds one save's files; other entries of the directory (a user's file, another
 * adapter's folder) are kept; leftovers of killed saves (staging dirs and "*.tmp.<pid>" files
 * of processes that are gone) are removed by the next save; a failed save leaves the old set. */
#define _GNU_SOURCE
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/io/dirsave.h"
#include "peft/model_save.h"
#include "peft/peft.h"
#include "peft/safetensors.h"
#include "peft/util.h"
#include "testutil.h"

static int exists(const char *dir, const char *name)
{
    char p[4300];
    struct stat st;
    return peft_path_join(p, sizeof p, dir, name) == 0 && stat(p, &st) == 0;
}

static void touch(const char *dir, const char *name, const char *text)
{
    char p[4300];
    ck_assert_int_eq(peft_path_join(p, sizeof p, dir, name), 0);
    ck_assert(tu_write_file(p, text, strlen(text)) == 0);
}

/* a pid that no process has now (a child that has exited and been reaped) */
static long dead_pid(void)
{
    pid_t p = fork();
    if (p == 0) _exit(0);
    waitpid(p, NULL, 0);
    return (long)p;
}

static peft_model *lora_model(peft_ctx *ctx, int r)
{
    peft_base_model *base;
    ck_assert(peft_load_base_model(ctx, tu_fixture("hf-peft/_models/gpt2"), &base) == 0);
    char cfg[256];
    snprintf(cfg, sizeof cfg, "{\"peft_type\": \"LORA\", \"r\": %d, \"target_modules\": [\"c_attn\"]}", r);
    peft_model *m;
    ck_assert_msg(peft_get_peft_model(ctx, base, cfg, "default", 0, &m) == 0, "%s", peft_errmsg(ctx));
    return m;
}

START_TEST(save_pretrained_swaps_the_set)
{
    char *tmp = tu_tmpdir(), dir[4200], p[4400];
    snprintf(dir, sizeof dir, "%s/adapter", tmp);
    peft_ctx *ctx = peft_ctx_new(0);
    peft_model *m = lora_model(ctx, 2);
    ck_assert(peft_save_pretrained(m, dir, NULL, 0, 1) == 0);
    ck_assert(exists(dir, "adapter_config.json") && exists(dir, "adapter_model.safetensors"));
    /* a user's file and the leftovers of a killed save */
    touch(dir, "notes.txt", "mine");
    long dp = dead_pid();
    char name[128];
    snprintf(name, sizeof name, "adapter_model.safetensors.tmp.%ld", dp);
    touch(dir, name, "half a file");
    snprintf(p, sizeof p, "%s.tmp.%ld", dir, dp);
    ck_assert(mkdir(p, 0755) == 0);
    touch(p, "adapter_model.safetensors", "half");
    /* a live process's staging dir is not touched (our parent stands for one) */
    char live[4400];
    snprintf(live, sizeof live, "%s.tmp.%ld", dir, (long)getppid());
    ck_assert(mkdir(live, 0755) == 0);

    peft_model_free(m);
    m = lora_model(ctx, 4);
    ck_assert(peft_save_pretrained(m, dir, NULL, 0, 1) == 0);
    ck_assert_msg(!exists(dir, name), "the leftover %s stays", name);
    ck_assert_msg(access(p, F_OK) != 0, "the dead save's staging dir stays");
    ck_assert_msg(access(live, F_OK) == 0, "a live save's staging dir was removed");
    ck_assert_msg(exists(dir, "notes.txt"), "the user's file is gone");
    char own[4400];
    snprintf(own, sizeof own, "%s.tmp.%ld", dir, (long)getpid());
    ck_assert_msg(access(own, F_OK) != 0, "the staging dir stays after the save");
    /* the new set: r = 4 in both files */
    snprintf(p, sizeof p, "%s/adapter_config.json", dir);
    json_t *c = json_load_file(p, 0, NULL);
    ck_assert_int_eq(json_integer_value(json_object_get(c, "r")), 4);
    json_decref(c);
    snprintf(p, sizeof p, "%s/adapter_model.safetensors", dir);
    peft_st_file *f;
    ck_assert_msg(peft_st_open(tu_ctx(), p, &f) == 0, "%s", peft_errmsg(tu_ctx()));
    ck_assert_int_eq(f->entries[0].shape[0] == 4 || f->entries[0].shape[1] == 4, 1);
    peft_st_close(f);
    rmdir(live);
    peft_model_free(m);
    peft_ctx_free(ctx);
    tu_rmtree(tmp);
    free(tmp);
}
END_TEST

/* a second adapter's folder lands beside the first's files, replacing a stray file of that
 * name; the default adapter's bytes are the same save's */
START_TEST(named_adapter_folders)
{
    char *tmp = tu_tmpdir(), dir[4200], p[4400];
    snprintf(dir, sizeof dir, "%s/out", tmp);
    peft_ctx *ctx = peft_ctx_new(0);
    peft_model *m = lora_model(ctx, 2);
    ck_assert(peft_save_pretrained(m, dir, NULL, 0, 1) == 0);
    snprintf(p, sizeof p, "%s/adapter_model.safetensors", dir);
    size_t n0;
    char *before = tu_read_file(p, &n0);
    ck_assert(peft_add_adapter(m, "second",
                               "{\"peft_type\": \"LORA\", \"r\": 3, \"target_modules\": [\"c_attn\"]}") == 0);
    char stage_file[4400];
    snprintf(stage_file, sizeof stage_file, "%s.tmp.%ld", dir, (long)getpid());
    touch(dir, "second", "not a folder");
    ck_assert(peft_save_pretrained(m, dir, NULL, 0, 1) == 0); /* the new folder wins over it */
    ck_assert(exists(dir, "second/adapter_config.json"));
    size_t n1;
    char *after = tu_read_file(p, &n1);
    ck_assert(after && n1 == n0 && memcmp(before, after, n0) == 0); /* default unchanged */
    free(before);
    free(after);
    ck_assert(access(stage_file, F_OK) != 0);
    peft_model_free(m);
    peft_ctx_free(ctx);
    tu_rmtree(tmp);
    free(tmp);
}
END_TEST

START_TEST(merged_model_save_is_one_set)
{
    char *tmp = tu_tmpdir(), dir[4200], p[4400];
    snprintf(dir, sizeof dir, "%s/merged", tmp);
    peft_ctx *ctx = peft_ctx_new(0);
    peft_base_model *base;
    ck_assert(peft_load_base_model(ctx, tu_fixture("hf-peft/_models/gpt2"), &base) == 0);
    ck_assert_msg(peft_base_model_save(ctx, base, dir, PEFT_DTYPE_F32) == 0, "%s", peft_errmsg(ctx));
    long dp = dead_pid();
    char name[128];
    snprintf(name, sizeof name, "model.safetensors.tmp.%ld", dp);
    touch(dir, name, "250 MB in real life");
    ck_assert_msg(peft_base_model_save(ctx, base, dir, PEFT_DTYPE_BF16) == 0, "%s", peft_errmsg(ctx));
    ck_assert(!exists(dir, name));
    snprintf(p, sizeof p, "%s/config.json", dir);
    json_t *c = json_load_file(p, 0, NULL);
    ck_assert_str_eq(json_string_value(json_object_get(c, "torch_dtype")), "bfloat16");
    json_decref(c);
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    peft_st_file *f;
    ck_assert(peft_st_open(tu_ctx(), p, &f) == 0);
    ck_assert_int_eq(f->entries[0].dtype, PEFT_DTYPE_BF16);
    peft_st_close(f);
    peft_base_model_free(base);
    peft_ctx_free(ctx);
    tu_rmtree(tmp);
    free(tmp);
}
END_TEST

START_TEST(dirsave_refuses_bad_targets)
{
    peft_dirsave ds;
    char err[512];
    ck_assert(peft_dirsave_begin(&ds, "", err, sizeof err) == -1);
    ck_assert(peft_dirsave_begin(&ds, "..", err, sizeof err) == -1);
    char *tmp = tu_tmpdir(), f[4200];
    snprintf(f, sizeof f, "%s/file", tmp);
    ck_assert(tu_write_file(f, "x", 1) == 0);
    ck_assert(peft_dirsave_begin(&ds, f, err, sizeof err) == 0);
    ck_assert(peft_dirsave_commit(&ds, err, sizeof err) == -1);
    ck_assert_msg(strstr(err, "not a directory"), "%s", err);
    ck_assert(access(ds.stage, F_OK) != 0 || !ds.stage[0]);
    tu_rmtree(tmp);
    free(tmp);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("atomic_save");
    TCase *tc = tcase_create("sets");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, save_pretrained_swaps_the_set);
    tcase_add_test(tc, named_adapter_folders);
    tcase_add_test(tc, merged_model_save_is_one_set);
    tcase_add_test(tc, dirsave_refuses_bad_targets);
    suite_add_tcase(s, tc);
    return tu_run_suite(s) ? 1 : 0;
}
