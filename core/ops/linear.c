/* ops_linear.c — the linear op (cblas_sgemm, both weight layouts; f32 weights directly, bf16 /
 * f16 / int8 / NF4 weights read from their storage a tile of rows at a time, never copied whole,
 * each tile converted in the pool's threads)
 * and the small elementwise ops around it: add, scale, per-column multiply, dropout, last-dim
 * slice. Each op: forward into an arena tensor, backward recorded on the tape only when some
 * input requires grad, and only the gradients somebody needs are computed. */
#include "core/ops/ops.h"
#include "core/ops/common.h"
#include "peft/quant.h"
#include "core/ops/linear_kernels.h"
#include "core/ops/pool.h"

#include <cblas.h>
#include "core/ops/gemm.h"
#include <stdlib.h>
#include <string.h>

static peft_tensor *new_like(peft_graph *g, const peft_tensor *x)
{
    return peft_graph_tensor_raw(g, PEFT_DTYPE_F32, x->ndim, x->shape);
}

static int64_t last_dim(const peft_tensor *t) { return t->ndim ? t->shape[t->ndim - 1] : 1; }

/* ---- weight tiles --------------------------------------------------------------------------- */

/* A tile is a run of whole rows of the stored weight, about TILE_ELEMS f32 (2 MB: the GEMM
 * packs the activations once per tile, so bigger tiles cost less of that; the tile itself
 * stays in L2/L3 while the GEMM reads it), in the calling thread's scratch (ops_scratch). */
#define TILE_ELEMS ((int64_t)1 << 19)

static int64_t tile_rows(int64_t rowlen, int64_t rows)
{
    int64_t r = rowlen > 0 ? TILE_ELEMS / rowlen : rows;
    if (r < 8) r = 8;
    return r < rows ? r : rows;
}

/* stored elements [start, start + n) of w -> dst (n) f32, split over the pool's threads (the
 * BLAS threads would otherwise wait while one thread converts); every element is converted on
 * its own, so the bytes do not depend on the split */
typedef struct { const peft_tensor *w; int64_t start; float *dst; } tile_job;

static void tile_range(void *p, int64_t lo, int64_t hi)
{
    const tile_job *j = p;
    peft_tensor_range_to_f32(j->w, j->start + lo, hi - lo, j->dst + lo);
}

void peft_linear_tile_to_f32(const peft_tensor *w, int64_t start, int64_t n, float *dst)
{
    tile_job j = {w, start, dst};
    ops_parallel(n, OPS_ELEM_GRAIN, tile_range, &j);
}

// x (N, in), w stored (out, in) or (in, out) in any dtype, yd (N, out) holding the bias (beta 1)
// or not (beta 0) -> yd += x W^T, one tile of stored rows at a time
int peft_linear_kernel_fwd(const float *x, const peft_tensor *w, int w_in_out, int64_t N,
                                int64_t in, int64_t outf, float beta, float *yd)
{
    const int64_t R = w->shape[0], Cw = w->shape[1], tr = tile_rows(Cw, R);
    float *tile = ops_scratch(OPS_SCRATCH_TILE, (size_t)(tr * Cw));
    if (!tile) return -1;
    for (int64_t r0 = 0; r0 < R; r0 += tr) {
        const int nr = (int)(R - r0 < tr ? R - r0 : tr);
        peft_linear_tile_to_f32(w, r0 * Cw, (int64_t)nr * Cw, tile); /* rows r0.. (nr, Cw) */
        if (!w_in_out) { /* rows are output features: y[:, r0:r0+nr] = x tile^T */
            if (N <= 4)
                for (int64_t n = 0; n < N; n++)
                    cblas_sgemv(CblasRowMajor, CblasNoTrans, nr, (int)in, 1.0f, tile, (int)in,
                                x + n * in, 1, beta, yd + n * outf + r0, 1);
            else
                ops_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)N, nr, (int)in, 1.0f, x,
                            (int)in, tile, (int)in, beta, yd + r0, (int)outf);
        } else {         /* rows are input features: y += x[:, r0:r0+nr] tile */
            const float b = r0 ? 1.0f : beta;
            if (N <= 4)
                for (int64_t n = 0; n < N; n++)
                    cblas_sgemv(CblasRowMajor, CblasTrans, nr, (int)outf, 1.0f, tile, (int)outf,
                                x + n * in + r0, 1, b, yd + n * outf, 1);
            else
                ops_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)N, (int)outf, nr, 1.0f,
                            x + r0, (int)in, tile, (int)outf, b, yd, (int)outf);
        }
    }
    return 0;
}

