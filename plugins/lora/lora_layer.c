/* lora_layer.c — one LoRA adapter on one linear site (PEFT 0.13.2 lora.Linear): injection with
 * PEFT's shapes and initialisations, the forward kernel y' = y + s * B(A(dropout(x))) and its
 * backward on the host's tape, merging into the base weight, and the state dict. DoRA adapters
 * (use_dora) take their forward and merge from lora_dora.c; PiSSA/OLoRA init from
 * lora_init_svd.c.
 *
 * Shapes: lora_A (r, in), lora_B (out, r) for nn.Linear AND for GPT-2 Conv1D (PEFT keeps
 * nn.Linear adapters on Conv1D; only the merged delta is transposed). s = scaling * mult. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "lora.h"

#define MSG_CONV1D_FIFO "fan_in_fan_out is set to False but the target module is `Conv1D`. " \
                        "Setting fan_in_fan_out to True."
#define MSG_LINEAR_FIFO "fan_in_fan_out is set to True but the target module is " \
                        "`torch.nn.Linear`. Setting fan_in_fan_out to False."

/* ---- inject ------------------------------------------------------------------------------- */

/* t (rows, cols) ~ U(-bound, bound) */
static void init_uniform(peft_tensor *t, double bound, peft_rng *rng)
{
    float *p = peft_f32(t);
    for (int64_t i = 0; i < t->numel; i++)
        p[i] = (float)(bound * (2.0 * lora_host->rng_uniform(rng) - 1.0));
}

/* t ~ N(0, std^2) */
static void init_normal(peft_tensor *t, double std, peft_rng *rng)
{
    float *p = peft_f32(t);
    for (int64_t i = 0; i < t->numel; i++) p[i] = (float)(std * lora_host->rng_normal(rng));
}

static char *join3(const char *a, const char *b, const char *c)
{
    size_t n = strlen(a) + strlen(b) + strlen(c) + 1;
    char *p = lora_host->alloc(n);
    if (p) snprintf(p, n, "%s%s%s", a, b, c);
    return p;
}

