/* lora_layer.c — one LoRA adapter on one linear site (PEFT 0.13.2 lora.Linear): injection with
 * PEFT's shapes and initialisations, the forward kernel y' = y + s * B(A(dropout(x))) and its
 * backward on the host's tape, merging into the base weight, and the state dict. DoRA adapters
 * (use_dora) take their forward and merge from lora_dora.c; PiSSA/OLoRA init from
 * lora_init_svd.c.
 *
 * Shapes: lora_A (r, in), lora_B (out, r) for nn.Linear AND for GPT-2 Conv1D (PEFT keeps
 * nn.Linear adapters on Conv1D; only the merged delta is transposed). s = scaling * mult. */
#include <math.h>
#include <string.h>

#include "lora.h"

/* ---- inject ------------------------------------------------------------------------------- */

void *lora_inject(const void *parsed, peft_cfg *cfg, const peft_site_info *site,
                  const char *adapter_name, peft_rng *rng, char *err, size_t errlen)
{
    const lora_config *c = parsed;
    if (peft_pu_inject_args("lora", parsed, cfg, site, adapter_name, rng, err, errlen))
        return NULL;
    const int embedding = site->kind == PEFT_SITE_EMBEDDING;
    if (!embedding && peft_pu_site_check(site, "lora", "LoRA", 1, err, errlen)) return NULL;
    if (embedding && (site->in_features <= 0 || site->out_features <= 0)) {
        peft_pu_errf(err, errlen, "lora: embedding '%s' has invalid shape (%lld, %lld)",
                     peft_pu_site_name(site), (long long)site->in_features,
                     (long long)site->out_features);
        return NULL;
    }
    const char *name = peft_pu_site_name(site);

    /* rank and alpha for this site: rank_pattern / alpha_pattern, else r / lora_alpha */
    int64_t r = c->r;
    double alpha = c->lora_alpha;
    if (peft_pu_rank_alpha(lora_host, cfg, "lora", name, 0, &r, &alpha, err, errlen))
        return NULL;
    /* PEFT dispatch_default: fan_in_fan_out follows the module type and is written back
     * (an embedding drops the setting) */
    if (!embedding) peft_pu_fan_in_fan_out(lora_host, cfg, site);

    lora_state *st = lora_host->alloc(sizeof *st);
    if (!st) goto oom;
    st->in_features = site->in_features;
    st->out_features = site->out_features;
    st->r = r;
    st->lora_alpha = alpha;
    st->scaling = c->use_rslora ? alpha / sqrt((double)r) : alpha / (double)r;
    st->mult = 1.0;
    st->dropout = (float)c->lora_dropout;
    if (embedding) {
        if (lora_embedding_init(st, c, site, adapter_name, rng, err, errlen)) goto fail;
        /* Embedding.update_layer: dora_init after the init, as for a linear layer */
        if (c->use_dora && lora_dora_init(st, site, adapter_name, err, errlen)) goto fail;
        return st;
    }

    st->A = peft_pu_param2(lora_host, r, site->in_features);
    st->B = peft_pu_param2(lora_host, site->out_features, r);
    if (!st->A || !st->B ||
        peft_pu_param_names(lora_host, "lora_A", ".weight", adapter_name, &st->saved_A,
                            &st->memory_A) ||
        peft_pu_param_names(lora_host, "lora_B", ".weight", adapter_name, &st->saved_B,
                            &st->memory_B))
        goto oom;

    /* nn.Linear(in, r) then nn.Linear(r, out): kaiming_uniform(a=sqrt(5)) = U(+-1/sqrt(fan_in)) */
    switch (c->init) {
    case LORA_INIT_DEFAULT: /* reset_lora_parameters(True): A kaiming, B zeros */
        peft_pu_fill_uniform(lora_host, st->A, 1.0 / sqrt((double)site->in_features), rng);
        break;
    case LORA_INIT_GAUSSIAN: /* A ~ N(0, 1/r^2), B zeros */
        peft_pu_fill_normal(lora_host, st->A, 1.0 / (double)r, rng);
        break;
    case LORA_INIT_PISSA: /* A, B from the SVD of W; W <- the residual */
        if (lora_init_pissa(st, site, c->pissa_niter, err, errlen)) goto fail;
        break;
    case LORA_INIT_OLORA: /* A, B from the QR of W; W <- the residual */
        if (lora_init_olora(st, site, err, errlen)) goto fail;
        break;
    default: /* False: both keep nn.Linear's default init */
        peft_pu_fill_uniform(lora_host, st->A, 1.0 / sqrt((double)site->in_features), rng);
        peft_pu_fill_uniform(lora_host, st->B, 1.0 / sqrt((double)r), rng);
        break;
    }
    /* PEFT update_layer: dora_init after the A/B init (and after PiSSA/OLoRA rewrote W) */
    if (c->use_dora && lora_dora_init(st, site, adapter_name, err, errlen)) goto fail;
    return st;

fail:
    lora_destroy(st);
    return NULL;

oom:
    lora_destroy(st);
    peft_pu_errf(err, errlen, "lora: out of memory injecting into '%s'", name);
    return NULL;
}

