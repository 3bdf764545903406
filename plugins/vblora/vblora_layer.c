/* vblora_layer.c — VB-LoRA's vector bank (adapter-level state) and one layer: inject, forward
 * (A and B assembled from the bank on the step's graph, then two host linears; the assembly's
 * backward maps their gradients to the logits through the top-k softmax and to the bank),
 * merge, state dicts. */
#include <math.h>
#include <stdio.h>
#include <string.h>
#include "vblora.h"
#include "peft/plugin_kernels.h"

void *vb_adapter_init(const void *parsed, peft_cfg *cfg, const peft_adapter_info *info,
                      const char *adapter_name, peft_rng *rng, char *err, size_t errlen)
{
    (void)cfg;
    const vb_config *c = parsed;
    if (!info->n_sites) {
        peft_pu_errf(err, errlen, "vblora: no targeted layer");
        return NULL;
    }
    vb_bank *b = vb_host->alloc(sizeof *b);
    if (!b) goto oom;
    b->n = c->num_vectors;
    b->L = c->vector_length;
    b->bank = peft_pu_param(vb_host, 2, (const int64_t[]){b->n, b->L});
    /* PEFT registers the bank on every layer: named_parameters lists it under the first */
    char head[1100];
    snprintf(head, sizeof head, "model.%s.vblora_vector_bank.", info->sites[0]->name);
    b->mem = peft_pu_concat(vb_host, head, adapter_name, "");
    if (!b->bank || !b->mem) goto oom;
    float *w = (float *)b->bank->data; /* uniform_(-bound, bound) */
    for (int64_t i = 0; i < b->bank->numel; i++)
        w[i] = (float)((2 * vb_host->rng_uniform(rng) - 1) * c->init_bank_bound);
    return b;
oom:
    vb_adapter_destroy(b);
    peft_pu_errf(err, errlen, "vblora: out of memory for the vector bank");
    return NULL;
}

void vb_adapter_destroy(void *adapter_state)
{
    vb_bank *b = adapter_state;
    if (!b) return;
    vb_host->tensor_free(b->bank);
    vb_host->free(b->mem);
    vb_host->free(b);
}

int vb_adapter_state_dict(void *adapter_state, peft_param_ref *out, int max)
{
    vb_bank *b = adapter_state;
    peft_param_ref refs[1] = {{"vblora_vector_bank", b->mem, b->bank, 1, 0}};
    return peft_pu_state_refs(out, max, refs, 1);
}

void *vb_inject_in(void *adapter_state, const void *parsed, peft_cfg *cfg,
                   const peft_site_info *site, const char *adapter_name, peft_rng *rng,
                   char *err, size_t errlen)
{
    const vb_config *c = parsed;
    const vb_bank *b = adapter_state;
    if (peft_pu_inject_args("vblora", parsed, cfg, site, adapter_name, rng, err, errlen) ||
        peft_pu_site_check(site, "vblora", "VB-LoRA", 1, err, errlen) || !b)
        return NULL;
    if (site->in_features % c->vector_length || site->out_features % c->vector_length) {
        peft_pu_errf(err, errlen, "`%s_features` %lld must be divisible by `vector_length` %lld",
                     site->in_features % c->vector_length ? "in" : "out",
                     (long long)(site->in_features % c->vector_length ? site->in_features : site->out_features),
                     (long long)c->vector_length);
        return NULL;
    }
    peft_pu_fan_in_fan_out(vb_host, cfg, site);
    vb_layer *l = vb_host->alloc(sizeof *l);
    if (!l) goto oom;
    const int64_t L = c->vector_length, n = c->num_vectors;
    *l = (vb_layer){.b = b, .in = site->in_features, .out = site->out_features, .r = c->r,
                    .k = c->topk, .dropout = c->dropout};
    l->la = peft_pu_param(vb_host, 3, (const int64_t[]){l->r, l->in / L, n});
    l->lb = peft_pu_param(vb_host, 3, (const int64_t[]){l->out / L, l->r, n});
    l->mem[0] = peft_pu_concat(vb_host, "vblora_logits_A.", adapter_name, "");
    l->mem[1] = peft_pu_concat(vb_host, "vblora_logits_B.", adapter_name, "");
    if (!l->la || !l->lb || !l->mem[0] || !l->mem[1]) goto oom;
    for (int t = 0; t < 2; t++) {
        peft_tensor *p = t ? l->lb : l->la;
        for (int64_t i = 0; i < p->numel; i++)
            ((float *)p->data)[i] = (float)(c->init_logits_std * vb_host->rng_normal(rng));
    }
    return l;
oom:
    vb_destroy(l);
    peft_pu_errf(err, errlen, "vblora: out of memory on %s", peft_pu_site_name(site));
    return NULL;
}

