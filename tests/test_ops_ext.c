/* test_ops_ext.c — Check suite for the ops BERT, LLaMA, T5 and the task heads are built from
 * (core/ops_attention.c op_attention_ex, ops_elementwise.c, ops_rmsnorm_rope.c, ops_index.c):
 * a finite-difference gradient test for every differentiable input of every op, forward checks
 * against naive double-precision references, op_attention == op_attention_ex bit for bit, and
 * "no gradient for what does not need one". */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fd.h"
#include "peft/graph.h"
#include "core/ops/ops.h"
#include "testutil.h"

/* ---- the finite-difference harness (fd.h): no dropout here -------------------------------- */

static const fd_opts FD = {.graph_seed = 7, .training = 0};

#define EPS 1e-2
#define RTOL 1e-2
#define ATOL 1e-3

/* ---- attention_ex --------------------------------------------------------------------------- */

typedef struct {
    int H, Hkv;
    float scale;
    int causal;
    const int32_t *mask;
    int use_bias;
} attn_ud;

static peft_tensor *b_attention_ex(peft_graph *g, peft_tensor **in, const void *ud)
{
    const attn_ud *a = ud;
    return op_attention_ex(g, in[0], in[1], in[2], a->H, a->Hkv, a->scale, a->causal, a->mask,
                           a->use_bias ? in[3] : NULL);
}

START_TEST(grad_attention_ex)
{
    /* B=2, T=3, S=5 (2 prefix keys), D=3; masks leave some keys out */
    static const int32_t mask[10] = {1, 1, 1, 0, 1, 0, 1, 1, 1, 1};
    const attn_ud cases[] = {
        {4, 2, 0.37f, 1, mask, 1}, /* GQA, odd scale, causal S > T, mask, trainable bias */
        {4, 1, 0.8f, 0, mask, 0},  /* multi-query, bidirectional, mask */
        {2, 2, 1.0f, 0, NULL, 1},  /* T5: scale 1, bias, no mask */
        {4, 2, 0.5f, 1, NULL, 1},  /* causal, no mask, bias */
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        const int64_t H = cases[c].H, Hkv = cases[c].Hkv, D = 3;
        peft_tensor *in[4] = {fd_rand_tensor(3, (int64_t[]){2, 3, H * D}, 0.8f, 1),
                              fd_rand_tensor(3, (int64_t[]){2, 5, Hkv * D}, 0.8f, 1),
                              fd_rand_tensor(3, (int64_t[]){2, 5, Hkv * D}, 1.0f, 1),
                              fd_rand_tensor(3, (int64_t[]){H, 3, 5}, 1.0f, cases[c].use_bias)};
        fd_check_grads(&FD, "attention_ex", b_attention_ex, in, 4, &cases[c], EPS, RTOL, ATOL);
        fd_free_all(in, 4);
    }
}
END_TEST

START_TEST(grad_attention_ex_partial)
{
    /* exactly one of q, k, v, bias requires grad: only its gradient exists */
    static const int32_t mask[10] = {1, 0, 1, 1, 1, 1, 1, 1, 1, 0};
    const attn_ud a = {6, 2, 0.45f, 1, mask, 1};
    for (int which = 0; which < 4; which++) {
        peft_tensor *in[4] = {fd_rand_tensor(3, (int64_t[]){2, 4, 12}, 0.8f, which == 0),
                              fd_rand_tensor(3, (int64_t[]){2, 5, 4}, 0.8f, which == 1),
                              fd_rand_tensor(3, (int64_t[]){2, 5, 4}, 1.0f, which == 2),
                              fd_rand_tensor(3, (int64_t[]){6, 4, 5}, 1.0f, which == 3)};
        fd_check_grads(&FD, "attention_ex_partial", b_attention_ex, in, 4, &a, EPS, RTOL, ATOL);
        fd_free_all(in, 4);
    }
}
END_TEST

static peft_tensor *b_attention_ex_self(peft_graph *g, peft_tensor **in, const void *ud)
{
    /* q = k = v: the three gradients accumulate into one buffer */
    const attn_ud *a = ud;
    return op_attention_ex(g, in[0], in[0], in[0], a->H, a->Hkv, a->scale, a->causal, a->mask,
                           NULL);
}

START_TEST(grad_attention_ex_aliased)
{
    static const int32_t mask[8] = {1, 1, 0, 1, 1, 1, 1, 1};
    const attn_ud a = {2, 2, 0.6f, 1, mask, 0};
    peft_tensor *in[1] = {fd_rand_tensor(3, (int64_t[]){2, 4, 6}, 0.8f, 1)};
    fd_check_grads(&FD, "attention_ex_self", b_attention_ex_self, in, 1, &a, EPS, RTOL, ATOL);
    fd_free_all(in, 1);
}
END_TEST