void *lora_inject(const void *parsed, peft_cfg *cfg, const peft_site_info *site,
                  const char *adapter_name, peft_rng *rng, char *err, size_t errlen)
{
    const lora_config *c = parsed;
    if (!c || !cfg || !site || !adapter_name || !rng) {
        lora_errf(err, errlen, "lora inject: missing argument");
        return NULL;
    }
    const char *name = site->name ? site->name : "?";
    if (site->kind != PEFT_SITE_LINEAR && site->kind != PEFT_SITE_CONV1D) {
        lora_errf(err, errlen, "lora: target module '%s' has a kind (%d) LoRA does not support; "
                  "supported: torch.nn.Linear, transformers Conv1D", name, (int)site->kind);
        return NULL;
    }
    if (site->in_features <= 0 || site->out_features <= 0) {
        lora_errf(err, errlen, "lora: target module '%s' has invalid shape in=%lld out=%lld",
                  name, (long long)site->in_features, (long long)site->out_features);
        return NULL;
    }

    /* rank and alpha for this site: rank_pattern / alpha_pattern, else r / lora_alpha */
    int64_t r = c->r;
    double alpha = c->lora_alpha, v;
    if (lora_host->cfg_pattern_real(cfg, "rank_pattern", name, &v)) {
        if (!(v >= 1.0) || v != floor(v) || v > 1e9) {
            lora_errf(err, errlen, "lora config: rank_pattern value for '%s' must be a positive "
                      "integer, got %g", name, v);
            return NULL;
        }
        r = (int64_t)v;
    }
    if (lora_host->cfg_pattern_real(cfg, "alpha_pattern", name, &v)) {
        if (!isfinite(v)) {
            lora_errf(err, errlen, "lora config: alpha_pattern value for '%s' must be a finite "
                      "number, got %g", name, v);
            return NULL;
        }
        alpha = v;
    }

    /* PEFT dispatch_default: fan_in_fan_out follows the module type and is written back */
    int fifo = 0;
    if (lora_host->cfg_bool(cfg, "fan_in_fan_out", &fifo) != 0) fifo = 0;
    if (site->kind == PEFT_SITE_CONV1D && !fifo) {
        lora_host->warn(MSG_CONV1D_FIFO);
        lora_host->cfg_set_bool(cfg, "fan_in_fan_out", 1);
    } else if (site->kind == PEFT_SITE_LINEAR && fifo) {
        lora_host->warn(MSG_LINEAR_FIFO);
        lora_host->cfg_set_bool(cfg, "fan_in_fan_out", 0);
    }

    lora_state *st = lora_host->alloc(sizeof *st);
    if (!st) goto oom;
    st->in_features = site->in_features;
    st->out_features = site->out_features;
    st->r = r;
    st->lora_alpha = alpha;
    st->scaling = c->use_rslora ? alpha / sqrt((double)r) : alpha / (double)r;
    st->mult = 1.0;
    st->dropout = (float)c->lora_dropout;

    const int64_t shape_a[2] = {r, site->in_features};
    const int64_t shape_b[2] = {site->out_features, r};
    st->A = lora_host->tensor_new(2, shape_a);
    st->B = lora_host->tensor_new(2, shape_b);
    st->saved_A = lora_strdup("lora_A.weight");
    st->saved_B = lora_strdup("lora_B.weight");
    st->memory_A = join3("lora_A.", adapter_name, ".weight");
    st->memory_B = join3("lora_B.", adapter_name, ".weight");
    if (!st->A || !st->B || !st->saved_A || !st->saved_B || !st->memory_A || !st->memory_B)
        goto oom;
    st->A->requires_grad = 1;
    st->B->requires_grad = 1;
    st->A->flags |= PEFT_T_PARAM;
    st->B->flags |= PEFT_T_PARAM;

    /* nn.Linear(in, r) then nn.Linear(r, out): kaiming_uniform(a=sqrt(5)) = U(+-1/sqrt(fan_in)) */
    switch (c->init) {
    case LORA_INIT_DEFAULT: /* reset_lora_parameters(True): A kaiming, B zeros */
        init_uniform(st->A, 1.0 / sqrt((double)site->in_features), rng);
        break;
    case LORA_INIT_GAUSSIAN: /* A ~ N(0, 1/r^2), B zeros */
        init_normal(st->A, 1.0 / (double)r, rng);
        break;
    case LORA_INIT_PISSA: /* A, B from the SVD of W; W <- the residual */
        if (lora_init_pissa(st, site, c->pissa_niter, err, errlen)) goto fail;
        break;
    case LORA_INIT_OLORA: /* A, B from the QR of W; W <- the residual */
        if (lora_init_olora(st, site, err, errlen)) goto fail;
        break;
    default: /* False: both keep nn.Linear's default init */
        init_uniform(st->A, 1.0 / sqrt((double)site->in_features), rng);
        init_uniform(st->B, 1.0 / sqrt((double)r), rng);
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
    lora_errf(err, errlen, "lora: out of memory injecting into '%s'", name);
    return NULL;
}

/* ---- forward / backward ------------------------------------------------------------------- */

typedef struct lora_bwd_ctx {
    peft_tensor *x;   /* x_used (N, in): the (dropped-out) input */
    peft_tensor *xa;  /* (N, r) = x_used @ A^T */
    peft_tensor *y;   /* (N, out) the output before this adapter */
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
    const int n = (int)c->n, in = (int)c->in, outf = (int)c->outf, r = (int)c->r;

    if (c->y->requires_grad) {
        float *gy = lora_host->grad_of(g, c->y);
        if (gy) {
            const int64_t total = c->n * c->outf;
            for (int64_t i = 0; i < total; i++) gy[i] += dy[i];
        }
    }
    if (c->B->requires_grad) {
        float *dB = lora_host->grad_of(g, c->B);
        if (dB) lora_host->sgemm(1, 0, outf, r, n, c->s, dy, outf, peft_f32(c->xa), r, 1.0f, dB, r);
    }
    const int want_a = c->A->requires_grad, want_x = c->x->requires_grad;
    if (!want_a && !want_x) return;
    const int64_t shape_xa[2] = {c->n, c->r};
    peft_tensor *dxa_t = lora_host->graph_tensor(g, 2, shape_xa);
    if (!dxa_t) return;
    float *dxa = peft_f32(dxa_t);
    lora_host->sgemm(0, 0, n, r, outf, c->s, dy, outf, peft_f32(c->B), r, 0.0f, dxa, r);
    if (want_a) {
        float *dA = lora_host->grad_of(g, c->A);
        if (dA) lora_host->sgemm(1, 0, r, in, n, 1.0f, dxa, r, peft_f32(c->x), in, 1.0f, dA, in);
    }
    if (want_x) {
        float *dx = lora_host->grad_of(g, c->x);
        if (dx) lora_host->sgemm(0, 0, n, in, r, 1.0f, dxa, r, peft_f32(c->A), in, 1.0f, dx, in);
    }
}

/* x (N..., in), y (N..., out) -> out (N..., out) = y + s * (dropout(x) (N, in) @ A^T (in, r))
 *                                                       (N, r) @ B^T (r, out)
 * Returns an arena tensor, or NULL on a shape mismatch or out of arena memory. */
peft_tensor *lora_forward(void *state, peft_graph *g, const peft_site_info *site,
                          peft_tensor *x, peft_tensor *y)
{
    lora_state *st = state;
    if (!st || !g || !x || !y || x->ndim < 1 || y->ndim < 1) return NULL;
    if (x->dtype != PEFT_DTYPE_F32 || y->dtype != PEFT_DTYPE_F32) return NULL;
    const int64_t in = st->in_features, outf = st->out_features, r = st->r;
    if (x->shape[x->ndim - 1] != in || y->shape[y->ndim - 1] != outf) return NULL;
    const int64_t n = x->numel / in;
    if (y->numel / outf != n) return NULL;

    peft_tensor *xu = x;
    if (st->dropout > 0.0f && lora_host->graph_training(g)) {
        xu = lora_host->op_dropout(g, x, st->dropout);
        if (!xu) return NULL;
    }

    if (st->magnitude) return lora_dora_forward(st, g, site, xu, y);

    const int64_t shape_xa[2] = {n, r};
    peft_tensor *xa = lora_host->graph_tensor(g, 2, shape_xa);
    peft_tensor *out = lora_host->graph_tensor(g, y->ndim, y->shape);
    if (!xa || !out) return NULL;
    const float s = (float)(st->scaling * st->mult);

    /* xa (N, r) = xu (N, in) @ A^T (in, r) */
    lora_host->sgemm(0, 1, (int)n, (int)r, (int)in, 1.0f, peft_f32(xu), (int)in, peft_f32(st->A),
                     (int)in, 0.0f, peft_f32(xa), (int)r);
    /* out (N, out) = y + s * xa (N, r) @ B^T (r, out) */
    memcpy(out->data, y->data, (size_t)(n * outf) * sizeof(float));
    lora_host->sgemm(0, 1, (int)n, (int)outf, (int)r, s, peft_f32(xa), (int)r, peft_f32(st->B),
                     (int)r, 1.0f, peft_f32(out), (int)outf);

    const int need = lora_host->graph_recording(g) &&
                     (xu->requires_grad || y->requires_grad || st->A->requires_grad ||
                      st->B->requires_grad);
    out->requires_grad = need ? 1 : 0;
    if (need) {
        lora_bwd_ctx *c = lora_host->tape_push(g, lora_backward, sizeof *c);
        if (!c) return NULL;
        c->x = xu;
        c->xa = xa;
        c->y = y;
        c->out = out;
        c->A = st->A;
        c->B = st->B;
        c->n = n;
        c->in = in;
        c->outf = outf;
        c->r = r;
        c->s = s;
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
    if (!st || !site || !weight) {
        lora_errf(err, errlen, "lora merge: missing state, site or weight");
        return -1;
    }
    const char *name = site->name ? site->name : "?";
    if (sign != 1 && sign != -1) {
        lora_errf(err, errlen, "lora merge: sign must be +1 or -1, got %d", sign);
        return -1;
    }
    if (site->in_features != st->in_features || site->out_features != st->out_features) {
        lora_errf(err, errlen, "lora merge: '%s' is (in=%lld, out=%lld) but the adapter was "
                  "made for (in=%lld, out=%lld)", name, (long long)site->in_features,
                  (long long)site->out_features, (long long)st->in_features,
                  (long long)st->out_features);
        return -1;
    }
    double s = st->scaling * st->mult;
    if (sign < 0 && st->merged) s = st->merged_scale;
    const float alpha = (float)(sign * s);
    const int in = (int)st->in_features, outf = (int)st->out_features, r = (int)st->r;
    const int in_out = site->kind == PEFT_SITE_CONV1D || site->fan_in_fan_out;
    if (st->magnitude) {
        if (lora_dora_merge(st, site, weight, sign, err, errlen)) return -1;
    } else if (in_out)
        lora_host->sgemm(1, 1, in, outf, r, alpha, peft_f32(st->A), in, peft_f32(st->B), r, 1.0f,
                         weight, outf);
    else
        lora_host->sgemm(0, 0, outf, in, r, alpha, peft_f32(st->B), r, peft_f32(st->A), in, 1.0f,
                         weight, in);
    if (sign > 0) {
        st->merged = 1;
        st->merged_scale = s;
    } else {
        st->merged = 0;
    }
    return 0;
}

/* ---- state dict, status, scale, destroy --------------------------------------------------- */

int lora_state_dict(void *state, peft_param_ref *out, int max)
{
    lora_state *st = state;
    if (!st || !out || max <= 0) return 0;
    /* named_parameters() order: lora_A, lora_B, lora_magnitude_vector */
    const peft_param_ref refs[3] = {
        {.saved_name = st->saved_A, .memory_name = st->memory_A, .tensor = st->A, .trainable = 1},
        {.saved_name = st->saved_B, .memory_name = st->memory_B, .tensor = st->B, .trainable = 1},
        {.saved_name = st->saved_M, .memory_name = st->memory_M, .tensor = st->magnitude,
         .trainable = 1},
    };
    const int have = st->magnitude ? 3 : 2;
    int n = max < have ? max : have;
    for (int i = 0; i < n; i++) out[i] = refs[i];
    return n;
}

const char *lora_module_type(void *state)
{
    (void)state;
    return "lora.Linear";
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
    if (st->A) lora_host->tensor_free(st->A);
    if (st->B) lora_host->tensor_free(st->B);
    if (st->magnitude) lora_host->tensor_free(st->magnitude);
    lora_host->free(st->saved_M);
    lora_host->free(st->memory_M);
    lora_host->free(st->merged_norm);
    lora_host->free(st->saved_A);
    lora_host->free(st->saved_B);
    lora_host->free(st->memory_A);
    lora_host->free(st->memory_B);
    lora_host->free(st);
}
