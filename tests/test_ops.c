/* test_ops.c — Check suite for the ops (core/ops_*.c): a finite-difference gradient test for
 * every op and every differentiable input, forward checks against naive double-precision
 * references, and the "skip what nobody needs" property (no grad buffer for a frozen weight,
 * no tape node when nothing requires grad). */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fd.h"
#include "peft/graph.h"
#include "core/ops/ops.h"
#include "testutil.h"

/* ---- helpers -------------------------------------------------------------------------------- */

static uint16_t f32_to_bf16_trunc(float f)
{
    uint32_t b;
    memcpy(&b, &f, 4);
    return (uint16_t)(b >> 16);
}

/* the finite-difference harness (fd.h): dropout active, its RNG seeded the same every graph */
#define DROPOUT_SEED 777
static const fd_opts FD = {.graph_seed = DROPOUT_SEED, .training = 1};

#define EPS 1e-2
#define RTOL 1e-2
#define ATOL 1e-3

/* ---- gradient tests ------------------------------------------------------------------------- */

static peft_tensor *b_linear(peft_graph *g, peft_tensor **in, const void *ud)
{
    return op_linear(g, in[0], in[1], in[2], *(const int *)ud);
}

START_TEST(grad_linear)
{
    for (int layout = 0; layout < 2; layout++) {
        peft_tensor *in[3];
        in[0] = fd_rand_tensor(3, (int64_t[]){2, 3, 4}, 1.0f, 1);
        in[1] = layout ? fd_rand_tensor(2, (int64_t[]){4, 5}, 0.5f, 1)
                       : fd_rand_tensor(2, (int64_t[]){5, 4}, 0.5f, 1);
        in[2] = fd_rand_tensor(1, (int64_t[]){5}, 0.5f, 1);
        fd_check_grads(&FD, layout ? "linear_in_out" : "linear", b_linear, in, 3, &layout, EPS, RTOL, ATOL);
        fd_free_all(in, 3);
    }
}
END_TEST

static peft_tensor *b_add(peft_graph *g, peft_tensor **in, const void *ud)
{
    (void)ud;
    return op_add(g, in[0], in[1]);
}

START_TEST(grad_add)
{
    peft_tensor *in[2] = {fd_rand_tensor(2, (int64_t[]){3, 4}, 1.0f, 1),
                          fd_rand_tensor(2, (int64_t[]){3, 4}, 1.0f, 1)};
    fd_check_grads(&FD, "add", b_add, in, 2, NULL, EPS, RTOL, ATOL);
    fd_free_all(in, 2);
}
END_TEST

static peft_tensor *b_add_self(peft_graph *g, peft_tensor **in, const void *ud)
{
    (void)ud;
    return op_add(g, in[0], in[0]);
}

START_TEST(grad_add_aliased)
{
    peft_tensor *in[1] = {fd_rand_tensor(1, (int64_t[]){6}, 1.0f, 1)};
    fd_check_grads(&FD, "add_self", b_add_self, in, 1, NULL, EPS, RTOL, ATOL);
    fd_free_all(in, 1);
}
END_TEST

static peft_tensor *b_scale(peft_graph *g, peft_tensor **in, const void *ud)
{
    (void)ud;
    return op_scale(g, in[0], -1.75f);
}

START_TEST(grad_scale)
{
    peft_tensor *in[1] = {fd_rand_tensor(2, (int64_t[]){3, 4}, 1.0f, 1)};
    fd_check_grads(&FD, "scale", b_scale, in, 1, NULL, EPS, RTOL, ATOL);
    fd_free_all(in, 1);
}
END_TEST

static peft_tensor *b_mul(peft_graph *g, peft_tensor **in, const void *ud)
{
    (void)ud;
    return op_mul_lastdim(g, in[0], in[1]);
}

START_TEST(grad_mul_lastdim)
{
    peft_tensor *in[2] = {fd_rand_tensor(3, (int64_t[]){2, 3, 5}, 1.0f, 1),
                          fd_rand_tensor(1, (int64_t[]){5}, 1.0f, 1)};
    fd_check_grads(&FD, "mul_lastdim", b_mul, in, 2, NULL, EPS, RTOL, ATOL);
    fd_free_all(in, 2);
}
END_TEST

static peft_tensor *b_dropout(peft_graph *g, peft_tensor **in, const void *ud)
{
    (void)ud;
    return op_dropout(g, in[0], 0.3f);
}

START_TEST(grad_dropout)
{
    peft_tensor *in[1] = {fd_rand_tensor(2, (int64_t[]){4, 8}, 1.0f, 1)};
    fd_check_grads(&FD, "dropout", b_dropout, in, 1, NULL, EPS, RTOL, ATOL);
    fd_free_all(in, 1);
}
END_TEST

static peft_tensor *b_slice(peft_graph *g, peft_tensor **in, const void *ud)
{
    (void)ud;
    return op_slice_lastdim(g, in[0], 2, 3);
}

