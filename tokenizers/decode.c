/* tokenizer_decode.c — ids back to text: tokenizer.json decoders and peft_tokenizer_decode.
 * As HF: the ids' token strings (special tokens dropped on request, unknown ids skipped) go
 * through the decoder chain, each decoder turning a list of strings into a new list, and the
 * result is joined; without a decoder the tokens are joined with spaces. Decoders: ByteLevel
 * (GPT-2 characters back to bytes, invalid UTF-8 -> U+FFFD), Metaspace, WordPiece (+ cleanup),
 * Replace (plain string), ByteFallback (<0xNN> runs -> UTF-8, or one U+FFFD per byte), Fuse,
 * Strip, BPEDecoder (suffix), Sequence. */
#include <stdlib.h>
#include <string.h>
#include "peft/peft.h"
#include "tokenizers/internal.h"

enum { D_BYTELEVEL = 1, D_METASPACE, D_WORDPIECE, D_REPLACE, D_BYTEFALLBACK, D_FUSE, D_STRIP, D_BPE, D_SEQUENCE };

struct tk_decoder {
    int type;
    char *a, *b;           /* WordPiece prefix; Replace pattern -> b; BPEDecoder suffix */
    int cleanup;           /* WordPiece */
    uint32_t ch;           /* Metaspace replacement; Strip content */
    int prepend_never;     /* Metaspace */
    int64_t start, stop;   /* Strip */
    tk_decoder **items;    /* Sequence */
    size_t n_items;
};

void tk_decoder_free(tk_decoder *d)
{
    if (!d) return;
    for (size_t i = 0; i < d->n_items; i++) tk_decoder_free(d->items[i]);
    free(d->items);
    free(d->a);
    free(d->b);
    free(d);
}

static int one_char(const char *s, uint32_t *out)
{
    tk_cps c = {0};
    int ok = s && !tk_cps_from_cstr(s, &c) && c.n == 1;
    if (ok) *out = c.c[0];
    free(c.c);
    return ok;
}

static int dup_str(const json_t *v, char **out)
{
    *out = strdup(json_string_value(v));
    return *out ? 0 : PEFT_ENOMEM;
}

int tk_decoder_parse(const json_t *j, const char *where, tk_decoder **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!j || json_is_null(j)) return 0;
    const char *type = json_string_value(json_object_get(j, "type"));
    if (!json_is_object(j) || !type)
        return tk_err(err, errlen, PEFT_EFORMAT, "%s: expected an object with a \"type\"", where);
    tk_decoder *d = calloc(1, sizeof *d);
    if (!d) return tk_oom(err, errlen);
    int rc = 0;
    if (!strcmp(type, "ByteLevel")) {
        d->type = D_BYTELEVEL;
    } else if (!strcmp(type, "Metaspace")) {
        d->type = D_METASPACE;
        const char *ps = json_string_value(json_object_get(j, "prepend_scheme"));
        const json_t *aps = json_object_get(j, "add_prefix_space");
        if (!one_char(json_string_value(json_object_get(j, "replacement")), &d->ch))
            rc = tk_err(err, errlen, PEFT_EFORMAT, "%s: Metaspace: \"replacement\" must be one character", where);
        d->prepend_never = ps ? !strcmp(ps, "never") : json_is_false(aps);
    } else if (!strcmp(type, "WordPiece")) {
        d->type = D_WORDPIECE;
        const json_t *p = json_object_get(j, "prefix"), *c = json_object_get(j, "cleanup");
        d->cleanup = json_is_boolean(c) ? json_is_true(c) : 1;
        if (p && !json_is_string(p)) rc = tk_err(err, errlen, PEFT_EFORMAT, "%s: WordPiece: \"prefix\" must be a string", where);
        else if (!(d->a = strdup(p ? json_string_value(p) : "##"))) rc = tk_oom(err, errlen);
    } else if (!strcmp(type, "Replace")) {
        d->type = D_REPLACE;
        const json_t *pat = json_object_get(json_object_get(j, "pattern"), "String"), *c = json_object_get(j, "content");
        if (!json_is_string(pat) || !*json_string_value(pat) || !json_is_string(c))
            rc = tk_err(err, errlen, PEFT_EFORMAT, "%s: Replace: expected {\"pattern\": {\"String\": \"...\"}, \"content\": \"...\"} (regular-expression patterns are not supported)", where);
        else if (dup_str(pat, &d->a) || dup_str(c, &d->b))
            rc = tk_oom(err, errlen);
    } else if (!strcmp(type, "ByteFallback")) {
        d->type = D_BYTEFALLBACK;
    } else if (!strcmp(type, "Fuse")) {
        d->type = D_FUSE;
    } else if (!strcmp(type, "Strip")) {
        d->type = D_STRIP;
        const json_t *s = json_object_get(j, "start"), *e = json_object_get(j, "stop");
        if (!one_char(json_string_value(json_object_get(j, "content")), &d->ch) || !json_is_integer(s) ||
            !json_is_integer(e) || json_integer_value(s) < 0 || json_integer_value(e) < 0)
            rc = tk_err(err, errlen, PEFT_EFORMAT, "%s: Strip: expected \"content\" (one character), \"start\" and \"stop\" (counts)", where);
        else
            d->start = json_integer_value(s), d->stop = json_integer_value(e);
    } else if (!strcmp(type, "BPEDecoder")) {
        d->type = D_BPE;
        const json_t *s = json_object_get(j, "suffix");
        if (!(d->a = strdup(json_is_string(s) ? json_string_value(s) : "</w>"))) rc = tk_oom(err, errlen);
    } else if (!strcmp(type, "Sequence")) {
        d->type = D_SEQUENCE;
        const json_t *list = json_object_get(j, "decoders");
        if (!json_is_array(list)) {
            rc = tk_err(err, errlen, PEFT_EFORMAT, "%s: Sequence: \"decoders\" must be a list", where);
        } else if (json_array_size(list) && !(d->items = calloc(json_array_size(list), sizeof *d->items))) {
            rc = tk_oom(err, errlen);
        } else {
            for (size_t i = 0; i < json_array_size(list) && !rc; i++) {
                char w[256];
                snprintf(w, sizeof w, "%s.decoders[%zu]", where, i);
                rc = tk_decoder_parse(json_array_get(list, i), w, &d->items[d->n_items], err, errlen);
                if (!rc && d->items[d->n_items]) d->n_items++;
            }
        }
    } else {
        rc = tk_err(err, errlen, PEFT_EFORMAT,
                    "%s: decoder type \"%s\" is not supported (supported: ByteLevel, Metaspace, WordPiece, "
                    "Replace, ByteFallback, Fuse, Strip, BPEDecoder, Sequence)", where, type);
    }
    if (rc) {
        tk_decoder_free(d);
        return rc;
    }
    *out = d;
    return 0;
}

