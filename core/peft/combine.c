/* combine.c — peft_add_weighted_adapter (PEFT's add_weighted_adapter and
 * _check_add_weighted_adapter): checks what is common to every method (names, weights, one
 * method, modules_to_save, the options), builds the new adapter's config (the sources'
 * target_modules united here; the method's own fields by the plugin's combine_config entry),
 * adds it, then asks the plugin (vt->combine) to fill its state on every site from the sources'
 * states there. The core names no method: ranks, scalings and the arithmetic are the plugin's. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/io/cfg.h"
#include "peft/combine.h"
#include "core/peft/internal.h"
#include "core/model/site.h"
#include "peft/warn.h"
#include "core/tuner/plugin_call.h"

#define MAX_SOURCES 1024

void peft_combine_opts_init(peft_combine_opts *o)
{
    if (!o) return;
    memset(o, 0, sizeof *o);
    o->combination_type = "svd";
    o->svd_clamp = NAN;
    o->svd_full_matrices = 1;
    o->density = NAN;
    o->majority_sign_method = "total";
}

/* the combination types (PEFT's) and which need a density */
static const struct {
    const char *name;
    int density;
} kinds[] = {
    {"linear", 0},          {"ties", 1},         {"dare_linear", 1},     {"dare_ties", 1},
    {"magnitude_prune", 1}, {"cat", 0},          {"svd", 0},             {"ties_svd", 1},
    {"dare_linear_svd", 1}, {"dare_ties_svd", 1}, {"magnitude_prune_svd", 1},
};
#define N_KINDS ((int)(sizeof kinds / sizeof kinds[0]))

static int kind_of(const char *name)
{
    for (int i = 0; name && i < N_KINDS; i++)
        if (!strcmp(kinds[i].name, name)) return i;
    return -1;
}

/* target_modules of the new adapter: the union of lists or "(a)|(b)" of regexes; NULL with the
 * error set and its code in *rc */
static json_t *union_targets(peft_model *m, peft_adapter *const *src, int n, int *rc)
{
    *rc = PEFT_ENOMEM;
    const json_t *t0 = json_object_get(src[0]->config, "target_modules");
    for (int i = 0; i < n; i++) {
        const json_t *t = json_object_get(src[i]->config, "target_modules");
        if (!json_is_array(t) && !json_is_string(t)) {
            *rc = peft_set_error(m->ctx, PEFT_EINVAL, "add_weighted_adapter: adapter '%s' has "
                                 "no target_modules list or regex in its config", src[i]->name);
            return NULL;
        }
        if (json_is_array(t) != json_is_array(t0)) {
            *rc = peft_set_error(m->ctx, PEFT_EINVAL, "add_weighted_adapter: all adapter configs "
                                 "should follow the same target modules type: '%s' has a %s, "
                                 "'%s' a %s (combining list and regex target_modules is not "
                                 "supported)", src[0]->name,
                                 json_is_array(t0) ? "list" : "regex string", src[i]->name,
                                 json_is_array(t) ? "list" : "regex string");
            return NULL;
        }
    }
    if (json_is_string(t0)) {
        size_t len = 1;
        for (int i = 0; i < n; i++)
            len += strlen(json_string_value(json_object_get(src[i]->config, "target_modules"))) + 3;
        char *s = malloc(len), *p = s;
        if (!s) {
            peft_set_error(m->ctx, PEFT_ENOMEM, "out of memory");
            return NULL;
        }
        for (int i = 0; i < n; i++)
            p += sprintf(p, "%s(%s)", i ? "|" : "",
                         json_string_value(json_object_get(src[i]->config, "target_modules")));
        json_t *out = json_string(s);
        free(s);
        if (!out) peft_set_error(m->ctx, PEFT_ENOMEM, "out of memory");
        return out;
    }
    json_t *out = json_array();
    if (!out) peft_set_error(m->ctx, PEFT_ENOMEM, "out of memory");
    for (int i = 0; out && i < n; i++) {
        size_t j, k;
        json_t *v, *w;
        json_array_foreach(json_object_get(src[i]->config, "target_modules"), j, v) {
            int have = 0;
            json_array_foreach(out, k, w) have |= json_equal(v, w);
            if (!have) json_array_append(out, v);
        }
    }
    return out;
}

/* the new adapter's config text (caller frees): the first source's config with the united
 * target_modules, then the plugin's combine_config (which also writes opts' svd_rank); NULL
 * with the error set and its code in *rc */