// dy (N, out), w stored (out, in) or (in, out) in any dtype -> dx (N, in) += dy W
int peft_linear_kernel_dx(const float *dy, const peft_tensor *w, int w_in_out, int64_t N,
                           int64_t in, int64_t outf, float *dx)
{
    const int64_t R = w->shape[0], Cw = w->shape[1], tr = tile_rows(Cw, R);
    float *tile = ops_scratch(OPS_SCRATCH_TILE, (size_t)(tr * Cw));
    if (!tile) return -1;
    for (int64_t r0 = 0; r0 < R; r0 += tr) {
        const int nr = (int)(R - r0 < tr ? R - r0 : tr);
        peft_linear_tile_to_f32(w, r0 * Cw, (int64_t)nr * Cw, tile);
        if (!w_in_out) /* dx (N,in) += dy[:, r0:r0+nr] (N,nr) tile (nr,in) */
            ops_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)N, (int)in, nr, 1.0f,
                        dy + r0, (int)outf, tile, (int)in, 1.0f, dx, (int)in);
        else           /* dx[:, r0:r0+nr] (N,nr) += dy (N,out) tile^T (out,nr) */
            ops_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)N, nr, (int)outf, 1.0f, dy,
                        (int)outf, tile, (int)outf, 1.0f, dx + r0, (int)in);
    }
    return 0;
}

/* ---- linear --------------------------------------------------------------------------------- */

typedef struct {
    peft_tensor *x, *w, *b, *out;
    const float *wf; /* the f32 weight, or NULL: read w tile by tile */
    int w_in_out;
    int64_t N, in, outf;
} linear_ctx;

// dy (N, out); x (N, in); W (out, in) or (in, out) -> dx (N, in), dW like W, db (out)
static void linear_backward(peft_graph *g, void *p)
{
    linear_ctx *c = p;
    const float *dy = c->out->grad;
    if (!dy) return;
    const int N = (int)c->N, in = (int)c->in, out = (int)c->outf;
    float *dx = peft_grad_of(g, c->x);
    if (dx && !c->wf) {
        peft_linear_kernel_dx(dy, c->w, c->w_in_out, c->N, c->in, c->outf, dx);
    } else if (dx) {
        if (!c->w_in_out) /* dx (N,in) += dy (N,out) W (out,in) */
            ops_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, in, out, 1.0f, dy, out,
                        c->wf, in, 1.0f, dx, in);
        else              /* dx (N,in) += dy (N,out) W^T, W (in,out) */
            ops_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, in, out, 1.0f, dy, out,
                        c->wf, out, 1.0f, dx, in);
    }
    float *dw = peft_grad_of(g, c->w);
    if (dw) {
        const float *x = peft_f32(c->x);
        if (!c->w_in_out) /* dW (out,in) += dy^T (out,N) x (N,in) */
            ops_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, N, 1.0f, dy, out, x,
                        in, 1.0f, dw, in);
        else              /* dW (in,out) += x^T (in,N) dy (N,out) */
            ops_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, in, out, N, 1.0f, x, in, dy,
                        out, 1.0f, dw, out);
    }
    float *db = c->b ? peft_grad_of(g, c->b) : NULL;
    if (db) {
        for (int64_t n = 0; n < c->N; n++) {
            const float *r = dy + n * out;
            for (int o = 0; o < out; o++) db[o] += r[o];
        }
    }
}

