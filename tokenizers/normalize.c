/* tokenizer_normalize.c — tokenizer.json normalizers: parsing and applying them to code points.
 * BertNormalizer (clean_text: drop NUL, U+FFFD and control characters — categories Cc, Cf, Co,
 * Cs but not \t \n \r — and turn whitespace into ' '; handle_chinese_chars: spaces around CJK
 * ideographs; strip_accents (default: = lowercase): NFD then drop Mn; lowercase: full
 * per-character lowercase, as Rust's char::to_lowercase), Prepend (only on non-empty text),
 * Replace (plain string pattern), Lowercase, NFC / NFD / NFKC / NFKD (utf8proc), StripAccents,
 * Strip, Sequence. */
#include <stdlib.h>
#include <string.h>
#include "peft/peft.h"
#include "tokenizers/internal.h"

enum { N_BERT = 1, N_PREPEND, N_REPLACE, N_LOWER, N_UNORM, N_STRIP_ACCENTS, N_STRIP, N_SEQUENCE, N_PRECOMPILED };

struct tk_normalizer {
    int type;
    int clean_text, chinese, strip_accents, lowercase; /* BertNormalizer */
    tk_cps a, b;                                       /* Prepend text; Replace pattern -> b */
    int left, right;                                   /* Strip */
    int form;                                          /* NFC, NFD, NFKC, NFKD: TK_NF* */
    tk_charsmap *cm;                                   /* Precompiled */
    tk_regex *re;                                      /* Replace with a Regex pattern */
    tk_normalizer **items;                             /* Sequence */
    size_t n_items;
};

void tk_normalizer_free(tk_normalizer *nz)
{
    if (!nz) return;
    for (size_t i = 0; i < nz->n_items; i++) tk_normalizer_free(nz->items[i]);
    free(nz->items);
    tk_charsmap_free(nz->cm);
    tk_regex_free(nz->re);
    free(nz->a.c);
    free(nz->b.c);
    free(nz);
}