/* ---- forward / backward ------------------------------------------------------------------- */

typedef struct lora_bwd_ctx {
    peft_tensor *x;   /* x_used (N, in): the (dropped-out) input */
    peft_tensor *xa;  /* (N, r) = x_used @ A^T */
    peft_tensor *y;   /* (N, out) the output before this adapter (== out when added in place) */
    peft_tensor *out; /* (N, out) the output after it */
    peft_tensor *A;   /* (r, in) */
    peft_tensor *B;   /* (out, r) */
    int64_t n, in, outf, r;
    float s;          /* scaling * mult at forward time */
} lora_bwd_ctx;

/* dy = out->grad (N, out)
 * dy_prev (N, out) += dy                       (y passes straight through)
 * dB (out, r)  += s * dy^T (out, N) @ xa (N, r)
 * dxa (N, r)    = s * dy (N, out) @ B (out, r)
 * dA (r, in)   += dxa^T (r, N) @ x (N, in)
 * dx (N, in)   += dxa (N, r) @ A (r, in)          */
static void lora_backward(peft_graph *g, void *vctx)
{
    const lora_bwd_ctx *c = vctx;
    const float *dy = c->out->grad;
    if (!dy) return; /* nothing downstream needed this output */
    const peft_host_api *H = lora_host;

    if (c->y != c->out) /* in place (PEFT_T_INPLACE): dy is y's gradient already */
        peft_pu_grad_add(H, g, c->y, dy, c->n * c->outf);
    float *dB = c->B->requires_grad ? H->grad_of(g, c->B) : NULL;
    if (dB) peft_pu_gemm(H, 1, 0, c->outf, c->r, c->n, c->s, dy, peft_f32(c->xa), 1.0f, dB);
    const int want_a = c->A->requires_grad, want_x = c->x->requires_grad;
    if (!want_a && !want_x) return;
    const int64_t shape_xa[2] = {c->n, c->r};
    peft_tensor *dxa_t = H->graph_tensor(g, 2, shape_xa);
    if (!dxa_t) return;
    float *dxa = peft_f32(dxa_t);
    peft_pu_gemm(H, 0, 0, c->n, c->r, c->outf, c->s, dy, peft_f32(c->B), 0.0f, dxa);
    float *dA = want_a ? H->grad_of(g, c->A) : NULL;
    if (dA) peft_pu_gemm(H, 1, 0, c->r, c->in, c->n, 1.0f, dxa, peft_f32(c->x), 1.0f, dA);
    float *dx = want_x ? H->grad_of(g, c->x) : NULL;
    if (dx) peft_pu_gemm(H, 0, 0, c->n, c->in, c->r, 1.0f, dxa, peft_f32(c->A), 1.0f, dx);
}

/* x (N..., in), y (N..., out) -> out (N..., out) = y + s * (dropout(x) (N, in) @ A^T (in, r))
 *                                                       (N, r) @ B^T (r, out)
 * Returns an arena tensor (y itself, added into, when the host marked it PEFT_T_INPLACE), or
 * NULL on a shape mismatch or out of arena memory. */
