/* conformance.h — the tuner plugin conformance table (sdk/conformance/, built into
 * libpeft_conformance.a): what `peft plugin-check` (cli/cmd_plugin_check.c: options and
 * printing) and the test suites (tests/util/conformance.c) both run. table.c (the checks and
 * their order), models.c (the built-in tiny models of every architecture, fixture models),
 * run.c (each check in a forked child, signals, timeouts, valgrind), model.c (model setup,
 * inputs, the objective, comparisons) and basic/grad/state/threads.c (the checks). */
#ifndef PEFT_CONFORMANCE_H
#define PEFT_CONFORMANCE_H

#include <stddef.h>
#include <stdint.h>
#include "peft/peft.h"
#include "peft/inputs.h"
#include "peft/registry.h"

#define PC_PASS 0
#define PC_FAIL 1
#define PC_SKIP 2

#define PC_MSG 1024
#define PC_MAX_MODELS 16

/* one base model the checks run on */
typedef struct pc_model {
    char dir[4096];
    char model_type[64]; /* config.json model_type */
    char task_type[32];  /* PEFT task type of its head, e.g. "CAUSAL_LM", "SEQ_2_SEQ_LM" */
    char label[96];      /* what the output lines show: "gpt2", "bert (bert_qa)" */
    char inputs[4096];   /* an inputs.json next to the model, or "" (inputs are made: random
                            ids, and decoder ids for an encoder-decoder) */
    int64_t vocab;       /* for random ids */
} pc_model;

/* everything a check needs; read-only once the checks start */
typedef struct pc_env {
    const char *plugin;        /* path of the .so */
    const char *config_path;   /* --config FILE or NULL */
    char *config_extra;        /* its text (a JSON object), or NULL */
    const peft_tuner_vtable *vt; /* the loaded plugin (NULL until the abi check passed) */
    pc_model models[PC_MAX_MODELS];
    int n_models;
    int timeout;               /* seconds per check */
    const char *self_exe;      /* for the valgrind run (a `peft` binary) */
    int counts[3];             /* after pc_table_run: passed, failed, skipped */
} pc_env;

/* a check: returns PC_PASS / PC_FAIL / PC_SKIP with a one-line reason in msg */
typedef int (*pc_check_fn)(const pc_env *env, const pc_model *model, char *msg, size_t len);

/* ---- table.c ---- */
/* how a check's result is reported (model NULL for the once-only abi line) */
typedef void (*pc_report_fn)(int status, const char *check, const pc_model *model,
                             const char *msg, void *ud);
/* Runs the table on env->plugin over env->models (loads env->vt); only: a comma-separated list
 * of check names, or NULL for all (abi always runs). Reports each result; fills env->counts;
 * returns 1 when any check failed, else 0. */
int pc_table_run(pc_env *env, const char *only, pc_report_fn report, void *ud);
/* the check called name, or NULL */
pc_check_fn pc_check_named(const char *name);
/* a plugin from a .so path (peft_plugin_load_file), borrowed for the process; NULL with the
 * registry's message in err */
const peft_tuner_vtable *pc_plugin_load(const char *path, char *err, size_t errlen);

/* ---- models.c ---- */
/* the built-in tiny architectures ("gpt2", "llama", "bert", "t5"), NULL-terminated, static */
const char *const *pc_builtin_archs(void);
/* writes the built-in tiny models (those in `only`, a comma-separated list, or all when NULL)
 * whose model_type env has no model of yet, each in tmp_root/<arch>/ (seeded: the same bytes
 * every run), and adds them labelled "<arch> (tiny)". 0, or -1 with msg */
int pc_builtin_models(pc_env *env, const char *tmp_root, const char *only, char *msg, size_t len);
/* adds one model per supported architecture found under <fixtures>/hf-peft/_models. 0, or -1
 * with msg when that directory is missing or holds no loadable model */
int pc_fixture_models(pc_env *env, const char *fixtures, char *msg, size_t len);
/* adds model dir (label NULL: its model_type). 0, or -1 with msg when it cannot be loaded */
int pc_add_model(pc_env *env, const char *dir, const char *label, char *msg, size_t len);
/* env has a model of model_type mt */
int pc_have_type(const pc_env *env, const char *mt);


/* ---- run.c ---- */
/* Runs fn in a forked child (or in this process when fork_it == 0) with env->timeout, and
 * returns its status; a child killed by a signal is a failure naming the signal. */