/* the top-k of logits row z (n) into idx (k, descending) and their softmax into w (k) */
static void topk_softmax(const float *z, int64_t n, int64_t k, int64_t *idx, float *w)
{
    for (int64_t t = 0; t < k; t++) {
        int64_t best = -1;
        for (int64_t j = 0; j < n; j++) {
            int taken = 0;
            for (int64_t s = 0; s < t && !taken; s++) taken = idx[s] == j;
            if (!taken && (best < 0 || z[j] > z[best])) best = j;
        }
        idx[t] = best;
    }
    float mx = z[idx[0]], sum = 0;
    for (int64_t t = 0; t < k; t++) sum += w[t] = expf(z[idx[t]] - mx);
    for (int64_t t = 0; t < k; t++) w[t] /= sum;
}

/* which 0: A (r, in) from logits_A (r, in/L, n); which 1: B (out, r) from logits_B (out/L, r, n)
 * (piece (j, i) is column i of B, rows j*L .. j*L+L-1). */
static void assemble(const vb_layer *l, int which, float *dst, int64_t *idx, float *w)
{
    const int64_t L = l->b->L, n = l->b->n, k = l->k;
    const float *bank = (const float *)l->b->bank->data;
    const peft_tensor *lg = which ? l->lb : l->la;
    const int64_t P = lg->shape[0] * lg->shape[1];
    for (int64_t p = 0; p < P; p++) {
        topk_softmax((const float *)lg->data + p * n, n, k, idx, w);
        const int64_t a = p / lg->shape[1], c = p % lg->shape[1];
        for (int64_t e = 0; e < L; e++) {
            float s = 0;
            for (int64_t t = 0; t < k; t++) s += w[t] * bank[idx[t] * L + e];
            if (!which) dst[a * l->in + c * L + e] = s;     /* A[a][c*L + e] */
            else dst[(a * L + e) * l->r + c] = s;           /* B[a*L + e][c] */
        }
    }
}

typedef struct vb_bwd {
    vb_layer *l;
    peft_tensor *A, *B;
} vb_bwd;

// dA (r, in), dB (out, r) -> d logits (top-k entries, through the softmax), d bank
static void vb_backward(peft_graph *g, void *vc)
{
    vb_bwd *c = vc;
    vb_layer *l = c->l;
    const int64_t L = l->b->L, n = l->b->n, k = l->k;
    const float *bank = (const float *)l->b->bank->data;
    float *dbank = vb_host->grad_of(g, l->b->bank);
    int64_t idx[64];
    float w[64], dw[64];
    for (int which = 0; which < 2; which++) {
        const peft_tensor *out = which ? c->B : c->A;
        if (!out->grad) continue;
        peft_tensor *lg = which ? l->lb : l->la;
        float *dlg = vb_host->grad_of(g, lg);
        const int64_t P = lg->shape[0] * lg->shape[1];
        for (int64_t p = 0; p < P; p++) {
            topk_softmax((const float *)lg->data + p * n, n, k, idx, w);
            const int64_t a = p / lg->shape[1], cc = p % lg->shape[1];
            double dot = 0;
            for (int64_t t = 0; t < k; t++) dw[t] = 0;
            for (int64_t e = 0; e < L; e++) {
                const float d = !which ? out->grad[a * l->in + cc * L + e] : out->grad[(a * L + e) * l->r + cc];
                for (int64_t t = 0; t < k; t++) {
                    dw[t] += d * bank[idx[t] * L + e];
                    if (dbank) dbank[idx[t] * L + e] += w[t] * d;
                }
            }
            for (int64_t t = 0; t < k; t++) dot += (double)w[t] * dw[t];
            if (dlg)
                for (int64_t t = 0; t < k; t++) dlg[p * n + idx[t]] += (float)(w[t] * (dw[t] - dot));
        }
    }
}

