/* prefix_ops.c — the prefix-tuning kernels and their backward on the host's tape: a block of
 * the table broadcast over the batch, the MLP's hidden layer (Linear + tanh) and a block of the
 * MLP's output. The graph-free *_into functions are the very arithmetic the ops run, so that a
 * saved prompt_embeddings reproduces the MLP's forward bit for bit. */
#include <math.h>
#include <string.h>

#include "prefix.h"

/* ---- a block of the table ----------------------------------------------------------------- */

typedef struct table_ctx {
    peft_tensor *table, *out;
    int64_t B, P, N, off, w;
} table_ctx;

/* dtable[p, off + j] += sum_b dout[b, p, j] */
static void table_block_backward(peft_graph *g, void *vctx)
{
    const table_ctx *c = vctx;
    const float *dy = c->out->grad;
    if (!dy) return;
    float *dt = prefix_host->grad_of(g, c->table);
    if (!dt) return;
    for (int64_t b = 0; b < c->B; b++)
        for (int64_t p = 0; p < c->P; p++) {
            const float *src = dy + (b * c->P + p) * c->w;
            float *dst = dt + p * c->N + c->off;
            for (int64_t j = 0; j < c->w; j++) dst[j] += src[j];
        }
}

// table (P, N) -> out (B, P, w) = table[:, off:off+w] for every b
peft_tensor *prefix_op_table_block(peft_graph *g, peft_tensor *table, int64_t off, int64_t w,
                                   int64_t B)
{
    const int64_t P = table->shape[0], N = table->shape[1], shape[3] = {B, P, w};
    peft_tensor *out = prefix_host->graph_tensor(g, 3, shape);
    if (!out) return NULL;
    const float *t = peft_f32(table);
    float *o = peft_f32(out);
    for (int64_t b = 0; b < B; b++)
        for (int64_t p = 0; p < P; p++)
            memcpy(o + (b * P + p) * w, t + p * N + off, (size_t)w * sizeof(float));
    out->requires_grad = PEFT_PU_WANTS_GRAD(prefix_host, g, table);
    if (out->requires_grad) {
        table_ctx *c = prefix_host->tape_push(g, table_block_backward, sizeof *c);
        if (!c) return NULL;
        *c = (table_ctx){table, out, B, P, N, off, w};
    }
    return out;
}

/* ---- the MLP's hidden layer --------------------------------------------------------------- */

// x (P, W), w0 (E, W), b0 (E) -> out (P, E) = tanh(x w0^T + b0)
void prefix_hidden_into(const float *x, const float *w0, const float *b0, int64_t P, int64_t W,
                        int64_t E, float *out)
{
    peft_pu_gemm(prefix_host, 0, 1, P, E, W, 1.0f, x, w0, 0.0f, out);
    for (int64_t p = 0; p < P; p++)
        for (int64_t e = 0; e < E; e++) out[p * E + e] = tanhf(out[p * E + e] + b0[e]);
}

typedef struct hidden_ctx {
    peft_tensor *x, *w0, *b0, *h;
    int64_t P, W, E;
} hidden_ctx;

/* dpre (P, E) = dh * (1 - h^2)
 * dx (P, W)  += dpre (P, E) @ w0 (E, W)
 * dw0 (E, W) += dpre^T (E, P) @ x (P, W)
 * db0 (E)    += sum_p dpre[p]                */
static void hidden_backward(peft_graph *g, void *vctx)
{
    const hidden_ctx *c = vctx;
    const float *dh = c->h->grad;
    if (!dh) return;
    const int64_t P = c->P, W = c->W, E = c->E, shape[2] = {P, E};
    peft_tensor *dp = prefix_host->graph_tensor(g, 2, shape);
    if (!dp) return;
    float *dpre = peft_f32(dp);
    const float *h = peft_f32(c->h);
    for (int64_t i = 0; i < P * E; i++) dpre[i] = dh[i] * (1.0f - h[i] * h[i]);
    float *dx = c->x->requires_grad ? prefix_host->grad_of(g, c->x) : NULL;
    if (dx) peft_pu_gemm(prefix_host, 0, 0, P, W, E, 1.0f, dpre, peft_f32(c->w0), 1.0f, dx);
    float *dw = c->w0->requires_grad ? prefix_host->grad_of(g, c->w0) : NULL;
    if (dw) peft_pu_gemm(prefix_host, 1, 0, E, W, P, 1.0f, dpre, peft_f32(c->x), 1.0f, dw);
    float *db = c->b0->requires_grad ? prefix_host->grad_of(g, c->b0) : NULL;
    if (db) peft_pu_sum_rows(db, dpre, P, E);
}

