/* vmath.h — branch-free f32 exp for the kernels (core/ops/ only): no libm call per element, so
 * that the loops that use it vectorise (glibc's expf does not). The row kernels built on it
 * (vmath.c) are compiled per CPU (AVX-512, AVX2, plain) and picked at run time. */
#ifndef PEFT_CORE_OPS_VMATH_H
#define PEFT_CORE_OPS_VMATH_H

#include <stdint.h>
#include <string.h>

/* e^x: Cody-Waite reduction x = n ln2 + r, |r| <= ln2 / 2, and Cephes' degree-7 polynomial for
 * e^r (max error ~1 ulp over the f32 range against exp in double); 2^n is applied in two halves
 * so that the results down to the subnormals and up to FLT_MAX are right. x > ln(FLT_MAX)
 * gives +inf, x < -104 (and -inf) gives 0, NaN stays NaN. */
static inline float vm_expf(float x)
{
    const float hi = 88.72283935546875f, lo = -104.0f;
    float xc = x > hi ? hi : x;
    xc = xc < lo ? lo : xc;
    xc = x == x ? xc : 0.0f;
    const float n = (xc * 1.44269504088896341f + 12582912.0f) - 12582912.0f; /* rint */
    float r = xc - n * 0.693359375f;
    r = r - n * -2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * (r * r) + r + 1.0f;
    const int32_t ni = (int32_t)n, n1 = ni / 2, n2 = ni - n1;
    const uint32_t b1 = (uint32_t)(n1 + 127) << 23, b2 = (uint32_t)(n2 + 127) << 23;
    float s1, s2;
    memcpy(&s1, &b1, 4);
    memcpy(&s2, &b2, 4);
    float y = (p * s1) * s2;
    y = x > hi ? __builtin_inff() : y;
    y = x < lo ? 0.0f : y;
    return x == x ? y : x;
}

/* row kernels (vmath.c); hidden explicitly: the target_clones dispatchers would be exported */
#define VM_HIDDEN __attribute__((visibility("hidden")))

// x (n) -> max over x (NaN entries are skipped unless all are NaN); n >= 1
VM_HIDDEN float vm_max(const float *x, int64_t n);
// x (n) -> sum_j e^(x_j - m), accumulated in double
VM_HIDDEN double vm_sum_exp(const float *x, float m, int64_t n);
// x (n) -> y (n) = e^(x - m); returns the sum of y (f32 lanes, then summed in double)
VM_HIDDEN float vm_exp_sub_sum(const float *x, float m, float *y, int64_t n);
// x (n) -> y (n) += k e^(x - m)
VM_HIDDEN void vm_axpy_exp(const float *x, float m, float k, float *y, int64_t n);
// x (n) -> y (n) = k e^(x - m)   (in place allowed)
VM_HIDDEN void vm_scale_exp(const float *x, float m, float k, float *y, int64_t n);
// x (n) -> y (n) = x / (1 + e^-x)
VM_HIDDEN void vm_silu(const float *x, float *y, int64_t n);
// dy (n), x (n) -> dx (n) += dy s (1 + x (1 - s)), s = 1 / (1 + e^-x)
VM_HIDDEN void vm_silu_bwd(const float *x, const float *dy, float *dx, int64_t n);

#endif
