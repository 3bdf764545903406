/* regex.c — the regular expressions of tokenizer.json (Split pre-tokenizers, Replace
 * normalizers and decoders, ByteLevel's GPT-2 pattern) through PCRE2, never a hand-written
 * matcher. Hugging Face compiles them with Oniguruma; PCRE2 with UTF + UCP gives the same
 * meaning to what those files use: Unicode property classes (\p{L}, \p{N}, \p{P}, ...), \s as
 * Unicode White_Space, look-ahead, (?i:...) with Unicode case folding. JIT where the library has
 * it. Bounded: a pattern of at most 64 KiB, a match limit of 10^8 backtracking steps per match
 * and a heap limit of 256 MiB; a pattern that hits them makes encode fail with a message, never
 * hang. A compiled tk_regex is read-only: any number of threads may match with it at once (each
 * call has its own match data). */
#include <stdlib.h>
#include <string.h>
#include "peft/peft.h"
#include "tokenizers/internal.h"

#define TK_RE_MAX_PATTERN (64u << 10)
#define TK_RE_MATCH_LIMIT 100000000u
#define TK_RE_HEAP_LIMIT_KIB (256u << 10)

struct tk_regex {
    pcre2_code *code;
    pcre2_match_context *mctx;
    int jit;
};

void tk_regex_free(tk_regex *re)
{
    if (!re) return;
    pcre2_code_free(re->code);
    pcre2_match_context_free(re->mctx);
    free(re);
}

int tk_regex_compile(const char *pat, size_t len, int literal, const char *where, tk_regex **out, char *err,
                     size_t errlen)
{
    *out = NULL;
    if (len > TK_RE_MAX_PATTERN)
        return tk_err(err, errlen, PEFT_EFORMAT, "%s: pattern of %zu bytes is too long (at most %u)", where, len,
                      TK_RE_MAX_PATTERN);
    tk_regex *re = calloc(1, sizeof *re);
    pcre2_compile_context *cctx = pcre2_compile_context_create(NULL);
    if (!re || !cctx) {
        free(re);
        pcre2_compile_context_free(cctx);
        return tk_oom(err, errlen);
    }
    pcre2_set_max_pattern_length(cctx, TK_RE_MAX_PATTERN);
    int ecode;
    PCRE2_SIZE eoff;
    uint32_t opts = PCRE2_UTF | (literal ? PCRE2_LITERAL : PCRE2_UCP);
    re->code = pcre2_compile((PCRE2_SPTR)pat, len, opts, &ecode, &eoff, cctx);
    pcre2_compile_context_free(cctx);
    if (!re->code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(ecode, msg, sizeof msg);
        tk_regex_free(re);
        return tk_err(err, errlen, PEFT_EFORMAT, "%s: regular expression \"%.*s\": %s at offset %zu", where,
                      (int)(len > 200 ? 200 : len), pat, (const char *)msg, (size_t)eoff);
    }
    re->jit = pcre2_jit_compile(re->code, PCRE2_JIT_COMPLETE) == 0;
    if (!(re->mctx = pcre2_match_context_create(NULL))) {
        tk_regex_free(re);
        return tk_oom(err, errlen);
    }
    pcre2_set_match_limit(re->mctx, TK_RE_MATCH_LIMIT);
    pcre2_set_heap_limit(re->mctx, TK_RE_HEAP_LIMIT_KIB);
    *out = re;
    return 0;
}

int tk_spans_push(tk_spans *s, size_t a, size_t b, int match)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? 2 * s->cap : 16;
        tk_span *v = realloc(s->v, cap * sizeof *v);
        if (!v) return PEFT_ENOMEM;
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = (tk_span){a, b, match};
    return 0;
}

/* HF's Pattern::find_matches: s[0..n) cut into the matches (match = 1) and the text between
 * them (match = 0), covering all of it in order; empty text gives one empty non-match. After an
 * empty match the search moves on by one character, as Oniguruma's iterator does. */
int tk_regex_split(const tk_regex *re, const char *s, size_t n, tk_spans *out)
{
    out->n = 0;
    if (!n) return tk_spans_push(out, 0, 0, 0);
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re->code, NULL);
    if (!md) return PEFT_ENOMEM;
    size_t prev = 0, at = 0;
    int rc = 0;
    while (at <= n && !rc) {
        int m = pcre2_match(re->code, (PCRE2_SPTR)s, n, at, PCRE2_NO_UTF_CHECK, md, re->mctx);
        if (m == PCRE2_ERROR_JIT_STACKLIMIT) /* deep recursion in JIT code: the interpreter's heap */
            m = pcre2_match(re->code, (PCRE2_SPTR)s, n, at, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md, re->mctx);
        if (m == PCRE2_ERROR_NOMATCH) break;
        if (m < 0) {
            rc = m == PCRE2_ERROR_NOMEMORY ? PEFT_ENOMEM : TK_E_REGEX_LIMIT;
            break;
        }
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t a = ov[0], b = ov[1];
        if (a > prev) rc = tk_spans_push(out, prev, a, 0);
        if (!rc) rc = tk_spans_push(out, a, b, 1);
        prev = b;
        at = b > a ? b : b + (b < n ? tk_utf8_len(s + b, n - b) : 1);
    }
    pcre2_match_data_free(md);
    if (!rc && prev < n) rc = tk_spans_push(out, prev, n, 0);
    return rc;
}

/* the same over code points: spans in code-point indices of c[0..n) */
int tk_regex_split_cps(const tk_regex *re, const uint32_t *c, size_t n, tk_spans *out)
{
    tk_str u = {0};
    size_t *at = malloc((n + 1) * sizeof *at); /* byte offset of each code point */
    int rc = at ? 0 : PEFT_ENOMEM;
    for (size_t i = 0; i < n && !rc; i++) {
        at[i] = u.n;
        rc = tk_str_putc(&u, c[i]);
    }
    if (!rc) {
        at[n] = u.n;
        rc = tk_regex_split(re, u.s ? u.s : "", u.n, out);
    }
    for (size_t k = 0, i = 0; k < out->n && !rc; k++) { /* spans are in order: one forward walk */
        tk_span *sp = &out->v[k];
        while (at[i] < sp->a) i++;
        sp->a = i;
        while (at[i] < sp->b) i++;
        sp->b = i;
    }
    free(at);
    free(u.s);
    return rc;
}
