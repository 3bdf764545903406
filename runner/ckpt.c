/* runner_ckpt.c — checkpoints of a run: one safetensors file written atomically (the optimizer
 * state file of optim.h, with the runner's state as JSON metadata), so that a run killed at any
 * moment resumes from its last checkpoint and reaches the same bytes as an uninterrupted run.
 * RNG states and doubles are stored as hexadecimal bit patterns: nothing is rounded. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "runner/internal.h"

int runner_curve_push(runner_point **pts, size_t *n, int64_t step, double v)
{
    if ((*n & (*n - 1)) == 0) { /* grow at powers of two */
        runner_point *p = realloc(*pts, (*n ? *n * 2 : 16) * sizeof *p);
        if (!p) return -1;
        *pts = p;
    }
    (*pts)[(*n)++] = (runner_point){step, v};
    return 0;
}

void runner_state_new_epoch(runner_state *s)
{
    s->epoch_rng = s->data_rng;
    for (size_t i = 0; i < s->n_train; i++) s->perm[i] = i;
    for (size_t i = s->n_train; i > 1; i--) {
        size_t j = (size_t)(peft_rng_next(&s->data_rng) % i);
        size_t t = s->perm[i - 1];
        s->perm[i - 1] = s->perm[j];
        s->perm[j] = t;
    }
    s->epoch++;
    s->pos = 0;
}

/* ---- hex encodings -------------------------------------------------------------------------- */

static json_t *hex64(uint64_t v)
{
    char b[20];
    snprintf(b, sizeof b, "%016" PRIx64, v);
    return json_string(b);
}

static int unhex64(json_t *j, uint64_t *v)
{
    const char *s = json_string_value(j);
    char *end;
    if (!s || strlen(s) != 16) return -1;
    *v = strtoull(s, &end, 16);
    return *end ? -1 : 0;
}

static json_t *hexd(double d)
{
    uint64_t u;
    memcpy(&u, &d, sizeof u);
    return hex64(u);
}

static int unhexd(json_t *j, double *d)
{
    uint64_t u;
    if (unhex64(j, &u)) return -1;
    memcpy(d, &u, sizeof *d);
    return 0;
}

static json_t *rng_json(const peft_rng *r)
{
    return json_pack("[o,o,o,o,i,o]", hex64(r->s[0]), hex64(r->s[1]), hex64(r->s[2]), hex64(r->s[3]),
                     r->has_spare, hexd(r->spare));
}

static int rng_unjson(json_t *j, peft_rng *r)
{
    if (!json_is_array(j) || json_array_size(j) != 6) return -1;
    for (int i = 0; i < 4; i++)
        if (unhex64(json_array_get(j, (size_t)i), &r->s[i])) return -1;
    if (!json_is_integer(json_array_get(j, 4))) return -1;
    r->has_spare = (int)json_integer_value(json_array_get(j, 4));
    return unhexd(json_array_get(j, 5), &r->spare);
}

static json_t *curve_json(const runner_point *p, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++) json_array_append_new(a, json_pack("[I,o]", (json_int_t)p[i].step, hexd(p[i].value)));
    return a;
}

static int curve_unjson(json_t *a, runner_point **p, size_t *n)
{
    free(*p);
    *p = NULL;
    *n = 0;
    if (!json_is_array(a)) return -1;
    for (size_t i = 0; i < json_array_size(a); i++) {
        json_t *e = json_array_get(a, i);
        double v;
        if (!json_is_array(e) || !json_is_integer(json_array_get(e, 0)) || unhexd(json_array_get(e, 1), &v) ||
            runner_curve_push(p, n, json_integer_value(json_array_get(e, 0)), v))
            return -1;
    }
    return 0;
}

/* ---- save / load ------------------------------------------------------------------------------ */

