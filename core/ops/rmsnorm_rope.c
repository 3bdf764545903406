/* ops_rmsnorm_rope.c — RMS norm (LLaMA's LlamaRMSNorm, T5's T5LayerNorm: no mean, no bias) and
 * the rotary position embedding with Hugging Face's rotate_half convention, each with its
 * backward. Both follow transformers' fp32 arithmetic step by step: rmsnorm y = w * (x *
 * rsqrt(mean(x^2) + eps)); rope inv_freq = 1 / theta^((2i as f32) / D), angle = inv_freq * p,
 * out = x * cos + rotate_half(x) * sin. */
#include "peft/ops.h"
#include "core/ops/common.h"

#include <math.h>
#include <string.h>

/* ---- rmsnorm -------------------------------------------------------------------------------- */

typedef struct {
    peft_tensor *x, *w, *out;
    const float *wf;   /* f32 weight used by the forward */
    const float *rstd; /* (N) 1 / sqrt(mean(x^2) + eps) */
    int64_t N, C;
} rms_ctx;

// dy (N, C); x (N, C); w (C); rstd (N)
//   -> dx (N, C) += r (dy w) - r^3 x mean(dy w x), dw (C) += sum_n dy x r
static void rmsnorm_backward(peft_graph *g, void *p)
{
    rms_ctx *c = p;
    const float *dy = c->out->grad;
    if (!dy) return;
    const int64_t N = c->N, C = c->C;
    const float *x = peft_f32(c->x), *w = c->wf;
    float *dx = peft_grad_of(g, c->x);
    float *dw = peft_grad_of(g, c->w);
    for (int64_t n = 0; n < N; n++) {
        const float *xr = x + n * C, *dyr = dy + n * C;
        const float r = c->rstd[n];
        if (dx) {
            double s = 0.0;
            for (int64_t j = 0; j < C; j++) s += (double)dyr[j] * w[j] * xr[j];
            const float k = (float)(s / (double)C) * r * r * r;
            float *dxr = dx + n * C;
            for (int64_t j = 0; j < C; j++) dxr[j] += r * dyr[j] * w[j] - k * xr[j];
        }
        if (dw)
            for (int64_t j = 0; j < C; j++) dw[j] += dyr[j] * (xr[j] * r);
    }
}

// x (N, C), w (C) -> y (N, C) = (offset + w) * (x * rsqrt(mean(x^2) + eps)), per row
peft_tensor *op_rmsnorm_offset(peft_graph *g, peft_tensor *x, peft_tensor *w, float eps,
                               float offset)
{
    if (!x || !w || x->ndim < 1 || x->dtype != PEFT_DTYPE_F32) return NULL;
    const int64_t C = x->shape[x->ndim - 1];
    if (C <= 0 || w->numel != C) return NULL;
    const int64_t N = x->numel / C;
    peft_tensor *y = peft_graph_tensor_raw(g, PEFT_DTYPE_F32, x->ndim, x->shape);
    peft_tensor *rs = peft_graph_tensor_raw(g, PEFT_DTYPE_F32, 1, (int64_t[]){N});
    const float *wf = ops_as_f32(g, w);
    if (!y || !rs || !wf) return NULL;
    if (offset != 0.0f) { /* Gemma: (1.0 + weight.float()) in f32 */
        float *wo = peft_arena_alloc(g->arena, (size_t)C * sizeof(float));
        if (!wo) return NULL;
        for (int64_t j = 0; j < C; j++) wo[j] = offset + wf[j];
        wf = wo;
    }
    const float *xd = peft_f32(x);
    float *yd = peft_f32(y), *rstd = peft_f32(rs);
    for (int64_t n = 0; n < N; n++) {
        const float *xr = xd + n * C;
        double s = 0.0;
        for (int64_t j = 0; j < C; j++) s += (double)xr[j] * xr[j];
        const float var = (float)(s / (double)C);
        const float r = 1.0f / sqrtf(var + eps);
        rstd[n] = r;
        float *yr = yd + n * C;
        for (int64_t j = 0; j < C; j++) yr[j] = wf[j] * (xr[j] * r);
    }
    y->requires_grad = peft_needs_grad(g, x, w);
    if (y->requires_grad) {
        rms_ctx *c = peft_tape_push(g, rmsnorm_backward, sizeof *c);
        if (!c) return NULL;
        c->x = x; c->w = w; c->out = y; c->wf = wf;
        peft_tape_output(g, c->out);
        c->rstd = rstd; c->N = N; c->C = C;
    }
    return y;
}

// x (N, C), w (C) -> y (N, C) = w * (x * rsqrt(mean(x^2) + eps)), per row
peft_tensor *op_rmsnorm(peft_graph *g, peft_tensor *x, peft_tensor *w, float eps)
{
    return op_rmsnorm_offset(g, x, w, eps, 0.0f);
}

/* ---- rope ----------------------------------------------------------------------------------- */

