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
#include "runner/dist.h"
#include "runner/internal.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

extern int openblas_get_num_threads(void);

static double peak_rss_mb(void)
{
    struct rusage ru;
    return getrusage(RUSAGE_SELF, &ru) == 0 ? ru.ru_maxrss / 1024.0 : NAN;
}

void runner_result_free(runner_result *r)
{
    if (!r) return;
    free(r->run);
    free(r->group);
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
        int k = !strcmp(r->adapters[i].name, "default")
                    ? snprintf(p, sizeof p, "%s/adapter_model.safetensors", dir)
                    : snprintf(p, sizeof p, "%s/%s/adapter_model.safetensors", dir, r->adapters[i].name);
        if (k < 0 || (size_t)k >= sizeof p) continue; /* a path that long was never written */
        int64_t s = runner_file_size(p);
        if (s > 0) total += s;
    }
    return total;
}

/* the example indices of one micro-batch from the epoch order (a new epoch when it runs out) */
static void next_indices(runner_state *s, int64_t B, size_t *idx)
{
    for (int64_t i = 0; i < B; i++) {
        if ((size_t)s->pos >= s->n_train) runner_state_new_epoch(s);
        idx[i] = s->perm[s->pos++];
    }
}

/* one micro-batch from the epoch order */
static int next_batch(batch_ctx *b, runner_state *s, int64_t B, runner_batch *out)
{
    size_t idx[4096];
    if (B > 4096) B = 4096;
    next_indices(s, B, idx);
    return runner_batch_make(&b->train, b->c->task, idx, B, b->pad_id, out);
}

/* ---- data parallel ----------------------------------------------------------------------------
 * training.data_parallel: N splits each micro-batch of batch_size examples into N shares of
 * batch_size / N. Each share of each micro-batch is its own forward and backward (the gradient
 * of its mean loss), with its own dropout stream seeded from (seed, update, micro-batch, share).
 * Share s's gradients of the accum micro-batches accumulate in micro-batch order (backward adds
 * into the parameters' gradients, as gradient accumulation does); the update's gradient is the
 * sum of the N share gradients in share order, times 1 / (accum x N), in float: the same
 * operations in the same order whichever process computed which share, so 1, 2, 3 or N ranks
 * give the same bits (as long as each process's BLAS computes a share's products the same way:
 * the same OpenBLAS thread count, see docs/experiments.md). Share s is computed by rank
 * s mod min(N, ranks); the shares go to rank 0 in one gather per update (N x the adapter's
 * floats at rank 0), rank 0 sums them and broadcasts the result with a flag (go on, stop,
 * error), and every rank takes the same clipped AdamW step. Rank 0 alone evaluates, saves and
 * checkpoints; every rank reads a checkpoint when resuming. */
typedef struct dp_state {
    int ranks, rank, used;  /* MPI size and rank; ranks that compute shares */
    int64_t n;              /* shares per micro-batch */
    size_t P;               /* gradient floats (every trainable parameter) */
    size_t rec;             /* floats per share record: P gradients, mean loss, tokens */
    float *send, *recv, *sum;
    size_t *idx;            /* the update's example indices, accum x batch_size */
    int *counts;
} dp_state;

#define DP_GO 0
#define DP_STOP 1
#define DP_ERROR 2

static int dp_owner(const dp_state *d, int64_t share) { return (int)(share % d->used); }

static int64_t dp_owned(const dp_state *d, int rank)
{
    int64_t k = 0;
    for (int64_t s = 0; s < d->n; s++) k += dp_owner(d, s) == rank;
    return k;
}

static void dp_free(dp_state *d)
{
    free(d->send);
    free(d->recv);
    free(d->sum);
    free(d->idx);
    free(d->counts);
}

static int dp_init(dp_state *d, const runner_run *r, const peft_adamw *opt, int ranks, int rank)
{
    memset(d, 0, sizeof *d);
    d->ranks = ranks, d->rank = rank;
    d->n = r->train.data_parallel;
    d->used = d->n < ranks ? (int)d->n : ranks;
    for (size_t i = 0; i < peft_adamw_n_params(opt); i++) d->P += (size_t)peft_adamw_param(opt, i)->numel;
    d->rec = d->P + 2;
    d->send = malloc(((size_t)dp_owned(d, rank) * d->rec + 1) * sizeof *d->send);
    d->recv = malloc((rank == 0 ? (size_t)d->n * d->rec : 1) * sizeof *d->recv);
    d->sum = malloc((d->P + 1) * sizeof *d->sum);
    d->idx = malloc(((size_t)r->train.grad_accum * (size_t)r->train.batch_size + 1) * sizeof *d->idx);
    d->counts = calloc((size_t)ranks, sizeof *d->counts);
    if (!d->send || !d->recv || !d->sum || !d->idx || !d->counts) return -1;
    for (int k = 0; k < ranks; k++) d->counts[k] = (int)((size_t)dp_owned(d, k) * d->rec);
    return 0;
}