/* ---- running the chain: a list of strings in, a new list out ---- */
typedef struct toks { tk_str *v; size_t n, cap; } toks;

static void toks_free(toks *t)
{
    for (size_t i = 0; i < t->n; i++) free(t->v[i].s);
    free(t->v);
    memset(t, 0, sizeof *t);
}

/* appends a new string s[0..n) */
static int toks_add(toks *t, const char *s, size_t n)
{
    if (t->n == t->cap) {
        size_t cap = t->cap ? t->cap * 2 : 16;
        tk_str *v = realloc(t->v, cap * sizeof *v);
        if (!v) return PEFT_ENOMEM;
        t->v = v;
        t->cap = cap;
    }
    memset(&t->v[t->n], 0, sizeof t->v[0]);
    return tk_str_append(&t->v[t->n++], s, n);
}

/* s with every occurrence of pat replaced by with, appended to out */
static int replace_all(const char *s, size_t n, const char *pat, const char *with, tk_str *out)
{
    size_t lp = strlen(pat), lw = strlen(with);
    int rc = tk_str_append(out, "", 0);
    for (size_t i = 0; i < n && !rc;) {
        if (lp && i + lp <= n && !memcmp(s + i, pat, lp)) {
            rc = tk_str_append(out, with, lw);
            i += lp;
        } else {
            rc = tk_str_append(out, s + i, 1);
            i++;
        }
    }
    return rc;
}

static int run(const tk_decoder *d, toks *in, toks *out);

static int bytelevel(const toks *in, toks *out)
{
    tk_str bytes = {0};
    tk_cps cps = {0};
    int rc = tk_str_append(&bytes, "", 0);
    for (size_t i = 0; i < in->n && !rc; i++) {
        const tk_str *t = &in->v[i];
        size_t start = bytes.n;
        tk_cps c = {0};
        rc = tk_utf8_decode(t->s, t->n, &c);
        int all = 1;
        for (size_t k = 0; k < c.n && !rc && all; k++) {
            int b = tk_char_to_byte(c.c[k]);
            if (b < 0) all = 0;
            else {
                char ch = (char)b;
                rc = tk_str_append(&bytes, &ch, 1);
            }
        }
        free(c.c);
        if (!rc && !all) { /* HF: a token with a character outside the map keeps its own bytes */
            bytes.n = start;
            rc = tk_str_append(&bytes, t->s, t->n);
        }
    }
    tk_str text = {0};
    if (!rc) rc = tk_utf8_decode(bytes.s, bytes.n, &cps);
    if (!rc) rc = tk_utf8_from_cps(cps.c, cps.n, &text);
    if (!rc) rc = toks_add(out, text.s, text.n);
    free(bytes.s);
    free(cps.c);
    free(text.s);
    return rc;
}