// x (N, in), w (out, in) [or (in, out) if w_in_out], b (out) -> y (N, out)
peft_tensor *op_linear(peft_graph *g, peft_tensor *x, peft_tensor *w, peft_tensor *b, int w_in_out)
{
    if (!x || !w || w->ndim != 2 || x->dtype != PEFT_DTYPE_F32) return NULL;
    const int64_t in = last_dim(x);
    const int64_t outf = w_in_out ? w->shape[1] : w->shape[0];
    if ((w_in_out ? w->shape[0] : w->shape[1]) != in || in <= 0) return NULL;
    if (b && b->numel != outf) return NULL;
    const int64_t N = x->numel / in;

    int64_t shape[PEFT_MAX_DIMS];
    int nd = x->ndim ? x->ndim : 1;
    for (int i = 0; i < nd; i++) shape[i] = x->ndim ? x->shape[i] : 1;
    shape[nd - 1] = outf;
    peft_tensor *y = peft_graph_tensor_raw(g, PEFT_DTYPE_F32, nd, shape);
    const float *wf = w->dtype == PEFT_DTYPE_F32 ? (const float *)w->data : NULL;
    const float *bf = b ? ops_as_f32(g, b) : NULL;
    if (!y || (b && !bf)) return NULL;
    float *yd = peft_f32(y);

    float beta = 0.0f;
    if (bf) {
        for (int64_t n = 0; n < N; n++) memcpy(yd + n * outf, bf, (size_t)outf * sizeof(float));
        beta = 1.0f;
    }
    if (!wf) {
        if (N > 0 && outf > 0 &&
            peft_linear_kernel_fwd(peft_f32(x), w, w_in_out, N, in, outf, beta, yd))
            return NULL;
    } else if (N > 0 && N <= 4 && outf > 0) {
        /* a few rows (token-by-token decoding): GEMV per row; a GEMM would first pack (copy)
         * the whole weight, which costs more than the product itself here */
        for (int64_t n = 0; n < N; n++)
            cblas_sgemv(CblasRowMajor, w_in_out ? CblasTrans : CblasNoTrans,
                        w_in_out ? (int)in : (int)outf, w_in_out ? (int)outf : (int)in, 1.0f, wf,
                        w_in_out ? (int)outf : (int)in, peft_f32(x) + n * in, 1, beta,
                        yd + n * outf, 1);
    } else if (N > 0 && outf > 0) {
        ops_sgemm(CblasRowMajor, CblasNoTrans, w_in_out ? CblasNoTrans : CblasTrans, (int)N,
                    (int)outf, (int)in, 1.0f, peft_f32(x), (int)in, wf,
                    w_in_out ? (int)outf : (int)in, beta, yd, (int)outf);
    }

    y->requires_grad = g->recording && (x->requires_grad || w->requires_grad ||
                                        (b && b->requires_grad));
    if (y->requires_grad) {
        linear_ctx *c = peft_tape_push(g, linear_backward, sizeof *c);
        if (!c) return NULL;
        c->x = x; c->w = w; c->b = b; c->out = y; c->wf = wf;
        peft_tape_output(g, c->out);
        c->w_in_out = w_in_out; c->N = N; c->in = in; c->outf = outf;
    }
    return y;
}

/* ---- add ------------------------------------------------------------------------------------ */

/* the elementwise kernels of add and scale, run over slices in the pool (ops_map1/2) */
// x (n) -> y (n) += x
static void k_acc(const float *x, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] += x[i];
}
// a (n), b (n) -> y (n) = a + b
static void k_add(const float *a, const float *b, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] = a[i] + b[i];
}

typedef struct { peft_tensor *a, *b, *out; } add_ctx;

// dy (n) -> da (n) += dy, db (n) += dy
static void add_backward(peft_graph *g, void *p)
{
    add_ctx *c = p;
    const float *dy = c->out->grad;
    if (!dy) return;
    int64_t n = c->out->numel;
    float *da = peft_grad_of(g, c->a);
    if (da) ops_map1(k_acc, dy, da, n);
    float *db = peft_grad_of(g, c->b);
    if (db) ops_map1(k_acc, dy, db, n);
}

