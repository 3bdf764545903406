/* ops_rmsnorm_rope.c — RMS norm (LLaMA's LlamaRMSNorm, T5's T5LayerNorm: no mean, no bias) and
 * the rotary position embedding with Hugging Face's rotate_half convention, each with its
 * backward. Both follow transformers' fp32 arithmetic step by step: rmsnorm y = w * (x *
 * rsqrt(mean(x^2) + eps)); rope inv_freq = 1 / theta^((2i as f32) / D), angle = inv_freq * p,
 * out = x * cos + rotate_half(x) * sin. */
#include "core/ops/ops.h"
#include "core/ops/common.h"
#include "core/ops/pool.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* ---- rmsnorm -------------------------------------------------------------------------------- */

typedef struct {
    peft_tensor *x, *w, *out;
    const float *wf;   /* f32 weight used by the forward */
    const float *rstd; /* (N) 1 / sqrt(mean(x^2) + eps) */
    int64_t N, C;
} rms_ctx;

typedef struct {
    const rms_ctx *c;
    const float *x, *dy;
    float *dx, *dw;
} rms_bwd_job;

// dy, x rows [lo, hi) (., C) -> dx of those rows += r (dy w) - r^3 x mean(dy w x)
static void rms_bwd_rows(void *p, int64_t lo, int64_t hi)
{
    const rms_bwd_job *j = p;
    const int64_t C = j->c->C;
    const float *w = j->c->wf;
    for (int64_t n = lo; n < hi; n++) {
        const float *xr = j->x + n * C, *dyr = j->dy + n * C;
        const float r = j->c->rstd[n];
        double s = 0.0;
        for (int64_t k = 0; k < C; k++) s += (double)dyr[k] * w[k] * xr[k];
        const float kk = (float)(s / (double)C) * r * r * r;
        float *dxr = j->dx + n * C;
        for (int64_t k = 0; k < C; k++) dxr[k] += r * dyr[k] * w[k] - kk * xr[k];
    }
}

// dy (N, C); x (N, C); w (C); rstd (N)
//   -> dx (N, C) += r (dy w) - r^3 x mean(dy w x), dw (C) += sum_n dy x r (pool threads)
static void rmsnorm_backward(peft_graph *g, void *p)
{
    rms_ctx *c = p;
    const float *dy = c->out->grad;
    if (!dy) return;
    rms_bwd_job j = {c, peft_f32(c->x), dy, peft_grad_of(g, c->x), peft_grad_of(g, c->w)};
    if (j.dx) ops_parallel(c->N, OPS_ROW_GRAIN(c->C), rms_bwd_rows, &j);
    ops_norm_param_grads(j.x, dy, NULL, c->rstd, c->N, c->C, j.dw, NULL);
}

typedef struct {
    const float *x, *w;
    float *y, *rstd;
    int64_t C;
    float eps;
} rms_fwd_job;

