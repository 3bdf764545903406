/* test_dtype.c — the f32 <-> f16 conversions (core/tensor/dtype.c, graph.c) against the
 * compiler's own IEEE binary16 (_Float16, round to nearest even): every f16 bit pattern back to
 * f32, every f32 whose exponent lands in or near f16's subnormal range, and a stride over all
 * 2^32 f32 bit patterns (both signs, normals, infinities, NaN). */
#include <check.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "peft/dtype.h"
#include "peft/graph.h"
#include "testutil.h"

static uint16_t ref_f16(float f)
{
    _Float16 h = (_Float16)f;
    uint16_t b;
    memcpy(&b, &h, 2);
    return b;
}

static float bits_f32(uint32_t x)
{
    float f;
    memcpy(&f, &x, 4);
    return f;
}

/* converts n f32 bit patterns (x0, x0 + step, ...) and compares with _Float16; NaN only needs
 * to stay NaN (payloads differ between libraries) */
static void check_range(uint64_t x0, uint64_t x1, uint64_t step)
{
    enum { CHUNK = 1 << 16 };
    static float src[CHUNK];
    static uint16_t dst[CHUNK];
    int64_t bad = 0;
    for (uint64_t x = x0; x < x1;) {
        int64_t n = 0;
        for (; n < CHUNK && x < x1; n++, x += step) src[n] = bits_f32((uint32_t)x);
        ck_assert_int_eq(peft_convert_from_f32(PEFT_DTYPE_F16, src, dst, n), 0);
        for (int64_t i = 0; i < n; i++) {
            uint16_t r = ref_f16(src[i]);
            int nan = (r & 0x7c00u) == 0x7c00u && (r & 0x3ffu);
            int got_nan = (dst[i] & 0x7c00u) == 0x7c00u && (dst[i] & 0x3ffu);
            if (nan ? !got_nan : dst[i] != r) {
                if (bad++ < 5) {
                    uint32_t xb;
                    memcpy(&xb, &src[i], 4);
                    fprintf(stderr, "f32 0x%08x (%g): f16 0x%04x, _Float16 gives 0x%04x\n", xb,
                            (double)src[i], dst[i], r);
                }
            }
        }
    }
    ck_assert_msg(bad == 0, "%lld f32 values convert to the wrong f16", (long long)bad);
}

/* f32s from 2^-27 up to 2^-13 (f16's subnormals, the first normals and the rounding boundaries
 * between them), both signs: a prime stride through the range, and every value within 4 ulps of
 * each halfway point between two neighbouring f16 values there (where rounding decides) */
START_TEST(f32_to_f16_subnormal_range)
{
    check_range(0x32000000u, 0x39000000u, 61);
    check_range(0xb2000000u, 0xb9000000u, 61);
    for (uint32_t v = 0; v < 2048; v++) {
        float mid = ((float)v + 0.5f) * 0x1p-24f; /* exact in f32 */
        uint32_t b;
        memcpy(&b, &mid, 4);
        check_range(b - 4, (uint64_t)b + 5, 1);
        check_range((b - 4) | 0x80000000u, ((uint64_t)b + 5) | 0x80000000u, 1);
    }
}
END_TEST

/* a prime stride over all 2^32 patterns, plus the specials */
START_TEST(f32_to_f16_whole_range)
{
    check_range(0, 0x100000000ull, 7919);
    const uint32_t specials[] = {0x00000000u, 0x80000000u, 0x7f800000u, 0xff800000u, 0x7fc00000u,
                                 0x477fefffu, 0x477ff000u, 0x477fe000u, 0x38800000u, 0x387fffffu,
                                 0x33000000u, 0x33000001u, 0x00000001u, 0x7f7fffffu};
    for (size_t i = 0; i < sizeof specials / sizeof *specials; i++)
        check_range(specials[i], (uint64_t)specials[i] + 1, 1);
}
END_TEST

/* every f16 bit pattern to f32 (exact: f16 is a subset of f32), and back */
START_TEST(f16_to_f32_every_value)
{
    static uint16_t h[65536], back[65536];
    static float f[65536];
    for (int i = 0; i < 65536; i++) h[i] = (uint16_t)i;
    peft_convert_to_f32(PEFT_DTYPE_F16, h, f, 65536);
    for (int i = 0; i < 65536; i++) {
        _Float16 r;
        memcpy(&r, &h[i], 2);
        float want = (float)r;
        if (isnan(want)) ck_assert_msg(isnan(f[i]), "0x%04x", i);
        else ck_assert_msg(memcmp(&want, &f[i], 4) == 0, "0x%04x: %g, want %g", i, (double)f[i], (double)want);
    }
    ck_assert_int_eq(peft_convert_from_f32(PEFT_DTYPE_F16, f, back, 65536), 0);
    for (int i = 0; i < 65536; i++)
        if ((h[i] & 0x7c00u) != 0x7c00u || !(h[i] & 0x3ffu)) ck_assert_msg(back[i] == h[i], "0x%04x -> 0x%04x", i, back[i]);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("dtype");
    TCase *tc = tcase_create("f16");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, f32_to_f16_subnormal_range);
    tcase_add_test(tc, f32_to_f16_whole_range);
    tcase_add_test(tc, f16_to_f32_every_value);
    suite_add_tcase(s, tc);
    return tu_run_suite(s) ? 1 : 0;
}
