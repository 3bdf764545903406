/* cmd_run.c — `peft run EXPERIMENTS.yaml`: checks the whole file (schema, plugins, adapter
 * configs, data; with --set overrides) before anything runs, then trains every run not yet
 * finished and prints the summary. Ctrl-C (SIGINT) or SIGTERM makes the current run checkpoint
 * and stop; running the same command again resumes it (a second Ctrl-C stops at once: the files
 * stay whole either way). Under mpirun/srun the runs are spread over the ranks (runner/dist.h);
 * --shard I/N (or a Slurm job array's SLURM_ARRAY_TASK_ID/COUNT) runs one deterministic share,
 * --summarize writes the summary from the results on disk. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli.h"
#include "runner/dist.h"
#include "runner/runner.h"

static const char *HELP =
    "usage: peft run EXPERIMENTS.yaml [options]\n\n"
    "Trains every experiment of the file (each sweep point is a run), evaluates, keeps the best\n"
    "adapter, and writes per run OUTPUT/<run>/{adapter,best,results.json,loss.svg} and per batch\n"
    "OUTPUT/{summary.md,summary.csv,loss_curves.svg,metric_vs_params.svg}. Finished runs are kept;\n"
    "an interrupted run resumes from its last checkpoint. Schema: docs/experiments.md.\n\n"
    "options:\n"
    "  --output DIR   write here instead of the file's output_dir\n"
    "  --check        check the file (and data, plugins, adapter configs) and list the runs; train nothing\n"
    "  --only TEXT    run only the runs whose name contains TEXT\n"
    "  --fresh        ignore finished runs and checkpoints: start every run over\n"
    "  --set KEY=VAL  override a setting of the file (repeatable), checked as the file is:\n"
    "                 --set training.learning_rate=1e-3 --set experiments.lora.adapters.0.r=[4,8]\n"
    "  --shard I/N    run only share I (0-based) of N of the runs (a Slurm job array: by default\n"
    "                 SLURM_ARRAY_TASK_ID / SLURM_ARRAY_TASK_COUNT); the shard that finishes last\n"
    "                 writes the summary\n"
    "  --summarize    train nothing: write the summary from the results on disk (every run finished)\n"
    "  --no-progress  plain log lines even on a terminal\n\n"
    "Under `mpirun -n N` (or `srun --mpi=pmix`) the runs are spread over the N processes: rank 0\n"
    "hands out the longest run first to whichever rank is free; runs with training.data_parallel\n"
    "are trained by all ranks together. Without a launcher it is one plain process.\n";

static volatile sig_atomic_t stop_requested;

static void on_signal(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void install_handlers(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sa.sa_flags = SA_RESETHAND; /* a second signal takes its default action: stop at once */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

static void list_runs(const runner_config *c)
{
    printf("%s: %d run%s (task %s, metric %s), output %s\n", c->path, c->n_runs, c->n_runs == 1 ? "" : "s",
           runner_task_name(c->task), runner_metric_name(c->metric), c->output_dir);
    for (int i = 0; i < c->n_runs; i++) {
        const runner_run *r = &c->runs[i];
        printf("  %-32s", r->name);
        for (int j = 0; j < r->n_adapters; j++) printf("%s%s", j ? " + " : " ", r->adapters[j].method);
        printf("  (%lld steps, lr %g, seed %llu)\n", (long long)r->train.steps, r->train.lr,
               (unsigned long long)r->seed);
    }
}

/* --shard I/N, else a Slurm job array's task (SLURM_ARRAY_TASK_ID - MIN) / STEP of COUNT */
static int parse_shard(const char *v, int *index, int *count)
{
    if (v) {
        char *e1, *e2;
        long i = strtol(v, &e1, 10), n = *e1 == '/' ? strtol(e1 + 1, &e2, 10) : 0;
        if (*e1 != '/' || *e2 || e1 == v || n < 1 || i < 0 || i >= n || n > 100000)
            return cli_fail("--shard %s: expected I/N with 0 <= I < N (e.g. --shard 0/3)", v);
        *index = (int)i, *count = (int)n;
        return 0;
    }
    const char *id = getenv("SLURM_ARRAY_TASK_ID"), *cnt = getenv("SLURM_ARRAY_TASK_COUNT");
    if (!id || !cnt || getenv("PEFT_NO_SLURM_ARRAY")) return 0;
    const char *mn = getenv("SLURM_ARRAY_TASK_MIN"), *st = getenv("SLURM_ARRAY_TASK_STEP");
    long i = atol(id) - (mn ? atol(mn) : 0), step = st && atol(st) > 0 ? atol(st) : 1, n = atol(cnt);
    i /= step;
    if (n < 1 || i < 0 || i >= n)
        return cli_fail("SLURM_ARRAY_TASK_ID=%s (min %s, step %s) is not one of SLURM_ARRAY_TASK_COUNT=%s tasks", id,
                        mn ? mn : "0", st ? st : "1", cnt);
    *index = (int)i, *count = (int)n;
    return 0;
}

typedef struct run_args {
    const char *file, *output, *only, *shard;
    int check_only, fresh, no_progress, summarize_only, n_sets;
    const char **sets; /* the --set values, argc of them at most */
} run_args;

