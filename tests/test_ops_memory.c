/* test_ops_memory.c — the ops that keep less of a training step: the residual add into its
 * accumulator (op_add_into), and GELU, LayerNorm and attention with their outputs in a transient
 * buffer (op_gelu_tanh_to, op_layernorm_to, peft_attn_opts.transient_out,
 * peft_graph_tensor_transient). Finite-difference gradients of every input, and the same bytes
 * (outputs and gradients) as the plain ops they stand in for. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fd.h"
#include "peft/graph.h"
#include "core/ops/ops.h"
#include "testutil.h"

static const fd_opts FD = {.graph_seed = 7, .training = 1};

#define EPS 1e-2
#define RTOL 1e-2
#define ATOL 1e-3

/* op_add_into writes into its accumulator: the builder makes a fresh one (a dropout output,
 * the case GPT-2's residual meets in training) so that the inputs stay as they were */
static peft_tensor *b_add_into(peft_graph *g, peft_tensor **in, const void *ud)
{
    (void)ud;
    peft_tensor *acc = op_dropout(g, in[0], 0.25f);
    return acc ? op_add_into(g, acc, in[1]) : NULL;
}

/* ... and as a linear's output (an in-place consumer of a frozen linear, as GPT-2's c_proj) */
static peft_tensor *b_add_into_linear(peft_graph *g, peft_tensor **in, const void *ud)
{
    (void)ud;
    peft_tensor *acc = op_linear(g, in[0], in[2], NULL, 1);
    return acc ? op_add_into(g, acc, in[1]) : NULL;
}

START_TEST(grad_add_into)
{
    /* both inputs trainable, then either one alone */
    for (int mask = 3; mask >= 1; mask--) {
        peft_tensor *in[2] = {fd_rand_tensor(2, (int64_t[]){3, 4}, 1.0f, mask & 1),
                              fd_rand_tensor(2, (int64_t[]){3, 4}, 1.0f, (mask >> 1) & 1)};
        fd_check_grads(&FD, "add_into", b_add_into, in, 2, NULL, EPS, RTOL, ATOL);
        fd_free_all(in, 2);
    }
    peft_tensor *in[3] = {fd_rand_tensor(2, (int64_t[]){3, 5}, 1.0f, 1),
                          fd_rand_tensor(2, (int64_t[]){3, 4}, 1.0f, 1),
                          fd_rand_tensor(2, (int64_t[]){5, 4}, 0.5f, 0)};
    fd_check_grads(&FD, "add_into (linear)", b_add_into_linear, in, 3, NULL, EPS, RTOL, ATOL);
    fd_free_all(in, 3);
}
END_TEST

/* GELU into the transient slot, then a frozen linear, twice over the same slot (two layers):
 * the second GELU overwrites the first's output after its consumer ran */
static peft_tensor *b_gelu_layers(peft_graph *g, peft_tensor **in, const void *ud)
{
    const int slot = *(const int *)ud;
    peft_tensor *y = op_gelu_tanh_to(g, in[0], slot);
    peft_tensor *z = y ? op_linear(g, y, in[1], NULL, 0) : NULL;
    y = z ? op_gelu_tanh_to(g, z, slot) : NULL;
    return y ? op_linear(g, y, in[2], NULL, 0) : NULL;
}

START_TEST(grad_gelu_transient)
{
    for (int slot = -1; slot <= 0; slot++) {
        peft_tensor *in[3] = {fd_rand_tensor(2, (int64_t[]){3, 4}, 1.0f, 1),
                              fd_rand_tensor(2, (int64_t[]){4, 4}, 0.6f, 0),
                              fd_rand_tensor(2, (int64_t[]){2, 4}, 0.6f, 0)};
        fd_check_grads(&FD, slot < 0 ? "gelu layers" : "gelu layers (transient)", b_gelu_layers,
                       in, 3, &slot, EPS, RTOL, ATOL);
        fd_free_all(in, 3);
    }
}
END_TEST

/* LayerNorm into the transient slot, then a frozen linear, twice (two layers over one slot) */
static peft_tensor *b_ln_layers(peft_graph *g, peft_tensor **in, const void *ud)
{
    const int slot = *(const int *)ud;
    peft_tensor *y = op_layernorm_to(g, in[0], in[1], in[2], 1e-5f, slot);
    peft_tensor *z = y ? op_linear(g, y, in[3], NULL, 0) : NULL;
    y = z ? op_layernorm_to(g, z, in[1], in[2], 1e-5f, slot) : NULL;
    return y ? op_linear(g, y, in[3], NULL, 0) : NULL;
}

