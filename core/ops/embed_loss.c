/* ops_embed_loss.c — token embedding lookup (f32/bf16/f16 table) and the mean cross-entropy
 * loss with ignore_index (PyTorch semantics), each with its backward. */
#include "core/ops/ops.h"
#include "core/ops/ce_rows.h"
#include "core/ops/pool.h"
#include "core/ops/vmath.h"

#include <math.h>
#include <string.h>

/* ---- embedding ------------------------------------------------------------------------------ */

typedef struct {
    peft_tensor *table, *out;
    const int32_t *ids; /* (B*T), arena copy */
    int64_t n, C;
} embed_ctx;

// dout (B*T, C), ids (B*T) -> dtable (V, C): row ids[i] += dout[i]
static void embedding_backward(peft_graph *g, void *p)
{
    embed_ctx *c = p;
    const float *dy = c->out->grad;
    float *dt = dy ? peft_grad_of(g, c->table) : NULL;
    if (!dt) return;
    for (int64_t i = 0; i < c->n; i++) {
        float *d = dt + (int64_t)c->ids[i] * c->C;
        const float *s = dy + i * c->C;
        for (int64_t j = 0; j < c->C; j++) d[j] += s[j];
    }
}

// table (V, C), ids (B, T) -> out (B, T, C)
peft_tensor *op_embedding(peft_graph *g, peft_tensor *table, const int32_t *ids, int64_t B,
                          int64_t T, int32_t *bad_id)
{
    if (!table || table->ndim != 2 || (!ids && B * T > 0)) return NULL;
    const int64_t V = table->shape[0], C = table->shape[1], n = B * T;
    const size_t es = peft_dtype_size(table->dtype);
    if (!es || table->dtype == PEFT_DTYPE_I32) return NULL;
    for (int64_t i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= V) {
            if (bad_id) *bad_id = ids[i];
            return NULL;
        }
    }
    peft_tensor *out = peft_graph_tensor_raw(g, PEFT_DTYPE_F32, 3, (int64_t[]){B, T, C});
    if (!out) return NULL;
    float *od = peft_f32(out);
    const unsigned char *td = table->data;
    for (int64_t i = 0; i < n; i++)
        peft_convert_to_f32(table->dtype, td + (size_t)ids[i] * (size_t)C * es, od + i * C, C);
    out->requires_grad = peft_needs_grad(g, table, NULL);
    if (out->requires_grad) {
        int32_t *idc = peft_arena_alloc(g->arena, (size_t)n * sizeof(int32_t));
        embed_ctx *c = idc ? peft_tape_push(g, embedding_backward, sizeof *c) : NULL;
        if (!c) return NULL;
        if (n) memcpy(idc, ids, (size_t)n * sizeof(int32_t));
        c->table = table; c->out = out; c->ids = idc; c->n = n; c->C = C;
        peft_tape_output(g, c->out);
    }
    return out;
}

/* ---- cross entropy -------------------------------------------------------------------------- */

typedef struct {
    peft_tensor *logits, *out;
    const int32_t *targets; /* (N), arena copy */
    const float *lse;       /* (N) log-sum-exp per row */
    int32_t ignore;
    int64_t N, V, n_valid;
} ce_ctx;

void ops_ce_fwd_rows(void *p, int64_t lo, int64_t hi)
{
    const ops_ce_job *j = p;
    for (int64_t n = lo; n < hi; n++) {
        const int32_t t = j->targets[n];
        if (t == j->ignore) {
            j->lse[n] = 0.0f;
            j->l[n] = 0.0;
            continue;
        }
        const float *xr = j->x + n * j->V;
        const float mx = vm_max(xr, j->V);
        const double s = vm_sum_exp(xr, mx, j->V);
        /* s >= 1 (the max term is exp(0)) unless the row holds NaN, which log keeps NaN */
        // cppcheck-suppress invalidFunctionArg
        const double l = (double)mx + log(s);
        j->lse[n] = (float)l;
        j->l[n] = l - (double)xr[t];
    }
}