peft_tensor *lora_forward(void *state, peft_graph *g, const peft_site_info *site,
                          peft_tensor *x, peft_tensor *y)
{
    lora_state *st = state;
    int64_t n;
    if (st && g && st->embedding) return lora_embedding_forward(st, g, site, x, y);
    if (!st || !g || peft_pu_site_rows(x, y, st->in_features, st->out_features, &n)) return NULL;
    const int64_t in = st->in_features, outf = st->out_features, r = st->r;

    peft_tensor *xu = x;
    if (st->dropout > 0.0f && lora_host->graph_training(g)) {
        xu = lora_host->op_dropout(g, x, st->dropout);
        if (!xu) return NULL;
    }

    if (st->magnitude) return lora_dora_forward(st, g, site, xu, y);

    const int64_t shape_xa[2] = {n, r};
    const int want = PEFT_PU_WANTS_GRAD(lora_host, g, xu, y, st->A, st->B);
    /* the host's base output, read by nobody after us: add into it (no (N, out) copy kept) */
    const int inplace = (y->flags & PEFT_T_INPLACE) && y->dtype == PEFT_DTYPE_F32;
    peft_tensor *xa = lora_host->graph_tensor(g, 2, shape_xa);
    peft_tensor *out = inplace ? y : lora_host->graph_tensor(g, y->ndim, y->shape);
    if (!xa || !out) return NULL;
    const float s = (float)(st->scaling * st->mult);

    /* xa (N, r) = xu (N, in) @ A^T (in, r) */
    peft_pu_gemm(lora_host, 0, 1, n, r, in, 1.0f, peft_f32(xu), peft_f32(st->A), 0.0f,
                 peft_f32(xa));
    /* out (N, out) = y + s * xa (N, r) @ B^T (r, out) */
    if (!inplace) memcpy(out->data, y->data, (size_t)(n * outf) * sizeof(float));
    peft_pu_gemm(lora_host, 0, 1, n, outf, r, s, peft_f32(xa), peft_f32(st->B), 1.0f,
                 peft_f32(out));

    out->requires_grad = want;
    if (out->requires_grad) {
        lora_bwd_ctx *c = lora_host->tape_push(g, lora_backward, sizeof *c);
        if (!c) return NULL;
        *c = (lora_bwd_ctx){.x = xu, .xa = xa, .y = y, .out = out, .A = st->A, .B = st->B,
                            .n = n, .in = in, .outf = outf, .r = r, .s = s};
    }
    return out;
}

/* ---- merge -------------------------------------------------------------------------------- */

/* weight += sign * s * delta, delta = B (out, r) @ A (r, in):
 *   (out, in) layout  (nn.Linear):                W (out, in) += B @ A
 *   (in, out) layout  (Conv1D / fan_in_fan_out):  W (in, out) += A^T (in, r) @ B^T (r, out)
 * unmerge (sign -1) removes exactly the scale that merge folded in. The bias is untouched. */
int lora_merge(void *state, const peft_site_info *site, float *weight, float *bias, int sign,
               char *err, size_t errlen)
{
    (void)bias;
    lora_state *st = state;
    if (peft_pu_merge_args("lora", st, site, weight, sign, err, errlen) ||
        peft_pu_merge_shape("lora", site, st->in_features, st->out_features, err, errlen))
        return -1;
    double s = st->scaling * st->mult;
    if (sign < 0 && st->merged) s = st->merged_scale;
    const float alpha = (float)(sign * s);
    const int64_t in = st->in_features, outf = st->out_features, r = st->r;
    if (st->magnitude) {
        if (lora_dora_merge(st, site, weight, sign, err, errlen)) return -1;
    } else if (peft_pu_in_out(site) || st->embedding) /* W (V, dim) += s (B A)^T likewise */
        peft_pu_gemm(lora_host, 1, 1, in, outf, r, alpha, peft_f32(st->A), peft_f32(st->B), 1.0f,
                     weight);
    else
        peft_pu_gemm(lora_host, 0, 0, outf, in, r, alpha, peft_f32(st->B), peft_f32(st->A), 1.0f,
                     weight);
    st->merged = sign > 0;
    if (sign > 0) st->merged_scale = s;
    return 0;
}

/* ---- state dict, status, scale, destroy --------------------------------------------------- */

int lora_state_dict(void *state, peft_param_ref *out, int max)
{
    lora_state *st = state;
    if (!st) return 0;
    /* named_parameters() order: lora_A, lora_B, lora_magnitude_vector */
    const peft_param_ref refs[3] = {
        {.saved_name = st->saved_A, .memory_name = st->memory_A, .tensor = st->A, .trainable = 1},
        {.saved_name = st->saved_B, .memory_name = st->memory_B, .tensor = st->B, .trainable = 1},
        {.saved_name = st->saved_M, .memory_name = st->memory_M, .tensor = st->magnitude,
         .trainable = 1},
    };
    return peft_pu_state_refs(out, max, refs, st->magnitude ? 3 : 2);
}

const char *lora_module_type(void *state)
{
    const lora_state *st = state;
    return st && st->embedding ? "lora.Embedding" : "lora.Linear";
}

int lora_set_scale(void *state, double mult)
{
    lora_state *st = state;
    if (!st || !isfinite(mult)) return -1;
    st->mult = mult;
    return 0;
}

void lora_destroy(void *state)
{
    lora_state *st = state;
    if (!st) return;
    peft_tensor *const tensors[] = {st->A, st->B, st->magnitude};
    char *const strings[] = {st->saved_A, st->saved_B, st->saved_M,
                             st->memory_A, st->memory_B, st->memory_M};
    peft_pu_free_tensors(lora_host, tensors, 3);
    peft_pu_free_strings(lora_host, strings, 6);
    lora_host->free(st->merged_norm);
    lora_host->free(st);
}