// a (n), b (n) -> y (n) = a + b, shape of a
peft_tensor *op_add(peft_graph *g, peft_tensor *a, peft_tensor *b)
{
    if (!a || !b || a->numel != b->numel) return NULL;
    peft_tensor *y = new_like(g, a);
    if (!y) return NULL;
    ops_map2(k_add, peft_f32(a), peft_f32(b), peft_f32(y), a->numel);
    y->requires_grad = peft_needs_grad(g, a, b);
    if (y->requires_grad) {
        add_ctx *c = peft_tape_push(g, add_backward, sizeof *c);
        if (!c) return NULL;
        c->a = a; c->b = b; c->out = y;
        peft_tape_output(g, c->out);
    }
    return y;
}

/* ---- scale ---------------------------------------------------------------------------------- */

typedef struct { peft_tensor *x, *out; float s; } scale_ctx;

// dy (n) -> dx (n) += s * dy
static void scale_backward(peft_graph *g, void *p)
{
    scale_ctx *c = p;
    const float *dy = c->out->grad;
    float *dx = dy ? peft_grad_of(g, c->x) : NULL;
    if (!dx) return;
    for (int64_t i = 0; i < c->out->numel; i++) dx[i] += c->s * dy[i];
}

// x (n) -> y (n) = s * x
peft_tensor *op_scale(peft_graph *g, peft_tensor *x, float s)
{
    if (!x) return NULL;
    peft_tensor *y = new_like(g, x);
    if (!y) return NULL;
    const float *xd = peft_f32(x);
    float *yd = peft_f32(y);
    for (int64_t i = 0; i < x->numel; i++) yd[i] = xd[i] * s;
    y->requires_grad = peft_needs_grad(g, x, NULL);
    if (y->requires_grad) {
        scale_ctx *c = peft_tape_push(g, scale_backward, sizeof *c);
        if (!c) return NULL;
        c->x = x; c->out = y; c->s = s;
        peft_tape_output(g, c->out);
    }
    return y;
}

/* ---- mul_lastdim ---------------------------------------------------------------------------- */

typedef struct { peft_tensor *x, *v, *out; } mul_ctx;

// dy (R, n); x (R, n); v (n) -> dx (R, n) += dy * v, dv (n) += sum_r dy * x
static void mul_lastdim_backward(peft_graph *g, void *p)
{
    mul_ctx *c = p;
    const float *dy = c->out->grad;
    if (!dy) return;
    const int64_t n = c->v->numel, R = c->x->numel / n;
    const float *x = peft_f32(c->x), *v = peft_f32(c->v);
    float *dx = peft_grad_of(g, c->x);
    if (dx)
        for (int64_t r = 0; r < R; r++)
            for (int64_t j = 0; j < n; j++) dx[r * n + j] += dy[r * n + j] * v[j];
    float *dv = peft_grad_of(g, c->v);
    if (dv)
        for (int64_t r = 0; r < R; r++)
            for (int64_t j = 0; j < n; j++) dv[j] += dy[r * n + j] * x[r * n + j];
}

// x (R, n), v (n) -> y (R, n) = x * v (broadcast over rows)
peft_tensor *op_mul_lastdim(peft_graph *g, peft_tensor *x, peft_tensor *v)
{
    if (!x || !v || v->dtype != PEFT_DTYPE_F32) return NULL;
    const int64_t n = last_dim(x);
    if (v->numel != n || n <= 0) return NULL;
    peft_tensor *y = new_like(g, x);
    if (!y) return NULL;
    const int64_t R = x->numel / n;
    const float *xd = peft_f32(x), *vd = peft_f32(v);
    float *yd = peft_f32(y);
    for (int64_t r = 0; r < R; r++)
        for (int64_t j = 0; j < n; j++) yd[r * n + j] = xd[r * n + j] * vd[j];
    y->requires_grad = peft_needs_grad(g, x, v);
    if (y->requires_grad) {
        mul_ctx *c = peft_tape_push(g, mul_lastdim_backward, sizeof *c);
        if (!c) return NULL;
        c->x = x; c->v = v; c->out = y;
        peft_tape_output(g, c->out);
    }
    return y;
}

/* ---- dropout -------------------------------------------------------------------------------- */

typedef struct { peft_tensor *x, *out; const float *mask; } dropout_ctx;

