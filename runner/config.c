/* runner_config.c — the experiments YAML schema: known keys (with "did you mean"), types and
 * ranges, defaults, path resolution, and the expansion of sweeps into runs.
 *
 * A field whose value is a list sweeps (except fields whose value is itself a list, such as
 * target_modules: there a list of lists sweeps). Sweepable: seed, every training field (at the
 * top or per experiment) and every adapter field including method. An experiment expands into
 * the cartesian product of its swept fields, in the order they appear, the last varying fastest.
 */
#define _GNU_SOURCE
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "peft/optim.h"
#include "runner/runner.h"

static const char *const TOP_KEYS[] = {"name", "base_model", "task", "metric", "seed", "seeds",
                                       "repeats", "compare", "output_dir", "data", "training",
                                       "experiments"};
static const char *const DATA_KEYS[] = {"train", "eval", "max_length", "eval_examples"};
static const char *const TRAIN_KEYS[] = {
    "steps", "batch_size", "gradient_accumulation_steps", "learning_rate", "weight_decay",
    "adam_beta1", "adam_beta2", "adam_epsilon", "lr_scheduler_type", "warmup_steps",
    "max_grad_norm", "eval_steps", "save_steps", "eval_batch_size", "eval_on_start", "on_nonfinite",
    "data_parallel"};
static const char *const EXP_KEYS[] = {"name", "adapters", "training", "seed", "seeds", "repeats"};
static const char *const TASKS[] = {"causal_lm", "seq_cls", "token_cls", "question_answering",
                                    "seq2seq"};
static const char *const TASK_TYPES[] = {"CAUSAL_LM", "SEQ_CLS", "TOKEN_CLS", "QUESTION_ANS",
                                         "SEQ_2_SEQ_LM"};
static const char *const METRICS[] = {"accuracy", "exact_match", "perplexity"};
static const char *const SCHEDULES[] = {"constant", "linear", "cosine"};
static const char *const NONFINITE[] = {"stop", "skip"}; /* RUNNER_NONFINITE_* */
/* adapter fields whose value is a list: a list of lists sweeps them */
static const char *const LIST_FIELDS[] = {"target_modules", "modules_to_save", "exclude_modules",
                                          "feedforward_modules", "layers_to_transform",
                                          "layers_pattern"};
#define N_OF(a) (sizeof(a) / sizeof *(a))

const char *runner_task_name(int t) { return t >= 0 && t < (int)N_OF(TASKS) ? TASKS[t] : "?"; }
const char *runner_task_peft_type(int t) { return t >= 0 && t < (int)N_OF(TASKS) ? TASK_TYPES[t] : "?"; }
const char *runner_metric_name(int m) { return m >= 0 && m < (int)N_OF(METRICS) ? METRICS[m] : "?"; }

/* ---- errors and suggestions ---------------------------------------------------------------- */

void runner_errat(char *err, size_t errlen, const runner_config *c, const runner_node *n,
                  const char *fmt, ...)
{
    int k = n && n->origin ? snprintf(err, errlen, "%s: ", n->origin)
                           : snprintf(err, errlen, "%s:%d:%d: ", c->path, n ? n->line : 1, n ? n->col : 1);
    if (k < 0 || (size_t)k >= errlen) return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err + k, errlen - (size_t)k, fmt, ap);
    va_end(ap);
}

static int in_list(const char *s, const char *const *l, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(s, l[i])) return (int)i;
    return -1;
}

/* every key of map must be in keys; what names the mapping ("training", "an experiment") */
static int check_keys(const runner_config *c, const runner_node *map, const char *const *keys,
                      size_t n, const char *what, char *err, size_t errlen)
{
    for (size_t i = 0; i < map->n; i++) {
        const char *k = map->keys[i]->text;
        if (in_list(k, keys, n) >= 0) continue;
        const char *dym = peft_did_you_mean(k, keys, n);
        char known[1024] = "";
        for (size_t j = 0, o = 0; j < n && o < sizeof known; j++)
            o += (size_t)snprintf(known + o, sizeof known - o, "%s%s", j ? ", " : "", keys[j]);
        if (dym)
            runner_errat(err, errlen, c, map->keys[i], "unknown key '%s' in %s (did you mean '%s'?)", k, what, dym);
        else
            runner_errat(err, errlen, c, map->keys[i], "unknown key '%s' in %s (known: %s)", k, what, known);
        return -1;
    }
    return 0;
}

static int want_kind(const runner_config *c, const runner_node *n, int kind, const char *what,
                     char *err, size_t errlen)
{
    if (n->kind == kind) return 0;
    runner_errat(err, errlen, c, n, "%s must be %s, not %s", what,
                 kind == RUNNER_NODE_MAP ? "a mapping" : kind == RUNNER_NODE_SEQ ? "a list" : "a value",
                 runner_node_kind_name(n));
    return -1;
}

static int get_string(const runner_config *c, const runner_node *n, const char *what,
                      const char **out, char *err, size_t errlen)
{
    int t = runner_scalar_type(n);
    if (t != RUNNER_SCALAR_STRING && t != RUNNER_SCALAR_INT && t != RUNNER_SCALAR_FLOAT) {
        runner_errat(err, errlen, c, n, "%s must be a string, not %s", what, runner_node_kind_name(n));
        return -1;
    }
    *out = n->text;
    return 0;
}

static int get_int(const runner_config *c, const runner_node *n, const char *what, int64_t lo,
                   int64_t *out, char *err, size_t errlen)
{
    if (runner_scalar_type(n) != RUNNER_SCALAR_INT) {
        runner_errat(err, errlen, c, n, "%s must be an integer, not %s%s%s%s", what,
                     runner_node_kind_name(n), n->kind == RUNNER_NODE_SCALAR ? " '" : "",
                     n->kind == RUNNER_NODE_SCALAR ? n->text : "", n->kind == RUNNER_NODE_SCALAR ? "'" : "");
        return -1;
    }
    char *end;
    long long v = strtoll(n->text, &end, 10);
    if (v < lo || v > ((int64_t)1 << 40)) {
        runner_errat(err, errlen, c, n, "%s must be between %lld and %lld (got %s)", what,
                     (long long)lo, (long long)1 << 40, n->text);
        return -1;
    }
    *out = v;
    return 0;
}

