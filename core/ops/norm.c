/* ops_norm.c — layer norm (PyTorch semantics: biased variance, eps inside the sqrt) and the
 * tanh-approximated GELU, each with its backward. */
#include "core/ops/ops.h"
#include "core/ops/common.h"
#include "core/ops/pool.h"

#include <math.h>
#include <string.h>

#define ROW_GRAIN(C) OPS_ROW_GRAIN(C)

/* ---- layernorm ------------------------------------------------------------------------------ */

typedef struct {
    peft_tensor *x, *w, *b, *out;
    const float *wf;          /* f32 weight or NULL (= 1) */
    const float *mean, *rstd; /* (N) */
    int64_t N, C;
} ln_ctx;

typedef struct {
    const ln_ctx *c;
    const float *x, *dy;
    float *dx;
} ln_bwd_job;

// dy, x rows [lo, hi) (., C) -> dx of those rows
static void ln_bwd_rows(void *p, int64_t lo, int64_t hi)
{
    const ln_bwd_job *jb = p;
    const ln_ctx *c = jb->c;
    const int64_t C = c->C;
    for (int64_t n = lo; n < hi; n++) {
        const float *xr = jb->x + n * C, *dyr = jb->dy + n * C;
        const float mu = c->mean[n], rs = c->rstd[n];
        /* dx = rstd * (dnorm - mean(dnorm) - xhat * mean(dnorm * xhat)), dnorm = dy * w */
        double s1 = 0.0, s2 = 0.0;
        for (int64_t j = 0; j < C; j++) {
            float xhat = (xr[j] - mu) * rs;
            float dn = c->wf ? dyr[j] * c->wf[j] : dyr[j];
            s1 += dn;
            s2 += (double)dn * xhat;
        }
        const float m1 = (float)(s1 / (double)C), m2 = (float)(s2 / (double)C);
        float *dxr = jb->dx + n * C;
        for (int64_t j = 0; j < C; j++) {
            float xhat = (xr[j] - mu) * rs;
            float dn = c->wf ? dyr[j] * c->wf[j] : dyr[j];
            dxr[j] += rs * (dn - m1 - xhat * m2);
        }
    }
}

typedef struct {
    const float *x, *dy, *mean, *rstd;
    int64_t N, C;
    float *dw, *db;
} norm_col_job;

// dy, x (N, C) -> dw, db columns [lo, hi), each summed over the rows in order
static void norm_param_cols(void *p, int64_t lo, int64_t hi)
{
    const norm_col_job *j = p;
    const int64_t C = j->C;
    for (int64_t n = 0; n < j->N; n++) {
        const float *xr = j->x + n * C, *dyr = j->dy + n * C;
        const float mu = j->mean ? j->mean[n] : 0.0f, rs = j->rstd[n];
        if (j->dw)
            for (int64_t k = lo; k < hi; k++) j->dw[k] += dyr[k] * ((xr[k] - mu) * rs);
        if (j->db)
            for (int64_t k = lo; k < hi; k++) j->db[k] += dyr[k];
    }
}

void ops_norm_param_grads(const float *x, const float *dy, const float *mean, const float *rstd,
                          int64_t N, int64_t C, float *dw, float *db)
{
    if (!dw && !db) return;
    norm_col_job j = {x, dy, mean, rstd, N, C, dw, db};
    ops_parallel(C, OPS_COL_GRAIN(N), norm_param_cols, &j);
}

// dy (N, C); x (N, C); w (C); mean, rstd (N) -> dx (N, C), dw (C), db (C)
static void layernorm_backward(peft_graph *g, void *p)
{
    ln_ctx *c = p;
    const float *dy = c->out->grad;
    if (!dy) return;
    const int64_t N = c->N, C = c->C;
    const float *x = peft_f32(c->x);
    float *dx = peft_grad_of(g, c->x);
    float *dw = c->w ? peft_grad_of(g, c->w) : NULL;
    float *db = c->b ? peft_grad_of(g, c->b) : NULL;
    if (dx) {
        ln_bwd_job j = {c, x, dy, dx};
        ops_parallel(N, ROW_GRAIN(C), ln_bwd_rows, &j);
    }
    ops_norm_param_grads(x, dy, c->mean, c->rstd, N, C, dw, db);
}