// dy (n), mask (n) in {0, 1/(1-p)} -> dx (n) += dy * mask
static void dropout_backward(peft_graph *g, void *p)
{
    dropout_ctx *c = p;
    const float *dy = c->out->grad;
    float *dx = dy ? peft_grad_of(g, c->x) : NULL;
    if (!dx) return;
    for (int64_t i = 0; i < c->out->numel; i++) dx[i] += dy[i] * c->mask[i];
}

// x (n) -> y (n) = x * mask, mask_i = 1/(1-p) with probability 1-p, else 0
peft_tensor *op_dropout(peft_graph *g, peft_tensor *x, float p)
{
    if (!x) return NULL;
    if (!g->training || !(p > 0.0f) || !g->rng) return x;
    peft_tensor *y = new_like(g, x);
    peft_tensor *m = new_like(g, x);
    if (!y || !m) return NULL;
    const float keep = p >= 1.0f ? 0.0f : 1.0f / (1.0f - p);
    const float *xd = peft_f32(x);
    float *yd = peft_f32(y), *md = peft_f32(m);
    for (int64_t i = 0; i < x->numel; i++) {
        md[i] = peft_rng_uniform(g->rng) >= (double)p ? keep : 0.0f;
        yd[i] = xd[i] * md[i];
    }
    y->requires_grad = peft_needs_grad(g, x, NULL);
    if (y->requires_grad) {
        dropout_ctx *c = peft_tape_push(g, dropout_backward, sizeof *c);
        if (!c) return NULL;
        c->x = x; c->out = y; c->mask = md;
        peft_tape_output(g, c->out);
    }
    return y;
}

/* ---- slice_lastdim -------------------------------------------------------------------------- */

typedef struct { peft_tensor *x, *out; int64_t off, width, C; } slice_ctx;

/* rows [lo, hi) of the slice: forward copies x's columns out, backward adds dy's rows back */
typedef struct { const float *src; float *dst; int64_t off, width, C; int bwd; } slice_job;

static void slice_rows(void *p, int64_t lo, int64_t hi)
{
    const slice_job *j = p;
    for (int64_t r = lo; r < hi; r++) {
        if (!j->bwd) {
            memcpy(j->dst + r * j->width, j->src + r * j->C + j->off,
                   (size_t)j->width * sizeof(float));
            continue;
        }
        float *d = j->dst + r * j->C + j->off;
        const float *s = j->src + r * j->width;
        for (int64_t k = 0; k < j->width; k++) d[k] += s[k];
    }
}

// dy (R, width) -> dx (R, C)[:, off:off+width] += dy   (rows in the pool's threads)
static void slice_backward(peft_graph *g, void *p)
{
    slice_ctx *c = p;
    const float *dy = c->out->grad;
    float *dx = dy ? peft_grad_of(g, c->x) : NULL;
    if (!dx) return;
    slice_job j = {dy, dx, c->off, c->width, c->C, 1};
    ops_parallel(c->x->numel / c->C, OPS_ROW_GRAIN(c->width), slice_rows, &j);
}

// x (R, C) -> y (R, width) = x[:, off:off+width]
peft_tensor *op_slice_lastdim(peft_graph *g, peft_tensor *x, int64_t off, int64_t width)
{
    if (!x || x->ndim < 1) return NULL;
    const int64_t C = last_dim(x);
    if (off < 0 || width < 0 || off + width > C || C <= 0) return NULL;
    int64_t shape[PEFT_MAX_DIMS];
    for (int i = 0; i < x->ndim; i++) shape[i] = x->shape[i];
    shape[x->ndim - 1] = width;
    peft_tensor *y = peft_graph_tensor_raw(g, PEFT_DTYPE_F32, x->ndim, shape);
    if (!y) return NULL;
    slice_job j = {peft_f32(x), peft_f32(y), off, width, C, 0};
    if (width > 0) ops_parallel(x->numel / C, OPS_ROW_GRAIN(width), slice_rows, &j);
    y->requires_grad = peft_needs_grad(g, x, NULL);
    if (y->requires_grad) {
        slice_ctx *c = peft_tape_push(g, slice_backward, sizeof *c);
        if (!c) return NULL;
        c->x = x; c->out = y; c->off = off; c->width = width; c->C = C;
        peft_tape_output(g, c->out);
    }
    return y;
}