/* the options into a: -1 go on, else the command's exit status (--help, a bad option) */
static int parse_args(int argc, char **argv, int rank, run_args *a)
{
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            if (rank == 0) printf("%sMPI: %s\n", HELP, runner_dist_library());
            return 0;
        } else if ((v = cli_opt(argc, argv, &i, "--output"))) a->output = v;
        else if ((v = cli_opt(argc, argv, &i, "--only"))) a->only = v;
        else if ((v = cli_opt(argc, argv, &i, "--set"))) a->sets[a->n_sets++] = v;
        else if (!strncmp(argv[i], "--set=", 6)) a->sets[a->n_sets++] = argv[i] + 6;
        else if ((v = cli_opt(argc, argv, &i, "--shard"))) a->shard = v;
        else if (!strcmp(argv[i], "--check")) a->check_only = 1;
        else if (!strcmp(argv[i], "--fresh")) a->fresh = 1;
        else if (!strcmp(argv[i], "--summarize")) a->summarize_only = 1;
        else if (!strcmp(argv[i], "--no-progress")) a->no_progress = 1;
        else if (argv[i][0] == '-') { fputs(HELP, stderr); return cli_fail("unknown option '%s'", argv[i]); }
        else if (!a->file) a->file = argv[i];
        else { fputs(HELP, stderr); return cli_fail("one EXPERIMENTS.yaml at a time ('%s' is a second)", argv[i]); }
    }
    if (!a->file) { fputs(HELP, stderr); return cli_fail("no EXPERIMENTS.yaml given"); }
    return -1;
}

/* fault injection for the tests: PEFT_DEBUG_KILL_AT=STEP or RUN:STEP (SIGKILL after that
 * update); the run's name goes into kill_run */
static void debug_kill_opts(runner_opts *o, char *kill_run, size_t len)
{
    const char *kill = getenv("PEFT_DEBUG_KILL_AT");
    if (!kill) return;
    const char *colon = strrchr(kill, ':');
    if (colon) snprintf(kill_run, len, "%.*s", (int)(colon - kill), kill);
    o->debug_kill_at = atoll(colon ? colon + 1 : kill);
    o->debug_kill_run = kill_run[0] ? kill_run : NULL;
}

/* the batch of a checked configuration (or only its summary): the command's exit status */
static int run_batch(runner_config *c, const run_args *a, int shard_index, int shard_count, int argc,
                     char **argv, int rank)
{
    char err[4096] = "";
    runner_opts o = {.log = stdout, .progress_bar = !a->no_progress && isatty(STDOUT_FILENO) && runner_dist_size() == 1,
                     .stop = &stop_requested, .fresh = a->fresh, .only = a->only, .shard_index = shard_index,
                     .shard_count = shard_count};
    char kill_run[512] = "";
    debug_kill_opts(&o, kill_run, sizeof kill_run);
    if (a->summarize_only) return runner_summarize(c, &o, err, sizeof err) ? cli_fail("%s", err) : 0;
    install_handlers();
    int rc = runner_run_all(c, &o, err, sizeof err);
    if (rc == RUNNER_STOPPED) {
        if (rank == 0) {
            fputs("peft: stopped; run `peft", stderr);
            for (int i = 0; i < argc; i++) fprintf(stderr, " %s", argv[i]);
            fputs("` again to resume\n", stderr);
        }
        rc = 130;
    } else if (rc) {
        rc = cli_fail("%s", err);
        if (runner_dist_size() > 1) rc = 3; /* the other ranks may be waiting for this one */
    }
    return rc;
}

static int run_main(int argc, char **argv, int rank)
{
    run_args a = {.sets = calloc((size_t)argc + 1, sizeof *a.sets)};
    if (!a.sets) return cli_fail("out of memory");
    int rc = parse_args(argc, argv, rank, &a);
    if (rc >= 0) goto done;
    rc = 1;
    int shard_index = 0, shard_count = 0;
    if (parse_shard(a.shard, &shard_index, &shard_count)) goto done;
    char err[4096] = "";
    runner_config *c;
    if (runner_config_load_set(a.file, a.output, a.sets, a.n_sets, &c, err, sizeof err)) {
        rc = rank == 0 ? cli_fail("%s", err) : 1; /* every rank finds the same: rank 0 says it */
        goto done;
    }
    if (runner_check(c, err, sizeof err)) rc = rank == 0 ? cli_fail("%s", err) : 1;
    else if (a.check_only) {
        if (rank == 0) {
            list_runs(c);
            printf("the file is valid\n");
        }
        rc = 0;
    } else {
        rc = run_batch(c, &a, shard_index, shard_count, argc, argv, rank);
    }
    runner_config_free(c);
done:
    free(a.sets);
    return rc;
}

int cmd_run(int argc, char **argv)
{
    char err[1024] = "";
    if (runner_dist_init(&argc, &argv, err, sizeof err)) return cli_fail("%s", err);
    int rc = run_main(argc, argv, runner_dist_rank());
    if (rc == 3) { /* a failure during the batch under MPI: end every rank (none waits forever) */
        fflush(NULL);
        runner_dist_abort(1);
    }
    runner_dist_finalize();
    return rc;
}
