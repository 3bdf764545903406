/* mpt_ops.c — multitask prompt tuning's virtual tokens and their backward on the host's tape:
 * per batch row b of task t = task_ids[b],
 *   tp_b (P, C) = cols[t][:P] (P, K) @ rows[t] (K, C),   out[b] = table[:P] * tp_b
 * PEFT computes the same over all R rows and an encoder-decoder uses the first P. */
#include <stdio.h>

#include "mpt.h"

typedef struct mpt_ctx {
    mpt_state *st;
    peft_tensor *out; /* (B, P, C) */
    float *tp;        /* (B, P, C): the task prompts, arena */
    float *tasks;     /* (B): the task ids, as floats (exact), arena copy */
    int64_t B;
} mpt_ctx;

/* dtable[:P] += sum_b dout_b * tp_b;  dtp_b = dout_b * table[:P];
 * dcols[t][:P] (P, K) += dtp_b (P, C) @ rows[t]^T;  drows[t] (K, C) += cols[t][:P]^T @ dtp_b */
static void mpt_backward(peft_graph *g, void *vctx)
{
    const mpt_ctx *c = vctx;
    const mpt_state *st = c->st;
    const float *dy = c->out->grad;
    if (!dy) return;
    const int64_t P = st->nvt, C = st->dim, K = st->ranks, R = st->rows, n = P * C;
    float *dt = st->table->requires_grad ? mpt_host->grad_of(g, st->table) : NULL;
    float *dcols = st->cols->requires_grad ? mpt_host->grad_of(g, st->cols) : NULL;
    float *drows = st->trows->requires_grad ? mpt_host->grad_of(g, st->trows) : NULL;
    const int64_t shape[1] = {n};
    peft_tensor *scr = mpt_host->graph_tensor(g, 1, shape);
    if (!scr) {
        if (PEFT_HOST_HAS(mpt_host, graph_set_error))
            mpt_host->graph_set_error(g, "multitask prompt tuning: out of memory in backward");
        return;
    }
    float *dtp = peft_f32(scr);
    const float *table = peft_f32(st->table);
    for (int64_t b = 0; b < c->B; b++) {
        const int64_t t = (int64_t)c->tasks[b];
        const float *d = dy + b * n, *tp = c->tp + b * n;
        for (int64_t i = 0; i < n; i++) {
            if (dt) dt[i] += d[i] * tp[i];
            dtp[i] = d[i] * table[i];
        }
        if (dcols)
            peft_pu_gemm(mpt_host, 0, 1, P, K, C, 1.0f, dtp, peft_f32(st->trows) + t * K * C, 1.0f,
                         dcols + t * R * K);
        if (drows)
            peft_pu_gemm(mpt_host, 1, 0, K, C, P, 1.0f, peft_f32(st->cols) + t * R * K, dtp, 1.0f,
                         drows + t * K * C);
    }
}

static peft_tensor *fail(peft_graph *g, const char *msg)
{
    if (PEFT_HOST_HAS(mpt_host, graph_set_error)) mpt_host->graph_set_error(g, msg);
    return NULL;
}

peft_tensor *mpt_embeddings_tasks(void *state, peft_graph *g, int64_t B, const int32_t *task_ids)
{
    mpt_state *st = state;
    if (!st || !g || B <= 0) return NULL;
    if (!task_ids) /* PEFT: ValueError */
        return fail(g, "multitask prompt tuning: task_ids cannot be None (give the inputs a "
                       "task_ids list, one task index per row)");
    char msg[160];
    for (int64_t b = 0; b < B; b++)
        if (task_ids[b] < 0 || task_ids[b] >= st->tasks) {
            snprintf(msg, sizeof msg, "multitask prompt tuning: task_ids[%lld] is %d; the "
                     "adapter has num_tasks %lld (task ids 0..%lld)", (long long)b, task_ids[b],
                     (long long)st->tasks, (long long)st->tasks - 1);
            return fail(g, msg);
        }
    const int64_t P = st->nvt, C = st->dim, K = st->ranks, R = st->rows, n = P * C;
    const int64_t oshape[3] = {B, P, C}, tshape[1] = {B * n + B}; /* tp, then the B task ids */
    peft_tensor *out = mpt_host->graph_tensor(g, 3, oshape);
    peft_tensor *tpt = mpt_host->graph_tensor(g, 1, tshape);
    if (!out || !tpt) return NULL;
    float *tp = peft_f32(tpt), *o = peft_f32(out);
    float *tasks = tp + B * n;
    const float *table = peft_f32(st->table);
    for (int64_t b = 0; b < B; b++) {
        const int64_t t = task_ids[b];
        tasks[b] = (float)t;
        peft_pu_gemm(mpt_host, 0, 0, P, C, K, 1.0f, peft_f32(st->cols) + t * R * K,
                     peft_f32(st->trows) + t * K * C, 0.0f, tp + b * n);
        for (int64_t i = 0; i < n; i++) o[b * n + i] = table[i] * tp[b * n + i];
    }
    out->requires_grad = PEFT_PU_WANTS_GRAD(mpt_host, g, st->table, st->cols, st->trows);
    if (out->requires_grad) {
        mpt_ctx *c = mpt_host->tape_push(g, mpt_backward, sizeof *c);
        if (!c) return NULL;
        *c = (mpt_ctx){st, out, tp, tasks, B};
    }
    return out;
}

/* without task ids (an older host, or a caller that has none): PEFT's error */
peft_tensor *mpt_embeddings(void *state, peft_graph *g, int64_t B)
{
    return mpt_embeddings_tasks(state, g, B, NULL);
}
