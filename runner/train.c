/* runner_train.c — runs a batch of experiments: for each run not yet finished, build the PEFT
 * model (its adapters, mixed when they differ in method), train it (AdamW, schedule with
 * warm-up, gradient accumulation and clipping), evaluate every eval_steps, keep the best adapter,
 * checkpoint every save_steps, and write the run's results; then the batch summary.
 *
 * Layout of output_dir:
 *   <run>/adapter/        the final adapter(s) in PEFT's format (others than "default" in
 *                         adapter/<name>/, as save_pretrained does)
 *   <run>/best/           the adapter(s) at the best evaluation
 *   <run>/checkpoint.safetensors   while the run is unfinished (deleted at the end)
 *   <run>/results.json    written last: its presence means the run is finished
 *   <run>/loss.svg
 *   summary.md, summary.csv, loss_curves.svg, metric_vs_params.svg
 */
#define _GNU_SOURCE
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>
#include "peft/tokenizer.h"
#include "runner/internal.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static double peak_rss_mb(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss / 1024.0 : NAN;
}

void runner_result_free(runner_result *r)
{
    if (!r) return;
    free(r->run);
    free(r->methods);
    free(r->train_loss);
    free(r->eval_loss);
    free(r->eval_metric);
    free(r);
}

/* the shared inputs of every run */
typedef struct batch_ctx {
    const runner_config *c;
    const runner_opts *o;
    runner_dataset train, eval;
    int32_t pad_id;
} batch_ctx;

/* the run's model: its adapters on a freshly loaded base */
static int build_model(const runner_config *c, const runner_run *r, peft_ctx *ctx, peft_model **out,
                       char *err, size_t errlen)
{
    peft_base_model *base;
    *out = NULL;
    if (peft_load_base_model(ctx, c->base_model, &base)) {
        snprintf(err, errlen, "%s", peft_errmsg(ctx));
        return -1;
    }
    int mixed = 0;
    for (int i = 1; i < r->n_adapters; i++) mixed |= strcmp(r->adapters[i].method, r->adapters[0].method) != 0;
    const char *names[16];
    for (int i = 0; i < r->n_adapters; i++) {
        char *json = json_dumps(r->adapters[i].config, JSON_COMPACT | JSON_SORT_KEYS);
        int e = !json ? PEFT_ENOMEM
                : i == 0 ? peft_get_peft_model(ctx, base, json, r->adapters[i].name, mixed, out)
                         : peft_add_adapter(*out, r->adapters[i].name, json);
        free(json);
        if (e) {
            if (i == 0) peft_base_model_free(base);
            snprintf(err, errlen, "run '%s', adapter '%s': %s", r->name, r->adapters[i].name, peft_errmsg(ctx));
            peft_model_free(*out);
            *out = NULL;
            return -1;
        }
        names[i] = r->adapters[i].name;
    }
    if (r->n_adapters > 1 && peft_set_adapters(*out, names, r->n_adapters)) {
        snprintf(err, errlen, "run '%s': %s", r->name, peft_errmsg(ctx));
        peft_model_free(*out);
        *out = NULL;
        return -1;
    }
    return 0;
}

static int64_t adapter_bytes(const char *dir, const runner_run *r)
{
    int64_t total = 0;
    char p[4096];
    for (int i = 0; i < r->n_adapters; i++) {
        if (!strcmp(r->adapters[i].name, "default"))
            snprintf(p, sizeof p, "%s/adapter_model.safetensors", dir);
        else
            snprintf(p, sizeof p, "%s/%s/adapter_model.safetensors", dir, r->adapters[i].name);
        int64_t s = runner_file_size(p);
        if (s > 0) total += s;
    }
    return total;
}

/* one micro-batch from the epoch order (a new epoch when it runs out) */
static int next_batch(batch_ctx *b, runner_state *s, int64_t B, runner_batch *out)
{
    size_t idx[4096];
    if (B > 4096) B = 4096;
    for (int64_t i = 0; i < B; i++) {
        if ((size_t)s->pos >= s->n_train) runner_state_new_epoch(s);
        idx[i] = s->perm[s->pos++];
    }
    return runner_batch_make(&b->train, b->c->task, idx, B, b->pad_id, out);
}

