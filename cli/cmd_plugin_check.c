/* cmd_plugin_check.c — `peft plugin-check PLUGIN.so`: the tuner plugin conformance checker, the
 * same contract the built-in plugins meet, usable on any third-party .so. Finds the models the
 * checks run on (one per supported architecture from PEFT's fixtures, or a tiny GPT-2 written
 * on the fly), runs the table of checks (each in a forked child: plugin_check_run.c), prints
 * one line per check and a summary, and exits non-zero when any check failed. */
#define _GNU_SOURCE
#include <dirent.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "peft/model_init.h"
#include "plugin_check.h"
#include "core/tuner/registry.h"
#include "peft/warn.h"

static const char *HELP =
    "usage: peft plugin-check PLUGIN.so [--model DIR]... [--config FILE] [--no-fixtures]\n"
    "                         [--only CHECK[,CHECK...]] [--timeout SECONDS]\n\n"
    "Runs the tuner plugin conformance checks on PLUGIN.so, one line per check (PASS, FAIL or\n"
    "SKIP with the reason) and a summary; exits 1 when a check failed. Each check runs in its\n"
    "own child process: a plugin that crashes fails that check (the signal is named) and the\n"
    "others still run.\n\n"
    "checks: abi, vtable, inject (per model), config-errors, then per model backward, merge,\n"
    "        unload, disabled, save-load, threads; and valgrind (when valgrind is on PATH)\n\n"
    "  --model DIR    a Hugging Face model directory to run on (repeatable). Default: one model\n"
    "                 per supported architecture from PEFT's fixtures ($PEFT_FIXTURES, or\n"
    "                 tests/fixtures), else a tiny random GPT-2 written to a temp dir\n"
    "  --no-fixtures  only the tiny GPT-2\n"
    "  --config FILE  a JSON object of method fields laid over the sample config\n"
    "                 {\"peft_type\": <the plugin's>, \"target_modules\": <its defaults for the\n"
    "                 model_type, else \"all-linear\">}, e.g. {\"r\": 4, \"alpha\": 8}\n"
    "  --only LIST    run only these checks (abi always runs)\n"
    "  --timeout S    seconds per check before it is killed and failed (default 300)\n\n"
    "PEFT_PLUGIN_CHECK_NO_VALGRIND=1 skips the valgrind run.\n";

/* ---- models ---- */

static int model_type_of(const char *dir, char *out, size_t len, int64_t *vocab)
{
    char path[PATH_MAX];
    snprintf(path, sizeof path, "%s/config.json", dir);
    json_t *c = json_load_file(path, 0, NULL);
    const char *mt = json_string_value(json_object_get(c, "model_type"));
    int ok = mt != NULL;
    if (ok) snprintf(out, len, "%s", mt);
    json_t *v = json_object_get(c, "vocab_size");
    *vocab = json_is_integer(v) ? json_integer_value(v) : 64;
    json_decref(c);
    return ok ? 0 : -1;
}

/* adds dir as a model (label = label or its model_type); 0, or -1 after printing why not */
static int add_model(pc_env *env, const char *dir, const char *label)
{
    if (env->n_models >= (int)(sizeof env->models / sizeof env->models[0])) return -1;
    pc_model *m = &env->models[env->n_models];
    memset(m, 0, sizeof *m);
    snprintf(m->dir, sizeof m->dir, "%s", dir);
    if (model_type_of(dir, m->model_type, sizeof m->model_type, &m->vocab)) {
        fprintf(stderr, "peft: plugin-check: %s/config.json has no model_type\n", dir);
        return -1;
    }
    char err[1024];
    peft_base_model *b;
    if (peft_base_model_load(dir, &b, err, sizeof err)) {
        printf("note: model %s is left out: the host cannot load it: %s\n", dir, err);
        return -1;
    }
    snprintf(m->task_type, sizeof m->task_type, "%s", peft_model_task(b));
    peft_base_model_free(b);
    snprintf(m->label, sizeof m->label, "%s", label ? label : m->model_type);
    char in[PATH_MAX];
    snprintf(in, sizeof in, "%s/inputs.json", dir);
    if (access(in, R_OK) == 0) snprintf(m->inputs, sizeof m->inputs, "%s", in);
    env->n_models++;
    return 0;
}