static int get_real(const runner_config *c, const runner_node *n, const char *what, double lo,
                    double hi, int hi_open, double *out, char *err, size_t errlen)
{
    int t = runner_scalar_type(n);
    if (t != RUNNER_SCALAR_INT && t != RUNNER_SCALAR_FLOAT) {
        runner_errat(err, errlen, c, n, "%s must be a number, not %s%s%s%s", what,
                     runner_node_kind_name(n), n->kind == RUNNER_NODE_SCALAR ? " '" : "",
                     n->kind == RUNNER_NODE_SCALAR ? n->text : "", n->kind == RUNNER_NODE_SCALAR ? "'" : "");
        return -1;
    }
    double v = strtod(n->text, NULL);
    if (!(v >= lo) || !(hi_open ? v < hi : v <= hi)) {
        runner_errat(err, errlen, c, n, "%s must be in [%g, %g%c (got %s)", what, lo, hi,
                     hi_open ? ')' : ']', n->text);
        return -1;
    }
    *out = v;
    return 0;
}

static int get_bool(const runner_config *c, const runner_node *n, const char *what, int *out,
                    char *err, size_t errlen)
{
    if (runner_scalar_type(n) != RUNNER_SCALAR_BOOL) {
        runner_errat(err, errlen, c, n, "%s must be true or false, not %s%s%s%s", what,
                     runner_node_kind_name(n), n->kind == RUNNER_NODE_SCALAR ? " '" : "",
                     n->kind == RUNNER_NODE_SCALAR ? n->text : "", n->kind == RUNNER_NODE_SCALAR ? "'" : "");
        return -1;
    }
    *out = n->text[0] == 't' || n->text[0] == 'T';
    return 0;
}

/* a string from a fixed set, with a suggestion */
static int get_choice(const runner_config *c, const runner_node *n, const char *what,
                      const char *const *set, size_t nset, int *out, char *err, size_t errlen)
{
    const char *s;
    if (get_string(c, n, what, &s, err, errlen)) return -1;
    int i = in_list(s, set, nset);
    if (i >= 0) return *out = i, 0;
    char known[512] = "";
    for (size_t j = 0, o = 0; j < nset && o < sizeof known; j++)
        o += (size_t)snprintf(known + o, sizeof known - o, "%s%s", j ? ", " : "", set[j]);
    const char *dym = peft_did_you_mean(s, set, nset);
    if (dym) runner_errat(err, errlen, c, n, "unknown %s '%s' (did you mean '%s'?)", what, s, dym);
    else runner_errat(err, errlen, c, n, "unknown %s '%s' (one of: %s)", what, s, known);
    return -1;
}

/* ---- sweeps --------------------------------------------------------------------------------- */

/* One setting of an experiment: where it comes from and, when swept, its values. */
typedef struct slot {
    int kind;             /* SLOT_SEED, SLOT_TRAIN, SLOT_ADAPTER */
    int adapter;          /* SLOT_ADAPTER: index */
    const char *key;
    const runner_node *node;
    int swept;
} slot;
#define SLOT_SEED 0
#define SLOT_TRAIN 1
#define SLOT_ADAPTER 2

static int is_sweep(const runner_node *v, int list_valued)
{
    if (v->kind != RUNNER_NODE_SEQ) return 0;
    if (!list_valued) return 1;
    if (v->n == 0) return 0;
    for (size_t i = 0; i < v->n; i++)
        if (v->items[i]->kind != RUNNER_NODE_SEQ) return 0;
    return 1;
}

static const runner_node *slot_value(const slot *s, const size_t *choice, size_t i)
{
    return s->swept ? s->node->items[choice[i]] : s->node;
}

/* "4", "q_proj+v_proj" */
static void value_label(const runner_node *v, char *out, size_t len)
{
    if (v->kind == RUNNER_NODE_SCALAR) {
        snprintf(out, len, "%s", v->text);
    } else if (v->kind == RUNNER_NODE_SEQ) {
        size_t o = 0;
        out[0] = 0;
        for (size_t i = 0; i < v->n && o < len; i++) {
            char sub[128];
            value_label(v->items[i], sub, sizeof sub);
            o += (size_t)snprintf(out + o, len - o, "%s%s", i ? "+" : "", sub);
        }
    } else {
        snprintf(out, len, "map");
    }
    for (char *p = out; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '.' || *p == '-' || *p == '+' || *p == '_'))
            *p = '_';
}