/* reference in double: GQA, scale, bias (H,T,S), causal offset, key mask; no key -> zeros */
static void ref_attention_ex(const float *q, const float *k, const float *v, const float *bias,
                             int64_t B, int64_t T, int64_t S, int64_t H, int64_t Hkv, int64_t D,
                             double scale, int causal, const int32_t *mask, double *out)
{
    const int64_t HD = H * D, KD = Hkv * D;
    double *sc = malloc((size_t)(S ? S : 1) * sizeof *sc);
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++) {
            const int64_t kh = h / (H / Hkv);
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
                        d += (double)q[(b * T + t) * HD + h * D + j] * k[(b * S + s) * KD + kh * D + j];
                    sc[s] = d * scale + (bias ? bias[(h * T + t) * S + s] : 0.0);
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
                        o[j] += sc[s] / sum * v[(b * S + s) * KD + kh * D + j];
            }
        }
    free(sc);
}

START_TEST(fwd_attention_ex)
{
    peft_rng r;
    peft_rng_seed(&r, 3);
    peft_graph *g = peft_graph_new(&r);
    struct { int64_t B, T, S, H, Hkv, D; float scale; int causal, use_mask, use_bias; } cs[] = {
        {2, 5, 5, 4, 2, 4, 0.3f, 1, 0, 0},  /* GQA causal */
        {2, 4, 7, 6, 3, 4, 1.0f, 1, 1, 1},  /* GQA + key mask + S > T + bias */
        {2, 4, 7, 4, 1, 4, 0.5f, 0, 1, 1},  /* MQA bidirectional */
        {1, 6, 4, 2, 2, 3, 0.7f, 1, 0, 1},  /* S < T: first queries see no key -> zeros */
        {3, 3, 3, 2, 1, 8, 0.2f, 0, 1, 0},  /* batch 1 fully masked -> zeros */
    };
    for (size_t c = 0; c < sizeof cs / sizeof *cs; c++) {
        const int64_t B = cs[c].B, T = cs[c].T, S = cs[c].S, H = cs[c].H, Hkv = cs[c].Hkv,
                      D = cs[c].D;
        peft_tensor *q = fd_rand_tensor(3, (int64_t[]){B, T, H * D}, 1.0f, 0);
        peft_tensor *k = fd_rand_tensor(3, (int64_t[]){B, S, Hkv * D}, 1.0f, 0);
        peft_tensor *v = fd_rand_tensor(3, (int64_t[]){B, S, Hkv * D}, 1.0f, 0);
        peft_tensor *bias = fd_rand_tensor(3, (int64_t[]){H, T, S}, 2.0f, 0);
        int32_t *mask = malloc((size_t)(B * S) * sizeof *mask);
        for (int64_t i = 0; i < B * S; i++) mask[i] = peft_rng_uniform(&fd_rng) < 0.7;
        mask[0] = 1;
        if (c == 4)
            for (int64_t s = 0; s < S; s++) mask[1 * S + s] = 0;
        const int32_t *m = cs[c].use_mask ? mask : NULL;
        peft_tensor *bi = cs[c].use_bias ? bias : NULL;
        double *ref = malloc((size_t)(B * T * H * D) * sizeof *ref);
        ref_attention_ex(peft_f32(q), peft_f32(k), peft_f32(v), bi ? peft_f32(bi) : NULL, B, T,
                         S, H, Hkv, D, cs[c].scale, cs[c].causal, m, ref);
        peft_tensor *o = op_attention_ex(g, q, k, v, (int)H, (int)Hkv, cs[c].scale, cs[c].causal,
                                         m, bi);
        ck_assert_ptr_nonnull(o);
        ck_assert_int_eq(o->shape[0], B);
        ck_assert_int_eq(o->shape[1], T);
        ck_assert_int_eq(o->shape[2], H * D);
        double md = 0;
        for (int64_t i = 0; i < o->numel; i++) md = fmax(md, fabs(peft_f32(o)[i] - ref[i]));
        ck_assert_msg(md <= 1e-5, "case %zu: max diff %g", c, md);
        if (c == 3) /* queries 0 and 1 see no key (0 > t - 2) */
            for (int64_t j = 0; j < 2 * H * D; j++) ck_assert(peft_f32(o)[j] == 0.0f);
        if (c == 4)
            for (int64_t j = 0; j < T * H * D; j++) ck_assert(peft_f32(o)[T * H * D + j] == 0.0f);
        /* recording (probabilities kept for every head) gives the same bits as inference */
        q->requires_grad = 1;
        peft_graph_set_recording(g, 1);
        peft_tensor *o2 = op_attention_ex(g, q, k, v, (int)H, (int)Hkv, cs[c].scale,
                                          cs[c].causal, m, bi);
        ck_assert_ptr_nonnull(o2);
        ck_assert_int_eq(o2->requires_grad, 1);
        ck_assert_int_eq(memcmp(o->data, o2->data, (size_t)o->numel * sizeof(float)), 0);
        peft_graph_set_recording(g, 0);
        peft_graph_reset(g);
        free(ref);
        free(mask);
        peft_tensor_free(q);
        peft_tensor_free(k);
        peft_tensor_free(v);
        peft_tensor_free(bias);
    }
    /* bad shapes: NULL, never a crash */
    peft_tensor *q = fd_rand_tensor(3, (int64_t[]){1, 2, 12}, 1.0f, 0);
    peft_tensor *k = fd_rand_tensor(3, (int64_t[]){1, 3, 6}, 1.0f, 0);
    peft_tensor *bias = fd_rand_tensor(3, (int64_t[]){4, 2, 2}, 1.0f, 0);
    ck_assert_ptr_nonnull(op_attention_ex(g, q, k, k, 4, 2, 1.0f, 0, NULL, NULL));
    ck_assert_ptr_null(op_attention_ex(g, q, k, k, 4, 3, 1.0f, 0, NULL, NULL)); /* 4 % 3 */
    ck_assert_ptr_null(op_attention_ex(g, q, k, k, 4, 4, 1.0f, 0, NULL, NULL)); /* kv width */
    ck_assert_ptr_null(op_attention_ex(g, q, k, k, 4, 0, 1.0f, 0, NULL, NULL));
    ck_assert_ptr_null(op_attention_ex(g, q, k, k, 5, 1, 1.0f, 0, NULL, NULL)); /* 12 % 5 */
    ck_assert_ptr_null(op_attention_ex(g, q, k, k, 4, 2, 1.0f, 0, NULL, bias)); /* S = 3 */
    ck_assert_ptr_null(op_attention_ex(g, q, NULL, k, 4, 2, 1.0f, 0, NULL, NULL));
    peft_tensor_free(q);
    peft_tensor_free(k);
    peft_tensor_free(bias);
    peft_graph_free(g);
}
END_TEST

