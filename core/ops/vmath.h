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

/* erf(x) without a libm call, for the exact GELU: |x| <= 1: x + x P(x^2), P of degree 6 (error
 * 1.3e-9 in double); 1 < |x|: 1 - e^(-x^2) Q(t), t = 1 / (1 + |x| / 2) on |x| in [1, 4]
 * (clamped: erf rounds to 1 in f32 past ~3.92), Q of degree 7 (9e-10). Both Chebyshev fits,
 * evaluated by Horner in w in [-1, 1]; in f32 the result is within ~1 ulp of erf in double
 * (tests/test_kernels.c sweeps it). Odd; NaN stays NaN, erf(+-inf) = +-1. */
static inline float vm_erff(float x)
{
    const float a = x < 0.0f ? -x : x;
    float w = 2.0f * (a * a) - 1.0f; /* z = a^2 in [0, 1] -> w in [-1, 1] */
    float p = 1.230605476e-06f;
    p = p * w - 1.766906802e-05f;
    p = p * w + 2.175135417e-04f;
    p = p * w - 2.285419545e-03f;
    p = p * w + 1.985249714e-02f;
    p = p * w - 1.405360973e-01f;
    p = p * w - 3.453126133e-02f;
    const float small = a + a * p; /* erf(a) / a - 1 = p: the last rounding is a's half ulp */
    float ac = a > 4.0f ? 4.0f : a;
    ac = ac < 1.0f ? 1.0f : ac;
    const float t = 1.0f / (1.0f + 0.5f * ac); /* [1/3, 2/3] -> w in [-1, 1] */
    w = 6.0f * t - 3.0f;
    float q = 4.317145099e-07f;
    q = q * w - 1.147585702e-06f;
    q = q * w - 2.878541322e-05f;
    q = q * w + 4.607581916e-05f;
    q = q * w + 2.925130492e-03f;
    q = q * w + 2.685091234e-02f;
    q = q * w + 1.423952825e-01f;
    q = q * w + 2.553956763e-01f;
    const float large = 1.0f - vm_expf(-(ac * ac)) * q;
    const float r = a <= 1.0f ? small : a == a ? large : a;
    return x < 0.0f ? -r : r;
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

// x (n) -> y (n) = x 0.5 (1 + erf(x / sqrt 2))   (exact GELU)
VM_HIDDEN void vm_gelu_erf(const float *x, float *y, int64_t n);
// x (n), dy (n) -> dx (n) += dy (Phi(x) + x phi(x))
VM_HIDDEN void vm_gelu_erf_bwd(const float *x, const float *dy, float *dx, int64_t n);

#endif
