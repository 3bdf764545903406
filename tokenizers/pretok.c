/* pretok.c — tokenizer.json pre-tokenizers: split normalized text into the words the model
 * sees. ByteLevel (GPT-2: an optional leading space, GPT-2's regex
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * through PCRE2, then every UTF-8 byte mapped to GPT-2's printable character),
 * Split (a {"String"} or {"Regex"} pattern through PCRE2 — Llama-3's, Qwen's, DeepSeek's —
 * with HF's behaviors Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous and
 * invert), Metaspace (' ' -> '▁', prepend_scheme always/first/never, split before each '▁'),
 * BertPreTokenizer (split on whitespace, each punctuation character alone), WhitespaceSplit,
 * Whitespace (\w+|[^\w\s]+), Digits (individual_digits or runs), Punctuation (isolated),
 * Sequence. Empty words are dropped, as HF does. */
#include <stdlib.h>
#include <string.h>
#include "peft/peft.h"
#include "tokenizers/internal.h"

enum { P_BYTELEVEL = 1, P_METASPACE, P_BERT, P_WSPLIT, P_SEQUENCE, P_SPLIT, P_WHITESPACE, P_DIGITS,
       P_PUNCT };
enum { PREPEND_ALWAYS, PREPEND_FIRST, PREPEND_NEVER };
enum { B_REMOVED, B_ISOLATED, B_MERGED_PREV, B_MERGED_NEXT, B_CONTIGUOUS };

