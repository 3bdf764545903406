/* test_graph.c — Check suite for core/graph.c: arena (alignment, reset, large allocations,
 * peak), RNG (known values, determinism), dtype conversion, persistent tensors, tape. */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "peft/graph.h"
#include "core/tensor/graph_internal.h" /* white-box: the tape and the rng pointer */
#include "testutil.h"

/* ---- arena ---------------------------------------------------------------------------------- */

START_TEST(arena_alignment)
{
    peft_arena *a = peft_arena_new(4096);
    ck_assert_ptr_nonnull(a);
    size_t sizes[] = {1, 3, 64, 65, 100, 7, 4000, 0, 129};
    for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
        unsigned char *p = peft_arena_alloc(a, sizes[i]);
        ck_assert_ptr_nonnull(p);
        ck_assert_uint_eq((uintptr_t)p % 64, 0);
        memset(p, 0xab, sizes[i]);
    }
    peft_arena_free(a);
}
END_TEST

START_TEST(arena_large_and_reset)
{
    peft_arena *a = peft_arena_new(4096);
    /* distinct, non-overlapping allocations spanning several chunks */
    enum { K = 50 };
    unsigned char *ptrs[K];
    for (int i = 0; i < K; i++) {
        ptrs[i] = peft_arena_alloc(a, 1000);
        ck_assert_ptr_nonnull(ptrs[i]);
        memset(ptrs[i], i, 1000);
    }
    /* an allocation much bigger than the chunk size */
    size_t big = (size_t)3 << 20;
    unsigned char *b = peft_arena_alloc(a, big);
    ck_assert_ptr_nonnull(b);
    ck_assert_uint_eq((uintptr_t)b % 64, 0);
    memset(b, 0x5a, big);
    for (int i = 0; i < K; i++)
        for (int j = 0; j < 1000; j++) ck_assert_uint_eq(ptrs[i][j], (unsigned)i);
    ck_assert_uint_eq(b[0], 0x5a);
    ck_assert_uint_eq(b[big - 1], 0x5a);
    size_t peak = peft_arena_peak(a);
    ck_assert_uint_ge(peak, big + K * 1000);

    /* after a reset the same step fits in the kept memory: a second identical step returns
     * the same addresses as the first step after the reset */
    peft_arena_reset(a);
    unsigned char *first1 = peft_arena_alloc(a, 1000);
    for (int i = 1; i < K; i++) ck_assert_ptr_nonnull(peft_arena_alloc(a, 1000));
    unsigned char *big1 = peft_arena_alloc(a, big);
    ck_assert_ptr_nonnull(big1);
    memset(big1, 1, big);
    peft_arena_reset(a);
    unsigned char *first2 = peft_arena_alloc(a, 1000);
    for (int i = 1; i < K; i++) ck_assert_ptr_nonnull(peft_arena_alloc(a, 1000));
    unsigned char *big2 = peft_arena_alloc(a, big);
    ck_assert_ptr_eq(first1, first2);
    ck_assert_ptr_eq(big1, big2);
    ck_assert_uint_eq(peft_arena_peak(a), peak); /* same step, same high-water mark */
    peft_arena_free(a);
}
END_TEST

START_TEST(arena_many_steps)
{
    peft_arena *a = peft_arena_new(4096);
    for (int step = 0; step < 20; step++) {
        for (int i = 0; i < 100; i++) {
            float *p = peft_arena_alloc(a, (size_t)(i + step) * 37 + 1);
            ck_assert_ptr_nonnull(p);
            ck_assert_uint_eq((uintptr_t)p % 64, 0);
            p[0] = (float)i;
        }
        peft_arena_reset(a);
    }
    peft_arena_free(a);
    peft_arena_free(NULL);
}
END_TEST

/* ---- rng ------------------------------------------------------------------------------------ */

START_TEST(rng_known_values)
{
    /* xoshiro256** seeded with splitmix64(42), from an independent Python implementation */
    peft_rng r;
    peft_rng_seed(&r, 42);
    ck_assert_uint_eq(peft_rng_next(&r), 0x15780b2e0c2ec716ULL);
    ck_assert_uint_eq(peft_rng_next(&r), 0x6104d9866d113a7eULL);
    ck_assert_uint_eq(peft_rng_next(&r), 0xae17533239e499a1ULL);
}
END_TEST