/* training settings of one run from the chosen value nodes */
static int set_train(const runner_config *c, runner_train_cfg *t, const char *k, const runner_node *v,
                     char *err, size_t errlen)
{
    if (!strcmp(k, "steps")) return get_int(c, v, "training.steps", 1, &t->steps, err, errlen);
    if (!strcmp(k, "batch_size")) return get_int(c, v, "training.batch_size", 1, &t->batch_size, err, errlen);
    if (!strcmp(k, "gradient_accumulation_steps"))
        return get_int(c, v, "training.gradient_accumulation_steps", 1, &t->grad_accum, err, errlen);
    if (!strcmp(k, "warmup_steps")) return get_int(c, v, "training.warmup_steps", 0, &t->warmup_steps, err, errlen);
    if (!strcmp(k, "eval_steps")) return get_int(c, v, "training.eval_steps", 1, &t->eval_steps, err, errlen);
    if (!strcmp(k, "save_steps")) return get_int(c, v, "training.save_steps", 1, &t->save_steps, err, errlen);
    if (!strcmp(k, "eval_batch_size"))
        return get_int(c, v, "training.eval_batch_size", 1, &t->eval_batch_size, err, errlen);
    if (!strcmp(k, "eval_on_start")) return get_bool(c, v, "training.eval_on_start", &t->eval_on_start, err, errlen);
    if (!strcmp(k, "data_parallel"))
        return get_int(c, v, "training.data_parallel", 1, &t->data_parallel, err, errlen);
    if (!strcmp(k, "learning_rate"))
        return get_real(c, v, "training.learning_rate", 1e-12, 10, 0, &t->lr, err, errlen);
    if (!strcmp(k, "weight_decay")) return get_real(c, v, "training.weight_decay", 0, 10, 0, &t->weight_decay, err, errlen);
    if (!strcmp(k, "adam_beta1")) return get_real(c, v, "training.adam_beta1", 0, 1, 1, &t->beta1, err, errlen);
    if (!strcmp(k, "adam_beta2")) return get_real(c, v, "training.adam_beta2", 0, 1, 1, &t->beta2, err, errlen);
    if (!strcmp(k, "adam_epsilon")) return get_real(c, v, "training.adam_epsilon", 1e-30, 1, 0, &t->eps, err, errlen);
    if (!strcmp(k, "max_grad_norm"))
        return get_real(c, v, "training.max_grad_norm", 0, 1e30, 0, &t->max_grad_norm, err, errlen);
    if (!strcmp(k, "lr_scheduler_type"))
        return get_choice(c, v, "lr_scheduler_type", SCHEDULES, N_OF(SCHEDULES), &t->schedule, err, errlen);
    if (!strcmp(k, "on_nonfinite"))
        return get_choice(c, v, "on_nonfinite", NONFINITE, N_OF(NONFINITE), &t->on_nonfinite, err, errlen);
    return 0;
}

typedef struct exp_ctx {
    const runner_node *exp;
    const runner_node *adapters;
    const char *name;
    slot *slots;
    size_t n_slots;
} exp_ctx;

static int add_slot(exp_ctx *e, int kind, int adapter, const char *key, const runner_node *node,
                    int list_valued)
{
    for (size_t i = 0; i < e->n_slots; i++) /* an experiment's training overrides the top */
        if (e->slots[i].kind == kind && kind != SLOT_ADAPTER && !strcmp(e->slots[i].key, key)) {
            e->slots[i].node = node;
            e->slots[i].swept = is_sweep(node, list_valued);
            return 0;
        }
    slot *s = realloc(e->slots, (e->n_slots + 1) * sizeof *s);
    if (!s) return -1;
    e->slots = s;
    e->slots[e->n_slots++] = (slot){kind, adapter, key, node, is_sweep(node, list_valued)};
    return 0;
}

static void free_run(runner_run *r)
{
    free(r->name);
    free(r->group);
    free(r->experiment);
    for (int i = 0; i < r->n_adapters; i++) {
        free(r->adapters[i].name);
        free(r->adapters[i].method);
        json_decref(r->adapters[i].config);
    }
    free(r->adapters);
    json_decref(r->swept);
}

/* slot s's value v into run r; *have_eval / *have_save: training set eval_steps / save_steps.
 * 0 or -1 with err */
static int apply_slot(runner_config *c, const slot *s, const runner_node *v, runner_run *r, int *have_eval,
                      int *have_save, char *err, size_t errlen)
{
    if (s->kind == SLOT_SEED) {
        int64_t seed;
        if (get_int(c, v, "seed", 0, &seed, err, errlen)) return -1;
        r->seed = (uint64_t)seed;
    } else if (s->kind == SLOT_TRAIN) {
        if (v->kind != RUNNER_NODE_SCALAR) {
            runner_errat(err, errlen, c, v, "training.%s must be a single value (a list sweeps; "
                         "a list inside a list is not a value)", s->key);
            return -1;
        }
        if (set_train(c, &r->train, s->key, v, err, errlen)) return -1;
        *have_eval |= !strcmp(s->key, "eval_steps");
        *have_save |= !strcmp(s->key, "save_steps");
    } else {
        runner_adapter *ad = &r->adapters[s->adapter];
        const int is_method = !strcmp(s->key, "method");
        if (is_method || !strcmp(s->key, "name")) {
            const char *m;
            if (get_string(c, v, s->key, &m, err, errlen)) return -1;
            char **dst = is_method ? &ad->method : &ad->name;
            if (!(*dst = strdup(m))) return snprintf(err, errlen, "%s: out of memory", c->path), -1;
        } else {
            json_object_set_new(ad->config, s->key, runner_node_to_json(v));
        }
    }
    return 0;
}

/* the training values that only the whole run can check, then its adapters' methods and names
 * (each gets task_type). 0 or -1 with err */
