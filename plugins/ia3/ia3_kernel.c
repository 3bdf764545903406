/* ia3_kernel.c — the (IA)^3 kernels and their backward on the host's tape (PEFT 0.13.2
 * ia3.Linear.forward):
 *   feed-forward site:  pre_forward  xs = x * l   (l (1, in)), the base layer then sees xs
 *   ordinary site:      forward      out = y * l  (l (out, 1)), y the base layer's output
 * The other entry of each pair passes its tensor through unchanged (the host calls pre_forward
 * for every active adapter that has one, and forward for every active adapter). */
#include "ia3.h"

typedef struct ia3_bwd_ctx {
    peft_tensor *a;   /* (N, n) the tensor that was scaled (x or y) */
    peft_tensor *out; /* (N, n) a * l */
    peft_tensor *l;   /* (n) as (1, in) or (out, 1) */
    int64_t rows, n;
} ia3_bwd_ctx;

/* dout = out->grad (N, n)
 * da (N, n) += dout * l          (broadcast over rows)
 * dl (n)    += sum_rows dout * a                          */
static void ia3_backward(peft_graph *g, void *vctx)
{
    const ia3_bwd_ctx *c = vctx;
    const float *dout = c->out->grad;
    if (!dout) return;
    const float *l = peft_f32(c->l), *a = peft_f32(c->a);
    const int64_t rows = c->rows, n = c->n;
    if (c->a->requires_grad) {
        float *da = ia3_host->grad_of(g, c->a);
        if (da)
            for (int64_t r = 0; r < rows; r++)
                for (int64_t k = 0; k < n; k++) da[r * n + k] += dout[r * n + k] * l[k];
    }
    if (c->l->requires_grad) {
        float *dl = ia3_host->grad_of(g, c->l);
        if (dl)
            for (int64_t r = 0; r < rows; r++)
                for (int64_t k = 0; k < n; k++) dl[k] += dout[r * n + k] * a[r * n + k];
    }
}

/* a (N..., n), l (n) -> out (N..., n) = a * l, recorded on the tape when gradients are wanted.
 * NULL on a shape mismatch or out of arena memory. */
static peft_tensor *scale_lastdim(peft_graph *g, peft_tensor *a, peft_tensor *l)
{
    if (!g || !a || a->ndim < 1 || a->dtype != PEFT_DTYPE_F32) return NULL;
    const int64_t n = l->numel;
    if (a->shape[a->ndim - 1] != n) return NULL;
    const int64_t rows = a->numel / n;
    peft_tensor *out = ia3_host->graph_tensor(g, a->ndim, a->shape);
    if (!out) return NULL;
    const float *pa = peft_f32(a), *pl = peft_f32(l);
    float *po = peft_f32(out);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t k = 0; k < n; k++) po[r * n + k] = pa[r * n + k] * pl[k];

    out->requires_grad = PEFT_PU_WANTS_GRAD(ia3_host, g, a, l);
    if (out->requires_grad) {
        ia3_bwd_ctx *c = ia3_host->tape_push(g, ia3_backward, sizeof *c);
        if (!c) return NULL;
        *c = (ia3_bwd_ctx){.a = a, .out = out, .l = l, .rows = rows, .n = n};
    }
    return out;
}

/* x (N..., in) -> xs (N..., in) = x * l on a feed-forward site; x itself elsewhere */
peft_tensor *ia3_pre_forward(void *state, peft_graph *g, const peft_site_info *site,
                             peft_tensor *x)
{
    (void)site;
    ia3_state *st = state;
    if (!st) return NULL;
    if (!st->is_feedforward) return x;
    return scale_lastdim(g, x, st->l);
}

/* y (N..., out) -> y * l on an ordinary site; y itself on a feed-forward one */
peft_tensor *ia3_forward(void *state, peft_graph *g, const peft_site_info *site, peft_tensor *x,
                         peft_tensor *y)
{
    (void)site;
    (void)x;
    ia3_state *st = state;
    if (!st) return NULL;
    if (st->is_feedforward) return y;
    return scale_lastdim(g, y, st->l);
}
