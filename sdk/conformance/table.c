/* table.c — the conformance table: the checks every tuner plugin must pass and the order they
 * run in, once for `peft plugin-check` (cli/cmd_plugin_check.c) and the test suites alike.
 * abi first (in a child), then each check once or per model; a model whose layers the plugin
 * refuses (inject SKIP) gets no further checks, and at least one model must take the adapter. */
#include <stdio.h>
#include <string.h>

#include "conformance.h"
#include "peft/registry.h"

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

pc_check_fn pc_check_named(const char *name)
{
    for (size_t c = 0; c < sizeof CHECKS / sizeof CHECKS[0]; c++)
        if (!strcmp(CHECKS[c].name, name)) return CHECKS[c].fn;
    return NULL;
}

int pc_table_run(pc_env *env, const char *only, pc_report_fn report, void *ud)
{
    int counts[3] = {0, 0, 0};
    char msg[PC_MSG], err[2048];
#define REPORT(st, name, m, text) (counts[(st)]++, report((st), (name), (m), (text), ud))
    int st = pc_run(env, NULL, pc_check_abi, 1, msg, sizeof msg);
    REPORT(st, "abi", NULL, msg);
    if (st == PC_PASS) { /* it loaded cleanly in a child: load it here for its table */
        env->vt = pc_plugin_load(env->plugin, err, sizeof err);
        if (!env->vt) REPORT(PC_FAIL, "abi", NULL, err);
    }
    /* a failed inject (even a crash) does not stop the others: each check reports for itself */
    int inject_ok[PC_MAX_MODELS], first_ok = 0;
    for (int i = 0; i < env->n_models; i++) inject_ok[i] = 1;
    for (size_t c = 0; c < sizeof CHECKS / sizeof CHECKS[0]; c++) {
        if (!selected(only, CHECKS[c].name)) continue;
        int is_inject = CHECKS[c].fn == pc_check_inject;
        for (int i = 0; i < env->n_models; i++) {
            if (!CHECKS[c].per_model && i != first_ok) continue;
            const pc_model *m = &env->models[i];
            if (!env->vt) {
                REPORT(PC_SKIP, CHECKS[c].name, m, "the plugin did not load");
                continue;
            }
            if (!inject_ok[i]) {
                REPORT(PC_SKIP, CHECKS[c].name, m, "no adapter on this model (see inject)");
                continue;
            }
            int fork_it = CHECKS[c].fn != pc_check_valgrind; /* that one runs a child itself */
            st = pc_run(env, m, CHECKS[c].fn, fork_it, msg, sizeof msg);
            REPORT(st, CHECKS[c].name, m, msg);
            if (is_inject) inject_ok[i] = st != PC_SKIP;
        }
        if (is_inject && env->vt) {
            while (first_ok < env->n_models && !inject_ok[first_ok]) first_ok++;
            if (first_ok == env->n_models) {
                REPORT(PC_FAIL, "inject", NULL, "the plugin took no model: nothing else can be "
                       "checked");
                break;
            }
        }
    }
#undef REPORT
    env->counts[0] = counts[0];
    env->counts[1] = counts[1];
    env->counts[2] = counts[2];
    return counts[PC_FAIL] ? 1 : 0;
}

const peft_tuner_vtable *pc_plugin_load(const char *path, char *err, size_t errlen)
{
    const peft_tuner_vtable *vt = NULL;
    peft_ctx *ctx = peft_ctx_new(0);
    if (!ctx || peft_plugin_load_file(ctx, path, &vt))
        snprintf(err, errlen, "%s", ctx ? peft_errmsg(ctx) : "out of memory");
    peft_ctx_free(ctx);
    return vt;
}
