/* chunked_ce.c — the language-model head and its cross-entropy in one op, over vocabulary
 * tiles: the training loss never holds the whole (N, V) logits (with a 128k vocabulary, B=4,
 * T=512, that is 1 GB, and as much again for its gradient). Only the rows with a target take
 * part. One pass over the head's rows, a vocabulary tile at a time for all those rows (GEMMs of
 * full height), keeps per row an online log-sum-exp (max m, sum s of e^(l - m)) and, when a
 * gradient is needed, acc = sum_v e^(l_v - m) W_v, both rescaled when m grows (as flash
 * attention does): then softmax W = acc / s, and the backward is dh = k (acc / s - W[target])
 * with no logits computed again. Two head GEMMs a step, as the full loss; a bf16/f16 head is
 * widened once a step. The same loss and gradient as op_linear + op_cross_entropy up to the
 * order of the sums. The tiles' widening, their rows' log-sum-exp and the backward's rows run
 * in the pool's threads, each row whole in one thread (the same bytes for any thread count). */
#include "core/ops/ops.h"

#include <cblas.h>
#include "core/ops/gemm.h"
#include <math.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include "peft/quant.h"
#include "core/ops/vmath.h"
#include "core/ops/linear_kernels.h"
#include "core/ops/pool.h"

#define CHUNK_FLOATS ((int64_t)1 << 22) /* 16 MB of logits (and of a widened weight tile) */

typedef struct {
    peft_tensor *h, *w, *out;
    const int32_t *rows;    /* (n_valid) the rows of h whose target is not ignored, arena copy */
    const int32_t *targets; /* (n_valid) their targets */
    const float *acc;       /* (n_valid, C) sum_v e^(l_v - m) W_v per row, found in the forward */
    const float *inv_s;     /* (n_valid) 1 / sum_v e^(l_v - m) */
    int64_t C, n_valid;
} lce_ctx;

/* the valid rows of h gathered: hc (n, C) */
static void gather_rows(const float *h, const int32_t *rows, int64_t n, int64_t C, float *hc)
{
    for (int64_t i = 0; i < n; i++) memcpy(hc + i * C, h + (int64_t)rows[i] * C, (size_t)C * 4);
}

/* rows [v0, v0+nv) of W (V, C) as f32: a pointer into an f32 W, else widened into tile (in the
 * pool's threads) */
static const float *weight_tile(const peft_tensor *w, int64_t v0, int64_t nv, int64_t C,
                                float *tile)
{
    if (w->dtype == PEFT_DTYPE_F32) return peft_f32(w) + v0 * C;
    peft_linear_tile_to_f32(w, v0 * C, nv * C, tile);
    return tile;
}

/* one vocabulary tile's logits, row by row in the pool's threads (each row's state is its own:
 * the same bytes for any thread count) */
typedef struct {
    float *L, *acc, *xt;
    double *m, *sum;
    const int32_t *tg;
    int64_t v0, nv, C;
} tile_rows_job;

// L (n, nv) logits of tile v0 -> per row: xt (its target's logit, when in the tile), online
// max m and sum of e^(l - m), acc (n, C) rescaled when m grows; L becomes E = e^(l - m) when
// acc is wanted
static void tile_rows(void *p, int64_t lo, int64_t hi)
{
    const tile_rows_job *j = p;
    const int64_t nv = j->nv, C = j->C;
    for (int64_t i = lo; i < hi; i++) {
        float *lr = j->L + i * nv;
        const int64_t t = (int64_t)j->tg[i] - j->v0;
        if (t >= 0 && t < nv) j->xt[i] = lr[t];
        /* online log-sum-exp: the running sum (and acc) rescaled when the maximum grows; a NaN
         * logit is skipped by the max but turns its exp, the sum and the loss NaN, as
         * PyTorch's */
        const float mt = vm_max(lr, nv);
        if (mt > j->m[i]) {
            const double alpha = exp(j->m[i] - (double)mt); /* 0 on the first tile */
            j->sum[i] *= alpha;
            if (j->acc && j->sum[i] != 0.0)
                for (int64_t k = 0; k < C; k++) j->acc[i * C + k] *= (float)alpha;
            j->m[i] = mt;
        }
        if (j->m[i] == -INFINITY) { /* every logit so far -inf: nothing to add */
            memset(lr, 0, (size_t)nv * sizeof *lr);
            continue;
        }
        /* E = e^(l - m) in place (for acc), its sum in double */
        if (j->acc) {
            vm_scale_exp(lr, (float)j->m[i], 1.0f, lr, nv);
            double e = 0.0;
            for (int64_t k = 0; k < nv; k++) e += lr[k];
            j->sum[i] += e;
        } else {
            j->sum[i] += vm_sum_exp(lr, (float)j->m[i], nv);
        }
    }
}

