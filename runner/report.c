/* runner_report.c — what a run and a batch leave behind: results.json per run (config, seed,
 * parameter counts, adapter size, curves, metrics, timings, memory), read back for the summary
 * of runs finished in an earlier session; and the batch summary as a Markdown table (printed
 * and written to summary.md), summary.csv, and the plots loss_curves.svg and
 * metric_vs_params.svg. Every file is written atomically. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "peft/optim.h"
#include "runner/runner.h"

static json_t *num(double v) { return isfinite(v) ? json_real(v) : json_null(); }
static double unnum(json_t *j) { return json_is_number(j) ? json_number_value(j) : NAN; }

static json_t *curve(const runner_point *p, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++) json_array_append_new(a, json_pack("[I,o]", (json_int_t)p[i].step, num(p[i].value)));
    return a;
}

static const char *const SCHED[] = {"constant", "linear", "cosine"};

json_t *runner_run_config_json(const runner_config *c, const runner_run *r)
{
    json_t *ads = json_array();
    for (int i = 0; i < r->n_adapters; i++)
        json_array_append_new(ads, json_pack("{s:s, s:s, s:O}", "name", r->adapters[i].name, "method",
                                             r->adapters[i].method, "config", r->adapters[i].config));
    const runner_train_cfg *t = &r->train;
    json_t *tr = json_pack("{s:I, s:I, s:I, s:f, s:f, s:f, s:f, s:f, s:s, s:I, s:f, s:I, s:I, s:I}",
                           "steps", (json_int_t)t->steps, "batch_size", (json_int_t)t->batch_size,
                           "gradient_accumulation_steps", (json_int_t)t->grad_accum, "learning_rate", t->lr,
                           "weight_decay", t->weight_decay, "adam_beta1", t->beta1, "adam_beta2", t->beta2,
                           "adam_epsilon", t->eps, "lr_scheduler_type", SCHED[t->schedule],
                           "warmup_steps", (json_int_t)t->warmup_steps, "max_grad_norm", t->max_grad_norm,
                           "eval_steps", (json_int_t)t->eval_steps, "save_steps", (json_int_t)t->save_steps,
                           "eval_batch_size", (json_int_t)t->eval_batch_size);
    if (t->data_parallel > 1) json_object_set_new(tr, "data_parallel", json_integer((json_int_t)t->data_parallel));
    if (!t->eval_on_start) json_object_set_new(tr, "eval_on_start", json_false()); /* (only when off: the
                                                                                     same bytes as before) */
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:o, s:o, s:O, s:I}", "config_file", c->path,
                     "base_model", c->base_model, "task", runner_task_name(c->task), "train_data", c->train_path,
                     "eval_data", c->eval_path, "experiment", r->experiment, "max_length", (json_int_t)c->max_length,
                     "adapters", ads, "training", tr, "sweep", r->swept, "seed", (json_int_t)r->seed);
}

