/* test_crash_safety.c — kill -9 at seeded random moments (issue 16): of `peft run` (a batch of
 * two runs with frequent checkpoints) and of `peft merge` (saving f32 and bf16 in turn). After
 * each kill every file present parses (safetensors, JSON), an adapter directory's config and
 * weights load together (one save, not a mix), a merged directory's config.json names the dtype
 * its model.safetensors holds; after all the kills a rerun finishes with adapters byte-identical
 * to an uninterrupted run. Seeded (the kill delays are a fixed sequence), bounded (~10-20 s). */
#define _GNU_SOURCE
#include <check.h>
#include <dirent.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "peft/graph.h"
#include "peft/peft.h"
#include "peft/safetensors.h"
#include "testutil.h"
#include "world.h"

static char *tmp;

static void world(void)
{
    char p[4200];
    tu_world_llama(tmp);
    snprintf(p, sizeof p, "%s/train.jsonl", tmp);
    FILE *f = fopen(p, "w");
    for (int i = 0; i < 24; i++) {
        fprintf(f, "{\"input_ids\": [1");
        for (int t = 0; t < 12; t++) fprintf(f, ", %d", 3 + (i * 5 + t * (1 + i % 3)) % 120);
        fprintf(f, "], \"labels\": [1");
        for (int t = 0; t < 12; t++) fprintf(f, ", %d", 3 + (i * 5 + t * (1 + i % 3)) % 120);
        fprintf(f, "]}\n");
    }
    fclose(f);
    const char *yaml =
        "name: crash\nbase_model: model\ntask: causal_lm\nmetric: perplexity\nseed: 5\n"
        "data: {train: train.jsonl, eval: train.jsonl, eval_examples: 8}\n"
        "training: {steps: 240, batch_size: 4, eval_steps: 60, save_steps: 7, learning_rate: 0.01}\n"
        "experiments:\n"
        "  - name: lora\n    adapters: [{method: lora, r: 4, target_modules: [q_proj, v_proj]}]\n"
        "  - name: mix\n    adapters:\n"
        "      - {method: lora, r: 2, target_modules: [q_proj]}\n"
        "      - {method: loha, name: second, r: 2, target_modules: [v_proj]}\n";
    free(tu_world_write(tmp, "run.yaml", yaml));
}

/* starts `peft ARGS...` in dir tmp (stdout/stderr to /dev/null), returns its pid */
static pid_t spawn(const char *const *args)
{
    fflush(NULL);
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        if (chdir(tmp) != 0) _exit(126);
        freopen("/dev/null", "w", stdout);
        freopen("/dev/null", "w", stderr);
        const char *argv[16];
        int a = 0;
        argv[a++] = tu_build("peft");
        for (; *args && a < 15; args++) argv[a++] = *args;
        argv[a] = NULL;
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    return pid;
}

static double mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

/* runs to the end or kills with SIGKILL after us microseconds; 1 when it was killed. A child
 * that ends first is reaped at once (polled every millisecond): the time limits of the
 * reference runs cost only what the runs take */
static int run_or_kill(const char *const *args, long us)
{
    pid_t pid = spawn(args);
    const double deadline = mono_us() + (double)us;
    const struct timespec tick = {0, 1000000};
    int st;
    while (mono_us() < deadline) {
        if (waitpid(pid, &st, WNOHANG) == pid) return 0; /* finished on its own */
        nanosleep(&tick, NULL);
    }
    int killed = kill(pid, SIGKILL) == 0;
    waitpid(pid, &st, 0);
    return killed && WIFSIGNALED(st);
}

static uint64_t lcg = 0x5eedULL;
static long next_delay(long lo, long hi)
{
    lcg = lcg * 6364136223846793005ULL + 1442695040888963407ULL;
    return lo + (long)((lcg >> 33) % (uint64_t)(hi - lo));
}

/* every .safetensors and .json under dir parses; adapter dirs (adapter_config.json) load onto
 * the base with their weights; returns the number of files checked */
