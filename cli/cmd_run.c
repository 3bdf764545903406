/* cmd_run.c — `peft run EXPERIMENTS.yaml`: checks the whole file (schema, plugins, adapter
 * configs, data) before anything runs, then trains every run not yet finished and prints the
 * summary. Ctrl-C (SIGINT) or SIGTERM makes the current run checkpoint and stop; running the same
 * command again resumes it (a second Ctrl-C stops at once: the files stay whole either way). */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "cli.h"
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
    "  --no-progress  plain log lines even on a terminal\n";

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

int cmd_run(int argc, char **argv)
{
    const char *file = NULL, *output = NULL, *only = NULL;
    int check_only = 0, fresh = 0, no_progress = 0;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) { fputs(HELP, stdout); return 0; }
        else if ((v = cli_opt(argc, argv, &i, "--output"))) output = v;
        else if ((v = cli_opt(argc, argv, &i, "--only"))) only = v;
        else if (!strcmp(argv[i], "--check")) check_only = 1;
        else if (!strcmp(argv[i], "--fresh")) fresh = 1;
        else if (!strcmp(argv[i], "--no-progress")) no_progress = 1;
        else if (argv[i][0] == '-') { fputs(HELP, stderr); return cli_fail("unknown option '%s'", argv[i]); }
        else if (!file) file = argv[i];
        else { fputs(HELP, stderr); return cli_fail("one EXPERIMENTS.yaml at a time ('%s' is a second)", argv[i]); }
    }
    if (!file) { fputs(HELP, stderr); return cli_fail("no EXPERIMENTS.yaml given"); }
    char err[4096] = "";
    runner_config *c;
    if (runner_config_load(file, output, &c, err, sizeof err)) return cli_fail("%s", err);
    if (runner_check(c, err, sizeof err)) {
        runner_config_free(c);
        return cli_fail("%s", err);
    }
    if (check_only) {
        list_runs(c);
        printf("the file is valid\n");
        runner_config_free(c);
        return 0;
    }
    install_handlers();
    runner_opts o = {.log = stdout, .progress_bar = !no_progress && isatty(STDOUT_FILENO),
                     .stop = &stop_requested, .fresh = fresh, .only = only};
    int rc = runner_run_all(c, &o, err, sizeof err);
    runner_config_free(c);
    if (rc == RUNNER_STOPPED) {
        fputs("peft: stopped; run `peft", stderr);
        for (int i = 0; i < argc; i++) fprintf(stderr, " %s", argv[i]);
        fputs("` again to resume\n", stderr);
        return 130;
    }
    if (rc) return cli_fail("%s", err);
    return 0;
}