int pc_run(const pc_env *env, const pc_model *model, pc_check_fn fn, int fork_it, char *msg,
           size_t len);
/* The forward/backward check once more in a child `peft plugin-check --inner backward` under
 * valgrind (when on PATH): definite leaks and memory errors fail it. */
int pc_check_valgrind(const pc_env *env, const pc_model *model, char *msg, size_t len);

/* ---- model.c ---- */
/* the sample adapter config for model_type: {"peft_type", "target_modules": the plugin's
 * defaults or "all-linear"} (prompt learning: {"peft_type", "num_virtual_tokens": 4,
 * "task_type": the model's, which PEFT derives the number of prompt stacks from}) with the
 * --config fields laid over it. Caller frees. */
char *pc_sample_config(const pc_env *env, const pc_model *model);

/* A model with the sample adapter on it, ready to run. */
typedef struct pc_run_state {
    peft_ctx *ctx;
    peft_model *m;          /* NULL until made */
    peft_base_model *base;  /* set while no adapter is on (before inject / after unload) */
    peft_inputs in;
    peft_graph *g;
    peft_model_outputs out; /* the last forward's outputs (arena: valid until the next) */
    float *target;          /* the objective's target, one value per output element */
    int64_t n_out;
} pc_run_state;

/* load the base and the inputs; 0 or -1 with msg */
int pc_open_base(const pc_env *env, const pc_model *model, pc_run_state *r, uint64_t seed,
                 char *msg, size_t len);
/* peft_get_peft_model with the sample config; 0 or -1 with msg */
int pc_inject(const pc_env *env, const pc_model *model, pc_run_state *r, char *msg, size_t len);
/* adds seeded noise (0.05 N(0,1)) to every trainable tensor so that the adapter is not at its
 * (often identity) init; 0 or -1 with msg */
int pc_perturb(pc_run_state *r, uint64_t seed, char *msg, size_t len);
/* forward on the model (or the bare base when r->m is NULL); record: build the tape with the
 * objective J = sum over outputs of mean((out - target)^2) and run backward. 0 or -1 with msg */
int pc_forward(pc_run_state *r, int record, char *msg, size_t len);
/* the objective of the last forward, in double, from its outputs */
double pc_objective(const pc_run_state *r);
/* the last forward's outputs concatenated (caller frees), n values in *n */
float *pc_copy_outputs(const pc_run_state *r, int64_t *n);
void pc_close(pc_run_state *r);

/* largest |a - b| (inf when a NaN differs) and the largest |ref| */
double pc_max_diff(const float *a, const float *b, int64_t n);
double pc_max_abs(const float *a, int64_t n);
/* bytes of every base parameter equal to a freshly loaded copy of dir; 0 or -1 with msg */
int pc_base_unchanged(peft_base_model *base, const char *dir, char *msg, size_t len);

/* removes dir and the files in it (one level: what save_pretrained and init-model write) */
void pc_rm_dir(const char *dir);
/* a mkdtemp/mkstemp template "$TMPDIR/peft-plugin-check-<what>-XXXXXX" ($TMPDIR unset: /tmp)
 * into buf; 0, or -1 when it does not fit */
int pc_temp_template(char *buf, size_t len, const char *what);

/* ---- the checks ---- */
int pc_check_abi(const pc_env *env, const pc_model *model, char *msg, size_t len);
int pc_check_vtable(const pc_env *env, const pc_model *model, char *msg, size_t len);
int pc_check_config(const pc_env *env, const pc_model *model, char *msg, size_t len);
int pc_check_inject(const pc_env *env, const pc_model *model, char *msg, size_t len);
int pc_check_backward(const pc_env *env, const pc_model *model, char *msg, size_t len);
int pc_check_merge(const pc_env *env, const pc_model *model, char *msg, size_t len);
int pc_check_unload(const pc_env *env, const pc_model *model, char *msg, size_t len);
int pc_check_disabled(const pc_env *env, const pc_model *model, char *msg, size_t len);
int pc_check_save_load(const pc_env *env, const pc_model *model, char *msg, size_t len);
int pc_check_threads(const pc_env *env, const pc_model *model, char *msg, size_t len);

/* printf into msg, returning status (for `return pc_msg(msg, len, PC_FAIL, "...")`) */
int pc_msg(char *msg, size_t len, int status, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