START_TEST(grad_slice)
{
    peft_tensor *in[1] = {fd_rand_tensor(3, (int64_t[]){2, 2, 7}, 1.0f, 1)};
    fd_check_grads(&FD, "slice", b_slice, in, 1, NULL, EPS, RTOL, ATOL);
    fd_free_all(in, 1);
}
END_TEST

static peft_tensor *b_layernorm(peft_graph *g, peft_tensor **in, const void *ud)
{
    (void)ud;
    return op_layernorm(g, in[0], in[1], in[2], 1e-5f);
}

START_TEST(grad_layernorm)
{
    peft_tensor *in[3] = {fd_rand_tensor(3, (int64_t[]){2, 3, 6}, 1.0f, 1),
                          fd_rand_tensor(1, (int64_t[]){6}, 1.0f, 1),
                          fd_rand_tensor(1, (int64_t[]){6}, 1.0f, 1)};
    fd_check_grads(&FD, "layernorm", b_layernorm, in, 3, NULL, EPS, RTOL, ATOL);
    fd_free_all(in, 3);
}
END_TEST

static peft_tensor *b_gelu(peft_graph *g, peft_tensor **in, const void *ud)
{
    (void)ud;
    return op_gelu_tanh(g, in[0]);
}

START_TEST(grad_gelu)
{
    peft_tensor *in[1] = {fd_rand_tensor(2, (int64_t[]){4, 6}, 2.0f, 1)};
    fd_check_grads(&FD, "gelu", b_gelu, in, 1, NULL, EPS, RTOL, ATOL);
    fd_free_all(in, 1);
}
END_TEST

static const int32_t emb_ids[6] = {3, 0, 3, 4, 1, 3}; /* repeats: gradients accumulate */

static peft_tensor *b_embedding(peft_graph *g, peft_tensor **in, const void *ud)
{
    (void)ud;
    return op_embedding(g, in[0], emb_ids, 2, 3, NULL);
}

START_TEST(grad_embedding)
{
    peft_tensor *in[1] = {fd_rand_tensor(2, (int64_t[]){5, 4}, 1.0f, 1)};
    fd_check_grads(&FD, "embedding", b_embedding, in, 1, NULL, EPS, RTOL, ATOL);
    /* row 2 is never looked up: zero gradient */
    for (int j = 0; j < 4; j++) ck_assert(in[0]->grad[2 * 4 + j] == 0.0f);
    fd_free_all(in, 1);
}
END_TEST

typedef struct { int H, causal; const int32_t *mask; } attn_ud;

static peft_tensor *b_attention(peft_graph *g, peft_tensor **in, const void *ud)
{
    const attn_ud *a = ud;
    return op_attention(g, in[0], in[1], in[2], a->H, a->causal, a->mask);
}

START_TEST(grad_attention)
{
    /* B=2, T=3, S=5 (keys include a 2-token prefix), H=2, D=3 */
    static const int32_t mask[10] = {1, 1, 1, 1, 1, 1, 0, 1, 1, 1};
    attn_ud cases[3] = {{2, 1, mask}, {2, 0, NULL}, {2, 1, NULL}};
    for (int c = 0; c < 3; c++) {
        peft_tensor *in[3] = {fd_rand_tensor(3, (int64_t[]){2, 3, 6}, 0.8f, 1),
                              fd_rand_tensor(3, (int64_t[]){2, 5, 6}, 0.8f, 1),
                              fd_rand_tensor(3, (int64_t[]){2, 5, 6}, 1.0f, 1)};
        fd_check_grads(&FD, "attention", b_attention, in, 3, &cases[c], EPS, RTOL, ATOL);
        fd_free_all(in, 3);
    }
}
END_TEST

static peft_tensor *b_attention_self(peft_graph *g, peft_tensor **in, const void *ud)
{
    const attn_ud *a = ud;
    return op_attention(g, in[0], in[0], in[0], a->H, a->causal, a->mask);
}

START_TEST(grad_attention_aliased)
{
    /* q = k = v: the three gradients accumulate into one buffer */
    static const int32_t mask[8] = {1, 1, 0, 1, 1, 1, 1, 1};
    attn_ud a = {2, 1, mask};
    peft_tensor *in[1] = {fd_rand_tensor(3, (int64_t[]){2, 4, 6}, 0.8f, 1)};
    fd_check_grads(&FD, "attention_self", b_attention_self, in, 1, &a, EPS, RTOL, ATOL);
    fd_free_all(in, 1);
}
END_TEST

START_TEST(grad_attention_partial)
{
    /* only v requires grad (q, k frozen), then only q */
    static const int32_t mask[10] = {1, 0, 1, 1, 1, 1, 1, 1, 1, 0};
    attn_ud a = {3, 1, mask};
    for (int which = 0; which < 3; which++) {
        peft_tensor *in[3] = {fd_rand_tensor(3, (int64_t[]){2, 4, 6}, 0.8f, which == 0),
                              fd_rand_tensor(3, (int64_t[]){2, 5, 6}, 0.8f, which == 1),
                              fd_rand_tensor(3, (int64_t[]){2, 5, 6}, 1.0f, which == 2)};
        fd_check_grads(&FD, "attention_partial", b_attention, in, 3, &a, EPS, RTOL, ATOL);
        fd_free_all(in, 3);
    }
}
END_TEST