static int check_run(runner_config *c, const exp_ctx *e, runner_run *r, char *err, size_t errlen)
{
    if (r->train.warmup_steps > r->train.steps) {
        runner_errat(err, errlen, c, e->exp, "experiment '%s': warmup_steps (%lld) exceeds steps (%lld)",
                     e->name, (long long)r->train.warmup_steps, (long long)r->train.steps);
        return -1;
    }
    if (r->train.batch_size * r->train.grad_accum > (1 << 20)) {
        runner_errat(err, errlen, c, e->exp, "experiment '%s': batch_size x gradient_accumulation_steps "
                     "is over 1M examples", e->name);
        return -1;
    }
    if (r->train.batch_size % r->train.data_parallel != 0) {
        runner_errat(err, errlen, c, e->exp, "experiment '%s': batch_size (%lld) must be a multiple of "
                     "data_parallel (%lld): each share of a micro-batch has the same size", e->name,
                     (long long)r->train.batch_size, (long long)r->train.data_parallel);
        return -1;
    }
    for (int a = 0; a < r->n_adapters; a++) {
        runner_adapter *ad = &r->adapters[a];
        if (!ad->method) {
            runner_errat(err, errlen, c, ad->node, "this adapter has no 'method' (a plugin name: lora, "
                         "loha, ia3, prefix, prompt, ...)");
            return -1;
        }
        if (!ad->name && !(ad->name = strdup(a == 0 ? "default" : ad->method)))
            return snprintf(err, errlen, "%s: out of memory", c->path), -1;
        for (int b = 0; b < a; b++)
            if (!strcmp(r->adapters[b].name, ad->name)) {
                runner_errat(err, errlen, c, ad->node, "two adapters of experiment '%s' are named "
                             "'%s': give this one a 'name'", e->name, ad->name);
                return -1;
            }
        json_object_set_new(ad->config, "task_type", json_string(runner_task_peft_type(c->task)));
    }
    return 0;
}

/* builds the run of one sweep point */
static int make_run(runner_config *c, const exp_ctx *e, const runner_train_cfg *defaults,
                    const size_t *choice, runner_run *r, char *err, size_t errlen)
{
    memset(r, 0, sizeof *r);
    r->train = *defaults;
    r->node = e->exp;
    r->seed = 0;
    r->swept = json_object();
    r->n_adapters = (int)e->adapters->n;
    r->adapters = calloc(e->adapters->n, sizeof *r->adapters);
    r->experiment = strdup(e->name);
    if (!r->swept || !r->adapters || !r->experiment) goto oom;
    int have_eval = 0, have_save = 0;
    char name[1024];
    size_t no = (size_t)snprintf(name, sizeof name, "%s", e->name);
    for (int a = 0; a < r->n_adapters; a++) {
        r->adapters[a].node = e->adapters->items[a];
        if (!(r->adapters[a].config = json_object())) goto oom;
    }
    for (size_t i = 0; i < e->n_slots; i++) {
        const slot *s = &e->slots[i];
        const runner_node *v = slot_value(s, choice, i);
        if (apply_slot(c, s, v, r, &have_eval, &have_save, err, errlen)) return -1;
        if (s->swept) {
            char label[256], key[160];
            value_label(v, label, sizeof label);
            if (s->kind == SLOT_ADAPTER && r->n_adapters > 1) snprintf(key, sizeof key, "%d.%s", s->adapter + 1, s->key);
            else snprintf(key, sizeof key, "%s", s->key);
            json_object_set_new(r->swept, key, runner_node_to_json(v));
            if (no < sizeof name) no += (size_t)snprintf(name + no, sizeof name - no, "-%s=%s", key, label);
        }
    }
    if (!have_eval) r->train.eval_steps = r->train.steps / 10 > 0 ? r->train.steps / 10 : 1;
    if (!have_save) r->train.save_steps = r->train.eval_steps;
    if (check_run(c, e, r, err, errlen)) return -1;
    if (!(r->name = strdup(name)) || !(r->group = strdup(name))) goto oom;
    r->n_repeats = 1;
    return 0;
oom:
    snprintf(err, errlen, "%s: out of memory", c->path);
    return -1;
}

/* The repeated seeds of an experiment: its own `seeds:` / `repeats:`, else the top level's.
 * *n = 0 when neither is given (one run per point, seed as `seed` says). `repeats: N` gives
 * seeds s, s+1, ..., s+N-1 from the scalar `seed` s (default 0). */
static int get_seeds(const runner_config *c, const runner_node *exp, uint64_t **out, size_t *n,
                     char *err, size_t errlen)
{
    *out = NULL;
    *n = 0;
    const runner_node *lv[2] = {exp, c->root};
    for (int k = 0; k < 2; k++) {
        const runner_node *sl = runner_map_get(lv[k], "seeds"), *rp = runner_map_get(lv[k], "repeats");
        if (!sl && !rp) continue;
        if (sl && rp) {
            runner_errat(err, errlen, c, rp, "give 'seeds' (a list) or 'repeats' (a count), not both");
            return -1;
        }
        const runner_node *sd = runner_map_get(exp, "seed");
        if (!sd) sd = runner_map_get(c->root, "seed");
        if (sd && sd->kind == RUNNER_NODE_SEQ) {
            runner_errat(err, errlen, c, sd, "'seed' is swept here and '%s' repeats the runs over seeds: "
                         "use one of them", sl ? "seeds" : "repeats");
            return -1;
        }
        if (sl) {
            if (want_kind(c, sl, RUNNER_NODE_SEQ, "seeds", err, errlen)) return -1;
            if (sl->n == 0 || sl->n > 1000) {
                runner_errat(err, errlen, c, sl, "seeds needs 1 to 1000 seeds");
                return -1;
            }
            if (!(*out = calloc(sl->n, sizeof **out))) return snprintf(err, errlen, "out of memory"), -1;
            for (size_t i = 0; i < sl->n; i++) {
                int64_t v;
                if (get_int(c, sl->items[i], "a seed", 0, &v, err, errlen)) return -1;
                for (size_t j = 0; j < i; j++)
                    if ((*out)[j] == (uint64_t)v) {
                        runner_errat(err, errlen, c, sl->items[i], "seed %lld is listed twice", (long long)v);
                        return -1;
                    }
                (*out)[i] = (uint64_t)v;
            }
            *n = sl->n;
        } else {
            int64_t r, base = 0;
            if (get_int(c, rp, "repeats", 1, &r, err, errlen)) return -1;
            if (r > 1000) {
                runner_errat(err, errlen, c, rp, "repeats must be at most 1000 (got %lld)", (long long)r);
                return -1;
            }
            if (sd && get_int(c, sd, "seed", 0, &base, err, errlen)) return -1;
            if (!(*out = calloc((size_t)r, sizeof **out))) return snprintf(err, errlen, "out of memory"), -1;
            for (int64_t i = 0; i < r; i++) (*out)[i] = (uint64_t)(base + i);
            *n = (size_t)r;
        }
        return 0;
    }
    return 0;
}

