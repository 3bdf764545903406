/* ops_index.c — ops that move rows around or reduce to a scalar: row gather (sequence-
 * classification pooling), concatenation and slicing along the sequence axis (virtual tokens
 * of prompt / prefix tuning), and the mean squared error loss (regression heads), each with its
 * backward. */
#include "core/ops/ops.h"

#include <string.h>

/* ---- gather_rows ---------------------------------------------------------------------------- */

typedef struct {
    peft_tensor *x, *out;
    const int32_t *idx; /* (B), arena copy */
    int64_t B, T, C;
} gather_ctx;

// dy (B, C), idx (B) -> dx (B, T, C): row idx[b] of batch b += dy[b]
static void gather_rows_backward(peft_graph *g, void *p)
{
    gather_ctx *c = p;
    const float *dy = c->out->grad;
    float *dx = dy ? peft_grad_of(g, c->x) : NULL;
    if (!dx) return;
    for (int64_t b = 0; b < c->B; b++) {
        float *d = dx + (b * c->T + c->idx[b]) * c->C;
        const float *s = dy + b * c->C;
        for (int64_t j = 0; j < c->C; j++) d[j] += s[j];
    }
}

// x (B, T, C), idx (B) -> y (B, C) = x[b, idx[b], :]; an idx outside [0, T): NULL
peft_tensor *op_gather_rows(peft_graph *g, peft_tensor *x, const int32_t *idx)
{
    if (!x || x->ndim != 3 || x->dtype != PEFT_DTYPE_F32) return NULL;
    const int64_t B = x->shape[0], T = x->shape[1], C = x->shape[2];
    if (B > 0 && !idx) return NULL;
    for (int64_t b = 0; b < B; b++)
        if (idx[b] < 0 || idx[b] >= T) return NULL;
    peft_tensor *y = peft_graph_tensor_raw(g, PEFT_DTYPE_F32, 2, (int64_t[]){B, C});
    if (!y) return NULL;
    const float *xd = peft_f32(x);
    float *yd = peft_f32(y);
    for (int64_t b = 0; b < B; b++)
        memcpy(yd + b * C, xd + (b * T + idx[b]) * C, (size_t)C * sizeof(float));
    y->requires_grad = peft_needs_grad(g, x, NULL);
    if (y->requires_grad) {
        int32_t *ic = peft_arena_alloc(g->arena, (size_t)(B ? B : 1) * sizeof(int32_t));
        gather_ctx *c = ic ? peft_tape_push(g, gather_rows_backward, sizeof *c) : NULL;
        if (!c) return NULL;
        if (B) memcpy(ic, idx, (size_t)B * sizeof(int32_t));
        c->x = x; c->out = y; c->idx = ic; c->B = B; c->T = T; c->C = C;
        peft_tape_output(g, c->out);
    }
    return y;
}

/* ---- concat_seq ----------------------------------------------------------------------------- */

typedef struct { peft_tensor *a, *b, *out; } concat_ctx;

// dy (B, P+T, C) -> da (B, P, C) += dy[:, :P], db (B, T, C) += dy[:, P:]
static void concat_seq_backward(peft_graph *g, void *p)
{
    concat_ctx *c = p;
    const float *dy = c->out->grad;
    if (!dy) return;
    const int64_t B = c->a->shape[0], C = c->a->shape[2];
    const int64_t na = c->a->shape[1] * C, nb = c->b->shape[1] * C;
    float *da = peft_grad_of(g, c->a);
    float *db = peft_grad_of(g, c->b);
    for (int64_t b = 0; b < B; b++) {
        const float *src = dy + b * (na + nb);
        if (da)
            for (int64_t j = 0; j < na; j++) da[b * na + j] += src[j];
        if (db)
            for (int64_t j = 0; j < nb; j++) db[b * nb + j] += src[na + j];
    }
}

// a (B, P, C), b (B, T, C) -> y (B, P+T, C)
peft_tensor *op_concat_seq(peft_graph *g, peft_tensor *a, peft_tensor *b)
{
    if (!a || !b || a->ndim != 3 || b->ndim != 3 || a->dtype != PEFT_DTYPE_F32 ||
        b->dtype != PEFT_DTYPE_F32 || a->shape[0] != b->shape[0] || a->shape[2] != b->shape[2])
        return NULL;
    const int64_t B = a->shape[0], P = a->shape[1], T = b->shape[1], C = a->shape[2];
    peft_tensor *y = peft_graph_tensor_raw(g, PEFT_DTYPE_F32, 3, (int64_t[]){B, P + T, C});
    if (!y) return NULL;
    const float *ad = peft_f32(a), *bd = peft_f32(b);
    float *yd = peft_f32(y);
    for (int64_t i = 0; i < B; i++) {
        if (P) memcpy(yd + i * (P + T) * C, ad + i * P * C, (size_t)(P * C) * sizeof(float));
        if (T) memcpy(yd + (i * (P + T) + P) * C, bd + i * T * C, (size_t)(T * C) * sizeof(float));
    }
    y->requires_grad = peft_needs_grad(g, a, b);
    if (y->requires_grad) {
        concat_ctx *c = peft_tape_push(g, concat_seq_backward, sizeof *c);
        if (!c) return NULL;
        c->a = a; c->b = b; c->out = y;
        peft_tape_output(g, c->out);
    }
    return y;
}