START_TEST(grad_layernorm_transient)
{
    for (int slot = -1; slot <= 2; slot += 3) {
        peft_tensor *in[4] = {fd_rand_tensor(2, (int64_t[]){3, 4}, 1.0f, 1),
                              fd_rand_tensor(1, (int64_t[]){4}, 1.0f, 1),
                              fd_rand_tensor(1, (int64_t[]){4}, 0.5f, 1),
                              fd_rand_tensor(2, (int64_t[]){4, 4}, 0.6f, 0)};
        fd_check_grads(&FD, slot < 0 ? "layernorm layers" : "layernorm layers (transient)",
                       b_ln_layers, in, 4, &slot, EPS, RTOL, ATOL);
        fd_free_all(in, 4);
    }
}
END_TEST

/* attention (q, k, v packed) with its output in the transient slot, into a frozen projection,
 * twice over the slot */
static peft_tensor *b_attn_layers(peft_graph *g, peft_tensor **in, const void *ud)
{
    const peft_attn_opts o = {.causal = 1, .transient_out = *(const int *)ud};
    peft_tensor *a = op_attention_packed(g, in[0], 2, 2, 0.5f, &o);  /* (2, 3, 4) */
    peft_tensor *z = a ? op_linear(g, a, in[1], NULL, 0) : NULL;      /* (2, 3, 12) */
    a = z ? op_attention_packed(g, z, 2, 2, 0.5f, &o) : NULL;
    return a ? op_linear(g, a, in[2], NULL, 0) : NULL;                /* (2, 3, 5) */
}

START_TEST(grad_attention_transient)
{
    for (int tr = 0; tr < 2; tr++) {
        peft_tensor *in[3] = {fd_rand_tensor(3, (int64_t[]){2, 3, 12}, 0.8f, 1),
                              fd_rand_tensor(2, (int64_t[]){12, 4}, 0.6f, 0),
                              fd_rand_tensor(2, (int64_t[]){5, 4}, 0.6f, 0)};
        fd_check_grads(&FD, tr ? "attention layers (transient)" : "attention layers",
                       b_attn_layers, in, 3, &tr, EPS, RTOL, ATOL);
        fd_free_all(in, 3);
    }
}
END_TEST

/* out and the gradients of every input with requires_grad, after backward of mse(out, 0.1) */
static void run_step(fd_build_fn f, const void *ud, peft_tensor **in, int n, float *out,
                     int64_t n_out, float **grads)
{
    peft_graph *g = peft_graph_new(&fd_rng);
    peft_graph_set_recording(g, 1);
    peft_graph_set_training(g, 1);
    peft_tensor *y = f(g, in, ud);
    ck_assert(y);
    ck_assert_int_eq(y->numel, n_out);
    memcpy(out, y->data, (size_t)n_out * 4); /* before backward: a transient slot is reused */
    float *target = malloc((size_t)n_out * 4);
    for (int64_t i = 0; i < n_out; i++) target[i] = 0.1f;
    peft_tensor *l = op_mse(g, y, target);
    ck_assert(l);
    ck_assert_int_eq(peft_graph_backward(g, l), 0);
    free(target);
    for (int i = 0; i < n; i++)
        if (in[i]->requires_grad) {
            memcpy(grads[i], in[i]->grad, (size_t)in[i]->numel * 4);
            peft_tensor_zero_grad(in[i]);
        }
    peft_graph_free(g);
}

static peft_tensor *b_add_plain(peft_graph *g, peft_tensor **in, const void *ud)
{
    (void)ud;
    peft_tensor *acc = op_linear(g, in[0], in[2], NULL, 1);
    return acc ? op_add(g, in[1], acc) : NULL;
}

