/* cmd_plugin_check.c — `peft plugin-check PLUGIN.so`: the tuner plugin conformance checker, the
 * same contract the built-in plugins meet, usable on any third-party .so. Picks the models the
 * checks run on (--model dirs; else the built-in tiny models of every architecture, written
 * to a temp dir from a fixed seed; --fixtures / $PEFT_FIXTURES adds PEFT's fixture models),
 * runs the conformance table (sdk/conformance/, each check in a forked child), prints one line
 * per check and a summary, and exits non-zero when any check failed. */
#define _GNU_SOURCE
#include <dirent.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "peft/warn.h"
#include "sdk/conformance/conformance.h"

static const char *HELP =
    "usage: peft plugin-check PLUGIN.so [--model DIR]... [--fixtures DIR | --no-fixtures]\n"
    "                         [--arch LIST] [--config FILE] [--only CHECK[,CHECK...]]\n"
    "                         [--timeout SECONDS]\n\n"
    "Runs the tuner plugin conformance checks on PLUGIN.so, one line per check (PASS, FAIL or\n"
    "SKIP with the reason) and a summary; exits 1 when a check failed. Each check runs in its\n"
    "own child process: a plugin that crashes fails that check (the signal is named) and the\n"
    "others still run.\n\n"
    "checks: abi, vtable, inject (per model), config-errors, then per model backward, merge,\n"
    "        unload, disabled, save-load, threads; and valgrind (when valgrind is on PATH)\n\n"
    "Models. Built in: a tiny seeded model of each architecture (gpt2: Conv1D layers; llama:\n"
    "plain Linear layers; bert: an encoder with a classification head; t5: an encoder-decoder),\n"
    "written to a temp dir at run time, so nothing beside this binary is needed. A plugin is\n"
    "checked on every model whose layers it accepts (inject SKIP on the others); at least one\n"
    "must take it.\n"
    "  --model DIR    a Hugging Face model directory to run on instead (repeatable); its\n"
    "                 inputs.json is used when there is one, else inputs are made (random ids,\n"
    "                 and decoder ids for an encoder-decoder)\n"
    "  --fixtures DIR also PEFT's fixture models, DIR/hf-peft/_models (one per architecture);\n"
    "                 $PEFT_FIXTURES does the same. A DIR without them is an error\n"
    "  --no-fixtures  ignore $PEFT_FIXTURES: the built-in models only\n"
    "  --arch LIST    only these built-in models (comma-separated: gpt2,llama,bert,t5)\n"
    "  --config FILE  a JSON object of method fields laid over the sample config\n"
    "                 {\"peft_type\": <the plugin's>, \"target_modules\": <its defaults for the\n"
    "                 model_type, else \"all-linear\">}, e.g. {\"r\": 4, \"alpha\": 8}\n"
    "  --only LIST    run only these checks (abi always runs)\n"
    "  --timeout S    seconds per check before it is killed and failed (default 300)\n\n"
    "PEFT_PLUGIN_CHECK_NO_VALGRIND=1 skips the valgrind run.\n";

static char tiny_dir[64];

static void remove_tiny(void)
{
    if (!tiny_dir[0]) return;
    for (const char *const *a = pc_builtin_archs(); *a; a++) {
        char d[128];
        snprintf(d, sizeof d, "%s/%s", tiny_dir, *a);
        pc_rm_dir(d);
    }
    rmdir(tiny_dir);
}

static void report(int status, const char *name, const pc_model *m, const char *msg, void *ud)
{
    (void)ud;
    static const char *const word[3] = {"PASS", "FAIL", "SKIP"};
    char full[160];
    if (m) snprintf(full, sizeof full, "%s [%s]", name, m->label);
    else snprintf(full, sizeof full, "%s", name);
    printf("%s  %-30s %s\n", word[status], full, msg);
    fflush(stdout);
}

static void drop_warning(const char *msg, void *ud)
{
    (void)msg;
    (void)ud;
}

/* the command line, as given */
typedef struct pc_args {
    const char *only, *inner, *fixtures, *archs;
    const char *model_dirs[PC_MAX_MODELS];
    int n_dirs, no_fixtures;
} pc_args;

/* reads the options into a and env (plugin, config path, timeout). -1: go on; else the exit
 * status (0 after --help) */
static int parse_args(int argc, char **argv, pc_args *a, pc_env *env)
{
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(HELP, stdout);
            return 0;
        } else if ((v = cli_opt(argc, argv, &i, "--model"))) {
            if (a->n_dirs == PC_MAX_MODELS) return cli_fail("plugin-check: at most 16 --model options");
            a->model_dirs[a->n_dirs++] = v;
        } else if ((v = cli_opt(argc, argv, &i, "--config"))) {
            env->config_path = v;
        } else if ((v = cli_opt(argc, argv, &i, "--only"))) {
            a->only = v;
        } else if ((v = cli_opt(argc, argv, &i, "--inner"))) {
            a->inner = v;
        } else if ((v = cli_opt(argc, argv, &i, "--fixtures"))) {
            a->fixtures = v;
        } else if ((v = cli_opt(argc, argv, &i, "--arch"))) {
            a->archs = v;
        } else if ((v = cli_opt(argc, argv, &i, "--timeout"))) {
            env->timeout = atoi(v);
            if (env->timeout <= 0) return cli_fail("--timeout must be a positive number of seconds");
        } else if (!strcmp(argv[i], "--no-fixtures")) {
            a->no_fixtures = 1;
        } else if (argv[i][0] == '-' || env->plugin) {
            fputs(HELP, stderr);
            cli_fail("plugin-check: unexpected argument '%s'", argv[i]);
            return 2;
        } else {
            env->plugin = argv[i];
        }
    }
    if (!env->plugin) {
        fputs(HELP, stderr);
        cli_fail("plugin-check: which plugin? (a path to a .so)");
        return 2;
    }
    return -1;
}