static const int32_t ce_targets[6] = {2, -100, 0, 4, -100, 1};

static peft_tensor *b_ce(peft_graph *g, peft_tensor **in, const void *ud)
{
    (void)ud;
    return op_cross_entropy(g, in[0], ce_targets, -100);
}

START_TEST(grad_cross_entropy)
{
    peft_tensor *in[1] = {fd_rand_tensor(2, (int64_t[]){6, 5}, 2.0f, 1)};
    fd_check_grads(&FD, "cross_entropy", b_ce, in, 1, NULL, EPS, RTOL, ATOL);
    /* ignored rows get zero gradient */
    for (int j = 0; j < 5; j++) ck_assert(in[0]->grad[1 * 5 + j] == 0.0f);
    fd_free_all(in, 1);
}
END_TEST

/* a small network through every op, loss by peft_graph_backward */
static peft_tensor *b_chain(peft_graph *g, peft_tensor **in, const void *ud)
{
    (void)ud;
    static const int32_t ids[4] = {1, 2, 0, 2};
    static const int32_t tg[4] = {0, 3, -100, 2};
    peft_tensor *e = op_embedding(g, in[0], ids, 1, 4, NULL);          /* (1,4,6) */
    peft_tensor *h = op_layernorm(g, e, in[1], NULL, 1e-5f);
    peft_tensor *qkv = op_linear(g, h, in[2], NULL, 1);                 /* (1,4,18) */
    peft_tensor *q = op_slice_lastdim(g, qkv, 0, 6);
    peft_tensor *k = op_slice_lastdim(g, qkv, 6, 6);
    peft_tensor *v = op_slice_lastdim(g, qkv, 12, 6);
    peft_tensor *a = op_attention(g, q, k, v, 2, 1, NULL);
    peft_tensor *r = op_add(g, e, op_dropout(g, a, 0.2f));
    peft_tensor *m = op_gelu_tanh(g, op_mul_lastdim(g, r, in[3]));
    peft_tensor *lg = op_linear(g, op_scale(g, m, 0.5f), in[4], NULL, 0); /* (1,4,4) */
    return op_cross_entropy(g, lg, tg, -100);
}

START_TEST(grad_chain)
{
    peft_tensor *in[5] = {fd_rand_tensor(2, (int64_t[]){3, 6}, 1.0f, 1),
                          fd_rand_tensor(1, (int64_t[]){6}, 1.0f, 1),
                          fd_rand_tensor(2, (int64_t[]){6, 18}, 0.5f, 1),
                          fd_rand_tensor(1, (int64_t[]){6}, 1.0f, 1),
                          fd_rand_tensor(2, (int64_t[]){4, 6}, 1.0f, 1)};
    fd_check_grads(&FD, "chain", b_chain, in, 5, NULL, EPS, RTOL, ATOL);
    fd_free_all(in, 5);
}
END_TEST

/* ---- forward references --------------------------------------------------------------------- */

static void ref_linear(const float *x, const float *w, const float *b, int w_in_out, int64_t N,
                       int64_t in, int64_t out, double *y)
{
    for (int64_t n = 0; n < N; n++)
        for (int64_t o = 0; o < out; o++) {
            double s = b ? b[o] : 0.0;
            for (int64_t i = 0; i < in; i++)
                s += (double)x[n * in + i] * (w_in_out ? w[i * out + o] : w[o * in + i]);
            y[n * out + o] = s;
        }
}

