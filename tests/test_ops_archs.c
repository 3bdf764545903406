/* test_ops_archs.c — the ops the LLaMA-family architectures added (peft/ops.h): attention with a
 * sliding window and soft-capped scores (op_attention_opt), Gemma's offset RMS norm
 * (op_rmsnorm_offset), RoPE with given frequencies (op_rope_freqs) and soft-capping (op_softcap):
 * q, k, v read in place from one fused tensor (op_attention_packed), bit-identical to slicing;
 * finite-difference gradients of every input, forward checks against naive double-precision
 * references, and the RoPE scaling frequencies of transformers 4.44 (core/models/rope_scaling.c)
 * for linear and dynamic scaling. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/models/rope_scaling.h"
#include "fd.h"
#include "peft/graph.h"
#include "core/ops/ops.h"
#include "testutil.h"

static const fd_opts FD = {.graph_seed = 7, .training = 0};

#define EPS 1e-2
#define RTOL 1e-2
#define ATOL 1e-3

typedef struct {
    int H, Hkv;
    float scale;
    peft_attn_opts o;
    int use_bias;
} attn_ud;

static peft_tensor *b_attention_opt(peft_graph *g, peft_tensor **in, const void *ud)
{
    const attn_ud *a = ud;
    peft_attn_opts o = a->o;
    o.bias = a->use_bias ? in[3] : NULL;
    return op_attention_opt(g, in[0], in[1], in[2], a->H, a->Hkv, a->scale, &o);
}

START_TEST(grad_attention_window_softcap)
{
    static const int32_t mask[12] = {1, 1, 1, 0, 1, 1, 0, 1, 1, 1, 1, 1};
    const attn_ud cases[] = {
        {4, 2, 0.37f, {.causal = 1, .window = 2}, 0},                      /* window, GQA */
        {4, 2, 0.5f, {.causal = 1, .softcap = 1.0f}, 0},                   /* soft-capping */
        {2, 1, 0.9f, {.causal = 1, .window = 3, .softcap = 0.7f, .key_mask = mask}, 1},
        {4, 4, 0.25f, {.causal = 1, .window = 1, .softcap = 2.0f}, 0},     /* only the diagonal */
    };
    /* probabilities kept for the backward (the default at these sizes), then recomputed */
    for (int recompute = 0; recompute < 2; recompute++) {
        const int64_t old = op_attention_set_keep_limit(recompute ? 0 : (int64_t)8 << 20);
        for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
            const int64_t H = cases[c].H, Hkv = cases[c].Hkv, D = 3;
            peft_tensor *in[4] = {fd_rand_tensor(3, (int64_t[]){2, 4, H * D}, 0.8f, 1),
                                  fd_rand_tensor(3, (int64_t[]){2, 6, Hkv * D}, 0.8f, 1),
                                  fd_rand_tensor(3, (int64_t[]){2, 6, Hkv * D}, 1.0f, 1),
                                  fd_rand_tensor(3, (int64_t[]){H, 4, 6}, 1.0f, cases[c].use_bias)};
            fd_check_grads(&FD, recompute ? "attention_opt (P recomputed)" : "attention_opt",
                           b_attention_opt, in, 4, &cases[c], EPS, RTOL, ATOL);
            fd_free_all(in, 4);
        }
        op_attention_set_keep_limit(old);
    }
}
END_TEST

/* the backward with the probabilities kept and recomputed: the same bytes (one code path
 * computes them), for the plain, masked and soft-capped + biased cases */
static void attention_step(const attn_ud *a, peft_tensor **in, int64_t keep_limit, float *out,
                           float *grads[4])
{
    const int64_t old = op_attention_set_keep_limit(keep_limit);
    peft_graph *g = peft_graph_new(&fd_rng);
    peft_graph_set_recording(g, 1);
    peft_tensor *y = b_attention_opt(g, in, a);
    ck_assert(y);
    float *zero = calloc((size_t)y->numel, sizeof *zero);
    peft_tensor *l = op_mse(g, y, zero);
    ck_assert(l);
    ck_assert_int_eq(peft_graph_backward(g, l), 0);
    free(zero);
    memcpy(out, y->data, (size_t)y->numel * 4);
    for (int i = 0; i < 4; i++)
        if (in[i]->requires_grad) memcpy(grads[i], in[i]->grad, (size_t)in[i]->numel * 4);
    peft_graph_free(g);
    for (int i = 0; i < 4; i++) peft_tensor_zero_grad(in[i]);
    op_attention_set_keep_limit(old);
}

