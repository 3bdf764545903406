/* test_dist.c — `peft run` spread over MPI ranks (mpirun --oversubscribe -n 2 and -n 3 on this
 * one machine): every run done once, each run's bytes and the summary (apart from timings) equal
 * to the single-process batch; a rank killed with SIGKILL mid-batch, then a rerun completes it to
 * the same bytes; data-parallel training on 1, 2 and 3 ranks gives the same adapter bytes. Every
 * process runs OpenBLAS on one thread (see docs/experiments.md, "Same bytes"). Skipped, with a
 * message, when mpirun is absent or peft was built without MPI. Open MPI's mpirun (as root: its
 * allow-run-as-root variables; --oversubscribe), else MPICH's mpiexec. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <jansson.h>
#include "runner/runner.h"
#include "testutil.h"
#include "world.h"

static char *tmp;
static void setup(void) { tmp = tu_tmpdir(); }
static void teardown(void) { tu_rmtree(tmp); free(tmp); }

/* Under AddressSanitizer (`make asan`) the ranks run without the leak check: Open MPI leaves
 * ~100 blocks unfreed at MPI_Finalize, most from components it has already unloaded (LSan
 * names them "<unknown module>", so no suppression can match them). The single-process runs
 * beside them keep the leak check, on the same code. */
#ifdef __SANITIZE_ADDRESS__
#define RANK_ENV "ASAN_OPTIONS=detect_leaks=0 "
#else
#define RANK_ENV ""
#endif

/* the MPI launcher line, or NULL (the reason in why) */
static const char *mpirun_or_skip(char *why, size_t n)
{
    char *out = NULL;
    if (tu_run_cmd("command -v mpirun 2>/dev/null", &out) != 0 || !out[0]) {
        free(out);
        snprintf(why, n, "mpirun not found (apt-get install openmpi-bin libopenmpi-dev, or make deps)");
        return NULL;
    }
    free(out);
    tu_run_peft(&out, "run --help");
    int without = strstr(out, "built without MPI") != NULL;
    free(out);
    if (without) {
        snprintf(why, n, "build/peft was built without MPI (install libopenmpi-dev and rebuild)");
        return NULL;
    }
    tu_run_cmd("mpirun --version 2>&1", &out);
    int open_mpi = strstr(out, "Open MPI") != NULL || strstr(out, "OpenRTE") != NULL;
    free(out);
    if (!open_mpi) /* MPICH's Hydra: the environment goes to every rank by default */
        return RANK_ENV "OPENBLAS_NUM_THREADS=1 mpiexec";
    return RANK_ENV "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMPI_MCA_rmaps_base_oversubscribe=1 "
           "mpirun --oversubscribe -x OPENBLAS_NUM_THREADS=1 -x PEFT_DEBUG_KILL_AT";
}

#define SKIP_WITHOUT_MPI(launcher)                                                   \
    char why_[256];                                                                  \
    const char *launcher = mpirun_or_skip(why_, sizeof why_);                        \
    if (!launcher) {                                                                 \
        printf("test_dist: SKIPPED: %s\n", why_);                                    \
        return;                                                                      \
    }

/* tmp/model (the fixture LLaMA), tmp/train.jsonl, tmp/eval.jsonl */
static void make_world(void)
{
    tu_world_llama(tmp);
    tu_world_counting_data(tmp);
}

static const char *BATCH_YAML =
    "name: batch\nbase_model: model\ntask: causal_lm\nmetric: exact_match\n"
    "data: {train: train.jsonl, eval: eval.jsonl}\n"
    "training: {steps: 6, batch_size: 4, learning_rate: 0.01, eval_steps: 3, save_steps: 2}\n"
    "seeds: [0, 1]\n"
    "experiments:\n"
    "  - name: lora\n    adapters: [{method: lora, r: [2, 4], lora_dropout: 0.1, target_modules: [q_proj, v_proj]}]\n"
    "  - name: ia3\n    training: {steps: 8}\n    adapters: [{method: ia3, target_modules: [k_proj]}]\n";
static const char *const RUNS[] = {"lora-r=2-seed=0", "lora-r=2-seed=1", "lora-r=4-seed=0", "lora-r=4-seed=1",
                                   "ia3-seed=0", "ia3-seed=1"};
#define N_RUNS 6

static char *write_yaml(const char *name, const char *text) { return tu_world_write(tmp, name, text); }

/* results.json without what depends on where and when it ran */
static char *results_sans_timings(const char *path)
{
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    ck_assert_msg(j, "%s: %s", path, je.text);
    const char *drop[] = {"wall_time_s", "tokens_per_s", "peak_rss_mb", "elapsed_s", "host", "rank", "world_size"};
    for (size_t i = 0; i < sizeof drop / sizeof *drop; i++) json_object_del(j, drop[i]);
    char *s = json_dumps(j, JSON_SORT_KEYS | JSON_COMPACT);
    json_decref(j);
    return s;
}

