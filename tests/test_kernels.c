/* test_kernels.c — Check suite for the kernels' building blocks (core/ops/): the vectorised exp
 * (vmath.h) against exp in double over the f32 range and at its edges, the row kernels built on
 * it, the vectorised erf (against erf in double) and the exact GELU on it, the kernel thread
 * pool (every item once, whatever the thread count) and the results of every pooled kernel
 * (elementwise, norms, RoPE, attention, losses, NF4 weight tiles) bit for bit equal at 1, 2 and 3 threads, the
 * OpenBLAS kernel-set check, and ops_sgemm on oneDNN (PEFT_GEMM=onednn) against OpenBLAS. */
#include <cblas.h>
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/ops/blas_check.h"
#include "core/ops/gemm.h"
#include "core/ops/pool.h"
#include "core/ops/vmath.h"
#include "peft/graph.h"
#include "core/ops/ops.h"
#include "peft/quant.h"

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

START_TEST(erf_accuracy)
{
    /* vm_erff against erf in double and against glibc's erff, over a sweep past the range
     * where erf rounds to +-1 */
    double worst = 0.0, worst_libm = 0.0;
    for (float x = -5.0f; x < 5.0f; x += 0.000173f) {
        const double e = erf((double)x);
        const double u = ulps(vm_erff(x), e), ul = ulps(erff(x), e);
        if (u > worst) worst = u;
        if (ul > worst_libm) worst_libm = ul;
    }
    for (float x = 1e-30f; x < 1e-3f; x *= 1.37f) { /* tiny arguments: erf(x) ~ 2x/sqrt(pi) */
        const double u = ulps(vm_erff(x), erf((double)x));
        if (u > worst) worst = u;
    }
    ck_assert_msg(worst < 2.0, "vm_erff: %.2f ulp (glibc's erff: %.2f)", worst, worst_libm);
    ck_assert_float_eq(vm_erff(0.0f), 0.0f);
    ck_assert_float_eq(vm_erff(INFINITY), 1.0f);
    ck_assert_float_eq(vm_erff(-INFINITY), -1.0f);
    ck_assert_float_eq(vm_erff(10.0f), 1.0f);
    ck_assert(isnan(vm_erff(NAN)));
    /* the exact GELU kernels against the libm formula */
    enum { N = 2001 };
    float x[N], y[N], d[N], one[N];
    for (int i = 0; i < N; i++) {
        x[i] = -8.0f + 0.008f * (float)i;
        one[i] = 1.0f;
        d[i] = 0.0f;
    }
    vm_gelu_erf(x, y, N);
    vm_gelu_erf_bwd(x, one, d, N);
    for (int i = 0; i < N; i++) {
        const double xd = x[i], cdf = 0.5 * (1.0 + erf(xd / sqrt(2.0)));
        ck_assert(fabs(y[i] - xd * cdf) < 1e-6 * (1.0 + fabs(xd)));
        ck_assert(fabs(d[i] - (cdf + xd * exp(-0.5 * xd * xd) / sqrt(2.0 * M_PI))) < 1e-6);
    }
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

/* every pooled kernel forward and backward at t threads (GELU tanh and erf, SiLU, mul, add,
 * a last-dim slice, layer norm with its weight and bias, RMS norm, RoPE, causal attention with a key mask and a
 * bias, cross-entropy, the chunked head + loss): outputs, input and parameter gradients */
enum { PO_B = 2, PO_T = 128, PO_H = 8, PO_D = 32, PO_C = PO_H * PO_D, PO_V = 301 };
#define PO_N ((int64_t)PO_B * PO_T * PO_C)
#define PO_BIAS ((int64_t)PO_H * PO_T * PO_T)
#define PO_P (4 * PO_N + PO_BIAS) /* the parameter gradients and the loss */
#define PO_L ((int64_t)PO_B * PO_T * PO_V) /* logits through an NF4 head */
#define PO_OUT (PO_P + 4 * PO_C + PO_L)

static void fill(peft_tensor *t, double f, double amp)
{
    for (int64_t i = 0; i < t->numel; i++) peft_f32(t)[i] = (float)(sin(f * (double)i) * amp);
}

static void pooled_ops(int t, float *out)
{
    /* the GEMMs on one thread (OpenBLAS's own results change with its thread count: README,
     * Speed), the pool's kernels on t */
    openblas_set_num_threads(1);
    ops_pool_set_threads(t);
    peft_rng rng;
    peft_rng_seed(&rng, 7);
    peft_graph *g = peft_graph_new(&rng);
    peft_graph_set_recording(g, 1);
    const int64_t shape[3] = {PO_B, PO_T, PO_C};
    peft_tensor *x = peft_graph_tensor(g, 3, shape), *x2 = peft_graph_tensor(g, 3, shape);
    peft_tensor *lw = peft_graph_tensor(g, 1, (int64_t[]){PO_C});
    peft_tensor *lb = peft_graph_tensor(g, 1, (int64_t[]){PO_C});
    peft_tensor *rw = peft_graph_tensor(g, 1, (int64_t[]){PO_C});
    peft_tensor *bias = peft_graph_tensor(g, 3, (int64_t[]){PO_H, PO_T, PO_T});
    peft_tensor *head = peft_graph_tensor(g, 2, (int64_t[]){PO_V, PO_C});
    fill(x, 0.37, 3.0);
    fill(x2, 0.19, 2.0);
    fill(lw, 0.7, 1.0);
    fill(lb, 0.3, 0.5);
    fill(rw, 0.9, 1.0);
    fill(bias, 0.05, 0.3);
    fill(head, 0.013, 0.2);
    x->requires_grad = x2->requires_grad = lw->requires_grad = lb->requires_grad = 1;
    rw->requires_grad = bias->requires_grad = 1;
    static int32_t mask[PO_B * PO_T], tg[PO_B * PO_T];
    for (int i = 0; i < PO_B * PO_T; i++) {
        mask[i] = i % 11 != 3;
        tg[i] = i % 9 == 4 ? -100 : (i * 37) % PO_V;
    }
    peft_tensor *a = op_gelu_tanh(g, x), *b = op_silu(g, a), *e = op_gelu_erf(g, x2);
    peft_tensor *m = op_add(g, op_mul(g, b, e), x);
    peft_tensor *ln = op_layernorm(g, m, lw, lb, 1e-5f);
    peft_tensor *rn = op_rmsnorm(g, ln, rw, 1e-6f);
    peft_tensor *q = op_rope(g, rn, PO_H, NULL, 10000.0f), *k = op_rope(g, ln, PO_H, NULL, 500.0f);
    const peft_attn_opts o = {.causal = 1, .key_mask = mask, .bias = bias};
    peft_tensor *at = op_attention_opt(g, q, k, rn, PO_H, PO_H, 0.25f, &o);
    peft_tensor *at2 = op_attention(g, at, q, k, PO_H, 1, NULL);
    peft_tensor *logits = op_linear(g, at2, head, NULL, 0);
    peft_tensor *l1 = op_cross_entropy(g, logits, tg, -100);
    peft_tensor *l2 = op_linear_cross_entropy(g, at, head, tg, -100);
    ck_assert_ptr_nonnull(l1);
    ck_assert_ptr_nonnull(l2);
    static float zeros[PO_B * PO_T * 128]; /* a slice of the layer norm's columns, to 0 */
    peft_tensor *l3 = op_mse(g, op_slice_lastdim(g, ln, 32, 128), zeros);
    ck_assert_ptr_nonnull(l3);
    peft_tensor *loss = op_add(g, op_add(g, l1, l2), l3);
    peft_tensor *qhead = peft_tensor_quantize(head, PEFT_DTYPE_NF4, NULL); /* tiles on the pool */
    peft_tensor *ql = op_linear(g, at2, qhead, NULL, 0);
    ck_assert_ptr_nonnull(ql);
    memcpy(out + PO_P + 4 * PO_C, peft_f32(ql), PO_L * sizeof(float));
    memcpy(out, peft_f32(at2), (size_t)PO_N * sizeof(float));
    memcpy(out + PO_N, peft_f32(rn), (size_t)PO_N * sizeof(float));
    out[PO_P + 3 * PO_C] = peft_f32(loss)[0];
    ck_assert_int_eq(peft_graph_backward(g, loss), 0);
    memcpy(out + 2 * PO_N, x->grad, (size_t)PO_N * sizeof(float));
    memcpy(out + 3 * PO_N, x2->grad, (size_t)PO_N * sizeof(float));
    memcpy(out + 4 * PO_N, bias->grad, PO_BIAS * sizeof(float));
    memcpy(out + PO_P, lw->grad, PO_C * sizeof(float));
    memcpy(out + PO_P + PO_C, lb->grad, PO_C * sizeof(float));
    memcpy(out + PO_P + 2 * PO_C, rw->grad, PO_C * sizeof(float));
    peft_graph_free(g);
    peft_tensor_free(qhead);
}

START_TEST(pooled_kernels_thread_invariant)
{
    float *r1 = calloc(PO_OUT, sizeof(float)), *r2 = calloc(PO_OUT, sizeof(float));
    pooled_ops(1, r1);
    ck_assert(isfinite(r1[PO_P + 3 * PO_C]));
    pooled_ops(2, r2);
    for (int64_t i = 0; i < PO_OUT; i++) /* say where, for the one who has to find out why */
        if (memcmp(r1 + i, r2 + i, 4)) {
            fprintf(stderr, "first difference at %ld of %ld: %g vs %g\n", (long)i, (long)PO_OUT,
                    r1[i], r2[i]);
            break;
        }
    ck_assert_int_eq(memcmp(r1, r2, PO_OUT * sizeof(float)), 0);
    pooled_ops(3, r2); /* 3 threads: must equal the 1-thread run too */
    ck_assert_int_eq(memcmp(r1, r2, PO_OUT * sizeof(float)), 0);
    ops_pool_set_threads(0);
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

/* ops_sgemm on oneDNN: the same products as OpenBLAS's to f32 rounding, over both transposes,
 * padded leading dimensions, alpha and beta, thin and empty shapes (skipped without libdnnl) */
START_TEST(onednn_gemm_matches_openblas)
{
    if (ops_gemm_use("onednn")) {
        fprintf(stderr, "onednn_gemm_matches_openblas: libdnnl.so.2 not loadable, skipped\n");
        return;
    }
    static const int S[][5] = {{37, 29, 53, 0, 0}, {64, 16, 300, 0, 1}, {16, 70, 128, 1, 0},
                               {5, 3, 1, 1, 1},    {128, 64, 512, 0, 1}, {0, 4, 8, 0, 0},
                               {3, 0, 2, 1, 0},    {512, 16, 64, 0, 0}};
    for (size_t s = 0; s < sizeof S / sizeof *S; s++) {
        const int M = S[s][0], N = S[s][1], K = S[s][2], ta = S[s][3], tb = S[s][4];
        const int lda = (ta ? M : K) + 3, ldb = (tb ? K : N) + 2, ldc = N + 1;
        const int ar = ta ? K : M, br = tb ? N : K;
        float *A = calloc((size_t)ar * lda + 1, 4), *B = calloc((size_t)br * ldb + 1, 4);
        float *C1 = calloc((size_t)M * ldc + 1, 4), *C2 = calloc((size_t)M * ldc + 1, 4);
        for (int i = 0; i < ar * lda; i++) A[i] = (float)sin(0.37 * i);
        for (int i = 0; i < br * ldb; i++) B[i] = (float)cos(0.11 * i);
        for (int i = 0; i < M * ldc; i++) C1[i] = C2[i] = (float)sin(0.05 * i);
        const enum CBLAS_TRANSPOSE TA = ta ? CblasTrans : CblasNoTrans,
                                   TB = tb ? CblasTrans : CblasNoTrans;
        ck_assert_int_eq(ops_gemm_use("onednn"), 0);
        ck_assert_str_eq(ops_gemm_backend(), "onednn");
        ops_sgemm(CblasRowMajor, TA, TB, M, N, K, 0.75f, A, lda, B, ldb, 0.5f, C1, ldc);
        ck_assert_int_eq(ops_gemm_use("openblas"), 0);
        ops_sgemm(CblasRowMajor, TA, TB, M, N, K, 0.75f, A, lda, B, ldb, 0.5f, C2, ldc);
        for (int i = 0; i < M; i++)
            for (int j = 0; j < ldc; j++) {
                const float a = C1[i * ldc + j], b = C2[i * ldc + j];
                if (j >= N) ck_assert(a == b); /* the padding is not written */
                else ck_assert_msg(fabsf(a - b) <= 1e-5f * (float)(K + 1) * (1.0f + fabsf(b)),
                                   "shape %zu (%d,%d): %g vs %g", s, i, j, a, b);
            }
        free(A);
        free(B);
        free(C1);
        free(C2);
    }
    ck_assert_str_eq(ops_gemm_backend(), "openblas");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("kernels");
    TCase *tc = tcase_create("vmath");
    tcase_add_test(tc, expf_accuracy);
    tcase_add_test(tc, erf_accuracy);
    tcase_add_test(tc, row_kernels);
    suite_add_tcase(s, tc);
    TCase *tp = tcase_create("pool");
    tcase_set_timeout(tp, 120);
    tcase_add_test(tp, pool_covers_once);
    tcase_add_test(tp, pooled_kernels_thread_invariant);
    tcase_add_test(tp, blas_kernel_check);
    tcase_add_test(tp, onednn_gemm_matches_openblas);
    suite_add_tcase(s, tp);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
