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
    const int64_t in = st->in_features, outf = st->out_features, r = st->r;
    if (p1)
        peft_pu_gemm(loha_host, 0, 0, outf, in, r, 1.0f, peft_f32(st->w1a), peft_f32(st->w1b),
                     0.0f, p1);
    if (p2)
        peft_pu_gemm(loha_host, 0, 0, outf, in, r, 1.0f, peft_f32(st->w2a), peft_f32(st->w2b),
                     0.0f, p2);
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
    const peft_host_api *H = loha_host;
    const int64_t n = c->n, in = c->in, outf = c->outf, r = c->r;

    peft_pu_grad_add(H, g, c->y, dy, n * outf);
    float *dx = c->x->requires_grad ? H->grad_of(g, c->x) : NULL;
    if (dx) peft_pu_gemm(H, 0, 0, n, in, outf, 1.0f, dy, peft_f32(c->dw), 1.0f, dx);
    const int want1 = c->w1a->requires_grad || c->w1b->requires_grad;
    const int want2 = c->w2a->requires_grad || c->w2b->requires_grad;
    if (!want1 && !want2) return;

    const int64_t shape[2] = {c->outf, c->in};
    peft_tensor *gt = H->graph_tensor(g, 2, shape);
    peft_tensor *tt = H->graph_tensor(g, 2, shape);
    if (!gt || !tt) return;
    float *G = peft_f32(gt), *tmp = peft_f32(tt);
    peft_pu_gemm(H, 1, 0, outf, in, n, 1.0f, dy, peft_f32(c->x), 0.0f, G);
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
        float *da = a->requires_grad ? H->grad_of(g, a) : NULL;
        if (da) peft_pu_gemm(H, 0, 1, outf, r, in, 1.0f, tmp, peft_f32(b), 1.0f, da);
        float *db = b->requires_grad ? H->grad_of(g, b) : NULL;
        if (db) peft_pu_gemm(H, 1, 0, r, in, outf, 1.0f, peft_f32(a), tmp, 1.0f, db);
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
    int64_t n;
    if (!st || !g || peft_pu_site_rows(x, y, st->in_features, st->out_features, &n)) return NULL;
    const int64_t in = st->in_features, outf = st->out_features;

    const int training = loha_host->graph_training(g);
    peft_rng *rng = training ? loha_host->graph_rng(g) : NULL;
    if (training && st->module_dropout > 0.0f) {
        if (!rng) return NULL;
        if (!(loha_host->rng_uniform(rng) > (double)st->module_dropout)) return y;
    }

    const int need = PEFT_PU_WANTS_GRAD(loha_host, g, x, y, st->w1a, st->w1b, st->w2a, st->w2b);
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
        drop = peft_pu_rank_dropout_mask(loha_host, g, rng, outf, (double)st->rank_dropout);
        if (!drop) return NULL;
        const float *dp = peft_f32(drop);
        for (int64_t o = 0; o < outf; o++) {
            float *row = d + o * in;
            for (int64_t i = 0; i < in; i++) row[i] *= dp[o];
        }
    }

    /* out (N, out) = y + x (N, in) @ dW^T (in, out) */
    memcpy(out->data, y->data, (size_t)(n * outf) * sizeof(float));
    peft_pu_gemm(loha_host, 0, 1, n, outf, in, 1.0f, peft_f32(x), d, 1.0f, peft_f32(out));

    out->requires_grad = need ? 1 : 0;
    if (need) {
        loha_bwd_ctx *c = loha_host->tape_push(g, loha_backward, sizeof *c);
        if (!c) return NULL;
        *c = (loha_bwd_ctx){.x = x, .y = y, .out = out, .p1 = p1, .p2 = p2, .dw = dw,
                            .drop = drop, .w1a = st->w1a, .w1b = st->w1b, .w2a = st->w2a,
                            .w2b = st->w2b, .n = n, .in = in, .outf = outf, .r = st->r, .s = s};
    }
    return out;
}