int runner_ckpt_save(const char *path, const peft_adamw *opt, const runner_state *s,
                     const peft_rng *model_rng, const json_t *config, char *err, size_t errlen)
{
    const runner_result *r = s->res;
    json_t *j = json_pack("{s:I, s:I, s:I, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:I, s:I}",
                          "step", (json_int_t)s->step, "epoch", (json_int_t)s->epoch, "pos", (json_int_t)s->pos,
                          "epoch_rng", rng_json(&s->epoch_rng), "data_rng", rng_json(&s->data_rng),
                          "model_rng", rng_json(model_rng), "train_loss", curve_json(r->train_loss, r->n_train),
                          "eval_loss", curve_json(r->eval_loss, r->n_eval),
                          "eval_metric", curve_json(r->eval_metric, r->n_eval),
                          "best_metric", hexd(r->best_metric), "best_eval_loss", hexd(r->best_eval_loss),
                          "base_metric", hexd(r->base_metric), "train_seconds", hexd(s->train_seconds),
                          "peak_arena_mb", hexd(r->peak_arena_mb), "best_step", (json_int_t)r->best_step,
                          "train_tokens", (json_int_t)r->train_tokens);
    if (j) json_object_set(j, "config", (json_t *)config);
    if (j) json_object_set_new(j, "elapsed_seconds", hexd(s->elapsed_seconds));
    char *txt = j ? json_dumps(j, JSON_COMPACT) : NULL;
    json_decref(j);
    if (!txt) return snprintf(err, errlen, "%s: out of memory", path), -1;
    const char *meta[] = {"format", "pt", "runner", txt, NULL};
    int rc = peft_adamw_save_state(opt, path, meta);
    free(txt);
    if (rc) snprintf(err, errlen, "%s", peft_errmsg(peft_adamw_ctx(opt)));
    return rc ? -1 : 0;
}

int runner_ckpt_load(const char *path, peft_adamw *opt, runner_state *s, peft_rng *model_rng,
                     const json_t *config, char *err, size_t errlen)
{
    char *txt = NULL;
    if (peft_adamw_load_state(opt, path, "runner", &txt))
        return snprintf(err, errlen, "%s", peft_errmsg(peft_adamw_ctx(opt))), -1;
    json_error_t je;
    json_t *j = txt ? json_loads(txt, 0, &je) : NULL;
    free(txt);
    runner_result *r = s->res;
    if (j && !json_equal(json_object_get(j, "config"), (json_t *)config)) {
        json_decref(j);
        snprintf(err, errlen, "%s: a checkpoint of another configuration (the YAML changed): use another "
                 "output directory, or --fresh to start over", path);
        return -1;
    }
    int bad = !json_is_object(j);
    peft_rng er = {0}, dr = {0}, mr = {0};
    bad = bad || rng_unjson(json_object_get(j, "epoch_rng"), &er) || rng_unjson(json_object_get(j, "data_rng"), &dr) ||
          rng_unjson(json_object_get(j, "model_rng"), &mr) ||
          curve_unjson(json_object_get(j, "train_loss"), &r->train_loss, &r->n_train) ||
          curve_unjson(json_object_get(j, "eval_loss"), &r->eval_loss, &r->n_eval) ||
          curve_unjson(json_object_get(j, "eval_metric"), &r->eval_metric, &r->n_eval) ||
          unhexd(json_object_get(j, "best_metric"), &r->best_metric) ||
          unhexd(json_object_get(j, "best_eval_loss"), &r->best_eval_loss) ||
          unhexd(json_object_get(j, "base_metric"), &r->base_metric) ||
          unhexd(json_object_get(j, "train_seconds"), &s->train_seconds) ||
          unhexd(json_object_get(j, "peak_arena_mb"), &r->peak_arena_mb);
    json_int_t step = json_integer_value(json_object_get(j, "step")), epoch = json_integer_value(json_object_get(j, "epoch"));
    json_int_t pos = json_integer_value(json_object_get(j, "pos"));
    bad = bad || step != peft_adamw_steps_done(opt) || epoch < 1 || pos < 0 || (size_t)pos > s->n_train;
    if (bad) {
        json_decref(j);
        snprintf(err, errlen, "%s: the runner state in the metadata is missing or damaged (delete the file "
                 "to start this run over)", path);
        return -1;
    }
    s->step = step;
    s->pos = pos;
    if (unhexd(json_object_get(j, "elapsed_seconds"), &s->elapsed_seconds)) s->elapsed_seconds = 0;
    r->best_step = json_integer_value(json_object_get(j, "best_step"));
    r->train_tokens = json_integer_value(json_object_get(j, "train_tokens"));
    /* this epoch's order, then the RNG where it was */
    s->data_rng = er;
    s->epoch = epoch - 1;
    runner_state_new_epoch(s);
    s->pos = pos;
    s->data_rng = dr;
    *model_rng = mr;
    json_decref(j);
    return 0;
}
