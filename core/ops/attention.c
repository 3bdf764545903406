/* ops_attention.c — scaled dot-product attention with grouped-query heads, any scale, an
 * additive score bias (T5's relative positions), causal offset, a sliding window (Mistral,
 * Gemma2), tanh soft-capping of the scores (Gemma2) and key padding mask, and its
 * backward. Per (batch, head), QK^T and PV go through ops_sgemm directly on the strided head
 * slices (lda = H*D for q, Hkv*D for k and v); the softmax rows (and their backward) of a group of
 * heads run in the pool's threads between those GEMMs. The probabilities are kept for the
 * backward when recording and they are small (op_attention_set_keep_limit), else a scratch of
 * one group (~1M floats, at least one head) is reused (inference memory) and the backward
 * recomputes them group by group with the same code (bit-identical). op_attention (GPT-2) is
 * op_attention_ex with Hkv = H, scale 1/sqrt(D) and no bias. op_attention_packed reads q, k and
 * v in place from one fused projection's output (GPT-2's c_attn): the GEMMs take its row
 * stride, so no slice is copied out and the gradients land in the fused tensor's. */
#include "core/ops/ops.h"
#include "core/ops/pool.h"
#include "core/ops/vmath.h"

#include <cblas.h>
#include "core/ops/gemm.h"
#include <math.h>
#include <string.h>

/* Probabilities kept for the backward up to this many bytes per call; above it the backward
 * recomputes each group of heads with the forward's own code (bit-identical, one QK^T GEMM more
 * per head): a Llama-3.2-1B layer at T = 512 would keep 32 MB, 512 MB over the model. */
static int64_t attn_keep_p_bytes = (int64_t)8 << 20;

int64_t op_attention_set_keep_limit(int64_t bytes)
{
    const int64_t old = attn_keep_p_bytes;
    attn_keep_p_bytes = bytes;
    return old;
}

/* heads a group holds when P is not kept whole: ~1M floats of (T, S) blocks, at least one */
#define ATTN_GROUP_FLOATS ((int64_t)1 << 20)

typedef struct {
    peft_tensor *q, *k, *v, *bias, *out; /* q, k, v: one tensor when packed (op_attention_packed) */
    const float *P; /* (B, H, T, S) softmax probabilities, 0 where masked; NULL: recompute */
    const int32_t *key_mask; /* (B, S) or NULL; a copy in the graph's arena when recomputing */
    int64_t B, T, S, H, Hkv, D;
    /* where q, k and v sit in their tensors: row strides (H*D for q, Hkv*D for k and v when
     * separate; (H + 2 Hkv) D for all three when packed) and column offsets of each */
    int64_t ldq, ldk, q0, k0, v0;
    int64_t window; /* > 0: a query sees only the last `window` keys (Mistral, Gemma2) */
    float scale;
    float softcap;  /* > 0: the scores were cap * tanh(scale q.k / cap) */
    int transient_out; /* the output's data in the graph's transient buffer (peft_attn_opts) */
    int causal;
} attn_ctx;

/* the heads of a group at a time: ng (T, S) blocks for heads bh0 .. bh0 + ng - 1 (batch bh / H,
 * head bh % H) */
static int64_t attn_group_heads(int64_t BH, int64_t T, int64_t S)
{
    int64_t gh = T * S > 0 ? ATTN_GROUP_FLOATS / (T * S) : BH;
    if (gh < 1) gh = 1;
    return gh > BH ? BH : gh;
}

/* the softmax rows of a group of heads: row r of the group is query t = r % T of head
 * bh = bh0 + r / T; the scores in P (group, T, S) become the masked probabilities in place.
 * Each row depends on its own scores only (any thread count gives the same bytes). */
typedef struct {
    const attn_ctx *c;
    float *P;
    int64_t bh0;
} attn_row_job;