void ops_ce_bwd_rows(void *p, int64_t lo, int64_t hi)
{
    const ops_ce_job *j = p;
    for (int64_t n = lo; n < hi; n++) {
        const int32_t t = j->targets[n];
        if (t == j->ignore) continue;
        float *dr = j->dl + n * j->V;
        vm_axpy_exp(j->x + n * j->V, j->lse[n], j->k, dr, j->V);
        dr[t] -= j->k;
    }
}

// dloss (1); logits (N, V) -> dlogits (N, V) += dloss / n_valid * (softmax - onehot(target)),
// rows in the pool's threads
static void cross_entropy_backward(peft_graph *g, void *p)
{
    ce_ctx *c = p;
    const float *dy = c->out->grad;
    float *dl = dy ? peft_grad_of(g, c->logits) : NULL;
    if (!dl || c->n_valid == 0) return;
    ops_ce_job j = {.x = peft_f32(c->logits), .dl = dl, .lse = (float *)c->lse,
                    .targets = c->targets, .ignore = c->ignore, .V = c->V,
                    .k = dy[0] / (float)c->n_valid};
    ops_parallel(c->N, OPS_ROW_GRAIN(c->V), ops_ce_bwd_rows, &j);
}

// logits (N, V), targets (N) -> loss () = mean over rows with target != ignore of lse - x[target]
peft_tensor *op_cross_entropy(peft_graph *g, peft_tensor *logits, const int32_t *targets,
                              int32_t ignore_index)
{
    if (!logits || logits->ndim < 1 || logits->dtype != PEFT_DTYPE_F32) return NULL;
    const int64_t V = logits->shape[logits->ndim - 1];
    if (V <= 0) return NULL;
    const int64_t N = logits->numel / V;
    if (N > 0 && !targets) return NULL;
    for (int64_t n = 0; n < N; n++)
        if (targets[n] != ignore_index && (targets[n] < 0 || targets[n] >= V)) return NULL;
    peft_tensor *loss = peft_graph_tensor(g, 0, NULL);
    peft_tensor *lse_t = peft_graph_tensor_raw(g, PEFT_DTYPE_F32, 1, &N);
    if (!loss || !lse_t) return NULL;
    float *lse = peft_f32(lse_t);
    double *lrow = peft_arena_alloc(g->arena, (size_t)(N ? N : 1) * sizeof(double));
    if (!lrow) return NULL;
    ops_ce_job j = {.x = peft_f32(logits), .lse = lse, .l = lrow, .targets = targets,
                    .ignore = ignore_index, .V = V};
    ops_parallel(N, OPS_ROW_GRAIN(V), ops_ce_fwd_rows, &j); /* rows in the pool's threads */
    double total = 0.0;
    int64_t n_valid = 0;
    for (int64_t n = 0; n < N; n++) /* in row order: the same sum for any thread count */
        if (targets[n] != ignore_index) {
            total += lrow[n];
            n_valid++;
        }
    peft_f32(loss)[0] = n_valid ? (float)(total / (double)n_valid) : 0.0f;
    loss->requires_grad = peft_needs_grad(g, logits, NULL);
    if (loss->requires_grad) {
        int32_t *tc = peft_arena_alloc(g->arena, (size_t)(N ? N : 1) * sizeof(int32_t));
        ce_ctx *c = tc ? peft_tape_push(g, cross_entropy_backward, sizeof *c) : NULL;
        if (!c) return NULL;
        if (N) memcpy(tc, targets, (size_t)N * sizeof(int32_t));
        c->logits = logits; c->out = loss; c->targets = tc; c->lse = lse;
        peft_tape_output(g, c->out);
        c->ignore = ignore_index; c->N = N; c->V = V; c->n_valid = n_valid;
    }
    return loss;
}