static void logf_(const runner_opts *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(const runner_opts *o, const char *fmt, ...)
{
    if (!o->log) return;
    va_list ap;
    va_start(ap, fmt);
    vfprintf(o->log, fmt, ap);
    va_end(ap);
    fflush(o->log);
}

/* evaluation at the current step: curves, and the best adapter when it improves */
static int eval_point(batch_ctx *b, const runner_run *r, peft_model *m, peft_graph *g,
                      runner_state *s, const char *best_dir, char *err, size_t errlen)
{
    runner_eval_result ev;
    if (runner_evaluate(m, g, b->c, &b->eval, b->c->num_eval, r->train.eval_batch_size, &ev, err, errlen)) return -1;
    runner_result *res = s->res;
    size_t nl = res->n_eval, nm = res->n_eval; /* both curves share n_eval */
    if (runner_curve_push(&res->eval_loss, &nl, s->step, ev.loss) ||
        runner_curve_push(&res->eval_metric, &nm, s->step, ev.metric))
        return snprintf(err, errlen, "out of memory"), -1;
    res->n_eval = nm;
    int better = runner_metric_better(b->c->metric, ev.metric, res->best_metric) ||
                 (ev.metric == res->best_metric && ev.loss < res->best_eval_loss); /* ties: the loss */
    if (s->step > 0 && better) {
        res->best_metric = ev.metric;
        res->best_eval_loss = ev.loss;
        res->best_step = s->step;
        if (peft_save_pretrained(m, best_dir, NULL, 0, 1))
            return snprintf(err, errlen, "%s: %s", best_dir, peft_errmsg(peft_model_ctx(m))), -1;
    }
    runner_progress_done(b->o);
    logf_(b->o, "  %s step %lld/%lld: eval loss %.4f, %s %.4f%s\n", r->name, (long long)s->step,
          (long long)r->train.steps, ev.loss, runner_metric_name(b->c->metric), ev.metric,
          res->best_step == s->step && s->step > 0 ? " (best)" : "");
    return 0;
}

static char *join_methods(const runner_run *r)
{
    size_t n = 1;
    for (int i = 0; i < r->n_adapters; i++) n += strlen(r->adapters[i].method) + 1;
    char *s = malloc(n);
    if (!s) return NULL;
    s[0] = 0;
    for (int i = 0; i < r->n_adapters; i++) {
        if (i) strcat(s, "+");
        strcat(s, r->adapters[i].method);
    }
    return s;
}

#define RUN_NONE 2 /* read_only and not finished */
#define RUN_KEPT 3 /* finished in an earlier call: results read back */
/* one run; 0 trained to the end, RUN_KEPT, RUNNER_STOPPED, or -1. read_only: only read back a
 * finished run's results (RUN_NONE when it has none) */
static int run_one(batch_ctx *b, const runner_run *r, int read_only, runner_result **out, char *err,
                   size_t errlen)
{
    const runner_config *c = b->c;
    const runner_opts *o = b->o;
    char dir[4096], ckpt[4200], best[4200], adapter[4200], results[4200];
    snprintf(dir, sizeof dir, "%s/%s", c->output_dir, r->name);
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint.safetensors", dir);
    snprintf(best, sizeof best, "%s/best", dir);
    snprintf(adapter, sizeof adapter, "%s/adapter", dir);
    snprintf(results, sizeof results, "%s/results.json", dir);
    runner_result *res = calloc(1, sizeof *res);
    if (!res) return snprintf(err, errlen, "out of memory"), -1;
    *out = res;
    json_t *config = runner_run_config_json(c, r);
    if (!config) return snprintf(err, errlen, "out of memory"), -1;
    if (!o->fresh && runner_file_exists(results)) { /* finished earlier: keep it */
        int e = runner_read_results(results, config, res, err, errlen);
        json_decref(config);
        if (e) return -1;
        if (!read_only) logf_(o, "%s: finished earlier (%s), kept\n", r->name, results);
        return RUN_KEPT;
    }
    if (read_only) {
        json_decref(config);
        return RUN_NONE;
    }
    res->best_metric = res->best_eval_loss = res->base_metric = NAN;
    if (!(res->run = strdup(r->name)) || !(res->methods = join_methods(r)) || runner_mkdir_p(dir, err, errlen)) {
        if (!res->methods) snprintf(err, errlen, "out of memory");
        json_decref(config);
        return -1;
    }
    int lock_fd; /* one process per run dir: a second peft run on it stops here, naming us */
    if (runner_lock_run_dir(dir, &lock_fd, err, errlen)) {
        json_decref(config);
        return -1;
    }
    if (!o->fresh && runner_file_exists(results)) { /* the holder we waited for finished it */
        runner_unlock_run_dir(lock_fd);
        free(res->run);
        free(res->methods);
        res->run = res->methods = NULL;
        int e = runner_read_results(results, config, res, err, errlen);
        json_decref(config);
        if (e) return -1;
        logf_(o, "%s: finished earlier (%s), kept\n", r->name, results);
        return RUN_KEPT;
    }

    int rc = -1;
    peft_ctx *ctx = peft_ctx_new(r->seed);
    peft_set_tokenizer(ctx, peft_tokenizer_text_hook, NULL);
    peft_model *m = NULL;
    peft_adamw *opt = NULL;
    peft_graph *g = NULL;
    runner_state s = {.res = res, .n_train = b->train.n};
    if (!ctx || build_model(c, r, ctx, &m, err, errlen)) goto out;
    peft_get_nb_trainable_parameters(m, &res->trainable, &res->all);
    const runner_train_cfg *t = &r->train;
    peft_adamw_config oc = {t->lr, t->beta1, t->beta2, t->eps, t->weight_decay};
    if (!(opt = peft_adamw_new(m, &oc))) { snprintf(err, errlen, "%s", peft_errmsg(ctx)); goto out; }
    g = peft_graph_new(peft_ctx_rng(ctx));
    s.perm = malloc((b->train.n + 1) * sizeof *s.perm);
    if (!g || !s.perm) { snprintf(err, errlen, "out of memory"); goto out; }
    peft_rng_seed(&s.data_rng, r->seed ^ 0x9e3779b97f4a7c15ULL);

    if (!o->fresh && runner_file_exists(ckpt)) {
        if (runner_ckpt_load(ckpt, opt, &s, peft_ctx_rng(ctx), config, err, errlen)) goto out;
        logf_(o, "%s: resuming at step %lld of %lld from %s\n", r->name, (long long)s.step,
              (long long)t->steps, ckpt);
    } else {
        runner_state_new_epoch(&s);
        char line[256];
        peft_format_trainable_parameters(m, line, sizeof line);
        logf_(o, "%s: %s\n", r->name, line);
        /* the base model without the adapters, then the adapters as initialised */
        runner_eval_result ev;
        if (peft_disable_adapter(m) == PEFT_OK) {
            if (runner_evaluate(m, g, c, &b->eval, c->num_eval, t->eval_batch_size, &ev, err, errlen)) goto out;
            res->base_metric = ev.metric;
            peft_enable_adapter(m);
        }
        if (eval_point(b, r, m, g, &s, best, err, errlen)) goto out;
    }
    double t0 = now_s(), last_loss = NAN;
    while (s.step < t->steps) {
        peft_model_train(m, 1);
        double loss_sum = 0;
        char bad[256] = ""; /* a non-finite loss or gradient in this update: what and where */
        for (int64_t a = 0; a < t->grad_accum; a++) {
            runner_batch bt;
            if (next_batch(b, &s, t->batch_size, &bt)) { snprintf(err, errlen, "out of memory for a batch"); goto out; }
            peft_model_inputs in;
            runner_batch_view(&bt, c->task, &in);
            peft_model_outputs mo;
            peft_graph_reset(g);
            g->recording = 1;
            if (peft_model_forward(m, g, &in, &mo)) {
                snprintf(err, errlen, "run '%s' step %lld: %s", r->name, (long long)s.step + 1, peft_errmsg(ctx));
                runner_batch_free(&bt);
                goto out;
            }
            double l = peft_f32(mo.loss)[0];
            res->train_tokens += bt.n_tokens;
            runner_batch_free(&bt);
            if (!isfinite(l)) {
                if (!bad[0]) snprintf(bad, sizeof bad, "the loss is %g (micro-batch %lld)", l, (long long)a + 1);
                continue;
            }
            loss_sum += l;
            if (peft_graph_backward(g, mo.loss)) {
                snprintf(err, errlen, "run '%s' step %lld: %s", r->name, (long long)s.step + 1,
                         peft_graph_error(g));
                goto out;
            }
            double peak = (double)peft_arena_peak(g->arena) / (1024.0 * 1024.0);
            if (peak > res->peak_arena_mb) res->peak_arena_mb = peak;
        }
        if (t->grad_accum > 1) peft_adamw_scale_grads(opt, 1.0 / (double)t->grad_accum);
        double gnorm = peft_adamw_clip_grad_norm(opt, t->max_grad_norm > 0 ? t->max_grad_norm : 0);
        if (!bad[0] && !isfinite(gnorm)) snprintf(bad, sizeof bad, "the gradient norm is %g", gnorm);
        if (bad[0]) {
            if (t->on_nonfinite != RUNNER_NONFINITE_SKIP) {
                snprintf(err, errlen, "run '%s' step %lld: %s; stopped (training.on_nonfinite: skip "
                         "drops such updates; or try a smaller learning_rate)", r->name,
                         (long long)s.step + 1, bad);
                goto out;
            }
            peft_adamw_zero_grad(opt);
            res->skipped_steps++;
            logf_(o, "%s: step %lld: %s: update skipped (training.on_nonfinite: skip)\n", r->name,
                  (long long)s.step + 1, bad);
        }
        double lr = peft_lr_at(t->schedule, t->lr, s.step, t->steps, t->warmup_steps);
        if (!bad[0]) { /* lr 0 (warm-up's first update) is a no-op step */
            peft_adamw_update(opt, lr > 0 ? lr : 1e-300);
            /* the plugins' training hooks (AdaLoRA's rank allocation) see the gradients, as
             * PEFT's update_and_allocate between optimizer.step() and zero_grad() */
            if (peft_model_step_end(m, s.step, t->steps)) {
                snprintf(err, errlen, "%s", peft_errmsg(peft_model_ctx(m)));
                goto out;
            }
            peft_adamw_zero_grad(opt);
        }
        s.step++;
        if (!bad[0]) {
            last_loss = loss_sum / (double)t->grad_accum;
            if (runner_curve_push(&res->train_loss, &res->n_train, s.step, last_loss)) {
                snprintf(err, errlen, "out of memory");
                goto out;
            }
        }
        double el = s.train_seconds + (now_s() - t0);
        runner_progress(o, r->name, s.step, t->steps, last_loss, lr, el > 0 ? (double)res->train_tokens / el : 0);
        if (s.step % t->eval_steps == 0 || s.step == t->steps) {
            double te = now_s();
            if (eval_point(b, r, m, g, &s, best, err, errlen)) goto out;
            t0 += now_s() - te; /* evaluation time is not training time */
        }
        if (o->debug_kill_at > 0 && s.step == o->debug_kill_at) {
            if (o->log) fflush(o->log);
            raise(SIGKILL);
        }
        int stop = o->stop && *o->stop;
        if ((s.step % t->save_steps == 0 && s.step < t->steps) || (stop && s.step < t->steps)) {
            s.train_seconds += now_s() - t0;
            t0 = now_s();
            if (runner_ckpt_save(ckpt, opt, &s, peft_ctx_rng(ctx), config, err, errlen)) goto out;
        }
        if (stop && s.step < t->steps) {
            runner_progress_done(o);
            logf_(o, "%s: stopped at step %lld; checkpoint %s (run the same command again to resume)\n",
                  r->name, (long long)s.step, ckpt);
            rc = RUNNER_STOPPED;
            goto out;
        }
    }
    s.train_seconds += now_s() - t0;
    runner_progress_done(o);
    if (peft_save_pretrained(m, adapter, NULL, 0, 1)) {
        snprintf(err, errlen, "%s: %s", adapter, peft_errmsg(ctx));
        goto out;
    }
    if (!runner_file_exists(best) && res->best_step == 0) { /* no evaluation improved on NaN */
        res->best_step = s.step;
    }
    res->adapter_bytes = adapter_bytes(adapter, r);
    res->final_eval_loss = res->n_eval ? res->eval_loss[res->n_eval - 1].value : NAN;
    res->final_metric = res->n_eval ? res->eval_metric[res->n_eval - 1].value : NAN;
    res->wall_s = s.train_seconds;
    res->tokens_per_s = s.train_seconds > 0 ? (double)res->train_tokens / s.train_seconds : 0;
    res->peak_rss_mb = peak_rss_mb();
    if (runner_write_run_plot(dir, res, err, errlen) || runner_write_results(c, r, res, results, err, errlen))
        goto out;
    unlink(ckpt);
    logf_(o, "%s: done in %.1f s, %s %.4f (best %.4f at step %lld), adapter %s\n", r->name, res->wall_s,
          runner_metric_name(c->metric), res->final_metric, res->best_metric, (long long)res->best_step, adapter);
    rc = 0;
out:
    runner_unlock_run_dir(lock_fd);
    json_decref(config);
    free(s.perm);
    peft_graph_free(g);
    peft_adamw_free(opt);
    peft_model_free(m);
    peft_ctx_free(ctx);
    return rc;
}

int runner_run_all(runner_config *c, const runner_opts *opts, char *err, size_t errlen)
{
    runner_opts quiet = {0};
    if (!opts) opts = &quiet;
    if (!c->checked && runner_check(c, err, errlen)) return -1;
    batch_ctx b = {.c = c, .o = opts};
    peft_tokenizer *tk = NULL;
    char derr[1024];
    int rc = -1, n_res = 0;
    runner_result **res = calloc((size_t)c->n_runs + 1, sizeof *res);
    if (!res) return snprintf(err, errlen, "out of memory"), -1;
    if (runner_check_tokenizer(c, &tk, err, errlen)) goto out;
    peft_base_model *meta;
    char cfg[4096];
    snprintf(cfg, sizeof cfg, "%s/config.json", c->base_model);
    int64_t vocab = 0, num_labels = 2;
    if (peft_base_model_load_meta(cfg, runner_task_peft_type(c->task), &meta, derr, sizeof derr)) {
        snprintf(err, errlen, "%s", derr);
        goto out;
    }
    int64_t pad = 0;
    peft_config_int(meta, "vocab_size", 1, 0, &vocab, derr, sizeof derr);
    peft_config_int(meta, "num_labels", 1, 2, &num_labels, derr, sizeof derr);
    json_t *id2label = json_object_get(meta->config, "id2label");
    if (json_is_object(id2label) && json_object_size(id2label) > 0) num_labels = (int64_t)json_object_size(id2label);
    if (peft_config_int(meta, "pad_token_id", 1, 0, &pad, derr, sizeof derr) || pad < 0 || pad >= vocab) pad = 0;
    b.pad_id = (int32_t)pad;
    peft_base_model_free(meta);
    if (runner_data_load(c->train_path, c->task, c->max_length, vocab, num_labels, tk, &b.train, err, errlen) ||
        runner_data_load(c->eval_path, c->task, c->max_length, vocab, num_labels, tk, &b.eval, err, errlen))
        goto out;
    if (runner_mkdir_p(c->output_dir, err, errlen)) goto out;
    logf_(opts, "%s: %d run%s, %zu training and %zu evaluation examples, output in %s\n", c->name,
          c->n_runs, c->n_runs == 1 ? "" : "s", b.train.n, b.eval.n, c->output_dir);
    int trained = 0;
    for (int i = 0; i < c->n_runs; i++) { /* runs not selected by --only: their results if any */
        int skip = opts->only && !strstr(c->runs[i].name, opts->only);
        /* a stop request after a run finished in this call: do not begin the next one */
        int stop = !skip && trained && opts->stop && *opts->stop;
        int r = run_one(&b, &c->runs[i], skip || stop, &res[n_res], err, errlen);
        if (r == RUN_NONE) {
            runner_result_free(res[n_res]);
            res[n_res] = NULL;
            if (stop) {
                logf_(opts, "stopped before %s (run the same command again to go on)\n", c->runs[i].name);
                rc = RUNNER_STOPPED;
                goto out;
            }
            continue;
        }
        n_res++;
        if (r == 0) trained = 1;
        else if (r != RUN_KEPT) {
            rc = r;
            goto out;
        }
    }
    rc = runner_write_summary(c, res, n_res, opts->log, err, errlen);
out:
    for (int i = 0; i < n_res; i++) runner_result_free(res[i]);
    free(res);
    runner_data_free(&b.train);
    runner_data_free(&b.eval);
    peft_tokenizer_free(tk);
    return rc;
}
