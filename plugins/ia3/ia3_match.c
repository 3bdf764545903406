/* ia3_match.c — PEFT 0.13.2's IA3Model._check_target_module_feedforward: a module is
 * feed-forward when feedforward_modules is a string that re.fullmatch()es its name, or a list
 * with an entry the name ends with (a plain str.endswith, no '.' boundary, as PEFT does).
 *
 * The plugin links no regex library of the host, so Python patterns are translated to POSIX
 * ERE here: \d \w \s (and \D \W \S) outside brackets, (?:...) groups, lazy quantifiers (same
 * match set for a full match), escaped punctuation. Anything without a faithful ERE equivalent
 * (look-around, back-references, \b, escapes inside brackets) is refused, never guessed. */
#include <regex.h>
#include <string.h>

#include "ia3.h"

/* appends to a host-allocated buffer that grows; b->bad on OOM */
typedef struct sbuf {
    char *s;
    size_t len, cap;
    int bad;
} sbuf;

static void sb_puts(sbuf *b, const char *s)
{
    size_t n = strlen(s);
    if (b->bad) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = (b->cap ? b->cap * 2 : 64) + n;
        char *p = ia3_host->alloc(cap);
        if (!p) {
            b->bad = 1;
            return;
        }
        if (b->s) memcpy(p, b->s, b->len);
        ia3_host->free(b->s);
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n + 1);
    b->len += n;
}

static void sb_putc(sbuf *b, char c)
{
    char s[2] = {c, 0};
    sb_puts(b, s);
}

static int is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* "^(" + ERE(pattern) + ")$" in a host-allocated string, or NULL when not translatable */
static char *py_to_anchored_ere(const char *p)
{
    sbuf b = {0};
    int after_quant = 0;
    sb_puts(&b, "^(");
    while (*p && !b.bad) {
        char ch = *p;
        if (ch == '\\') {
            char e = p[1];
            p += e ? 2 : 1;
            after_quant = 0;
            switch (e) {
            case 'd': sb_puts(&b, "[0-9]"); break;
            case 'D': sb_puts(&b, "[^0-9]"); break;
            case 'w': sb_puts(&b, "[A-Za-z0-9_]"); break;
            case 'W': sb_puts(&b, "[^A-Za-z0-9_]"); break;
            case 's': sb_puts(&b, "[[:space:]]"); break;
            case 'S': sb_puts(&b, "[^[:space:]]"); break;
            case 0: goto fail;
            default:
                if (is_alnum(e)) goto fail; /* \b \A \Z \1 ...: no ERE equivalent */
                sb_putc(&b, '\\');
                sb_putc(&b, e);
            }
            continue;
        }
        if (ch == '[') { /* copied as is up to the closing ']'; escapes inside are refused */
            const char *q = p + 1;
            if (*q == '^') q++;
            if (*q == ']') q++;
            while (*q && *q != ']') {
                if (*q == '\\') goto fail;
                q++;
            }
            if (!*q) goto fail;
            while (p <= q) sb_putc(&b, *p++);
            after_quant = 0;
            continue;
        }
        if (ch == '(' && p[1] == '?') {
            if (p[2] != ':') goto fail; /* look-around, flags, named groups */
            sb_putc(&b, '(');
            p += 3;
            after_quant = 0;
            continue;
        }
        if (ch == '?' && after_quant) { /* lazy modifier: same full-match set */
            p++;
            after_quant = 0;
            continue;
        }
        sb_putc(&b, ch);
        after_quant = ch == '*' || ch == '+' || ch == '?' || ch == '}';
        p++;
    }
    sb_puts(&b, ")$");
    if (b.bad) goto fail;
    return b.s;
fail:
    ia3_host->free(b.s);
    return NULL;
}

int ia3_regex_fullmatch(const char *pattern, const char *s)
{
    if (!pattern || !s) return -1;
    char *ere = py_to_anchored_ere(pattern);
    if (!ere) return -1;
    regex_t re;
    int rc = regcomp(&re, ere, REG_EXTENDED | REG_NOSUB);
    ia3_host->free(ere);
    if (rc != 0) return -1;
    int m = regexec(&re, s, 0, NULL, 0) == 0;
    regfree(&re);
    return m;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return k <= n && memcmp(s + n - k, suffix, k) == 0;
}

int ia3_is_feedforward(const peft_cfg *cfg, const char *module_name, char *err, size_t errlen)
{
    const char *key = "feedforward_modules";
    int t = ia3_host->cfg_type(cfg, key);
    if (t == PEFT_CFG_STRING) {
        const char *pat = ia3_host->cfg_str(cfg, key);
        int m = ia3_regex_fullmatch(pat, module_name);
        if (m < 0)
            ia3_errf(err, errlen, "ia3 config: field 'feedforward_modules' is the regular "
                     "expression \"%s\", which is invalid or uses a construct with no POSIX "
                     "equivalent (look-around, back-references, \\b, escapes in brackets)",
                     pat ? pat : "");
        return m;
    }
    if (t == PEFT_CFG_LIST) {
        int n = ia3_host->cfg_list_len(cfg, key);
        for (int i = 0; i < n; i++) {
            const char *f = ia3_host->cfg_list_str(cfg, key, i);
            if (f && ends_with(module_name, f)) return 1;
        }
        return 0;
    }
    ia3_errf(err, errlen, "ia3 config: field 'feedforward_modules' must be a string or a list "
             "of strings when the adapter is injected");
    return -1;
}
