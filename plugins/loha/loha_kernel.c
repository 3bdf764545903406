/* loha_kernel.c — the LoHa forward kernel and its backward on the host's tape (PEFT 0.13.2
 * loha.Linear.forward / get_delta_weight / HadaWeight):
 *
 *   P1 (out, in) = w1_a (out, r) @ w1_b (r, in)      P2 (out, in) = w2_a @ w2_b
 *   dW (out, in) = (P1 ⊙ P2) * s * drop[row]         s = alpha / r * mult
 *   out (N, out) = y + x (N, in) @ dW^T (in, out)
 *
 * dW is built once per forward call (one step), never per token. In training, module_dropout
 * skips the whole adapter when a uniform draw is <= p (PEFT: torch.rand(1) > p applies it), and
 * rank_dropout keeps each output row with probability 1 - p, rescaled by the kept fraction
 * (drop /= drop.mean(), as PEFT). Both draw from the graph's seeded RNG. */
#include <string.h>

#include "loha.h"

void loha_products(const loha_state *st, float *p1, float *p2)
{
    const int in = (int)st->in_features, outf = (int)st->out_features, r = (int)st->r;
    if (p1)
        loha_host->sgemm(0, 0, outf, in, r, 1.0f, peft_f32(st->w1a), r, peft_f32(st->w1b), in,
                         0.0f, p1, in);
    if (p2)
        loha_host->sgemm(0, 0, outf, in, r, 1.0f, peft_f32(st->w2a), r, peft_f32(st->w2b), in,
                         0.0f, p2, in);
}

typedef struct loha_bwd_ctx {
    peft_tensor *x;   /* (N, in) */
    peft_tensor *y;   /* (N, out) the output before this adapter */
    peft_tensor *out; /* (N, out) the output after it */
    peft_tensor *p1, *p2, *dw; /* (out, in) each */
    peft_tensor *drop;         /* (out) rank-dropout row factors, or NULL */
    peft_tensor *w1a, *w1b, *w2a, *w2b;
    int64_t n, in, outf, r;
    float s;
} loha_bwd_ctx;

/* dy = out->grad (N, out)
 * dy_prev (N, out) += dy
 * dx (N, in)       += dy (N, out) @ dW (out, in)
 * G (out, in)       = dy^T (out, N) @ x (N, in) * s * drop[row]     (d loss / d (P1 ⊙ P2))
 * dw1_a (out, r)   += (G ⊙ P2) @ w1_b^T (in, r);   dw1_b (r, in) += w1_a^T (r, out) @ (G ⊙ P2)
 * dw2_a (out, r)   += (G ⊙ P1) @ w2_b^T;           dw2_b (r, in) += w2_a^T @ (G ⊙ P1)     */
static void loha_backward(peft_graph *g, void *vctx)
{
    const loha_bwd_ctx *c = vctx;
    const float *dy = c->out->grad;
    if (!dy) return;
    const int n = (int)c->n, in = (int)c->in, outf = (int)c->outf, r = (int)c->r;

    if (c->y->requires_grad) {
        float *gy = loha_host->grad_of(g, c->y);
        if (gy) {
            const int64_t total = c->n * c->outf;
            for (int64_t i = 0; i < total; i++) gy[i] += dy[i];
        }
    }
    if (c->x->requires_grad) {
        float *dx = loha_host->grad_of(g, c->x);
        if (dx) loha_host->sgemm(0, 0, n, in, outf, 1.0f, dy, outf, peft_f32(c->dw), in, 1.0f, dx, in);
    }
    const int want1 = c->w1a->requires_grad || c->w1b->requires_grad;
    const int want2 = c->w2a->requires_grad || c->w2b->requires_grad;
    if (!want1 && !want2) return;

    const int64_t shape[2] = {c->outf, c->in};
    peft_tensor *gt = loha_host->graph_tensor(g, 2, shape);
    peft_tensor *tt = loha_host->graph_tensor(g, 2, shape);
    if (!gt || !tt) return;
    float *G = peft_f32(gt), *tmp = peft_f32(tt);
    loha_host->sgemm(1, 0, outf, in, n, 1.0f, dy, outf, peft_f32(c->x), in, 0.0f, G, in);
    const float *drop = c->drop ? peft_f32(c->drop) : NULL;
    for (int64_t o = 0; o < c->outf; o++) {
        const float f = drop ? c->s * drop[o] : c->s;
        float *row = G + o * c->in;
        for (int64_t i = 0; i < c->in; i++) row[i] *= f;
    }
    const int64_t total = c->outf * c->in;
    for (int k = 0; k < 2; k++) {
        if (!(k ? want2 : want1)) continue;
        const float *other = peft_f32(k ? c->p1 : c->p2);
        peft_tensor *a = k ? c->w2a : c->w1a, *b = k ? c->w2b : c->w1b;
        for (int64_t i = 0; i < total; i++) tmp[i] = G[i] * other[i];
        if (a->requires_grad) {
            float *da = loha_host->grad_of(g, a);
            if (da) loha_host->sgemm(0, 1, outf, r, in, 1.0f, tmp, in, peft_f32(b), in, 1.0f, da, r);
        }
        if (b->requires_grad) {
            float *db = loha_host->grad_of(g, b);
            if (db) loha_host->sgemm(1, 0, r, in, outf, 1.0f, peft_f32(a), r, tmp, in, 1.0f, db, in);
        }
    }
}