static int get_bool(const json_t *j, const char *key, int dflt)
{
    const json_t *v = json_object_get(j, key);
    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

/* a Replace pattern: {"String": "x"} (into out) or {"Regex": "..."} (compiled into *re) */
static int parse_pattern(const json_t *p, const char *where, tk_cps *out, tk_regex **re, char *err, size_t errlen)
{
    const char *s = json_string_value(json_object_get(p, "String"));
    const json_t *rx = json_object_get(p, "Regex");
    if (!s && json_is_string(rx)) {
        char w[300];
        snprintf(w, sizeof w, "%s.pattern", where);
        return tk_regex_compile(json_string_value(rx), json_string_length(rx), 0, w, re, err, errlen);
    }
    if (!s) return tk_err(err, errlen, PEFT_EFORMAT, "%s: pattern: expected {\"String\": \"...\"} or {\"Regex\": \"...\"}", where);
    if (!*s) return tk_err(err, errlen, PEFT_EFORMAT, "%s: pattern: empty string", where);
    return tk_cps_from_cstr(s, out) ? tk_oom(err, errlen) : 0;
}

int tk_normalizer_parse(const json_t *j, const char *where, tk_normalizer **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!j || json_is_null(j)) return 0;
    const char *type = json_string_value(json_object_get(j, "type"));
    if (!json_is_object(j) || !type)
        return tk_err(err, errlen, PEFT_EFORMAT, "%s: expected an object with a \"type\"", where);
    tk_normalizer *nz = calloc(1, sizeof *nz);
    if (!nz) return tk_oom(err, errlen);
    int rc = 0;
    if (!strcmp(type, "BertNormalizer")) {
        nz->type = N_BERT;
        nz->clean_text = get_bool(j, "clean_text", 1);
        nz->chinese = get_bool(j, "handle_chinese_chars", 1);
        nz->lowercase = get_bool(j, "lowercase", 1);
        nz->strip_accents = get_bool(j, "strip_accents", nz->lowercase); /* null: follows lowercase */
    } else if (!strcmp(type, "Prepend")) {
        nz->type = N_PREPEND;
        const char *p = json_string_value(json_object_get(j, "prepend"));
        if (!p) rc = tk_err(err, errlen, PEFT_EFORMAT, "%s: Prepend: \"prepend\" must be a string", where);
        else if (tk_cps_from_cstr(p, &nz->a)) rc = tk_oom(err, errlen);
    } else if (!strcmp(type, "Replace")) {
        nz->type = N_REPLACE;
        const char *c = json_string_value(json_object_get(j, "content"));
        if (!c) rc = tk_err(err, errlen, PEFT_EFORMAT, "%s: Replace: \"content\" must be a string", where);
        else if (!(rc = parse_pattern(json_object_get(j, "pattern"), where, &nz->a, &nz->re, err, errlen)) &&
                 tk_cps_from_cstr(c, &nz->b))
            rc = tk_oom(err, errlen);
    } else if (!strcmp(type, "Precompiled")) {
        nz->type = N_PRECOMPILED;
        const json_t *m = json_object_get(j, "precompiled_charsmap");
        if (!json_is_string(m))
            rc = tk_err(err, errlen, PEFT_EFORMAT, "%s: Precompiled: \"precompiled_charsmap\" must be a base64 string", where);
        else if (json_string_length(m)) /* empty: no rules */
            rc = tk_charsmap_parse(json_string_value(m), json_string_length(m), where, &nz->cm, err, errlen);
    } else if (!strcmp(type, "Lowercase")) {
        nz->type = N_LOWER;
    } else if (!strcmp(type, "NFC") || !strcmp(type, "NFD") || !strcmp(type, "NFKC") || !strcmp(type, "NFKD")) {
        nz->type = N_UNORM;
        nz->form = !strcmp(type, "NFC") ? TK_NFC : !strcmp(type, "NFD") ? TK_NFD : !strcmp(type, "NFKC") ? TK_NFKC : TK_NFKD;
    } else if (!strcmp(type, "StripAccents")) {
        nz->type = N_STRIP_ACCENTS;
    } else if (!strcmp(type, "Strip")) {
        nz->type = N_STRIP;
        nz->left = get_bool(j, "strip_left", 1);
        nz->right = get_bool(j, "strip_right", 1);
    } else if (!strcmp(type, "Sequence")) {
        nz->type = N_SEQUENCE;
        const json_t *list = json_object_get(j, "normalizers");
        if (!json_is_array(list)) {
            rc = tk_err(err, errlen, PEFT_EFORMAT, "%s: Sequence: \"normalizers\" must be a list", where);
        } else if (json_array_size(list) && !(nz->items = calloc(json_array_size(list), sizeof *nz->items))) {
            rc = tk_oom(err, errlen);
        } else {
            for (size_t i = 0; i < json_array_size(list) && !rc; i++) {
                char w[256];
                snprintf(w, sizeof w, "%s.normalizers[%zu]", where, i);
                rc = tk_normalizer_parse(json_array_get(list, i), w, &nz->items[nz->n_items], err, errlen);
                if (!rc && nz->items[nz->n_items]) nz->n_items++;
            }
        }
    } else {
        rc = tk_err(err, errlen, PEFT_EFORMAT,
                    "%s: normalizer type \"%s\" is not supported (supported: BertNormalizer, Prepend, "
                    "Replace, Lowercase, NFC, NFD, NFKC, NFKD, Precompiled, StripAccents, Strip, Sequence)", where, type);
    }
    if (rc) {
        tk_normalizer_free(nz);
        return rc;
    }
    *out = nz;
    return 0;
}

/* BERT's "Chinese character": the CJK ideograph blocks */
static int is_chinese(uint32_t c)
{
    return (c >= 0x4E00 && c <= 0x9FFF) || (c >= 0x3400 && c <= 0x4DBF) || (c >= 0x20000 && c <= 0x2A6DF) ||
           (c >= 0x2A700 && c <= 0x2B73F) || (c >= 0x2B740 && c <= 0x2B81F) || (c >= 0x2B920 && c <= 0x2CEAF) ||
           (c >= 0xF900 && c <= 0xFAFF) || (c >= 0x2F800 && c <= 0x2FA1F);
}

static int is_bert_control(uint32_t c)
{
    if (c == '\t' || c == '\n' || c == '\r') return 0;
    int k = tk_ucat(c);
    return k == TK_Cc || k == TK_Cf || k == TK_Co || k == TK_Cs;
}

/* in -> out (out reset), one step */
static int apply1(const tk_normalizer *nz, const tk_cps *in, tk_cps *out);

static int strip_mn(const tk_cps *in, tk_cps *out)
{
    tk_cps d = {0};
    int rc = tk_nfd(in->c, in->n, &d);
    for (size_t i = 0; !rc && i < d.n; i++)
        if (tk_ucat(d.c[i]) != TK_Mn) rc = tk_cps_push(out, d.c[i]);
    free(d.c);
    return rc;
}