int runner_write_results(const runner_config *c, const runner_run *r, const runner_result *res,
                         const char *path, char *err, size_t errlen)
{
    json_t *j = json_object();
    json_object_set_new(j, "run", json_string(res->run));
    json_object_set_new(j, "methods", json_string(res->methods));
    json_object_set_new(j, "seed", json_integer((json_int_t)r->seed));
    json_object_set_new(j, "configuration", json_string(r->group));
    json_object_set_new(j, "config", runner_run_config_json(c, r));
    json_object_set_new(j, "metric", json_string(runner_metric_name(c->metric)));
    json_object_set_new(j, "trainable_params", json_integer(res->trainable));
    json_object_set_new(j, "all_params", json_integer(res->all));
    json_object_set_new(j, "trainable_percent", num(res->all ? 100.0 * (double)res->trainable / (double)res->all : NAN));
    json_object_set_new(j, "adapter_file_bytes", json_integer(res->adapter_bytes));
    json_object_set_new(j, "base_metric", num(res->base_metric));
    json_object_set_new(j, "final", json_pack("{s:I, s:o, s:o}", "step", (json_int_t)r->train.steps,
                                               "eval_loss", num(res->final_eval_loss), "metric", num(res->final_metric)));
    json_object_set_new(j, "best", json_pack("{s:I, s:o, s:o}", "step", (json_int_t)res->best_step,
                                              "eval_loss", num(res->best_eval_loss), "metric", num(res->best_metric)));
    json_object_set_new(j, "train_loss", curve(res->train_loss, res->n_train));
    json_object_set_new(j, "eval_loss", curve(res->eval_loss, res->n_eval));
    json_object_set_new(j, "eval_metric", curve(res->eval_metric, res->n_eval));
    json_object_set_new(j, "wall_time_s", num(res->wall_s));
    json_object_set_new(j, "train_tokens", json_integer(res->train_tokens));
    json_object_set_new(j, "tokens_per_s", num(res->tokens_per_s));
    json_object_set_new(j, "peak_rss_mb", num(res->peak_rss_mb));
    json_object_set_new(j, "peak_arena_mb", num(res->peak_arena_mb));
    json_object_set_new(j, "skipped_steps", json_integer(res->skipped_steps));
    json_object_set_new(j, "elapsed_s", num(res->elapsed_s));
    json_object_set_new(j, "host", json_string(res->host));
    json_object_set_new(j, "rank", json_integer(res->rank));
    json_object_set_new(j, "world_size", json_integer(res->world));
    json_object_set_new(j, "blas_threads", json_integer(res->blas_threads));
    char *txt = json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
    json_decref(j);
    if (!txt) return snprintf(err, errlen, "%s: out of memory", path), -1;
    size_t n = strlen(txt);
    txt[n] = '\n'; /* json_dumps leaves room for the NUL: replace it, write n + 1 bytes */
    int rc = runner_write_file_atomic(path, txt, n + 1, err, errlen);
    free(txt);
    return rc;
}

static int uncurve(json_t *a, runner_point **p, size_t *n)
{
    *p = NULL;
    *n = 0;
    if (!json_is_array(a)) return -1;
    *p = calloc(json_array_size(a) + 1, sizeof **p);
    if (!*p) return -1;
    for (size_t i = 0; i < json_array_size(a); i++) {
        json_t *e = json_array_get(a, i);
        (*p)[i] = (runner_point){json_integer_value(json_array_get(e, 0)), unnum(json_array_get(e, 1))};
    }
    *n = json_array_size(a);
    return 0;
}

/* equal as results.json writes them (reals to 10 significant digits) */
static int same_json(const json_t *a, const json_t *b)
{
    const size_t f = JSON_COMPACT | JSON_SORT_KEYS | JSON_REAL_PRECISION(10);
    char *x = a ? json_dumps(a, f) : NULL, *y = b ? json_dumps(b, f) : NULL;
    int same = x && y && !strcmp(x, y);
    free(x);
    free(y);
    return same;
}

