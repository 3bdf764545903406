/* lora_embedding.c — LoRA on an embedding site (PEFT 0.13.2 lora.Embedding): the parameters
 * lora_embedding_A (r, num_embeddings) and lora_embedding_B (dim, r) with PEFT's init (A zeros,
 * B ~ N(0, 1); both N(0, 1) with init_lora_weights false), the forward kernel
 *     out = y + s * F.embedding(ids, A^T) @ B^T
 * and with use_dora (PEFT's DoraEmbeddingLayer; lora_magnitude_vector m (dim) initialised by
 * lora_dora.c to n below)
 *     out = f * y + (f * F.embedding(ids, A^T) @ B^T) * s,  f = m / n,  n = ||W^T + s B A||_row
 * (n detached, as PEFT), with their backward on the host's tape. Merge: W (V, dim) += s (B A)^T;
 * with DoRA lora_dora.c's W' = f * (W + s (B A)^T) per column (PEFT 0.13.2's Embedding.merge
 * drops the magnitude: a departure, README). No dropout (PEFT's Embedding.forward applies none). */
#include <math.h>
#include <string.h>

#include "lora.h"

int lora_embedding_init(lora_state *st, const lora_config *c, const peft_site_info *site,
                        const char *adapter_name, peft_rng *rng, char *err, size_t errlen)
{
    const char *name = peft_pu_site_name(site);
    st->embedding = 1;
    st->dropout = 0.0f; /* PEFT's Embedding.forward uses no dropout */
    st->A = peft_pu_param2(lora_host, st->r, site->in_features);
    st->B = peft_pu_param2(lora_host, site->out_features, st->r);
    if (!st->A || !st->B ||
        peft_pu_param_names(lora_host, "lora_embedding_A", "", adapter_name, &st->saved_A,
                            &st->memory_A) ||
        peft_pu_param_names(lora_host, "lora_embedding_B", "", adapter_name, &st->saved_B,
                            &st->memory_B)) {
        peft_pu_errf(err, errlen, "lora: out of memory injecting into '%s'", name);
        return -1;
    }
    /* update_layer: torch.randn for both; then, unless init_lora_weights is false,
     * reset_lora_parameters: A zeros, B normal (every other init value, pissa and olora
     * included, takes this branch for an embedding in PEFT 0.13.2) */
    if (c->init == LORA_INIT_NONE) peft_pu_fill_normal(lora_host, st->A, 1.0, rng);
    peft_pu_fill_normal(lora_host, st->B, 1.0, rng);
    return 0;
}

typedef struct emb_bwd_ctx {
    const int32_t *ids; /* (N) token ids */
    peft_tensor *xa;    /* (N, r) = A^T[ids] */
    peft_tensor *y;     /* (N, out) the output before this adapter */
    peft_tensor *out;   /* (N, out) the output after it */
    peft_tensor *A;     /* (r, V) */
    peft_tensor *B;     /* (out, r) */
    /* DoRA only (NULL otherwise) */
    peft_tensor *m;     /* (out) the magnitude */
    const float *f;     /* (out) m / norm */
    const float *norm;  /* (out) ||W^T + s B A||_row, detached */
    const float *lora;  /* (N, out) xa @ B^T, unscaled */
    int64_t n, V, outf, r;
    float s;
} emb_bwd_ctx;

/* dy = out->grad (N, out); f = m / norm (DoRA), else f = 1 and no magnitude
 * dy_prev (N, out) += f * dy
 * dm (out)         += sum_N dy * (y + s * lora) / norm
 * g (N, out)        = s * f * dy
 * dB (out, r)      += g^T (out, N) @ xa (N, r)
 * dxa (N, r)        = g (N, out) @ B (out, r)
 * dA[j, ids[i]]    += dxa[i, j]                       (the ids get no gradient) */
static void emb_backward(peft_graph *g, void *vctx)
{
    const emb_bwd_ctx *c = vctx;
    const float *dy = c->out->grad;
    if (!dy) return;
    const peft_host_api *H = lora_host;
    const int64_t n = c->n, outf = c->outf, total = n * outf;
    const float *gy = dy; /* s * g: the gradient of the scaled lora term, before s */
    if (c->f) {
        const int64_t shape_y[2] = {n, outf};
        peft_tensor *gt = H->graph_tensor(g, 2, shape_y);
        if (!gt) return;
        float *gf = peft_f32(gt);
        for (int64_t i = 0; i < n; i++)
            for (int64_t o = 0; o < outf; o++) gf[i * outf + o] = c->f[o] * dy[i * outf + o];
        peft_pu_grad_add(H, g, c->y, gf, total);
        gy = gf;
        float *dm = c->m->requires_grad ? H->grad_of(g, c->m) : NULL;
        if (dm) {
            const float *yp = peft_f32(c->y);
            for (int64_t o = 0; o < outf; o++) {
                double acc = 0.0;
                for (int64_t i = 0; i < n; i++) {
                    const int64_t k = i * outf + o;
                    acc += (double)dy[k] * ((double)yp[k] + (double)c->s * c->lora[k]);
                }
                dm[o] += (float)(acc / c->norm[o]);
            }
        }
    } else {
        peft_pu_grad_add(H, g, c->y, dy, total);
    }
    float *dB = c->B->requires_grad ? H->grad_of(g, c->B) : NULL;
    if (dB) peft_pu_gemm(H, 1, 0, outf, c->r, n, c->s, gy, peft_f32(c->xa), 1.0f, dB);
    float *dA = c->A->requires_grad ? H->grad_of(g, c->A) : NULL;
    if (!dA) return;
    const int64_t shape_xa[2] = {n, c->r};
    peft_tensor *dxa_t = H->graph_tensor(g, 2, shape_xa);
    if (!dxa_t) return;
    float *dxa = peft_f32(dxa_t);
    peft_pu_gemm(H, 0, 0, n, c->r, outf, c->s, gy, peft_f32(c->B), 0.0f, dxa);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < c->r; j++) dA[j * c->V + c->ids[i]] += dxa[i * c->r + j];
}