/* x (N..., in), y (N..., out) -> out (N..., out) = y + x @ dW^T (see the top of the file).
 * Returns y itself when module dropout skips the adapter; an arena tensor otherwise; NULL on a
 * shape mismatch or out of arena memory. */
peft_tensor *loha_forward(void *state, peft_graph *g, const peft_site_info *site,
                          peft_tensor *x, peft_tensor *y)
{
    (void)site;
    loha_state *st = state;
    if (!st || !g || !x || !y || x->ndim < 1 || y->ndim < 1) return NULL;
    if (x->dtype != PEFT_DTYPE_F32 || y->dtype != PEFT_DTYPE_F32) return NULL;
    const int64_t in = st->in_features, outf = st->out_features;
    if (x->shape[x->ndim - 1] != in || y->shape[y->ndim - 1] != outf) return NULL;
    const int64_t n = x->numel / in;
    if (y->numel / outf != n) return NULL;

    const int training = loha_host->graph_training(g);
    peft_rng *rng = training ? loha_host->graph_rng(g) : NULL;
    if (training && st->module_dropout > 0.0f) {
        if (!rng) return NULL;
        if (!(loha_host->rng_uniform(rng) > (double)st->module_dropout)) return y;
    }

    const int need = loha_host->graph_recording(g) &&
                     (x->requires_grad || y->requires_grad || st->w1a->requires_grad ||
                      st->w1b->requires_grad || st->w2a->requires_grad || st->w2b->requires_grad);
    const int64_t wshape[2] = {outf, in};
    peft_tensor *p1 = loha_host->graph_tensor(g, 2, wshape);
    peft_tensor *dw = loha_host->graph_tensor(g, 2, wshape);
    /* without a backward, P2 is built in dW's buffer and multiplied in place */
    peft_tensor *p2 = need ? loha_host->graph_tensor(g, 2, wshape) : dw;
    peft_tensor *out = loha_host->graph_tensor(g, y->ndim, y->shape);
    if (!p1 || !dw || !p2 || !out) return NULL;
    loha_products(st, peft_f32(p1), peft_f32(p2));
    const float s = (float)(st->scaling * st->mult);
    const float *a1 = peft_f32(p1), *a2 = peft_f32(p2);
    float *d = peft_f32(dw);
    const int64_t total = outf * in;
    for (int64_t i = 0; i < total; i++) d[i] = a1[i] * a2[i] * s; /* PEFT: (P1 * P2) * scale */

    peft_tensor *drop = NULL;
    if (training && st->rank_dropout > 0.0f) {
        if (!rng) return NULL;
        const int64_t dshape[1] = {outf};
        drop = loha_host->graph_tensor(g, 1, dshape);
        if (!drop) return NULL;
        float *dp = peft_f32(drop);
        double kept = 0;
        for (int64_t o = 0; o < outf; o++) {
            dp[o] = loha_host->rng_uniform(rng) > (double)st->rank_dropout ? 1.0f : 0.0f;
            kept += dp[o];
        }
        /* drop /= drop.mean(); every row dropped leaves the zero delta (PEFT: 0/0 = NaN) */
        const float inv_mean = kept > 0 ? (float)((double)outf / kept) : 0.0f;
        for (int64_t o = 0; o < outf; o++) {
            dp[o] *= inv_mean;
            float *row = d + o * in;
            for (int64_t i = 0; i < in; i++) row[i] *= dp[o];
        }
    }

    /* out (N, out) = y + x (N, in) @ dW^T (in, out) */
    memcpy(out->data, y->data, (size_t)(n * outf) * sizeof(float));
    loha_host->sgemm(0, 1, (int)n, (int)outf, (int)in, 1.0f, peft_f32(x), (int)in, d, (int)in,
                     1.0f, peft_f32(out), (int)outf);

    out->requires_grad = need ? 1 : 0;
    if (need) {
        loha_bwd_ctx *c = loha_host->tape_push(g, loha_backward, sizeof *c);
        if (!c) return NULL;
        c->x = x;
        c->y = y;
        c->out = out;
        c->p1 = p1;
        c->p2 = p2;
        c->dw = dw;
        c->drop = drop;
        c->w1a = st->w1a;
        c->w1b = st->w1b;
        c->w2a = st->w2a;
        c->w2b = st->w2b;
        c->n = n;
        c->in = in;
        c->outf = outf;
        c->r = st->r;
        c->s = s;
    }
    return out;
}