// x rows [lo, hi) (., C) -> y, rstd of those rows
static void rms_fwd_rows(void *p, int64_t lo, int64_t hi)
{
    const rms_fwd_job *j = p;
    const int64_t C = j->C;
    for (int64_t n = lo; n < hi; n++) {
        const float *xr = j->x + n * C;
        double s = 0.0;
        for (int64_t k = 0; k < C; k++) s += (double)xr[k] * xr[k];
        const float var = (float)(s / (double)C);
        const float r = 1.0f / sqrtf(var + j->eps);
        j->rstd[n] = r;
        float *yr = j->y + n * C;
        for (int64_t k = 0; k < C; k++) yr[k] = j->w[k] * (xr[k] * r);
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
    float *rstd = peft_f32(rs);
    rms_fwd_job j = {peft_f32(x), wf, peft_f32(y), rstd, C, eps};
    ops_parallel(N, OPS_ROW_GRAIN(C), rms_fwd_rows, &j);
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

/* The cos/sin tables, kept for the process: cos and sin of inv_freq[i] * p (f32 product, as
 * transformers) for positions p = 0..npos-1, one table per inv_freq vector (head size, theta
 * and scaling decide it), so that a forward reads them instead of calling cosf/sinf for every
 * layer. A table is immutable once published and never freed (a tape may point into it); one
 * that is too short is superseded by one twice as long. At most ROPE_MAX_TABS tables (dynamic
 * NTK scaling makes a new inv_freq per length): beyond that, or for positions past
 * ROPE_MAX_POS or negative, the op computes its rows into the step arena as before. */
#define ROPE_MAX_TABS 16
#define ROPE_MAX_POS ((int64_t)1 << 17)

typedef struct rope_tab {
    struct rope_tab *next;
    int64_t h2, npos;
    float *inv; /* (h2) */
    float *cs;  /* (npos, h2) cos, then (npos, h2) sin */
} rope_tab;

static rope_tab *rope_tabs;
static int rope_ntabs;
static pthread_mutex_t rope_mu = PTHREAD_MUTEX_INITIALIZER;

/* the table for inv_freq (h2) covering positions 0..maxpos, or NULL (compute locally) */
static const rope_tab *rope_table(const float *inv, int64_t h2, int64_t maxpos)
{
    if (maxpos < 0 || maxpos >= ROPE_MAX_POS) return NULL;
    pthread_mutex_lock(&rope_mu);
    rope_tab *t;
    for (t = rope_tabs; t; t = t->next)
        if (t->h2 == h2 && t->npos > maxpos && !memcmp(t->inv, inv, (size_t)h2 * sizeof(float)))
            break;
    if (!t && rope_ntabs < ROPE_MAX_TABS && (t = calloc(1, sizeof *t))) {
        int64_t npos = 256;
        while (npos <= maxpos) npos *= 2;
        t->h2 = h2;
        t->npos = npos;
        t->inv = malloc((size_t)h2 * sizeof(float));
        t->cs = malloc((size_t)(2 * npos * h2) * sizeof(float));
        if (!t->inv || !t->cs) {
            free(t->inv);
            free(t->cs);
            free(t);
            t = NULL;
        } else {
            memcpy(t->inv, inv, (size_t)h2 * sizeof(float));
            float *sn = t->cs + npos * h2;
            for (int64_t p = 0; p < npos; p++)
                for (int64_t i = 0; i < h2; i++) {
                    const float ang = inv[i] * (float)p;
                    t->cs[p * h2 + i] = cosf(ang);
                    sn[p * h2 + i] = sinf(ang);
                }
            t->next = rope_tabs;
            rope_tabs = t;
            rope_ntabs++;
        }
    }
    pthread_mutex_unlock(&rope_mu);
    return t;
}

typedef struct {
    peft_tensor *x, *out;
    const float *cs, *sn;  /* (P, D/2) cos and sin by table row */
    const int32_t *trow;   /* (B*T) table row of each row, or NULL: row % T */
    int64_t B, T, H, D;
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

/* rows [lo, hi) of x (B*T, H*D) rotated into y (forward), or dy rotated back and added into dx
 * (backward, acc = 1), in the pool's threads */
typedef struct {
    const float *x, *cs, *sn;
    float *y;
    const int32_t *trow;
    int64_t T, H, D;
    int acc;
} rope_job;

static void rope_rows(void *p, int64_t lo, int64_t hi)
{
    const rope_job *j = p;
    const int64_t HD = j->H * j->D, h2 = j->D / 2;
    for (int64_t row = lo; row < hi; row++) {
        const int64_t r = j->trow ? j->trow[row] : row % j->T;
        const float *cr = j->cs + r * h2, *sr = j->sn + r * h2;
        if (!j->acc) {
            rope_row(j->x + row * HD, j->y + row * HD, cr, sr, j->H, j->D, 0);
            continue;
        }
        for (int64_t h = 0; h < j->H; h++) { /* rotate back by -angle, add into dx */
            const float *x = j->x + row * HD + h * j->D;
            float *d = j->y + row * HD + h * j->D;
            for (int64_t i = 0; i < h2; i++) {
                const float a = x[i], b = x[i + h2], co = cr[i], si = -sr[i];
                d[i] += a * co + (-b) * si;
                d[i + h2] += b * co + a * si;
            }
        }
    }
}

// dy (B,T,H*D); cos, sin (P, D/2) -> dx (B,T,H*D) += rotation by -angle of dy
static void rope_backward(peft_graph *g, void *p)
{
    rope_ctx *c = p;
    const float *dy = c->out->grad;
    float *dx = dy ? peft_grad_of(g, c->x) : NULL;
    if (!dx) return;
    rope_job j = {dy, c->cs, c->sn, dx, c->trow, c->T, c->H, c->D, 1};
    ops_parallel(c->B * c->T, OPS_ROW_GRAIN(c->H * c->D), rope_rows, &j);
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
    const int64_t h2 = D / 2, N = B * T;
    peft_tensor *y = peft_graph_tensor_raw(g, PEFT_DTYPE_F32, 3, x->shape);
    if (!y) return NULL;
    int64_t maxpos = T - 1, minpos = 0;
    if (pos)
        for (int64_t r = 0; r < N; r++) {
            if (pos[r] > maxpos) maxpos = pos[r];
            if (pos[r] < minpos) minpos = pos[r];
        }
    const rope_tab *tab = minpos < 0 ? NULL : rope_table(inv_freq, h2, maxpos);
    const float *cs, *sn;
    int32_t *trow = NULL;
    if (pos) { /* the table row of each row, kept for the backward */
        trow = peft_arena_alloc(g->arena, (size_t)(N ? N : 1) * sizeof(int32_t));
        if (!trow) return NULL;
        for (int64_t r = 0; r < N; r++) trow[r] = tab ? pos[r] : (int32_t)r;
    }
    if (tab) {
        cs = tab->cs;
        sn = tab->cs + tab->npos * h2;
    } else { /* this op's rows only: R = B*T with pos, T without */
        const int64_t R = pos ? N : T;
        peft_tensor *cst = peft_graph_tensor_raw(g, PEFT_DTYPE_F32, 1, (int64_t[]){2 * R * h2 + 1});
        if (!cst) return NULL;
        float *c = peft_f32(cst), *s = c + R * h2;
        /* angle = inv_freq * p in f32 (transformers' f32 product) */
        for (int64_t r = 0; r < R; r++) {
            const float pp = pos ? (float)pos[r] : (float)r;
            for (int64_t i = 0; i < h2; i++) {
                const float ang = inv_freq[i] * pp;
                c[r * h2 + i] = cosf(ang);
                s[r * h2 + i] = sinf(ang);
            }
        }
        cs = c;
        sn = s;
    }
    rope_job j = {peft_f32(x), cs, sn, peft_f32(y), trow, T, H, D, 0};
    ops_parallel(N, OPS_ROW_GRAIN(HD), rope_rows, &j);
    y->requires_grad = peft_needs_grad(g, x, NULL);
    if (y->requires_grad) {
        rope_ctx *c = peft_tape_push(g, rope_backward, sizeof *c);
        if (!c) return NULL;
        c->x = x; c->out = y; c->cs = cs; c->sn = sn; c->trow = trow;
        peft_tape_output(g, c->out);
        c->B = B; c->T = T; c->H = H; c->D = D;
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
