/* vmath.c — row kernels over vm_expf (vmath.h): the max, exp-and-sum and exp-and-scale passes
 * of softmax and cross entropy, SiLU and the exact (erf) GELU with their backward. Each is compiled for AVX-512, AVX2
 * and plain x86-64 and picked at load time (target_clones); sums run in 8 fixed lanes, so a
 * result depends on n and the data only, never on the thread count. The clones are static
 * (an exported target_clones function exports its resolver too); vm_* call them. */
#include "core/ops/vmath.h"

#define VM_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#define LANES 8

VM_CLONES static float k_max(const float *x, int64_t n)
{
    float m[LANES];
    for (int l = 0; l < LANES; l++) m[l] = x[0];
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int l = 0; l < LANES; l++) m[l] = x[i + l] > m[l] ? x[i + l] : m[l];
    float r = m[0];
    for (int l = 1; l < LANES; l++) r = m[l] > r ? m[l] : r;
    for (; i < n; i++) r = x[i] > r ? x[i] : r;
    return r;
}
float vm_max(const float *x, int64_t n) { return k_max(x, n); }

VM_CLONES static double k_sum_exp(const float *x, float m, int64_t n)
{
    double acc[LANES] = {0};
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int l = 0; l < LANES; l++) acc[l] += (double)vm_expf(x[i + l] - m);
    double s = 0.0;
    for (; i < n; i++) s += (double)vm_expf(x[i] - m);
    for (int l = 0; l < LANES; l++) s += acc[l];
    return s;
}
double vm_sum_exp(const float *x, float m, int64_t n) { return k_sum_exp(x, m, n); }

VM_CLONES static float k_exp_sub_sum(const float *x, float m, float *y, int64_t n)
{
    float acc[LANES] = {0};
    int64_t i = 0;
    for (; i + LANES <= n; i += LANES)
        for (int l = 0; l < LANES; l++) {
            const float e = vm_expf(x[i + l] - m);
            y[i + l] = e;
            acc[l] += e;
        }
    double s = 0.0;
    for (; i < n; i++) {
        y[i] = vm_expf(x[i] - m);
        s += y[i];
    }
    for (int l = 0; l < LANES; l++) s += acc[l];
    return (float)s;
}
float vm_exp_sub_sum(const float *x, float m, float *y, int64_t n) { return k_exp_sub_sum(x, m, y, n); }

VM_CLONES static void k_axpy_exp(const float *x, float m, float k, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] += k * vm_expf(x[i] - m);
}
void vm_axpy_exp(const float *x, float m, float k, float *y, int64_t n) { k_axpy_exp(x, m, k, y, n); }

VM_CLONES static void k_scale_exp(const float *x, float m, float k, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] = k * vm_expf(x[i] - m);
}
void vm_scale_exp(const float *x, float m, float k, float *y, int64_t n) { k_scale_exp(x, m, k, y, n); }

VM_CLONES static void k_silu(const float *x, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] = x[i] / (1.0f + vm_expf(-x[i]));
}
void vm_silu(const float *x, float *y, int64_t n) { k_silu(x, y, n); }

VM_CLONES static void k_silu_bwd(const float *x, const float *dy, float *dx, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        const float s = 1.0f / (1.0f + vm_expf(-x[i]));
        dx[i] += dy[i] * (s * (1.0f + x[i] * (1.0f - s)));
    }
}
void vm_silu_bwd(const float *x, const float *dy, float *dx, int64_t n) { k_silu_bwd(x, dy, dx, n); }

#define GELU_ALPHA 0.70710678118654752440f    /* 1/sqrt(2) */
#define GELU_BETA_PDF 0.39894228040143267794f /* 1/sqrt(2 pi) */

VM_CLONES static void k_gelu_erf(const float *x, float *y, int64_t n)
{
    for (int64_t i = 0; i < n; i++) y[i] = x[i] * 0.5f * (1.0f + vm_erff(x[i] * GELU_ALPHA));
}
void vm_gelu_erf(const float *x, float *y, int64_t n) { k_gelu_erf(x, y, n); }

VM_CLONES static void k_gelu_erf_bwd(const float *x, const float *dy, float *dx, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        const float cdf = 0.5f * (1.0f + vm_erff(x[i] * GELU_ALPHA));
        const float pdf = GELU_BETA_PDF * vm_expf(-0.5f * x[i] * x[i]);
        dx[i] += dy[i] * (cdf + x[i] * pdf);
    }
}
void vm_gelu_erf_bwd(const float *x, const float *dy, float *dx, int64_t n)
{
    k_gelu_erf_bwd(x, dy, dx, n);
}