START_TEST(attention_recompute_is_bit_identical)
{
    static const int32_t mask[2 * 9] = {1, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1};
    const attn_ud cases[] = {
        {4, 2, 0.37f, {.causal = 1}, 0},
        {4, 4, 0.5f, {.causal = 0, .key_mask = mask}, 0},
        {2, 1, 0.9f, {.causal = 1, .window = 3, .softcap = 0.7f, .key_mask = mask}, 1},
    };
    for (size_t c = 0; c < sizeof cases / sizeof *cases; c++) {
        const int64_t H = cases[c].H, Hkv = cases[c].Hkv, D = 5, T = 6, S = 9;
        peft_tensor *in[4] = {fd_rand_tensor(3, (int64_t[]){2, T, H * D}, 0.8f, 1),
                              fd_rand_tensor(3, (int64_t[]){2, S, Hkv * D}, 0.8f, 1),
                              fd_rand_tensor(3, (int64_t[]){2, S, Hkv * D}, 1.0f, 1),
                              fd_rand_tensor(3, (int64_t[]){H, T, S}, 1.0f, cases[c].use_bias)};
        float *o[2], *gr[2][4];
        for (int r = 0; r < 2; r++) {
            o[r] = malloc((size_t)in[0]->numel * 4);
            for (int i = 0; i < 4; i++) gr[r][i] = calloc((size_t)in[i]->numel, 4);
            attention_step(&cases[c], in, r ? 0 : (int64_t)1 << 30, o[r], gr[r]);
        }
        ck_assert(memcmp(o[0], o[1], (size_t)in[0]->numel * 4) == 0);
        for (int i = 0; i < 4; i++)
            ck_assert_msg(memcmp(gr[0][i], gr[1][i], (size_t)in[i]->numel * 4) == 0,
                          "case %zu: input %d's gradient differs when P is recomputed", c, i);
        for (int r = 0; r < 2; r++) {
            free(o[r]);
            for (int i = 0; i < 4; i++) free(gr[r][i]);
        }
        fd_free_all(in, 4);
    }
}
END_TEST

/* q, k, v read in place from one fused tensor (op_attention_packed, GPT-2's c_attn output) */
static peft_tensor *b_attention_packed(peft_graph *g, peft_tensor **in, const void *ud)
{
    const attn_ud *a = ud;
    return op_attention_packed(g, in[0], a->H, a->Hkv, a->scale, &a->o);
}

/* the same through slice copies and op_attention_opt */
static peft_tensor *b_attention_sliced(peft_graph *g, peft_tensor **in, const void *ud)
{
    const attn_ud *a = ud;
    const int64_t W = in[0]->shape[2], D = W / (a->H + 2 * a->Hkv);
    peft_tensor *q = op_slice_lastdim(g, in[0], 0, a->H * D);
    peft_tensor *k = op_slice_lastdim(g, in[0], a->H * D, a->Hkv * D);
    peft_tensor *v = op_slice_lastdim(g, in[0], (a->H + a->Hkv) * D, a->Hkv * D);
    return op_attention_opt(g, q, k, v, a->H, a->Hkv, a->scale, &a->o);
}

static const int32_t packed_mask[2 * 5] = {1, 1, 0, 1, 1, 1, 1, 1, 1, 0};
static const attn_ud packed_cases[] = {
    {2, 2, 0.45f, {.causal = 1}, 0},                               /* GPT-2's */
    {4, 2, 0.37f, {.causal = 1, .key_mask = packed_mask}, 0},      /* GQA, padding */
    {2, 1, 0.9f, {.causal = 0, .window = 2, .softcap = 0.7f}, 0},  /* window, soft-capping */
};

START_TEST(grad_attention_packed)
{
    for (int recompute = 0; recompute < 2; recompute++) {
        const int64_t old = op_attention_set_keep_limit(recompute ? 0 : (int64_t)8 << 20);
        for (size_t c = 0; c < sizeof packed_cases / sizeof *packed_cases; c++) {
            const int64_t D = 3, W = (packed_cases[c].H + 2 * packed_cases[c].Hkv) * D;
            peft_tensor *in[1] = {fd_rand_tensor(3, (int64_t[]){2, 5, W}, 0.8f, 1)};
            fd_check_grads(&FD, recompute ? "attention_packed (P recomputed)" : "attention_packed",
                           b_attention_packed, in, 1, &packed_cases[c], EPS, RTOL, ATOL);
            fd_free_all(in, 1);
        }
        op_attention_set_keep_limit(old);
    }
}
END_TEST