/* the experiment's name (auto_name, "experiment<index+1>", when it has none) and its adapters
 * list, into e. 0 or -1 with err */
static int exp_name_adapters(runner_config *c, const runner_node *exp, exp_ctx *e, const char *auto_name,
                             char *err, size_t errlen)
{
    if (want_kind(c, exp, RUNNER_NODE_MAP, "an experiment", err, errlen) ||
        check_keys(c, exp, EXP_KEYS, N_OF(EXP_KEYS), "an experiment", err, errlen))
        return -1;
    const runner_node *n = runner_map_get(exp, "name");
    e->name = auto_name;
    if (n && get_string(c, n, "an experiment's name", &e->name, err, errlen)) return -1;
    for (const char *p = e->name; *p; p++)
        if (*p == '/' || *p == '\\' || (unsigned char)*p < 32 || (p == e->name && *p == '.')) {
            runner_errat(err, errlen, c, n, "experiment name '%s' must not contain '/' or start with '.'", e->name);
            return -1;
        }
    e->adapters = runner_map_get(exp, "adapters");
    if (!e->adapters) {
        runner_errat(err, errlen, c, exp, "experiment '%s' has no 'adapters' (a list of {method: ..., "
                     "fields...})", e->name);
        return -1;
    }
    if (want_kind(c, e->adapters, RUNNER_NODE_SEQ, "adapters", err, errlen)) return -1;
    if (e->adapters->n == 0 || e->adapters->n > 16) {
        runner_errat(err, errlen, c, e->adapters, "experiment '%s' needs 1 to 16 adapters", e->name);
        return -1;
    }
    return 0;
}

/* the slots: top-level seed and training, then the experiment's, then the adapters' fields.
 * 0 or -1 with err */
static int collect_slots(runner_config *c, const runner_node *exp, exp_ctx *e, char *err, size_t errlen)
{
    const runner_node *top_seed = runner_map_get(c->root, "seed"), *seed = runner_map_get(exp, "seed");
    if ((seed || top_seed) && add_slot(e, SLOT_SEED, 0, "seed", seed ? seed : top_seed, 0)) goto oom;
    const runner_node *tt[2] = {runner_map_get(c->root, "training"), runner_map_get(exp, "training")};
    for (int k = 0; k < 2; k++) {
        if (!tt[k]) continue;
        if (want_kind(c, tt[k], RUNNER_NODE_MAP, "training", err, errlen) ||
            check_keys(c, tt[k], TRAIN_KEYS, N_OF(TRAIN_KEYS), "training", err, errlen))
            return -1;
        for (size_t i = 0; i < tt[k]->n; i++)
            if (add_slot(e, SLOT_TRAIN, 0, tt[k]->keys[i]->text, tt[k]->items[i], 0)) goto oom;
    }
    for (size_t a = 0; a < e->adapters->n; a++) {
        const runner_node *ad = e->adapters->items[a];
        if (want_kind(c, ad, RUNNER_NODE_MAP, "an adapter", err, errlen)) return -1;
        for (size_t i = 0; i < ad->n; i++) {
            const char *k = ad->keys[i]->text;
            if (!strcmp(k, "peft_type") || !strcmp(k, "task_type")) {
                runner_errat(err, errlen, c, ad->keys[i], "'%s' is set by the runner (from 'method' and "
                             "the top-level 'task'): remove it", k);
                return -1;
            }
            if (add_slot(e, SLOT_ADAPTER, (int)a, k, ad->items[i],
                         in_list(k, LIST_FIELDS, N_OF(LIST_FIELDS)) >= 0))
                goto oom;
        }
    }
    for (size_t i = 0; i < e->n_slots; i++)
        if (e->slots[i].swept && e->slots[i].node->n == 0) {
            runner_errat(err, errlen, c, e->slots[i].node, "'%s' sweeps over an empty list", e->slots[i].key);
            return -1;
        }
    return 0;
oom:
    snprintf(err, errlen, "%s: out of memory", c->path);
    return -1;
}

/* run q of the experiment's points x reps (the seeds of one configuration adjacent), appended to
 * c->runs (room made by the caller). 0 or -1 with err */
static int add_point_run(runner_config *c, const exp_ctx *e, const runner_train_cfg *defaults, size_t *choice,
                         size_t q, const uint64_t *seeds, size_t n_seeds, char *err, size_t errlen)
{
    size_t reps = n_seeds ? n_seeds : 1;
    size_t p = q / reps, k = q % reps;
    size_t rem = p; /* last swept slot varies fastest */
    for (size_t i = e->n_slots; i-- > 0;)
        if (e->slots[i].swept) {
            choice[i] = rem % e->slots[i].node->n;
            rem /= e->slots[i].node->n;
        }
    runner_run *r = &c->runs[c->n_runs];
    if (make_run(c, e, defaults, choice, r, err, errlen)) {
        free_run(r);
        return -1;
    }
    c->n_runs++;
    if (n_seeds) { /* a repeat: <configuration>-seed=<s> */
        char *name = NULL;
        if (asprintf(&name, "%s-seed=%llu", r->group, (unsigned long long)seeds[k]) < 0)
            return snprintf(err, errlen, "%s: out of memory", c->path), -1;
        free(r->name);
        r->name = name;
        r->seed = seeds[k];
        r->repeat = (int)k;
        r->n_repeats = (int)n_seeds;
    }
    return 0;
}