static void attn_softmax_rows(void *p, int64_t lo, int64_t hi)
{
    const attn_row_job *j = p;
    const attn_ctx *c = j->c;
    const int64_t T = c->T, S = c->S, off = S - T; /* query t sees keys s <= t + off */
    const float softcap = c->softcap;
    for (int64_t r = lo; r < hi; r++) {
        const int64_t bh = j->bh0 + r / T, t = r % T, b = bh / c->H, h = bh % c->H;
        const int32_t *km = c->key_mask ? c->key_mask + b * S : NULL;
        float *pr = j->P + r * S;
        int64_t lim = c->causal ? t + off : S - 1; /* last visible key */
        if (lim > S - 1) lim = S - 1;
        /* first visible key: the window keeps keys s > t + off - window (HF's cache
         * positions: the query sits at t + off) */
        int64_t lo_k = c->window ? t + off - c->window + 1 : 0;
        if (lo_k < 0) lo_k = 0;
        if (softcap > 0.0f)
            for (int64_t s = lo_k; s <= lim; s++) pr[s] = tanhf(pr[s] / softcap) * softcap;
        if (c->bias) {
            const float *br = peft_f32(c->bias) + (size_t)((h * T + t) * S);
            for (int64_t s = lo_k; s <= lim; s++) pr[s] += br[s];
        }
        if (lim < lo_k) { /* no visible key: zeros */
            memset(pr, 0, (size_t)S * sizeof(float));
            continue;
        }
        float sum = 0.0f;
        if (!km) {
            /* keys lo..lim, one vectorised pass: a NaN score is skipped by the max but
             * turns its exp, the sum and so the whole row NaN, as PyTorch's softmax */
            const float mx = vm_max(pr + lo_k, lim - lo_k + 1);
            memset(pr, 0, (size_t)lo_k * sizeof(float));
            memset(pr + lim + 1, 0, (size_t)(S - lim - 1) * sizeof(float));
            sum = vm_exp_sub_sum(pr + lo_k, mx, pr + lo_k, lim - lo_k + 1);
        } else {
            /* the row maximum over visible keys; a NaN score makes it NaN (as
             * torch.max), so the whole row turns NaN, never "no key" */
            float mx = -INFINITY;
            int visible = 0;
            for (int64_t s = lo_k; s <= lim; s++)
                if (km[s]) {
                    visible = 1;
                    if (pr[s] > mx || isnan(pr[s])) mx = isnan(mx) ? mx : pr[s];
                }
            if (!visible) {
                memset(pr, 0, (size_t)S * sizeof(float));
                continue;
            }
            for (int64_t s = 0; s < S; s++) {
                if (s >= lo_k && s <= lim && km[s]) {
                    pr[s] = vm_expf(pr[s] - mx);
                    sum += pr[s];
                } else {
                    pr[s] = 0.0f;
                }
            }
        }
        const float inv = 1.0f / sum;
        for (int64_t s = lo_k; s <= lim; s++) pr[s] *= inv;
    }
}

// q (B,T,H*D), k (B,S,Hkv*D), bias (H,T,S) or NULL, key_mask (B,S) or NULL
//   -> P (ng, T, S): the softmax probabilities of heads bh0 .. bh0 + ng - 1 (0 where masked or
//   no key is visible): the scores by GEMM per head, then every row in the pool's threads
static void attention_probs(const attn_ctx *c, int64_t bh0, int64_t ng, float *P)
{
    const int64_t T = c->T, S = c->S, D = c->D;
    for (int64_t i = 0; i < ng && T > 0 && S > 0; i++) {
        const int64_t b = (bh0 + i) / c->H, h = (bh0 + i) % c->H, kh = h / (c->H / c->Hkv);
        const size_t qo = (size_t)(b * T * c->ldq + h * D + c->q0);
        const size_t ko = (size_t)(b * S * c->ldk + kh * D + c->k0);
        /* scores (T,S) = scale Q (T,D) K^T (D,S) */
        ops_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)T, (int)S, (int)D, c->scale,
                    peft_f32(c->q) + qo, (int)c->ldq, peft_f32(c->k) + ko, (int)c->ldk, 0.0f,
                    P + (size_t)(i * T * S), (int)S);
    }
    attn_row_job rj = {c, P, bh0};
    ops_parallel(ng * T, OPS_ROW_GRAIN(S), attn_softmax_rows, &rj);
}

/* rows of a group of heads: dS (rows, S) = P * (dP - sum_s P dP), dP held in dS */
typedef struct { const float *P; float *dS; int64_t S; } attn_grad_job;

static void attn_grad_rows(void *p, int64_t lo, int64_t hi)
{
    const attn_grad_job *j = p;
    const int64_t S = j->S;
    for (int64_t r = lo; r < hi; r++) {
        float *ds = j->dS + r * S;
        const float *pr = j->P + r * S;
        double dot = 0.0;
        for (int64_t s = 0; s < S; s++) dot += (double)pr[s] * ds[s];
        const float dotf = (float)dot;
        for (int64_t s = 0; s < S; s++) ds[s] = pr[s] * (ds[s] - dotf);
    }
}

