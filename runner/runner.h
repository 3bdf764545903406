/* runner.h — the experiment runner behind `peft run EXPERIMENTS.yaml` (docs/experiments.md).
 *
 * A YAML file names a base model, a task, data, training settings and a list of experiments,
 * each a list of adapters (any plugins, mixed in order) with their PEFT config fields. Any field
 * given as a list sweeps: the experiment expands into the cartesian product of its swept
 * values, one run each. The whole file is checked before anything runs (unknown keys with
 * "did you mean", wrong types, unknown plugins, adapter configs the plugins refuse, data that
 * does not fit the task or the vocabulary), every error naming file:line:column.
 *
 * Each run trains with AdamW (betas, weight decay), a constant/linear/cosine schedule with
 * warm-up, gradient accumulation and clipping; it evaluates every eval_steps updates and keeps
 * the best adapter; it checkpoints every save_steps updates into one atomically written file, so
 * that a run interrupted at any moment (signal, kill, power loss) resumes from its last
 * checkpoint with the same final bytes as an uninterrupted run. A finished run (its results.json
 * exists) is never redone. Outputs: per run the adapter in PEFT's format, best/ (the best
 * evaluation's adapter), results.json and loss.svg; per batch summary.md, summary.csv,
 * loss_curves.svg and metric_vs_params.svg.
 *
 * Files: runner_yaml.c (the YAML tree), runner_config.c (schema, types, sweeps),
 * runner_check.c (plugins, adapter configs, data: the pre-flight), runner_data.c (JSONL data and
 * batches), runner_eval.c (losses and task metrics), runner_train.c (the training loop),
 * runner_ckpt.c (checkpoints and resume), runner_report.c (results.json, the summary tables),
 * runner_svg.c (plots), runner_fs.c (atomic files), runner_progress.c (bar / log lines).
 *
 * Errors: functions return 0 or -1 with a message in err (NUL-terminated, errlen bytes). The
 * runner writes only to the FILE the caller passes in runner_opts.log; it installs no signal
 * handler (the caller sets *opts.stop from its own).
 */
#ifndef PEFT_RUNNER_H
#define PEFT_RUNNER_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <jansson.h>
#include "peft/peft.h"
#include "peft/tokenizer.h"
#include "peft/util.h"

/* ---- files (fs.c; mkdir -p, whole-file reads and atomic writes: peft/util.h) ---- */
int runner_file_exists(const char *path);
int64_t runner_file_size(const char *path); /* -1 if absent */
/* peft/util.h's mkdir -p, whole-file read and atomic write with the message in err (the
 * runner's convention): 0 / the buffer (caller frees), or -1 / NULL */
int runner_mkdirs(const char *dir, char *err, size_t errlen);
char *runner_read_file(const char *path, size_t *len, char *err, size_t errlen);
int runner_write_file_atomic(const char *path, const void *data, size_t n, char *err, size_t errlen);

/* ---- the YAML tree (runner_yaml.c) ---- */
#define RUNNER_NODE_SCALAR 0
#define RUNNER_NODE_SEQ 1
#define RUNNER_NODE_MAP 2
#define RUNNER_SCALAR_NULL 0
#define RUNNER_SCALAR_BOOL 1
#define RUNNER_SCALAR_INT 2
#define RUNNER_SCALAR_FLOAT 3
#define RUNNER_SCALAR_STRING 4

typedef struct runner_node {
    int kind;                   /* RUNNER_NODE_* */
    char *text;                 /* scalar text (owned) */
    int quoted;                 /* quoted / block scalar: always a string */
    int line, col;              /* 1-based position of the node */
    char *origin;               /* NULL: from the file; else the command-line flag that set it
                                   ("--set training.steps=5"), named in errors (owned) */
    size_t n;                   /* list items or mapping pairs */
    struct runner_node **keys;  /* mapping keys (scalars), owned */
    struct runner_node **items; /* list items or mapping values, owned */
} runner_node;

/* Parses path (one document). *root owned by the caller (runner_node_free). -1 with
 * "file:line:col: problem" in err. */