static int metaspace(const tk_decoder *d, const toks *in, toks *out)
{
    char rep[4];
    size_t lr = tk_utf8_put(d->ch, rep);
    int rc = 0;
    for (size_t i = 0; i < in->n && !rc; i++) {
        tk_str s = {0};
        char r[5];
        memcpy(r, rep, lr);
        r[lr] = 0;
        rc = replace_all(in->v[i].s, in->v[i].n, r, i == 0 && !d->prepend_never ? "" : " ", &s);
        if (!rc) rc = toks_add(out, s.s, s.n);
        free(s.s);
    }
    return rc;
}

static const char *CLEANUP[][2] = {{" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"},
                                   {" n't", "n't"}, {" 'm", "'m"}, {" do not", " don't"}, {" 's", "'s"},
                                   {" 've", "'ve"}, {" 're", "'re"}};

static int wordpiece(const tk_decoder *d, const toks *in, toks *out)
{
    size_t lp = strlen(d->a);
    int rc = 0;
    for (size_t i = 0; i < in->n && !rc; i++) {
        const tk_str *t = &in->v[i];
        tk_str s = {0};
        if (i && t->n >= lp && !memcmp(t->s, d->a, lp)) rc = tk_str_append(&s, t->s + lp, t->n - lp);
        else rc = (i ? tk_str_append(&s, " ", 1) : 0) || tk_str_append(&s, t->s, t->n);
        for (size_t k = 0; d->cleanup && !rc && k < sizeof CLEANUP / sizeof CLEANUP[0]; k++) {
            tk_str r = {0};
            rc = replace_all(s.s, s.n, CLEANUP[k][0], CLEANUP[k][1], &r);
            free(s.s);
            s = r;
        }
        if (!rc) rc = toks_add(out, s.s, s.n);
        free(s.s);
    }
    return rc;
}