/* DoRA's f (out) = m / ||W^T + s B A||_row into the arena (norm too); NULL on arena OOM */
static float *dora_scale(lora_state *st, peft_graph *g, const peft_site_info *site, float s,
                         float **norm_out)
{
    const int64_t V = st->in_features, outf = st->out_features;
    const int64_t shape_w[2] = {outf, V}, shape_o[1] = {outf};
    peft_tensor *wbuf = site->weight->dtype == PEFT_DTYPE_F32
                            ? NULL
                            : lora_host->graph_tensor(g, 2, shape_w);
    peft_tensor *scratch = lora_host->graph_tensor(g, 2, shape_w);
    peft_tensor *norm = lora_host->graph_tensor(g, 1, shape_o);
    peft_tensor *f = lora_host->graph_tensor(g, 1, shape_o);
    if ((site->weight->dtype != PEFT_DTYPE_F32 && !wbuf) || !scratch || !norm || !f) return NULL;
    const float *w = lora_dora_weight_view(site, wbuf ? peft_f32(wbuf) : NULL);
    lora_dora_norm(st, w, 1, s, peft_f32(scratch), peft_f32(norm));
    const float *m = peft_f32(st->magnitude), *nv = peft_f32(norm);
    float *fv = peft_f32(f);
    for (int64_t o = 0; o < outf; o++) fv[o] = m[o] / nv[o];
    *norm_out = peft_f32(norm);
    return fv;
}

/* ids (N...) I32, y (N..., out) -> y + s * L, L = xa (N, r) @ B^T (r, out), xa[i, j] =
 * A[j, ids[i]]; with DoRA (PEFT's DoraEmbeddingLayer) f * y + (f * L) * s, f = m / norm */
peft_tensor *lora_embedding_forward(lora_state *st, peft_graph *g, const peft_site_info *site,
                                    peft_tensor *ids, peft_tensor *y)
{
    if (!ids || !y || ids->dtype != PEFT_DTYPE_I32 || y->dtype != PEFT_DTYPE_F32) return NULL;
    const int64_t n = ids->numel, V = st->in_features, outf = st->out_features, r = st->r;
    if (y->numel != n * outf) return NULL;
    if (st->magnitude && (!site || !site->weight || site->weight->numel != V * outf)) return NULL;
    const int32_t *id = ids->data;
    for (int64_t i = 0; i < n; i++)
        if (id[i] < 0 || id[i] >= V) return NULL;
    const int64_t shape_xa[2] = {n, r}, shape_y[2] = {n, outf};
    peft_tensor *xa = lora_host->graph_tensor(g, 2, shape_xa);
    peft_tensor *out = lora_host->graph_tensor(g, y->ndim, y->shape);
    if (!xa || !out) return NULL;
    const float *A = peft_f32(st->A);
    float *xd = peft_f32(xa);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < r; j++) xd[i * r + j] = A[j * V + id[i]];
    const float s = (float)(st->scaling * st->mult);
    float *f = NULL, *norm = NULL, *lora = NULL;
    if (st->magnitude) {
        peft_tensor *lt = lora_host->graph_tensor(g, 2, shape_y);
        if (!lt || !(f = dora_scale(st, g, site, s, &norm))) return NULL;
        lora = peft_f32(lt);
        /* lora (N, out) = xa @ B^T;  out = f * y + (f * lora) * s, PEFT's order */
        peft_pu_gemm(lora_host, 0, 1, n, outf, r, 1.0f, xd, peft_f32(st->B), 0.0f, lora);
        const float *yp = peft_f32(y);
        float *op = peft_f32(out);
        for (int64_t i = 0; i < n; i++)
            for (int64_t o = 0; o < outf; o++) {
                const int64_t k = i * outf + o;
                op[k] = f[o] * yp[k] + (f[o] * lora[k]) * s;
            }
    } else {
        memcpy(out->data, y->data, (size_t)(n * outf) * sizeof(float));
        peft_pu_gemm(lora_host, 0, 1, n, outf, r, s, xd, peft_f32(st->B), 1.0f, peft_f32(out));
    }
    out->requires_grad = st->magnitude
                             ? PEFT_PU_WANTS_GRAD(lora_host, g, y, y, st->A, st->B, st->magnitude)
                             : PEFT_PU_WANTS_GRAD(lora_host, g, y, y, st->A, st->B);
    if (out->requires_grad) {
        int32_t *idc = NULL;
        const int64_t shape_ids[1] = {n};
        peft_tensor *ids_copy = lora_host->graph_tensor(g, 1, shape_ids); /* 4-byte slots */
        emb_bwd_ctx *c = ids_copy ? lora_host->tape_push(g, emb_backward, sizeof *c) : NULL;
        if (!c) return NULL;
        idc = ids_copy->data;
        memcpy(idc, id, (size_t)n * sizeof *idc);
        *c = (emb_bwd_ctx){.ids = idc, .xa = xa, .y = y, .out = out, .A = st->A, .B = st->B,
                           .m = st->magnitude, .f = f, .norm = norm, .lora = lora, .n = n,
                           .V = V, .outf = outf, .r = r, .s = s};
    }
    return out;
}