static int check_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) return 0;
    int n = 0, adapter = 0;
    struct dirent *e;
    char p[4600];
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(p, &st) != 0) continue;
        if (S_ISDIR(st.st_mode)) {
            if (!strstr(e->d_name, ".tmp.")) n += check_tree(p); /* staging dirs are not read */
            continue;
        }
        if (strstr(e->d_name, ".tmp.")) continue;
        size_t len = strlen(e->d_name);
        if (len > 12 && !strcmp(e->d_name + len - 12, ".safetensors")) {
            peft_st_file *f;
            ck_assert_msg(peft_st_open(tu_ctx(), p, &f) == 0, "after a kill: %s", peft_errmsg(tu_ctx()));
            peft_st_close(f);
            n++;
        } else if (len > 5 && !strcmp(e->d_name + len - 5, ".json")) {
            json_error_t je;
            json_t *j = json_load_file(p, 0, &je);
            ck_assert_msg(j, "after a kill: %s does not parse: %s", p, je.text);
            json_decref(j);
            n++;
        }
        adapter |= !strcmp(e->d_name, "adapter_config.json");
    }
    closedir(d);
    if (adapter) { /* one save: the config's shapes are the weights' */
        peft_ctx *ctx = peft_ctx_new(0);
        peft_base_model *base;
        char mp[4200];
        snprintf(mp, sizeof mp, "%s/model", tmp);
        ck_assert(peft_load_base_model(ctx, mp, &base) == 0);
        peft_model *m;
        ck_assert_msg(peft_from_pretrained(ctx, base, dir, "default", 0, &m) == 0,
                      "after a kill, %s does not load as one save: %s", dir, peft_errmsg(ctx));
        peft_model_free(m);
        peft_ctx_free(ctx);
    }
    return n;
}

START_TEST(kill_peft_run)
{
    tmp = tu_tmpdir();
    world();
    const char *ref[] = {"run", "run.yaml", "--output", "ref", NULL};
    ck_assert_msg(!run_or_kill(ref, 60L * 1000000), "the reference run did not finish in 60 s");
    const char *out[] = {"run", "run.yaml", "--output", "out", NULL};
    char p[4200];
    snprintf(p, sizeof p, "%s/out", tmp);
    int kills = 0;
    for (int k = 0; k < 8; k++) { /* until the batch finishes between two kills */
        int killed = run_or_kill(out, next_delay(10000, 400000));
        kills += killed;
        check_tree(p);
        if (!killed) break;
    }
    ck_assert_msg(kills >= 1, "no run was killed (too fast a machine?)");
    ck_assert_msg(!run_or_kill(out, 60L * 1000000), "the rerun did not finish");
    const char *files[] = {"lora/adapter/adapter_model.safetensors", "mix/adapter/adapter_model.safetensors",
                           "mix/adapter/second/adapter_model.safetensors", "lora/best/adapter_model.safetensors",
                           "lora/adapter/adapter_config.json"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char a[4400], b[4400];
        snprintf(a, sizeof a, "%s/ref/%s", tmp, files[i]);
        snprintf(b, sizeof b, "%s/out/%s", tmp, files[i]);
        tu_same_file(a, b);
    }
    tu_rmtree(tmp);
    free(tmp);
}
END_TEST

/* the dtype config.json names is the one model.safetensors holds */
static void check_merged(const char *dir)
{
    char p[4400];
    snprintf(p, sizeof p, "%s/config.json", dir);
    json_t *c = json_load_file(p, 0, NULL);
    if (!c) return; /* no save has finished yet */
    const char *dt = json_string_value(json_object_get(c, "torch_dtype"));
    snprintf(p, sizeof p, "%s/model.safetensors", dir);
    peft_st_file *f;
    ck_assert_msg(peft_st_open(tu_ctx(), p, &f) == 0, "%s", peft_errmsg(tu_ctx()));
    int want = dt && !strcmp(dt, "bfloat16") ? PEFT_DTYPE_BF16 : PEFT_DTYPE_F32;
    ck_assert_msg(f->entries[0].dtype == want, "config.json says %s, model.safetensors holds dtype %d: two saves mixed",
                  dt ? dt : "?", (int)f->entries[0].dtype);
    peft_st_close(f);
    json_decref(c);
}

START_TEST(kill_peft_merge)
{
    tmp = tu_tmpdir();
    world();
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/merged", tmp);
    const char *adapter = tu_fixture("hf-peft/llama__lora_default/adapter");
    const char *f32[] = {"merge", "--model", "model", "--adapter", adapter, "--output", "merged", NULL};
    const char *bf16[] = {"merge", "--model", "model", "--adapter", adapter, "--output", "merged",
                          "--dtype", "bf16", NULL};
    ck_assert(!run_or_kill(f32, 30L * 1000000));
    check_merged(dir);
    for (int k = 0; k < 10; k++) {
        run_or_kill(k % 2 ? f32 : bf16, next_delay(5000, 400000));
        check_merged(dir);
        check_tree(dir);
    }
    tu_rmtree(tmp);
    free(tmp);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("crash_safety");
    TCase *tc = tcase_create("kill9");
    tcase_set_timeout(tc, 400); /* ~15 s on an idle 2-core machine; loaded CI machines are slower */
    tcase_add_test(tc, kill_peft_run);
    tcase_add_test(tc, kill_peft_merge);
    suite_add_tcase(s, tc);
    return tu_run_suite(s) ? 1 : 0;
}
