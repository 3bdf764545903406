/* lora_dora.c — DoRA (use_dora, PEFT 0.13.2 DoraLinearLayer + lora.Linear): the magnitude vector
 * m (out) = ||W + s B A||_row at init, the forward
 *
 *     out = y + (m/n - 1) * (xu W^T) + (m/n) * s * B(A(xu)),   n = ||W + s B A||_row (detached)
 *
 * (y = base_layer(x) with its bias; xu = dropout(x); the bias is outside the magnitude scaling)
 * with its backward on the host's tape, and merge W' = (m/n) (W + s B A) with its inverse.
 *
 * W is the site's current base weight in (out, in) orientation: GPT-2 Conv1D stores (in, out) and
 * is transposed, as PEFT's transpose(weight, fan_in_fan_out). The base weight is frozen (no dW).
 * An embedding site (PEFT's DoraEmbeddingLayer) shares the magnitude init and the merge, its table
 * (V, dim) read as (in, out); its forward is lora_embedding.c's. */
#include <math.h>
#include <string.h>

#include "lora.h"

/* the weight in the site's layout as float32: the tensor itself when f32, else converted into
 * buf (numel floats) */
const float *lora_dora_weight_view(const peft_site_info *site, float *buf)
{
    if (site->weight->dtype == PEFT_DTYPE_F32) return peft_f32(site->weight);
    lora_host->tensor_to_f32(site->weight, buf);
    return buf;
}

/* 1 when the site's weight is stored (in, out): Conv1D / fan_in_fan_out, and an embedding's
 * (num_embeddings, dim) table (PEFT's DoraEmbeddingLayer(fan_in_fan_out=True)) */
int lora_dora_in_out(const peft_site_info *site)
{
    return site->kind == PEFT_SITE_EMBEDDING || peft_pu_in_out(site);
}

/* norm (out) = ||W + s * (B @ A)||_row, W (out, in) or, in_out, stored (in, out);
 * B (out, r), A (r, in); scratch (out, in). PEFT's order: B @ A, times s, plus W. */
void lora_dora_norm(const lora_state *st, const float *w, int in_out, float s, float *scratch,
                    float *norm)
{
    const int outf = (int)st->out_features, in = (int)st->in_features, r = (int)st->r;
    /* scratch (out, in) = B (out, r) @ A (r, in) */
    peft_pu_gemm(lora_host, 0, 0, outf, in, r, 1.0f, peft_f32(st->B), peft_f32(st->A), 0.0f,
                 scratch);
    for (int o = 0; o < outf; o++) {
        double acc = 0.0;
        float *row = scratch + (size_t)o * in;
        for (int j = 0; j < in; j++) {
            const float wv = in_out ? w[(size_t)j * outf + o] : w[(size_t)o * in + j];
            const float v = wv + s * row[j];
            acc += (double)v * (double)v;
        }
        norm[o] = (float)sqrt(acc);
    }
}

int lora_dora_init(lora_state *st, const peft_site_info *site, const char *adapter_name,
                   char *err, size_t errlen)
{
    const char *name = site->name ? site->name : "?";
    const int64_t shape[1] = {st->out_features};
    const size_t nw = (size_t)st->out_features * (size_t)st->in_features;
    st->magnitude = peft_pu_param(lora_host, 1, shape);
    /* saved without ".weight" (as PEFT), in memory with it */
    st->saved_M = peft_pu_strdup(lora_host, "lora_magnitude_vector");
    st->memory_M = peft_pu_concat(lora_host, "lora_magnitude_vector.", adapter_name, ".weight");
    float *scratch = lora_host->alloc(nw * sizeof *scratch);
    float *buf = site->weight->dtype == PEFT_DTYPE_F32 ? NULL : lora_host->alloc(nw * sizeof *buf);
    if (!st->magnitude || !st->saved_M || !st->memory_M || !scratch ||
        (site->weight->dtype != PEFT_DTYPE_F32 && !buf)) {
        lora_host->free(scratch);
        lora_host->free(buf);
        peft_pu_errf(err, errlen, "lora: out of memory for the DoRA magnitude of '%s'", name);
        return -1;
    }
    lora_dora_norm(st, lora_dora_weight_view(site, buf), lora_dora_in_out(site),
                   (float)(st->scaling * st->mult), scratch, peft_f32(st->magnitude));
    lora_host->free(scratch);
    lora_host->free(buf);
    return 0;
}