// x (..., in), y (..., out) -> y + (dropout(x) A^T) B^T
peft_tensor *vb_forward(void *state, peft_graph *g, const peft_site_info *site, peft_tensor *x,
                        peft_tensor *y)
{
    (void)site;
    vb_layer *l = state;
    if (l->k > 64) {
        vb_host->graph_set_error(g, "vblora: topk above 64 is not supported");
        return y;
    }
    int64_t idx[64];
    float w[64];
    peft_tensor *A = vb_host->graph_tensor(g, 2, (const int64_t[]){l->r, l->in});
    peft_tensor *B = vb_host->graph_tensor(g, 2, (const int64_t[]){l->out, l->r});
    if (!A || !B) return NULL;
    assemble(l, 0, (float *)A->data, idx, w);
    assemble(l, 1, (float *)B->data, idx, w);
    /* the assembly's node first: the tape runs it after the linears gave dA and dB */
    if (PEFT_PU_WANTS_GRAD(vb_host, g, l->la, l->lb, l->b->bank)) {
        A->requires_grad = B->requires_grad = 1;
        vb_bwd *c = vb_host->tape_push(g, vb_backward, sizeof *c);
        if (c) *c = (vb_bwd){l, A, B};
    }
    peft_tensor *xd = l->dropout > 0 ? vb_host->op_dropout(g, x, (float)l->dropout) : x;
    peft_tensor *t = xd ? vb_host->op_linear(g, xd, A, NULL, 0) : NULL;
    t = t ? vb_host->op_linear(g, t, B, NULL, 0) : NULL;
    return t ? vb_host->op_add(g, y, t) : NULL;
}

int vb_merge(void *state, const peft_site_info *site, float *weight, float *bias, int sign,
             char *err, size_t errlen)
{
    (void)bias;
    vb_layer *l = state;
    if (peft_pu_merge_args("vblora", state, site, weight, sign, err, errlen) ||
        peft_pu_merge_shape("vblora", site, l->in, l->out, err, errlen))
        return -1;
    if (l->k > 64) {
        peft_pu_errf(err, errlen, "vblora merge: topk above 64 is not supported");
        return -1;
    }
    float *A = vb_host->alloc((size_t)(l->r * l->in) * sizeof *A);
    float *B = vb_host->alloc((size_t)(l->out * l->r) * sizeof *B);
    if (!A || !B) {
        vb_host->free(A);
        vb_host->free(B);
        peft_pu_errf(err, errlen, "vblora merge: out of memory");
        return -1;
    }
    int64_t idx[64];
    float w[64];
    assemble(l, 0, A, idx, w);
    assemble(l, 1, B, idx, w);
    if (peft_pu_in_out(site)) /* W (in, out) += sign A^T B^T */
        vb_host->sgemm(1, 1, (int)l->in, (int)l->out, (int)l->r, (float)sign, A, (int)l->in, B,
                       (int)l->r, 1.0f, weight, (int)l->out);
    else /* W (out, in) += sign B A */
        vb_host->sgemm(0, 0, (int)l->out, (int)l->in, (int)l->r, (float)sign, B, (int)l->r, A,
                       (int)l->in, 1.0f, weight, (int)l->in);
    vb_host->free(A);
    vb_host->free(B);
    return 0;
}

void vb_destroy(void *state)
{
    vb_layer *l = state;
    if (!l) return;
    vb_host->tensor_free(l->la);
    vb_host->tensor_free(l->lb);
    vb_host->free(l->mem[0]);
    vb_host->free(l->mem[1]);
    vb_host->free(l);
}

int vb_state_dict(void *state, peft_param_ref *out, int max)
{
    vb_layer *l = state;
    peft_param_ref refs[2] = {{"vblora_logits_A", l->mem[0], l->la, 1, 0},
                              {"vblora_logits_B", l->mem[1], l->lb, 1, 0}};
    return peft_pu_state_refs(out, max, refs, 2);
}

/* PEFT 0.13.2's VB-LoRA Linear has no __repr__ of its own: status reports say "Linear" */
const char *vb_module_type(void *state)
{
    (void)state;
    return "Linear";
}