static const char GPT2_PATTERN[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

struct tk_pretok {
    int type;
    tk_regex *re;                    /* ByteLevel (use_regex), Split */
    int behavior, invert;            /* Split, Digits (individual), Punctuation */
    int add_prefix_space, use_regex; /* ByteLevel */
    uint32_t replacement;            /* Metaspace */
    int prepend_scheme, split;
    tk_pretok **items;               /* Sequence */
    size_t n_items;
};

/* ---- GPT-2's byte <-> unicode map ---- */
static int byte_printable(int b)
{
    return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

uint32_t tk_byte_to_char(uint8_t b)
{
    if (byte_printable(b)) return b;
    uint32_t n = 0; /* the n-th non-printable byte maps to 256 + n */
    for (int i = 0; i < b; i++)
        if (!byte_printable(i)) n++;
    return 256 + n;
}

int tk_char_to_byte(uint32_t c)
{
    if (c < 256) return byte_printable((int)c) ? (int)c : -1;
    if (c >= 256 + 68) return -1;
    uint32_t n = c - 256;
    for (int i = 0; i < 256; i++)
        if (!byte_printable(i) && n-- == 0) return i;
    return -1;
}

void tk_pretok_free(tk_pretok *pt)
{
    if (!pt) return;
    for (size_t i = 0; i < pt->n_items; i++) tk_pretok_free(pt->items[i]);
    free(pt->items);
    tk_regex_free(pt->re);
    free(pt);
}

static int get_bool(const json_t *j, const char *key, int dflt)
{
    const json_t *v = json_object_get(j, key);
    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

static int parse_behavior(const char *b)
{
    static const char *names[] = {"Removed", "Isolated", "MergedWithPrevious", "MergedWithNext", "Contiguous"};
    for (int i = 0; i < 5; i++)
        if (!strcmp(b, names[i])) return i;
    return -1;
}

/* {"type": "Split", "pattern": {"String"|"Regex": ...}, "behavior": ..., "invert": bool} */
static int parse_split(const json_t *j, const char *where, tk_pretok *pt, char *err, size_t errlen)
{
    const json_t *p = json_object_get(j, "pattern");
    const json_t *str = json_object_get(p, "String"), *rx = json_object_get(p, "Regex");
    if (!json_is_string(str) && !json_is_string(rx))
        return tk_err(err, errlen, PEFT_EFORMAT, "%s: Split: \"pattern\" must be {\"String\": ...} or {\"Regex\": ...}", where);
    const char *b = json_string_value(json_object_get(j, "behavior"));
    if (!b || (pt->behavior = parse_behavior(b)) < 0)
        return tk_err(err, errlen, PEFT_EFORMAT,
                      "%s: Split: \"behavior\" \"%s\": expected Removed, Isolated, MergedWithPrevious, "
                      "MergedWithNext or Contiguous", where, b ? b : "(missing)");
    pt->invert = get_bool(j, "invert", 0);
    const json_t *v = str ? str : rx;
    char w[300];
    snprintf(w, sizeof w, "%s.pattern", where);
    if (str && !json_string_length(str)) return 0; /* an empty String never matches: re stays NULL */
    return tk_regex_compile(json_string_value(v), json_string_length(v), str != NULL, w, &pt->re, err, errlen);
}

int tk_pretok_parse(const json_t *j, const char *where, tk_pretok **out, char *err, size_t errlen)
{
    *out = NULL;
    if (!j || json_is_null(j)) return 0;
    const char *type = json_string_value(json_object_get(j, "type"));
    if (!json_is_object(j) || !type)
        return tk_err(err, errlen, PEFT_EFORMAT, "%s: expected an object with a \"type\"", where);
    tk_pretok *pt = calloc(1, sizeof *pt);
    if (!pt) return tk_oom(err, errlen);
    int rc = 0;
    if (!strcmp(type, "ByteLevel")) {
        pt->type = P_BYTELEVEL;
        pt->add_prefix_space = get_bool(j, "add_prefix_space", 1);
        pt->use_regex = get_bool(j, "use_regex", 1);
        if (pt->use_regex) rc = tk_regex_compile(GPT2_PATTERN, strlen(GPT2_PATTERN), 0, where, &pt->re, err, errlen);
    } else if (!strcmp(type, "Split")) {
        pt->type = P_SPLIT;
        rc = parse_split(j, where, pt, err, errlen);
    } else if (!strcmp(type, "Whitespace")) {
        pt->type = P_WHITESPACE;
        static const char ws[] = "\\w+|[^\\w\\s]+";
        rc = tk_regex_compile(ws, strlen(ws), 0, where, &pt->re, err, errlen);
    } else if (!strcmp(type, "Digits")) {
        pt->type = P_DIGITS;
        pt->invert = get_bool(j, "individual_digits", 0);
    } else if (!strcmp(type, "Punctuation")) {
        pt->type = P_PUNCT;
        const char *b = json_string_value(json_object_get(j, "behavior"));
        pt->behavior = B_ISOLATED;
        if (b && (pt->behavior = parse_behavior(b)) < 0)
            rc = tk_err(err, errlen, PEFT_EFORMAT, "%s: Punctuation: unknown behavior \"%s\"", where, b);
    } else if (!strcmp(type, "Metaspace")) {
        pt->type = P_METASPACE;
        const char *r = json_string_value(json_object_get(j, "replacement"));
        tk_cps rc_ = {0};
        if (!r || tk_cps_from_cstr(r, &rc_) || rc_.n != 1) {
            rc = tk_err(err, errlen, PEFT_EFORMAT, "%s: Metaspace: \"replacement\" must be one character", where);
        } else {
            pt->replacement = rc_.c[0];
            pt->split = get_bool(j, "split", 1);
            const char *ps = json_string_value(json_object_get(j, "prepend_scheme"));
            if (!ps) /* older files: add_prefix_space */
                pt->prepend_scheme = get_bool(j, "add_prefix_space", 1) ? PREPEND_ALWAYS : PREPEND_NEVER;
            else if (!strcmp(ps, "always")) pt->prepend_scheme = PREPEND_ALWAYS;
            else if (!strcmp(ps, "first")) pt->prepend_scheme = PREPEND_FIRST;
            else if (!strcmp(ps, "never")) pt->prepend_scheme = PREPEND_NEVER;
            else rc = tk_err(err, errlen, PEFT_EFORMAT, "%s: Metaspace: prepend_scheme \"%s\": expected always, first or never", where, ps);
        }
        free(rc_.c);
    } else if (!strcmp(type, "BertPreTokenizer")) {
        pt->type = P_BERT;
    } else if (!strcmp(type, "WhitespaceSplit")) {
        pt->type = P_WSPLIT;
    } else if (!strcmp(type, "Sequence")) {
        pt->type = P_SEQUENCE;
        const json_t *list = json_object_get(j, "pretokenizers");
        if (!json_is_array(list)) {
            rc = tk_err(err, errlen, PEFT_EFORMAT, "%s: Sequence: \"pretokenizers\" must be a list", where);
        } else if (json_array_size(list) && !(pt->items = calloc(json_array_size(list), sizeof *pt->items))) {
            rc = tk_oom(err, errlen);
        } else {
            for (size_t i = 0; i < json_array_size(list) && !rc; i++) {
                char w[256];
                snprintf(w, sizeof w, "%s.pretokenizers[%zu]", where, i);
                rc = tk_pretok_parse(json_array_get(list, i), w, &pt->items[pt->n_items], err, errlen);
                if (!rc && pt->items[pt->n_items]) pt->n_items++;
            }
        }
    } else {
        rc = tk_err(err, errlen, PEFT_EFORMAT,
                    "%s: pre-tokenizer type \"%s\" is not supported (supported: ByteLevel, Split, Metaspace, "
                    "BertPreTokenizer, WhitespaceSplit, Whitespace, Digits, Punctuation, Sequence)", where, type);
    }
    if (rc) {
        tk_pretok_free(pt);
        return rc;
    }
    *out = pt;
    return 0;
}

/* HF's split with a behavior: spans (matches and the text between, in order) -> words */
static int split_spans(const tk_spans *sp, int behavior, int invert, const tk_piece *in, tk_pieces *out)
{
    const uint32_t *c = in->t.c;
    size_t n = sp->n, k = 0;
    int rc = 0;
    tk_span *w = malloc((n ? n : 1) * sizeof *w); /* the words: a, b, and match = removed */
    if (!w) return PEFT_ENOMEM;
    size_t nw = 0;
    if (behavior == B_MERGED_NEXT) { /* walk backwards */
        int prev = 0;
        for (size_t i = n; i-- > 0;) {
            int m = sp->v[i].match != invert;
            if (m && !prev && nw) w[nw - 1].a = sp->v[i].a;
            else w[nw++] = (tk_span){sp->v[i].a, sp->v[i].b, 0};
            prev = m;
        }
        for (size_t i = 0; i < nw / 2; i++) {
            tk_span t = w[i];
            w[i] = w[nw - 1 - i];
            w[nw - 1 - i] = t;
        }
    } else {
        int prev = 0;
        for (size_t i = 0; i < n; i++) {
            int m = sp->v[i].match != invert;
            tk_span s = {sp->v[i].a, sp->v[i].b, 0};
            if (behavior == B_REMOVED) s.match = m;
            if ((behavior == B_MERGED_PREV && m && !prev && nw) || (behavior == B_CONTIGUOUS && m == prev && nw))
                w[nw - 1].b = s.b;
            else
                w[nw++] = s;
            prev = m;
        }
    }
    for (k = 0; k < nw && !rc; k++)
        if (!w[k].match && w[k].b > w[k].a)
            rc = tk_pieces_push(out, c + w[k].a, w[k].b - w[k].a, -1, in->at_start && w[k].a == 0);
    free(w);
    return rc;
}

static int regex_split(const tk_regex *re, int behavior, int invert, const tk_piece *in, tk_pieces *out)
{
    tk_spans sp = {0};
    int rc = re ? tk_regex_split_cps(re, in->t.c, in->t.n, &sp) : tk_spans_push(&sp, 0, in->t.n, 0);
    if (!rc) rc = split_spans(&sp, behavior, invert, in, out);
    free(sp.v);
    return rc;
}

/* a span per run of characters of one kind (keep(c) != 0: digits / punctuation), the rest between */
static int class_split(int (*is)(uint32_t), int each, int behavior, const tk_piece *in, tk_pieces *out)
{
    tk_spans sp = {0};
    const uint32_t *c = in->t.c;
    size_t n = in->t.n, i = 0;
    int rc = 0;
    while (i < n && !rc) {
        size_t j = i;
        int m = is(c[i]);
        if (m && each) j = i + 1;
        else
            while (j < n && !is(c[j]) == !m) j++;
        rc = tk_spans_push(&sp, i, j, m);
        i = j;
    }
    if (!rc) rc = split_spans(&sp, behavior, 0, in, out);
    free(sp.v);
    return rc;
}

static int is_digit_cp(uint32_t c) { return tk_is_number(c); } /* Rust's char::is_numeric */
static int is_punct_cp(uint32_t c);

/* bytes of c[0..n) as GPT-2 characters, appended to out as a new word */
static int bytelevel_word(const uint32_t *c, size_t n, int at_start, tk_pieces *out)
{
    tk_cps w = {0};
    for (size_t i = 0; i < n; i++) {
        char u[4];
        size_t k = tk_utf8_put(c[i], u);
        for (size_t b = 0; b < k; b++)
            if (tk_cps_push(&w, tk_byte_to_char((uint8_t)u[b]))) {
                free(w.c);
                return PEFT_ENOMEM;
            }
    }
    int rc = w.n ? tk_pieces_push(out, w.c, w.n, -1, at_start) : 0;
    free(w.c);
    return rc;
}

static int bytelevel(const tk_pretok *pt, const tk_piece *in, tk_pieces *out)
{
    tk_cps t = {0};
    int rc = 0;
    if (pt->add_prefix_space && (!in->t.n || in->t.c[0] != ' ')) rc = tk_cps_push(&t, ' ');
    if (!rc) rc = tk_cps_append(&t, in->t.c, in->t.n);
    if (!pt->use_regex) {
        if (!rc) rc = bytelevel_word(t.c, t.n, in->at_start, out);
    } else {
        tk_spans sp = {0};
        rc = tk_regex_split_cps(pt->re, t.c, t.n, &sp);
        for (size_t k = 0; k < sp.n && !rc; k++) /* Isolated: every span is a word */
            rc = bytelevel_word(t.c + sp.v[k].a, sp.v[k].b - sp.v[k].a, in->at_start && sp.v[k].a == 0, out);
        free(sp.v);
    }
    free(t.c);
    return rc;
}

static int metaspace(const tk_pretok *pt, const tk_piece *in, tk_pieces *out)
{
    tk_cps t = {0};
    int rc = 0;
    int starts = in->t.n && (in->t.c[0] == ' ' || in->t.c[0] == pt->replacement);
    if (!starts && (pt->prepend_scheme == PREPEND_ALWAYS || (pt->prepend_scheme == PREPEND_FIRST && in->at_start)))
        rc = tk_cps_push(&t, pt->replacement);
    for (size_t i = 0; i < in->t.n && !rc; i++) rc = tk_cps_push(&t, in->t.c[i] == ' ' ? pt->replacement : in->t.c[i]);
    if (!rc && !pt->split) {
        if (t.n) rc = tk_pieces_push(out, t.c, t.n, -1, in->at_start);
    } else {
        size_t s = 0;
        for (size_t i = 1; i <= t.n && !rc; i++) {
            if (i == t.n || t.c[i] == pt->replacement) {
                rc = tk_pieces_push(out, t.c + s, i - s, -1, in->at_start && s == 0);
                s = i;
            }
        }
    }
    free(t.c);
    return rc;
}

static int is_bert_punct(uint32_t c)
{
    if (c < 128) return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126);
    return tk_is_punct(c);
}

static int is_punct_cp(uint32_t c) { return is_bert_punct(c); }

/* split on whitespace (dropped); with punct, each punctuation character is a word of its own */
static int ws_split(const tk_piece *in, int punct, tk_pieces *out)
{
    const uint32_t *c = in->t.c;
    size_t s = 0;
    int rc = 0;
    for (size_t i = 0; i <= in->t.n && !rc; i++) {
        int end = i == in->t.n || tk_is_space(c[i]);
        int p = !end && punct && is_bert_punct(c[i]);
        if (end || p) {
            if (i > s) rc = tk_pieces_push(out, c + s, i - s, -1, in->at_start && s == 0);
            if (!rc && p) rc = tk_pieces_push(out, c + i, 1, -1, in->at_start && i == 0);
            s = i + 1;
        }
    }
    return rc;
}

static int apply1(const tk_pretok *pt, const tk_piece *in, tk_pieces *out)
{
    switch (pt->type) {
    case P_BYTELEVEL: return bytelevel(pt, in, out);
    case P_METASPACE: return metaspace(pt, in, out);
    case P_BERT: return ws_split(in, 1, out);
    case P_WSPLIT: return ws_split(in, 0, out);
    case P_SPLIT: return regex_split(pt->re, pt->behavior, pt->invert, in, out);
    case P_WHITESPACE: return regex_split(pt->re, B_REMOVED, 1, in, out);
    case P_DIGITS: return class_split(is_digit_cp, pt->invert, B_ISOLATED, in, out);
    case P_PUNCT: return class_split(is_punct_cp, 1, pt->behavior, in, out);
    case P_SEQUENCE: {
        tk_pieces cur = {0}, nxt = {0};
        int rc = tk_pieces_push(&cur, in->t.c, in->t.n, -1, in->at_start);
        for (size_t k = 0; k < pt->n_items && !rc; k++) {
            for (size_t i = 0; i < cur.n && !rc; i++) rc = apply1(pt->items[k], &cur.p[i], &nxt);
            tk_pieces_free(&cur);
            cur = nxt;
            memset(&nxt, 0, sizeof nxt);
        }
        for (size_t i = 0; i < cur.n && !rc; i++)
            if (cur.p[i].t.n) rc = tk_pieces_push(out, cur.p[i].t.c, cur.p[i].t.n, -1, cur.p[i].at_start);
        tk_pieces_free(&cur);
        tk_pieces_free(&nxt);
        return rc;
    }
    }
    return 0;
}

int tk_pretokenize(const tk_pretok *pt, const tk_piece *in, tk_pieces *out)
{
    if (!in->t.n) return 0;
    if (!pt) return tk_pieces_push(out, in->t.c, in->t.n, -1, in->at_start);
    return apply1(pt, in, out);
}