START_TEST(attention_ex_equals_attention)
{
    /* Hkv == H, scale 1/sqrt(D), no bias: the same bits as op_attention, forward and backward */
    static const int32_t mask[14] = {1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1};
    const int64_t B = 2, T = 5, S = 7, H = 3, D = 4;
    for (int causal = 0; causal < 2; causal++) {
        peft_tensor *q = fd_rand_tensor(3, (int64_t[]){B, T, H * D}, 1.0f, 1);
        peft_tensor *k = fd_rand_tensor(3, (int64_t[]){B, S, H * D}, 1.0f, 1);
        peft_tensor *v = fd_rand_tensor(3, (int64_t[]){B, S, H * D}, 1.0f, 1);
        peft_tensor *outs[2];
        float *grads[2][3];
        peft_rng r;
        peft_rng_seed(&r, 3);
        peft_graph *gs[2];
        for (int which = 0; which < 2; which++) {
            peft_graph *g = gs[which] = peft_graph_new(&r);
            peft_graph_set_recording(g, 1);
            outs[which] = which ? op_attention_ex(g, q, k, v, (int)H, (int)H,
                                                  1.0f / sqrtf((float)D), causal, mask, NULL)
                                : op_attention(g, q, k, v, (int)H, causal, mask);
            ck_assert_ptr_nonnull(outs[which]);
            float *go = peft_grad_of(g, outs[which]);
            for (int64_t i = 0; i < outs[which]->numel; i++) go[i] = (float)(i % 7) - 3.0f;
            for (size_t n = g->n_nodes; n-- > 0;) g->nodes[n].fn(g, g->nodes[n].ctx);
            peft_tensor *in[3] = {q, k, v};
            for (int i = 0; i < 3; i++) {
                grads[which][i] = malloc((size_t)in[i]->numel * sizeof(float));
                memcpy(grads[which][i], in[i]->grad, (size_t)in[i]->numel * sizeof(float));
                peft_tensor_zero_grad(in[i]);
            }
        }
        ck_assert_int_eq(memcmp(outs[0]->data, outs[1]->data,
                                (size_t)outs[0]->numel * sizeof(float)), 0);
        peft_tensor *in[3] = {q, k, v};
        for (int i = 0; i < 3; i++) {
            ck_assert_int_eq(memcmp(grads[0][i], grads[1][i], (size_t)in[i]->numel * 4), 0);
            free(grads[0][i]);
            free(grads[1][i]);
        }
        peft_graph_free(gs[0]);
        peft_graph_free(gs[1]);
        peft_tensor_free(q);
        peft_tensor_free(k);
        peft_tensor_free(v);
    }
}
END_TEST

/* ---- rmsnorm, rope -------------------------------------------------------------------------- */

static peft_tensor *b_rmsnorm(peft_graph *g, peft_tensor **in, const void *ud)
{
    (void)ud;
    return op_rmsnorm(g, in[0], in[1], 1e-6f);
}

