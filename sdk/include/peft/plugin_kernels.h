/* peft/plugin_kernels.h — header-only kernels that tuner plugins share: the host's GEMM on
 * contiguous row-major matrices, the shape check of a site's (x, y), gradient pass-through,
 * "does this op need a backward", rank dropout's row mask, rows repeated over a batch with
 * the matching reduction. Static inline over the host table (peft/plugin.h); no ABI, no libpeft.
 *
 * All but the last are not ops with a backward of their own: they are the pieces a plugin's op
 * and its backward are written with (the plugin records the op on the tape). The last,
 * peft_pu_op_batch_rows, is one whole op (prompt learning's virtual tokens over the batch). Arena tensors returned
 * live until the graph is reset, never freed by the plugin. Host entries used: sgemm (list it
 * in peft_pu_host_check), graph_tensor, graph_recording, grad_of, rng_uniform.
 */
#ifndef PEFT_PLUGIN_KERNELS_H
#define PEFT_PLUGIN_KERNELS_H

#include <stdint.h>
#include <string.h>

#include "peft/plugin.h"

#ifdef __cplusplus
extern "C" {
#endif

/* C (m, n) = alpha * op(A) @ op(B) + beta * C, every matrix contiguous row-major:
 * op(A) (m, k) is A (m, k), or A (k, m) transposed when ta; op(B) (k, n) is B (k, n), or
 * B (n, k) transposed when tb. The leading dimensions follow from the shapes. */
static inline void peft_pu_gemm(const peft_host_api *host, int ta, int tb, int64_t m, int64_t n,
                                int64_t k, float alpha, const float *a, const float *b, float beta,
                                float *c)
{
    host->sgemm(ta, tb, (int)m, (int)n, (int)k, alpha, a, ta ? (int)m : (int)k, b,
                tb ? (int)k : (int)n, beta, c, (int)n);
}

/* x (N..., in) and y (N..., out): f32, last dims in and out, the same N rows; *n = N.
 * 0, or -1 when they do not fit (a forward then returns NULL). */
static inline int peft_pu_site_rows(const peft_tensor *x, const peft_tensor *y, int64_t in,
                                    int64_t out, int64_t *n)
{
    if (!x || !y || x->ndim < 1 || y->ndim < 1) return -1;
    if (x->dtype != PEFT_DTYPE_F32 || y->dtype != PEFT_DTYPE_F32) return -1;
    if (in <= 0 || out <= 0 || x->shape[x->ndim - 1] != in || y->shape[y->ndim - 1] != out)
        return -1;
    *n = x->numel / in;
    return y->numel / out == *n ? 0 : -1;
}

/* In a backward: t's gradient (numel n) += d, when t requires one. */
static inline void peft_pu_grad_add(const peft_host_api *host, peft_graph *g, peft_tensor *t,
                                    const float *d, int64_t n)
{
    if (!t || !t->requires_grad) return;
    float *gt = host->grad_of(g, t);
    if (!gt) return;
    for (int64_t i = 0; i < n; i++) gt[i] += d[i];
}

/* 1 when the tape records and one of ts[n] (NULL entries skipped) requires a gradient: the op
 * then sets requires_grad on its output and pushes its backward. */
static inline int peft_pu_wants_grad(const peft_host_api *host, const peft_graph *g,
                                     const peft_tensor *const *ts, int n)
{
    if (!host->graph_recording(g)) return 0;
    for (int i = 0; i < n; i++)
        if (ts[i] && ts[i]->requires_grad) return 1;
    return 0;
}

/* peft_pu_wants_grad over the tensors listed (a C99 compound literal: C only) */
#define PEFT_PU_WANTS_GRAD(host, g, ...)                                                          \
    peft_pu_wants_grad((host), (g), (const peft_tensor *const[]){__VA_ARGS__},                    \
                       (int)(sizeof((const peft_tensor *const[]){__VA_ARGS__}) /                  \
                             sizeof(const peft_tensor *)))

/* LyCORIS rank dropout (PEFT's LoHa/LoKr forward in training): mask (rows) with row o kept
 * (1) when a uniform draw from rng is > p, then divided by the mean (drop /= drop.mean());
 * every row dropped leaves all zeros (PEFT: 0/0 = NaN). Draws rows values in order. An arena
 * tensor, NULL on arena OOM. */
static inline peft_tensor *peft_pu_rank_dropout_mask(const peft_host_api *host, peft_graph *g,
                                                     peft_rng *rng, int64_t rows, double p)
{
    const int64_t shape[1] = {rows};
    peft_tensor *t = host->graph_tensor(g, 1, shape);
    if (!t) return NULL;
    float *m = peft_f32(t);
    double kept = 0;
    for (int64_t o = 0; o < rows; o++) {
        m[o] = host->rng_uniform(rng) > p ? 1.0f : 0.0f;
        kept += m[o];
    }
    const float inv_mean = kept > 0 ? (float)((double)rows / kept) : 0.0f;
    for (int64_t o = 0; o < rows; o++) m[o] *= inv_mean;
    return t;
}

/* dst (B, n) = src (n) repeated for every b */
static inline void peft_pu_repeat_rows(float *dst, const float *src, int64_t B, int64_t n)
{
    for (int64_t b = 0; b < B; b++) memcpy(dst + b * n, src, (size_t)n * sizeof *dst);
}

/* dst (n) += sum_b src (B, n): the backward of peft_pu_repeat_rows */
static inline void peft_pu_sum_rows(float *dst, const float *src, int64_t B, int64_t n)
{
    for (int64_t b = 0; b < B; b++)
        for (int64_t i = 0; i < n; i++) dst[i] += src[b * n + i];
}

/* ---- an op: the first P rows of a table, the same for every batch item -------------------- */

typedef struct peft_pu_batch_rows_ctx {
    const peft_host_api *host;
    peft_tensor *src; /* (R, C) */
    peft_tensor *out; /* (B, P, C) */
    int64_t B, n;     /* n = P * C */
} peft_pu_batch_rows_ctx;

/* dsrc[:P] += sum_b dout[b] (rows P..R-1 get nothing) */
static inline void peft_pu_batch_rows_backward(peft_graph *g, void *vctx)
{
    const peft_pu_batch_rows_ctx *c = (const peft_pu_batch_rows_ctx *)vctx;
    const float *dy = c->out->grad;
    if (!dy) return;
    float *ds = c->host->grad_of(g, c->src);
    if (ds) peft_pu_sum_rows(ds, dy, c->B, c->n);
}

/* src (R, C), f32, R >= P -> out (B, P, C) = src[:P] for every b, an arena tensor whose
 * backward (recorded when src requires a gradient) sums over the batch into src's gradient:
 * prompt learning's virtual tokens. NULL on arena/tape OOM or a src that does not fit. */
static inline peft_tensor *peft_pu_op_batch_rows(const peft_host_api *host, peft_graph *g,
                                                 peft_tensor *src, int64_t P, int64_t B)
{
    if (!src || src->ndim != 2 || src->dtype != PEFT_DTYPE_F32 || P <= 0 || P > src->shape[0] ||
        B <= 0)
        return NULL;
    const int64_t C = src->shape[1], shape[3] = {B, P, C};
    peft_tensor *out = host->graph_tensor(g, 3, shape);
    if (!out) return NULL;
    peft_pu_repeat_rows(peft_f32(out), peft_f32(src), B, P * C);
    out->requires_grad = PEFT_PU_WANTS_GRAD(host, g, src);
    if (out->requires_grad) {
        peft_pu_batch_rows_ctx *c = (peft_pu_batch_rows_ctx *)host->tape_push(
            g, peft_pu_batch_rows_backward, sizeof *c);
        if (!c) return NULL;
        c->host = host;
        c->src = src;
        c->out = out;
        c->B = B;
        c->n = P * C;
    }
    return out;
}

#ifdef __cplusplus
}
#endif
#endif