/* packed and sliced: the same output and the same gradient of the fused tensor, to the bit */
static void packed_step(peft_tensor *(*f)(peft_graph *, peft_tensor **, const void *),
                        const attn_ud *a, peft_tensor *qkv, float *out, float *grad)
{
    peft_graph *g = peft_graph_new(&fd_rng);
    peft_graph_set_recording(g, 1);
    peft_tensor *y = f(g, &qkv, a);
    ck_assert(y);
    float *target = calloc((size_t)y->numel, sizeof *target);
    for (int64_t i = 0; i < y->numel; i++) target[i] = (float)((i * 7) % 5) * 0.1f;
    peft_tensor *l = op_mse(g, y, target);
    ck_assert(l);
    ck_assert_int_eq(peft_graph_backward(g, l), 0);
    free(target);
    memcpy(out, y->data, (size_t)y->numel * 4);
    memcpy(grad, qkv->grad, (size_t)qkv->numel * 4);
    peft_graph_free(g);
    peft_tensor_zero_grad(qkv);
}

START_TEST(attention_packed_matches_slices)
{
    for (int recompute = 0; recompute < 2; recompute++) {
        const int64_t old = op_attention_set_keep_limit(recompute ? 0 : (int64_t)8 << 20);
        for (size_t c = 0; c < sizeof packed_cases / sizeof *packed_cases; c++) {
            const attn_ud *a = &packed_cases[c];
            const int64_t D = 8, W = (a->H + 2 * a->Hkv) * D;
            peft_tensor *qkv = fd_rand_tensor(3, (int64_t[]){2, 5, W}, 0.8f, 1);
            const size_t no = (size_t)(2 * 5 * a->H * D);
            float *o[2], *gr[2];
            for (int r = 0; r < 2; r++) {
                o[r] = malloc(no * 4);
                gr[r] = malloc((size_t)qkv->numel * 4);
                packed_step(r ? b_attention_sliced : b_attention_packed, a, qkv, o[r], gr[r]);
            }
            ck_assert_msg(memcmp(o[0], o[1], no * 4) == 0, "case %zu: outputs differ", c);
            ck_assert_msg(memcmp(gr[0], gr[1], (size_t)qkv->numel * 4) == 0,
                          "case %zu: the fused tensor's gradients differ", c);
            for (int r = 0; r < 2; r++) {
                free(o[r]);
                free(gr[r]);
            }
            fd_free_all(&qkv, 1);
        }
        op_attention_set_keep_limit(old);
    }
}
END_TEST

/* reference in double: causal with offset S - T, window, soft-capping, key mask */
START_TEST(fwd_attention_window_softcap)
{
    const int64_t B = 2, T = 5, S = 7, H = 4, Hkv = 2, D = 4, W = 3;
    const float scale = 0.4f, cap = 0.8f;
    peft_tensor *q = fd_rand_tensor(3, (int64_t[]){B, T, H * D}, 1.5f, 0);
    peft_tensor *k = fd_rand_tensor(3, (int64_t[]){B, S, Hkv * D}, 1.5f, 0);
    peft_tensor *v = fd_rand_tensor(3, (int64_t[]){B, S, Hkv * D}, 1.0f, 0);
    int32_t mask[14] = {1, 1, 1, 1, 0, 1, 1, 0, 1, 1, 1, 1, 1, 1};
    peft_graph *g = peft_graph_new(&fd_rng);
    peft_attn_opts o = {.causal = 1, .key_mask = mask, .window = W, .softcap = cap};
    peft_tensor *out = op_attention_opt(g, q, k, v, (int)H, (int)Hkv, scale, &o);
    ck_assert(out);
    double worst = 0;
    for (int64_t b = 0; b < B; b++)
        for (int64_t h = 0; h < H; h++)
            for (int64_t t = 0; t < T; t++) {
                double sc[7], mx = -INFINITY, sum = 0, ref[4] = {0};
                const int64_t qp = t + S - T;
                for (int64_t s = 0; s < S; s++) {
                    sc[s] = -INFINITY;
                    if (!mask[b * S + s] || s > qp || s <= qp - W) continue;
                    double d = 0;
                    for (int64_t j = 0; j < D; j++)
                        d += (double)peft_f32(q)[(b * T + t) * H * D + h * D + j] *
                             peft_f32(k)[(b * S + s) * Hkv * D + (h / 2) * D + j];
                    sc[s] = cap * tanh(d * scale / cap);
                    if (sc[s] > mx) mx = sc[s];
                }
                for (int64_t s = 0; s < S; s++) sum += sc[s] == -INFINITY ? 0 : exp(sc[s] - mx);
                for (int64_t s = 0; s < S; s++)
                    for (int64_t j = 0; j < D; j++)
                        if (sc[s] != -INFINITY)
                            ref[j] += exp(sc[s] - mx) / sum *
                                      peft_f32(v)[(b * S + s) * Hkv * D + (h / 2) * D + j];
                for (int64_t j = 0; j < D; j++) {
                    double e = fabs(ref[j] - peft_f32(out)[(b * T + t) * H * D + h * D + j]);
                    if (e > worst) worst = e;
                }
            }
    ck_assert_msg(worst < 1e-5, "window + softcap attention differs from the reference by %g", worst);
    /* no window and no cap: op_attention_ex bit for bit */
    peft_attn_opts plain = {.causal = 1, .key_mask = mask};
    peft_tensor *a = op_attention_opt(g, q, k, v, (int)H, (int)Hkv, scale, &plain);
    peft_tensor *e = op_attention_ex(g, q, k, v, (int)H, (int)Hkv, scale, 1, mask, NULL);
    ck_assert(memcmp(a->data, e->data, (size_t)a->numel * 4) == 0);
    peft_graph_free(g);
    peft_tensor *ts[3] = {q, k, v};
    fd_free_all(ts, 3);
}
END_TEST