static char *new_config(peft_model *m, peft_adapter *const *src, const double *weights, int n,
                        json_t *opts, int *rc)
{
    json_t *targets = union_targets(m, src, n, rc);
    if (!targets) return NULL;
    json_t *cfg = json_deep_copy(src[0]->config);
    char *text = NULL;
    if (!cfg || json_object_set(cfg, "target_modules", targets)) goto oom;
    const peft_tuner_vtable *vt = src[0]->vt;
    if (vt->combine_config) {
        peft_cfg *srcs = calloc((size_t)n, sizeof *srcs);
        const peft_cfg **sp = calloc((size_t)n, sizeof *sp);
        const char **names = calloc((size_t)n, sizeof *names);
        char err[1024] = "";
        int prc = -2;
        if (srcs && sp && names) {
            for (int i = 0; i < n; i++) {
                srcs[i].obj = src[i]->config;
                sp[i] = &srcs[i];
                names[i] = src[i]->name;
            }
            peft_cfg pc = {cfg}, po = {opts};
            prc = PEFT_PLUGIN_CALL(vt, "combine_config", NULL, NULL,
                                   vt->combine_config(&pc, sp, names, weights, n, &po, err, sizeof err));
        }
        free(srcs);
        free(sp);
        free(names);
        if (prc == -2) goto oom;
        if (prc) {
            *rc = peft_set_error(m->ctx, PEFT_EINVAL, "add_weighted_adapter: %s",
                                 err[0] ? err : "the plugin refused the combination");
            goto out;
        }
    }
    text = json_dumps(cfg, JSON_COMPACT);
    if (text) goto out;
oom:
    *rc = peft_set_error(m->ctx, PEFT_ENOMEM, "out of memory");
out:
    json_decref(targets);
    json_decref(cfg);
    return text;
}

/* the options object handed to the plugin; NULL on OOM */
static json_t *opts_json(const char *type, const peft_combine_opts *o)
{
    json_t *j = json_object();
    if (!j) return NULL;
    json_object_set_new(j, "combination_type", json_string(type));
    json_object_set_new(j, "svd_rank", json_integer(o->svd_rank));
    json_object_set_new(j, "svd_clamp", isnan(o->svd_clamp) ? json_null() : json_real(o->svd_clamp));
    json_object_set_new(j, "svd_full_matrices", json_boolean(o->svd_full_matrices));
    json_object_set_new(j, "density", isnan(o->density) ? json_null() : json_real(o->density));
    json_object_set_new(j, "majority_sign_method",
                        json_string(o->majority_sign_method ? o->majority_sign_method : "total"));
    return j;
}

/* the options and the sources; fills src[]. PEFT_OK or the error */
static int check(peft_model *m, const char *const *adapters, const double *weights, int n,
                 const char *name, const peft_combine_opts *o, int kind, peft_adapter **src)
{
    if (n > MAX_SOURCES)
        return peft_set_error(m->ctx, PEFT_EINVAL, "add_weighted_adapter: %d adapters, at most %d",
                              n, MAX_SOURCES);
    if (peft_find_adapter(m, name))
        return peft_set_error(m->ctx, PEFT_EINVAL, "add_weighted_adapter: an adapter named '%s' "
                              "already exists", name);
    for (int i = 0; i < n; i++) {
        if (!adapters[i] || !(src[i] = peft_find_adapter(m, adapters[i])))
            return peft_set_error(m->ctx, PEFT_ENOTFOUND, "add_weighted_adapter: adapter '%s' does "
                                  "not exist", adapters[i] ? adapters[i] : "(null)");
        if (!isfinite(weights[i]))
            return peft_set_error(m->ctx, PEFT_EINVAL, "add_weighted_adapter: the weight of '%s' "
                                  "is not a finite number", adapters[i]);
    }
    const peft_tuner_vtable *vt = src[0]->vt;
    for (int i = 1; i < n; i++)
        if (src[i]->vt != vt)
            return peft_set_error(m->ctx, PEFT_EINVAL, "add_weighted_adapter: adapter '%s' is %s "
                                  "but '%s' is %s: only adapters of one method can be combined",
                                  src[i]->name, src[i]->vt->peft_type, src[0]->name, vt->peft_type);
    if (!vt->combine)
        return peft_set_error(m->ctx, PEFT_EINVAL, "add_weighted_adapter: adapter '%s' is %s, whose "
                              "plugin (%s) cannot combine adapters (it has no combine entry)",
                              src[0]->name, vt->peft_type, vt->name);
    /* PEFT: two sources with modules_to_save copies of one module cannot be merged */
    for (int i = 0; i < m->n_mts; i++) {
        int owners = 0;
        const char *first = NULL, *second = NULL;
        for (int c = 0; c < m->mts[i].n_copies; c++)
            for (int j = 0; j < n; j++)
                if (m->mts[i].copies[c].owner == src[j]) {
                    owners++;
                    if (!first) first = src[j]->name;
                    else if (!second && strcmp(first, src[j]->name)) second = src[j]->name;
                    break;
                }
        if (owners > 1)
            return peft_set_error(m->ctx, PEFT_EINVAL, "add_weighted_adapter: cannot combine "
                                  "adapters that target the same module with modules_to_save: "
                                  "'%s' and '%s' both have a copy of %s", first,
                                  second ? second : first, m->mts[i].module);
    }
    /* options */
    if (kinds[kind].density) {
        if (isnan(o->density))
            return peft_set_error(m->ctx, PEFT_EINVAL, "add_weighted_adapter: combination_type "
                                  "'%s' needs a density (the fraction of values kept, in [0, 1])",
                                  kinds[kind].name);
        const int dare = !strncmp(kinds[kind].name, "dare", 4);
        if (!isfinite(o->density) || o->density < 0 || (dare && o->density == 0))
            return peft_set_error(m->ctx, PEFT_EINVAL, "add_weighted_adapter: density must be %s, "
                                  "got %g", dare ? "> 0 (DARE rescales by 1/density)" : ">= 0",
                                  o->density);
    }
    const char *sm = o->majority_sign_method;
    if (sm && strcmp(sm, "total") && strcmp(sm, "frequency"))
        return peft_set_error(m->ctx, PEFT_EINVAL, "add_weighted_adapter: majority_sign_method "
                              "must be \"total\" or \"frequency\", got \"%s\"", sm);
    if (!isnan(o->svd_clamp) && !(o->svd_clamp >= 0 && o->svd_clamp <= 1))
        return peft_set_error(m->ctx, PEFT_EINVAL, "add_weighted_adapter: svd_clamp must be a "
                              "quantile in [0, 1], got %g", o->svd_clamp);
    if (o->svd_rank < 0)
        return peft_set_error(m->ctx, PEFT_EINVAL, "add_weighted_adapter: svd_rank must be >= 0 "
                              "(0: the largest rank of the adapters), got %d", o->svd_rank);
    return PEFT_OK;
}