/* the slots of one experiment, then one run per point of the product of its sweeps */
static int expand_experiment(runner_config *c, const runner_node *exp, int index,
                             const runner_train_cfg *defaults, char *err, size_t errlen)
{
    exp_ctx e = {.exp = exp};
    int rc = -1;
    size_t *choice = NULL;
    uint64_t *seeds = NULL;
    size_t n_seeds = 0;
    char auto_name[64];
    snprintf(auto_name, sizeof auto_name, "experiment%d", index + 1);
    if (exp_name_adapters(c, exp, &e, auto_name, err, errlen)) return -1;
    if (collect_slots(c, exp, &e, err, errlen) || get_seeds(c, exp, &seeds, &n_seeds, err, errlen)) goto out;
    size_t points = 1, reps = n_seeds ? n_seeds : 1;
    for (size_t i = 0; i < e.n_slots; i++)
        if (e.slots[i].swept) points *= e.slots[i].node->n;
    if (points * reps > 4096) {
        runner_errat(err, errlen, c, exp, "experiment '%s' sweeps into %zu runs (at most 4096)", e.name,
                     points * reps);
        goto out;
    }
    choice = calloc(e.n_slots + 1, sizeof *choice);
    runner_run *runs = realloc(c->runs, ((size_t)c->n_runs + points * reps) * sizeof *runs);
    if (runs) c->runs = runs; /* (realloc freed the old block: keep the new one even when choice failed) */
    if (!choice || !runs) {
        snprintf(err, errlen, "%s: out of memory", c->path);
        goto out;
    }
    for (size_t q = 0; q < points * reps; q++)
        if (add_point_run(c, &e, defaults, choice, q, seeds, n_seeds, err, errlen)) goto out;
    rc = 0;
out:
    free(seeds);
    free(choice);
    free(e.slots);
    return rc;
}

/* dir of the YAML + rel, unless rel is absolute */
static char *resolve(const char *yaml_path, const char *rel)
{
    if (rel[0] == '/') return strdup(rel);
    char *p = strdup(yaml_path);
    if (!p) return NULL;
    char *out = NULL;
    if (asprintf(&out, "%s/%s", dirname(p), rel) < 0) out = NULL;
    free(p);
    return out;
}

static int top_string(runner_config *c, const char *key, int required, const char *what,
                      const char **out, char *err, size_t errlen)
{
    const runner_node *n = runner_map_get(c->root, key);
    *out = NULL;
    if (!n) {
        if (required) runner_errat(err, errlen, c, c->root, "missing '%s' (%s)", key, what);
        return required ? -1 : 0;
    }
    return get_string(c, n, key, out, err, errlen);
}

/* ---- command-line overrides (--set key.path=value) ----------------------------------------- */

static runner_node *new_key(const char *text, const char *origin)
{
    runner_node *k = calloc(1, sizeof *k);
    if (!k) return NULL;
    k->kind = RUNNER_NODE_SCALAR;
    k->text = strdup(text);
    k->origin = strdup(origin);
    if (!k->text || !k->origin) {
        runner_node_free(k);
        return NULL;
    }
    return k;
}

/* puts (key, val) into map, replacing an existing value; takes val */
static int map_put(runner_node *map, const char *key, runner_node *val, const char *origin)
{
    for (size_t i = 0; i < map->n; i++)
        if (!strcmp(map->keys[i]->text, key)) {
            runner_node_free(map->items[i]);
            map->items[i] = val;
            return 0;
        }
    runner_node *k = new_key(key, origin);
    runner_node **ks = k ? realloc(map->keys, (map->n + 1) * sizeof *ks) : NULL;
    if (ks) map->keys = ks;
    runner_node **vs = ks ? realloc(map->items, (map->n + 1) * sizeof *vs) : NULL;
    if (!vs) {
        runner_node_free(k);
        return -1;
    }
    map->items = vs;
    map->keys[map->n] = k;
    map->items[map->n++] = val;
    return 0;
}

/* the item of sequence `at` (reached by `walked`) that segment seg names: an index, or the
 * value of an item's `name` (experiments.lora); NULL with err (origin: the --set) */
static runner_node **seq_item(runner_node *at, const char *seg, const char *walked, const char *origin,
                              char *err, size_t errlen)
{
    char *end;
    long idx = strtol(seg, &end, 10);
    if (*end == 0 && end != seg) {
        if (idx < 0 || (size_t)idx >= at->n) {
            snprintf(err, errlen, "%s: '%s' has %zu item%s: no item %ld", origin, walked, at->n,
                     at->n == 1 ? "" : "s", idx);
            return NULL;
        }
        return &at->items[idx];
    }
    for (size_t i = 0; i < at->n; i++) {
        const runner_node *nm = runner_map_get(at->items[i], "name");
        if (nm && nm->kind == RUNNER_NODE_SCALAR && !strcmp(nm->text, seg)) return &at->items[i];
    }
    char names[512] = "";
    for (size_t i = 0, o = 0; i < at->n && o < sizeof names; i++) {
        const runner_node *nm = runner_map_get(at->items[i], "name");
        if (nm && nm->kind == RUNNER_NODE_SCALAR)
            o += (size_t)snprintf(names + o, sizeof names - o, "%s%s", o ? ", " : "", nm->text);
    }
    snprintf(err, errlen, "%s: no item named '%s' in '%s' (names: %s; or give an index)", origin,
             seg, walked, names[0] ? names : "none");
    return NULL;
}

