/* lora_embedding.c — LoRA on an embedding site (PEFT 0.13.2 lora.Embedding): the parameters
 * lora_embedding_A (r, num_embeddings) and lora_embedding_B (dim, r) with PEFT's init (A zeros,
 * B ~ N(0, 1); both N(0, 1) with init_lora_weights false), the forward kernel
 *     out = y + s * F.embedding(ids, A^T) @ B^T
 * with its backward on the host's tape, and the merge W (V, dim) += s * (B A)^T. No dropout
 * (PEFT's Embedding.forward applies none). */
#include <math.h>
#include <string.h>

#include "lora.h"

int lora_embedding_init(lora_state *st, const lora_config *c, const peft_site_info *site,
                        const char *adapter_name, peft_rng *rng, char *err, size_t errlen)
{
    const char *name = peft_pu_site_name(site);
    if (c->use_dora) {
        peft_pu_errf(err, errlen, "lora: use_dora on the embedding '%s' is not supported by "
                     "libpeft (DoRA works on linear and Conv1D layers)", name);
        return -1;
    }
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
    int64_t n, V, outf, r;
    float s;
} emb_bwd_ctx;

/* dy = out->grad (N, out)
 * dy_prev (N, out) += dy
 * dB (out, r)      += s * dy^T (out, N) @ xa (N, r)
 * dxa (N, r)        = s * dy (N, out) @ B (out, r)
 * dA[j, ids[i]]    += dxa[i, j]                       (the ids get no gradient) */
static void emb_backward(peft_graph *g, void *vctx)
{
    const emb_bwd_ctx *c = vctx;
    const float *dy = c->out->grad;
    if (!dy) return;
    const peft_host_api *H = lora_host;
    peft_pu_grad_add(H, g, c->y, dy, c->n * c->outf);
    float *dB = c->B->requires_grad ? H->grad_of(g, c->B) : NULL;
    if (dB) peft_pu_gemm(H, 1, 0, c->outf, c->r, c->n, c->s, dy, peft_f32(c->xa), 1.0f, dB);
    float *dA = c->A->requires_grad ? H->grad_of(g, c->A) : NULL;
    if (!dA) return;
    const int64_t shape_xa[2] = {c->n, c->r};
    peft_tensor *dxa_t = H->graph_tensor(g, 2, shape_xa);
    if (!dxa_t) return;
    float *dxa = peft_f32(dxa_t);
    peft_pu_gemm(H, 0, 0, c->n, c->r, c->outf, c->s, dy, peft_f32(c->B), 0.0f, dxa);
    for (int64_t i = 0; i < c->n; i++)
        for (int64_t j = 0; j < c->r; j++) dA[j * c->V + c->ids[i]] += dxa[i * c->r + j];
}

/* ids (N...) I32, y (N..., out) -> y + s * xa (N, r) @ B^T (r, out), xa[i, j] = A[j, ids[i]] */
peft_tensor *lora_embedding_forward(lora_state *st, peft_graph *g, peft_tensor *ids,
                                    peft_tensor *y)
{
    if (!ids || !y || ids->dtype != PEFT_DTYPE_I32 || y->dtype != PEFT_DTYPE_F32) return NULL;
    const int64_t n = ids->numel, V = st->in_features, outf = st->out_features, r = st->r;
    if (y->numel != n * outf) return NULL;
    const int32_t *id = ids->data;
    for (int64_t i = 0; i < n; i++)
        if (id[i] < 0 || id[i] >= V) return NULL;
    const int64_t shape_xa[2] = {n, r};
    peft_tensor *xa = lora_host->graph_tensor(g, 2, shape_xa);
    peft_tensor *out = lora_host->graph_tensor(g, y->ndim, y->shape);
    if (!xa || !out) return NULL;
    const float *A = peft_f32(st->A);
    float *xd = peft_f32(xa);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = 0; j < r; j++) xd[i * r + j] = A[j * V + id[i]];
    const float s = (float)(st->scaling * st->mult);
    memcpy(out->data, y->data, (size_t)(n * outf) * sizeof(float));
    peft_pu_gemm(lora_host, 0, 1, n, outf, r, s, xd, peft_f32(st->B), 1.0f, peft_f32(out));
    out->requires_grad = PEFT_PU_WANTS_GRAD(lora_host, g, y, y, st->A, st->B);
    if (out->requires_grad) {
        int32_t *idc = NULL;
        const int64_t shape_ids[1] = {n};
        peft_tensor *ids_copy = lora_host->graph_tensor(g, 1, shape_ids); /* 4-byte slots */
        emb_bwd_ctx *c = ids_copy ? lora_host->tape_push(g, emb_backward, sizeof *c) : NULL;
        if (!c) return NULL;
        idc = ids_copy->data;
        memcpy(idc, id, (size_t)n * sizeof *idc);
        *c = (emb_bwd_ctx){.ids = idc, .xa = xa, .y = y, .out = out, .A = st->A, .B = st->B,
                           .n = n, .V = V, .outf = outf, .r = r, .s = s};
    }
    return out;
}