/* "<0xNN>" -> NN, or -1 */
static int byte_token(const tk_str *t)
{
    if (t->n != 6 || memcmp(t->s, "<0x", 3) || t->s[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = t->s[i];
        int x = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (x < 0) return -1;
        v = v * 16 + x;
    }
    return v;
}

/* a run of byte tokens: its text if it is valid UTF-8, else one U+FFFD per byte (as HF) */
static int flush_bytes(tk_str *run_, toks *out)
{
    if (!run_->n) return 0;
    tk_cps c = {0};
    tk_str re = {0};
    int rc = tk_utf8_decode(run_->s, run_->n, &c) || tk_utf8_from_cps(c.c, c.n, &re) ? PEFT_ENOMEM : 0;
    int valid = !rc && re.n == run_->n && !memcmp(re.s, run_->s, re.n); /* lossless = valid */
    if (!rc && valid) rc = toks_add(out, run_->s, run_->n);
    for (size_t i = 0; !rc && !valid && i < run_->n; i++) rc = toks_add(out, "\xEF\xBF\xBD", 3);
    free(c.c);
    free(re.s);
    run_->n = 0;
    return rc;
}

static int bytefallback(const toks *in, toks *out)
{
    tk_str bytes = {0};
    int rc = 0;
    for (size_t i = 0; i < in->n && !rc; i++) {
        int b = byte_token(&in->v[i]);
        if (b >= 0) {
            char c = (char)b;
            rc = tk_str_append(&bytes, &c, 1);
        } else {
            rc = flush_bytes(&bytes, out);
            if (!rc) rc = toks_add(out, in->v[i].s, in->v[i].n);
        }
    }
    if (!rc) rc = flush_bytes(&bytes, out);
    free(bytes.s);
    return rc;
}

static int strip(const tk_decoder *d, const toks *in, toks *out)
{
    int rc = 0;
    for (size_t i = 0; i < in->n && !rc; i++) {
        tk_cps c = {0};
        tk_str s = {0};
        rc = tk_utf8_decode(in->v[i].s, in->v[i].n, &c);
        size_t a = 0, e = c.n;
        for (int64_t k = 0; k < d->start && a < c.n && c.c[a] == d->ch; k++) a++;
        for (int64_t k = 0; k < d->stop && e > a && c.c[e - 1] == d->ch; k++) e--;
        static const uint32_t none[1];
        /* an empty token decodes to no code points (c.c NULL): never NULL + 0 */
        if (!rc) rc = tk_utf8_from_cps(c.c ? c.c + a : none, e - a, &s);
        if (!rc) rc = toks_add(out, s.s ? s.s : "", s.n);
        free(c.c);
        free(s.s);
    }
    return rc;
}

static int run(const tk_decoder *d, toks *in, toks *out)
{
    int rc = 0;
    switch (d->type) {
    case D_BYTELEVEL: return bytelevel(in, out);
    case D_METASPACE: return metaspace(d, in, out);
    case D_WORDPIECE: return wordpiece(d, in, out);
    case D_BYTEFALLBACK: return bytefallback(in, out);
    case D_STRIP: return strip(d, in, out);
    case D_REPLACE:
    case D_BPE:
        for (size_t i = 0; i < in->n && !rc; i++) {
            tk_str s = {0};
            const char *with = d->type == D_REPLACE ? d->b : i + 1 == in->n ? "" : " ";
            rc = replace_all(in->v[i].s, in->v[i].n, d->a, with, &s);
            if (!rc) rc = toks_add(out, s.s, s.n);
            free(s.s);
        }
        return rc;
    case D_FUSE: {
        tk_str s = {0};
        rc = tk_str_append(&s, "", 0);
        for (size_t i = 0; i < in->n && !rc; i++) rc = tk_str_append(&s, in->v[i].s, in->v[i].n);
        if (!rc) rc = toks_add(out, s.s, s.n);
        free(s.s);
        return rc;
    }
    case D_SEQUENCE: {
        toks cur = *in, nxt = {0};
        memset(in, 0, sizeof *in); /* cur owns the strings now */
        for (size_t i = 0; i < d->n_items && !rc; i++) {
            rc = run(d->items[i], &cur, &nxt);
            toks_free(&cur);
            cur = nxt;
            memset(&nxt, 0, sizeof nxt);
        }
        for (size_t i = 0; i < cur.n && !rc; i++) rc = toks_add(out, cur.v[i].s, cur.v[i].n);
        toks_free(&cur);
        return rc;
    }
    }
    return 0;
}

int tk_decoder_run(const tk_decoder *d, tk_str *tokens, size_t n, tk_str *out)
{
    toks in = {0}, res = {0};
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) rc = toks_add(&in, tokens[i].s ? tokens[i].s : "", tokens[i].n);
    if (!rc) rc = tk_str_append(out, "", 0);
    if (!rc && !d) { /* no decoder: tokens joined with spaces */
        for (size_t i = 0; i < in.n && !rc; i++) rc = (i ? tk_str_append(out, " ", 1) : 0) || tk_str_append(out, in.v[i].s, in.v[i].n);
    } else if (!rc) {
        rc = run(d, &in, &res);
        for (size_t i = 0; i < res.n && !rc; i++) rc = tk_str_append(out, res.v[i].s, res.v[i].n);
    }
    toks_free(&in);
    toks_free(&res);
    return rc ? PEFT_ENOMEM : 0;
}

int peft_tokenizer_decode(const peft_tokenizer *tk, const int32_t *ids, size_t n, int skip_special_tokens,
                          char **text, size_t *len, char *err, size_t errlen)
{
    *text = NULL;
    if (len) *len = 0;
    if (!tk || (!ids && n)) return tk_err(err, errlen, PEFT_EINVAL, "peft_tokenizer_decode: NULL tokenizer or ids");
    tk_str *tokens = calloc(n ? n : 1, sizeof *tokens);
    if (!tokens) return tk_oom(err, errlen);
    size_t m = 0;
    int rc = 0;
    for (size_t i = 0; i < n && !rc; i++) {
        const char *t = tk_token_of(tk, ids[i], 1);
        if (!t) continue;
        if (skip_special_tokens) {
            int32_t a = tk_strmap_get(&tk->added_map, t, strlen(t));
            if (a >= 0 && tk->added[a].special) continue;
        }
        rc = tk_str_append(&tokens[m++], t, strlen(t));
    }
    tk_str out = {0};
    if (!rc) rc = tk_decoder_run(tk->decoder, tokens, m, &out);
    for (size_t i = 0; i < m; i++) free(tokens[i].s);
    free(tokens);
    if (rc) {
        free(out.s);
        return tk_oom(err, errlen);
    }
    *text = out.s;
    if (len) *len = out.n;
    return 0;
}