static peft_tensor *b_rmsnorm_offset(peft_graph *g, peft_tensor **in, const void *ud)
{
    return op_rmsnorm_offset(g, in[0], in[1], 1e-6f, *(const float *)ud);
}

static peft_tensor *b_rope_freqs(peft_graph *g, peft_tensor **in, const void *ud)
{
    static const int32_t pos[6] = {0, 3, 7, 1, 2, 40};
    return op_rope_freqs(g, in[0], 2, pos, ud);
}

static peft_tensor *b_softcap(peft_graph *g, peft_tensor **in, const void *ud)
{
    return op_softcap(g, in[0], *(const float *)ud);
}

START_TEST(grad_norm_rope_softcap)
{
    const float one = 1.0f;
    peft_tensor *n[2] = {fd_rand_tensor(2, (int64_t[]){3, 5}, 1.0f, 1),
                         fd_rand_tensor(1, (int64_t[]){5}, 0.5f, 1)};
    fd_check_grads(&FD, "rmsnorm_offset", b_rmsnorm_offset, n, 2, &one, EPS, RTOL, ATOL);
    fd_free_all(n, 2);
    static const float inv[2] = {1.0f, 0.0125f};
    peft_tensor *r[1] = {fd_rand_tensor(3, (int64_t[]){2, 3, 8}, 1.0f, 1)};
    fd_check_grads(&FD, "rope_freqs", b_rope_freqs, r, 1, inv, EPS, RTOL, ATOL);
    fd_free_all(r, 1);
    const float cap = 1.5f;
    peft_tensor *c[1] = {fd_rand_tensor(2, (int64_t[]){4, 6}, 2.0f, 1)};
    fd_check_grads(&FD, "softcap", b_softcap, c, 1, &cap, EPS, RTOL, ATOL);
    fd_free_all(c, 1);
}
END_TEST

START_TEST(fwd_norm_rope_softcap)
{
    peft_graph *g = peft_graph_new(&fd_rng);
    peft_tensor *x = fd_rand_tensor(2, (int64_t[]){2, 4}, 1.0f, 0);
    peft_tensor *w = fd_rand_tensor(1, (int64_t[]){4}, 0.3f, 0);
    peft_tensor *y = op_rmsnorm_offset(g, x, w, 1e-6f, 1.0f);
    for (int n = 0; n < 2; n++) {
        double ms = 0;
        for (int j = 0; j < 4; j++) ms += (double)peft_f32(x)[n * 4 + j] * peft_f32(x)[n * 4 + j];
        const double r = 1.0 / sqrt(ms / 4 + 1e-6);
        for (int j = 0; j < 4; j++)
            ck_assert(fabs(peft_f32(y)[n * 4 + j] - peft_f32(x)[n * 4 + j] * r * (1.0 + peft_f32(w)[j])) < 1e-6);
    }
    /* op_rope == op_rope_freqs with transformers' default frequencies */
    peft_tensor *q = fd_rand_tensor(3, (int64_t[]){1, 3, 8}, 1.0f, 0);
    float inv[4];
    volatile float theta = 10000.0f; /* powf at run time, as the op (no constant folding) */
    for (int i = 0; i < 4; i++) inv[i] = 1.0f / powf(theta, (float)(2 * i) / 8.0f);
    peft_tensor *a = op_rope(g, q, 1, NULL, 10000.0f), *b = op_rope_freqs(g, q, 1, NULL, inv);
    ck_assert(memcmp(a->data, b->data, (size_t)a->numel * 4) == 0);
    peft_tensor *s = op_softcap(g, x, 0.5f);
    for (int i = 0; i < 8; i++)
        ck_assert(fabs(peft_f32(s)[i] - 0.5 * tanh(peft_f32(x)[i] / 0.5)) < 1e-6);
    ck_assert(op_softcap(g, x, 0.0f) == NULL);
    peft_graph_free(g);
    peft_tensor *ts[4] = {x, w, q, NULL};
    fd_free_all(ts, 3);
}
END_TEST

