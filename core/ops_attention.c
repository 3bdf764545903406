/* ops_attention.c — multi-head scaled dot-product attention (causal offset, key padding mask)
 * and its backward. Per (batch, head), QK^T and PV go through cblas_sgemm directly on the
 * strided head slices (lda = H*D); the softmax probabilities are kept for the backward. */
#include "ops.h"

#include <cblas.h>
#include <math.h>
#include <string.h>

typedef struct {
    peft_tensor *q, *k, *v, *out;
    const float *P; /* (B, H, T, S) softmax probabilities, 0 where masked */
    int64_t B, T, S, H, D;
    float scale;
} attn_ctx;

// dout (B,T,H*D); q (B,T,H*D); k, v (B,S,H*D); P (B,H,T,S) -> dq, dk, dv (as needed)
static void attention_backward(peft_graph *g, void *p)
{
    attn_ctx *c = p;
    const float *dout = c->out->grad;
    if (!dout) return;
    const int T = (int)c->T, S = (int)c->S, D = (int)c->D, HD = (int)(c->H * c->D);
    float *dq = peft_grad_of(g, c->q);
    float *dk = peft_grad_of(g, c->k);
    float *dv = peft_grad_of(g, c->v);
    const float *q = peft_f32(c->q), *k = peft_f32(c->k), *v = peft_f32(c->v);
    float *dS = NULL;
    if (dq || dk) {
        dS = peft_arena_alloc(g->arena, (size_t)T * (size_t)S * sizeof(float));
        if (!dS) return;
    }
    for (int64_t b = 0; b < c->B; b++) {
        for (int64_t h = 0; h < c->H; h++) {
            const size_t qo = (size_t)(b * c->T * HD + h * D), ko = (size_t)(b * c->S * HD + h * D);
            const float *P = c->P + (size_t)((b * c->H + h) * c->T * c->S);
            const float *dO = dout + qo;
            /* dv (S,D) += P^T (S,T) dO (T,D) */
            if (dv)
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, S, D, T, 1.0f, P, S, dO,
                            HD, 1.0f, dv + ko, HD);
            if (!dS) continue;
            /* dP (T,S) = dO (T,D) V^T (D,S) */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, S, D, 1.0f, dO, HD, v + ko,
                        HD, 0.0f, dS, S);
            /* dS = P * (dP - sum_s P dP), per row */
            for (int t = 0; t < T; t++) {
                float *ds = dS + (size_t)t * S;
                const float *pr = P + (size_t)t * S;
                double dot = 0.0;
                for (int s = 0; s < S; s++) dot += (double)pr[s] * ds[s];
                const float dotf = (float)dot;
                for (int s = 0; s < S; s++) ds[s] = pr[s] * (ds[s] - dotf);
            }
            /* dq (T,D) += scale dS (T,S) K (S,D) */
            if (dq)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, D, S, c->scale, dS, S,
                            k + ko, HD, 1.0f, dq + qo, HD);
            /* dk (S,D) += scale dS^T (S,T) Q (T,D) */
            if (dk)
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, S, D, T, c->scale, dS, S,
                            q + qo, HD, 1.0f, dk + ko, HD);
        }
    }
}

// q (B,T,H*D), k (B,S,H*D), v (B,S,H*D), key_mask (B,S) or NULL -> out (B,T,H*D)
peft_tensor *op_attention(peft_graph *g, peft_tensor *q, peft_tensor *k, peft_tensor *v, int H,
                          int causal, const int32_t *key_mask)
{
    if (!q || !k || !v || H <= 0 || q->ndim != 3 || k->ndim != 3 || v->ndim != 3) return NULL;
    const int64_t B = q->shape[0], T = q->shape[1], HD = q->shape[2], S = k->shape[1];
    if (HD % H || k->shape[0] != B || v->shape[0] != B || v->shape[1] != S ||
        k->shape[2] != HD || v->shape[2] != HD)
        return NULL;
    const int64_t D = HD / H;
    const float scale = 1.0f / sqrtf((float)D);
    const int rec = g->recording && (q->requires_grad || k->requires_grad || v->requires_grad);
    peft_tensor *out = peft_graph_tensor_raw(g, PEFT_DTYPE_F32, 3, q->shape);
    /* probabilities: all (b,h) kept for the backward, else one (T,S) scratch reused */
    peft_tensor *Pt = rec ? peft_graph_tensor_raw(g, PEFT_DTYPE_F32, 4, (int64_t[]){B, H, T, S})
                          : peft_graph_tensor_raw(g, PEFT_DTYPE_F32, 2, (int64_t[]){T, S});
    if (!out || !Pt) return NULL;
    const float *qd = peft_f32(q), *kd = peft_f32(k), *vd = peft_f32(v);
    float *od = peft_f32(out), *Pall = peft_f32(Pt);
    const int64_t off = S - T; /* query t sees keys s <= t + off */

    for (int64_t b = 0; b < B; b++) {
        const int32_t *km = key_mask ? key_mask + b * S : NULL;
        for (int64_t h = 0; h < H; h++) {
            const size_t qo = (size_t)(b * T * HD + h * D), ko = (size_t)(b * S * HD + h * D);
            float *P = rec ? Pall + (size_t)((b * H + h) * T * S) : Pall;
            /* scores (T,S) = scale Q (T,D) K^T (D,S) */
            if (T > 0 && S > 0)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)S, (int)D,
                            scale, qd + qo, (int)HD, kd + ko, (int)HD, 0.0f, P, (int)S);
            /* masked softmax per query row */
            for (int64_t t = 0; t < T; t++) {
                float *pr = P + t * S;
                int64_t lim = causal ? t + off : S - 1; /* last visible key */
                if (lim > S - 1) lim = S - 1;
                float mx = -INFINITY;
                for (int64_t s = 0; s <= lim; s++)
                    if ((!km || km[s]) && pr[s] > mx) mx = pr[s];
                if (mx == -INFINITY) { /* no visible key: zeros */
                    memset(pr, 0, (size_t)S * sizeof(float));
                    continue;
                }
                float sum = 0.0f;
                for (int64_t s = 0; s < S; s++) {
                    if (s <= lim && (!km || km[s])) {
                        pr[s] = expf(pr[s] - mx);
                        sum += pr[s];
                    } else {
                        pr[s] = 0.0f;
                    }
                }
                const float inv = 1.0f / sum;
                for (int64_t s = 0; s <= lim; s++) pr[s] *= inv;
            }
            /* out (T,D) = P (T,S) V (S,D) */
            if (T > 0) {
                if (S > 0)
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)T, (int)D, (int)S,
                                1.0f, P, (int)S, vd + ko, (int)HD, 0.0f, od + qo, (int)HD);
                else
                    for (int64_t t = 0; t < T; t++) memset(od + qo + t * HD, 0, (size_t)D * 4);
            }
        }
    }

    out->requires_grad = rec;
    if (rec) {
        attn_ctx *c = peft_tape_push(g, attention_backward, sizeof *c);
        if (!c) return NULL;
        c->q = q; c->k = k; c->v = v; c->out = out; c->P = Pall;
        peft_tape_output(g, c->out);
        c->B = B; c->T = T; c->S = S; c->H = H; c->D = D; c->scale = scale;
    }
    return out;
}