START_TEST(grad_rmsnorm)
{
    for (int which = 0; which < 3; which++) { /* both, x only, w only */
        peft_tensor *in[2] = {fd_rand_tensor(3, (int64_t[]){2, 3, 6}, 1.0f, which != 2),
                              fd_rand_tensor(1, (int64_t[]){6}, 1.0f, which != 1)};
        fd_check_grads(&FD, "rmsnorm", b_rmsnorm, in, 2, NULL, EPS, RTOL, ATOL);
        fd_free_all(in, 2);
    }
}
END_TEST

typedef struct { int H; const int32_t *pos; float theta; } rope_ud;

static peft_tensor *b_rope(peft_graph *g, peft_tensor **in, const void *ud)
{
    const rope_ud *a = ud;
    return op_rope(g, in[0], a->H, a->pos, a->theta);
}

START_TEST(grad_rope)
{
    static const int32_t pos[6] = {3, 4, 5, 0, 7, 2};
    const rope_ud cases[2] = {{2, NULL, 10000.0f}, {3, pos, 500.0f}};
    for (int c = 0; c < 2; c++) {
        peft_tensor *in[1] = {fd_rand_tensor(3, (int64_t[]){2, 3, cases[c].H * 4}, 1.0f, 1)};
        fd_check_grads(&FD, "rope", b_rope, in, 1, &cases[c], EPS, RTOL, ATOL);
        fd_free_all(in, 1);
    }
}
END_TEST

START_TEST(fwd_rmsnorm_rope)
{
    peft_rng r;
    peft_rng_seed(&r, 3);
    peft_graph *g = peft_graph_new(&r);
    const int64_t N = 5, C = 37;
    peft_tensor *x = fd_rand_tensor(2, (int64_t[]){N, C}, 3.0f, 0);
    peft_tensor *w = fd_rand_tensor(1, (int64_t[]){C}, 1.0f, 0);
    peft_tensor *y = op_rmsnorm(g, x, w, 1e-6f);
    ck_assert_ptr_nonnull(y);
    double md = 0;
    for (int64_t n = 0; n < N; n++) {
        const float *xr = peft_f32(x) + n * C;
        double ms = 0;
        for (int64_t j = 0; j < C; j++) ms += (double)xr[j] * xr[j];
        ms /= C;
        for (int64_t j = 0; j < C; j++) {
            double ref = peft_f32(w)[j] * (xr[j] / sqrt(ms + 1e-6));
            md = fmax(md, fabs(peft_f32(y)[n * C + j] - ref) / (1 + fabs(ref)));
        }
    }
    ck_assert_msg(md <= 1e-6, "rmsnorm: max rel diff %g", md);
    /* a bf16 weight is converted at the kernel */
    uint16_t wb[37];
    for (int j = 0; j < C; j++) {
        uint32_t u;
        memcpy(&u, &peft_f32(w)[j], 4);
        wb[j] = (uint16_t)(u >> 16);
        u = (uint32_t)wb[j] << 16;
        memcpy(&peft_f32(w)[j], &u, 4);
    }
    peft_tensor *wt = peft_tensor_wrap(PEFT_DTYPE_BF16, 1, (int64_t[]){C}, wb);
    peft_tensor *y1 = op_rmsnorm(g, x, w, 1e-6f), *y2 = op_rmsnorm(g, x, wt, 1e-6f);
    ck_assert_int_eq(memcmp(y1->data, y2->data, (size_t)(N * C) * 4), 0);
    /* zero row: eps keeps it finite */
    memset(peft_f32(x), 0, (size_t)C * 4);
    y = op_rmsnorm(g, x, w, 1e-6f);
    for (int64_t j = 0; j < C; j++) ck_assert(peft_f32(y)[j] == 0.0f);
    ck_assert_ptr_null(op_rmsnorm(g, x, NULL, 1e-6f));
    peft_tensor *wbad = fd_rand_tensor(1, (int64_t[]){C - 1}, 1.0f, 0);
    ck_assert_ptr_null(op_rmsnorm(g, x, wbad, 1e-6f));
    peft_tensor_free(wbad);
    peft_tensor_free(wt);
    peft_tensor_free(x);
    peft_tensor_free(w);

    /* rope against the formula in double; pos NULL equals pos = t */
    const int64_t B = 2, T = 5, H = 3, D = 8;
    peft_tensor *xr = fd_rand_tensor(3, (int64_t[]){B, T, H * D}, 1.0f, 0);
    int32_t pos[10], post[10];
    for (int i = 0; i < 10; i++) {
        pos[i] = (i * 7 + 3) % 40;
        post[i] = i % 5;
    }
    peft_tensor *o = op_rope(g, xr, (int)H, pos, 10000.0f);
    ck_assert_ptr_nonnull(o);
    md = 0;
    for (int64_t bt = 0; bt < B * T; bt++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t i = 0; i < D / 2; i++) {
                const double ang = pos[bt] * pow(10000.0, -2.0 * (double)i / (double)D);
                const float *xi = peft_f32(xr) + bt * H * D + h * D;
                const float *oi = peft_f32(o) + bt * H * D + h * D;
                const double r0 = xi[i] * cos(ang) - xi[i + D / 2] * sin(ang);
                const double r1 = xi[i + D / 2] * cos(ang) + xi[i] * sin(ang);
                md = fmax(md, fmax(fabs(oi[i] - r0), fabs(oi[i + D / 2] - r1)));
            }
    ck_assert_msg(md <= 1e-5, "rope: max diff %g", md);
    peft_tensor *o1 = op_rope(g, xr, (int)H, NULL, 10000.0f);
    peft_tensor *o2 = op_rope(g, xr, (int)H, post, 10000.0f);
    ck_assert_int_eq(memcmp(o1->data, o2->data, (size_t)o1->numel * 4), 0);
    /* position 0 is the identity */
    for (int64_t j = 0; j < H * D; j++) ck_assert(peft_f32(o1)[j] == peft_f32(xr)[j]);
    ck_assert_ptr_nonnull(op_rope(g, xr, 4, NULL, 10000.0f)); /* D = 6 */
    ck_assert_ptr_null(op_rope(g, xr, 8, NULL, 10000.0f));  /* D = 3, odd */
    ck_assert_ptr_null(op_rope(g, xr, 5, NULL, 10000.0f));  /* 24 % 5 */
    peft_tensor_free(xr);
    peft_graph_free(g);
}
END_TEST