/* RoPE scaling frequencies (llama3 is checked end to end by the llama3rope fixture cases) */
START_TEST(rope_scaling_linear_dynamic)
{
    char err[512];
    peft_base_model m = {0};
    m.dir = (char *)"(test)";
    m.config = json_loads("{\"rope_theta\": 10000.0, \"max_position_embeddings\": 16, "
                          "\"rope_scaling\": {\"rope_type\": \"linear\", \"factor\": 4.0}}", 0, NULL);
    rope_cfg r;
    volatile float theta = 10000.0f; /* powf at run time, as rope_scaling.c */
    ck_assert_msg(rope_cfg_read(&m, 8, 1, "llama", &r, err, sizeof err) == 0, "%s", err);
    for (int i = 0; i < 4; i++)
        ck_assert(r.inv[i] == (1.0f / powf(theta, (float)(2 * i) / 8.0f)) / 4.0f);
    json_decref(m.config);
    /* dynamic: the default frequencies up to max_position_embeddings, then the NTK base
     * theta * (factor * seq / max - (factor - 1)) ^ (dim / (dim - 2)) */
    m.config = json_loads("{\"rope_theta\": 10000.0, \"max_position_embeddings\": 16, "
                          "\"rope_scaling\": {\"type\": \"dynamic\", \"factor\": 2.0}}", 0, NULL);
    ck_assert_msg(rope_cfg_read(&m, 8, 1, "llama", &r, err, sizeof err) == 0, "%s", err);
    float scratch[4];
    const float *f = rope_inv_freq(&r, 15, scratch);
    for (int i = 0; i < 4; i++) ck_assert(f[i] == 1.0f / powf(theta, (float)(2 * i) / 8.0f));
    f = rope_inv_freq(&r, 31, scratch); /* seq_len 32 = 2 x max */
    const double base = 10000.0 * pow(2.0 * 32 / 16 - 1.0, 8.0 / 6.0);
    for (int i = 0; i < 4; i++)
        ck_assert(fabs(f[i] - 1.0 / pow(base, 2.0 * i / 8.0)) < 1e-6 * (1.0 / pow(base, 2.0 * i / 8.0)) + 1e-9);
    ck_assert(f[1] < 1.0f / powf(theta, 2.0f / 8.0f));
    json_decref(m.config);
    /* scaling refused where the architecture takes none */
    m.config = json_loads("{\"rope_scaling\": {\"rope_type\": \"linear\", \"factor\": 4.0}}", 0, NULL);
    ck_assert(rope_cfg_read(&m, 8, 0, "qwen2", &r, err, sizeof err) == -1);
    ck_assert(strstr(err, "rope_scaling") && strstr(err, "qwen2"));
    json_decref(m.config);
}
END_TEST

int main(void)
{
    peft_rng_seed(&fd_rng, 2026);
    Suite *s = suite_create("ops_archs");
    TCase *tc = tcase_create("ops_archs");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, grad_attention_window_softcap);
    tcase_add_test(tc, fwd_attention_window_softcap);
    tcase_add_test(tc, attention_recompute_is_bit_identical);
    tcase_add_test(tc, grad_attention_packed);
    tcase_add_test(tc, attention_packed_matches_slices);
    tcase_add_test(tc, grad_norm_rope_softcap);
    tcase_add_test(tc, fwd_norm_rope_softcap);
    tcase_add_test(tc, rope_scaling_linear_dynamic);
    suite_add_tcase(s, tc);
    return tu_run_suite(s) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