/* ---- forward / backward ------------------------------------------------------------------- */

typedef struct dora_bwd_ctx {
    peft_tensor *x;     /* xu (N, in): the (dropped-out) input */
    peft_tensor *xa;    /* (N, r) = xu @ A^T */
    peft_tensor *base;  /* (N, out) = xu @ W^T (no bias) */
    peft_tensor *lora;  /* (N, out) = xa @ B^T (unscaled) */
    peft_tensor *norm;  /* (out) ||W + s B A||_row, detached */
    peft_tensor *f;     /* (out) m / norm */
    peft_tensor *y;     /* (N, out) the output before this adapter */
    peft_tensor *out;   /* (N, out) */
    peft_tensor *A, *B, *m;
    const float *w;     /* the weight (site layout) the forward used */
    int in_out;
    int64_t n, in, outf, r;
    float s;
} dora_bwd_ctx;

/* dy = out->grad (N, out); f = m/n; W (out, in) (stored (in, out) when in_out)
 * dy_prev (N, out)  += dy
 * dm (out)          += sum_N dy * (base + s * lora) / n
 * g (N, out)         = s * f * dy
 * dB (out, r)       += g^T (out, N) @ xa (N, r)
 * dxa (N, r)         = g (N, out) @ B (out, r)
 * dA (r, in)        += dxa^T (r, N) @ xu (N, in)
 * dxu (N, in)       += dxa (N, r) @ A (r, in) + ((f - 1) * dy) (N, out) @ W (out, in) */
static void dora_backward(peft_graph *g, void *vctx)
{
    const dora_bwd_ctx *c = vctx;
    const float *dy = c->out->grad;
    if (!dy) return;
    const int n = (int)c->n, in = (int)c->in, outf = (int)c->outf, r = (int)c->r;
    const int64_t total = c->n * c->outf;
    const float *f = peft_f32(c->f), *nrm = peft_f32(c->norm);

    peft_pu_grad_add(lora_host, g, c->y, dy, total);
    if (c->m->requires_grad) {
        float *dm = lora_host->grad_of(g, c->m);
        if (dm) {
            const float *bs = peft_f32(c->base), *lr = peft_f32(c->lora);
            for (int o = 0; o < outf; o++) {
                double acc = 0.0;
                for (int i = 0; i < n; i++) {
                    const size_t k = (size_t)i * outf + o;
                    acc += (double)dy[k] * ((double)bs[k] + (double)c->s * lr[k]);
                }
                dm[o] += (float)(acc / nrm[o]);
            }
        }
    }
    const int want_b = c->B->requires_grad, want_a = c->A->requires_grad,
              want_x = c->x->requires_grad;
    if (!want_b && !want_a && !want_x) return;
    const int64_t shape_y[2] = {c->n, c->outf}, shape_xa[2] = {c->n, c->r};
    peft_tensor *gt = lora_host->graph_tensor(g, 2, shape_y);
    peft_tensor *dxa_t = lora_host->graph_tensor(g, 2, shape_xa);
    if (!gt || !dxa_t) return;
    float *gl = peft_f32(gt), *dxa = peft_f32(dxa_t);
    for (int i = 0; i < n; i++)
        for (int o = 0; o < outf; o++) {
            const size_t k = (size_t)i * outf + o;
            gl[k] = c->s * f[o] * dy[k];
        }
    if (want_b) {
        float *dB = lora_host->grad_of(g, c->B);
        if (dB) peft_pu_gemm(lora_host, 1, 0, outf, r, n, 1.0f, gl, peft_f32(c->xa), 1.0f, dB);
    }
    if (!want_a && !want_x) return;
    peft_pu_gemm(lora_host, 0, 0, n, r, outf, 1.0f, gl, peft_f32(c->B), 0.0f, dxa);
    if (want_a) {
        float *dA = lora_host->grad_of(g, c->A);
        if (dA) peft_pu_gemm(lora_host, 1, 0, r, in, n, 1.0f, dxa, peft_f32(c->x), 1.0f, dA);
    }
    if (want_x) {
        float *dx = lora_host->grad_of(g, c->x);
        if (!dx) return;
        peft_pu_gemm(lora_host, 0, 0, n, in, r, 1.0f, dxa, peft_f32(c->A), 1.0f, dx);
        /* gl <- (f - 1) * dy, then dx += gl @ W (out, in) */
        for (int i = 0; i < n; i++)
            for (int o = 0; o < outf; o++) {
                const size_t k = (size_t)i * outf + o;
                gl[k] = (f[o] - 1.0f) * dy[k];
            }
        /* W stored (in, out) when in_out: gl (N, out) @ W^T (out, in) */
        peft_pu_gemm(lora_host, 0, c->in_out, n, in, outf, 1.0f, gl, c->w, 1.0f, dx);
    }
}