int runner_read_results(const char *path, const json_t *want_config, runner_result *r, char *err,
                        size_t errlen)
{
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    if (!j) return snprintf(err, errlen, "%s:%d: %s (delete the file to run this again)", path, je.line, je.text), -1;
    if (want_config && !same_json(json_object_get(j, "config"), want_config)) {
        json_decref(j);
        return snprintf(err, errlen, "%s: this run was made with another configuration (the YAML changed): "
                        "use another output directory, or --fresh to run everything again", path), -1;
    }
    const char *run = json_string_value(json_object_get(j, "run"));
    const char *group = json_string_value(json_object_get(j, "configuration"));
    const char *methods = json_string_value(json_object_get(j, "methods"));
    json_t *best = json_object_get(j, "best"), *fin = json_object_get(j, "final");
    size_t nm = 0;
    int bad = !run || !methods || !json_is_object(best) || !json_is_object(fin) ||
              uncurve(json_object_get(j, "train_loss"), &r->train_loss, &r->n_train) ||
              uncurve(json_object_get(j, "eval_loss"), &r->eval_loss, &r->n_eval) ||
              uncurve(json_object_get(j, "eval_metric"), &r->eval_metric, &nm);
    if (!bad) {
        r->run = strdup(run);
        r->group = strdup(group ? group : run);
        r->methods = strdup(methods);
        r->seed = (uint64_t)json_integer_value(json_object_get(j, "seed"));
        r->elapsed_s = unnum(json_object_get(j, "elapsed_s"));
        snprintf(r->host, sizeof r->host, "%s", json_string_value(json_object_get(j, "host")) ?
                 json_string_value(json_object_get(j, "host")) : "");
        r->rank = (int)json_integer_value(json_object_get(j, "rank"));
        r->world = (int)json_integer_value(json_object_get(j, "world_size"));
        r->blas_threads = (int)json_integer_value(json_object_get(j, "blas_threads"));
        r->trainable = json_integer_value(json_object_get(j, "trainable_params"));
        r->all = json_integer_value(json_object_get(j, "all_params"));
        r->adapter_bytes = json_integer_value(json_object_get(j, "adapter_file_bytes"));
        r->base_metric = unnum(json_object_get(j, "base_metric"));
        r->best_step = json_integer_value(json_object_get(best, "step"));
        r->best_metric = unnum(json_object_get(best, "metric"));
        r->best_eval_loss = unnum(json_object_get(best, "eval_loss"));
        r->final_metric = unnum(json_object_get(fin, "metric"));
        r->final_eval_loss = unnum(json_object_get(fin, "eval_loss"));
        r->wall_s = unnum(json_object_get(j, "wall_time_s"));
        r->train_tokens = json_integer_value(json_object_get(j, "train_tokens"));
        r->tokens_per_s = unnum(json_object_get(j, "tokens_per_s"));
        r->peak_rss_mb = unnum(json_object_get(j, "peak_rss_mb"));
        r->peak_arena_mb = unnum(json_object_get(j, "peak_arena_mb"));
        bad = !r->run || !r->group || !r->methods || nm != r->n_eval;
    }
    json_decref(j);
    if (bad) return snprintf(err, errlen, "%s: not a results.json written by peft run (delete it to run this again)", path), -1;
    return 0;
}

/* ---- plots ------------------------------------------------------------------------------------ */

static int write_text(const char *dir, const char *file, char *text, char *err, size_t errlen)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    if (!text) return snprintf(err, errlen, "%s: out of memory", path), -1;
    int rc = runner_write_file_atomic(path, text, strlen(text), err, errlen);
    free(text);
    return rc;
}

int runner_write_run_plot(const char *dir, const runner_result *r, char *err, size_t errlen)
{
    runner_series s[2] = {{"train loss", r->train_loss, r->n_train, 0}, {"eval loss", r->eval_loss, r->n_eval, 0}};
    char title[512];
    snprintf(title, sizeof title, "%s: loss", r->run);
    return write_text(dir, "loss.svg", runner_svg_lines(title, "step", "loss", s, 2), err, errlen);
}

/* ---- the batch summary ------------------------------------------------------------------------ */

static void fmt_num(char *b, size_t n, double v, const char *f)
{
    if (isfinite(v)) snprintf(b, n, f, v);
    else snprintf(b, n, "-");
}

/* ---- repeated seeds: per-configuration statistics and paired comparisons --------------------- */

/* the configurations in order of first appearance: first[g] = index of its first run */
static int list_groups(runner_result *const *res, int n, int *first)
{
    int ng = 0;
    for (int i = 0; i < n; i++) {
        int seen = 0;
        for (int g = 0; g < ng && !seen; g++) seen = !strcmp(res[first[g]]->group, res[i]->group);
        if (!seen) first[ng++] = i;
    }
    return ng;
}

/* the values of one field over a configuration's runs */
static int group_values(runner_result *const *res, int n, const char *group, int field, double *out)
{
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (strcmp(res[i]->group, group)) continue;
        out[k++] = field == 0 ? res[i]->best_metric : field == 1 ? res[i]->final_metric : res[i]->final_eval_loss;
    }
    return k;
}

static void fmt_stat(char *b, size_t len, const runner_stat *s)
{
    if (s->n == 0) snprintf(b, len, "-");
    else if (s->n == 1) snprintf(b, len, "%.4f", s->mean);
    else snprintf(b, len, "%.4f \xc2\xb1 %.4f", s->mean, s->std);
}

static void fmt_ci(char *b, size_t len, const runner_stat *s)
{
    if (s->n >= 2 && isfinite(s->ci95)) snprintf(b, len, "[%.4f, %.4f]", s->mean - s->ci95, s->mean + s->ci95);
    else snprintf(b, len, "-");
}