static int bert(const tk_normalizer *nz, const tk_cps *in, tk_cps *out)
{
    tk_cps a = {0}, b = {0};
    int rc = 0;
    for (size_t i = 0; i < in->n && !rc; i++) {
        uint32_t c = in->c[i];
        if (nz->clean_text) {
            if (c == 0 || c == 0xFFFD || is_bert_control(c)) continue;
            if (c == '\t' || c == '\n' || c == '\r' || tk_is_space(c)) c = ' ';
        }
        if (nz->chinese && is_chinese(c))
            rc = tk_cps_push(&a, ' ') || tk_cps_push(&a, c) || tk_cps_push(&a, ' ');
        else
            rc = tk_cps_push(&a, c);
    }
    tk_cps *cur = &a;
    if (!rc && nz->strip_accents) {
        rc = strip_mn(&a, &b);
        cur = &b;
    }
    for (size_t i = 0; i < cur->n && !rc; i++) {
        if (nz->lowercase) rc = tk_lower_append(cur->c[i], out);
        else rc = tk_cps_push(out, cur->c[i]);
    }
    free(a.c);
    free(b.c);
    return rc ? PEFT_ENOMEM : 0;
}

static int replace(const tk_cps *pat, const tk_cps *with, const tk_cps *in, tk_cps *out)
{
    for (size_t i = 0; i < in->n;) {
        if (i + pat->n <= in->n && !memcmp(in->c + i, pat->c, pat->n * sizeof *pat->c)) {
            if (tk_cps_append(out, with->c, with->n)) return PEFT_ENOMEM;
            i += pat->n;
        } else {
            if (tk_cps_push(out, in->c[i])) return PEFT_ENOMEM;
            i++;
        }
    }
    return 0;
}

/* every match of re in `in` replaced by `with` */
static int replace_re(const tk_regex *re, const tk_cps *with, const tk_cps *in, tk_cps *out)
{
    tk_spans sp = {0};
    int rc = tk_regex_split_cps(re, in->c, in->n, &sp);
    for (size_t k = 0; k < sp.n && !rc; k++)
        rc = sp.v[k].match ? tk_cps_append(out, with->c, with->n) : tk_cps_append(out, in->c + sp.v[k].a, sp.v[k].b - sp.v[k].a);
    free(sp.v);
    return rc;
}

static int apply1(const tk_normalizer *nz, const tk_cps *in, tk_cps *out)
{
    out->n = 0;
    switch (nz->type) {
    case N_BERT: return bert(nz, in, out);
    case N_PREPEND:
        if (in->n && tk_cps_append(out, nz->a.c, nz->a.n)) return PEFT_ENOMEM;
        return tk_cps_append(out, in->c, in->n);
    case N_REPLACE: return nz->re ? replace_re(nz->re, &nz->b, in, out) : replace(&nz->a, &nz->b, in, out);
    case N_PRECOMPILED:
        if (!nz->cm) return tk_cps_append(out, in->c, in->n);
        return tk_charsmap_apply(nz->cm, in->c, in->n, out);
    case N_LOWER:
        for (size_t i = 0; i < in->n; i++)
            if (tk_lower_append(in->c[i], out)) return PEFT_ENOMEM;
        return 0;
    case N_UNORM: return tk_unorm(in->c, in->n, nz->form, out);
    case N_STRIP_ACCENTS:
        for (size_t i = 0; i < in->n; i++)
            if (tk_ucat(in->c[i]) != TK_Mn && tk_cps_push(out, in->c[i])) return PEFT_ENOMEM;
        return 0;
    case N_STRIP: {
        size_t s = 0, e = in->n;
        if (nz->left)
            while (s < e && tk_is_space(in->c[s])) s++;
        if (nz->right)
            while (e > s && tk_is_space(in->c[e - 1])) e--;
        return tk_cps_append(out, in->c + s, e - s);
    }
    case N_SEQUENCE: {
        tk_cps cur = {0}, nxt = {0};
        int rc = tk_cps_append(&cur, in->c, in->n);
        for (size_t i = 0; i < nz->n_items && !rc; i++) {
            rc = apply1(nz->items[i], &cur, &nxt);
            tk_cps t = cur;
            cur = nxt;
            nxt = t;
        }
        if (!rc) rc = tk_cps_append(out, cur.c, cur.n);
        free(cur.c);
        free(nxt.c);
        return rc;
    }
    }
    return tk_cps_append(out, in->c, in->n);
}

int tk_normalize(const tk_normalizer *nz, const tk_cps *in, tk_cps *out)
{
    if (!nz) {
        out->n = 0;
        return tk_cps_append(out, in->c, in->n);
    }
    return apply1(nz, in, out);
}