typedef struct {
    const float *x, *w, *b;
    float *y, *mean, *rstd;
    int64_t C;
    float eps;
} ln_fwd_job;

// x rows [lo, hi) (., C) -> y, mean, rstd of those rows
static void ln_fwd_rows(void *p, int64_t lo, int64_t hi)
{
    const ln_fwd_job *j = p;
    const int64_t C = j->C;
    for (int64_t n = lo; n < hi; n++) {
        const float *xr = j->x + n * C;
        double s = 0.0;
        for (int64_t k = 0; k < C; k++) s += xr[k];
        const double mu = s / (double)C;
        double v = 0.0;
        for (int64_t k = 0; k < C; k++) {
            double d = xr[k] - mu;
            v += d * d;
        }
        v /= (double)C; /* biased */
        const float muf = (float)mu, rs = (float)(1.0 / sqrt(v + (double)j->eps));
        j->mean[n] = muf;
        j->rstd[n] = rs;
        float *yr = j->y + n * C;
        for (int64_t k = 0; k < C; k++) {
            float o = (xr[k] - muf) * rs;
            if (j->w) o *= j->w[k];
            if (j->b) o += j->b[k];
            yr[k] = o;
        }
    }
}

peft_tensor *op_layernorm(peft_graph *g, peft_tensor *x, peft_tensor *w, peft_tensor *b, float eps)
{
    return op_layernorm_to(g, x, w, b, eps, -1);
}

// x (N, C), w (C), b (C) -> y (N, C) = (x - mean) / sqrt(var + eps) * w + b, per row; y in the
// graph's transient buffer `slot` when slot >= 0 (the backward reads x, mean and rstd, never y)
peft_tensor *op_layernorm_to(peft_graph *g, peft_tensor *x, peft_tensor *w, peft_tensor *b,
                             float eps, int slot)
{
    if (!x || x->ndim < 1 || x->dtype != PEFT_DTYPE_F32) return NULL;
    const int64_t C = x->shape[x->ndim - 1];
    if (C <= 0 || (w && w->numel != C) || (b && b->numel != C)) return NULL;
    const int64_t N = x->numel / C;
    peft_tensor *y = slot >= 0 ? peft_graph_tensor_transient(g, slot, x->ndim, x->shape)
                               : peft_graph_tensor_raw(g, PEFT_DTYPE_F32, x->ndim, x->shape);
    peft_tensor *stats = peft_graph_tensor_raw(g, PEFT_DTYPE_F32, 1, (int64_t[]){2 * N});
    const float *wf = w ? ops_as_f32(g, w) : NULL;
    const float *bf = b ? ops_as_f32(g, b) : NULL;
    if (!y || !stats || (w && !wf) || (b && !bf)) return NULL;
    ln_fwd_job j = {peft_f32(x), wf, bf, peft_f32(y), peft_f32(stats), peft_f32(stats) + N, C,
                    eps};
    ops_parallel(N, ROW_GRAIN(C), ln_fwd_rows, &j);
    float *mean = j.mean, *rstd = j.rstd;
    y->requires_grad = g->recording && (x->requires_grad || (w && w->requires_grad) ||
                                        (b && b->requires_grad));
    if (y->requires_grad) {
        ln_ctx *c = peft_tape_push(g, layernorm_backward, sizeof *c);
        if (!c) return NULL;
        c->x = x; c->w = w; c->b = b; c->out = y; c->wf = wf;
        peft_tape_output(g, c->out);
        c->mean = mean; c->rstd = rstd; c->N = N; c->C = C;
    }
    return y;
}

/* ---- gelu (tanh) ---------------------------------------------------------------------------- */

#define GELU_BETA 0.7978845608028654f /* sqrt(2/pi) */
#define GELU_KAPPA 0.044715f