/* the Markdown (and CSV) of the statistics; returns bytes written to md */
static void summary_groups(const runner_config *c, runner_result *const *res, int n, const int *first,
                           int ng, char *md, size_t *mo, size_t cap, char *csv, size_t *co, size_t ccap)
{
    const char *mn = runner_metric_name(c->metric);
    double *v = malloc(((size_t)n + 1) * sizeof *v);
    if (!v) return;
    *mo += (size_t)snprintf(md + *mo, cap - *mo,
                            "\nOver seeds: mean \xc2\xb1 sample standard deviation, and the 95%% interval of the "
                            "mean (Student's t, n - 1 degrees of freedom).\n\n"
                            "| configuration | seeds | %s (best) | 95%% interval | %s (final) | eval loss (final) |\n"
                            "|---|---:|---:|---:|---:|---:|\n", mn, mn);
    *co += (size_t)snprintf(csv + *co, ccap - *co, "configuration,seeds,best_%s_mean,best_%s_std,best_%s_ci95_low,"
                            "best_%s_ci95_high,final_%s_mean,final_%s_std,final_eval_loss_mean,final_eval_loss_std\n",
                            mn, mn, mn, mn, mn, mn);
    for (int g = 0; g < ng && *mo < cap - 1024 && *co < ccap - 1024; g++) {
        const char *name = res[first[g]]->group;
        runner_stat st[3];
        for (int f = 0; f < 3; f++) runner_stats(v, group_values(res, n, name, f, v), &st[f]);
        char a[64], b[64], d[64], e[64];
        fmt_stat(a, sizeof a, &st[0]);
        fmt_ci(b, sizeof b, &st[0]);
        fmt_stat(d, sizeof d, &st[1]);
        fmt_stat(e, sizeof e, &st[2]);
        *mo += (size_t)snprintf(md + *mo, cap - *mo, "| %s | %d | %s | %s | %s | %s |\n", name,
                                group_values(res, n, name, 0, v), a, b, d, e);
        *co += (size_t)snprintf(csv + *co, ccap - *co, "\"%s\",%d,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g,%.6g\n", name,
                                group_values(res, n, name, 0, v), st[0].mean, st[0].std, st[0].mean - st[0].ci95,
                                st[0].mean + st[0].ci95, st[1].mean, st[1].std, st[2].mean, st[2].std);
    }
    free(v);
}

/* paired comparisons over the seeds both configurations ran */
static void summary_compare(const runner_config *c, runner_result *const *res, int n, char *md, size_t *mo,
                            size_t cap)
{
    if (c->n_compare == 0) return;
    const char *mn = runner_metric_name(c->metric);
    double *a = malloc(((size_t)n + 1) * sizeof *a), *b = malloc(((size_t)n + 1) * sizeof *b);
    if (!a || !b) goto out;
    *mo += (size_t)snprintf(md + *mo, cap - *mo,
                            "\nPaired comparisons of %s (best) over the seeds both ran: the mean difference, its 95%% "
                            "interval, the paired t statistic and the two-sided p-value.\n\n"
                            "| a | b | pairs | mean a \xe2\x88\x92 b | 95%% interval | t | p |\n"
                            "|---|---|---:|---:|---:|---:|---:|\n", mn);
    for (int k = 0; k < c->n_compare && *mo < cap - 1024; k++) {
        int np = 0;
        for (int i = 0; i < n; i++) {
            if (strcmp(res[i]->group, c->compare[k][0])) continue;
            for (int j = 0; j < n; j++)
                if (!strcmp(res[j]->group, c->compare[k][1]) && res[j]->seed == res[i]->seed) {
                    a[np] = res[i]->best_metric, b[np] = res[j]->best_metric, np++;
                    break;
                }
        }
        runner_pair p;
        runner_paired(a, b, np, &p);
        char m[32], ci[64], t[32], pv[32];
        fmt_num(m, sizeof m, p.diff.mean, "%+.4f");
        fmt_ci(ci, sizeof ci, &p.diff);
        fmt_num(t, sizeof t, p.t, "%.3f");
        fmt_num(pv, sizeof pv, p.p, "%.4g");
        *mo += (size_t)snprintf(md + *mo, cap - *mo, "| %s | %s | %d | %s | %s | %s | %s |\n", c->compare[k][0],
                                c->compare[k][1], p.diff.n, m, ci, t, pv);
    }
out:
    free(a);
    free(b);
}