int runner_yaml_load(const char *path, runner_node **root, char *err, size_t errlen);
void runner_node_free(runner_node *n);
/* Parses one YAML value given on the command line (text after '=' of --set); every node gets
 * origin (a copy) so that errors name the flag. -1 with "origin: problem" in err. */
int runner_yaml_parse_value(const char *text, const char *origin, runner_node **out, char *err,
                            size_t errlen);
int runner_scalar_type(const runner_node *n);         /* RUNNER_SCALAR_*, -1 if not a scalar */
const char *runner_node_kind_name(const runner_node *n); /* "an integer", "a list", ... */
json_t *runner_node_to_json(const runner_node *n);    /* new reference */
const runner_node *runner_map_get(const runner_node *map, const char *key); /* borrowed */

/* ---- the configuration (runner_config.c) ---- */
#define RUNNER_TASK_CAUSAL_LM 0
#define RUNNER_TASK_SEQ_CLS 1
#define RUNNER_TASK_TOKEN_CLS 2
#define RUNNER_TASK_QA 3
#define RUNNER_TASK_SEQ2SEQ 4
#define RUNNER_METRIC_ACCURACY 0
#define RUNNER_METRIC_EXACT_MATCH 1
#define RUNNER_METRIC_PERPLEXITY 2

const char *runner_task_name(int task);     /* "causal_lm", ... */
const char *runner_task_peft_type(int task); /* "CAUSAL_LM", "SEQ_CLS", ... */
const char *runner_metric_name(int metric);  /* "accuracy", "exact_match", "perplexity" */

typedef struct runner_train_cfg {
    int64_t steps;           /* optimizer updates */
    int64_t batch_size;      /* examples per micro-batch */
    int64_t grad_accum;      /* micro-batches per update */
    int64_t warmup_steps;
    int64_t eval_steps;      /* evaluate every N updates (and at the end) */
    int64_t save_steps;      /* checkpoint every N updates */
    int64_t eval_batch_size;
    int eval_on_start;       /* evaluate the base model (adapters disabled: the summary's baseline)
                                and the adapters as initialised before the first update (default
                                1; transformers' TrainingArguments.eval_on_start) */
    double lr, weight_decay, beta1, beta2, eps, max_grad_norm;
    int schedule;            /* PEFT_SCHED_* (optim.h) */
    int on_nonfinite;        /* a NaN/Inf loss or gradient: RUNNER_NONFINITE_STOP (the run fails
                                naming the step) or _SKIP (the update is dropped, logged) */
    int64_t data_parallel;   /* shares of each micro-batch, each its own forward/backward, their
                                gradients summed in share order (1 = plain); over MPI ranks when
                                started so (runner_dist.h) */
} runner_train_cfg;
enum { RUNNER_NONFINITE_STOP = 0, RUNNER_NONFINITE_SKIP = 1 };

typedef struct runner_adapter {
    char *name;               /* adapter name: "default" for the first unless given */
    char *method;             /* plugin name ("lora") */
    json_t *config;           /* adapter_config.json fields, peft_type and task_type included */
    const runner_node *node;  /* the adapter's mapping in the YAML tree (borrowed) */
} runner_adapter;

typedef struct runner_run {
    char *name;               /* "<experiment>" or "<experiment>-<field><value>..." (and
                                 "-seed=<s>" for a repeat) */
    char *experiment;
    char *group;              /* the configuration: the name without the repeat's "-seed=<s>";
                                 equal to name when the run is not repeated */
    int repeat, n_repeats;    /* index among the configuration's seeds, and their count */
    runner_adapter *adapters;
    int n_adapters;
    runner_train_cfg train;
    uint64_t seed;
    json_t *swept;            /* {"field": value} of this run's sweep point (may be empty) */
    const runner_node *node;  /* the experiment's mapping (borrowed) */
} runner_run;

typedef struct runner_config {
    char *path;               /* the YAML file */
    runner_node *root;        /* owned: positions for every later error */
    char *name;               /* batch name */
    char *base_model;         /* resolved directory */
    char *output_dir;
    int task, metric;
    char *train_path, *eval_path; /* resolved */
    int64_t max_length;
    int64_t num_eval;         /* eval examples used (0 = all) */
    runner_run *runs;
    int n_runs;
    char *(*compare)[2];      /* paired comparisons of configurations (group names), owned */
    int n_compare;
    int checked;              /* runner_check passed (it completes the adapter configs) */
} runner_config;

