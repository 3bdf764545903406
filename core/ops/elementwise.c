/* ops_elementwise.c — elementwise ops for the LLaMA / BERT / T5 blocks and the task heads:
 * product of two tensors, SiLU, ReLU, tanh and the exact (erf) GELU, each with its backward.
 * The formulas follow PyTorch's fp32 CPU kernels operation for operation (silu = x / (1 +
 * exp(-x)), gelu = x * 0.5 * (1 + erf(x / sqrt 2))). SiLU's exp is the vectorised vm_expf
 * (~1 ulp, as PyTorch's own vectorised Sleef exp); erff and tanhf are glibc's. */
#include "core/ops/ops.h"
#include "core/ops/pool.h"
#include "core/ops/vmath.h"

#include <math.h>

static peft_tensor *new_like(peft_graph *g, const peft_tensor *x)
{
    return peft_graph_tensor_raw(g, PEFT_DTYPE_F32, x->ndim, x->shape);
}

/* ---- mul ------------------------------------------------------------------------------------ */

typedef struct { peft_tensor *a, *b, *out; } mul_ctx;

// dy (n); a (n), b (n) -> da (n) += dy * b, db (n) += dy * a
static void mul_backward(peft_graph *g, void *p)
{
    mul_ctx *c = p;
    const float *dy = c->out->grad;
    if (!dy) return;
    const int64_t n = c->out->numel;
    const float *a = peft_f32(c->a), *b = peft_f32(c->b);
    float *da = peft_grad_of(g, c->a);
    if (da) for (int64_t i = 0; i < n; i++) da[i] += dy[i] * b[i];
    float *db = peft_grad_of(g, c->b);
    if (db) for (int64_t i = 0; i < n; i++) db[i] += dy[i] * a[i];
}

// a (n), b (n) -> y (n) = a * b, shape of a
peft_tensor *op_mul(peft_graph *g, peft_tensor *a, peft_tensor *b)
{
    if (!a || !b || a->numel != b->numel || a->dtype != PEFT_DTYPE_F32 ||
        b->dtype != PEFT_DTYPE_F32)
        return NULL;
    peft_tensor *y = new_like(g, a);
    if (!y) return NULL;
    const float *ad = peft_f32(a), *bd = peft_f32(b);
    float *yd = peft_f32(y);
    for (int64_t i = 0; i < a->numel; i++) yd[i] = ad[i] * bd[i];
    y->requires_grad = peft_needs_grad(g, a, b);
    if (y->requires_grad) {
        mul_ctx *c = peft_tape_push(g, mul_backward, sizeof *c);
        if (!c) return NULL;
        c->a = a; c->b = b; c->out = y;
        peft_tape_output(g, c->out);
    }
    return y;
}

/* ---- unary ops: one forward kernel, one backward kernel each ---------------------------------- */

/* backward kernels get x, the op's output y and dy; they accumulate into dx */
typedef void (*unary_bwd_fn)(const float *x, const float *y, const float *dy, float *dx, int64_t n);
typedef struct { peft_tensor *x, *out; unary_bwd_fn kernel; } unary_ctx;

static void unary_backward(peft_graph *g, void *p)
{
    unary_ctx *c = p;
    const float *dy = c->out->grad;
    float *dx = dy ? peft_grad_of(g, c->x) : NULL;
    if (!dx) return;
    c->kernel(peft_f32(c->x), peft_f32(c->out), dy, dx, c->x->numel);
}

/* runs fwd on x into a new tensor and records bwd when x requires grad */
static peft_tensor *unary_op(peft_graph *g, peft_tensor *x,
                             void (*fwd)(const float *x, float *y, int64_t n), unary_bwd_fn bwd)
{
    if (!x || x->dtype != PEFT_DTYPE_F32) return NULL;
    peft_tensor *y = new_like(g, x);
    if (!y) return NULL;
    fwd(peft_f32(x), peft_f32(y), x->numel);
    y->requires_grad = peft_needs_grad(g, x, NULL);
    if (y->requires_grad) {
        unary_ctx *c = peft_tape_push(g, unary_backward, sizeof *c);
        if (!c) return NULL;
        c->x = x; c->out = y; c->kernel = bwd;
        peft_tape_output(g, c->out);
    }
    return y;
}

