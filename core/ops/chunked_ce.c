/* chunked_ce.c — the language-model head and its cross-entropy in one op, over row chunks: the
 * training loss never holds the whole (N, V) logits (with a 128k vocabulary, B=4, T=512, that
 * is 1 GB, and as much again for its gradient). Forward keeps one chunk of logits at a time and
 * the log-sum-exp per row; backward recomputes each chunk's logits, turns them into the
 * gradient in place and multiplies it back through the (frozen) head weight. Same arithmetic
 * as op_linear + op_cross_entropy row by row. */
#include "core/ops/ops.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "core/ops/linear_kernels.h"
#include "core/ops/vmath.h"

#define CHUNK_FLOATS ((int64_t)1 << 22) /* 16 MB of logits at a time */

typedef struct {
    peft_tensor *h, *w, *out;
    const int32_t *targets; /* (N), arena copy */
    const float *lse;       /* (N) */
    int32_t ignore;
    int64_t N, C, V, R, n_valid;
} lce_ctx;

// h rows [r0, r0+nr) (nr, C) -> logits (nr, V) = h W^T, W (V, C) in any storage dtype
static int chunk_logits(const peft_tensor *h, const peft_tensor *w, int64_t r0, int64_t nr,
                        int64_t C, int64_t V, float *buf)
{
    const float *x = peft_f32(h) + r0 * C;
    if (w->dtype == PEFT_DTYPE_F32) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)nr, (int)V, (int)C, 1.0f, x,
                    (int)C, peft_f32(w), (int)C, 0.0f, buf, (int)V);
        return 0;
    }
    return peft_linear_kernel_fwd(x, w, 0, nr, C, V, 0.0f, buf);
}

// dloss (1); h (N, C); W (V, C) -> dh (N, C) += (dloss / n_valid) (softmax - onehot) W
static void lce_backward(peft_graph *g, void *p)
{
    lce_ctx *c = p;
    const float *dy = c->out->grad;
    float *dh = dy ? peft_grad_of(g, c->h) : NULL;
    if (!dh || c->n_valid == 0) return;
    const float k = dy[0] / (float)c->n_valid;
    float *buf = malloc((size_t)(c->R * c->V) * sizeof *buf);
    if (!buf) { peft_graph_set_error(g, "chunked cross-entropy: out of memory for a chunk of logits"); return; }
    for (int64_t r0 = 0; r0 < c->N; r0 += c->R) {
        const int64_t nr = c->N - r0 < c->R ? c->N - r0 : c->R;
        if (chunk_logits(c->h, c->w, r0, nr, c->C, c->V, buf)) {
            peft_graph_set_error(g, "chunked cross-entropy: out of memory for a weight tile");
            break;
        }
        for (int64_t n = 0; n < nr; n++) {
            float *xr = buf + n * c->V;
            const int32_t t = c->targets[r0 + n];
            if (t == c->ignore) {
                memset(xr, 0, (size_t)c->V * sizeof *xr);
                continue;
            }
            const float lse = c->lse[r0 + n];
            vm_scale_exp(xr, lse, k, xr, c->V);
            xr[t] -= k;
        }
        float *dx = dh + r0 * c->C;
        if (c->w->dtype == PEFT_DTYPE_F32) /* dh (nr,C) += dl (nr,V) W (V,C) */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)nr, (int)c->C, (int)c->V,
                        1.0f, buf, (int)c->V, peft_f32(c->w), (int)c->C, 1.0f, dx, (int)c->C);
        else if (peft_linear_kernel_dx(buf, c->w, 0, nr, c->C, c->V, dx))
            peft_graph_set_error(g, "chunked cross-entropy: out of memory for a weight tile");
    }
    free(buf);
}

// h (N, C), w (V, C) frozen, targets (N) -> loss () = mean over targets != ignore of
// logsumexp(h W^T) - (h W^T)[target]
peft_tensor *op_linear_cross_entropy(peft_graph *g, peft_tensor *h, peft_tensor *w,
                                     const int32_t *targets, int32_t ignore_index)
{
    if (!h || !w || h->ndim < 1 || h->dtype != PEFT_DTYPE_F32 || w->ndim != 2 || w->requires_grad)
        return NULL;
    const int64_t C = h->shape[h->ndim - 1], V = w->shape[0];
    if (C <= 0 || V <= 0 || w->shape[1] != C) return NULL;
    const int64_t N = h->numel / C;
    if (N > 0 && !targets) return NULL;
    for (int64_t n = 0; n < N; n++)
        if (targets[n] != ignore_index && (targets[n] < 0 || targets[n] >= V)) return NULL;
    int64_t R = CHUNK_FLOATS / V;
    if (R < 1) R = 1;
    if (R > N) R = N ? N : 1;
    peft_tensor *loss = peft_graph_tensor(g, 0, NULL);
    peft_tensor *lse_t = peft_graph_tensor_raw(g, PEFT_DTYPE_F32, 1, (int64_t[]){N ? N : 1});
    float *buf = malloc((size_t)(R * V) * sizeof *buf);
    if (!loss || !lse_t || !buf) { free(buf); return NULL; }
    float *lse = peft_f32(lse_t);
    double total = 0.0;
    int64_t n_valid = 0;
    for (int64_t r0 = 0; r0 < N; r0 += R) {
        const int64_t nr = N - r0 < R ? N - r0 : R;
        int need = 0;
        for (int64_t n = 0; n < nr; n++) need |= targets[r0 + n] != ignore_index;
        if (!need) { /* a chunk of padding: no logits at all */
            for (int64_t n = 0; n < nr; n++) lse[r0 + n] = 0.0f;
            continue;
        }
        if (chunk_logits(h, w, r0, nr, C, V, buf)) { free(buf); return NULL; }
        for (int64_t n = 0; n < nr; n++) {
            const int32_t t = targets[r0 + n];
            if (t == ignore_index) { lse[r0 + n] = 0.0f; continue; }
            const float *xr = buf + n * V;
            const float mx = vm_max(xr, V);
            const double s = vm_sum_exp(xr, mx, V);
            /* s >= 1 (the max term is exp(0)) unless the row holds NaN, which log keeps NaN */
            // cppcheck-suppress invalidFunctionArg
            const double l = (double)mx + log(s);
            lse[r0 + n] = (float)l;
            total += l - (double)xr[t];
            n_valid++;
        }
    }
    free(buf);
    peft_f32(loss)[0] = n_valid ? (float)(total / (double)n_valid) : 0.0f;
    loss->requires_grad = peft_needs_grad(g, h, NULL);
    if (loss->requires_grad) {
        int32_t *tc = peft_arena_alloc(g->arena, (size_t)(N ? N : 1) * sizeof(int32_t));
        lce_ctx *c = tc ? peft_tape_push(g, lce_backward, sizeof *c) : NULL;
        if (!c) return NULL;
        if (N) memcpy(tc, targets, (size_t)N * sizeof(int32_t));
        c->h = h; c->w = w; c->out = loss; c->targets = tc; c->lse = lse;
        peft_tape_output(g, c->out);
        c->ignore = ignore_index; c->N = N; c->C = C; c->V = V; c->R = R; c->n_valid = n_valid;
    }
    return loss;
}