/* Reads and checks path's schema and types and expands the sweeps (no file besides the YAML is
 * read). Relative base_model and data paths are resolved against the YAML file's directory;
 * output_dir against the current directory (output_override, if not NULL, replaces it).
 * *out owned by the caller (runner_config_free). -1 with "file:line:col: ..." in err. */
int runner_config_load(const char *path, const char *output_override, runner_config **out,
                       char *err, size_t errlen);
/* The same with command-line overrides sets[0..n_sets), each "key.path=value" (a list index or
 * an experiment's name selects a list item: experiments.lora.adapters.0.r=[4,8]), applied to
 * the YAML tree before it is checked, so that the values are checked as the file is; errors in
 * them name the flag ("--set training.steps=many: training.steps must be an integer ..."). */
int runner_config_load_set(const char *path, const char *output_override, const char *const *sets,
                           int n_sets, runner_config **out, char *err, size_t errlen);
void runner_config_free(runner_config *c);
/* "file:line:col: " prefix for a node */
void runner_errat(char *err, size_t errlen, const runner_config *c, const runner_node *n,
                  const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* ---- data (runner_data.c) ---- */
typedef struct runner_example {
    int32_t *ids;        /* input ids (owned) */
    int n;
    int32_t *labels;     /* causal LM: per input token (-100 = no loss); token cls: per token;
                            seq2seq: the target ids; NULL for seq cls / QA */
    int n_labels;
    int32_t label;       /* seq cls: the class */
    int32_t start, end;  /* QA: answer span (token indices) */
    int32_t task_id;     /* "task_id" (0 when absent): the row's task for multitask prompt tuning */
} runner_example;

typedef struct runner_dataset {
    runner_example *ex;
    size_t n;
    int64_t n_label_tokens; /* tokens that carry a loss */
} runner_dataset;

/* Reads a JSONL file for task: each line an object with "input_ids" or "text" (tokenized by
 * tk, the model directory's tokenizer.json, with its special tokens; tk may be NULL when the
 * data holds ids only) and the task's labels:
 *   causal_lm           optional "labels" (per token, -100 = no loss); or "prompt" and
 *                       "completion" (text, or lists of ids) instead: loss on the completion only
 *   seq_cls             "label" (a class index)
 *   token_cls           "labels" (per token, -100 = ignored); input_ids only
 *   question_answering  "start_position", "end_position" (token indices); input_ids only
 *   seq2seq             "labels" (target ids) or "target" (text)
 * and, for any task, an optional "task_id" (a non-negative integer, 0 when absent): the row's
 * task, given to the model as task_ids (multitask prompt tuning; other methods ignore it).
 * Inputs longer than max_length are truncated. Ids must be < vocab, classes < num_labels.
 * -1 with err naming the file, line and key. */
int runner_data_load(const char *path, int task, int64_t max_length, int64_t vocab,
                     int64_t num_labels, const peft_tokenizer *tk, runner_dataset *out,
                     char *err, size_t errlen);
void runner_data_free(runner_dataset *d);

/* A padded batch (right padding, attention mask 0 and labels -100 on padding), owned arrays. */
typedef struct runner_batch {
    int64_t B, T, L;           /* L: seq2seq target length */
    int32_t *ids, *mask, *labels, *start, *end;
    int32_t *task_ids;         /* (B): each row's task_id, given to the model as task_ids */
    int64_t n_tokens;          /* real (non-pad) input tokens */
} runner_batch;
int runner_batch_make(const runner_dataset *d, int task, const size_t *idx, int64_t B,
                      int32_t pad_id, runner_batch *b);
void runner_batch_free(runner_batch *b);
void runner_batch_view(const runner_batch *b, int task, peft_model_inputs *in);

/* ---- evaluation (runner_eval.c) ---- */
typedef struct runner_eval_result {
    double loss;        /* mean over label tokens (examples for seq cls / QA) */
    double metric;      /* the configured metric */
    double accuracy, exact_match, perplexity;
    int64_t n;          /* examples */
} runner_eval_result;
/* Evaluates m (eval mode, no tape) on the first n (0 = all) examples of d. -1 with err. */
int runner_evaluate(peft_model *m, peft_graph *g, const runner_config *c, const runner_dataset *d,
                    int64_t n, int64_t batch, runner_eval_result *r, char *err, size_t errlen);
/* 1 when a is better than b for metric */
int runner_metric_better(int metric, double a, double b);

/* ---- running (runner_train.c) ---- */
typedef struct runner_opts {
    FILE *log;                    /* progress, results and the summary; NULL = silent */
    int progress_bar;             /* 1: a redrawn bar per run (a terminal); 0: log lines */
    volatile sig_atomic_t *stop;  /* set by the caller's signal handler: the current run
                                     checkpoints and runner_run_all returns RUNNER_STOPPED */
    int fresh;                    /* 1: ignore checkpoints and finished runs (start over) */
    const char *only;             /* run only the runs whose name contains this (NULL = all);
                                     the others' finished results still join the summary */
    int64_t debug_kill_at;        /* fault injection for tests: SIGKILL the process right after
                                     this optimizer update (0 = never) */
    const char *debug_kill_run;   /* ... of this run only (NULL = any) */
    int rank, world;              /* this process's MPI rank and size (results.json) */
    const char *tag;              /* prefix of every log line ("[rank 1] "), NULL = none */
    void (*poll)(void *ud);       /* called after every optimizer update (MPI rank 0 answers the
                                     other ranks' requests for work there); NULL = none */
    void *poll_ud;
    int shard_index, shard_count; /* --shard I/N: only this deterministic share of the runs
                                     (shard_count 0 = all) */
} runner_opts;

/* ---- one process per run directory (runner_lock.c) ---- */
/* An exclusive flock on <dir>/.peft-run.lock, taken without waiting: 0 and *fd (keep it open
 * while the run trains), or -1 with err naming the holder (pid, host, start time). */
int runner_lock_run_dir(const char *dir, int *fd, char *err, size_t errlen);
void runner_unlock_run_dir(int fd);

#define RUNNER_STOPPED 1
/* Runs every run of c not yet finished, then writes the batch summary; runs runner_check first
 * when it has not passed yet. 0, RUNNER_STOPPED when *opts->stop was set (resume by calling
 * again), or -1 with err. opts may be NULL (silent). */
int runner_run_all(runner_config *c, const runner_opts *opts, char *err, size_t errlen);

/* With MPI started (runner/dist.h, several ranks): data-parallel runs first, each by every rank
 * together, then the other runs handed out by rank 0 to whichever rank is free, longest first
 * (runner_sched.c); rank 0 writes the summary at the end. With opts->shard_count > 0, only the
 * runs of shard opts->shard_index (runner_shard_assign), and the summary only when every run of
 * the batch has its results. Every call resumes as described above. */

/* The deterministic shares of --shard I/N: shard[i] for every run i; runs taken longest first,
 * each to the shard with the least work so far (ties: the lowest shard). -1 on OOM. */
int runner_shard_assign(const runner_config *c, int count, int *shard);
/* The batch summary from the results.json on disk (`peft run --summarize`): -1 with err naming
 * the runs not finished yet. Writes nothing on ranks other than 0. */
int runner_summarize(runner_config *c, const runner_opts *opts, char *err, size_t errlen);

/* ---- pre-flight (runner_check.c) ---- */
/* Everything that can be checked without training: plugins exist, each run's adapters build on
 * a weight-free copy of the base model (PEFT's config validation by the plugins), the data
 * files parse for the task and fit the model's vocabulary. -1 with file:line:col in err. */
int runner_check(runner_config *c, char *err, size_t errlen);
/* the base model directory's tokenizer.json, loaded when present (*tk NULL when absent) */
int runner_check_tokenizer(const runner_config *c, peft_tokenizer **tk, char *err, size_t errlen);

/* ---- per-run results (runner_report.c) ---- */
typedef struct runner_point {
    int64_t step;
    double value;
} runner_point;

typedef struct runner_result {
    char *run;                 /* run name (owned) */
    char *group;               /* its configuration (runner_run.group; owned) */
    uint64_t seed;
    char *methods;             /* "lora", "lora+loha" (owned) */
    int64_t trainable, all;
    int64_t adapter_bytes;     /* adapter_model.safetensors (all adapters) */
    runner_point *train_loss, *eval_loss, *eval_metric;
    size_t n_train, n_eval;
    double base_metric, best_metric, final_metric, best_eval_loss, final_eval_loss;
    int64_t best_step;
    double wall_s, tokens_per_s;
    double peak_rss_mb, peak_arena_mb;
    int64_t skipped_steps;    /* updates dropped for a non-finite loss or gradient (on_nonfinite: skip) */
    int64_t train_tokens;
    double elapsed_s;          /* wall time of the run, evaluations and saves included, summed
                                  over sessions */
    char host[64];             /* where it ran (its last session) */
    int rank, world;           /* MPI rank and size (0 and 1 without MPI) */
    int blas_threads;          /* OpenBLAS threads of that process */
} runner_result;

void runner_result_free(runner_result *r);
/* results.json of one run (atomic) */
int runner_write_results(const runner_config *c, const runner_run *r, const runner_result *res,
                         const char *path, char *err, size_t errlen);
/* reads back what runner_write_results wrote (for the summary of finished runs); when
 * want_config is not NULL, a results.json whose "config" differs is refused (the YAML changed) */
int runner_read_results(const char *path, const json_t *want_config, runner_result *r, char *err,
                        size_t errlen);
/* the "config" object of results.json: files, task, adapters, training settings, sweep point */
json_t *runner_run_config_json(const runner_config *c, const runner_run *r);
/* dir/loss.svg: the run's train and eval loss */
int runner_write_run_plot(const char *dir, const runner_result *r, char *err, size_t errlen);
/* summary.md (printed to log too), summary.csv, loss_curves.svg, metric_vs_params.svg */
int runner_write_summary(const runner_config *c, runner_result *const *res, int n, FILE *log,
                         char *err, size_t errlen);

/* ---- statistics of repeated runs (runner_stats.c) ---- */
typedef struct runner_stat {
    int n;            /* finite values */
    double mean, std; /* sample standard deviation (n - 1); NaN when n < 2 */
    double ci95;      /* half-width of the 95% interval of the mean: t(0.975, n-1) std / sqrt(n) */
} runner_stat;
typedef struct runner_pair {
    runner_stat diff; /* of a[i] - b[i] over pairs where both are finite */
    double t, p;      /* paired t statistic and two-sided p-value (NaN when n < 2) */
} runner_pair;
void runner_stats(const double *x, int n, runner_stat *s);
void runner_paired(const double *a, const double *b, int n, runner_pair *p);
double runner_t_cdf(double t, double df);
double runner_t_quantile(double p, double df);

/* ---- plots (runner_svg.c): hand-written SVG ---- */
typedef struct runner_series {
    const char *label;
    const runner_point *pts;
    size_t n;
    int dashed;
} runner_series;
/* a line chart of several series (x = step); a new string the caller frees, NULL on OOM */
char *runner_svg_lines(const char *title, const char *x_label, const char *y_label,
                       const runner_series *s, size_t n);
/* a scatter of labelled points, x on a log axis (trainable parameters), with a dashed
 * horizontal reference line at y = chance when finite (e.g. the base model's metric) */
char *runner_svg_scatter(const char *title, const char *x_label, const char *y_label,
                         const double *x, const double *y, const char *const *labels, size_t n,
                         double chance);
/* the same with error bars: y[i] +- yerr[i] (yerr NULL, or an entry NaN/0: no bar) */
char *runner_svg_scatter_err(const char *title, const char *x_label, const char *y_label,
                             const double *x, const double *y, const double *yerr,
                             const char *const *labels, size_t n, double chance);

/* ---- progress (runner_progress.c) ---- */
void runner_progress(const runner_opts *o, const char *run, int64_t step, int64_t total,
                     double loss, double lr, double tok_s);
void runner_progress_done(const runner_opts *o);

#endif