static int have_type(const pc_env *env, const char *mt)
{
    for (int i = 0; i < env->n_models; i++)
        if (!strcmp(env->models[i].model_type, mt)) return 1;
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* one model per supported architecture from <fixtures>/hf-peft/_models */
static void fixture_models(pc_env *env)
{
    char cand[3][PATH_MAX];
    int nc = 0;
    const char *envdir = getenv("PEFT_FIXTURES");
    if (envdir && *envdir) snprintf(cand[nc++], PATH_MAX, "%s/hf-peft/_models", envdir);
    snprintf(cand[nc++], PATH_MAX, "tests/fixtures/hf-peft/_models");
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = 0;
        char *slash = strrchr(exe, '/');
        if (slash) *slash = 0;
        snprintf(cand[nc++], PATH_MAX, "%.3800s/../tests/fixtures/hf-peft/_models", exe);
    }
    for (int c = 0; c < nc; c++) {
        DIR *d = opendir(cand[c]);
        if (!d) continue;
        char *names[256];
        int nn = 0;
        struct dirent *e;
        while ((e = readdir(d)) && nn < 256)
            if (e->d_name[0] != '.') names[nn++] = strdup(e->d_name);
        closedir(d);
        qsort(names, (size_t)nn, sizeof *names, cmp_str);
        for (int i = 0; i < nn; i++) {
            char dir[PATH_MAX], mt[64];
            int64_t vocab;
            snprintf(dir, sizeof dir, "%.3800s/%.200s", cand[c], names[i]);
            if (names[i] && !model_type_of(dir, mt, sizeof mt, &vocab) && peft_arch_find(mt) &&
                !have_type(env, mt)) {
                char label[96];
                snprintf(label, sizeof label, strcmp(mt, names[i]) ? "%s (%.60s)" : "%s", mt,
                         names[i]);
                add_model(env, dir, label);
            }
            free(names[i]);
        }
        return; /* the first fixture directory found is the one used */
    }
}

static char tiny_dir[64];

static void remove_tiny(void)
{
    if (tiny_dir[0]) pc_rm_dir(tiny_dir);
}

/* a 2-layer GPT-2 (n_embd 32, 4 heads, vocab 64) in a temp dir, removed at exit */
static int tiny_gpt2(pc_env *env)
{
    if (pc_temp_template(tiny_dir, sizeof tiny_dir, "gpt2") || !mkdtemp(tiny_dir)) {
        tiny_dir[0] = 0;
        return cli_fail("plugin-check: cannot make a temp dir for the tiny GPT-2");
    }
    atexit(remove_tiny);
    peft_gpt2_shape s = {2, 32, 4, 64, 32};
    char err[1024];
    if (peft_write_random_gpt2(tiny_dir, &s, 0, err, sizeof err)) return cli_fail("%s", err);
    return add_model(env, tiny_dir, "gpt2 (tiny)") ? 1 : 0;
}

/* ---- the table ---- */

typedef struct check {
    const char *name;
    pc_check_fn fn;
    int per_model; /* 1: once per model; 0: once, on the first model that took the adapter */
} check;

static const check CHECKS[] = {
    {"vtable", pc_check_vtable, 0},
    {"inject", pc_check_inject, 1},
    {"config-errors", pc_check_config, 0},
    {"backward", pc_check_backward, 1},
    {"merge", pc_check_merge, 1},
    {"unload", pc_check_unload, 1},
    {"disabled", pc_check_disabled, 1},
    {"save-load", pc_check_save_load, 1},
    {"threads", pc_check_threads, 1},
    {"valgrind", pc_check_valgrind, 0},
};

static int selected(const char *only, const char *name)
{
    if (!only) return 1;
    size_t n = strlen(name);
    for (const char *p = only; (p = strstr(p, name)); p += n)
        if ((p == only || p[-1] == ',') && (p[n] == 0 || p[n] == ',')) return 1;
    return 0;
}

static int counts[3];

static void report(int status, const char *name, const pc_model *m, const char *msg)
{
    static const char *const word[3] = {"PASS", "FAIL", "SKIP"};
    char full[160];
    if (m) snprintf(full, sizeof full, "%s [%s]", name, m->label);
    else snprintf(full, sizeof full, "%s", name);
    printf("%s  %-30s %s\n", word[status], full, msg);
    fflush(stdout);
    counts[status]++;
}

static void drop_warning(const char *msg, void *ud)
{
    (void)msg;
    (void)ud;
}