// dout (B,T,H*D); q (B,T,H*D); k, v (B,S,Hkv*D); P (B,H,T,S) kept or recomputed per group
//   -> dq, dk, dv (as needed), dbias (H,T,S) summed over the batch
static void attention_backward(peft_graph *g, void *p)
{
    attn_ctx *c = p;
    const float *dout = c->out->grad;
    if (!dout) return;
    const int T = (int)c->T, S = (int)c->S, D = (int)c->D;
    const int HD = (int)(c->H * c->D), LQ = (int)c->ldq, LK = (int)c->ldk;
    const int64_t group = c->H / c->Hkv;
    float *dq = peft_grad_of(g, c->q);
    float *dk = peft_grad_of(g, c->k);
    float *dv = peft_grad_of(g, c->v);
    float *dbias = c->bias ? peft_grad_of(g, c->bias) : NULL;
    const float *q = peft_f32(c->q), *k = peft_f32(c->k), *v = peft_f32(c->v);
    const int64_t BH = c->B * c->H, gh = attn_group_heads(BH, T, S);
    /* the group's dP / dS, the soft-capping scores and the recomputed probabilities: scratch
     * kept by the thread across calls and steps (not the arena, which would keep one set per
     * layer until the step ends) */
    float *dS = NULL, *R = NULL, *Pb = NULL;
    if (dq || dk || dbias) { /* dP then dS of a group of heads */
        dS = ops_scratch(OPS_SCRATCH_ATTN_DS, (size_t)(gh * T * S) + 1);
        if (!dS) { peft_graph_set_error(g, "attention backward: out of memory"); return; }
    }
    if (c->softcap > 0.0f && (dq || dk)) {
        R = ops_scratch(OPS_SCRATCH_ATTN_R, (size_t)T * (size_t)S + 1);
        if (!R) { peft_graph_set_error(g, "attention backward: out of memory"); return; }
    }
    if (!c->P) { /* recomputed group by group */
        Pb = ops_scratch(OPS_SCRATCH_ATTN_P, (size_t)(gh * T * S) + 1);
        if (!Pb) { peft_graph_set_error(g, "attention backward: out of memory"); return; }
    }
    if (T == 0 || S == 0) return;
    for (int64_t g0 = 0; g0 < BH; g0 += gh) {
        const int64_t ng = BH - g0 < gh ? BH - g0 : gh;
        const float *Pg = c->P ? c->P + (size_t)(g0 * c->T * c->S) : Pb;
        if (!c->P) attention_probs(c, g0, ng, Pb);
        for (int64_t i = 0; i < ng; i++) {
            const int64_t b = (g0 + i) / c->H, h = (g0 + i) % c->H, kh = h / group;
            const size_t vo = (size_t)(b * c->S * LK + kh * D + c->v0);
            const float *P = Pg + (size_t)(i * T * S);
            const float *dO = dout + (size_t)(b * c->T * HD + h * D);
            /* dv (S,D) += P^T (S,T) dO (T,D) */
            if (dv)
                ops_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, S, D, T, 1.0f, P, S, dO,
                            HD, 1.0f, dv + vo, LK);
            /* dP (T,S) = dO (T,D) V^T (D,S) */
            if (dS)
                ops_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, S, D, 1.0f, dO, HD,
                            v + vo, LK, 0.0f, dS + (size_t)(i * T * S), S);
        }
        if (!dS) continue;
        /* dS = P * (dP - sum_s P dP), per row (pool threads): the gradient of the (scaled +
         * biased) scores */
        attn_grad_job gj = {Pg, dS, S};
        ops_parallel(ng * T, OPS_ROW_GRAIN(S), attn_grad_rows, &gj);
        for (int64_t i = 0; i < ng; i++) {
            const int64_t b = (g0 + i) / c->H, h = (g0 + i) % c->H, kh = h / group;
            const size_t qo = (size_t)(b * c->T * LQ + h * D + c->q0);
            const size_t ko = (size_t)(b * c->S * LK + kh * D + c->k0);
            float *dSi = dS + (size_t)(i * T * S);
            /* dbias (T,S) of head h += dS */
            if (dbias) {
                float *db = dbias + (size_t)(h * c->T * c->S);
                for (size_t e = 0; e < (size_t)T * (size_t)S; e++) db[e] += dSi[e];
            }
            /* soft-capping: d(cap tanh(r / cap)) / dr = 1 - tanh^2, r = scale q.k recomputed */
            if (c->softcap > 0.0f && (dq || dk)) {
                ops_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, T, S, D, c->scale, q + qo,
                            LQ, k + ko, LK, 0.0f, R, S);
                for (size_t e = 0; e < (size_t)T * (size_t)S; e++) {
                    const float th = tanhf(R[e] / c->softcap);
                    dSi[e] *= 1.0f - th * th;
                }
            }
            /* dq (T,D) += scale dS (T,S) K (S,D) */
            if (dq)
                ops_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, T, D, S, c->scale, dSi, S,
                            k + ko, LK, 1.0f, dq + qo, LQ);
            /* dk (S,D) += scale dS^T (S,T) Q (T,D) */
            if (dk)
                ops_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, S, D, T, c->scale, dSi, S,
                            q + qo, LQ, 1.0f, dk + ko, LK);
        }
    }
}