static void same_batch(const char *ref, const char *out)
{
    char a[1300], b[1300];
    for (int i = 0; i < N_RUNS; i++) {
        snprintf(a, sizeof a, "%s/%s/adapter/adapter_model.safetensors", ref, RUNS[i]);
        snprintf(b, sizeof b, "%s/%s/adapter/adapter_model.safetensors", out, RUNS[i]);
        tu_same_file(a, b);
        snprintf(a, sizeof a, "%s/%s/best/adapter_model.safetensors", ref, RUNS[i]);
        snprintf(b, sizeof b, "%s/%s/best/adapter_model.safetensors", out, RUNS[i]);
        tu_same_file(a, b);
        snprintf(a, sizeof a, "%s/%s/results.json", ref, RUNS[i]);
        snprintf(b, sizeof b, "%s/%s/results.json", out, RUNS[i]);
        char *x = results_sans_timings(a), *y = results_sans_timings(b);
        ck_assert_msg(!strcmp(x, y), "%s and %s differ beyond timings", a, b);
        free(x);
        free(y);
    }
    char *x = tu_summary_sans_timings(ref), *y = tu_summary_sans_timings(out);
    ck_assert_str_eq(x, y);
    free(x);
    free(y);
}

static int count(const char *hay, const char *needle)
{
    int n = 0;
    for (const char *p = strstr(hay, needle); p; p = strstr(p + 1, needle)) n++;
    return n;
}

START_TEST(test_batch_over_ranks)
{
    SKIP_WITHOUT_MPI(mpi);
    make_world();
    char *y = write_yaml("b.yaml", BATCH_YAML), *log = NULL, cmd[4096];
    snprintf(cmd, sizeof cmd, "OPENBLAS_NUM_THREADS=1 %s run %s --output %s/ref 2>&1", tu_build("peft"), y, tmp);
    int st0 = tu_run_cmd(cmd, &log);
    ck_assert_msg(WIFEXITED(st0) && WEXITSTATUS(st0) == 0, "%s", log);
    free(log);
    for (int n = 2; n <= 3; n++) {
        snprintf(cmd, sizeof cmd, "OPENBLAS_NUM_THREADS=1 %s -n %d %s run %s --output %s/n%d 2>&1", mpi, n,
                 tu_build("peft"), y, tmp, n);
        int st = tu_run_cmd(cmd, &log);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s\n%s", cmd, log);
        for (int i = 0; i < N_RUNS; i++) { /* each run trained once, by one rank */
            char done[256];
            snprintf(done, sizeof done, "] %s: done in", RUNS[i]);
            ck_assert_msg(count(log, done) == 1, "%s done %d times:\n%s", RUNS[i], count(log, done), log);
        }
        ck_assert_msg(count(log, "wrote ") == 1, "the summary is written once:\n%s", log);
        ck_assert_msg(strstr(log, "[rank 1] "), "rank 1 trained nothing:\n%s", log);
        free(log);
        char ref[1100], out[1100];
        snprintf(ref, sizeof ref, "%s/ref", tmp);
        snprintf(out, sizeof out, "%s/n%d", tmp, n);
        same_batch(ref, out);
    }
    free(y);
}
END_TEST

START_TEST(test_rank_killed_then_rerun)
{
    SKIP_WITHOUT_MPI(mpi);
    make_world();
    char *y = write_yaml("b.yaml", BATCH_YAML), *log = NULL, cmd[4096], p[1200];
    snprintf(cmd, sizeof cmd, "OPENBLAS_NUM_THREADS=1 %s run %s --output %s/ref 2>&1", tu_build("peft"), y, tmp);
    int st0 = tu_run_cmd(cmd, &log);
    ck_assert_msg(WIFEXITED(st0) && WEXITSTATUS(st0) == 0, "%s", log);
    free(log);
    /* the rank that trains lora-r=4-seed=0 dies (SIGKILL) after its update 3 (checkpoint at 2) */
    snprintf(cmd, sizeof cmd, "OPENBLAS_NUM_THREADS=1 PEFT_DEBUG_KILL_AT=lora-r=4-seed=0:3 %s -n 2 %s run %s "
             "--output %s/killed 2>&1", mpi, tu_build("peft"), y, tmp);
    int st = tu_run_cmd(cmd, &log);
    ck_assert_msg(!(WIFEXITED(st) && WEXITSTATUS(st) == 0), "the batch survived the kill:\n%s", log);
    free(log);
    snprintf(p, sizeof p, "%s/killed/lora-r=4-seed=0/results.json", tmp);
    ck_assert_msg(!runner_file_exists(p), "the killed run finished");
    snprintf(p, sizeof p, "%s/killed/lora-r=4-seed=0/checkpoint.safetensors", tmp);
    ck_assert_msg(runner_file_exists(p), "the killed run left no checkpoint");
    snprintf(p, sizeof p, "%s/killed/summary.md", tmp);
    ck_assert_msg(!runner_file_exists(p), "a summary of an unfinished batch");
    /* the rerun resumes the killed run from its checkpoint and completes the batch */
    snprintf(cmd, sizeof cmd, "OPENBLAS_NUM_THREADS=1 %s -n 2 %s run %s --output %s/killed 2>&1", mpi,
             tu_build("peft"), y, tmp);
    st = tu_run_cmd(cmd, &log);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s", log);
    ck_assert_msg(strstr(log, "lora-r=4-seed=0: resuming at step 2"), "%s", log);
    free(log);
    char ref[1100], out[1100];
    snprintf(ref, sizeof ref, "%s/ref", tmp);
    snprintf(out, sizeof out, "%s/killed", tmp);
    same_batch(ref, out);
    free(y);
}
END_TEST