/* one "a.b.0.c=value" applied to the tree */
static int apply_set(runner_node *root, const char *set, char *err, size_t errlen)
{
    char origin[1200];
    snprintf(origin, sizeof origin, "--set %s", set);
    const char *eq = strchr(set, '=');
    if (!eq || eq == set) {
        snprintf(err, errlen, "%s: expected key.path=value (e.g. --set training.learning_rate=1e-3)", origin);
        return -1;
    }
    char path[1024];
    snprintf(path, sizeof path, "%.*s", (int)(eq - set) < 1023 ? (int)(eq - set) : 1023, set);
    runner_node *val;
    if (runner_yaml_parse_value(eq + 1, origin, &val, err, errlen)) return -1;
    runner_node *at = root;
    char walked[1024] = "";
    char *save = NULL;
    for (char *seg = strtok_r(path, ".", &save); seg; seg = strtok_r(NULL, ".", &save)) {
        int last = save == NULL || *save == 0;
        if (!*seg) break;
        size_t wl = strlen(walked);
        if (at->kind == RUNNER_NODE_MAP) {
            runner_node *next = (runner_node *)runner_map_get(at, seg);
            if (last) {
                if (map_put(at, seg, val, origin)) goto oom;
                return 0;
            }
            if (!next) { /* a mapping that the file does not have yet */
                if (!(next = calloc(1, sizeof *next))) goto oom;
                next->kind = RUNNER_NODE_MAP;
                if (!(next->origin = strdup(origin)) || map_put(at, seg, next, origin)) {
                    runner_node_free(next);
                    goto oom;
                }
            }
            at = next;
        } else if (at->kind == RUNNER_NODE_SEQ) {
            runner_node **target = seq_item(at, seg, walked, origin, err, errlen);
            if (!target) goto fail;
            if (last) {
                runner_node_free(*target);
                *target = val;
                return 0;
            }
            at = *target;
        } else {
            snprintf(err, errlen, "%s: '%s' is a single value, it has no '%s'", origin, walked, seg);
            goto fail;
        }
        snprintf(walked + wl, sizeof walked - wl, "%s%s", wl ? "." : "", seg);
    }
    snprintf(err, errlen, "%s: expected key.path=value with a non-empty key at each dot", origin);
    goto fail;
oom:
    snprintf(err, errlen, "%s: out of memory", origin);
fail:
    runner_node_free(val);
    return -1;
}

/* compare: [a, b] or [[a, b], [c, d]]: configurations (run groups) compared over their seeds */
static int load_compare(runner_config *c, char *err, size_t errlen)
{
    const runner_node *n = runner_map_get(c->root, "compare");
    if (!n) return 0;
    if (want_kind(c, n, RUNNER_NODE_SEQ, "compare", err, errlen)) return -1;
    int pairs = n->n > 0 && n->items[0]->kind == RUNNER_NODE_SEQ;
    size_t np = pairs ? n->n : 1;
    if (!(c->compare = calloc(np, sizeof *c->compare))) return snprintf(err, errlen, "out of memory"), -1;
    for (size_t p = 0; p < np; p++) {
        const runner_node *pr = pairs ? n->items[p] : n;
        if (pr->kind != RUNNER_NODE_SEQ || pr->n != 2) {
            runner_errat(err, errlen, c, pr, "compare takes two configuration names, [a, b] (or a list of such pairs)");
            return -1;
        }
        c->n_compare++;
        for (int k = 0; k < 2; k++) {
            const char *name;
            if (get_string(c, pr->items[k], "a configuration to compare", &name, err, errlen)) return -1;
            const char **groups = calloc((size_t)c->n_runs + 1, sizeof *groups);
            if (!groups) return snprintf(err, errlen, "out of memory"), -1;
            int found = 0;
            for (int i = 0; i < c->n_runs; i++) {
                groups[i] = c->runs[i].group;
                found |= !strcmp(groups[i], name);
            }
            const char *dym = found ? NULL : peft_did_you_mean(name, groups, (size_t)c->n_runs);
            if (!found) {
                char known[1024] = "";
                for (int i = 0, o = 0; i < c->n_runs && o < (int)sizeof known; i++)
                    if (i == 0 || strcmp(groups[i], groups[i - 1]))
                        o += snprintf(known + o, sizeof known - (size_t)o, "%s%s", o ? ", " : "", groups[i]);
                if (dym) runner_errat(err, errlen, c, pr->items[k], "compare: no configuration '%s' (did you mean '%s'?)", name, dym);
                else runner_errat(err, errlen, c, pr->items[k], "compare: no configuration '%s' (configurations: %s)", name, known);
            }
            free(groups);
            if (!found || !(c->compare[p][k] = strdup(name))) return found ? snprintf(err, errlen, "out of memory"), -1 : -1;
        }
    }
    return 0;
}

int runner_config_load(const char *path, const char *output_override, runner_config **out,
                       char *err, size_t errlen)
{
    return runner_config_load_set(path, output_override, NULL, 0, out, err, errlen);
}

/* base_model, name (default: the file's stem), task, metric and output_dir. 0, -1 with err, or
 * -2 out of memory */
static int load_top(runner_config *c, const char *output_override, char *err, size_t errlen)
{
    const char *s;
    if (top_string(c, "base_model", 1, "a Hugging Face model directory", &s, err, errlen)) return -1;
    if (!(c->base_model = resolve(c->path, s))) return -2;
    if (top_string(c, "name", 0, "", &s, err, errlen)) return -1;
    if (!s) { /* the file's stem */
        char *p = strdup(c->path);
        if (!p) return -2;
        char *b = basename(p), *dot = strrchr(b, '.');
        if (dot && dot != b) *dot = 0;
        c->name = strdup(b);
        free(p);
    } else {
        c->name = strdup(s);
    }
    if (!c->name) return -2;
    const runner_node *n = runner_map_get(c->root, "task");
    if (!n) {
        runner_errat(err, errlen, c, c->root, "missing 'task' (one of causal_lm, seq_cls, token_cls, "
                     "question_answering, seq2seq)");
        return -1;
    }
    if (get_choice(c, n, "task", TASKS, N_OF(TASKS), &c->task, err, errlen)) return -1;
    static const int default_metric[] = {RUNNER_METRIC_PERPLEXITY, RUNNER_METRIC_ACCURACY,
                                         RUNNER_METRIC_ACCURACY, RUNNER_METRIC_EXACT_MATCH,
                                         RUNNER_METRIC_EXACT_MATCH};
    c->metric = default_metric[c->task];
    if ((n = runner_map_get(c->root, "metric")) &&
        get_choice(c, n, "metric", METRICS, N_OF(METRICS), &c->metric, err, errlen))
        return -1;
    if (c->task == RUNNER_TASK_SEQ_CLS && c->metric == RUNNER_METRIC_EXACT_MATCH) {
        runner_errat(err, errlen, c, n, "metric exact_match needs a task with several labels per "
                     "example; for seq_cls use accuracy");
        return -1;
    }
    if (output_override) s = output_override;
    else if (top_string(c, "output_dir", 0, "", &s, err, errlen)) return -1;
    if (s) c->output_dir = strdup(s);
    else if (asprintf(&c->output_dir, "runs/%s", c->name) < 0) c->output_dir = NULL;
    return c->output_dir ? 0 : -2;
}