/* the options into a's fields (q, k, v, shapes and strides set by the caller); NULL when the
 * bias does not fit */
static int attn_opts(attn_ctx *a, const peft_attn_opts *o)
{
    a->causal = o ? o->causal : 0;
    a->key_mask = o ? o->key_mask : NULL;
    a->bias = o ? o->bias : NULL;
    a->window = o && o->window > 0 ? o->window : 0;
    a->softcap = o && o->softcap > 0.0f ? o->softcap : 0.0f;
    a->transient_out = o && o->transient_out;
    return !a->bias || (a->bias->dtype == PEFT_DTYPE_F32 && a->bias->numel == a->H * a->T * a->S);
}

// a: q, k, v with their strides and offsets, the shapes and options -> out (B,T,H*D), recorded
// on the tape when an input requires grad
static peft_tensor *attention_run(peft_graph *g, attn_ctx a)
{
    const int64_t B = a.B, T = a.T, S = a.S, H = a.H, Hkv = a.Hkv, D = a.D, HD = H * D;
    const int rec = g->recording && (a.q->requires_grad || a.k->requires_grad ||
                                     a.v->requires_grad || (a.bias && a.bias->requires_grad));
    /* probabilities: all (b,h) kept for the backward when small (one group of every head),
     * else a scratch for one group of heads (inference, or a backward that recomputes them) */
    const int64_t BH = B * H;
    const int keep = rec && BH * T * S * (int64_t)sizeof(float) <= attn_keep_p_bytes;
    const int64_t gh = keep ? BH : attn_group_heads(BH, T, S);
    const int64_t oshape[3] = {B, T, HD};
    peft_tensor *out = a.transient_out
                           ? peft_graph_tensor_transient(g, PEFT_TRANSIENT_ATTN, 3, oshape)
                           : peft_graph_tensor_raw(g, PEFT_DTYPE_F32, 3, oshape);
    peft_tensor *Pt = peft_graph_tensor_raw(g, PEFT_DTYPE_F32, 1, (int64_t[]){gh * T * S + 1});
    if (!out || !Pt) return NULL;
    a.out = out;
    const float *vd = peft_f32(a.v);
    float *od = peft_f32(out), *Pall = peft_f32(Pt);

    /* heads in groups: the group's probabilities (attention_probs), then P V by GEMM */
    for (int64_t g0 = 0; g0 < BH; g0 += gh) {
        const int64_t ng = BH - g0 < gh ? BH - g0 : gh;
        attention_probs(&a, g0, ng, Pall);
        for (int64_t i = 0; i < ng && T > 0; i++) {
            const int64_t b = (g0 + i) / H, h = (g0 + i) % H, kh = h / (H / Hkv);
            const size_t oo = (size_t)(b * T * HD + h * D);
            const size_t vo = (size_t)(b * S * a.ldk + kh * D + a.v0);
            /* out (T,D) = P (T,S) V (S,D) */
            if (S > 0)
                ops_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)T, (int)D, (int)S,
                            1.0f, Pall + (size_t)(i * T * S), (int)S, vd + vo, (int)a.ldk, 0.0f,
                            od + oo, (int)HD);
            else
                for (int64_t t = 0; t < T; t++) memset(od + oo + t * HD, 0, (size_t)D * 4);
        }
    }

    out->requires_grad = rec;
    if (rec) {
        if (!keep && a.key_mask) { /* the caller's mask need not outlive this call */
            int32_t *km = peft_arena_alloc(g->arena, (size_t)(B * S) * sizeof *km + 1);
            if (!km) return NULL;
            memcpy(km, a.key_mask, (size_t)(B * S) * sizeof *km);
            a.key_mask = km;
        }
        a.P = keep ? Pall : NULL;
        attn_ctx *c = peft_tape_push(g, attention_backward, sizeof *c);
        if (!c) return NULL;
        *c = a;
        peft_tape_output(g, c->out);
    }
    return out;
}

