/* precompiled.c — the Precompiled normalizer of tokenizer.json (T5, ALBERT, XLM-R, mBART):
 * SentencePiece's compiled normalization rules (nmt_nfkc and friends), carried base64-encoded in
 * "precompiled_charsmap": a little-endian u32 byte size, a Darts double-array trie over UTF-8
 * keys, then the NUL-separated replacement strings. Applied as HF's spm_precompiled does it:
 * per extended grapheme cluster (utf8proc's segmentation), a cluster under 6 bytes is looked up
 * whole, else (or when it has no rule) each character is; a lookup takes the shortest key of the
 * trie that prefixes the text and replaces the whole cluster/character by its string. */
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>
#include "peft/peft.h"
#include "tokenizers/internal.h"

struct tk_charsmap {
    uint32_t *trie;
    size_t n_trie;
    char *norm;
    size_t n_norm;
};

void tk_charsmap_free(tk_charsmap *cm)
{
    if (!cm) return;
    free(cm->trie);
    free(cm->norm);
    free(cm);
}

static int b64v(int c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

int tk_charsmap_parse(const char *b64, size_t len, const char *where, tk_charsmap **out, char *err, size_t errlen)
{
    *out = NULL;
    unsigned char *bin = malloc(len / 4 * 3 + 3);
    if (!bin) return tk_oom(err, errlen);
    size_t n = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < len; i++) {
        if (b64[i] == '=') break;
        int v = b64v((unsigned char)b64[i]);
        if (v < 0) {
            free(bin);
            return tk_err(err, errlen, PEFT_EFORMAT, "%s: precompiled_charsmap: not base64 (byte %zu)", where, i);
        }
        acc = acc << 6 | (uint32_t)v;
        if ((bits += 6) >= 8) {
            bits -= 8;
            bin[n++] = (unsigned char)(acc >> bits);
        }
    }
    uint32_t tsize = n >= 4 ? (uint32_t)bin[0] | (uint32_t)bin[1] << 8 | (uint32_t)bin[2] << 16 | (uint32_t)bin[3] << 24 : 0;
    if (n < 4 || tsize % 4 || tsize > n - 4 || tsize < 4) {
        free(bin);
        return tk_err(err, errlen, PEFT_EFORMAT, "%s: precompiled_charsmap: truncated or malformed trie", where);
    }
    tk_charsmap *cm = calloc(1, sizeof *cm);
    if (!cm || !(cm->trie = malloc(tsize)) || !(cm->norm = malloc(n - 4 - tsize + 1))) {
        tk_charsmap_free(cm);
        free(bin);
        return tk_oom(err, errlen);
    }
    cm->n_trie = tsize / 4;
    for (size_t i = 0; i < cm->n_trie; i++) {
        const unsigned char *p = bin + 4 + 4 * i;
        cm->trie[i] = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    }
    cm->n_norm = n - 4 - tsize;
    memcpy(cm->norm, bin + 4 + tsize, cm->n_norm);
    cm->norm[cm->n_norm] = 0;
    free(bin);
    *out = cm;
    return 0;
}

/* Darts unit fields */
static uint32_t offset_of(uint32_t u) { return (u >> 10) << ((u & (1u << 9)) >> 6); }
static int has_leaf(uint32_t u) { return (u >> 8) & 1; }
static uint32_t label_of(uint32_t u) { return u & ((1u << 31) | 0xFF); }
static uint32_t value_of(uint32_t u) { return u & ((1u << 31) - 1); }

/* the replacement for the shortest trie key that prefixes s[0..n), or NULL */
static const char *transform(const tk_charsmap *cm, const char *s, size_t n, size_t *rlen)
{
    size_t pos = 0;
    if (!cm->n_trie) return NULL;
    pos ^= offset_of(cm->trie[0]);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!c) break;
        pos ^= c;
        if (pos >= cm->n_trie) return NULL;
        uint32_t u = cm->trie[pos];
        if (label_of(u) != c) return NULL;
        pos ^= offset_of(u);
        if (pos >= cm->n_trie) return NULL;
        if (has_leaf(u)) {
            size_t at = value_of(cm->trie[pos]);
            if (at >= cm->n_norm) return NULL;
            *rlen = strlen(cm->norm + at);
            return cm->norm + at;
        }
    }
    return NULL;
}

static int put(const char *s, size_t n, tk_cps *out) { return tk_utf8_decode(s, n, out); }

int tk_charsmap_apply(const tk_charsmap *cm, const uint32_t *in, size_t n, tk_cps *out)
{
    tk_str g = {0};
    int rc = 0;
    utf8proc_int32_t state = 0;
    for (size_t i = 0; i < n && !rc;) {
        size_t j = i + 1; /* the grapheme cluster in[i..j) */
        while (j < n && !utf8proc_grapheme_break_stateful((utf8proc_int32_t)in[j - 1], (utf8proc_int32_t)in[j], &state)) j++;
        state = 0;
        g.n = 0;
        if ((rc = tk_utf8_from_cps(in + i, j - i, &g))) break;
        size_t rl;
        const char *r = g.n < 6 ? transform(cm, g.s, g.n, &rl) : NULL;
        if (r) {
            rc = put(r, rl, out);
        } else {
            for (size_t k = i; k < j && !rc; k++) {
                char u[4];
                size_t ul = tk_utf8_put(in[k], u);
                r = transform(cm, u, ul, &rl);
                rc = r ? put(r, rl, out) : tk_cps_push(out, in[k]);
            }
        }
        i = j;
    }
    free(g.s);
    return rc;
}
