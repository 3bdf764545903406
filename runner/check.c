/* runner_check.c — the runner's pre-flight: everything that can go wrong is found before the
 * first step runs. Each adapter's plugin is loaded (an unknown one gets "did you mean" from the
 * plugins on the search path), its fields are checked against the plugin's known keys, each
 * run's adapters are built on a weight-free copy of the base model (so the plugins' own config
 * validation and target matching run), and the data files are parsed for the task against the
 * model's vocabulary. Errors name file:line:col of the YAML node at fault. */
#define _GNU_SOURCE
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "peft/tokenizer.h"
#include "peft/registry.h"
#include "runner/runner.h"

/* plugin names found on the search path, for suggestions */
static size_t plugin_names(char names[][64], size_t max)
{
    char dirs[2048] = "";
    const char *env = getenv("PEFT_PLUGIN_PATH");
    snprintf(dirs, sizeof dirs, "%s%s%s:%s", env ? env : "", env ? ":" : "", PEFT_PLUGIN_BUILD_DIR,
             PEFT_PLUGIN_INSTALL_DIR);
    size_t n = 0;
    char *save = NULL;
    for (char *d = strtok_r(dirs, ":", &save); d && n < max; d = strtok_r(NULL, ":", &save)) {
        DIR *dh = opendir(d);
        if (!dh) continue;
        struct dirent *de;
        while ((de = readdir(dh)) && n < max) {
            size_t l = strlen(de->d_name);
            if (l < 4 || l > 60 || strcmp(de->d_name + l - 3, ".so")) continue;
            snprintf(names[n], 64, "%.*s", (int)(l - 3), de->d_name);
            int dup = 0;
            for (size_t i = 0; i < n; i++) dup |= !strcmp(names[i], names[n]);
            n += !dup;
        }
        closedir(dh);
    }
    return n;
}

/* the node holding value text under key in an adapter mapping (a sweep's item if swept) */
static const runner_node *field_node(const runner_node *ad, const char *key, const char *text)
{
    const runner_node *v = runner_map_get(ad, key);
    if (v && v->kind == RUNNER_NODE_SEQ && text)
        for (size_t i = 0; i < v->n; i++)
            if (v->items[i]->kind == RUNNER_NODE_SCALAR && !strcmp(v->items[i]->text, text)) return v->items[i];
    return v ? v : ad;
}

static int check_plugin(const runner_config *c, const runner_adapter *a,
                        const peft_tuner_vtable **vt_out, char *err, size_t errlen)
{
    char perr[1024] = "";
    const peft_tuner_vtable *vt = NULL;
    peft_ctx *pctx = peft_ctx_new(0);
    if (!pctx || peft_plugin_get(pctx, a->method, &vt))
        snprintf(perr, sizeof perr, "%s", pctx ? peft_errmsg(pctx) : "out of memory");
    peft_ctx_free(pctx);
    const runner_node *mn = field_node(a->node, "method", a->method);
    if (!vt) {
        char names[64][64];
        const char *cand[64];
        size_t n = plugin_names(names, 64);
        for (size_t i = 0; i < n; i++) cand[i] = names[i];
        const char *dym = peft_did_you_mean(a->method, cand, n);
        if (dym)
            runner_errat(err, errlen, c, mn, "unknown plugin '%s' (did you mean '%s'?)", a->method, dym);
        else
            runner_errat(err, errlen, c, mn, "unknown plugin '%s': %s", a->method, perr);
        return -1;
    }
    for (size_t i = 0; i < a->node->n; i++) {
        const char *k = a->node->keys[i]->text;
        if (!strcmp(k, "method") || !strcmp(k, "name")) continue;
        int known = 0;
        size_t nk = 0;
        for (const char *const *p = vt->config_keys; p && *p; p++, nk++) known |= !strcmp(*p, k);
        if (known) continue;
        const char *dym = vt->config_keys ? peft_did_you_mean(k, (const char *const *)vt->config_keys, nk) : NULL;
        if (!dym) {
            static const char *const own[] = {"method", "name"};
            dym = peft_did_you_mean(k, own, 2);
        }
        if (dym)
            runner_errat(err, errlen, c, a->node->keys[i], "unknown field '%s' for %s (did you mean '%s'?)",
                         k, a->method, dym);
        else
            runner_errat(err, errlen, c, a->node->keys[i], "unknown field '%s' for %s", k, a->method);
        return -1;
    }
    *vt_out = vt;
    return 0;
}

/* the YAML node an error message is most likely about: a field of the adapter named in it */
static const runner_node *blame(const runner_adapter *a, const char *msg)
{
    const runner_node *best = a->node;
    size_t best_len = 0;
    for (size_t i = 0; i < a->node->n; i++) {
        const char *k = a->node->keys[i]->text;
        size_t l = strlen(k);
        for (const char *p = strstr(msg, k); p; p = strstr(p + 1, k)) {
            int left = p == msg || !(p[-1] == '_' || (p[-1] >= 'a' && p[-1] <= 'z'));
            int right = !(p[l] == '_' || (p[l] >= 'a' && p[l] <= 'z'));
            if (left && right && l > best_len) best = a->node->items[i], best_len = l;
        }
    }
    return best;
}