// q (B,T,H*D), k (B,S,Hkv*D), v (B,S,Hkv*D); o->key_mask (B,S) or NULL, o->bias (H,T,S) or
// NULL -> out (B,T,H*D)
peft_tensor *op_attention_opt(peft_graph *g, peft_tensor *q, peft_tensor *k, peft_tensor *v,
                              int H, int Hkv, float scale, const peft_attn_opts *o)
{
    if (!q || !k || !v || H <= 0 || Hkv <= 0 || H % Hkv || q->ndim != 3 || k->ndim != 3 ||
        v->ndim != 3 || q->dtype != PEFT_DTYPE_F32 || k->dtype != PEFT_DTYPE_F32 ||
        v->dtype != PEFT_DTYPE_F32)
        return NULL;
    const int64_t B = q->shape[0], T = q->shape[1], HD = q->shape[2], S = k->shape[1];
    if (HD % H) return NULL;
    const int64_t D = HD / H, KD = D * Hkv;
    if (k->shape[0] != B || v->shape[0] != B || v->shape[1] != S || k->shape[2] != KD ||
        v->shape[2] != KD)
        return NULL;
    attn_ctx a = {.q = q, .k = k, .v = v, .B = B, .T = T, .S = S, .H = H, .Hkv = Hkv, .D = D,
                  .ldq = HD, .ldk = KD, .scale = scale};
    if (!attn_opts(&a, o)) return NULL;
    return attention_run(g, a);
}

// qkv (B,T,(H+2Hkv)*D): q = qkv[..., :H*D], k = the next Hkv*D columns, v = the last Hkv*D,
// read in place (no copies; their gradients land in qkv's) -> out (B,T,H*D)
peft_tensor *op_attention_packed(peft_graph *g, peft_tensor *qkv, int H, int Hkv, float scale,
                                 const peft_attn_opts *o)
{
    if (!qkv || H <= 0 || Hkv <= 0 || H % Hkv || qkv->ndim != 3 || qkv->dtype != PEFT_DTYPE_F32 ||
        qkv->shape[2] % (H + 2 * Hkv))
        return NULL;
    const int64_t W = qkv->shape[2], D = W / (H + 2 * Hkv), HD = D * H, KD = D * Hkv;
    attn_ctx a = {.q = qkv, .k = qkv, .v = qkv, .B = qkv->shape[0], .T = qkv->shape[1],
                  .S = qkv->shape[1], .H = H, .Hkv = Hkv, .D = D, .ldq = W, .ldk = W, .q0 = 0,
                  .k0 = HD, .v0 = HD + KD, .scale = scale};
    if (!attn_opts(&a, o)) return NULL;
    return attention_run(g, a);
}

// q (B,T,H*D), k (B,S,Hkv*D), v (B,S,Hkv*D), key_mask (B,S) or NULL, bias (H,T,S) or NULL
//   -> out (B,T,H*D)
peft_tensor *op_attention_ex(peft_graph *g, peft_tensor *q, peft_tensor *k, peft_tensor *v,
                             int H, int Hkv, float scale, int causal, const int32_t *key_mask,
                             peft_tensor *bias)
{
    const peft_attn_opts o = {.causal = causal, .key_mask = key_mask, .bias = bias};
    return op_attention_opt(g, q, k, v, H, Hkv, scale, &o);
}

// q (B,T,H*D), k (B,S,H*D), v (B,S,H*D), key_mask (B,S) or NULL -> out (B,T,H*D)
peft_tensor *op_attention(peft_graph *g, peft_tensor *q, peft_tensor *k, peft_tensor *v, int H,
                          int causal, const int32_t *key_mask)
{
    if (!q || H <= 0 || q->ndim != 3 || q->shape[2] % H) return NULL;
    const float scale = 1.0f / sqrtf((float)(q->shape[2] / H));
    return op_attention_ex(g, q, k, v, H, H, scale, causal, key_mask, NULL);
}
