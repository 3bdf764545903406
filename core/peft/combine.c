/* peft_combine.c — peft_add_weighted_adapter (PEFT's LoraModel.add_weighted_adapter and
 * _check_add_weighted_adapter): checks the sources, builds the new adapter's config, adds it,
 * then asks the method's plugin (vt->combine) to fill its state on every site from the
 * sources' states there. The arithmetic lives in the plugin (plugins/lora/lora_combine.c). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/io/cfg.h"
#include "peft/combine.h"
#include "core/peft/internal.h"
#include "core/model/site.h"
#include "peft/warn.h"

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

/* what the core needs to know of each combination_type */
static const struct {
    const char *name;
    int equal_ranks; /* every source must have the same r; new r = it */
    int cat;         /* new r = the sum */
    int svd;         /* new r = svd_rank or the max */
    int density;     /* needs density */
    int sqrt_weights; /* A and B weighted by sqrt(weight * scaling): weights >= 0 */
} kinds[] = {
    {"linear", 1, 0, 0, 0, 1},          {"ties", 1, 0, 0, 1, 1},
    {"dare_linear", 1, 0, 0, 1, 1},     {"dare_ties", 1, 0, 0, 1, 1},
    {"magnitude_prune", 1, 0, 0, 1, 1}, {"cat", 0, 1, 0, 0, 0},
    {"svd", 0, 0, 1, 0, 0},             {"ties_svd", 0, 0, 1, 1, 0},
    {"dare_linear_svd", 0, 0, 1, 1, 0}, {"dare_ties_svd", 0, 0, 1, 1, 0},
    {"magnitude_prune_svd", 0, 0, 1, 1, 0},
};
#define N_KINDS ((int)(sizeof kinds / sizeof kinds[0]))

static int kind_of(const char *name)
{
    for (int i = 0; name && i < N_KINDS; i++)
        if (!strcmp(kinds[i].name, name)) return i;
    return -1;
}

/* a source's rank: r, or the largest of r and its rank_pattern values */
static int source_rank(peft_model *m, const peft_adapter *a, int64_t *out)
{
    json_t *r = json_object_get(a->config, "r");
    if (!json_is_integer(r) || json_integer_value(r) < 1)
        return peft_set_error(m->ctx, PEFT_EINVAL, "add_weighted_adapter: adapter '%s' (%s) has "
                              "no positive integer 'r' in its config", a->name, a->source);
    int64_t best = json_integer_value(r);
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(a->config, "rank_pattern"), k, v)
        if (json_is_number(v) && json_number_value(v) > (double)best)
            best = (int64_t)json_number_value(v);
    *out = best;
    return PEFT_OK;
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

/* the new adapter's config text (caller frees), or NULL with the error set and its code in *rc */
static char *new_config(peft_model *m, peft_adapter *const *src, int n, int64_t new_rank, int *rc)
{
    json_t *targets = union_targets(m, src, n, rc);
    if (!targets) return NULL;
    json_t *cfg = json_deep_copy(src[0]->config);
    char *text = NULL;
    if (cfg) {
        json_object_set_new(cfg, "r", json_integer(new_rank));
        json_object_set_new(cfg, "lora_alpha", json_integer(new_rank));
        json_object_set(cfg, "target_modules", targets);
        json_object_set_new(cfg, "rank_pattern", json_object());
        json_object_set_new(cfg, "alpha_pattern", json_object());
        if (json_is_string(json_object_get(cfg, "init_lora_weights")))
            json_object_set_new(cfg, "init_lora_weights", json_true());
        text = json_dumps(cfg, JSON_COMPACT);
    }
    if (!text) *rc = peft_set_error(m->ctx, PEFT_ENOMEM, "out of memory");
    json_decref(targets);
    json_decref(cfg);
    return text;
}

/* the options object handed to the plugin; NULL on OOM */
static json_t *opts_json(const char *type, const peft_combine_opts *o, int64_t new_rank)
{
    json_t *j = json_object();
    if (!j) return NULL;
    json_object_set_new(j, "combination_type", json_string(type));
    json_object_set_new(j, "svd_rank", json_integer(new_rank));
    json_object_set_new(j, "svd_clamp", isnan(o->svd_clamp) ? json_null() : json_real(o->svd_clamp));
    json_object_set_new(j, "svd_full_matrices", json_boolean(o->svd_full_matrices));
    json_object_set_new(j, "density", isnan(o->density) ? json_null() : json_real(o->density));
    json_object_set_new(j, "majority_sign_method",
                        json_string(o->majority_sign_method ? o->majority_sign_method : "total"));
    return j;
}