/* ---- elementwise ---------------------------------------------------------------------------- */

static peft_tensor *b_mul(peft_graph *g, peft_tensor **in, const void *ud)
{
    (void)ud;
    return op_mul(g, in[0], in[1]);
}

static peft_tensor *b_mul_self(peft_graph *g, peft_tensor **in, const void *ud)
{
    (void)ud;
    return op_mul(g, in[0], in[0]);
}

START_TEST(grad_mul)
{
    for (int which = 0; which < 3; which++) {
        peft_tensor *in[2] = {fd_rand_tensor(2, (int64_t[]){3, 4}, 1.0f, which != 2),
                              fd_rand_tensor(1, (int64_t[]){12}, 1.0f, which != 1)};
        fd_check_grads(&FD, "mul", b_mul, in, 2, NULL, EPS, RTOL, ATOL);
        fd_free_all(in, 2);
    }
    peft_tensor *in[1] = {fd_rand_tensor(1, (int64_t[]){6}, 1.0f, 1)};
    fd_check_grads(&FD, "mul_self", b_mul_self, in, 1, NULL, EPS, RTOL, ATOL);
    fd_free_all(in, 1);
}
END_TEST

typedef peft_tensor *(*unary_op_fn)(peft_graph *g, peft_tensor *x);

static peft_tensor *b_unary(peft_graph *g, peft_tensor **in, const void *ud)
{
    return (*(const unary_op_fn *)ud)(g, in[0]);
}

START_TEST(grad_unary)
{
    const unary_op_fn ops[4] = {op_silu, op_relu, op_tanh, op_gelu_erf};
    const char *names[4] = {"silu", "relu", "tanh", "gelu_erf"};
    for (int o = 0; o < 4; o++) {
        peft_tensor *in[1] = {fd_rand_tensor(2, (int64_t[]){4, 6}, 2.0f, 1)};
        /* keep clear of relu's kink: |x| >= 0.1 > EPS */
        for (int64_t i = 0; i < in[0]->numel; i++) {
            float *v = &peft_f32(in[0])[i];
            if (fabsf(*v) < 0.1f) *v = *v < 0 ? -0.1f - *v : 0.1f + *v;
        }
        fd_check_grads(&FD, names[o], b_unary, in, 1, &ops[o], EPS, RTOL, ATOL);
        fd_free_all(in, 1);
    }
}
END_TEST