typedef struct {
    peft_tensor *x, *out;
    const float *cs;  /* (R, D/2) cos then (R, D/2) sin; R = B*T with pos, T without */
    int64_t B, T, H, D, R;
} rope_ctx;

/* rotates every head of row xr (H*D) by the (cos, sin) table row; inverse = 1 rotates back */
static void rope_row(const float *xr, float *yr, const float *cr, const float *sr, int64_t H,
                     int64_t D, int inverse)
{
    const int64_t h2 = D / 2;
    for (int64_t h = 0; h < H; h++) {
        const float *x = xr + h * D;
        float *y = yr + h * D;
        for (int64_t i = 0; i < h2; i++) {
            const float a = x[i], b = x[i + h2], co = cr[i], si = inverse ? -sr[i] : sr[i];
            y[i] = a * co + (-b) * si;
            y[i + h2] = b * co + a * si;
        }
    }
}

// dy (B,T,H*D); cos, sin (R, D/2) -> dx (B,T,H*D) += rotation by -angle of dy
static void rope_backward(peft_graph *g, void *p)
{
    rope_ctx *c = p;
    const float *dy = c->out->grad;
    float *dx = dy ? peft_grad_of(g, c->x) : NULL;
    if (!dx) return;
    const int64_t HD = c->H * c->D, h2 = c->D / 2;
    float *tmp = peft_arena_alloc(g->arena, (size_t)HD * sizeof(float));
    if (!tmp) return;
    for (int64_t row = 0; row < c->B * c->T; row++) {
        const int64_t r = c->R == c->T ? row % c->T : row;
        rope_row(dy + row * HD, tmp, c->cs + r * h2, c->cs + c->R * h2 + r * h2, c->H, c->D, 1);
        float *dxr = dx + row * HD;
        for (int64_t j = 0; j < HD; j++) dxr[j] += tmp[j];
    }
}

// x (B,T,H*D), pos (B,T) or NULL, inv_freq (D/2) -> y (B,T,H*D)
peft_tensor *op_rope_freqs(peft_graph *g, peft_tensor *x, int H, const int32_t *pos,
                           const float *inv_freq)
{
    if (!x || x->ndim != 3 || x->dtype != PEFT_DTYPE_F32 || H <= 0 || x->shape[2] % H ||
        !inv_freq)
        return NULL;
    const int64_t B = x->shape[0], T = x->shape[1], HD = x->shape[2], D = HD / H;
    if (D % 2) return NULL;
    const int64_t h2 = D / 2, R = pos ? B * T : T;
    peft_tensor *y = peft_graph_tensor_raw(g, PEFT_DTYPE_F32, 3, x->shape);
    peft_tensor *cst = peft_graph_tensor_raw(g, PEFT_DTYPE_F32, 1, (int64_t[]){2 * R * h2 + 1});
    if (!y || !cst) return NULL;
    float *cs = peft_f32(cst), *sn = cs + R * h2;
    /* angle = inv_freq * p in f32 (transformers' f32 product) */
    for (int64_t r = 0; r < R; r++) {
        const float pp = pos ? (float)pos[r] : (float)r;
        for (int64_t i = 0; i < h2; i++) {
            const float ang = inv_freq[i] * pp;
            cs[r * h2 + i] = cosf(ang);
            sn[r * h2 + i] = sinf(ang);
        }
    }
    const float *xd = peft_f32(x);
    float *yd = peft_f32(y);
    for (int64_t row = 0; row < B * T; row++) {
        const int64_t r = pos ? row : row % T;
        rope_row(xd + row * HD, yd + row * HD, cs + r * h2, sn + r * h2, H, D, 0);
    }
    y->requires_grad = peft_needs_grad(g, x, NULL);
    if (y->requires_grad) {
        rope_ctx *c = peft_tape_push(g, rope_backward, sizeof *c);
        if (!c) return NULL;
        c->x = x; c->out = y; c->cs = cs;
        peft_tape_output(g, c->out);
        c->B = B; c->T = T; c->H = H; c->D = D; c->R = R;
    }
    return y;
}

// x (B,T,H*D), pos (B,T) or NULL -> y (B,T,H*D)
peft_tensor *op_rope(peft_graph *g, peft_tensor *x, int H, const int32_t *pos, float theta)
{
    if (!x || x->ndim != 3 || H <= 0 || x->shape[2] % H || !(theta > 0.0f)) return NULL;
    const int64_t D = x->shape[2] / H;
    if (D % 2) return NULL;
    float *inv = peft_arena_alloc(g->arena, (size_t)(D / 2 + 1) * sizeof(float));
    if (!inv) return NULL;
    /* inv_freq[i] = 1 / theta^((2i) / D) in f32 (transformers' default RoPE) */
    for (int64_t i = 0; i < D / 2; i++) inv[i] = 1.0f / powf(theta, (float)(2 * i) / (float)D);
    return op_rope_freqs(g, x, H, pos, inv);
}