START_TEST(rng_determinism)
{
    peft_rng a, b, c;
    peft_rng_seed(&a, 1234);
    peft_rng_seed(&b, 1234);
    peft_rng_seed(&c, 1235);
    int differ = 0;
    for (int i = 0; i < 1000; i++) {
        double ua = peft_rng_uniform(&a), ub = peft_rng_uniform(&b), uc = peft_rng_uniform(&c);
        ck_assert(ua == ub);
        differ += ua != uc;
        double na = peft_rng_normal(&a), nb = peft_rng_normal(&b);
        ck_assert(na == nb);
        (void)peft_rng_normal(&c);
    }
    ck_assert_int_gt(differ, 990);
    /* reseeding restarts the stream, including the cached normal */
    peft_rng_seed(&a, 7);
    (void)peft_rng_normal(&a);
    peft_rng_seed(&a, 7);
    peft_rng_seed(&b, 7);
    ck_assert(peft_rng_normal(&a) == peft_rng_normal(&b));
    ck_assert(peft_rng_normal(&a) == peft_rng_normal(&b));
}
END_TEST

START_TEST(rng_distribution)
{
    peft_rng r;
    peft_rng_seed(&r, 99);
    const int n = 200000;
    double su = 0, sn = 0, sn2 = 0;
    for (int i = 0; i < n; i++) {
        double u = peft_rng_uniform(&r);
        ck_assert(u >= 0.0 && u < 1.0);
        su += u;
        double z = peft_rng_normal(&r);
        ck_assert(isfinite(z));
        sn += z;
        sn2 += z * z;
    }
    ck_assert_double_lt(fabs(su / n - 0.5), 0.005);
    ck_assert_double_lt(fabs(sn / n), 0.01);
    ck_assert_double_lt(fabs(sn2 / n - 1.0), 0.02);
}
END_TEST

/* ---- dtype conversion ----------------------------------------------------------------------- */

START_TEST(convert_bf16)
{
    const uint16_t src[] = {0x3F80, 0xC000, 0x3FC0, 0x0000, 0x8000, 0x7F80, 0xFF80, 0x4049,
                            0x0001};
    float dst[9];
    peft_convert_to_f32(PEFT_DTYPE_BF16, src, dst, 9);
    ck_assert(dst[0] == 1.0f);
    ck_assert(dst[1] == -2.0f);
    ck_assert(dst[2] == 1.5f);
    ck_assert(dst[3] == 0.0f && !signbit(dst[3]));
    ck_assert(dst[4] == 0.0f && signbit(dst[4]));
    ck_assert(isinf(dst[5]) && dst[5] > 0);
    ck_assert(isinf(dst[6]) && dst[6] < 0);
    ck_assert(dst[7] == 3.140625f);
    ck_assert(dst[8] == ldexpf(1.0f, -133)); /* bf16 subnormal */
    /* a NaN stays a NaN */
    uint16_t nan = 0x7FC0;
    peft_convert_to_f32(PEFT_DTYPE_BF16, &nan, dst, 1);
    ck_assert(isnan(dst[0]));
}
END_TEST

START_TEST(convert_f16)
{
    const uint16_t src[] = {0x3C00, 0xC000, 0x7BFF, 0x0001, 0x0400, 0x7C00, 0xFC00, 0x3555,
                            0x03FF, 0x8000, 0x3800, 0x8001};
    float dst[12];
    peft_convert_to_f32(PEFT_DTYPE_F16, src, dst, 12);
    ck_assert(dst[0] == 1.0f);
    ck_assert(dst[1] == -2.0f);
    ck_assert(dst[2] == 65504.0f);
    ck_assert(dst[3] == ldexpf(1.0f, -24));
    ck_assert(dst[4] == ldexpf(1.0f, -14));
    ck_assert(isinf(dst[5]) && dst[5] > 0);
    ck_assert(isinf(dst[6]) && dst[6] < 0);
    ck_assert(dst[7] == 0.333251953125f);
    ck_assert(dst[8] == 1023.0f * ldexpf(1.0f, -24));
    ck_assert(dst[9] == 0.0f && signbit(dst[9]));
    ck_assert(dst[10] == 0.5f);
    ck_assert(dst[11] == -ldexpf(1.0f, -24));
    uint16_t nan = 0x7E00;
    peft_convert_to_f32(PEFT_DTYPE_F16, &nan, dst, 1);
    ck_assert(isnan(dst[0]));
}
END_TEST