typedef struct { peft_tensor *x, *out; } gelu_ctx;

/* tanh for the GELU kernels, branch-free so that the loops vectorise (glibc's tanhf does not):
 * tanh(u) = (e - 1) / (e + 1), e = 2^(2u log2 e) from a Cody-Waite split and a degree-6
 * polynomial for 2^f, f in [-0.5, 0.5]. |error| < 2e-7 against tanh in double. */
static inline float gelu_tanh_approx(float u)
{
    u = u == u ? u : 0.0f; /* NaN: any finite u keeps the NaN in 0.5 x (1 + tanh) */
    u = u < -9.0f ? -9.0f : u > 9.0f ? 9.0f : u;
    float z = 2.8853900817779268f * u; /* 2u * log2(e) */
    float n = (z + 12582912.0f) - 12582912.0f; /* round to nearest (1.5 * 2^23 trick) */
    float f = z - n;
    float p = 1.5403530393381609e-4f;
    p = p * f + 1.3333558146428443e-3f;
    p = p * f + 9.6181291076284772e-3f;
    p = p * f + 5.5504108664821580e-2f;
    p = p * f + 2.4022650695910071e-1f;
    p = p * f + 6.9314718055994531e-1f;
    p = p * f + 1.0f;
    union { float f; uint32_t i; } two_n = {.i = (uint32_t)((int32_t)n + 127) << 23};
    float e = p * two_n.f;
    return (e - 1.0f) / (e + 1.0f);
}

#define VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))

// dy (n), x (n) -> dx (n) += dy * gelu'(x)
VECTOR_CLONES static void gelu_backward_kernel(const float *x, const float *dy, float *dx, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        const float xi = x[i];
        const float u = GELU_BETA * (xi + GELU_KAPPA * xi * xi * xi);
        const float t = gelu_tanh_approx(u);
        const float du = GELU_BETA * (1.0f + 3.0f * GELU_KAPPA * xi * xi);
        const float d = 0.5f * (1.0f + t) + 0.5f * xi * (1.0f - t * t) * du;
        dx[i] += dy[i] * d;
    }
}

// x (n) -> y (n) = 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
VECTOR_CLONES static void gelu_forward_kernel(const float *x, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        const float xi = x[i];
        const float inner = GELU_BETA * (xi + GELU_KAPPA * (xi * xi * xi));
        y[i] = 0.5f * xi * (1.0f + gelu_tanh_approx(inner));
    }
}

static void gelu_backward(peft_graph *g, void *p)
{
    gelu_ctx *c = p;
    const float *dy = c->out->grad;
    float *dx = dy ? peft_grad_of(g, c->x) : NULL;
    if (!dx) return;
    ops_map2(gelu_backward_kernel, peft_f32(c->x), dy, dx, c->x->numel); /* pool threads */
}

/* x (n) -> y (n): GELU, tanh approximation; y in the graph's transient buffer `slot` when
 * slot >= 0 (the backward reads x only, so y need not outlive its consumer's forward) */
peft_tensor *op_gelu_tanh_to(peft_graph *g, peft_tensor *x, int slot)
{
    if (!x || x->dtype != PEFT_DTYPE_F32) return NULL;
    peft_tensor *y = slot >= 0 ? peft_graph_tensor_transient(g, slot, x->ndim, x->shape)
                               : peft_graph_tensor_raw(g, PEFT_DTYPE_F32, x->ndim, x->shape);
    if (!y) return NULL;
    ops_map1(gelu_forward_kernel, peft_f32(x), peft_f32(y), x->numel); /* pool threads */
    y->requires_grad = peft_needs_grad(g, x, NULL);
    if (y->requires_grad) {
        gelu_ctx *c = peft_tape_push(g, gelu_backward, sizeof *c);
        if (!c) return NULL;
        c->x = x; c->out = y;
        peft_tape_output(g, c->out);
    }
    return y;
}

peft_tensor *op_gelu_tanh(peft_graph *g, peft_tensor *x) { return op_gelu_tanh_to(g, x, -1); }