START_TEST(inplace_ops_same_bytes)
{
    /* op_add_into(linear(x), h) against op_add(h, linear(x)) */
    peft_tensor *in[3] = {fd_rand_tensor(2, (int64_t[]){6, 5}, 1.0f, 1),
                          fd_rand_tensor(2, (int64_t[]){6, 7}, 1.0f, 1),
                          fd_rand_tensor(2, (int64_t[]){5, 7}, 0.5f, 1)};
    float o[2][42], *gr[2][3];
    for (int r = 0; r < 2; r++) {
        for (int i = 0; i < 3; i++) gr[r][i] = malloc((size_t)in[i]->numel * 4);
        run_step(r ? b_add_plain : b_add_into_linear, NULL, in, 3, o[r], 42, gr[r]);
    }
    ck_assert(memcmp(o[0], o[1], sizeof o[0]) == 0);
    for (int i = 0; i < 3; i++)
        ck_assert_msg(memcmp(gr[0][i], gr[1][i], (size_t)in[i]->numel * 4) == 0,
                      "add_into: input %d's gradient differs from op_add's", i);
    for (int r = 0; r < 2; r++)
        for (int i = 0; i < 3; i++) free(gr[r][i]);
    fd_free_all(in, 3);

    /* GELU layers through the transient slot against the arena */
    peft_tensor *gi[3] = {fd_rand_tensor(2, (int64_t[]){9, 8}, 1.0f, 1),
                          fd_rand_tensor(2, (int64_t[]){8, 8}, 0.6f, 0),
                          fd_rand_tensor(2, (int64_t[]){3, 8}, 0.6f, 0)};
    float go[2][27], *gg[2][3] = {{0}};
    for (int r = 0; r < 2; r++) {
        const int slot = r ? -1 : 0;
        gg[r][0] = malloc((size_t)gi[0]->numel * 4);
        run_step(b_gelu_layers, &slot, gi, 3, go[r], 27, gg[r]);
    }
    ck_assert(memcmp(go[0], go[1], sizeof go[0]) == 0);
    ck_assert(memcmp(gg[0][0], gg[1][0], (size_t)gi[0]->numel * 4) == 0);
    for (int r = 0; r < 2; r++) free(gg[r][0]);
    fd_free_all(gi, 3);

    /* LayerNorm layers and attention layers through their slots against the arena */
    peft_tensor *li[4] = {fd_rand_tensor(2, (int64_t[]){5, 6}, 1.0f, 1),
                          fd_rand_tensor(1, (int64_t[]){6}, 1.0f, 1),
                          fd_rand_tensor(1, (int64_t[]){6}, 0.5f, 1),
                          fd_rand_tensor(2, (int64_t[]){6, 6}, 0.6f, 0)};
    float lo[2][30], *lg[2][4] = {{0}};
    for (int r = 0; r < 2; r++) {
        const int slot = r ? -1 : 2;
        for (int i = 0; i < 3; i++) lg[r][i] = malloc((size_t)li[i]->numel * 4);
        run_step(b_ln_layers, &slot, li, 4, lo[r], 30, lg[r]);
    }
    ck_assert(memcmp(lo[0], lo[1], sizeof lo[0]) == 0);
    for (int i = 0; i < 3; i++) ck_assert(memcmp(lg[0][i], lg[1][i], (size_t)li[i]->numel * 4) == 0);
    for (int r = 0; r < 2; r++)
        for (int i = 0; i < 3; i++) free(lg[r][i]);
    fd_free_all(li, 4);

    peft_tensor *ai[3] = {fd_rand_tensor(3, (int64_t[]){2, 3, 12}, 0.8f, 1),
                          fd_rand_tensor(2, (int64_t[]){12, 4}, 0.6f, 0),
                          fd_rand_tensor(2, (int64_t[]){5, 4}, 0.6f, 0)};
    float ao[2][30], *ag[2][3] = {{0}};
    for (int r = 0; r < 2; r++) {
        const int tr = !r;
        ag[r][0] = malloc((size_t)ai[0]->numel * 4);
        run_step(b_attn_layers, &tr, ai, 3, ao[r], 30, ag[r]);
    }
    ck_assert(memcmp(ao[0], ao[1], sizeof ao[0]) == 0);
    ck_assert(memcmp(ag[0][0], ag[1][0], (size_t)ai[0]->numel * 4) == 0);
    for (int r = 0; r < 2; r++) free(ag[r][0]);
    fd_free_all(ai, 3);
}
END_TEST

/* a transient tensor's data is the slot's buffer, reused by the next tensor of the slot and
 * grown when a bigger one asks; a bad slot is an error on the graph, never a crash */
START_TEST(transient_slots)
{
    peft_graph *g = peft_graph_new(&fd_rng);
    peft_tensor *a = peft_graph_tensor_transient(g, 0, 2, (int64_t[]){4, 8});
    peft_tensor *b = peft_graph_tensor_transient(g, 0, 1, (int64_t[]){16});
    ck_assert(a && b && a != b);
    ck_assert_ptr_eq(a->data, b->data);
    peft_tensor *c = peft_graph_tensor_transient(g, 1, 1, (int64_t[]){16});
    ck_assert(c && c->data != a->data);
    peft_tensor *d = peft_graph_tensor_transient(g, 0, 1, (int64_t[]){1 << 20});
    ck_assert(d);
    memset(d->data, 0x5a, (size_t)4 << 20); /* all of it is writable */
    peft_graph_reset(g);
    ck_assert_ptr_eq(peft_graph_tensor_transient(g, 0, 1, (int64_t[]){8})->data, d->data);
    ck_assert_ptr_null(peft_graph_tensor_transient(g, 9, 1, (int64_t[]){8}));
    ck_assert_int_eq(peft_graph_errcode(g), PEFT_EINVAL);
    peft_graph_free(g);
}
END_TEST

int main(void)
{
    peft_rng_seed(&fd_rng, 4242);
    Suite *s = suite_create("ops_memory");
    TCase *tc = tcase_create("ops_memory");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, grad_add_into);
    tcase_add_test(tc, grad_gelu_transient);
    tcase_add_test(tc, grad_layernorm_transient);
    tcase_add_test(tc, grad_attention_transient);
    tcase_add_test(tc, inplace_ops_same_bytes);
    tcase_add_test(tc, transient_slots);
    suite_add_tcase(s, tc);
    return tu_run_suite(s);
}