/* the options and the sources' configs; fills src[] and *new_rank. PEFT_OK or the error */
static int check(peft_model *m, const char *const *adapters, const double *weights, int n,
                 const char *name, const peft_combine_opts *o, int kind, peft_adapter **src,
                 int64_t *new_rank)
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
                              "plugin (%s) cannot combine adapters (no combine entry; LoRA can)",
                              src[0]->name, vt->peft_type, vt->name);
    for (int i = 0; i < n; i++) {
        json_t *d = json_object_get(src[i]->config, "use_dora");
        if (json_is_true(d))
            return peft_set_error(m->ctx, PEFT_EINVAL, "add_weighted_adapter: adapter '%s' uses "
                                  "DoRA (use_dora: true): combining DoRA adapters is not supported "
                                  "(PEFT 0.13.2 silently drops their magnitude vectors)",
                                  src[i]->name);
    }
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
    if (kinds[kind].sqrt_weights)
        for (int i = 0; i < n; i++)
            if (weights[i] < 0)
                return peft_set_error(m->ctx, PEFT_EINVAL, "add_weighted_adapter: the weight of "
                                      "'%s' is %g: combination_type '%s' weighs lora_A and lora_B "
                                      "by sqrt(weight * scaling), so weights must be >= 0 (use "
                                      "cat or svd for negative weights)",
                                      src[i]->name, weights[i], kinds[kind].name);
    /* ranks */
    int64_t r0 = 0, sum = 0, max = 0;
    for (int i = 0; i < n; i++) {
        int64_t r = 0;
        int rc = source_rank(m, src[i], &r);
        if (rc) return rc;
        if (i == 0) r0 = r;
        if (kinds[kind].equal_ranks && r != r0)
            return peft_set_error(m->ctx, PEFT_EINVAL, "add_weighted_adapter: all adapters must "
                                  "have the same r value when using combination_type linear, "
                                  "ties, dare_ties, dare_linear or magnitude_prune: '%s' has r = "
                                  "%lld, '%s' r = %lld (use cat or svd)", src[0]->name,
                                  (long long)r0, src[i]->name, (long long)r);
        sum += r;
        if (r > max) max = r;
    }
    *new_rank = kinds[kind].equal_ranks ? r0 : kinds[kind].cat ? sum
                : o->svd_rank > 0 ? o->svd_rank : max;
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
    int64_t new_rank = 0;
    rc = check(m, adapters, weights, n, adapter_name, &o, kind, src, &new_rank);
    if (rc) goto out;
    if (kinds[kind].density && o.density >= 1) {
        char msg[160];
        snprintf(msg, sizeof msg, "The density %g is greater than or equal to 1, no pruning "
                 "will be performed.", o.density);
        peft_warn(msg);
    }
    cfg_text = new_config(m, src, n, new_rank, &rc);
    if (!cfg_text) goto out;
    oj = opts_json(kinds[kind].name, &o, new_rank);
    if (!oj) {
        rc = peft_set_error(m->ctx, PEFT_ENOMEM, "out of memory");
        goto out;
    }
    peft_adapter *a = NULL;
    rc = peft_add_adapter_from(m, adapter_name, cfg_text, "add_weighted_adapter", &a);
    if (rc) goto out;
    peft_adapter_set_trainable(m, a, 0); /* PEFT's _freeze_adapter */

    const peft_cfg pc = {oj};
    char err[1024] = "";
    for (size_t i = 0; i < m->base->n_sites; i++) {
        peft_site *s = m->base->sites[i];
        int at = peft_site_find(s, a);
        if (at < 0) continue;
        for (int j = 0; j < n; j++) {
            int k = peft_site_find(s, src[j]);
            states[j] = k >= 0 ? s->chain[k].state : NULL;
        }
        if (a->vt->combine(s->chain[at].state, states, weights, n, &pc, &s->info, &m->ctx->rng,
                           err, sizeof err)) {
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