START_TEST(fwd_elementwise)
{
    peft_rng r;
    peft_rng_seed(&r, 3);
    peft_graph *g = peft_graph_new(&r);
    peft_tensor *x = fd_rand_tensor(2, (int64_t[]){7, 11}, 4.0f, 0);
    peft_f32(x)[0] = 0.0f;
    peft_f32(x)[1] = 30.0f;
    peft_f32(x)[2] = -30.0f;
    peft_f32(x)[3] = -100.0f; /* exp(-x) overflows to inf: silu -> -0 */
    peft_tensor *b = fd_rand_tensor(1, (int64_t[]){77}, 1.0f, 0);
    peft_tensor *m = op_mul(g, x, b), *si = op_silu(g, x), *re = op_relu(g, x),
                *th = op_tanh(g, x), *ge = op_gelu_erf(g, x);
    ck_assert(m && si && re && th && ge);
    ck_assert_int_eq(m->ndim, 2); /* shape of a */
    double msi = 0, mth = 0, mge = 0;
    for (int64_t i = 0; i < x->numel; i++) {
        const double xi = peft_f32(x)[i];
        ck_assert(peft_f32(m)[i] == peft_f32(x)[i] * peft_f32(b)[i]);
        ck_assert(peft_f32(re)[i] == (xi > 0 ? (float)xi : 0.0f));
        msi = fmax(msi, fabs(peft_f32(si)[i] - xi / (1 + exp(-xi))) / (1 + fabs(xi)));
        mth = fmax(mth, fabs(peft_f32(th)[i] - tanh(xi)));
        mge = fmax(mge, fabs(peft_f32(ge)[i] - 0.5 * xi * (1 + erf(xi / sqrt(2.0)))) / (1 + fabs(xi)));
        ck_assert(isfinite(peft_f32(si)[i]) && isfinite(peft_f32(ge)[i]));
    }
    ck_assert_msg(msi <= 3e-7 && mth <= 3e-7 && mge <= 3e-7, "silu %g tanh %g gelu_erf %g", msi,
                  mth, mge);
    /* known values: gelu(1) = 0.8413447, silu(1) = 0.7310586 */
    float kv[2] = {1.0f, -1.0f};
    peft_tensor *kt = peft_tensor_wrap(PEFT_DTYPE_F32, 1, (int64_t[]){2}, kv);
    ck_assert_double_le(fabs(peft_f32(op_gelu_erf(g, kt))[0] - 0.8413447460685429), 1e-7);
    ck_assert_double_le(fabs(peft_f32(op_gelu_erf(g, kt))[1] + 0.15865525393145707), 1e-7);
    ck_assert_double_le(fabs(peft_f32(op_silu(g, kt))[0] - 0.7310585786300049), 1e-7);
    ck_assert_ptr_null(op_mul(g, x, kt));
    ck_assert_ptr_null(op_silu(g, NULL));
    peft_tensor_free(kt);
    peft_tensor_free(x);
    peft_tensor_free(b);
    peft_graph_free(g);
}
END_TEST

/* ---- gather_rows, concat_seq, slice_seq, mse ------------------------------------------------ */

static const int32_t gather_idx[3] = {2, 0, 2};

static peft_tensor *b_gather(peft_graph *g, peft_tensor **in, const void *ud)
{
    (void)ud;
    return op_gather_rows(g, in[0], gather_idx);
}

static peft_tensor *b_concat(peft_graph *g, peft_tensor **in, const void *ud)
{
    (void)ud;
    return op_concat_seq(g, in[0], in[1]);
}

static peft_tensor *b_slice_seq(peft_graph *g, peft_tensor **in, const void *ud)
{
    (void)ud;
    return op_slice_seq(g, in[0], 1, 2);
}

static const float mse_target[12] = {0.5f, -1, 2, 0, 1, 1, -0.5f, 3, 0.25f, -2, 0, 1};

static peft_tensor *b_mse(peft_graph *g, peft_tensor **in, const void *ud)
{
    (void)ud;
    return op_mse(g, in[0], mse_target);
}

START_TEST(grad_index)
{
    peft_tensor *x = fd_rand_tensor(3, (int64_t[]){3, 4, 5}, 1.0f, 1);
    fd_check_grads(&FD, "gather_rows", b_gather, &x, 1, NULL, EPS, RTOL, ATOL);
    for (int j = 0; j < 5; j++) ck_assert(x->grad[(0 * 4 + 1) * 5 + j] == 0.0f); /* not gathered */
    fd_check_grads(&FD, "slice_seq", b_slice_seq, &x, 1, NULL, EPS, RTOL, ATOL);
    for (int j = 0; j < 5; j++) ck_assert(x->grad[(1 * 4 + 0) * 5 + j] == 0.0f); /* sliced off */
    peft_tensor_free(x);
    for (int which = 0; which < 3; which++) {
        peft_tensor *in[2] = {fd_rand_tensor(3, (int64_t[]){2, 2, 3}, 1.0f, which != 2),
                              fd_rand_tensor(3, (int64_t[]){2, 4, 3}, 1.0f, which != 1)};
        fd_check_grads(&FD, "concat_seq", b_concat, in, 2, NULL, EPS, RTOL, ATOL);
        fd_free_all(in, 2);
    }
    peft_tensor *y = fd_rand_tensor(2, (int64_t[]){3, 4}, 1.0f, 1);
    fd_check_grads(&FD, "mse", b_mse, &y, 1, NULL, EPS, RTOL, ATOL);
    peft_tensor_free(y);
}
END_TEST