static uint64_t mix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* one share's gradient (its accum micro-batches, accumulated) into rec; -1 with err */
static int dp_share(batch_ctx *b, const runner_run *r, peft_model *m, peft_adamw *opt, peft_graph *g,
                    runner_state *s, const dp_state *d, int64_t sh, float *rec, char *err, size_t errlen)
{
    const runner_train_cfg *t = &r->train;
    const int64_t bs = t->batch_size / d->n;
    peft_ctx *ctx = peft_model_ctx(m);
    double loss = 0, tokens = 0;
    peft_adamw_zero_grad(opt);
    for (int64_t a = 0; a < t->grad_accum; a++) {
        runner_batch bt;
        if (runner_batch_make(&b->train, b->c->task, d->idx + a * t->batch_size + sh * bs, bs, b->pad_id, &bt))
            return snprintf(err, errlen, "out of memory for a batch"), -1;
        peft_rng_seed(peft_ctx_rng(ctx),
                      mix64(r->seed ^ mix64((uint64_t)(s->step * t->grad_accum + a) * 4099u + (uint64_t)sh)));
        peft_model_inputs in;
        runner_batch_view(&bt, b->c->task, &in);
        peft_model_outputs mo;
        peft_graph_reset(g);
        peft_graph_set_recording(g, 1);
        int e = peft_model_forward(m, g, &in, &mo);
        tokens += (double)bt.n_tokens;
        runner_batch_free(&bt);
        if (e) return snprintf(err, errlen, "run '%s' step %lld: %s", r->name, (long long)s->step + 1, peft_errmsg(ctx)), -1;
        loss += peft_f32(mo.loss)[0];
        if (peft_graph_backward(g, mo.loss))
            return snprintf(err, errlen, "run '%s' step %lld: %s", r->name, (long long)s->step + 1,
                            peft_graph_error(g)), -1;
        double peak = (double)peft_graph_peak_bytes(g) / (1024.0 * 1024.0);
        if (peak > s->res->peak_arena_mb) s->res->peak_arena_mb = peak;
    }
    size_t k = 0;
    for (size_t i = 0; i < peft_adamw_n_params(opt); i++) {
        peft_tensor *pt = peft_adamw_param(opt, i);
        memcpy(rec + k, pt->grad, (size_t)pt->numel * sizeof(float));
        k += (size_t)pt->numel;
    }
    peft_adamw_zero_grad(opt);
    rec[d->P] = (float)(loss / (double)t->grad_accum);
    rec[d->P + 1] = (float)tokens;
    return 0;
}

/* One data-parallel update (every rank calls it): this rank's shares, the gather, the sum at rank
 * 0, the broadcast, the step. *flag: DP_GO, DP_STOP (rank 0 was asked to stop) or DP_ERROR.
 * -1 with err on a failure (this rank's own, or another's announced by the flag). */
static int dp_update(batch_ctx *b, const runner_run *r, peft_model *m, peft_adamw *opt, peft_graph *g,
                     runner_state *s, dp_state *d, int want_stop, double *loss, int *flag, char *err,
                     size_t errlen)
{
    const runner_train_cfg *t = &r->train;
    for (int64_t a = 0; a < t->grad_accum; a++) /* every rank walks the same order */
        next_indices(s, t->batch_size, d->idx + a * t->batch_size);
    size_t o = 0;
    int bad = 0;
    for (int64_t sh = 0; sh < d->n; sh++) {
        if (dp_owner(d, sh) != d->rank) continue;
        float *rec = d->send + o;
        o += d->rec;
        if (!bad && dp_share(b, r, m, opt, g, s, d, sh, rec, err, errlen)) bad = 1;
    }
    if (bad) /* a NaN loss tells rank 0 */
        for (size_t i = 0; i < o; i += d->rec) d->send[i + d->P] = NAN;
    if (runner_dist_gatherv(d->send, (int)o, d->recv, d->counts, 0))
        return snprintf(err, errlen, "run '%s': the gather of the gradients failed", r->name), -1;
    if (d->rank == 0) { /* the records arrive by rank; sum them in share order */
        size_t *off = malloc((size_t)d->n * sizeof *off), *pos = calloc((size_t)d->ranks + 1, sizeof *pos);
        if (!off || !pos) {
            free(off);
            free(pos);
            return snprintf(err, errlen, "out of memory"), -1;
        }
        for (int k = 1; k <= d->ranks; k++) pos[k] = pos[k - 1] + (size_t)d->counts[k - 1];
        for (int64_t sh = 0; sh < d->n; sh++) {
            int ow = dp_owner(d, sh);
            off[sh] = pos[ow];
            pos[ow] += d->rec;
        }
        memcpy(d->sum, d->recv + off[0], d->P * sizeof(float));
        for (int64_t k = 1; k < d->n; k++) {
            const float *x = d->recv + off[k];
            for (size_t i = 0; i < d->P; i++) d->sum[i] += x[i];
        }
        const float scale = (float)(1.0 / (double)(t->grad_accum * d->n));
        for (size_t i = 0; i < d->P; i++) d->sum[i] *= scale;
        double lsum = 0;
        int finite = 1;
        for (int64_t k = 0; k < d->n; k++) {
            const float *x = d->recv + off[k];
            finite &= isfinite(x[d->P]);
            lsum += x[d->P];
            s->res->train_tokens += (int64_t)x[d->P + 1];
        }
        free(off);
        free(pos);
        *loss = lsum / (double)d->n;
        *flag = !finite ? DP_ERROR : want_stop ? DP_STOP : DP_GO;
        if (!finite && !bad)
            snprintf(err, errlen, "run '%s' step %lld: the loss is not finite on a share (try a smaller "
                     "learning_rate, or see the other ranks' messages)", r->name, (long long)s->step + 1);
        d->sum[d->P] = (float)*flag;
    }
    if (runner_dist_bcast(d->sum, (int)d->P + 1, 0))
        return snprintf(err, errlen, "run '%s': the broadcast of the gradients failed", r->name), -1;
    *flag = (int)d->sum[d->P];
    if (*flag == DP_ERROR) {
        if (!bad && d->rank != 0) snprintf(err, errlen, "run '%s': stopped by an error on another rank", r->name);
        return -1;
    }
    size_t k = 0;
    for (size_t i = 0; i < peft_adamw_n_params(opt); i++) {
        peft_tensor *pt = peft_adamw_param(opt, i);
        memcpy(pt->grad, d->sum + k, (size_t)pt->numel * sizeof(float));
        k += (size_t)pt->numel;
    }
    if (t->max_grad_norm > 0) peft_adamw_clip_grad_norm(opt, t->max_grad_norm);
    double lr = peft_lr_at(t->schedule, t->lr, s->step, t->steps, t->warmup_steps);
    peft_adamw_update(opt, lr > 0 ? lr : 1e-300);
    if (peft_model_step_end(m, s->step, t->steps)) /* the plugins' hooks: the same on every rank */
        return snprintf(err, errlen, "%s", peft_errmsg(peft_model_ctx(m))), -1;
    peft_adamw_zero_grad(opt);
    return 0;
}