peft_tensor *prefix_op_hidden(peft_graph *g, peft_tensor *x, peft_tensor *w0, peft_tensor *b0)
{
    const int64_t P = x->shape[0], W = x->shape[1], E = w0->shape[0], shape[2] = {P, E};
    peft_tensor *h = prefix_host->graph_tensor(g, 2, shape);
    if (!h) return NULL;
    prefix_hidden_into(peft_f32(x), peft_f32(w0), peft_f32(b0), P, W, E, peft_f32(h));
    h->requires_grad = PEFT_PU_WANTS_GRAD(prefix_host, g, x, w0, b0);
    if (h->requires_grad) {
        hidden_ctx *c = prefix_host->tape_push(g, hidden_backward, sizeof *c);
        if (!c) return NULL;
        *c = (hidden_ctx){x, w0, b0, h, P, W, E};
    }
    return h;
}

/* ---- a block of the MLP's output ---------------------------------------------------------- */

// h (P, E), w2 (N, E), b2 (N) -> out (P, w) = h w2[off:off+w]^T + b2[off:off+w]
void prefix_out_block_into(const float *h, const float *w2, const float *b2, int64_t P, int64_t E,
                           int64_t off, int64_t w, float *out)
{
    peft_pu_gemm(prefix_host, 0, 1, P, w, E, 1.0f, h, w2 + off * E, 0.0f, out);
    for (int64_t p = 0; p < P; p++)
        for (int64_t j = 0; j < w; j++) out[p * w + j] += b2[off + j];
}

typedef struct out_ctx {
    peft_tensor *h, *w2, *b2, *out;
    int64_t B, P, E, off, w;
} out_ctx;

/* ds (P, w) = sum_b dout[b]
 * dw2[off:off+w] (w, E) += ds^T (w, P) @ h (P, E)
 * db2[off:off+w]        += sum_p ds[p]
 * dh (P, E)             += ds (P, w) @ w2[off:off+w] (w, E) */
static void out_block_backward(peft_graph *g, void *vctx)
{
    const out_ctx *c = vctx;
    const float *dy = c->out->grad;
    if (!dy) return;
    const int64_t P = c->P, E = c->E, w = c->w, shape[2] = {P, w};
    peft_tensor *dst = prefix_host->graph_tensor(g, 2, shape);
    if (!dst) return;
    float *ds = peft_f32(dst);
    peft_pu_sum_rows(ds, dy, c->B, P * w);
    float *dw = c->w2->requires_grad ? prefix_host->grad_of(g, c->w2) : NULL;
    if (dw)
        peft_pu_gemm(prefix_host, 1, 0, w, E, P, 1.0f, ds, peft_f32(c->h), 1.0f, dw + c->off * E);
    float *db = c->b2->requires_grad ? prefix_host->grad_of(g, c->b2) : NULL;
    if (db) peft_pu_sum_rows(db + c->off, ds, P, w);
    float *dh = c->h->requires_grad ? prefix_host->grad_of(g, c->h) : NULL;
    if (dh)
        peft_pu_gemm(prefix_host, 0, 0, P, E, w, 1.0f, ds, peft_f32(c->w2) + c->off * E, 1.0f, dh);
}

peft_tensor *prefix_op_out_block(peft_graph *g, peft_tensor *h, peft_tensor *w2, peft_tensor *b2,
                                 int64_t off, int64_t w, int64_t B)
{
    const int64_t P = h->shape[0], E = h->shape[1], shape2[2] = {P, w}, shape3[3] = {B, P, w};
    peft_tensor *s = prefix_host->graph_tensor(g, 2, shape2);
    peft_tensor *out = prefix_host->graph_tensor(g, 3, shape3);
    if (!s || !out) return NULL;
    prefix_out_block_into(peft_f32(h), peft_f32(w2), peft_f32(b2), P, E, off, w, peft_f32(s));
    peft_pu_repeat_rows(peft_f32(out), peft_f32(s), B, P * w);
    out->requires_grad = PEFT_PU_WANTS_GRAD(prefix_host, g, h, w2, b2);
    if (out->requires_grad) {
        out_ctx *c = prefix_host->tape_push(g, out_block_backward, sizeof *c);
        if (!c) return NULL;
        *c = (out_ctx){h, w2, b2, out, B, P, E, off, w};
    }
    return out;
}