static const char *DP_YAML =
    "name: dp\nbase_model: model\ntask: causal_lm\nseed: 2\n"
    "data: {train: train.jsonl, eval: eval.jsonl}\n"
    "training: {steps: 4, batch_size: 8, gradient_accumulation_steps: 2, learning_rate: 0.01, eval_steps: 2,\n"
    "           data_parallel: 4}\n"
    "experiments:\n"
    "  - name: dp\n    adapters: [{method: lora, r: 4, lora_dropout: 0.1, target_modules: [q_proj, v_proj]}]\n"
    "  - name: plain\n    training: {data_parallel: 1}\n    adapters: [{method: ia3, target_modules: [k_proj]}]\n";

START_TEST(test_data_parallel_ranks)
{
    SKIP_WITHOUT_MPI(mpi);
    make_world();
    char *y = write_yaml("dp.yaml", DP_YAML), *log = NULL, cmd[4096], a[1200], b[1200];
    snprintf(cmd, sizeof cmd, "OPENBLAS_NUM_THREADS=1 %s run %s --output %s/one 2>&1", tu_build("peft"), y, tmp);
    int st = tu_run_cmd(cmd, &log);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s", log);
    free(log);
    for (int n = 2; n <= 3; n++) { /* 4 shares: 2 + 2 on two ranks, 2 + 1 + 1 on three */
        snprintf(cmd, sizeof cmd, "%s -n %d %s run %s --output %s/n%d 2>&1", mpi, n, tu_build("peft"), y, tmp, n);
        st = tu_run_cmd(cmd, &log);
        ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s", log);
        char on[64];
        snprintf(on, sizeof on, "data parallel: 4 shares of 2 examples on %d ranks", n);
        ck_assert_msg(strstr(log, on), "%s", log);
        free(log);
        const char *files[] = {"dp/adapter/adapter_model.safetensors", "dp/best/adapter_model.safetensors",
                               "plain/adapter/adapter_model.safetensors"};
        for (int i = 0; i < 3; i++) {
            snprintf(a, sizeof a, "%s/one/%s", tmp, files[i]);
            snprintf(b, sizeof b, "%s/n%d/%s", tmp, n, files[i]);
            tu_same_file(a, b);
        }
        snprintf(a, sizeof a, "%s/one/dp/results.json", tmp);
        snprintf(b, sizeof b, "%s/n%d/dp/results.json", tmp, n);
        char *x = results_sans_timings(a), *z = results_sans_timings(b);
        ck_assert_msg(!strcmp(x, z), "%s and %s differ beyond timings", a, b);
        free(x);
        free(z);
    }
    free(y);
}
END_TEST

/* The MPI backend is a module that `peft run` loads only under a launcher or with PEFT_MPI=1
 * (runner/dist.c): a missing module, or a file that is not it, is an error naming the file, and
 * nothing runs. Without a launcher, peft does not load it (PEFT_DIST_MPI_MODULE is not read). */
START_TEST(test_mpi_module_errors)
{
    SKIP_WITHOUT_MPI(launcher);
    (void)launcher;
    make_world();
    char *yaml = write_yaml("batch.yaml", BATCH_YAML), cmd[4096], *log = NULL;
    const char *bad[2] = {"/nonexistent/libpeft_dist_mpi.so", tu_build("plugins/lora.so")};
    const char *want[2] = {"could not be loaded", "is not this peft's MPI module"};
    for (int i = 0; i < 2; i++) {
        snprintf(cmd, sizeof cmd, "cd %s && PEFT_MPI=1 PEFT_DIST_MPI_MODULE=%s OPENBLAS_NUM_THREADS=1 %s run %s "
                 "--output out%d 2>&1", tmp, bad[i], tu_build("peft"), yaml, i);
        int st = tu_run_cmd(cmd, &log);
        ck_assert_msg(st != 0, "exit 0 with a bad module:\n%s", log);
        ck_assert_msg(strstr(log, want[i]) && strstr(log, bad[i]), "%s: no '%s' naming the file:\n%s", bad[i],
                      want[i], log);
        snprintf(cmd, sizeof cmd, "%s/out%d/lora-r=2-seed=0/results.json", tmp, i);
        ck_assert_msg(!runner_file_exists(cmd), "a run ran although MPI could not start");
        free(log);
    }
    free(yaml);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("dist");
    TCase *t = tcase_create("dist");
    tcase_add_checked_fixture(t, setup, teardown);
    tcase_set_timeout(t, 600);
    tcase_add_test(t, test_batch_over_ranks);
    tcase_add_test(t, test_rank_killed_then_rerun);
    tcase_add_test(t, test_data_parallel_ranks);
    tcase_add_test(t, test_mpi_module_errors);
    suite_add_tcase(s, t);
    return tu_run_suite(s) ? 1 : 0;
}