START_TEST(fwd_index)
{
    peft_rng r;
    peft_rng_seed(&r, 3);
    peft_graph *g = peft_graph_new(&r);
    peft_tensor *x = fd_rand_tensor(3, (int64_t[]){3, 4, 5}, 1.0f, 0);
    peft_tensor *p = fd_rand_tensor(3, (int64_t[]){3, 2, 5}, 1.0f, 0);
    const float *xd = peft_f32(x), *pd = peft_f32(p);

    peft_tensor *gr = op_gather_rows(g, x, gather_idx);
    ck_assert_ptr_nonnull(gr);
    ck_assert_int_eq(gr->ndim, 2);
    ck_assert_int_eq(gr->shape[0], 3);
    ck_assert_int_eq(gr->shape[1], 5);
    for (int b = 0; b < 3; b++)
        for (int j = 0; j < 5; j++)
            ck_assert(peft_f32(gr)[b * 5 + j] == xd[(b * 4 + gather_idx[b]) * 5 + j]);
    const int32_t bad_hi[3] = {0, 4, 1}, bad_lo[3] = {0, -1, 1};
    ck_assert_ptr_null(op_gather_rows(g, x, bad_hi));
    ck_assert_ptr_null(op_gather_rows(g, x, bad_lo));
    ck_assert_ptr_null(op_gather_rows(g, x, NULL));

    peft_tensor *c = op_concat_seq(g, p, x);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(c->shape[1], 6);
    for (int b = 0; b < 3; b++)
        for (int t = 0; t < 6; t++)
            for (int j = 0; j < 5; j++)
                ck_assert(peft_f32(c)[(b * 6 + t) * 5 + j] ==
                          (t < 2 ? pd[(b * 2 + t) * 5 + j] : xd[(b * 4 + t - 2) * 5 + j]));
    /* slicing the prompt back off gives x again */
    peft_tensor *s = op_slice_seq(g, c, 2, 4);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(memcmp(s->data, x->data, (size_t)x->numel * 4), 0);
    ck_assert_ptr_nonnull(op_slice_seq(g, x, 4, 0)); /* empty slice at the end */
    ck_assert_ptr_null(op_slice_seq(g, x, 3, 2));
    ck_assert_ptr_null(op_slice_seq(g, x, -1, 2));
    ck_assert_ptr_null(op_slice_seq(g, x, 5, 0));
    peft_tensor *pbad = fd_rand_tensor(3, (int64_t[]){2, 2, 5}, 1.0f, 0);
    ck_assert_ptr_null(op_concat_seq(g, pbad, x)); /* batch differs */
    peft_tensor_free(pbad);

    peft_tensor *y = fd_rand_tensor(2, (int64_t[]){3, 4}, 1.0f, 0);
    peft_tensor *l = op_mse(g, y, mse_target);
    ck_assert_ptr_nonnull(l);
    ck_assert_int_eq(l->ndim, 0);
    double ref = 0;
    for (int i = 0; i < 12; i++) ref += pow(peft_f32(y)[i] - mse_target[i], 2);
    ck_assert_double_le(fabs(peft_f32(l)[0] - ref / 12), 1e-6 * (1 + ref / 12));
    ck_assert_ptr_null(op_mse(g, y, NULL));
    peft_tensor_free(y);
    peft_tensor_free(x);
    peft_tensor_free(p);
    peft_graph_free(g);
}
END_TEST

/* ---- a LLaMA-like block through the new ops (relu is left out: FD would cross its kink) ---- */

static peft_tensor *b_llama_chain(peft_graph *g, peft_tensor **in, const void *ud)
{
    (void)ud;
    /* in: x (1,4,8) prompt (1,2,8), norm w (8), wq (8,8), wkv (8,8) -> k,v 2 heads of 2 of 4,
     * mlp gate/up (8,8), head (2,8) */
    static const int32_t pos[6] = {0, 1, 2, 3, 4, 5};
    static const int32_t last[1] = {5};
    peft_tensor *x = op_concat_seq(g, in[1], in[0]);                    /* (1,6,8) */
    peft_tensor *h = op_rmsnorm(g, x, in[2], 1e-6f);
    peft_tensor *q = op_rope(g, op_linear(g, h, in[3], NULL, 0), 4, pos, 10000.0f);
    peft_tensor *kv = op_linear(g, h, in[4], NULL, 0);
    peft_tensor *k = op_rope(g, op_slice_lastdim(g, kv, 0, 4), 2, pos, 10000.0f);
    peft_tensor *v = op_slice_lastdim(g, kv, 4, 4);
    peft_tensor *a = op_attention_ex(g, q, k, v, 4, 2, 0.7071f, 1, NULL, NULL);
    peft_tensor *r = op_add(g, x, a);
    peft_tensor *mlp = op_mul(g, op_silu(g, op_linear(g, r, in[5], NULL, 0)),
                              op_gelu_erf(g, op_linear(g, r, in[6], NULL, 0)));
    peft_tensor *o = op_tanh(g, op_add(g, r, mlp));
    peft_tensor *pooled = op_gather_rows(g, op_slice_seq(g, o, 0, 6), last); /* (1,8) */
    static const float tgt[2] = {0.3f, -0.2f};
    return op_mse(g, op_linear(g, pooled, in[7], NULL, 0), tgt);
}