START_TEST(convert_tensor_to_f32)
{
    uint16_t bf[4] = {0x3F80, 0x4000, 0x4040, 0x4080}; /* 1 2 3 4 */
    peft_tensor *t = peft_tensor_wrap(PEFT_DTYPE_BF16, 2, (int64_t[]){2, 2}, bf);
    ck_assert_ptr_nonnull(t);
    float out[4];
    peft_tensor_to_f32(t, out);
    for (int i = 0; i < 4; i++) ck_assert(out[i] == (float)(i + 1));
    peft_tensor_free(t);
    ck_assert_uint_eq(bf[0], 0x3F80); /* borrowed data untouched */
}
END_TEST

/* ---- persistent tensors --------------------------------------------------------------------- */

START_TEST(tensor_new_wrap_free)
{
    peft_tensor *t = peft_tensor_new(PEFT_DTYPE_F32, 3, (int64_t[]){2, 3, 4});
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->ndim, 3);
    ck_assert_int_eq(t->numel, 24);
    ck_assert_int_eq(t->shape[3], 1);
    ck_assert_ptr_null(t->grad);
    ck_assert(t->flags & PEFT_T_OWNS_DATA);
    for (int i = 0; i < 24; i++) ck_assert(peft_f32(t)[i] == 0.0f);
    float *gr = peft_tensor_ensure_grad(t);
    ck_assert_ptr_nonnull(gr);
    ck_assert_ptr_eq(peft_tensor_ensure_grad(t), gr);
    ck_assert(t->flags & PEFT_T_OWNS_GRAD);
    gr[5] = 3.0f;
    peft_tensor_zero_grad(t);
    ck_assert(gr[5] == 0.0f);
    peft_tensor_free(t);

    peft_tensor *s = peft_tensor_new(PEFT_DTYPE_I32, 0, NULL);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(s->numel, 1);
    peft_tensor_free(s);
    ck_assert_ptr_null(peft_tensor_new(PEFT_DTYPE_F32, 5, (int64_t[]){1, 1, 1, 1, 1}));
    ck_assert_ptr_null(peft_tensor_new(77, 1, (int64_t[]){3}));
    ck_assert_uint_eq(peft_dtype_size(PEFT_DTYPE_BF16), 2);
    ck_assert_uint_eq(peft_dtype_size(PEFT_DTYPE_F16), 2);
    ck_assert_uint_eq(peft_dtype_size(PEFT_DTYPE_F32), 4);
    ck_assert_uint_eq(peft_dtype_size(PEFT_DTYPE_I32), 4);
    ck_assert_int_eq(peft_shape_numel(2, (int64_t[]){5, 7}), 35);
    peft_tensor_free(NULL);
}
END_TEST

START_TEST(make_f32_owned_borrowed)
{
    uint16_t *bf = malloc(3 * sizeof *bf);
    bf[0] = 0x3F80; bf[1] = 0xBF00; bf[2] = 0x4120; /* 1, -0.5, 10 */
    peft_tensor *t = peft_tensor_wrap(PEFT_DTYPE_BF16, 1, (int64_t[]){3}, bf);
    void *old = NULL;
    int32_t old_dtype = -1;
    int old_owned = -1;
    ck_assert_int_eq(peft_tensor_make_f32_owned(t, &old, &old_dtype, &old_owned), 0);
    ck_assert_ptr_eq(old, bf);
    ck_assert_int_eq(old_dtype, PEFT_DTYPE_BF16);
    ck_assert_int_eq(old_owned, 0);
    ck_assert_int_eq(t->dtype, PEFT_DTYPE_F32);
    ck_assert(t->flags & PEFT_T_OWNS_DATA);
    ck_assert(peft_f32(t)[0] == 1.0f && peft_f32(t)[1] == -0.5f && peft_f32(t)[2] == 10.0f);
    peft_f32(t)[0] = 5.0f; /* writable */
    /* the caller restores the original bit-exactly */
    free(t->data);
    t->data = old;
    t->dtype = old_dtype;
    t->flags &= ~PEFT_T_OWNS_DATA;
    ck_assert_uint_eq(((uint16_t *)t->data)[0], 0x3F80);
    peft_tensor_free(t);
    free(bf);
}
END_TEST