START_TEST(fwd_linear)
{
    const int64_t N = 7, in = 13, out = 9;
    peft_rng r;
    peft_rng_seed(&r, 3);
    peft_graph *g = peft_graph_new(&r);
    peft_tensor *x = fd_rand_tensor(2, (int64_t[]){N, in}, 1.0f, 0);
    double *ref = malloc((size_t)(N * out) * sizeof *ref);
    for (int layout = 0; layout < 2; layout++) {
        for (int dt = 0; dt < 2; dt++) { /* f32, bf16 weight and bias */
            int64_t ws[2] = {layout ? in : out, layout ? out : in};
            peft_tensor *w = fd_rand_tensor(2, ws, 0.5f, 0);
            peft_tensor *b = fd_rand_tensor(1, (int64_t[]){out}, 0.5f, 0);
            peft_tensor *wb = NULL, *bb = NULL;
            uint16_t *wbits = NULL, *bbits = NULL;
            if (dt) { /* round to bf16 so the reference sees the same values */
                wbits = malloc((size_t)w->numel * 2);
                bbits = malloc((size_t)b->numel * 2);
                for (int64_t i = 0; i < w->numel; i++) {
                    wbits[i] = f32_to_bf16_trunc(peft_f32(w)[i]);
                    uint32_t u = (uint32_t)wbits[i] << 16;
                    memcpy(&peft_f32(w)[i], &u, 4);
                }
                for (int64_t i = 0; i < b->numel; i++) {
                    bbits[i] = f32_to_bf16_trunc(peft_f32(b)[i]);
                    uint32_t u = (uint32_t)bbits[i] << 16;
                    memcpy(&peft_f32(b)[i], &u, 4);
                }
                wb = peft_tensor_wrap(PEFT_DTYPE_BF16, 2, ws, wbits);
                bb = peft_tensor_wrap(PEFT_DTYPE_BF16, 1, (int64_t[]){out}, bbits);
            }
            ref_linear(peft_f32(x), peft_f32(w), peft_f32(b), layout, N, in, out, ref);
            peft_tensor *y = op_linear(g, x, dt ? wb : w, dt ? bb : b, layout);
            ck_assert_ptr_nonnull(y);
            ck_assert_int_eq(y->ndim, 2);
            ck_assert_int_eq(y->shape[0], N);
            ck_assert_int_eq(y->shape[1], out);
            ck_assert_int_eq(y->requires_grad, 0);
            for (int64_t i = 0; i < N * out; i++)
                ck_assert_double_le(fabs(peft_f32(y)[i] - ref[i]), 1e-5 * (1 + fabs(ref[i])));
            /* no bias */
            ref_linear(peft_f32(x), peft_f32(w), NULL, layout, N, in, out, ref);
            y = op_linear(g, x, dt ? wb : w, NULL, layout);
            for (int64_t i = 0; i < N * out; i++)
                ck_assert_double_le(fabs(peft_f32(y)[i] - ref[i]), 1e-5 * (1 + fabs(ref[i])));
            peft_tensor_free(w);
            peft_tensor_free(b);
            peft_tensor_free(wb);
            peft_tensor_free(bb);
            free(wbits);
            free(bbits);
        }
    }
    /* shape mismatch: NULL */
    peft_tensor *bad = fd_rand_tensor(2, (int64_t[]){out, in + 1}, 1.0f, 0);
    ck_assert_ptr_null(op_linear(g, x, bad, NULL, 0));
    peft_tensor_free(bad);
    ck_assert_uint_eq(peft_graph_tape_len(g), 0);
    free(ref);
    peft_tensor_free(x);
    peft_graph_free(g);
}
END_TEST

/* reference attention in double; masked keys excluded, all-masked rows give zeros */
static void ref_attention(const float *q, const float *k, const float *v, int64_t B, int64_t T,
                          int64_t S, int64_t H, int64_t D, int causal, const int32_t *mask,
                          double *out)
{
    const int64_t HD = H * D;
    double *sc = malloc((size_t)S * sizeof *sc);
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t t = 0; t < T; t++) {
                double mx = -INFINITY;
                for (int64_t s = 0; s < S; s++) {
                    int ok = (!mask || mask[b * S + s]) && (!causal || s <= t + (S - T));
                    if (!ok) {
                        sc[s] = -INFINITY;
                        continue;
                    }
                    double d = 0;
                    for (int64_t j = 0; j < D; j++)
                        d += (double)q[(b * T + t) * HD + h * D + j] * k[(b * S + s) * HD + h * D + j];
                    sc[s] = d / sqrt((double)D);
                    if (sc[s] > mx) mx = sc[s];
                }
                double *o = out + (b * T + t) * HD + h * D;
                for (int64_t j = 0; j < D; j++) o[j] = 0;
                if (mx == -INFINITY) continue;
                double sum = 0;
                for (int64_t s = 0; s < S; s++) {
                    sc[s] = sc[s] == -INFINITY ? 0.0 : exp(sc[s] - mx);
                    sum += sc[s];
                }
                for (int64_t s = 0; s < S; s++)
                    for (int64_t j = 0; j < D; j++)
                        o[j] += sc[s] / sum * v[(b * S + s) * HD + h * D + j];
            }
    free(sc);
}

