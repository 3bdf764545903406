/* ops_rows.c — row gather and row replacement over a matrix view (N, C) of any tensor whose
 * last dim is C: the grouped path of mixed-batch inference runs each adapter on just its rows. */
#include <string.h>
#include "core/ops/ops.h"

typedef struct { peft_tensor *x, *out; const int32_t *idx; int64_t n, C; } take_ctx;

// dout (n, C) -> dx[idx[i]] += dout[i]
static void take_backward(peft_graph *g, void *p)
{
    take_ctx *c = p;
    const float *dy = c->out->grad;
    float *dx = dy ? peft_grad_of(g, c->x) : NULL;
    if (!dx) return;
    for (int64_t i = 0; i < c->n; i++) {
        float *d = dx + (int64_t)c->idx[i] * c->C;
        const float *s = dy + i * c->C;
        for (int64_t j = 0; j < c->C; j++) d[j] += s[j];
    }
}

/* x (..., C) seen as (N, C), idx i32 (n) in [0, N) -> (n, C) */
peft_tensor *op_take_rows(peft_graph *g, peft_tensor *x, const int32_t *idx, int64_t n)
{
    if (!x || x->dtype != PEFT_DTYPE_F32 || x->ndim < 1 || n < 0) return NULL;
    int64_t C = x->shape[x->ndim - 1], N = C ? x->numel / C : 0;
    for (int64_t i = 0; i < n; i++)
        if (idx[i] < 0 || idx[i] >= N) return NULL;
    int64_t shape[2] = {n, C};
    peft_tensor *y = peft_graph_tensor_raw(g, PEFT_DTYPE_F32, 2, shape);
    if (!y) return NULL;
    for (int64_t i = 0; i < n; i++)
        memcpy(peft_f32(y) + i * C, peft_f32(x) + (int64_t)idx[i] * C, (size_t)C * sizeof(float));
    y->requires_grad = peft_needs_grad(g, x, NULL);
    if (y->requires_grad) {
        int32_t *ic = peft_arena_alloc(g->arena, (size_t)(n ? n : 1) * sizeof *ic);
        take_ctx *c = ic ? peft_tape_push(g, take_backward, sizeof *c) : NULL;
        if (!c) return NULL;
        memcpy(ic, idx, (size_t)n * sizeof *ic);
        c->x = x; c->out = y; c->idx = ic; c->n = n; c->C = C;
        peft_tape_output(g, c->out);
    }
    return y;
}

typedef struct { peft_tensor *y, *src, *out; const int32_t *idx; int64_t n, C; } put_ctx;

// dout (N, C) -> dy = dout with rows idx zeroed; dsrc[i] = dout[idx[i]]
static void put_backward(peft_graph *g, void *p)
{
    put_ctx *c = p;
    const float *dout = c->out->grad;
    if (!dout) return;
    float *dy = peft_grad_of(g, c->y), *ds = peft_grad_of(g, c->src);
    int64_t N = c->out->numel / c->C;
    unsigned char *replaced = dy ? peft_arena_alloc(g->arena, (size_t)(N ? N : 1)) : NULL;
    if (replaced) { /* every row but the replaced ones flows back to y */
        memset(replaced, 0, (size_t)N);
        for (int64_t i = 0; i < c->n; i++) replaced[c->idx[i]] = 1;
        for (int64_t r = 0; r < N; r++)
            if (!replaced[r])
                for (int64_t j = 0; j < c->C; j++) dy[r * c->C + j] += dout[r * c->C + j];
    }
    if (ds)
        for (int64_t i = 0; i < c->n; i++)
            for (int64_t j = 0; j < c->C; j++) ds[i * c->C + j] += dout[(int64_t)c->idx[i] * c->C + j];
}

/* y (..., C) seen as (N, C), src (n, C), distinct idx (n) -> a copy of y with row idx[i] = src[i] */
peft_tensor *op_put_rows(peft_graph *g, peft_tensor *y, peft_tensor *src, const int32_t *idx, int64_t n)
{
    if (!y || !src || y->dtype != PEFT_DTYPE_F32 || src->dtype != PEFT_DTYPE_F32) return NULL;
    int64_t C = y->shape[y->ndim - 1], N = C ? y->numel / C : 0;
    if (src->numel != n * C) return NULL;
    for (int64_t i = 0; i < n; i++)
        if (idx[i] < 0 || idx[i] >= N) return NULL;
    peft_tensor *out = peft_graph_tensor_raw(g, PEFT_DTYPE_F32, y->ndim, y->shape);
    if (!out) return NULL;
    memcpy(out->data, y->data, (size_t)y->numel * sizeof(float));
    for (int64_t i = 0; i < n; i++)
        memcpy(peft_f32(out) + (int64_t)idx[i] * C, peft_f32(src) + i * C, (size_t)C * sizeof(float));
    out->requires_grad = peft_needs_grad(g, y, src);
    if (out->requires_grad) {
        int32_t *ic = peft_arena_alloc(g->arena, (size_t)(n ? n : 1) * sizeof *ic);
        put_ctx *c = ic ? peft_tape_push(g, put_backward, sizeof *c) : NULL;
        if (!c) return NULL;
        memcpy(ic, idx, (size_t)n * sizeof *ic);
        c->y = y; c->src = src; c->out = out; c->idx = ic; c->n = n; c->C = C;
        peft_tape_output(g, c->out);
    }
    return out;
}