/* ---- slice_seq ------------------------------------------------------------------------------ */

typedef struct { peft_tensor *x, *out; int64_t off; } slice_ctx;

// dy (B, len, C) -> dx (B, T, C)[:, off:off+len] += dy
static void slice_seq_backward(peft_graph *g, void *p)
{
    slice_ctx *c = p;
    const float *dy = c->out->grad;
    float *dx = dy ? peft_grad_of(g, c->x) : NULL;
    if (!dx) return;
    const int64_t B = c->x->shape[0], T = c->x->shape[1], C = c->x->shape[2];
    const int64_t n = c->out->shape[1] * C;
    for (int64_t b = 0; b < B; b++) {
        float *d = dx + (b * T + c->off) * C;
        const float *s = dy + b * n;
        for (int64_t j = 0; j < n; j++) d[j] += s[j];
    }
}

// x (B, T, C) -> y (B, len, C) = x[:, off:off+len, :]; out of range: NULL
peft_tensor *op_slice_seq(peft_graph *g, peft_tensor *x, int64_t off, int64_t len)
{
    if (!x || x->ndim != 3 || x->dtype != PEFT_DTYPE_F32 || off < 0 || len < 0 ||
        off > x->shape[1] || len > x->shape[1] - off)
        return NULL;
    const int64_t B = x->shape[0], T = x->shape[1], C = x->shape[2];
    peft_tensor *y = peft_graph_tensor_raw(g, PEFT_DTYPE_F32, 3, (int64_t[]){B, len, C});
    if (!y) return NULL;
    const float *xd = peft_f32(x);
    float *yd = peft_f32(y);
    if (len)
        for (int64_t b = 0; b < B; b++)
            memcpy(yd + b * len * C, xd + (b * T + off) * C, (size_t)(len * C) * sizeof(float));
    y->requires_grad = peft_needs_grad(g, x, NULL);
    if (y->requires_grad) {
        slice_ctx *c = peft_tape_push(g, slice_seq_backward, sizeof *c);
        if (!c) return NULL;
        c->x = x; c->out = y; c->off = off;
        peft_tape_output(g, c->out);
    }
    return y;
}

/* ---- mse ------------------------------------------------------------------------------------ */

typedef struct {
    peft_tensor *x, *out;
    const float *target; /* (n), arena copy */
} mse_ctx;

// dloss (1); x, target (n) -> dx (n) += dloss * 2 (x - target) / n
static void mse_backward(peft_graph *g, void *p)
{
    mse_ctx *c = p;
    const float *dy = c->out->grad;
    float *dx = dy ? peft_grad_of(g, c->x) : NULL;
    if (!dx) return;
    const int64_t n = c->x->numel;
    const float k = 2.0f * dy[0] / (float)n;
    const float *x = peft_f32(c->x);
    for (int64_t i = 0; i < n; i++) dx[i] += k * (x[i] - c->target[i]);
}

// x (n), target (n) -> loss () = mean((x - target)^2); empty x (PyTorch: nan) or no target: NULL
peft_tensor *op_mse(peft_graph *g, peft_tensor *x, const float *target)
{
    if (!x || !target || x->dtype != PEFT_DTYPE_F32 || x->numel <= 0) return NULL;
    const int64_t n = x->numel;
    peft_tensor *loss = peft_graph_tensor(g, 0, NULL);
    if (!loss) return NULL;
    const float *xd = peft_f32(x);
    double s = 0.0;
    for (int64_t i = 0; i < n; i++) {
        const double d = (double)xd[i] - (double)target[i];
        s += d * d;
    }
    peft_f32(loss)[0] = (float)(s / (double)n);
    loss->requires_grad = peft_needs_grad(g, x, NULL);
    if (loss->requires_grad) {
        float *tc = peft_arena_alloc(g->arena, (size_t)n * sizeof(float));
        mse_ctx *c = tc ? peft_tape_push(g, mse_backward, sizeof *c) : NULL;
        if (!c) return NULL;
        memcpy(tc, target, (size_t)n * sizeof(float));
        c->x = x; c->out = loss; c->target = tc;
        peft_tape_output(g, c->out);
    }
    return loss;
}