START_TEST(fwd_attention)
{
    peft_rng r;
    peft_rng_seed(&r, 3);
    peft_graph *g = peft_graph_new(&r);
    struct { int64_t B, T, S, H, D; int causal, use_mask; } cs[] = {
        {2, 5, 5, 2, 4, 1, 0},  /* plain causal */
        {2, 4, 7, 3, 4, 1, 1},  /* causal + key mask + S > T (prefix keys) */
        {2, 4, 7, 3, 4, 0, 1},  /* bidirectional + key mask */
        {1, 6, 4, 2, 3, 1, 0},  /* S < T: first queries see no key -> zeros */
        {3, 3, 3, 1, 8, 0, 1},  /* batch 1 fully masked -> zeros */
    };
    for (size_t c = 0; c < sizeof cs / sizeof *cs; c++) {
        const int64_t B = cs[c].B, T = cs[c].T, S = cs[c].S, H = cs[c].H, D = cs[c].D;
        peft_tensor *q = fd_rand_tensor(3, (int64_t[]){B, T, H * D}, 1.0f, 0);
        peft_tensor *k = fd_rand_tensor(3, (int64_t[]){B, S, H * D}, 1.0f, 0);
        peft_tensor *v = fd_rand_tensor(3, (int64_t[]){B, S, H * D}, 1.0f, 0);
        int32_t *mask = malloc((size_t)(B * S) * sizeof *mask);
        for (int64_t i = 0; i < B * S; i++) mask[i] = peft_rng_uniform(&fd_rng) < 0.7;
        mask[0] = 1;
        if (c == 4)
            for (int64_t s = 0; s < S; s++) mask[1 * S + s] = 0;
        const int32_t *m = cs[c].use_mask ? mask : NULL;
        double *ref = malloc((size_t)(B * T * H * D) * sizeof *ref);
        ref_attention(peft_f32(q), peft_f32(k), peft_f32(v), B, T, S, H, D, cs[c].causal, m, ref);
        peft_tensor *o = op_attention(g, q, k, v, (int)H, cs[c].causal, m);
        ck_assert_ptr_nonnull(o);
        ck_assert_int_eq(o->shape[0], B);
        ck_assert_int_eq(o->shape[1], T);
        ck_assert_int_eq(o->shape[2], H * D);
        for (int64_t i = 0; i < o->numel; i++)
            ck_assert_msg(fabs(peft_f32(o)[i] - ref[i]) <= 1e-5, "case %zu elem %ld: %g vs %g", c,
                          (long)i, peft_f32(o)[i], ref[i]);
        if (c == 3) /* query 0 and 1 see no key (0 > t - 2) */
            for (int64_t j = 0; j < 2 * H * D; j++) ck_assert(peft_f32(o)[j] == 0.0f);
        if (c == 4)
            for (int64_t j = 0; j < T * H * D; j++) ck_assert(peft_f32(o)[T * H * D + j] == 0.0f);
        free(ref);
        free(mask);
        peft_tensor_free(q);
        peft_tensor_free(k);
        peft_tensor_free(v);
    }
    peft_graph_free(g);
}
END_TEST

START_TEST(fwd_layernorm_gelu)
{
    peft_rng r;
    peft_rng_seed(&r, 3);
    peft_graph *g = peft_graph_new(&r);
    const int64_t N = 5, C = 33;
    peft_tensor *x = fd_rand_tensor(2, (int64_t[]){N, C}, 3.0f, 0);
    for (int64_t i = 0; i < x->numel; i++) peft_f32(x)[i] += 10.0f; /* large mean */
    peft_tensor *w = fd_rand_tensor(1, (int64_t[]){C}, 1.0f, 0);
    peft_tensor *b = fd_rand_tensor(1, (int64_t[]){C}, 1.0f, 0);
    peft_tensor *y = op_layernorm(g, x, w, b, 1e-5f);
    ck_assert_ptr_nonnull(y);
    for (int64_t n = 0; n < N; n++) {
        const float *xr = peft_f32(x) + n * C;
        double mu = 0, var = 0;
        for (int64_t j = 0; j < C; j++) mu += xr[j];
        mu /= C;
        for (int64_t j = 0; j < C; j++) var += (xr[j] - mu) * (xr[j] - mu);
        var /= C; /* biased */
        for (int64_t j = 0; j < C; j++) {
            double ref = (xr[j] - mu) / sqrt(var + 1e-5) * peft_f32(w)[j] + peft_f32(b)[j];
            ck_assert_double_le(fabs(peft_f32(y)[n * C + j] - ref), 2e-6 * (1 + fabs(ref)));
        }
    }
    /* constant row: var 0, eps keeps it finite, output = b */
    for (int64_t j = 0; j < C; j++) peft_f32(x)[j] = 4.0f;
    y = op_layernorm(g, x, w, b, 1e-5f);
    for (int64_t j = 0; j < C; j++) ck_assert(fabs(peft_f32(y)[j] - peft_f32(b)[j]) < 1e-6);

    peft_tensor *gl = op_gelu_tanh(g, x);
    for (int64_t i = 0; i < x->numel; i++) {
        double xi = peft_f32(x)[i];
        double ref = 0.5 * xi * (1 + tanh(sqrt(2 / M_PI) * (xi + 0.044715 * xi * xi * xi)));
        ck_assert_double_le(fabs(peft_f32(gl)[i] - ref), 1e-6 * (1 + fabs(ref)));
    }
    /* known values of gelu_new */
    float kv[3] = {1.0f, -1.0f, 0.0f};
    peft_tensor *kt = peft_tensor_wrap(PEFT_DTYPE_F32, 1, (int64_t[]){3}, kv);
    peft_tensor *ko = op_gelu_tanh(g, kt);
    ck_assert_double_le(fabs(peft_f32(ko)[0] - 0.8411919906), 1e-6);
    ck_assert_double_le(fabs(peft_f32(ko)[1] + 0.1588080094), 1e-6);
    ck_assert(peft_f32(ko)[2] == 0.0f);
    peft_tensor_free(kt);
    peft_tensor_free(x);
    peft_tensor_free(w);
    peft_tensor_free(b);
    peft_graph_free(g);
}
END_TEST