/* xu (N..., in), y (N..., out) -> out (N..., out); see the file comment. */
peft_tensor *lora_dora_forward(lora_state *st, peft_graph *g, const peft_site_info *site,
                               peft_tensor *xu, peft_tensor *y)
{
    if (!st->magnitude || !site || !site->weight) return NULL;
    const int64_t in = st->in_features, outf = st->out_features, r = st->r;
    if (site->weight->numel != in * outf) return NULL;
    const int64_t n = xu->numel / in;
    const int in_out = peft_pu_in_out(site);
    const float s = (float)(st->scaling * st->mult);

    const int64_t shape_w[2] = {outf, in}, shape_o[1] = {outf}, shape_xa[2] = {n, r},
                  shape_y[2] = {n, outf};
    peft_tensor *wbuf = site->weight->dtype == PEFT_DTYPE_F32
                            ? NULL
                            : lora_host->graph_tensor(g, 2, shape_w);
    peft_tensor *scratch = lora_host->graph_tensor(g, 2, shape_w);
    peft_tensor *norm = lora_host->graph_tensor(g, 1, shape_o);
    peft_tensor *f = lora_host->graph_tensor(g, 1, shape_o);
    peft_tensor *xa = lora_host->graph_tensor(g, 2, shape_xa);
    peft_tensor *base = lora_host->graph_tensor(g, 2, shape_y);
    peft_tensor *lora = lora_host->graph_tensor(g, 2, shape_y);
    peft_tensor *out = lora_host->graph_tensor(g, y->ndim, y->shape);
    if ((site->weight->dtype != PEFT_DTYPE_F32 && !wbuf) || !scratch || !norm || !f || !xa ||
        !base || !lora || !out)
        return NULL;
    const float *w = lora_dora_weight_view(site, wbuf ? peft_f32(wbuf) : NULL);

    /* norm (out) = ||W + s B A||_row (detached); f = m / norm */
    lora_dora_norm(st, w, in_out, s, peft_f32(scratch), peft_f32(norm));
    const float *m = peft_f32(st->magnitude), *nv = peft_f32(norm);
    float *fv = peft_f32(f);
    for (int64_t o = 0; o < outf; o++) fv[o] = m[o] / nv[o];

    const float *xp = peft_f32(xu);
    /* base (N, out) = xu (N, in) @ W^T */
    peft_pu_gemm(lora_host, 0, !in_out, n, outf, in, 1.0f, xp, w, 0.0f, peft_f32(base));
    /* xa (N, r) = xu @ A^T;  lora (N, out) = xa @ B^T */
    peft_pu_gemm(lora_host, 0, 1, n, r, in, 1.0f, xp, peft_f32(st->A), 0.0f, peft_f32(xa));
    peft_pu_gemm(lora_host, 0, 1, n, outf, r, 1.0f, peft_f32(xa), peft_f32(st->B), 0.0f,
                 peft_f32(lora));
    /* out = y + ((f - 1) * base + (f * lora) * s), PEFT's evaluation order */
    const float *yp = peft_f32(y), *bp = peft_f32(base), *lp = peft_f32(lora);
    float *op = peft_f32(out);
    for (int64_t i = 0; i < n; i++)
        for (int64_t o = 0; o < outf; o++) {
            const int64_t k = i * outf + o;
            op[k] = yp[k] + ((fv[o] - 1.0f) * bp[k] + (fv[o] * lp[k]) * s);
        }

    out->requires_grad = PEFT_PU_WANTS_GRAD(lora_host, g, xu, y, st->A, st->B, st->magnitude);
    if (out->requires_grad) {
        dora_bwd_ctx *c = lora_host->tape_push(g, dora_backward, sizeof *c);
        if (!c) return NULL;
        *c = (dora_bwd_ctx){.x = xu, .xa = xa, .base = base, .lora = lora, .norm = norm, .f = f,
                            .y = y, .out = out, .A = st->A, .B = st->B, .m = st->magnitude,
                            .w = w, .in_out = in_out, .n = n, .in = in, .outf = outf, .r = r,
                            .s = s};
    }
    return out;
}