START_TEST(make_f32_owned_owned)
{
    peft_tensor *t = peft_tensor_new(PEFT_DTYPE_F32, 1, (int64_t[]){4});
    for (int i = 0; i < 4; i++) peft_f32(t)[i] = (float)i + 0.25f;
    void *orig = t->data, *old = NULL;
    int32_t od;
    int oo;
    ck_assert_int_eq(peft_tensor_make_f32_owned(t, &old, &od, &oo), 0);
    ck_assert_ptr_eq(old, orig);
    ck_assert_ptr_ne(t->data, orig);
    ck_assert_int_eq(od, PEFT_DTYPE_F32);
    ck_assert_int_eq(oo, 1);
    for (int i = 0; i < 4; i++) ck_assert(peft_f32(t)[i] == (float)i + 0.25f);
    free(old);
    peft_tensor_free(t);
}
END_TEST

/* ---- graph and tape ------------------------------------------------------------------------- */

static int order_log[2000];
static int order_n;
typedef struct { int id; int pad[7]; } order_ctx;
static void order_fn(peft_graph *g, void *p)
{
    (void)g;
    order_log[order_n++] = ((order_ctx *)p)->id;
}

START_TEST(graph_tensors)
{
    peft_rng r;
    peft_rng_seed(&r, 1);
    peft_graph *g = peft_graph_new(&r);
    ck_assert_ptr_nonnull(g);
    ck_assert_int_eq(peft_graph_recording(g), 0);
    ck_assert_int_eq(peft_graph_training(g), 0);
    ck_assert_ptr_eq(g->rng, &r);
    peft_tensor *t = peft_graph_tensor(g, 2, (int64_t[]){3, 5});
    ck_assert_ptr_nonnull(t);
    ck_assert(t->flags & PEFT_T_ARENA);
    ck_assert_int_eq(t->numel, 15);
    ck_assert_int_eq(t->requires_grad, 0);
    ck_assert_uint_eq((uintptr_t)t->data % 64, 0);
    for (int i = 0; i < 15; i++) ck_assert(peft_f32(t)[i] == 0.0f);
    peft_tensor *raw = peft_graph_tensor_raw(g, PEFT_DTYPE_I32, 1, (int64_t[]){7});
    ck_assert_ptr_nonnull(raw);
    ck_assert_int_eq(raw->dtype, PEFT_DTYPE_I32);
    peft_tensor_free(t); /* arena tensors: a no-op */
    peft_graph_reset(g);
    peft_graph_free(g);
}
END_TEST