/* ---- silu ----------------------------------------------------------------------------------- */

// x (n) -> y (n) = x / (1 + exp(-x))   (PyTorch's silu kernel)
typedef struct { const float *x, *dy; float *y; } silu_job;
#define ELEM_GRAIN 16384

static void silu_fwd_range(void *p, int64_t lo, int64_t hi)
{
    const silu_job *j = p;
    vm_silu(j->x + lo, j->y + lo, hi - lo);
}

static void silu_bwd_range(void *p, int64_t lo, int64_t hi)
{
    const silu_job *j = p;
    vm_silu_bwd(j->x + lo, j->dy + lo, j->y + lo, hi - lo);
}

static void silu_fwd(const float *x, float *y, int64_t n)
{
    silu_job j = {x, NULL, y};
    ops_parallel(n, ELEM_GRAIN, silu_fwd_range, &j);
}

// dy (n), x (n) -> dx (n) += dy * s (1 + x (1 - s)), s = sigmoid(x)
static void silu_bwd(const float *x, const float *y, const float *dy, float *dx, int64_t n)
{
    (void)y;
    silu_job j = {x, dy, dx};
    ops_parallel(n, ELEM_GRAIN, silu_bwd_range, &j);
}

peft_tensor *op_silu(peft_graph *g, peft_tensor *x) { return unary_op(g, x, silu_fwd, silu_bwd); }

/* ---- relu ----------------------------------------------------------------------------------- */

// x (n) -> y (n) = max(x, 0); NaN stays NaN (torch.relu)
static void relu_fwd(const float *x, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] = x[i] > 0.0f || isnan(x[i]) ? x[i] : 0.0f;
}

// dy (n), x (n) -> dx (n) += dy where x > 0 (PyTorch: gradient 0 at x = 0)
static void relu_bwd(const float *x, const float *y, const float *dy, float *dx, int64_t n)
{
    (void)y;
    for (int64_t i = 0; i < n; i++) dx[i] += x[i] > 0.0f ? dy[i] : isnan(x[i]) ? x[i] : 0.0f;
}

peft_tensor *op_relu(peft_graph *g, peft_tensor *x) { return unary_op(g, x, relu_fwd, relu_bwd); }

/* ---- tanh ----------------------------------------------------------------------------------- */

// x (n) -> y (n) = tanh(x)
static void tanh_fwd(const float *x, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] = tanhf(x[i]);
}

// dy (n), y (n) -> dx (n) += dy (1 - y^2)   (PyTorch's tanh_backward uses the output)
static void tanh_bwd(const float *x, const float *y, const float *dy, float *dx, int64_t n)
{
    (void)x;
    for (int64_t i = 0; i < n; i++) dx[i] += dy[i] * (1.0f - y[i] * y[i]);
}

peft_tensor *op_tanh(peft_graph *g, peft_tensor *x) { return unary_op(g, x, tanh_fwd, tanh_bwd); }

/* ---- gelu (erf) ----------------------------------------------------------------------------- */

#define GELU_ALPHA 0.70710678118654752440f /* 1/sqrt(2) */
#define GELU_BETA_PDF 0.39894228040143267794f /* 1/sqrt(2 pi) */

// x (n) -> y (n) = x * 0.5 * (1 + erf(x / sqrt 2))
static void gelu_erf_fwd(const float *x, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] = x[i] * 0.5f * (1.0f + erff(x[i] * GELU_ALPHA));
}

// dy (n), x (n) -> dx (n) += dy (Phi(x) + x phi(x))
static void gelu_erf_bwd(const float *x, const float *y, const float *dy, float *dx, int64_t n)
{
    (void)y;
    for (int64_t i = 0; i < n; i++) {
        const float cdf = 0.5f * (1.0f + erff(x[i] * GELU_ALPHA));
        const float pdf = GELU_BETA_PDF * vm_expf(-0.5f * x[i] * x[i]);
        dx[i] += dy[i] * (cdf + x[i] * pdf);
    }
}

peft_tensor *op_gelu_erf(peft_graph *g, peft_tensor *x)
{
    return unary_op(g, x, gelu_erf_fwd, gelu_erf_bwd);
}