/* builds the run's adapters on a weight-free base model */
static int check_run_model(const runner_config *c, const runner_run *r, const char *config_path,
                           char *err, size_t errlen)
{
    peft_base_model *base;
    peft_ctx *ctx = peft_ctx_new(r->seed);
    if (!ctx) return snprintf(err, errlen, "out of memory"), -1;
    if (peft_load_base_model_meta(ctx, config_path, runner_task_peft_type(c->task), &base)) {
        runner_errat(err, errlen, c, runner_map_get(c->root, "base_model"), "%s", peft_errmsg(ctx));
        peft_ctx_free(ctx);
        return -1;
    }
    peft_set_tokenizer(ctx, peft_tokenizer_text_hook, NULL);
    peft_model *m = NULL;
    int mixed = 0, rc = -1;
    for (int i = 1; i < r->n_adapters; i++) mixed |= strcmp(r->adapters[i].method, r->adapters[0].method) != 0;
    const char *names[16];
    for (int i = 0; i < r->n_adapters; i++) {
        const runner_adapter *a = &r->adapters[i];
        char *json = json_dumps(a->config, JSON_COMPACT);
        if (!json) { snprintf(err, errlen, "out of memory"); goto out; }
        int e = i == 0 ? peft_get_peft_model(ctx, base, json, a->name, mixed, &m)
                       : peft_add_adapter(m, a->name, json);
        free(json);
        if (e) {
            if (i == 0) peft_base_model_free(base);
            const char *msg = peft_errmsg(ctx);
            runner_errat(err, errlen, c, blame(a, msg), "run '%s', adapter '%s' (%s): %s", r->name,
                         a->name, a->method, msg);
            goto out;
        }
        names[i] = a->name;
    }
    if (r->n_adapters > 1 && peft_set_adapters(m, names, r->n_adapters)) {
        runner_errat(err, errlen, c, r->node, "run '%s': %s", r->name, peft_errmsg(ctx));
        goto out;
    }
    rc = 0;
out:
    peft_model_free(m);
    peft_ctx_free(ctx);
    return rc;
}

int runner_check(runner_config *c, char *err, size_t errlen)
{
    char *config_path = NULL, merr[1024];
    if (asprintf(&config_path, "%s/config.json", c->base_model) < 0) return snprintf(err, errlen, "out of memory"), -1;
    int rc = -1;
    peft_base_model *meta = NULL;
    peft_tokenizer *tk = NULL;
    runner_dataset d = {0};
    peft_ctx *pctx = peft_ctx_new(0);
    if (!pctx) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    if (!runner_file_exists(config_path)) {
        runner_errat(err, errlen, c, runner_map_get(c->root, "base_model"), "%s: no such file (base_model "
                     "must be a Hugging Face model directory)", config_path);
        goto out;
    }
    for (int i = 0; i < c->n_runs; i++)
        for (int j = 0; j < c->runs[i].n_adapters; j++) {
            const peft_tuner_vtable *vt;
            if (check_plugin(c, &c->runs[i].adapters[j], &vt, err, errlen)) goto out;
            json_object_set_new(c->runs[i].adapters[j].config, "peft_type", json_string(vt->peft_type));
        }
    for (int i = 0; i < c->n_runs; i++)
        if (check_run_model(c, &c->runs[i], config_path, err, errlen)) goto out;
    /* the data against the model */
    if (peft_load_base_model_meta(pctx, config_path, runner_task_peft_type(c->task), &meta)) {
        runner_errat(err, errlen, c, runner_map_get(c->root, "base_model"), "%s", peft_errmsg(pctx));
        goto out;
    }
    int64_t vocab, num_labels = 2;
    if (peft_config_int(pctx, meta, "vocab_size", 0, 0, &vocab) ||
        peft_config_int(pctx, meta, "num_labels", 1, 2, &num_labels)) {
        runner_errat(err, errlen, c, runner_map_get(c->root, "base_model"), "%s", peft_errmsg(pctx));
        goto out;
    }
    num_labels = peft_base_model_num_labels(meta);
    if (runner_check_tokenizer(c, &tk, err, errlen)) goto out;
    const char *paths[2] = {c->train_path, c->eval_path};
    const char *keys[2] = {"train", "eval"};
    for (int i = 0; i < 2; i++) {
        if (runner_data_load(paths[i], c->task, c->max_length, vocab, num_labels, tk, &d, merr, sizeof merr)) {
            runner_errat(err, errlen, c, runner_map_get(runner_map_get(c->root, "data"), keys[i]), "%s", merr);
            goto out;
        }
        runner_data_free(&d);
    }
    if (runner_mkdirs(c->output_dir, merr, sizeof merr)) {
        runner_errat(err, errlen, c, runner_map_get(c->root, "output_dir"), "%s", merr);
        goto out;
    }
    rc = 0;
    c->checked = 1;
out:
    peft_tokenizer_free(tk);
    peft_base_model_free(meta);
    peft_ctx_free(pctx);
    free(config_path);
    return rc;
}

int runner_check_tokenizer(const runner_config *c, peft_tokenizer **tk, char *err, size_t errlen)
{
    *tk = NULL;
    char *p = NULL, terr[1024];
    if (asprintf(&p, "%s/tokenizer.json", c->base_model) < 0) return snprintf(err, errlen, "out of memory"), -1;
    int rc = 0;
    if (runner_file_exists(p) && peft_tokenizer_load(c->base_model, tk, terr, sizeof terr)) {
        runner_errat(err, errlen, c, runner_map_get(c->root, "base_model"), "%s", terr);
        rc = -1;
    }
    free(p);
    return rc;
}
