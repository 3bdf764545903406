/* ap_attn.c — the gated prompt attention of PEFT 0.13.2's AdaptedAttention.forward and its
 * backward on the host's tape. Per row n = (b, t), query head h, kv head j = h / (H / Hkv):
 *
 *   s_l   = q[n,h,:] . kp[l,j,:] / sqrt(D)           (B,T,H,L)  no mask: all L prompt tokens
 *   p     = softmax_l(s)                             (float32, as PEFT's upcast)
 *   a[n,h,:] = sum_l (gate * p_l) vp[l,j,:]          (B,T,H*D)
 *
 * backward, dA (B,T,H*D) the output's gradient:
 *   e_l = dA[n,h,:] . vp[l,j,:];  dgate += sum_l e_l p_l;  dvp[l,j,:] += gate p_l dA[n,h,:]
 *   dp_l = gate e_l;  ds_l = p_l (dp_l - sum_k p_k dp_k)
 *   dq[n,h,:] += sum_l ds_l kp[l,j,:] / sqrt(D);  dkp[l,j,:] += ds_l q[n,h,:] / sqrt(D)      */
#include <math.h>
#include <string.h>

#include "adaption_prompt.h"

typedef struct ap_bwd_ctx {
    peft_tensor *q, *kp, *vp, *gate, *out;
    peft_tensor *p; /* (N, H, L) the softmax */
    int64_t N;
    int H, Hkv, D, L;
} ap_bwd_ctx;

static void ap_backward(peft_graph *g, void *vctx)
{
    const ap_bwd_ctx *c = vctx;
    const float *dA = c->out->grad;
    if (!dA) return;
    const peft_host_api *X = ap_host;
    const int H = c->H, D = c->D, L = c->L, rep = c->H / c->Hkv;
    const int64_t QW = (int64_t)H * D, KW = (int64_t)c->Hkv * D;
    const float *q = peft_f32(c->q), *kp = peft_f32(c->kp), *vp = peft_f32(c->vp);
    const float *P = peft_f32(c->p);
    const float gate = peft_f32(c->gate)[0], sc = 1.0f / sqrtf((float)D);
    float *dq = c->q->requires_grad ? X->grad_of(g, c->q) : NULL;
    float *dkp = c->kp->requires_grad ? X->grad_of(g, c->kp) : NULL;
    float *dvp = c->vp->requires_grad ? X->grad_of(g, c->vp) : NULL;
    float *dg = c->gate->requires_grad ? X->grad_of(g, c->gate) : NULL;
    double dgate = 0.0;
    peft_tensor *scratch = X->graph_tensor(g, 1, (int64_t[]){2 * (int64_t)L});
    if (!scratch) return;
    float *e = peft_f32(scratch), *ds = e + L;
    for (int64_t n = 0; n < c->N; n++)
        for (int h = 0; h < H; h++) {
            const int j = h / rep;
            const float *da = dA + n * QW + (int64_t)h * D, *qh = q + n * QW + (int64_t)h * D;
            const float *p = P + (n * H + h) * L;
            double dot = 0.0;
            for (int l = 0; l < L; l++) {
                const float *v = vp + l * KW + (int64_t)j * D;
                float s = 0.0f;
                for (int d = 0; d < D; d++) s += da[d] * v[d];
                e[l] = s;
                dgate += (double)s * p[l];
                dot += (double)p[l] * gate * s;
                if (dvp) {
                    float *dv = dvp + l * KW + (int64_t)j * D;
                    const float w = gate * p[l];
                    for (int d = 0; d < D; d++) dv[d] += w * da[d];
                }
            }
            for (int l = 0; l < L; l++) ds[l] = p[l] * (gate * e[l] - (float)dot) * sc;
            for (int l = 0; l < L; l++) {
                const float *k = kp + l * KW + (int64_t)j * D;
                if (dq) {
                    float *dqh = dq + n * QW + (int64_t)h * D;
                    for (int d = 0; d < D; d++) dqh[d] += ds[l] * k[d];
                }
                if (dkp) {
                    float *dk = dkp + l * KW + (int64_t)j * D;
                    for (int d = 0; d < D; d++) dk[d] += ds[l] * qh[d];
                }
            }
        }
    if (dg) dg[0] += (float)dgate;
}

peft_tensor *ap_prompt_attention(peft_graph *g, peft_tensor *q, peft_tensor *kp, peft_tensor *vp,
                                 peft_tensor *gate, int H, int Hkv, int D)
{
    if (!q || !kp || !vp || !gate || H <= 0 || Hkv <= 0 || D <= 0 || H % Hkv) return NULL;
    const int64_t QW = (int64_t)H * D, KW = (int64_t)Hkv * D;
    if (q->ndim < 1 || q->shape[q->ndim - 1] != QW || kp->numel % KW || kp->numel != vp->numel ||
        gate->numel != 1)
        return NULL;
    const int L = (int)(kp->numel / KW), rep = H / Hkv;
    const int64_t N = q->numel / QW;
    peft_tensor *out = ap_host->graph_tensor(g, q->ndim, q->shape);
    peft_tensor *pt = ap_host->graph_tensor(g, 3, (int64_t[]){N ? N : 1, H, L});
    if (!out || !pt) return NULL;
    const float *qd = peft_f32(q), *k = peft_f32(kp), *v = peft_f32(vp);
    const float gv = peft_f32(gate)[0], sd = sqrtf((float)D);
    float *o = peft_f32(out), *P = peft_f32(pt);
    for (int64_t n = 0; n < N; n++)
        for (int h = 0; h < H; h++) {
            const int j = h / rep;
            const float *qh = qd + n * QW + (int64_t)h * D;
            float *p = P + (n * H + h) * L, mx = -INFINITY;
            for (int l = 0; l < L; l++) {
                const float *kl = k + l * KW + (int64_t)j * D;
                float s = 0.0f;
                for (int d = 0; d < D; d++) s += qh[d] * kl[d];
                p[l] = s / sd; /* PEFT: matmul(q, k^T) / sqrt(head_dim) */
                if (p[l] > mx) mx = p[l];
            }
            float sum = 0.0f;
            for (int l = 0; l < L; l++) sum += (p[l] = expf(p[l] - mx));
            for (int l = 0; l < L; l++) p[l] /= sum;
            float *oh = o + n * QW + (int64_t)h * D;
            for (int l = 0; l < L; l++) {
                const float w = gv * p[l], *vl = v + l * KW + (int64_t)j * D;
                for (int d = 0; d < D; d++) oh[d] += w * vl[d];
            }
        }
    const int need = PEFT_PU_WANTS_GRAD(ap_host, g, q, kp, vp, gate);
    out->requires_grad = need ? 1 : 0;
    if (need) {
        ap_bwd_ctx *c = ap_host->tape_push(g, ap_backward, sizeof *c);
        if (!c) return NULL;
        *c = (ap_bwd_ctx){.q = q, .kp = kp, .vp = vp, .gate = gate, .out = out, .p = pt, .N = N,
                          .H = H, .Hkv = Hkv, .D = D, .L = L};
    }
    return out;
}