/* every name of --arch is a built-in model. 0 or 2 */
static int check_archs(const char *archs)
{
    for (const char *p = archs; p && *p;) {
        size_t n = strcspn(p, ",");
        int ok = 0;
        for (const char *const *a = pc_builtin_archs(); *a; a++)
            ok |= strlen(*a) == n && !strncmp(*a, p, n);
        if (!ok) {
            cli_fail("plugin-check: --arch: no built-in model '%.*s' (gpt2, llama, bert, t5)",
                     (int)n, p);
            return 2;
        }
        p += n + (p[n] == ',');
    }
    return 0;
}

/* --config FILE into env->config_extra (owned), checked to be a JSON object. 0 or 2 */
static int read_config_extra(pc_env *env)
{
    if (!env->config_path) return 0;
    env->config_extra = cli_read_text(env->config_path);
    if (!env->config_extra) return 2;
    json_error_t je;
    json_t *j = json_loads(env->config_extra, 0, &je);
    int ok = json_is_object(j);
    json_decref(j);
    if (!ok) {
        cli_fail("%s: line %d: expected a JSON object of adapter config fields (%s)",
                 env->config_path, je.line, je.text);
        free(env->config_extra);
        return 2;
    }
    return 0;
}

/* the models to run on: the --model dirs, else the fixture models (when given) and the built-in
 * tiny models, GPT-2 first (the once-only checks run on it). 0, or 1 with the error printed */
static int pick_models(pc_env *env, const pc_args *a)
{
    char msg[PC_MSG];
    int rc = 0;
    for (int i = 0; i < a->n_dirs && !rc; i++)
        if (pc_add_model(env, a->model_dirs[i], NULL, msg, sizeof msg)) rc = cli_fail("plugin-check: %s", msg);
    if (!rc && a->n_dirs == 0) {
        if (a->fixtures && pc_fixture_models(env, a->fixtures, msg, sizeof msg))
            rc = cli_fail("plugin-check: %s", msg);
        if (!rc && (pc_temp_template(tiny_dir, sizeof tiny_dir, "models") || !mkdtemp(tiny_dir))) {
            tiny_dir[0] = 0;
            rc = cli_fail("plugin-check: cannot make a temp dir for the built-in models");
        }
        if (!rc) {
            atexit(remove_tiny);
            if (pc_builtin_models(env, tiny_dir, a->archs, msg, sizeof msg))
                rc = cli_fail("plugin-check: %s", msg);
        }
        for (int i = 1; i < env->n_models; i++) /* GPT-2 first: the once-only checks */
            if (!strcmp(env->models[i].model_type, "gpt2")) {
                pc_model t = env->models[0];
                env->models[0] = env->models[i];
                env->models[i] = t;
            }
    }
    if (!rc && env->n_models == 0) rc = cli_fail("plugin-check: no model to run on");
    return rc;
}

/* --inner CHECK: one check on the first model, in this process (the valgrind run) */
static int run_inner(pc_env *env, const char *inner)
{
    char err[2048], msg[PC_MSG];
    env->vt = pc_plugin_load(env->plugin, err, sizeof err);
    if (!env->vt) return cli_fail("%s", err);
    pc_check_fn fn = pc_check_named(inner);
    int st = fn && fn != pc_check_valgrind
                 ? pc_run(env, &env->models[0], fn, 0, msg, sizeof msg)
                 : PC_FAIL;
    report(st, inner, &env->models[0], st == PC_FAIL && !fn ? "no such check" : msg, NULL);
    free(env->config_extra);
    return st == PC_FAIL;
}

int cmd_plugin_check(int argc, char **argv)
{
    static pc_env env;
    memset(&env, 0, sizeof env);
    env.timeout = 300;
    pc_args a = {0};
    int rc = parse_args(argc, argv, &a, &env);
    if (rc >= 0) return rc;
    if ((rc = check_archs(a.archs))) return rc;
    if (!a.fixtures && !a.no_fixtures && a.n_dirs == 0) {
        const char *e = getenv("PEFT_FIXTURES");
        if (e) {
            if (!*e) {
                cli_fail("plugin-check: PEFT_FIXTURES is set but empty (unset it, or point it at "
                         "a fixture tree)");
                return 2;
            }
            a.fixtures = e;
        }
    }
    if ((rc = read_config_extra(&env))) return rc;
    char self[PATH_MAX];
    ssize_t sn = readlink("/proc/self/exe", self, sizeof self - 1);
    self[sn > 0 ? sn : 0] = 0;
    env.self_exe = self;
    peft_set_warning_handler(drop_warning, NULL);

    if (pick_models(&env, &a)) {
        free(env.config_extra);
        return 2;
    }
    if (a.inner) return run_inner(&env, a.inner);

    printf("plugin-check %s on", env.plugin);
    for (int i = 0; i < env.n_models; i++) printf("%s %s", i ? "," : "", env.models[i].label);
    printf("\n");
    int failed = pc_table_run(&env, a.only, report, NULL);
    printf("%d passed, %d failed, %d skipped\n", env.counts[PC_PASS], env.counts[PC_FAIL],
           env.counts[PC_SKIP]);
    free(env.config_extra);
    return failed ? 1 : 0;
}