START_TEST(tape_push_and_order)
{
    peft_rng r;
    peft_rng_seed(&r, 1);
    peft_graph *g = peft_graph_new(&r);
    ck_assert_ptr_null(peft_tape_push(g, order_fn, sizeof(order_ctx)));
    ck_assert_uint_eq(peft_graph_tape_len(g), 0);
    peft_graph_set_recording(g, 1);
    for (int i = 0; i < 1000; i++) {
        order_ctx *c = peft_tape_push(g, order_fn, sizeof *c);
        ck_assert_ptr_nonnull(c);
        for (int j = 0; j < 7; j++) ck_assert_int_eq(c->pad[j], 0);
        ck_assert_int_eq(c->id, 0);
        c->id = i;
    }
    ck_assert_uint_eq(peft_graph_tape_len(g), 1000);
    peft_tensor *loss = peft_graph_tensor(g, 0, NULL);
    loss->requires_grad = 1;
    order_n = 0;
    ck_assert_int_eq(peft_graph_backward(g, loss), 0);
    ck_assert_int_eq(order_n, 1000);
    for (int i = 0; i < 1000; i++) ck_assert_int_eq(order_log[i], 999 - i);
    ck_assert(loss->grad && loss->grad[0] == 1.0f);

    /* a non-scalar or non-differentiable loss is refused */
    peft_tensor *v = peft_graph_tensor(g, 1, (int64_t[]){2});
    v->requires_grad = 1;
    ck_assert_int_eq(peft_graph_backward(g, v), -1);
    peft_tensor *nd = peft_graph_tensor(g, 0, NULL);
    ck_assert_int_eq(peft_graph_backward(g, nd), -1);

    peft_graph_reset(g);
    ck_assert_uint_eq(peft_graph_tape_len(g), 0);
    peft_graph_free(g);
}
END_TEST

START_TEST(grad_of_kinds)
{
    peft_rng r;
    peft_rng_seed(&r, 1);
    peft_graph *g = peft_graph_new(&r);
    peft_graph_set_recording(g, 1);
    /* a parameter: persistent grad, survives reset */
    peft_tensor *p = peft_tensor_new(PEFT_DTYPE_F32, 1, (int64_t[]){8});
    p->flags |= PEFT_T_PARAM;
    p->requires_grad = 1;
    float *gp = peft_grad_of(g, p);
    ck_assert_ptr_nonnull(gp);
    ck_assert(p->flags & PEFT_T_OWNS_GRAD);
    gp[3] = 2.0f;
    ck_assert_ptr_eq(peft_grad_of(g, p), gp);
    /* an arena activation: arena grad, zeroed */
    peft_tensor *a = peft_graph_tensor(g, 1, (int64_t[]){100});
    a->requires_grad = 1;
    float *ga = peft_grad_of(g, a);
    ck_assert_ptr_nonnull(ga);
    ck_assert(!(a->flags & PEFT_T_OWNS_GRAD));
    for (int i = 0; i < 100; i++) ck_assert(ga[i] == 0.0f);
    /* no requires_grad: nothing */
    peft_tensor *f = peft_tensor_new(PEFT_DTYPE_F32, 1, (int64_t[]){8});
    ck_assert_ptr_null(peft_grad_of(g, f));
    ck_assert_ptr_null(f->grad);
    peft_graph_reset(g);
    ck_assert(p->grad == gp && gp[3] == 2.0f);
    peft_tensor_free(p);
    peft_tensor_free(f);
    peft_graph_free(g);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("graph");
    TCase *ta = tcase_create("arena");
    tcase_add_test(ta, arena_alignment);
    tcase_add_test(ta, arena_large_and_reset);
    tcase_add_test(ta, arena_many_steps);
    suite_add_tcase(s, ta);
    TCase *tr = tcase_create("rng");
    tcase_set_timeout(tr, 60); /* 400k draws, each a Check mark point: slow on a loaded machine */
    tcase_add_test(tr, rng_known_values);
    tcase_add_test(tr, rng_determinism);
    tcase_add_test(tr, rng_distribution);
    suite_add_tcase(s, tr);
    TCase *tc = tcase_create("dtype");
    tcase_add_test(tc, convert_bf16);
    tcase_add_test(tc, convert_f16);
    tcase_add_test(tc, convert_tensor_to_f32);
    suite_add_tcase(s, tc);
    TCase *tt = tcase_create("tensor");
    tcase_add_test(tt, tensor_new_wrap_free);
    tcase_add_test(tt, make_f32_owned_borrowed);
    tcase_add_test(tt, make_f32_owned_owned);
    suite_add_tcase(s, tt);
    TCase *tg = tcase_create("graph");
    tcase_add_test(tg, graph_tensors);
    tcase_add_test(tg, tape_push_and_order);
    tcase_add_test(tg, grad_of_kinds);
    suite_add_tcase(s, tg);

    int failed = tu_run_suite(s);
    return failed ? 1 : 0;
}
