/* runner_eval.c — evaluation of a model on a data set: the mean loss over label tokens and the
 * task metrics, from teacher-forced argmax predictions (no generation):
 *   accuracy     causal LM / token cls / seq2seq: labelled tokens predicted right;
 *                seq cls: examples; QA: start and end positions (each half a point)
 *   exact_match  examples whose every labelled token (QA: start and end) is right
 *   perplexity   exp(mean loss)
 * Prompt tuning prepends P virtual positions to the outputs: predictions are read P positions
 * further on (P = output length - input length).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "runner/runner.h"

int runner_metric_better(int metric, double a, double b)
{
    if (isnan(a)) return 0;
    if (isnan(b)) return 1;
    return metric == RUNNER_METRIC_PERPLEXITY ? a < b : a > b;
}

static int64_t argmax(const float *x, int64_t n, int64_t stride)
{
    int64_t best = 0;
    for (int64_t i = 1; i < n; i++)
        if (x[i * stride] > x[best * stride]) best = i;
    return best;
}

typedef struct tally {
    double loss_sum, loss_w;
    double tok_ok, tok_n;   /* accuracy */
    double ex_ok, ex_n;     /* exact match */
} tally;

/* predictions of one batch against its labels */
static void score_batch(int task, const runner_batch *b, const peft_model_outputs *o, tally *t,
                        double *weight)
{
    const int64_t B = b->B, T = b->T;
    *weight = 0;
    if (task == RUNNER_TASK_SEQ_CLS) {
        const int64_t L = o->logits->shape[1];
        for (int64_t i = 0; i < B; i++) {
            int ok = argmax(peft_f32(o->logits) + i * L, L, 1) == b->labels[i];
            t->tok_ok += ok, t->tok_n++, t->ex_ok += ok, t->ex_n++;
        }
        *weight = (double)B;
        return;
    }
    if (task == RUNNER_TASK_QA) {
        const int64_t Tp = o->start_logits->shape[1], off = Tp - T;
        for (int64_t i = 0; i < B; i++) {
            int s = argmax(peft_f32(o->start_logits) + i * Tp + off, T, 1) == b->start[i];
            int e = argmax(peft_f32(o->end_logits) + i * Tp + off, T, 1) == b->end[i];
            t->tok_ok += s + e, t->tok_n += 2, t->ex_ok += s && e, t->ex_n++;
        }
        *weight = (double)B;
        return;
    }
    /* token predictions: causal LM (shifted by one), token cls and seq2seq (aligned) */
    const int64_t Tp = o->logits->shape[1], V = o->logits->shape[2];
    const int64_t n_pos = task == RUNNER_TASK_SEQ2SEQ ? b->L : T;
    const int64_t off = task == RUNNER_TASK_SEQ2SEQ ? 0 : Tp - T;
    const int shift = task == RUNNER_TASK_CAUSAL_LM;
    for (int64_t i = 0; i < B; i++) {
        int all = 1, any = 0;
        for (int64_t p = shift; p < n_pos; p++) {
            int32_t y = b->labels[i * n_pos + p];
            if (y < 0) continue;
            const float *row = peft_f32(o->logits) + (i * Tp + off + p - shift) * V;
            int ok = argmax(row, V, 1) == y;
            t->tok_ok += ok, t->tok_n++;
            all &= ok, any = 1;
            *weight += 1;
        }
        if (any) t->ex_ok += all, t->ex_n++;
    }
}

int runner_evaluate(peft_model *m, peft_graph *g, const runner_config *c, const runner_dataset *d,
                    int64_t n, int64_t batch, runner_eval_result *r, char *err, size_t errlen)
{
    memset(r, 0, sizeof *r);
    if (n <= 0 || (size_t)n > d->n) n = (int64_t)d->n;
    size_t *idx = malloc((size_t)batch * sizeof *idx);
    if (!idx) return snprintf(err, errlen, "out of memory"), -1;
    const int32_t pad = 0;
    tally t = {0};
    peft_model_train(m, 0);
    for (int64_t s = 0; s < n; s += batch) {
        int64_t B = n - s < batch ? n - s : batch;
        for (int64_t i = 0; i < B; i++) idx[i] = (size_t)(s + i);
        runner_batch b;
        if (runner_batch_make(d, c->task, idx, B, pad, &b)) {
            free(idx);
            return snprintf(err, errlen, "out of memory for an evaluation batch"), -1;
        }
        peft_model_inputs in;
        runner_batch_view(&b, c->task, &in);
        peft_model_outputs o;
        peft_graph_reset(g);
        peft_graph_set_recording(g, 0);
        int rc = peft_model_forward(m, g, &in, &o);
        if (rc) {
            snprintf(err, errlen, "evaluation: %s", peft_errmsg(peft_model_ctx(m)));
            runner_batch_free(&b);
            free(idx);
            return -1;
        }
        double w;
        score_batch(c->task, &b, &o, &t, &w);
        if (o.loss && w > 0) t.loss_sum += peft_f32(o.loss)[0] * w, t.loss_w += w;
        runner_batch_free(&b);
    }
    free(idx);
    peft_graph_reset(g);
    r->n = n;
    r->loss = t.loss_w > 0 ? t.loss_sum / t.loss_w : NAN;
    r->accuracy = t.tok_n > 0 ? t.tok_ok / t.tok_n : NAN;
    r->exact_match = t.ex_n > 0 ? t.ex_ok / t.ex_n : NAN;
    r->perplexity = exp(r->loss);
    r->metric = c->metric == RUNNER_METRIC_ACCURACY ? r->accuracy
                : c->metric == RUNNER_METRIC_EXACT_MATCH ? r->exact_match
                                                         : r->perplexity;
    return 0;
}