int cmd_plugin_check(int argc, char **argv)
{
    pc_env env;
    memset(&env, 0, sizeof env);
    env.timeout = 300;
    const char *only = NULL, *inner = NULL;
    const char *model_dirs[16];
    int n_dirs = 0, no_fixtures = 0;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(HELP, stdout);
            return 0;
        } else if ((v = cli_opt(argc, argv, &i, "--model"))) {
            if (n_dirs == 16) return cli_fail("plugin-check: at most 16 --model options");
            model_dirs[n_dirs++] = v;
        } else if ((v = cli_opt(argc, argv, &i, "--config"))) {
            env.config_path = v;
        } else if ((v = cli_opt(argc, argv, &i, "--only"))) {
            only = v;
        } else if ((v = cli_opt(argc, argv, &i, "--inner"))) {
            inner = v;
        } else if ((v = cli_opt(argc, argv, &i, "--timeout"))) {
            env.timeout = atoi(v);
            if (env.timeout <= 0) return cli_fail("--timeout must be a positive number of seconds");
        } else if (!strcmp(argv[i], "--no-fixtures")) {
            no_fixtures = 1;
        } else if (argv[i][0] == '-' || env.plugin) {
            fputs(HELP, stderr);
            cli_fail("plugin-check: unexpected argument '%s'", argv[i]);
            return 2;
        } else {
            env.plugin = argv[i];
        }
    }
    if (!env.plugin) {
        fputs(HELP, stderr);
        cli_fail("plugin-check: which plugin? (a path to a .so)");
        return 2;
    }
    if (env.config_path) {
        env.config_extra = cli_read_text(env.config_path);
        if (!env.config_extra) return 2;
        json_error_t je;
        json_t *j = json_loads(env.config_extra, 0, &je);
        int ok = json_is_object(j);
        json_decref(j);
        if (!ok) {
            cli_fail("%s: line %d: expected a JSON object of adapter config fields (%s)",
                     env.config_path, je.line, je.text);
            free(env.config_extra);
            return 2;
        }
    }
    char self[PATH_MAX];
    ssize_t sn = readlink("/proc/self/exe", self, sizeof self - 1);
    self[sn > 0 ? sn : 0] = 0;
    env.self_exe = self;
    peft_set_warning_handler(drop_warning, NULL);

    for (int i = 0; i < n_dirs; i++) add_model(&env, model_dirs[i], NULL);
    if (n_dirs == 0 && !no_fixtures) fixture_models(&env);
    if (n_dirs == 0 && !have_type(&env, "gpt2") && tiny_gpt2(&env)) return 2;
    for (int i = 1; n_dirs == 0 && i < env.n_models; i++) /* GPT-2 first: the once-only checks */
        if (!strcmp(env.models[i].model_type, "gpt2")) {
            pc_model t = env.models[0];
            env.models[0] = env.models[i];
            env.models[i] = t;
        }
    if (env.n_models == 0) {
        cli_fail("plugin-check: no model to run on");
        free(env.config_extra);
        return 2;
    }

    char msg[PC_MSG], err[2048];
    if (inner) { /* one check, in this process (the valgrind run) */
        env.vt = peft_registry_load_file(env.plugin, err, sizeof err);
        if (!env.vt) return cli_fail("%s", err);
        int st = PC_FAIL;
        for (size_t c = 0; c < sizeof CHECKS / sizeof CHECKS[0]; c++)
            if (!strcmp(CHECKS[c].name, inner) && CHECKS[c].fn != pc_check_valgrind)
                st = pc_run(&env, &env.models[0], CHECKS[c].fn, 0, msg, sizeof msg);
        report(st, inner, &env.models[0], st == PC_FAIL && !msg[0] ? "no such check" : msg);
        free(env.config_extra);
        return st == PC_FAIL;
    }

    printf("plugin-check %s on", env.plugin);
    for (int i = 0; i < env.n_models; i++) printf("%s %s", i ? "," : "", env.models[i].label);
    printf("\n");

    int st = pc_run(&env, NULL, pc_check_abi, 1, msg, sizeof msg);
    report(st, "abi", NULL, msg);
    if (st == PC_PASS) { /* it loaded cleanly in a child: load it here for its table */
        env.vt = peft_registry_load_file(env.plugin, err, sizeof err);
        if (!env.vt) report(PC_FAIL, "abi", NULL, err);
    }
    /* a model whose layers the plugin refuses (inject SKIP) gets no further checks; at least
     * one model must take the adapter. A failed inject (even a crash) does not stop the others:
     * each check reports for itself */
    int inject_ok[16], first_ok = 0;
    for (int i = 0; i < env.n_models; i++) inject_ok[i] = 1;
    for (size_t c = 0; c < sizeof CHECKS / sizeof CHECKS[0]; c++) {
        if (!selected(only, CHECKS[c].name)) continue;
        int is_inject = CHECKS[c].fn == pc_check_inject;
        for (int i = 0; i < env.n_models; i++) {
            if (!CHECKS[c].per_model && i != first_ok) continue;
            const pc_model *m = &env.models[i];
            if (!env.vt) {
                report(PC_SKIP, CHECKS[c].name, m, "the plugin did not load");
                continue;
            }
            if (!inject_ok[i]) {
                report(PC_SKIP, CHECKS[c].name, m, "no adapter on this model (see inject)");
                continue;
            }
            int fork_it = CHECKS[c].fn != pc_check_valgrind; /* that one runs a child itself */
            st = pc_run(&env, m, CHECKS[c].fn, fork_it, msg, sizeof msg);
            report(st, CHECKS[c].name, m, msg);
            if (is_inject) inject_ok[i] = st != PC_SKIP;
        }
        if (is_inject && env.vt) {
            while (first_ok < env.n_models && !inject_ok[first_ok]) first_ok++;
            if (first_ok == env.n_models) {
                report(PC_FAIL, "inject", NULL, "the plugin took no model: nothing else can be "
                       "checked");
                break;
            }
        }
    }
    printf("%d passed, %d failed, %d skipped\n", counts[PC_PASS], counts[PC_FAIL], counts[PC_SKIP]);
    free(env.config_extra);
    return counts[PC_FAIL] ? 1 : 0;
}