static void logf_(const runner_opts *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void logf_(const runner_opts *o, const char *fmt, ...)
{
    if (!o->log) return;
    if (o->tag) fputs(o->tag, o->log);
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

/* the files of one run under output_dir/<run> */
typedef struct run_paths {
    char dir[4096], ckpt[4200], best[4200], adapter[4200], results[4200];
} run_paths;

static void run_paths_set(const runner_config *c, const runner_run *r, run_paths *p)
{
    snprintf(p->dir, sizeof p->dir, "%s/%s", c->output_dir, r->name);
    snprintf(p->ckpt, sizeof p->ckpt, "%s/checkpoint.safetensors", p->dir);
    snprintf(p->best, sizeof p->best, "%s/best", p->dir);
    snprintf(p->adapter, sizeof p->adapter, "%s/adapter", p->dir);
    snprintf(p->results, sizeof p->results, "%s/results.json", p->dir);
}

/* a new run's result record (names, seed, where it runs) and its directory. 0 or -1 with err */
static int result_init(runner_result *res, const runner_run *r, const runner_opts *o, const char *dir,
                       char *err, size_t errlen)
{
    res->best_metric = res->best_eval_loss = res->base_metric = NAN;
    res->seed = r->seed;
    res->rank = o->rank;
    res->world = o->world > 0 ? o->world : 1;
    res->blas_threads = openblas_get_num_threads();
    if (gethostname(res->host, sizeof res->host) != 0) snprintf(res->host, sizeof res->host, "?");
    res->host[sizeof res->host - 1] = 0;
    if (!(res->run = strdup(r->name)) || !(res->group = strdup(r->group)) || !(res->methods = join_methods(r)) ||
        runner_mkdirs(dir, err, errlen)) {
        if (!res->methods) snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

/* One process per run dir: a second peft run on it stops here, naming us. A data-parallel run on
 * several ranks is one run: rank 0 locks, and tells the others what it found. 0: train (*lock_fd
 * held); RUN_KEPT: finished meanwhile by the holder we waited for (results read back into res);
 * -1 with err. */
static int claim_run_dir(batch_ctx *b, const runner_run *r, const run_paths *p, runner_result *res,
                         const json_t *config, int *lock_fd, char *err, size_t errlen)
{
    const runner_opts *o = b->o;
    const int dp_multi = r->train.data_parallel > 1 && runner_dist_size() > 1;
    const int locker = !dp_multi || runner_dist_rank() == 0;
    float verdict = 1; /* 1: train; 0: finished meanwhile by the holder we waited for; -1: no lock */
    if (locker && runner_lock_run_dir(p->dir, lock_fd, err, errlen)) verdict = -1;
    else if (locker && !o->fresh && runner_file_exists(p->results)) verdict = 0;
    if (dp_multi && runner_dist_bcast(&verdict, 1, 0)) verdict = -1;
    if (verdict < 0) {
        if (!locker) snprintf(err, errlen, "run '%s': rank 0 could not lock %s", r->name, p->dir);
        return -1;
    }
    if (verdict > 0) return 0;
    runner_unlock_run_dir(*lock_fd);
    *lock_fd = -1;
    free(res->run);
    free(res->group);
    free(res->methods);
    res->run = res->group = res->methods = NULL;
    if (runner_read_results(p->results, config, res, err, errlen)) return -1;
    logf_(o, "%s: finished earlier (%s), kept\n", r->name, p->results);
    return RUN_KEPT;
}

/* One update on this process alone: grad_accum micro-batches (forward, backward), clipping, and
 * the AdamW step, or no step when a loss or the gradient norm is not finite (bad says what and
 * where; training.on_nonfinite: stop makes that an error). *last_loss: the update's mean loss
 * when it was finite. 0 or -1 with err. */
static int local_update(batch_ctx *b, const runner_run *r, peft_model *m, peft_adamw *opt, peft_graph *g,
                        runner_state *s, double lr, double *last_loss, char *bad, size_t badlen,
                        char *err, size_t errlen)
{
    const runner_train_cfg *t = &r->train;
    runner_result *res = s->res;
    peft_ctx *ctx = peft_model_ctx(m);
    double loss_sum = 0;
    for (int64_t a = 0; a < t->grad_accum; a++) {
        runner_batch bt;
        if (next_batch(b, s, t->batch_size, &bt)) return snprintf(err, errlen, "out of memory for a batch"), -1;
        peft_model_inputs in;
        runner_batch_view(&bt, b->c->task, &in);
        peft_model_outputs mo;
        peft_graph_reset(g);
        peft_graph_set_recording(g, 1);
        if (peft_model_forward(m, g, &in, &mo)) {
            snprintf(err, errlen, "run '%s' step %lld: %s", r->name, (long long)s->step + 1, peft_errmsg(ctx));
            runner_batch_free(&bt);
            return -1;
        }
        double l = peft_f32(mo.loss)[0];
        res->train_tokens += bt.n_tokens;
        runner_batch_free(&bt);
        if (!isfinite(l)) {
            if (!bad[0]) snprintf(bad, badlen, "the loss is %g (micro-batch %lld)", l, (long long)a + 1);
            continue;
        }
        loss_sum += l;
        if (peft_graph_backward(g, mo.loss))
            return snprintf(err, errlen, "run '%s' step %lld: %s", r->name, (long long)s->step + 1,
                            peft_graph_error(g)), -1;
        double peak = (double)peft_graph_peak_bytes(g) / (1024.0 * 1024.0);
        if (peak > res->peak_arena_mb) res->peak_arena_mb = peak;
    }
    if (t->grad_accum > 1) peft_adamw_scale_grads(opt, 1.0 / (double)t->grad_accum);
    double gnorm = peft_adamw_clip_grad_norm(opt, t->max_grad_norm > 0 ? t->max_grad_norm : 0);
    if (!bad[0] && !isfinite(gnorm)) snprintf(bad, badlen, "the gradient norm is %g", gnorm);
    if (bad[0]) {
        if (t->on_nonfinite != RUNNER_NONFINITE_SKIP)
            return snprintf(err, errlen, "run '%s' step %lld: %s; stopped (training.on_nonfinite: skip "
                            "drops such updates; or try a smaller learning_rate)", r->name,
                            (long long)s->step + 1, bad), -1;
        peft_adamw_zero_grad(opt);
        res->skipped_steps++;
        logf_(b->o, "%s: step %lld: %s: update skipped (training.on_nonfinite: skip)\n", r->name,
              (long long)s->step + 1, bad);
        return 0;
    }
    peft_adamw_update(opt, lr > 0 ? lr : 1e-300); /* lr 0 (warm-up's first update) is a no-op step */
    /* the plugins' training hooks (AdaLoRA's rank allocation) see the gradients, as PEFT's
     * update_and_allocate between optimizer.step() and zero_grad() */
    if (peft_model_step_end(m, s->step, t->steps))
        return snprintf(err, errlen, "%s", peft_errmsg(ctx)), -1;
    peft_adamw_zero_grad(opt);
    *last_loss = loss_sum / (double)t->grad_accum;
    return 0;
}

/* Before the first update: from the checkpoint when there is one (every rank reads it), else a
 * new epoch order, the trainable-parameter line, and (lead) the base model's and the initialised
 * adapters' evaluations. 0 or -1 with err. */
static int start_run(batch_ctx *b, const runner_run *r, peft_model *m, peft_adamw *opt, peft_graph *g,
                     runner_state *s, const dp_state *d, int lead, const run_paths *p,
                     const json_t *config, char *err, size_t errlen)
{
    const runner_opts *o = b->o;
    const runner_train_cfg *t = &r->train;
    if (!o->fresh && runner_file_exists(p->ckpt)) {
        if (runner_ckpt_load(p->ckpt, opt, s, peft_ctx_rng(peft_model_ctx(m)), config, err, errlen)) return -1;
        if (lead) logf_(o, "%s: resuming at step %lld of %lld from %s\n", r->name, (long long)s->step,
                        (long long)t->steps, p->ckpt);
        return 0;
    }
    runner_state_new_epoch(s);
    char line[256];
    peft_format_trainable_parameters(m, line, sizeof line);
    if (t->data_parallel > 1 && lead)
        logf_(o, "%s: %s; data parallel: %lld shares of %lld examples on %d rank%s\n", r->name, line,
              (long long)t->data_parallel, (long long)(t->batch_size / t->data_parallel), d->used,
              d->used == 1 ? "" : "s");
    else if (lead) logf_(o, "%s: %s\n", r->name, line);
    /* the base model without the adapters, then the adapters as initialised (unless
     * training.eval_on_start: false) */
    if (!t->eval_on_start) return 0;
    runner_eval_result ev;
    if (lead && peft_disable_adapter(m) == PEFT_OK) {
        if (runner_evaluate(m, g, b->c, &b->eval, b->c->num_eval, t->eval_batch_size, &ev, err, errlen)) return -1;
        s->res->base_metric = ev.metric;
        peft_enable_adapter(m);
    }
    if (lead && eval_point(b, r, m, g, s, p->best, err, errlen)) return -1;
    return 0;
}

/* After the last update (rank 0): the adapter, the result record's totals (elapsed: since
 * t_start, plus elapsed0 of earlier sessions; world: the ranks of a data-parallel run, or -1),
 * the plot and results.json; the checkpoint goes. 0 or -1 with err. */
static int finish_run(batch_ctx *b, const runner_run *r, peft_model *m, const runner_state *s,
                      const run_paths *p, double elapsed0, double t_start, int world, char *err,
                      size_t errlen)
{
    const runner_config *c = b->c;
    runner_result *res = s->res;
    if (peft_save_pretrained(m, p->adapter, NULL, 0, 1))
        return snprintf(err, errlen, "%s: %s", p->adapter, peft_errmsg(peft_model_ctx(m))), -1;
    if (!runner_file_exists(p->best) && res->best_step == 0) { /* no evaluation improved on NaN */
        res->best_step = s->step;
    }
    res->adapter_bytes = adapter_bytes(p->adapter, r);
    res->final_eval_loss = res->n_eval ? res->eval_loss[res->n_eval - 1].value : NAN;
    res->final_metric = res->n_eval ? res->eval_metric[res->n_eval - 1].value : NAN;
    res->wall_s = s->train_seconds;
    res->tokens_per_s = s->train_seconds > 0 ? (double)res->train_tokens / s->train_seconds : 0;
    res->peak_rss_mb = peak_rss_mb();
    res->elapsed_s = elapsed0 + (now_s() - t_start);
    if (world >= 0) res->world = world;
    if (runner_write_run_plot(p->dir, res, err, errlen) || runner_write_results(c, r, res, p->results, err, errlen))
        return -1;
    unlink(p->ckpt);
    logf_(b->o, "%s: done in %.1f s, %s %.4f (best %.4f at step %lld), adapter %s\n", r->name, res->wall_s,
          runner_metric_name(c->metric), res->final_metric, res->best_metric, (long long)res->best_step,
          p->adapter);
    return 0;
}

/* what a run holds while it trains; run_live_free frees it */
typedef struct run_live {
    peft_ctx *ctx;
    peft_model *m;
    peft_adamw *opt;
    peft_graph *g;
    runner_state s;
    dp_state d;
    int dp, lead;    /* data parallel over the MPI ranks; this rank evaluates, saves, checkpoints, logs */
    double t_start;  /* when this session's training began */
    double elapsed0; /* the run's elapsed seconds in earlier sessions (from the checkpoint) */
} run_live;

/* the run's context, model, optimizer, graph, data order and data-parallel state. 0 or -1 */
static int run_live_init(batch_ctx *b, const runner_run *r, runner_result *res, run_live *L, char *err,
                         size_t errlen)
{
    L->ctx = peft_ctx_new(r->seed);
    peft_set_tokenizer(L->ctx, peft_tokenizer_text_hook, NULL);
    L->s = (runner_state){.res = res, .n_train = b->train.n};
    if (!L->ctx || build_model(b->c, r, L->ctx, &L->m, err, errlen)) return -1;
    peft_get_nb_trainable_parameters(L->m, &res->trainable, &res->all);
    const runner_train_cfg *t = &r->train;
    peft_adamw_config oc = {t->lr, t->beta1, t->beta2, t->eps, t->weight_decay};
    if (!(L->opt = peft_adamw_new(L->m, &oc))) return snprintf(err, errlen, "%s", peft_errmsg(L->ctx)), -1;
    L->g = peft_graph_new(peft_ctx_rng(L->ctx));
    L->s.perm = malloc((b->train.n + 1) * sizeof *L->s.perm);
    if (!L->g || !L->s.perm) return snprintf(err, errlen, "out of memory"), -1;
    peft_rng_seed(&L->s.data_rng, r->seed ^ 0x9e3779b97f4a7c15ULL);

    /* data parallel: over the MPI ranks when there are several, else every share here */
    L->dp = t->data_parallel > 1;
    const int ranks = L->dp ? runner_dist_size() : 1, rank = L->dp ? runner_dist_rank() : 0;
    L->lead = rank == 0;
    if (L->dp && dp_init(&L->d, r, L->opt, ranks, rank)) return snprintf(err, errlen, "out of memory"), -1;
    return 0;
}

static void run_live_free(run_live *L)
{
    dp_free(&L->d);
    free(L->s.perm);
    peft_graph_free(L->g);
    peft_adamw_free(L->opt);
    peft_model_free(L->m);
    peft_ctx_free(L->ctx);
}

/* After update s.step: evaluation (lead, at eval_steps and the end), the debug kill, and the
 * checkpoint (lead, at save_steps or when stopping early). *t0: when the current stretch of
 * training time began (evaluation does not count). 0 or -1 with err. */
static int after_update(batch_ctx *b, const runner_run *r, run_live *L, const run_paths *p,
                        const json_t *config, int stop, double *t0, char *err, size_t errlen)
{
    const runner_opts *o = b->o;
    const runner_train_cfg *t = &r->train;
    runner_state *s = &L->s;
    if (L->lead && (s->step % t->eval_steps == 0 || s->step == t->steps)) {
        double te = now_s();
        if (eval_point(b, r, L->m, L->g, s, p->best, err, errlen)) return -1;
        *t0 += now_s() - te; /* evaluation time is not training time */
    }
    if (o->debug_kill_at > 0 && s->step == o->debug_kill_at &&
        (!o->debug_kill_run || !strcmp(o->debug_kill_run, r->name))) {
        if (o->log) fflush(o->log);
        raise(SIGKILL);
    }
    if (L->lead && ((s->step % t->save_steps == 0 && s->step < t->steps) || (stop && s->step < t->steps))) {
        s->train_seconds += now_s() - *t0;
        *t0 = now_s();
        s->elapsed_seconds = L->elapsed0 + (now_s() - L->t_start);
        if (runner_ckpt_save(p->ckpt, L->opt, s, peft_ctx_rng(L->ctx), config, err, errlen)) return -1;
    }
    return 0;
}

/* The updates from s.step to the last, then (lead) the run's files. 0 trained to the end,
 * RUNNER_STOPPED (a stop request; checkpoint written), or -1 with err. */
static int train_loop(batch_ctx *b, const runner_run *r, run_live *L, const run_paths *p,
                      const json_t *config, char *err, size_t errlen)
{
    const runner_opts *o = b->o;
    const runner_train_cfg *t = &r->train;
    runner_state *s = &L->s;
    runner_result *res = s->res;
    double t0 = now_s(), last_loss = NAN;
    while (s->step < t->steps) {
        peft_model_train(L->m, 1);
        double lr = peft_lr_at(t->schedule, t->lr, s->step, t->steps, t->warmup_steps);
        int stop = o->stop && *o->stop;
        char bad[256] = ""; /* a non-finite loss or gradient in this update: what and where */
        if (L->dp) {
            int flag;
            if (dp_update(b, r, L->m, L->opt, L->g, s, &L->d, stop, &last_loss, &flag, err, errlen)) return -1;
            stop = flag == DP_STOP; /* rank 0 decides for every rank */
        } else {
            if (local_update(b, r, L->m, L->opt, L->g, s, lr, &last_loss, bad, sizeof bad, err, errlen))
                return -1;
            stop = o->stop && *o->stop; /* a request that came during the update */
        }
        s->step++;
        if (!bad[0] && runner_curve_push(&res->train_loss, &res->n_train, s->step, last_loss))
            return snprintf(err, errlen, "out of memory"), -1;
        double el = s->train_seconds + (now_s() - t0);
        if (L->lead)
            runner_progress(o, r->name, s->step, t->steps, last_loss, lr, el > 0 ? (double)res->train_tokens / el : 0);
        if (after_update(b, r, L, p, config, stop, &t0, err, errlen)) return -1;
        if (stop && s->step < t->steps) {
            runner_progress_done(o);
            if (L->lead)
                logf_(o, "%s: stopped at step %lld; checkpoint %s (run the same command again to resume)\n",
                      r->name, (long long)s->step, p->ckpt);
            return RUNNER_STOPPED;
        }
        if (o->poll) o->poll(o->poll_ud);
    }
    s->train_seconds += now_s() - t0;
    runner_progress_done(o);
    /* a data-parallel helper (not lead): rank 0 writes the run's files */
    if (L->lead && finish_run(b, r, L->m, s, p, L->elapsed0, L->t_start, L->dp ? L->d.used : -1, err, errlen))
        return -1;
    return 0;
}

/* one run; 0 trained to the end, RUN_KEPT, RUNNER_STOPPED, or -1. read_only: only read back a
 * finished run's results (RUN_NONE when it has none) */
static int run_one(batch_ctx *b, const runner_run *r, int read_only, runner_result **out, char *err,
                   size_t errlen)
{
    const runner_config *c = b->c;
    const runner_opts *o = b->o;
    run_paths p = {0}; /* (cppcheck's whole-program pass cannot see run_paths_set fill it) */
    run_paths_set(c, r, &p);
    runner_result *res = calloc(1, sizeof *res);
    if (!res) return snprintf(err, errlen, "out of memory"), -1;
    *out = res;
    json_t *config = runner_run_config_json(c, r);
    if (!config) return snprintf(err, errlen, "out of memory"), -1;
    if (!o->fresh && runner_file_exists(p.results)) { /* finished earlier: keep it */
        int e = runner_read_results(p.results, config, res, err, errlen);
        json_decref(config);
        if (e) return -1;
        if (!read_only) logf_(o, "%s: finished earlier (%s), kept\n", r->name, p.results);
        return RUN_KEPT;
    }
    if (read_only) {
        json_decref(config);
        return RUN_NONE;
    }
    int lock_fd = -1;
    int rc = result_init(res, r, o, p.dir, err, errlen) ? -1
             : claim_run_dir(b, r, &p, res, config, &lock_fd, err, errlen);
    if (rc != 0) {
        json_decref(config);
        return rc;
    }
    run_live L = {0};
    rc = -1;
    if (!run_live_init(b, r, res, &L, err, errlen)) {
        L.t_start = now_s();
        if (!start_run(b, r, L.m, L.opt, L.g, &L.s, &L.d, L.lead, &p, config, err, errlen)) {
            L.elapsed0 = L.s.elapsed_seconds;
            rc = train_loop(b, r, &L, &p, config, err, errlen);
        }
    }
    runner_unlock_run_dir(lock_fd);
    run_live_free(&L);
    json_decref(config);
    return rc;
}

/* the work of a run, for scheduling: updates x examples per update (longest first) */
static double run_cost(const runner_run *r)
{
    return (double)r->train.steps * (double)r->train.grad_accum * (double)r->train.batch_size;
}

/* runs in order of decreasing cost, ties in file order */
static void by_cost(const runner_config *c, int *order)
{
    for (int i = 0; i < c->n_runs; i++) order[i] = i;
    for (int i = 1; i < c->n_runs; i++) { /* insertion sort: stable */
        int v = order[i], j = i;
        while (j > 0 && run_cost(&c->runs[order[j - 1]]) < run_cost(&c->runs[v])) order[j] = order[j - 1], j--;
        order[j] = v;
    }
}

int runner_shard_assign(const runner_config *c, int count, int *shard)
{
    int *order = malloc(((size_t)c->n_runs + 1) * sizeof *order);
    double *load = calloc((size_t)count + 1, sizeof *load);
    if (!order || !load || count < 1) {
        free(order);
        free(load);
        return -1;
    }
    by_cost(c, order);
    for (int k = 0; k < c->n_runs; k++) { /* longest first, each to the least loaded shard */
        int best = 0;
        for (int j = 1; j < count; j++)
            if (load[j] < load[best]) best = j;
        shard[order[k]] = best;
        load[best] += run_cost(&c->runs[order[k]]);
    }
    free(order);
    free(load);
    return 0;
}

/* loads what every run shares: the tokenizer, both data sets, the pad id */
static int batch_setup(runner_config *c, batch_ctx *b, char *err, size_t errlen)
{
    peft_tokenizer *tk = NULL;
    int rc = -1;
    if (runner_check_tokenizer(c, &tk, err, errlen)) goto out;
    peft_base_model *meta;
    char cfg[4096];
    snprintf(cfg, sizeof cfg, "%s/config.json", c->base_model);
    int64_t vocab = 0;
    peft_ctx *mctx = peft_ctx_new(0);
    int lrc = mctx ? peft_load_base_model_meta(mctx, cfg, runner_task_peft_type(c->task), &meta)
                   : PEFT_ENOMEM;
    if (lrc) snprintf(err, errlen, "%s", mctx ? peft_errmsg(mctx) : "out of memory");
    peft_ctx_free(mctx);
    if (lrc) goto out;
    int64_t pad = 0;
    peft_config_int(NULL, meta, "vocab_size", 1, 0, &vocab);
    int64_t num_labels = peft_base_model_num_labels(meta);
    if (peft_config_int(NULL, meta, "pad_token_id", 1, 0, &pad) || pad < 0 || pad >= vocab) pad = 0;
    b->pad_id = (int32_t)pad;
    peft_base_model_free(meta);
    if (runner_data_load(c->train_path, c->task, c->max_length, vocab, num_labels, tk, &b->train, err, errlen) ||
        runner_data_load(c->eval_path, c->task, c->max_length, vocab, num_labels, tk, &b->eval, err, errlen))
        goto out;
    if (runner_mkdirs(c->output_dir, err, errlen)) goto out;
    rc = 0;
out:
    peft_tokenizer_free(tk);
    return rc;
}

/* The summary from the results on disk, in file order. require_all: only when every run has
 * one (*missing counts those that do not; no summary then). */
static int summarize(batch_ctx *b, int require_all, int *missing, char *err, size_t errlen)
{
    const runner_config *c = b->c;
    runner_opts ro = *b->o;
    ro.fresh = 0;
    batch_ctx rb = *b;
    rb.o = &ro;
    runner_result **res = calloc((size_t)c->n_runs + 1, sizeof *res);
    if (!res) return snprintf(err, errlen, "out of memory"), -1;
    int n_res = 0, rc = 0, miss = 0;
    char first_missing[512] = "";
    for (int i = 0; i < c->n_runs && rc == 0; i++) {
        int r = run_one(&rb, &c->runs[i], 1, &res[n_res], err, errlen);
        if (r == RUN_KEPT) n_res++;
        else if (r == RUN_NONE) {
            if (!miss++) snprintf(first_missing, sizeof first_missing, "%s", c->runs[i].name);
            runner_result_free(res[n_res]);
            res[n_res] = NULL;
        } else {
            rc = -1;
            runner_result_free(res[n_res]);
            res[n_res] = NULL;
        }
    }
    if (missing) *missing = miss;
    if (rc == 0 && require_all && miss) {
        snprintf(err, errlen, "%d of %d runs have no results.json yet in %s (the first: %s): run the missing "
                 "shards first", miss, c->n_runs, c->output_dir, first_missing);
        rc = 1;
    } else if (rc == 0) {
        rc = runner_write_summary(c, res, n_res, b->o->log, err, errlen);
    }
    for (int i = 0; i < n_res; i++) runner_result_free(res[i]);
    free(res);
    return rc;
}

/* a scheduled job: one run, its result dropped (the summary reads results.json) */
static int job(void *ud, int i, char *err, size_t errlen)
{
    batch_ctx *b = ud;
    runner_result *res = NULL;
    int r = run_one(b, &b->c->runs[i], 0, &res, err, errlen);
    runner_result_free(res);
    return r == RUN_KEPT ? 0 : r;
}

/* One process: the selected runs in file order; a stop request after a run finished in this
 * call does not begin the next one. 0, RUNNER_STOPPED, or -1 with err. */
static int run_serial(batch_ctx *b, const char *selected, char *err, size_t errlen)
{
    const runner_config *c = b->c;
    const runner_opts *o = b->o;
    int trained = 0;
    for (int i = 0; i < c->n_runs; i++) {
        if (!selected[i]) continue;
        /* a stop request after a run finished in this call: do not begin the next one */
        if (trained && o->stop && *o->stop) {
            runner_result *res = NULL;
            int r = run_one(b, &c->runs[i], 1, &res, err, errlen);
            runner_result_free(res);
            if (r == RUN_NONE) {
                logf_(o, "stopped before %s (run the same command again to go on)\n", c->runs[i].name);
                return RUNNER_STOPPED;
            }
            if (r < 0) return -1;
            continue;
        }
        runner_result *res = NULL;
        int r = run_one(b, &c->runs[i], 0, &res, err, errlen);
        runner_result_free(res);
        if (r == 0) trained = 1;
        else if (r != RUN_KEPT) return r;
    }
    return 0;
}

/* Several ranks: the data-parallel runs first, each by every rank together; then the others,
 * one per rank, longest first (rank 0 leads the queue, o->tag names the rank in the log while
 * they run). queue: room for n_runs indices. 0, RUNNER_STOPPED, or -1 with err. */
static int run_ranks(batch_ctx *b, runner_opts *o, const char *selected, int *queue, int rank,
                     char *err, size_t errlen)
{
    const runner_config *c = b->c;
    for (int i = 0; i < c->n_runs; i++) {
        if (!selected[i] || c->runs[i].train.data_parallel <= 1) continue;
        int r = job(b, i, err, errlen);
        if (r) return r;
    }
    int n = 0;
    by_cost(c, queue);
    for (int k = 0; k < c->n_runs; k++) {
        int i = queue[k];
        char p[4200];
        snprintf(p, sizeof p, "%s/%s/results.json", c->output_dir, c->runs[i].name);
        if (selected[i] && c->runs[i].train.data_parallel <= 1 && (o->fresh || !runner_file_exists(p)))
            queue[n++] = i;
    }
    char tag[32];
    snprintf(tag, sizeof tag, "[rank %d] ", rank);
    o->tag = tag;
    int r = rank == 0 ? runner_sched_lead(queue, n, job, b, o, err, errlen)
                      : runner_sched_work(job, b, o, err, errlen);
    o->tag = NULL;
    return r;
}

int runner_run_all(runner_config *c, const runner_opts *opts, char *err, size_t errlen)
{
    runner_opts o = {0};
    if (opts) o = *opts;
    if (!c->checked && runner_check(c, err, errlen)) return -1;
    const int world = runner_dist_size(), rank = runner_dist_rank();
    o.rank = rank, o.world = world;
    batch_ctx b = {.c = c, .o = &o};
    int rc = -1;
    int *shard = calloc((size_t)c->n_runs + 1, sizeof *shard), *queue = calloc((size_t)c->n_runs + 1, sizeof *queue);
    char *selected = calloc((size_t)c->n_runs + 1, 1);
    if (!shard || !queue || !selected) { snprintf(err, errlen, "out of memory"); goto out; }
    if (o.shard_count > 0 && runner_shard_assign(c, o.shard_count, shard)) { snprintf(err, errlen, "out of memory"); goto out; }
    int n_sel = 0;
    for (int i = 0; i < c->n_runs; i++) {
        selected[i] = (!o.only || strstr(c->runs[i].name, o.only)) && (o.shard_count <= 0 || shard[i] == o.shard_index);
        n_sel += selected[i];
    }
    if (batch_setup(c, &b, err, errlen)) goto out;
    if (rank == 0) {
        char where[128] = "";
        if (o.shard_count > 0) snprintf(where, sizeof where, "shard %d/%d: %d of ", o.shard_index, o.shard_count, n_sel);
        if (world > 1) snprintf(where + strlen(where), sizeof where - strlen(where), "%s%d ranks (%s), ",
                                where[0] ? "on " : "", world, runner_dist_library());
        logf_(&o, "%s: %s%d run%s, %zu training and %zu evaluation examples, output in %s\n", c->name, where,
              c->n_runs, c->n_runs == 1 ? "" : "s", b.train.n, b.eval.n, c->output_dir);
    }
    if (world == 1) { /* one process: the runs in file order */
        if ((rc = run_serial(&b, selected, err, errlen)) != 0) goto out;
    } else if ((rc = run_ranks(&b, &o, selected, queue, rank, err, errlen)) != 0 || rank != 0) {
        goto out; /* rank 0 writes the summary */
    }
    if (o.shard_count > 0) { /* the shard that finds every run finished writes the summary */
        int missing = 0;
        char serr[1024];
        rc = summarize(&b, 1, &missing, serr, sizeof serr);
        if (rc == 1) {
            logf_(&o, "shard %d/%d done; %d run%s of other shards not finished yet: the last shard to finish (or "
                  "`peft run FILE --summarize`) writes the summary\n", o.shard_index, o.shard_count, missing,
                  missing == 1 ? "" : "s");
            rc = 0;
        } else if (rc) {
            snprintf(err, errlen, "%s", serr);
        }
    } else {
        rc = summarize(&b, 0, NULL, err, errlen);
    }
out:
    free(shard);
    free(queue);
    free(selected);
    runner_data_free(&b.train);
    runner_data_free(&b.eval);
    return rc;
}

int runner_summarize(runner_config *c, const runner_opts *opts, char *err, size_t errlen)
{
    runner_opts o = {0};
    if (opts) o = *opts;
    batch_ctx b = {.c = c, .o = &o};
    if (runner_dist_rank() != 0) return 0;
    int missing = 0, rc = summarize(&b, 1, &missing, err, errlen);
    return rc ? -1 : 0;
}
