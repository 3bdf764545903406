/* unicode.c — the Unicode properties and normalization forms the tokenizers ask about, from
 * utf8proc (Debian's libutf8proc, Unicode 15): general category, combining class, simple
 * lowercase (plus the one unconditional multi-character lowercase of SpecialCasing.txt, U+0130,
 * as Rust's char::to_lowercase gives it), and NFC / NFD / NFKC / NFKD. White_Space is the one
 * property utf8proc does not carry: its 25 code points are listed here (PropList.txt). */
#include <stdlib.h>
#include <utf8proc.h>
#include "peft/peft.h"
#include "tokenizers/internal.h"

int tk_ucat(uint32_t cp)
{
    if (cp > 0x10FFFF) return TK_Cn;
    /* utf8proc's categories are numbered as TK_* (Cn = 0 ... Co = 29) */
    return (int)utf8proc_category((utf8proc_int32_t)cp);
}

int tk_is_space(uint32_t cp)
{
    if (cp == ' ' || (cp >= 9 && cp <= 13)) return 1;
    if (cp < 0x85) return 0;
    return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
           cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

int tk_is_letter(uint32_t cp)
{
    int c = tk_ucat(cp);
    return c >= TK_Lu && c <= TK_Lo;
}

int tk_is_number(uint32_t cp)
{
    int c = tk_ucat(cp);
    return c >= TK_Nd && c <= TK_No;
}

int tk_is_punct(uint32_t cp)
{
    int c = tk_ucat(cp);
    return c >= TK_Pc && c <= TK_Po;
}

int tk_is_word(uint32_t cp)
{
    int c = tk_ucat(cp);
    return (c >= TK_Lu && c <= TK_Nd) || c == TK_Nl || c == TK_Pc || cp == 0x200C || cp == 0x200D;
}

int tk_ccc(uint32_t cp)
{
    return cp > 0x10FFFF ? 0 : utf8proc_get_property((utf8proc_int32_t)cp)->combining_class;
}

int tk_lower_append(uint32_t cp, tk_cps *out)
{
    if (cp < 0x80) return tk_cps_push(out, cp >= 'A' && cp <= 'Z' ? cp + 32 : cp);
    if (cp == 0x130) /* SpecialCasing: İ -> i + combining dot above */
        return tk_cps_push(out, 'i') || tk_cps_push(out, 0x307) ? PEFT_ENOMEM : 0;
    return tk_cps_push(out, cp > 0x10FFFF ? cp : (uint32_t)utf8proc_tolower((utf8proc_int32_t)cp));
}

int tk_unorm(const uint32_t *in, size_t n, int form, tk_cps *out)
{
    utf8proc_option_t opt = UTF8PROC_STABLE;
    switch (form) {
    case TK_NFC: opt |= UTF8PROC_COMPOSE; break;
    case TK_NFD: opt |= UTF8PROC_DECOMPOSE; break;
    case TK_NFKC: opt |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT; break;
    default: opt |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT; break;
    }
    if (!n) return 0;
    /* utf8proc works on UTF-32 in place: decompose each code point, then reorder and compose */
    size_t cap = n * 4 + 16, len = 0;
    utf8proc_int32_t *buf = malloc(cap * sizeof *buf);
    if (!buf) return PEFT_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        int bound = 0;
        for (;;) {
            utf8proc_ssize_t k = utf8proc_decompose_char((utf8proc_int32_t)in[i], buf + len,
                                                         (utf8proc_ssize_t)(cap - len), opt, &bound);
            if (k < 0) { /* an invalid code point: keep it as it is */
                k = 1;
                buf[len] = (utf8proc_int32_t)in[i];
            }
            if ((size_t)k <= cap - len) {
                len += (size_t)k;
                break;
            }
            cap = 2 * cap + (size_t)k;
            utf8proc_int32_t *nb = realloc(buf, cap * sizeof *nb);
            if (!nb) {
                free(buf);
                return PEFT_ENOMEM;
            }
            buf = nb;
        }
    }
    utf8proc_ssize_t m = utf8proc_normalize_utf32(buf, (utf8proc_ssize_t)len, opt);
    int rc = m < 0 ? PEFT_EINVAL : tk_cps_append(out, (const uint32_t *)buf, (size_t)m);
    free(buf);
    return rc;
}

int tk_nfd(const uint32_t *in, size_t n, tk_cps *out)
{
    return tk_unorm(in, n, TK_NFD, out);
}