START_TEST(fwd_embedding)
{
    peft_rng r;
    peft_rng_seed(&r, 3);
    peft_graph *g = peft_graph_new(&r);
    /* bf16 table */
    uint16_t bits[12];
    for (int i = 0; i < 12; i++) bits[i] = f32_to_bf16_trunc((float)i - 5.5f);
    peft_tensor *t = peft_tensor_wrap(PEFT_DTYPE_BF16, 2, (int64_t[]){4, 3}, bits);
    int32_t ids[4] = {2, 0, 3, 2};
    peft_tensor *o = op_embedding(g, t, ids, 2, 2, NULL);
    ck_assert_ptr_nonnull(o);
    ck_assert_int_eq(o->ndim, 3);
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 3; j++)
            ck_assert(peft_f32(o)[i * 3 + j] == (float)(ids[i] * 3 + j) - 5.5f);
    int32_t bad = 0;
    int32_t ids_bad[2] = {1, 4};
    ck_assert_ptr_null(op_embedding(g, t, ids_bad, 1, 2, &bad));
    ck_assert_int_eq(bad, 4);
    ids_bad[1] = -1;
    ck_assert_ptr_null(op_embedding(g, t, ids_bad, 1, 2, &bad));
    ck_assert_int_eq(bad, -1);
    peft_tensor_free(t);
    peft_graph_free(g);
}
END_TEST

START_TEST(fwd_cross_entropy)
{
    peft_rng r;
    peft_rng_seed(&r, 3);
    peft_graph *g = peft_graph_new(&r);
    const int64_t N = 6, V = 7;
    peft_tensor *lg = fd_rand_tensor(2, (int64_t[]){N, V}, 3.0f, 0);
    peft_f32(lg)[0] = 80.0f; /* large logit: log-sum-exp must stay finite */
    int32_t tg[6] = {0, -100, 6, 3, -100, 1};
    double tot = 0;
    int cnt = 0;
    for (int64_t n = 0; n < N; n++) {
        if (tg[n] == -100) continue;
        const float *xr = peft_f32(lg) + n * V;
        double mx = xr[0], s = 0;
        for (int64_t j = 1; j < V; j++) mx = fmax(mx, xr[j]);
        for (int64_t j = 0; j < V; j++) s += exp(xr[j] - mx);
        tot += mx + log(s) - xr[tg[n]];
        cnt++;
    }
    peft_tensor *l = op_cross_entropy(g, lg, tg, -100);
    ck_assert_ptr_nonnull(l);
    ck_assert_int_eq(l->ndim, 0);
    ck_assert_int_eq(l->numel, 1);
    ck_assert_double_le(fabs(peft_f32(l)[0] - tot / cnt), 1e-5 * (1 + tot / cnt));

    /* every row ignored: 0, and its gradient is zero */
    int32_t all_ign[6] = {-100, -100, -100, -100, -100, -100};
    lg->requires_grad = 1;
    peft_graph_set_recording(g, 1);
    peft_tensor *l0 = op_cross_entropy(g, lg, all_ign, -100);
    ck_assert_ptr_nonnull(l0);
    ck_assert(peft_f32(l0)[0] == 0.0f);
    ck_assert_int_eq(peft_graph_backward(g, l0), 0);
    ck_assert_ptr_nonnull(lg->grad);
    for (int64_t i = 0; i < lg->numel; i++) ck_assert(lg->grad[i] == 0.0f);

    /* a target outside [0, V) that is not the ignore index: NULL */
    int32_t bad[6] = {0, 1, 7, 2, 3, 4};
    ck_assert_ptr_null(op_cross_entropy(g, lg, bad, -100));
    bad[2] = -5;
    ck_assert_ptr_null(op_cross_entropy(g, lg, bad, -100));
    peft_tensor_free(lg);
    peft_graph_free(g);
}
END_TEST

START_TEST(fwd_dropout)
{
    peft_rng r;
    peft_rng_seed(&r, 11);
    peft_graph *g = peft_graph_new(&r);
    peft_tensor *x = fd_rand_tensor(1, (int64_t[]){4000}, 1.0f, 0);
    /* identity unless training, and at p = 0 */
    ck_assert_ptr_eq(op_dropout(g, x, 0.5f), x);
    peft_graph_set_training(g, 1);
    ck_assert_ptr_eq(op_dropout(g, x, 0.0f), x);
    peft_tensor *y = op_dropout(g, x, 0.25f);
    ck_assert_ptr_ne(y, x);
    int zeros = 0;
    for (int64_t i = 0; i < x->numel; i++) {
        float v = peft_f32(y)[i];
        if (v == 0.0f) zeros++;
        else ck_assert_double_le(fabs(v - peft_f32(x)[i] / 0.75f), 1e-6 * (1 + fabs(v)));
    }
    ck_assert_int_gt(zeros, 850);
    ck_assert_int_lt(zeros, 1150);
    /* same seed, same mask */
    peft_rng_seed(&r, 11);
    peft_tensor *y2 = op_dropout(g, x, 0.25f);
    ck_assert_int_eq(memcmp(y->data, y2->data, (size_t)x->numel * 4), 0);
    peft_tensor_free(x);
    peft_graph_free(g);
}
END_TEST