/* the per-run table: a Markdown row (md at *mo) and a CSV row (csv at *co) for each result,
 * both buffers of cap bytes */
static void summary_rows(const runner_config *c, runner_result *const *res, int n, double base,
                         char *md, size_t *mo, char *csv, size_t *co, size_t cap)
{
    const char *mn = runner_metric_name(c->metric);
    char bs[32];
    fmt_num(bs, sizeof bs, base, "%.4f");
    *mo += (size_t)snprintf(md + *mo, cap - *mo,
                            "## %s: %s on %s\n\nBase model without adapters: %s %s.\n\n"
                            "| run | method | trainable params | trainable %% | adapter KiB | %s (best) | step | "
                            "%s (final) | eval loss (final) | train s | tokens/s | peak arena MiB |\n"
                            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
                            c->name, runner_task_name(c->task), c->train_path, mn, bs, mn, mn);
    *co += (size_t)snprintf(csv + *co, cap - *co,
                            "run,method,trainable_params,all_params,trainable_percent,adapter_bytes,base_%s,best_%s,"
                            "best_step,final_%s,final_eval_loss,best_eval_loss,train_seconds,tokens_per_s,"
                            "peak_arena_mb,peak_rss_mb\n", mn, mn, mn);
    for (int i = 0; i < n; i++) {
        const runner_result *r = res[i];
        double pct = r->all ? 100.0 * (double)r->trainable / (double)r->all : NAN;
        char b1[32], b2[32], b3[32], b4[32], b5[32], b6[32];
        fmt_num(b1, sizeof b1, r->best_metric, "%.4f");
        fmt_num(b2, sizeof b2, r->final_metric, "%.4f");
        fmt_num(b3, sizeof b3, r->final_eval_loss, "%.4f");
        fmt_num(b4, sizeof b4, r->wall_s, "%.1f");
        fmt_num(b5, sizeof b5, r->tokens_per_s, "%.0f");
        fmt_num(b6, sizeof b6, r->peak_arena_mb, "%.1f");
        *mo += (size_t)snprintf(md + *mo, cap - *mo, "| %s | %s | %lld | %.4f | %.1f | %s | %lld | %s | %s | %s | %s | %s |\n",
                                r->run, r->methods, (long long)r->trainable, pct, (double)r->adapter_bytes / 1024.0, b1,
                                (long long)r->best_step, b2, b3, b4, b5, b6);
        *co += (size_t)snprintf(csv + *co, cap - *co, "\"%s\",%s,%lld,%lld,%.6f,%lld,%.6g,%.6g,%lld,%.6g,%.6g,%.6g,%.3f,%.1f,%.3f,%.1f\n",
                                r->run, r->methods, (long long)r->trainable, (long long)r->all, pct,
                                (long long)r->adapter_bytes, r->base_metric, r->best_metric, (long long)r->best_step,
                                r->final_metric, r->final_eval_loss, r->best_eval_loss, r->wall_s, r->tokens_per_s,
                                r->peak_arena_mb, r->peak_rss_mb);
        if (*mo > cap - 1024 || *co > cap - 1024) break;
    }
}

/* loss curves of every run (eval loss solid, train loss dashed), and the best metric against
 * the trainable parameters (per configuration: the mean over seeds with its 95% interval when
 * runs repeat: ng groups, first run of each in first). 0 or -1 with err */