/* data: train and eval files, max_length, eval_examples. 0, -1 with err, or -2 out of memory */
static int load_data(runner_config *c, char *err, size_t errlen)
{
    const runner_node *d = runner_map_get(c->root, "data"), *n;
    if (!d) {
        runner_errat(err, errlen, c, c->root, "missing 'data' (a mapping with train: and eval: JSONL files)");
        return -1;
    }
    if (want_kind(c, d, RUNNER_NODE_MAP, "data", err, errlen) ||
        check_keys(c, d, DATA_KEYS, N_OF(DATA_KEYS), "data", err, errlen))
        return -1;
    const char *const need[2] = {"train", "eval"};
    char **dst[2] = {&c->train_path, &c->eval_path};
    for (int i = 0; i < 2; i++) {
        const char *s;
        if (!(n = runner_map_get(d, need[i]))) {
            runner_errat(err, errlen, c, d, "data needs '%s' (a JSONL file)", need[i]);
            return -1;
        }
        if (get_string(c, n, need[i], &s, err, errlen)) return -1;
        if (!(*dst[i] = resolve(c->path, s))) return -2;
    }
    c->max_length = 512;
    if ((n = runner_map_get(d, "max_length")) && get_int(c, n, "data.max_length", 2, &c->max_length, err, errlen))
        return -1;
    if ((n = runner_map_get(d, "eval_examples")) && get_int(c, n, "data.eval_examples", 1, &c->num_eval, err, errlen))
        return -1;
    return 0;
}

/* experiments: every experiment's runs, whose names must differ. 0 or -1 with err */
static int load_experiments(runner_config *c, char *err, size_t errlen)
{
    const runner_node *ex = runner_map_get(c->root, "experiments");
    if (!ex) {
        runner_errat(err, errlen, c, c->root, "missing 'experiments' (a list of {name, adapters})");
        return -1;
    }
    if (want_kind(c, ex, RUNNER_NODE_SEQ, "experiments", err, errlen)) return -1;
    if (ex->n == 0) {
        runner_errat(err, errlen, c, ex, "experiments is empty");
        return -1;
    }
    runner_train_cfg defaults = {.steps = 100, .batch_size = 8, .grad_accum = 1, .warmup_steps = 0,
                                 .data_parallel = 1,
                                 .eval_batch_size = 32, .eval_on_start = 1, .lr = 1e-3, .weight_decay = 0.0,
                                 .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .max_grad_norm = 1.0,
                                 .schedule = PEFT_SCHED_LINEAR};
    for (size_t i = 0; i < ex->n; i++)
        if (expand_experiment(c, ex->items[i], (int)i, &defaults, err, errlen)) return -1;
    for (int i = 0; i < c->n_runs; i++)
        for (int j = 0; j < i; j++)
            if (!strcmp(c->runs[i].name, c->runs[j].name)) {
                runner_errat(err, errlen, c, c->runs[i].node, "two runs are named '%s' (the other at "
                             "line %d): give the experiments different names", c->runs[i].name,
                             c->runs[j].node->line);
                return -1;
            }
    return 0;
}

int runner_config_load_set(const char *path, const char *output_override, const char *const *sets,
                           int n_sets, runner_config **out, char *err, size_t errlen)
{
    *out = NULL;
    runner_config *c = calloc(1, sizeof *c);
    if (!c || !(c->path = strdup(path))) {
        free(c);
        snprintf(err, errlen, "%s: out of memory", path);
        return -1;
    }
    if (runner_yaml_load(path, &c->root, err, errlen)) goto fail;
    if (want_kind(c, c->root, RUNNER_NODE_MAP, "the file", err, errlen)) goto fail;
    for (int i = 0; i < n_sets; i++)
        if (apply_set(c->root, sets[i], err, errlen)) goto fail;
    if (check_keys(c, c->root, TOP_KEYS, N_OF(TOP_KEYS), "the top level", err, errlen)) goto fail;
    int e = load_top(c, output_override, err, errlen);
    if (!e) e = load_data(c, err, errlen);
    if (e == -2) snprintf(err, errlen, "%s: out of memory", path);
    if (e || load_experiments(c, err, errlen) || load_compare(c, err, errlen)) goto fail;
    *out = c;
    return 0;
fail:
    runner_config_free(c);
    return -1;
}

void runner_config_free(runner_config *c)
{
    if (!c) return;
    for (int i = 0; i < c->n_runs; i++) free_run(&c->runs[i]);
    free(c->runs);
    for (int i = 0; i < c->n_compare; i++) free(c->compare[i][0]), free(c->compare[i][1]);
    free(c->compare);
    runner_node_free(c->root);
    free(c->path);
    free(c->name);
    free(c->base_model);
    free(c->output_dir);
    free(c->train_path);
    free(c->eval_path);
    free(c);
}
