/* dtype.c — f32 -> bf16 / f16 with round-to-nearest-even (as torch's .to(dtype)), NaN kept NaN,
 * overflow to infinity, f16 subnormals handled. */
#include <string.h>
#include <strings.h>
#include "peft/dtype.h"
#include "peft/tensor.h"

static uint16_t f32_to_bf16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40); /* quiet NaN */
    x += 0x7fffu + ((x >> 16) & 1u);
    return (uint16_t)(x >> 16);
}

static uint16_t f32_to_f16(float f)
{
    uint32_t x;
    memcpy(&x, &f, 4);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000u);
    uint32_t ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) return sign | 0x7e00u;  /* NaN */
    if (ax >= 0x477ff000u) return sign | 0x7c00u; /* rounds to >= 65520: infinity */
    if (ax < 0x38800000u) {                        /* below the smallest normal f16: subnormal */
        if (ax < 0x33000000u) return sign;          /* rounds to zero */
        uint32_t mant = (ax & 0x7fffffu) | 0x800000u;
        int shift = 126 - (int)(ax >> 23);          /* 14..24: units of 2^-24 */
        uint32_t half = 1u << (shift - 1), rest = mant & ((1u << shift) - 1);
        uint32_t v = mant >> shift;
        if (rest > half || (rest == half && (v & 1u))) v++;
        return sign | (uint16_t)v;
    }
    uint32_t v = ((ax - 0x38000000u) >> 13); /* rebias exponent 127 -> 15 */
    uint32_t rest = ax & 0x1fffu;
    if (rest > 0x1000u || (rest == 0x1000u && (v & 1u))) v++;
    return sign | (uint16_t)v;
}

int peft_convert_from_f32(int32_t dtype, const float *src, void *dst, int64_t n)
{
    if (dtype == PEFT_DTYPE_F32) {
        memmove(dst, src, (size_t)n * sizeof(float));
        return 0;
    }
    uint16_t *d = dst;
    if (dtype == PEFT_DTYPE_BF16) {
        for (int64_t i = 0; i < n; i++) d[i] = f32_to_bf16(src[i]);
        return 0;
    }
    if (dtype == PEFT_DTYPE_F16) {
        for (int64_t i = 0; i < n; i++) d[i] = f32_to_f16(src[i]);
        return 0;
    }
    return -1;
}

int32_t peft_dtype_from_name(const char *name)
{
    if (!name) return -1;
    if (!strcasecmp(name, "F32") || !strcasecmp(name, "float32") || !strcasecmp(name, "fp32")) return PEFT_DTYPE_F32;
    if (!strcasecmp(name, "BF16") || !strcasecmp(name, "bfloat16")) return PEFT_DTYPE_BF16;
    if (!strcasecmp(name, "F16") || !strcasecmp(name, "float16") || !strcasecmp(name, "fp16")) return PEFT_DTYPE_F16;
    return -1;
}