START_TEST(grad_llama_chain)
{
    /* its own data (same in fork and no-fork runs); a smaller step: the chain is curved */
    peft_rng_seed(&fd_rng, 11);
    peft_tensor *in[8] = {fd_rand_tensor(3, (int64_t[]){1, 4, 8}, 1.0f, 1),
                          fd_rand_tensor(3, (int64_t[]){1, 2, 8}, 1.0f, 1),
                          fd_rand_tensor(1, (int64_t[]){8}, 1.0f, 1),
                          fd_rand_tensor(2, (int64_t[]){8, 8}, 0.5f, 1),
                          fd_rand_tensor(2, (int64_t[]){8, 8}, 0.5f, 1),
                          fd_rand_tensor(2, (int64_t[]){8, 8}, 0.5f, 1),
                          fd_rand_tensor(2, (int64_t[]){8, 8}, 0.5f, 1),
                          fd_rand_tensor(2, (int64_t[]){2, 8}, 0.5f, 1)};
    fd_check_grads(&FD, "llama_chain", b_llama_chain, in, 8, NULL, 3e-3, RTOL, ATOL);
    fd_free_all(in, 8);
}
END_TEST

/* ---- skipping what nobody needs ------------------------------------------------------------- */

START_TEST(no_tape_without_grad)
{
    peft_rng r;
    peft_rng_seed(&r, 3);
    peft_graph *g = peft_graph_new(&r);
    peft_graph_set_recording(g, 1);
    peft_tensor *x = fd_rand_tensor(3, (int64_t[]){1, 4, 8}, 1.0f, 0);
    peft_tensor *kv = fd_rand_tensor(3, (int64_t[]){1, 4, 4}, 1.0f, 0);
    peft_tensor *w = fd_rand_tensor(1, (int64_t[]){8}, 1.0f, 0);
    peft_tensor *bias = fd_rand_tensor(3, (int64_t[]){4, 4, 4}, 1.0f, 0);
    const int32_t idx[1] = {3};
    const float tgt[32] = {0};
    peft_tensor *outs[13];
    int n = 0;
    outs[n++] = op_attention_ex(g, x, kv, kv, 4, 2, 0.5f, 1, NULL, bias);
    outs[n++] = op_rmsnorm(g, x, w, 1e-6f);
    outs[n++] = op_rope(g, x, 2, NULL, 10000.0f);
    outs[n++] = op_mul(g, x, x);
    outs[n++] = op_silu(g, x);
    outs[n++] = op_relu(g, x);
    outs[n++] = op_tanh(g, x);
    outs[n++] = op_gelu_erf(g, x);
    outs[n++] = op_gather_rows(g, x, idx);
    outs[n++] = op_concat_seq(g, x, x);
    outs[n++] = op_slice_seq(g, x, 1, 2);
    outs[n++] = op_mse(g, x, tgt);
    for (int i = 0; i < n; i++) {
        ck_assert_ptr_nonnull(outs[i]);
        ck_assert_int_eq(outs[i]->requires_grad, 0);
    }
    ck_assert_uint_eq(g->n_nodes, 0);

    /* a trainable T5 bias with frozen q, k, v: only the bias gets a gradient */
    bias->requires_grad = 1;
    peft_tensor *a = op_attention_ex(g, x, kv, kv, 4, 2, 1.0f, 0, NULL, bias);
    ck_assert_int_eq(a->requires_grad, 1);
    peft_tensor *l = op_mse(g, a, tgt);
    ck_assert_int_eq(peft_graph_backward(g, l), 0);
    ck_assert_ptr_nonnull(bias->grad);
    ck_assert_ptr_null(x->grad);
    ck_assert_ptr_null(kv->grad);
    peft_tensor_free(x);
    peft_tensor_free(kv);
    peft_tensor_free(w);
    peft_tensor_free(bias);
    peft_graph_free(g);
}
END_TEST

int main(void)
{
    peft_rng_seed(&fd_rng, 2025);
    Suite *s = suite_create("ops_ext");
    TCase *tg = tcase_create("gradients");
    tcase_set_timeout(tg, 120);
    tcase_add_test(tg, grad_attention_ex);
    tcase_add_test(tg, grad_attention_ex_partial);
    tcase_add_test(tg, grad_attention_ex_aliased);
    tcase_add_test(tg, grad_rmsnorm);
    tcase_add_test(tg, grad_rope);
    tcase_add_test(tg, grad_mul);
    tcase_add_test(tg, grad_unary);
    tcase_add_test(tg, grad_index);
    tcase_add_test(tg, grad_llama_chain);
    suite_add_tcase(s, tg);
    TCase *tf = tcase_create("forward");
    tcase_add_test(tf, fwd_attention_ex);
    tcase_add_test(tf, attention_ex_equals_attention);
    tcase_add_test(tf, fwd_rmsnorm_rope);
    tcase_add_test(tf, fwd_elementwise);
    tcase_add_test(tf, fwd_index);
    suite_add_tcase(s, tf);
    TCase *tk = tcase_create("skip");
    tcase_add_test(tk, no_tape_without_grad);
    suite_add_tcase(s, tk);

    int failed = tu_run_suite(s);
    return failed ? 1 : 0;
}