START_TEST(fwd_small_ops)
{
    peft_rng r;
    peft_rng_seed(&r, 3);
    peft_graph *g = peft_graph_new(&r);
    peft_tensor *a = fd_rand_tensor(2, (int64_t[]){3, 4}, 1.0f, 0);
    peft_tensor *b = fd_rand_tensor(1, (int64_t[]){12}, 1.0f, 0);
    peft_tensor *v = fd_rand_tensor(1, (int64_t[]){4}, 1.0f, 0);
    peft_tensor *s = op_add(g, a, b);
    ck_assert_int_eq(s->ndim, 2); /* shape of a */
    peft_tensor *sc = op_scale(g, a, 3.0f);
    peft_tensor *m = op_mul_lastdim(g, a, v);
    peft_tensor *sl = op_slice_lastdim(g, a, 1, 2);
    ck_assert_int_eq(sl->shape[0], 3);
    ck_assert_int_eq(sl->shape[1], 2);
    for (int i = 0; i < 12; i++) {
        ck_assert(peft_f32(s)[i] == peft_f32(a)[i] + peft_f32(b)[i]);
        ck_assert(peft_f32(sc)[i] == peft_f32(a)[i] * 3.0f);
        ck_assert(peft_f32(m)[i] == peft_f32(a)[i] * peft_f32(v)[i % 4]);
    }
    for (int i = 0; i < 3; i++)
        for (int j = 0; j < 2; j++) ck_assert(peft_f32(sl)[i * 2 + j] == peft_f32(a)[i * 4 + 1 + j]);
    ck_assert_ptr_null(op_slice_lastdim(g, a, 3, 2));
    ck_assert_ptr_null(op_add(g, a, v));
    ck_assert_ptr_null(op_mul_lastdim(g, a, b));
    peft_tensor_free(a);
    peft_tensor_free(b);
    peft_tensor_free(v);
    peft_graph_free(g);
}
END_TEST

/* ---- skipping what nobody needs ------------------------------------------------------------- */

START_TEST(frozen_weight_no_grad)
{
    peft_rng r;
    peft_rng_seed(&r, 3);
    peft_graph *g = peft_graph_new(&r);
    peft_graph_set_recording(g, 1);
    /* frozen base weight and bias, trainable input path (as under LoRA) */
    peft_tensor *x = fd_rand_tensor(2, (int64_t[]){4, 6}, 1.0f, 1);
    peft_tensor *w = fd_rand_tensor(2, (int64_t[]){5, 6}, 1.0f, 0);
    peft_tensor *b = fd_rand_tensor(1, (int64_t[]){5}, 1.0f, 0);
    peft_tensor *lnw = fd_rand_tensor(1, (int64_t[]){6}, 1.0f, 0);
    peft_tensor *h = op_layernorm(g, x, lnw, NULL, 1e-5f);
    peft_tensor *y = op_linear(g, h, w, b, 0);
    ck_assert_int_eq(y->requires_grad, 1);
    int32_t tg[4] = {0, 1, 2, 3};
    peft_tensor *l = op_cross_entropy(g, y, tg, -100);
    ck_assert_int_eq(peft_graph_backward(g, l), 0);
    ck_assert_ptr_nonnull(x->grad);
    ck_assert_ptr_null(w->grad);
    ck_assert_ptr_null(b->grad);
    ck_assert_ptr_null(lnw->grad);
    ck_assert(!(w->flags & PEFT_T_OWNS_GRAD));

    /* trainable bias only: db but no dW, and x (frozen) gets nothing */
    peft_graph_reset(g);
    x->requires_grad = 0;
    peft_tensor_zero_grad(x);
    b->requires_grad = 1;
    y = op_linear(g, x, w, b, 0);
    ck_assert_uint_eq(peft_graph_tape_len(g), 1);
    l = op_cross_entropy(g, y, tg, -100);
    ck_assert_int_eq(peft_graph_backward(g, l), 0);
    ck_assert_ptr_null(w->grad);
    ck_assert_ptr_nonnull(b->grad);

    peft_tensor_free(x);
    peft_tensor_free(w);
    peft_tensor_free(b);
    peft_tensor_free(lnw);
    peft_graph_free(g);
}
END_TEST