static int summary_plots(const runner_config *c, runner_result *const *res, int n, const int *first,
                         int ng, int repeated, double base, char *err, size_t errlen)
{
    const char *mn = runner_metric_name(c->metric);
    int rc = 0;
    runner_series *s = calloc((size_t)n * 2, sizeof *s);
    double *x = calloc((size_t)n, sizeof *x), *y = calloc((size_t)n, sizeof *y), *ye = calloc((size_t)n, sizeof *ye);
    double *v = calloc((size_t)n, sizeof *v);
    const char **labels = calloc((size_t)n, sizeof *labels);
    char (*names)[128] = calloc((size_t)n * 2, sizeof *names);
    if (!s || !x || !y || !ye || !v || !labels || !names) {
        snprintf(err, errlen, "out of memory");
        rc = -1;
    }
    for (int i = 0; !rc && i < n; i++) {
        snprintf(names[2 * i], 128, "%s eval", res[i]->run);
        snprintf(names[2 * i + 1], 128, "%s train", res[i]->run);
        s[2 * i] = (runner_series){names[2 * i], res[i]->eval_loss, res[i]->n_eval, 0};
        s[2 * i + 1] = (runner_series){names[2 * i + 1], res[i]->train_loss, res[i]->n_train, 1};
        x[i] = (double)res[i]->trainable;
        y[i] = res[i]->best_metric;
        ye[i] = NAN;
        labels[i] = res[i]->run;
    }
    size_t npts = (size_t)n;
    if (!rc && repeated) { /* one point per configuration: the mean, with its 95% interval */
        for (int g = 0; g < ng; g++) {
            runner_stat st;
            runner_stats(v, group_values(res, n, res[first[g]]->group, 0, v), &st);
            x[g] = (double)res[first[g]]->trainable;
            y[g] = st.mean;
            ye[g] = st.ci95;
            labels[g] = res[first[g]]->group;
        }
        npts = (size_t)ng;
    }
    char title[512], ylab[64];
    snprintf(title, sizeof title, "%s: loss per run (eval solid, train dashed)", c->name);
    if (!rc) rc = write_text(c->output_dir, "loss_curves.svg", runner_svg_lines(title, "step", "loss", s, (size_t)n * 2), err, errlen);
    if (repeated) snprintf(title, sizeof title, "%s: best %s against trainable parameters (mean over seeds, 95%% interval)", c->name, mn);
    else snprintf(title, sizeof title, "%s: best %s against trainable parameters", c->name, mn);
    snprintf(ylab, sizeof ylab, "%s (best)", mn);
    if (!rc) rc = write_text(c->output_dir, "metric_vs_params.svg",
                             runner_svg_scatter_err(title, "trainable parameters", ylab, x, y, ye, labels, npts, base),
                             err, errlen);
    free(s);
    free(x);
    free(y);
    free(ye);
    free(v);
    free(labels);
    free(names);
    return rc ? -1 : 0;
}

int runner_write_summary(const runner_config *c, runner_result *const *res, int n, FILE *log,
                         char *err, size_t errlen)
{
    if (n == 0) return 0;
    size_t cap = 8192 + (size_t)n * 1024 + (size_t)c->n_compare * 512, mo = 0, co = 0, go = 0;
    char *md = malloc(cap), *csv = malloc(cap), *gcsv = malloc(cap);
    int *first = malloc(((size_t)n + 1) * sizeof *first);
    if (!md || !csv || !gcsv || !first) {
        free(md);
        free(csv);
        free(gcsv);
        free(first);
        return snprintf(err, errlen, "out of memory"), -1;
    }
    int ng = list_groups(res, n, first), repeated = ng < n;
    double base = NAN;
    for (int i = 0; i < n && isnan(base); i++) base = res[i]->base_metric;
    summary_rows(c, res, n, base, md, &mo, csv, &co, cap);
    if (repeated) summary_groups(c, res, n, first, ng, md, &mo, cap, gcsv, &go, cap);
    summary_compare(c, res, n, md, &mo, cap);
    if (log) {
        fprintf(log, "\n%s\n", md);
        fflush(log);
    }
    char *md_copy = strdup(md);
    int rc = write_text(c->output_dir, "summary.md", md_copy, err, errlen) ||
             write_text(c->output_dir, "summary.csv", csv, err, errlen) ||
             (repeated ? write_text(c->output_dir, "summary_seeds.csv", gcsv, err, errlen) : (free(gcsv), 0));
    free(md);
    if (!rc) rc = summary_plots(c, res, n, first, ng, repeated, base, err, errlen);
    free(first);
    if (!rc && log) {
        fprintf(log, "wrote %s/summary.md, summary.csv, loss_curves.svg, metric_vs_params.svg\n", c->output_dir);
        fflush(log);
    }
    return rc ? -1 : 0;
}
