/* test_kernels.c — Check suite for the kernels' building blocks (core/ops/): the vectorised exp
 * (vmath.h) against exp in double over the f32 range and at its edges, the row kernels built on
 * it, the kernel thread pool (every item once, whatever the thread count) and the results of
 * the pooled kernels bit for bit equal at 1, 2 and 3 threads, the OpenBLAS kernel-set check. */
#include <cblas.h>
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/ops/blas_check.h"
#include "core/ops/pool.h"
#include "core/ops/vmath.h"
#include "peft/graph.h"
#include "core/ops/ops.h"

/* |a - e| in units of the f32 spacing at e */
static double ulps(float a, double e)
{
    const float ef = (float)e;
    const double step = (double)nextafterf(fabsf(ef), INFINITY) - fabs((double)ef);
    return fabs((double)a - e) / step;
}

START_TEST(expf_accuracy)
{
    double worst = 0.0;
    for (float x = -87.0f; x < 88.7f; x += 0.00137f) {
        const double u = ulps(vm_expf(x), exp((double)x));
        if (u > worst) worst = u;
    }
    ck_assert_msg(worst < 2.0, "vm_expf: %.2f ulp", worst);
    /* the edges: overflow, underflow to subnormals and zero, infinities, NaN */
    ck_assert(isinf(vm_expf(89.0f)) && vm_expf(89.0f) > 0);
    ck_assert(isinf(vm_expf(INFINITY)));
    ck_assert_float_eq(vm_expf(-INFINITY), 0.0f);
    ck_assert_float_eq(vm_expf(-105.0f), 0.0f);
    ck_assert(vm_expf(-100.0f) > 0.0f && vm_expf(-100.0f) < 1e-38f);
    ck_assert(fabs(vm_expf(-100.0f) - exp(-100.0)) < 1e-45 * 2);
    ck_assert(isnan(vm_expf(NAN)));
    ck_assert_float_eq(vm_expf(0.0f), 1.0f);
    ck_assert(fabsf(vm_expf(88.72f) - 3.3931806e38f) < 1e32f);
}
END_TEST

START_TEST(row_kernels)
{
    enum { N = 1003 };
    float x[N], y[N], z[N];
    for (int i = 0; i < N; i++) x[i] = sinf((float)i) * 20.0f;
    x[N - 1] = 25.0f; /* the max in the tail, past the lanes */
    ck_assert_float_eq(vm_max(x, N), 25.0f);
    double ref = 0.0;
    for (int i = 0; i < N; i++) ref += exp((double)x[i] - 25.0);
    ck_assert(fabs(vm_sum_exp(x, 25.0f, N) - ref) < 1e-6 * ref);
    const float s = vm_exp_sub_sum(x, 25.0f, y, N);
    ck_assert(fabs(s - ref) < 1e-6 * ref);
    for (int i = 0; i < N; i++) ck_assert(ulps(y[i], exp((double)(x[i] - 25.0f))) < 2.0);
    for (int i = 0; i < N; i++) z[i] = 1.0f;
    vm_axpy_exp(x, 25.0f, 0.5f, z, N);
    for (int i = 0; i < N; i++) ck_assert(fabsf(z[i] - (1.0f + 0.5f * y[i])) < 1e-6f);
    vm_silu(x, z, N);
    for (int i = 0; i < N; i++)
        ck_assert(fabs(z[i] - x[i] / (1.0 + exp(-(double)x[i]))) < 1e-6 * (1 + fabsf(x[i])));
    /* a NaN entry makes the sum NaN (softmax rows turn NaN, as PyTorch's) */
    x[7] = NAN;
    ck_assert(isnan(vm_sum_exp(x, 25.0f, N)));
}
END_TEST

typedef struct { int64_t n; unsigned char *hits; } cover_ctx;

static void cover(void *p, int64_t lo, int64_t hi)
{
    cover_ctx *c = p;
    for (int64_t i = lo; i < hi; i++) c->hits[i]++;
}