START_TEST(no_tape_without_grad)
{
    peft_rng r;
    peft_rng_seed(&r, 3);
    peft_graph *g = peft_graph_new(&r);
    peft_graph_set_recording(g, 1);
    peft_graph_set_training(g, 1);
    peft_tensor *x = fd_rand_tensor(3, (int64_t[]){1, 4, 6}, 1.0f, 0);
    peft_tensor *w = fd_rand_tensor(2, (int64_t[]){6, 6}, 1.0f, 0);
    peft_tensor *v = fd_rand_tensor(1, (int64_t[]){6}, 1.0f, 0);
    peft_tensor *tab = fd_rand_tensor(2, (int64_t[]){3, 6}, 1.0f, 0);
    int32_t ids[4] = {0, 1, 2, 1};
    peft_tensor *outs[12];
    int n = 0;
    outs[n++] = op_linear(g, x, w, v, 1);
    outs[n++] = op_add(g, x, outs[0]);
    outs[n++] = op_scale(g, x, 2.0f);
    outs[n++] = op_mul_lastdim(g, x, v);
    outs[n++] = op_dropout(g, x, 0.5f);
    outs[n++] = op_slice_lastdim(g, x, 1, 3);
    outs[n++] = op_layernorm(g, x, v, v, 1e-5f);
    outs[n++] = op_gelu_tanh(g, x);
    outs[n++] = op_embedding(g, tab, ids, 1, 4, NULL);
    outs[n++] = op_attention(g, x, x, x, 2, 1, NULL);
    int32_t tg[4] = {0, 1, 2, 3};
    outs[n++] = op_cross_entropy(g, x, tg, -100);
    for (int i = 0; i < n; i++) {
        ck_assert_ptr_nonnull(outs[i]);
        ck_assert_int_eq(outs[i]->requires_grad, 0);
    }
    ck_assert_uint_eq(peft_graph_tape_len(g), 0);

    /* inference (not recording) with trainable inputs: still no tape, outputs need no grad */
    peft_graph_set_recording(g, 0);
    w->requires_grad = 1;
    peft_tensor *y = op_linear(g, x, w, NULL, 0);
    ck_assert_int_eq(y->requires_grad, 0);
    ck_assert_uint_eq(peft_graph_tape_len(g), 0);
    ck_assert_ptr_null(w->grad);
    peft_tensor_free(x);
    peft_tensor_free(w);
    peft_tensor_free(v);
    peft_tensor_free(tab);
    peft_graph_free(g);
}
END_TEST

START_TEST(param_grad_accumulates)
{
    /* a PEFT_T_PARAM weight keeps its persistent grad across steps; backward adds into it */
    peft_rng r;
    peft_rng_seed(&r, 3);
    peft_graph *g = peft_graph_new(&r);
    peft_tensor *x = fd_rand_tensor(2, (int64_t[]){3, 4}, 1.0f, 0);
    peft_tensor *w = fd_rand_tensor(2, (int64_t[]){2, 4}, 1.0f, 1);
    w->flags |= PEFT_T_PARAM;
    int32_t tg[3] = {0, 1, 1};
    float first[8];
    for (int step = 0; step < 2; step++) {
        peft_graph_set_recording(g, 1);
        peft_tensor *l = op_cross_entropy(g, op_linear(g, x, w, NULL, 0), tg, -100);
        ck_assert_int_eq(peft_graph_backward(g, l), 0);
        if (step == 0) memcpy(first, w->grad, sizeof first);
        peft_graph_reset(g);
    }
    for (int i = 0; i < 8; i++) ck_assert_double_le(fabs(w->grad[i] - 2 * first[i]), 1e-6);
    peft_tensor_free(x);
    peft_tensor_free(w);
    peft_graph_free(g);
}
END_TEST

int main(void)
{
    peft_rng_seed(&fd_rng, 2024);
    Suite *s = suite_create("ops");
    TCase *tg = tcase_create("gradients");
    tcase_set_timeout(tg, 60);
    tcase_add_test(tg, grad_linear);
    tcase_add_test(tg, grad_add);
    tcase_add_test(tg, grad_add_aliased);
    tcase_add_test(tg, grad_scale);
    tcase_add_test(tg, grad_mul_lastdim);
    tcase_add_test(tg, grad_dropout);
    tcase_add_test(tg, grad_slice);
    tcase_add_test(tg, grad_layernorm);
    tcase_add_test(tg, grad_gelu);
    tcase_add_test(tg, grad_embedding);
    tcase_add_test(tg, grad_attention);
    tcase_add_test(tg, grad_attention_partial);
    tcase_add_test(tg, grad_attention_aliased);
    tcase_add_test(tg, grad_cross_entropy);
    tcase_add_test(tg, grad_chain);
    suite_add_tcase(s, tg);
    TCase *tf = tcase_create("forward");
    tcase_add_test(tf, fwd_linear);
    tcase_add_test(tf, fwd_attention);
    tcase_add_test(tf, fwd_layernorm_gelu);
    tcase_add_test(tf, fwd_embedding);
    tcase_add_test(tf, fwd_cross_entropy);
    tcase_add_test(tf, fwd_dropout);
    tcase_add_test(tf, fwd_small_ops);
    suite_add_tcase(s, tf);
    TCase *tk = tcase_create("skip");
    tcase_add_test(tk, frozen_weight_no_grad);
    tcase_add_test(tk, no_tape_without_grad);
    tcase_add_test(tk, param_grad_accumulates);
    suite_add_tcase(s, tk);

    int failed = tu_run_suite(s);
    return failed ? 1 : 0;
}