int peft_add_weighted_adapter(peft_model *m, const char *const *adapters, const double *weights,
                              int n, const char *adapter_name, const peft_combine_opts *opts)
{
    if (!m) return PEFT_EINVAL;
    if (!adapters || !weights || n < 1 || !adapter_name)
        return peft_set_error(m->ctx, PEFT_EINVAL, "add_weighted_adapter: needs at least one "
                              "adapter, as many weights, and a name for the new adapter");
    peft_combine_opts o;
    if (opts) o = *opts;
    else peft_combine_opts_init(&o);
    const char *type = o.combination_type ? o.combination_type : "svd";
    int kind = kind_of(type);
    if (kind < 0)
        return peft_set_error(m->ctx, PEFT_EINVAL, "add_weighted_adapter: invalid combination_type "
                              "'%s' (one of linear, cat, svd, ties, ties_svd, dare_linear, "
                              "dare_ties, dare_linear_svd, dare_ties_svd, magnitude_prune, "
                              "magnitude_prune_svd)", type);
    if (n == 1) kind = kind_of("linear"); /* PEFT: one adapter is always combined linearly */

    peft_adapter **src = calloc((size_t)n, sizeof *src);
    void **states = calloc((size_t)n, sizeof *states);
    json_t *oj = NULL;
    char *cfg_text = NULL;
    int rc;
    if (!src || !states) {
        rc = peft_set_error(m->ctx, PEFT_ENOMEM, "out of memory");
        goto out;
    }
    rc = check(m, adapters, weights, n, adapter_name, &o, kind, src);
    if (rc) goto out;
    if (kinds[kind].density && o.density >= 1) {
        char msg[160];
        snprintf(msg, sizeof msg, "The density %g is greater than or equal to 1, no pruning "
                 "will be performed.", o.density);
        peft_warn(msg);
    }
    oj = opts_json(kinds[kind].name, &o);
    if (!oj) {
        rc = peft_set_error(m->ctx, PEFT_ENOMEM, "out of memory");
        goto out;
    }
    cfg_text = new_config(m, src, weights, n, oj, &rc);
    if (!cfg_text) goto out;
    peft_adapter *a = NULL;
    rc = peft_add_adapter_from(m, adapter_name, cfg_text, "add_weighted_adapter", &a);
    if (rc) goto out;
    peft_adapter_set_trainable(m, a, 0); /* PEFT's _freeze_adapter */

    const peft_cfg pc = {oj};
    char err[1024] = "";
    PEFT_EACH_SITE_ADAPTER(it, m->base, a) {
        peft_site *s = it.site;
        for (int j = 0; j < n; j++) {
            int k = peft_site_find(s, src[j]);
            states[j] = k >= 0 ? s->chain[k].state : NULL;
        }
        if (PEFT_PLUGIN_CALL(a->vt, "combine", a->name, s->info.name,
                             a->vt->combine(it.sa->state, states, weights, n, &pc, &s->info,
                                            &m->ctx->rng, err, sizeof err))) {
            char msg[1400];
            snprintf(msg, sizeof msg, "add_weighted_adapter '%s' (%s) on %s: %s", adapter_name,
                     kinds[kind].name, s->info.name, err);
            peft_delete_adapter(m, adapter_name); /* nothing stays added */
            rc = peft_set_error(m->ctx, PEFT_EINVAL, "%s", msg);
            goto out;
        }
    }
    rc = PEFT_OK;
out:
    free(cfg_text);
    json_decref(oj);
    free(states);
    free(src);
    return rc;
}