START_TEST(pool_covers_once)
{
    const int64_t sizes[] = {0, 1, 5, 1000, 99991};
    for (int t = 1; t <= 3; t++) {
        openblas_set_num_threads(t);
        for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
            cover_ctx c = {sizes[k], calloc((size_t)sizes[k] + 1, 1)};
            for (int rep = 0; rep < 20; rep++) ops_parallel(sizes[k], 7, cover, &c);
            for (int64_t i = 0; i < sizes[k]; i++) ck_assert_uint_eq(c.hits[i], 20);
            free(c.hits);
        }
    }
}
END_TEST

/* GELU, SiLU and layer norm forward and backward at t threads: outputs and input gradients */
static void pooled_ops(int t, float *out, int64_t n, int64_t C)
{
    openblas_set_num_threads(t);
    peft_rng rng;
    peft_rng_seed(&rng, 7);
    peft_graph *g = peft_graph_new(&rng);
    peft_graph_set_recording(g, 1);
    const int64_t shape[2] = {n / C, C};
    peft_tensor *x = peft_graph_tensor(g, 2, shape);
    for (int64_t i = 0; i < n; i++) peft_f32(x)[i] = (float)sin(0.37 * (double)i) * 3.0f;
    x->requires_grad = 1;
    peft_tensor *a = op_gelu_tanh(g, x), *b = op_silu(g, a);
    peft_tensor *c = op_layernorm(g, b, NULL, NULL, 1e-5f);
    ck_assert_ptr_nonnull(c);
    memcpy(out, peft_f32(c), (size_t)n * sizeof(float));
    float *target = calloc((size_t)n, sizeof(float));
    for (int64_t i = 0; i < n; i++) target[i] = (float)cos(0.11 * (double)i);
    peft_tensor *loss = op_mse(g, c, target);
    ck_assert_ptr_nonnull(loss);
    ck_assert_int_eq(peft_graph_backward(g, loss), 0);
    memcpy(out + n, x->grad, (size_t)n * sizeof(float));
    free(target);
    peft_graph_free(g);
}

START_TEST(pooled_kernels_thread_invariant)
{
    const int64_t C = 768, n = 300 * C;
    float *r1 = malloc((size_t)(2 * n) * sizeof(float)), *r2 = malloc((size_t)(2 * n) * sizeof(float));
    pooled_ops(1, r1, n, C);
    pooled_ops(2, r2, n, C);
    pooled_ops(3, r1 + 0, n, C); /* 3 threads into r1: must equal the 2-thread run too */
    ck_assert_int_eq(memcmp(r1, r2, (size_t)(2 * n) * sizeof(float)), 0);
    free(r1);
    free(r2);
}
END_TEST

START_TEST(blas_kernel_check)
{
    ck_assert(ops_blas_core_is_old("Prescott"));
    ck_assert(ops_blas_core_is_old("core2"));
    ck_assert(!ops_blas_core_is_old("Haswell"));
    ck_assert(!ops_blas_core_is_old("SkylakeX"));
    ck_assert(!ops_blas_core_is_old("Zen"));
    ck_assert(!ops_blas_core_is_old(NULL));
    const char *want = ops_blas_coretype_for_cpu();
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) ck_assert_ptr_nonnull(want);
    ops_blas_check(); /* no crash; warns only on a misdetected CPU */
}
END_TEST

int main(void)
{
    Suite *s = suite_create("kernels");
    TCase *tc = tcase_create("vmath");
    tcase_add_test(tc, expf_accuracy);
    tcase_add_test(tc, row_kernels);
    suite_add_tcase(s, tc);
    TCase *tp = tcase_create("pool");
    tcase_set_timeout(tp, 120);
    tcase_add_test(tp, pool_covers_once);
    tcase_add_test(tp, pooled_kernels_thread_invariant);
    tcase_add_test(tp, blas_kernel_check);
    suite_add_tcase(s, tp);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
