/* ops_elementwise.c — elementwise ops for the LLaMA / BERT / T5 blocks and the task heads:
 * product of two tensors, SiLU, ReLU, tanh and the exact (erf) GELU, each with its backward.
 * The formulas follow PyTorch's fp32 CPU kernels operation for operation (silu = x / (1 +
 * exp(-x)), gelu = x * 0.5 * (1 + erf(x / sqrt 2))). exp and erf are the vectorised vm_expf
 * and vm_erff (~1 ulp, as PyTorch's own vectorised Sleef exp and erf); tanhf is glibc's. SiLU,
 * GELU, mul run in the pool's threads. */
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

// a (n), b (n) -> y (n) += a * b   (pool slices: ops_map2)
static void k_fma(const float *a, const float *b, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] += a[i] * b[i];
}
// a (n), b (n) -> y (n) = a * b
static void k_mul(const float *a, const float *b, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] = a[i] * b[i];
}

// dy (n); a (n), b (n) -> da (n) += dy * b, db (n) += dy * a
static void mul_backward(peft_graph *g, void *p)
{
    mul_ctx *c = p;
    const float *dy = c->out->grad;
    if (!dy) return;
    const int64_t n = c->out->numel;
    const float *a = peft_f32(c->a), *b = peft_f32(c->b);
    float *da = peft_grad_of(g, c->a);
    if (da) ops_map2(k_fma, dy, b, da, n);
    float *db = peft_grad_of(g, c->b);
    if (db) ops_map2(k_fma, dy, a, db, n);
}

// a (n), b (n) -> y (n) = a * b, shape of a
peft_tensor *op_mul(peft_graph *g, peft_tensor *a, peft_tensor *b)
{
    if (!a || !b || a->numel != b->numel || a->dtype != PEFT_DTYPE_F32 ||
        b->dtype != PEFT_DTYPE_F32)
        return NULL;
    peft_tensor *y = new_like(g, a);
    if (!y) return NULL;
    ops_map2(k_mul, peft_f32(a), peft_f32(b), peft_f32(y), a->numel);
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

// x (n) -> y (n) = x / (1 + exp(-x))   (PyTorch's silu kernel), in the pool's threads
static void silu_fwd(const float *x, float *y, int64_t n) { ops_map1(vm_silu, x, y, n); }

// dy (n), x (n) -> dx (n) += dy * s (1 + x (1 - s)), s = sigmoid(x)
static void silu_bwd(const float *x, const float *y, const float *dy, float *dx, int64_t n)
{
    (void)y;
    ops_map2(vm_silu_bwd, x, dy, dx, n);
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

// x (n) -> y (n) = x * 0.5 * (1 + erf(x / sqrt 2)), erf = vm_erff, in the pool's threads
static void gelu_erf_fwd(const float *x, float *y, int64_t n) { ops_map1(vm_gelu_erf, x, y, n); }

// dy (n), x (n) -> dx (n) += dy (Phi(x) + x phi(x))
static void gelu_erf_bwd(const float *x, const float *y, const float *dy, float *dx, int64_t n)
{
    (void)y;
    ops_map2(vm_gelu_erf_bwd, x, dy, dx, n);
}

peft_tensor *op_gelu_erf(peft_graph *g, peft_tensor *x)
{
    return unary_op(g, x, gelu_erf_fwd, gelu_erf_bwd);
}