/* vocabulary tile width: n x tv logits and (non-f32 W) tv x C widened weights within a chunk */
static int64_t tile_width(const peft_tensor *w, int64_t n, int64_t C, int64_t V)
{
    int64_t tv = CHUNK_FLOATS / (n > 0 ? n : 1);
    if (w->dtype != PEFT_DTYPE_F32 && CHUNK_FLOATS / C < tv) tv = CHUNK_FLOATS / C;
    if (tv < 1) tv = 1;
    return tv < V ? tv : V;
}

typedef struct { const lce_ctx *c; float *dh; float k; atomic_int oom; } bwd_job;

// valid rows [lo, hi): dh[rows[i]] += k (acc_i / s_i - W[target_i]) (rows are distinct: each
// row of dh is written by one thread)
static void bwd_rows(void *p, int64_t lo, int64_t hi)
{
    bwd_job *j = p;
    const lce_ctx *c = j->c;
    const int64_t C = c->C;
    const float k = j->k;
    float *wt = ops_scratch(OPS_SCRATCH_LOGITS, (size_t)C);
    if (!wt) {
        atomic_store(&j->oom, 1);
        return;
    }
    for (int64_t i = lo; i < hi; i++) {
        peft_tensor_range_to_f32(c->w, (int64_t)c->targets[i] * C, C, wt); /* W[target] */
        float *d = j->dh + (int64_t)c->rows[i] * C;
        const float *a = c->acc + i * C, ks = k * c->inv_s[i];
        for (int64_t q = 0; q < C; q++) d[q] += ks * a[q] - k * wt[q];
    }
}

// dloss (1); acc (n_valid, C), inv_s (n_valid); W rows of the targets -> dh (N, C) +=
// (dloss / n_valid) (softmax - onehot) W: softmax W is acc / s, found in the forward's one pass
static void lce_backward(peft_graph *g, void *p)
{
    lce_ctx *c = p;
    const float *dy = c->out->grad;
    float *dh = dy ? peft_grad_of(g, c->h) : NULL;
    const int64_t n = c->n_valid, C = c->C;
    if (!dh || n == 0) return;
    bwd_job j = {c, dh, dy[0] / (float)n, 0};
    ops_parallel(n, OPS_ROW_GRAIN(C), bwd_rows, &j);
    if (j.oom) peft_graph_set_error(g, "chunked cross-entropy: out of memory for a weight row");
}

