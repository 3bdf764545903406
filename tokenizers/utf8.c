/* tokenizer_utf8.c — the tokenizers' small building blocks: error messages, growable buffers
 * (code points, bytes, ids, pieces) and UTF-8 decoding/encoding. Decoding never fails on bad
 * input: each maximal invalid subsequence becomes U+FFFD, as the WHATWG/Unicode "maximal subpart"
 * rule (Python errors="replace", Rust from_utf8_lossy) says. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "peft/peft.h"
#include "tokenizers/internal.h"

int tk_err(char *err, size_t errlen, int code, const char *fmt, ...)
{
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return code;
}

int tk_oom(char *err, size_t errlen)
{
    return tk_err(err, errlen, PEFT_ENOMEM, "tokenizer: out of memory");
}

/* grows *p (elements of size sz) to hold at least need; 0 or PEFT_ENOMEM */
static int grow(void **p, size_t *cap, size_t need, size_t sz)
{
    if (need <= *cap) return 0;
    size_t c = *cap ? *cap : 16;
    while (c < need) {
        if (c > ((size_t)-1) / 2 / sz) return PEFT_ENOMEM;
        c *= 2;
    }
    void *q = realloc(*p, c * sz);
    if (!q) return PEFT_ENOMEM;
    *p = q;
    *cap = c;
    return 0;
}

int tk_cps_push(tk_cps *b, uint32_t c)
{
    if (grow((void **)&b->c, &b->cap, b->n + 1, sizeof *b->c)) return PEFT_ENOMEM;
    b->c[b->n++] = c;
    return 0;
}

int tk_cps_append(tk_cps *b, const uint32_t *c, size_t n)
{
    if (!n) return 0;
    if (grow((void **)&b->c, &b->cap, b->n + n, sizeof *b->c)) return PEFT_ENOMEM;
    memcpy(b->c + b->n, c, n * sizeof *c);
    b->n += n;
    return 0;
}

int tk_str_append(tk_str *b, const char *s, size_t n)
{
    if (grow((void **)&b->s, &b->cap, b->n + n + 1, 1)) return PEFT_ENOMEM;
    if (n) memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
    return 0;
}

int tk_str_putc(tk_str *b, uint32_t cp)
{
    char u[4];
    return tk_str_append(b, u, tk_utf8_put(cp, u));
}

int tk_ids_push(tk_ids *b, int32_t v)
{
    if (grow((void **)&b->v, &b->cap, b->n + 1, sizeof *b->v)) return PEFT_ENOMEM;
    b->v[b->n++] = v;
    return 0;
}

int tk_ids_append(tk_ids *b, const int32_t *v, size_t n)
{
    if (!n) return 0;
    if (grow((void **)&b->v, &b->cap, b->n + n, sizeof *b->v)) return PEFT_ENOMEM;
    memcpy(b->v + b->n, v, n * sizeof *v);
    b->n += n;
    return 0;
}

int tk_pieces_push(tk_pieces *l, const uint32_t *c, size_t n, int32_t id, int at_start)
{
    if (grow((void **)&l->p, &l->cap, l->n + 1, sizeof *l->p)) return PEFT_ENOMEM;
    tk_piece *p = &l->p[l->n];
    memset(p, 0, sizeof *p);
    p->id = id;
    p->at_start = at_start;
    if (tk_cps_append(&p->t, c, n)) return PEFT_ENOMEM;
    l->n++;
    return 0;
}

void tk_pieces_free(tk_pieces *l)
{
    for (size_t i = 0; i < l->n; i++) free(l->p[i].t.c);
    free(l->p);
    memset(l, 0, sizeof *l);
}

/* ---- UTF-8 ---- */

size_t tk_utf8_put(uint32_t cp, char out[4])
{
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) cp = 0xFFFD;
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Decodes one character at s (left > 0 bytes). Returns the bytes consumed and sets *cp; an
 * invalid sequence consumes its maximal subpart (at least 1 byte) and gives U+FFFD. */
static size_t decode1(const unsigned char *s, size_t left, uint32_t *cp)
{
    unsigned char b = s[0];
    if (b < 0x80) {
        *cp = b;
        return 1;
    }
    size_t need;
    uint32_t c;
    unsigned char lo = 0x80, hi = 0xBF; /* allowed range of the second byte */
    if (b >= 0xC2 && b <= 0xDF) {
        need = 1;
        c = b & 0x1F;
    } else if (b >= 0xE0 && b <= 0xEF) {
        need = 2;
        c = b & 0x0F;
        if (b == 0xE0) lo = 0xA0;      /* no overlong */
        else if (b == 0xED) hi = 0x9F; /* no surrogates */
    } else if (b >= 0xF0 && b <= 0xF4) {
        need = 3;
        c = b & 0x07;
        if (b == 0xF0) lo = 0x90;
        else if (b == 0xF4) hi = 0x8F; /* <= U+10FFFF */
    } else {
        *cp = 0xFFFD;
        return 1;
    }
    size_t i = 1;
    for (; i <= need; i++) {
        if (i >= left) break;
        unsigned char x = s[i];
        if (i == 1 ? (x < lo || x > hi) : (x < 0x80 || x > 0xBF)) break;
        c = (c << 6) | (x & 0x3F);
    }
    if (i <= need) {
        *cp = 0xFFFD;
        return i;
    }
    *cp = c;
    return need + 1;
}

int tk_utf8_decode(const char *s, size_t len, tk_cps *out)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        uint32_t cp;
        i += decode1(u + i, len - i, &cp);
        if (tk_cps_push(out, cp)) return PEFT_ENOMEM;
    }
    return 0;
}

size_t tk_utf8_len(const char *s, size_t left)
{
    uint32_t cp;
    return left ? decode1((const unsigned char *)s, left, &cp) : 0;
}

int tk_utf8_from_cps(const uint32_t *c, size_t n, tk_str *out)
{
    for (size_t i = 0; i < n; i++)
        if (tk_str_putc(out, c[i])) return PEFT_ENOMEM;
    if (!out->s && tk_str_append(out, "", 0)) return PEFT_ENOMEM;
    return 0;
}

int tk_cps_from_cstr(const char *s, tk_cps *out)
{
    return tk_utf8_decode(s, strlen(s), out);
}