/* ---- merge -------------------------------------------------------------------------------- */

/* sign +1: n = ||W + s B A||_row (cached), W <- (m/n) * (W + s B A)
 * sign -1: W <- W / (m/n) - s B A with the cached n (PEFT's unmerge)
 * weight (out, in), or (in, out) for Conv1D, where the factor scales columns. */
int lora_dora_merge(lora_state *st, const peft_site_info *site, float *weight, int sign,
                    char *err, size_t errlen)
{
    const char *name = site->name ? site->name : "?";
    const int outf = (int)st->out_features, in = (int)st->in_features, r = (int)st->r;
    const int in_out = lora_dora_in_out(site);
    double sd = st->scaling * st->mult;
    if (sign < 0 && st->merged) sd = st->merged_scale;
    const float s = (float)sd;
    if (sign < 0 && !st->merged_norm) {
        peft_pu_errf(err, errlen, "lora merge: DoRA adapter on '%s' is not merged", name);
        return -1;
    }
    float *delta = lora_host->alloc((size_t)outf * (size_t)in * sizeof *delta);
    if (!delta) {
        peft_pu_errf(err, errlen, "lora merge: out of memory merging DoRA into '%s'", name);
        return -1;
    }
    if (sign > 0) {
        if (!st->merged_norm) st->merged_norm = lora_host->alloc((size_t)outf * sizeof(float));
        if (!st->merged_norm) {
            lora_host->free(delta);
            peft_pu_errf(err, errlen, "lora merge: out of memory merging DoRA into '%s'", name);
            return -1;
        }
        lora_dora_norm(st, weight, in_out, s, delta, st->merged_norm);
    }
    /* delta (out, in) = (B @ A) * s, PEFT's get_delta_weight */
    peft_pu_gemm(lora_host, 0, 0, outf, in, r, 1.0f, peft_f32(st->B), peft_f32(st->A), 0.0f,
                 delta);
    const float *m = peft_f32(st->magnitude), *nv = st->merged_norm;
    for (int o = 0; o < outf; o++) {
        const float fo = m[o] / nv[o];
        for (int j = 0; j < in; j++) {
            float *wp = in_out ? &weight[(size_t)j * outf + o] : &weight[(size_t)o * in + j];
            const float d = delta[(size_t)o * in + j] * s;
            *wp = sign > 0 ? fo * (*wp + d) : *wp / fo - d;
        }
    }
    lora_host->free(delta);
    if (sign < 0) {
        lora_host->free(st->merged_norm);
        st->merged_norm = NULL;
    }
    return 0;
}