// h (N, C), w (V, C) frozen, targets (N) -> loss () = mean over targets != ignore of
// logsumexp(h W^T) - (h W^T)[target]; the log-sum-exp runs online over vocabulary tiles
peft_tensor *op_linear_cross_entropy(peft_graph *g, peft_tensor *h, peft_tensor *w,
                                     const int32_t *targets, int32_t ignore_index)
{
    if (!h || !w || h->ndim < 1 || h->dtype != PEFT_DTYPE_F32 || w->ndim != 2 || w->requires_grad)
        return NULL;
    const int64_t C = h->shape[h->ndim - 1], V = w->shape[0];
    if (C <= 0 || V <= 0 || w->shape[1] != C || V > INT32_MAX) return NULL;
    const int64_t N = h->numel / C;
    if (N > 0 && !targets) return NULL;
    int64_t n = 0;
    for (int64_t r = 0; r < N; r++) {
        if (targets[r] == ignore_index) continue;
        if (targets[r] < 0 || targets[r] >= V) return NULL;
        n++;
    }
    peft_tensor *loss = peft_graph_tensor(g, 0, NULL);
    /* per valid row: its index, target and log-sum-exp (kept for the backward) */
    int32_t *rows = peft_arena_alloc(g->arena, (size_t)(n ? n : 1) * 2 * sizeof(int32_t));
    if (!loss || !rows) return NULL;
    int32_t *tg = rows + (n ? n : 1);
    for (int64_t r = 0, i = 0; r < N; r++)
        if (targets[r] != ignore_index) { rows[i] = (int32_t)r; tg[i++] = targets[r]; }
    const int need = peft_needs_grad(g, h, NULL);
    /* kept for the backward: acc (n, C) and 1 / s (n) */
    peft_tensor *acc_t = need && n ? peft_graph_tensor(g, 2, (int64_t[]){n, C}) : NULL;
    float *inv_s = need && n ? peft_arena_alloc(g->arena, (size_t)n * sizeof *inv_s) : NULL;
    if (need && n && (!acc_t || !inv_s)) return NULL;
    float *acc = acc_t ? peft_f32(acc_t) : NULL;
    const int64_t tv = tile_width(w, n, C, V);
    double total = 0.0;
    if (n > 0) {
        float *hc = malloc((size_t)(n * C) * sizeof *hc), *L = malloc((size_t)(n * tv) * sizeof *L);
        float *wt = w->dtype == PEFT_DTYPE_F32 ? NULL : malloc((size_t)(tv * C) * sizeof *wt);
        double *m = malloc((size_t)n * sizeof *m), *sum = calloc((size_t)n, sizeof *sum);
        float *xt = malloc((size_t)n * sizeof *xt);
        if (!hc || !L || (w->dtype != PEFT_DTYPE_F32 && !wt) || !m || !sum || !xt) {
            free(hc); free(L); free(wt); free(m); free(sum); free(xt);
            return NULL;
        }
        gather_rows(peft_f32(h), rows, n, C, hc);
        for (int64_t i = 0; i < n; i++) m[i] = -INFINITY;
        for (int64_t v0 = 0; v0 < V; v0 += tv) {
            const int64_t nv = V - v0 < tv ? V - v0 : tv;
            const float *W = weight_tile(w, v0, nv, C, wt);
            /* L (n, nv) = hc (n, C) W^T (C, nv) */
            ops_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)nv, (int)C, 1.0f,
                        hc, (int)C, W, (int)C, 0.0f, L, (int)nv);
            tile_rows_job rj = {L, acc, xt, m, sum, tg, v0, nv, C};
            ops_parallel(n, OPS_ROW_GRAIN(nv), tile_rows, &rj);
            /* acc (n, C) += E (n, nv) W (nv, C): the softmax-weighted head rows, unnormalised */
            if (acc)
                ops_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, (int)C, (int)nv,
                            1.0f, L, (int)nv, W, (int)C, 1.0f, acc, (int)C);
        }
        for (int64_t i = 0; i < n; i++) {
            /* sum >= 1 (the max term is exp(0)) unless the row holds NaN, which log keeps NaN */
            // cppcheck-suppress invalidFunctionArg
            const double l = m[i] + log(sum[i]);
            total += l - (double)xt[i];
            if (inv_s) inv_s[i] = (float)(1.0 / sum[i]);
        }
        free(hc); free(L); free(wt); free(m); free(sum); free(xt);
    }
    peft_f32(loss)[0] = n ? (float)(total / (double)n) : 0.0f;
    loss->requires_grad = need;
    if (need) {
        lce_ctx *c = peft_tape_push(g, lce_backward, sizeof *c);
        if (!c) return NULL;
        c->h = h; c->w = w; c->out = loss; c->rows = rows; c->targets = tg; c->acc = acc;
        c->inv_s = inv_s;
        peft_tape_output(g, c->out);
        c->C = C; c->n_valid = n;
    }
    return loss;
}
