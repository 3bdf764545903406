/* tokenizer_bpe.c — the BPE model of tokenizer.json: vocabulary + ranked merges, and one word's
 * encoding as HF's tokenizers does it: one symbol per character (continuing_subword_prefix on
 * all but the first, end_of_word_suffix on the last; a character missing from the vocabulary
 * becomes its <0xNN> byte tokens with byte_fallback, else unk_token, consecutive unks fused with
 * fuse_unk), then repeatedly the lowest-ranked adjacent pair is merged (leftmost first on ties),
 * using a binary heap of candidate pairs: O(n log n) per word. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "peft/peft.h"
#include "tokenizers/internal.h"

/* an optional string field: NULL when absent, null or "" */
static int opt_str(const json_t *j, const char *key, const char *where, char **out, char *err, size_t errlen)
{
    const json_t *v = json_object_get(j, key);
    *out = NULL;
    if (!v || json_is_null(v)) return 0;
    if (!json_is_string(v)) return tk_err(err, errlen, PEFT_EFORMAT, "%s: model.%s: expected a string or null", where, key);
    if (!*json_string_value(v)) return 0;
    return (*out = strdup(json_string_value(v))) ? 0 : tk_oom(err, errlen);
}

static int get_bool(const json_t *j, const char *key, int dflt)
{
    const json_t *v = json_object_get(j, key);
    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

/* one merge's tokens a[0..la), b[0..lb) (no NUL inside), the part of b that the merged token
 * takes (HF: a + b[prefix_len..]), their hashes and, once looked up, their ids */
typedef struct merge {
    const char *a, *b;
    size_t la, lb, cut;
    uint32_t ha, hb, hab;
    int32_t ia, ib, iab;
} merge;

/* one merge: "a b" (older files) or ["a", "b"] */
static int merge_tokens(const json_t *mj, const char *where, size_t rank, merge *p, char *err, size_t errlen)
{
    if (json_is_string(mj)) {
        const char *s = json_string_value(mj);
        const char *sp = strchr(s, ' ');
        if (!sp || sp == s || !sp[1] || strchr(sp + 1, ' '))
            return tk_err(err, errlen, PEFT_EFORMAT, "%s: model.merges[%zu] \"%.60s\": expected two tokens separated by one space", where, rank, s);
        p->a = s;
        p->la = (size_t)(sp - s);
        p->b = sp + 1;
        p->lb = strlen(p->b);
    } else if (json_is_array(mj) && json_array_size(mj) == 2 && json_is_string(json_array_get(mj, 0)) &&
               json_is_string(json_array_get(mj, 1))) {
        p->a = json_string_value(json_array_get(mj, 0));
        p->b = json_string_value(json_array_get(mj, 1));
        p->la = strlen(p->a);
        p->lb = strlen(p->b);
    } else {
        return tk_err(err, errlen, PEFT_EFORMAT, "%s: model.merges[%zu]: expected \"a b\" or [\"a\", \"b\"]", where, rank);
    }
    return 0;
}

/* the merges in blocks of MERGE_BLOCK: the tokens and hashes of the whole block first, the map
 * slots and keys its lookups will touch fetched into the cache, then the lookups and the stores in
 * order (the first bad merge is the error, as one at a time): a 256k vocabulary's map does not fit
 * the cache, and a miss per lookup, three lookups a merge, was a third of Gemma2's load */
#define MERGE_BLOCK 32
static int parse_merges(const json_t *merges, const char *where, tk_model *m, char *err, size_t errlen)
{
    const size_t n = json_array_size(merges), prefix = m->cont_prefix ? strlen(m->cont_prefix) : 0;
    if (tk_pairmap_reserve(&m->merges, n)) return tk_oom(err, errlen);
    merge p[MERGE_BLOCK];
    for (size_t base = 0; base < n; base += MERGE_BLOCK) {
        size_t k = n - base < MERGE_BLOCK ? n - base : MERGE_BLOCK;
        int bad = 0; /* a malformed merge at base + k: reported after the lookups before it */
        for (size_t i = 0; i < k; i++) {
            merge *q = &p[i];
            if ((bad = merge_tokens(json_array_get(merges, base + i), where, base + i, q, err, errlen))) {
                k = i;
                break;
            }
            q->cut = prefix < q->lb ? prefix : q->lb;
            q->ha = tk_strmap_hash(q->a, q->la, NULL, 0);
            q->hb = tk_strmap_hash(q->b, q->lb, NULL, 0);
            q->hab = tk_strmap_hash(q->a, q->la, q->b + q->cut, q->lb - q->cut);
            tk_strmap_prefetch(&m->vocab, q->ha);
            tk_strmap_prefetch(&m->vocab, q->hb);
            tk_strmap_prefetch(&m->vocab, q->hab);
        }
        for (size_t i = 0; i < k; i++) {
            tk_strmap_prefetch_key(&m->vocab, p[i].ha);
            tk_strmap_prefetch_key(&m->vocab, p[i].hb);
            tk_strmap_prefetch_key(&m->vocab, p[i].hab);
        }
        for (size_t i = 0; i < k; i++) {
            merge *q = &p[i];
            const size_t rank = base + i, lab = q->lb - q->cut;
            q->ia = tk_strmap_get_h(&m->vocab, q->ha, q->a, q->la, NULL, 0);
            q->ib = tk_strmap_get_h(&m->vocab, q->hb, q->b, q->lb, NULL, 0);
            if (q->ia < 0 || q->ib < 0)
                return tk_err(err, errlen, PEFT_EFORMAT, "%s: model.merges[%zu]: token \"%.*s\" is not in the vocabulary",
                              where, rank, q->ia < 0 ? (int)q->la : (int)q->lb, q->ia < 0 ? q->a : q->b);
            q->iab = tk_strmap_get_h(&m->vocab, q->hab, q->a, q->la, q->b + q->cut, lab);
            if (q->iab < 0) { /* the merged token's first 60 bytes */
                const int sa = q->la < 60 ? (int)q->la : 60, sb = lab < (size_t)(60 - sa) ? (int)lab : 60 - sa;
                return tk_err(err, errlen, PEFT_EFORMAT,
                              "%s: model.merges[%zu]: the merged token \"%.*s%.*s\" is not in the vocabulary", where,
                              rank, sa, q->a, sb, q->b + q->cut);
            }
            tk_pairmap_prefetch(&m->merges, q->ia, q->ib);
        }
        for (size_t i = 0; i < k; i++)
            if (tk_pairmap_put(&m->merges, p[i].ia, p[i].ib, (int32_t)(base + i), p[i].iab)) return tk_oom(err, errlen);
        if (bad) return bad;
    }
    return 0;
}

int tk_bpe_parse(const json_t *j, const char *where, tk_model *m, char *err, size_t errlen)
{
    m->type = TK_MODEL_BPE;
    m->unk_id = -1;
    const json_t *dropout = json_object_get(j, "dropout");
    if (dropout && !json_is_null(dropout) && !(json_is_number(dropout) && json_number_value(dropout) == 0))
        return tk_err(err, errlen, PEFT_EFORMAT, "%s: model.dropout: BPE dropout is not supported (expected null)", where);
    int rc;
    if ((rc = tk_model_parse_vocab(json_object_get(j, "vocab"), where, m, err, errlen))) return rc;
    if ((rc = opt_str(j, "unk_token", where, &m->unk_token, err, errlen)) ||
        (rc = opt_str(j, "continuing_subword_prefix", where, &m->cont_prefix, err, errlen)) ||
        (rc = opt_str(j, "end_of_word_suffix", where, &m->eow_suffix, err, errlen)))
        return rc;
    if (m->unk_token) m->unk_id = tk_strmap_get(&m->vocab, m->unk_token, strlen(m->unk_token));
    m->fuse_unk = get_bool(j, "fuse_unk", 0);
    m->byte_fallback = get_bool(j, "byte_fallback", 0);
    m->ignore_merges = get_bool(j, "ignore_merges", 0);
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof name, "<0x%02X>", b);
        m->byte_ids[b] = tk_strmap_get(&m->vocab, name, 6);
    }
    const json_t *merges = json_object_get(j, "merges");
    if (!json_is_array(merges)) return tk_err(err, errlen, PEFT_EFORMAT, "%s: model.merges: expected a list", where);
    return parse_merges(merges, where, m, err, errlen);
}

/* ---- one word ---- */
typedef struct sym { int32_t id; int32_t prev, next; int dead; } sym;
typedef struct cand { int32_t rank, pos, newid; } cand;

static int cand_less(const cand *a, const cand *b)
{
    return a->rank != b->rank ? a->rank < b->rank : a->pos < b->pos;
}

typedef struct heap { cand *v; size_t n, cap; } heap;

static int heap_push(heap *h, cand c)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 32;
        cand *v = realloc(h->v, cap * sizeof *v);
        if (!v) return PEFT_ENOMEM;
        h->v = v;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i && cand_less(&c, &h->v[(i - 1) / 2])) {
        h->v[i] = h->v[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h->v[i] = c;
    return 0;
}

static cand heap_pop(heap *h)
{
    cand top = h->v[0], last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const cand *best = &last;
        if (l < h->n && cand_less(&h->v[l], best)) m = l, best = &h->v[l];
        if (r < h->n && cand_less(&h->v[r], best)) m = r;
        if (m == i) break;
        h->v[i] = h->v[m];
        i = m;
    }
    if (h->n) h->v[i] = last;
    return top;
}

typedef struct symbols { sym *v; size_t n, cap; } symbols;

static int sym_add(symbols *s, int32_t id)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 32;
        sym *v = realloc(s->v, cap * sizeof *v);
        if (!v) return PEFT_ENOMEM;
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n] = (sym){id, (int32_t)s->n - 1, (int32_t)s->n + 1, 0};
    s->n++;
    return 0;
}

/* the initial symbols of w; pending unk handled as HF's merge_word */
static int initial_symbols(const tk_model *m, const char *w, size_t len, symbols *s)
{
    size_t lp = m->cont_prefix ? strlen(m->cont_prefix) : 0, ls = m->eow_suffix ? strlen(m->eow_suffix) : 0;
    char stack[64];
    int32_t unk = -1; /* a pending unk symbol */
    for (size_t i = 0; i < len;) {
        size_t cl = tk_utf8_len(w + i, len - i);
        int first = i == 0, last = i + cl == len;
        size_t n = cl + (first ? 0 : lp) + (last ? ls : 0);
        char *buf = n <= sizeof stack ? stack : malloc(n);
        if (!buf) return PEFT_ENOMEM;
        size_t k = 0;
        if (!first && lp) memcpy(buf, m->cont_prefix, lp), k = lp;
        memcpy(buf + k, w + i, cl);
        k += cl;
        if (last && ls) memcpy(buf + k, m->eow_suffix, ls);
        int32_t id = tk_strmap_get(&m->vocab, buf, n);
        int rc = 0;
        if (id >= 0) {
            if (unk >= 0) rc = sym_add(s, unk);
            unk = -1;
            if (!rc) rc = sym_add(s, id);
        } else {
            int bytes_ok = m->byte_fallback;
            for (size_t b = 0; b < n && bytes_ok; b++) bytes_ok = m->byte_ids[(unsigned char)buf[b]] >= 0;
            if (bytes_ok) {
                for (size_t b = 0; b < n && !rc; b++) rc = sym_add(s, m->byte_ids[(unsigned char)buf[b]]);
            } else if (m->unk_token) {
                if (m->unk_id < 0) rc = PEFT_EINVAL;
                else if (unk >= 0 && !m->fuse_unk) rc = sym_add(s, unk);
                unk = m->unk_id;
            }
        }
        if (buf != stack) free(buf);
        if (rc) return rc;
        i += cl;
    }
    return unk >= 0 ? sym_add(s, unk) : 0;
}

int tk_bpe_word(const tk_model *m, const char *w, size_t len, tk_ids *out)
{
    if (!len) return 0;
    if (m->ignore_merges) {
        int32_t id = tk_strmap_get(&m->vocab, w, len);
        if (id >= 0) return tk_ids_push(out, id);
    }
    symbols s = {0};
    heap h = {0};
    int rc = initial_symbols(m, w, len, &s);
    for (size_t i = 0; !rc && i + 1 < s.n; i++) {
        cand c = {0, (int32_t)i, 0};
        if (tk_pairmap_get(&m->merges, s.v[i].id, s.v[i + 1].id, &c.rank, &c.newid)) rc = heap_push(&h, c);
    }
    if (s.n) s.v[s.n - 1].next = -1;
    while (!rc && h.n) {
        cand top = heap_pop(&h);
        sym *a = &s.v[top.pos];
        if (a->dead || a->next < 0) continue;
        sym *b = &s.v[a->next];
        int32_t rank, newid;
        if (!tk_pairmap_get(&m->merges, a->id, b->id, &rank, &newid) || newid != top.newid) continue; /* stale */
        a->id = newid;
        b->dead = 1;
        a->next = b->next;
        if (b->next >= 0) s.v[b->next].prev = top.pos;
        if (a->prev >= 0) {
            cand c = {0, a->prev, 0};
            if (tk_pairmap_get(&m->merges, s.v[a->prev].id, a->id, &c.rank, &c.newid)) rc = heap_push(&h, c);
        }
        if (!rc && a->next >= 0) {
            cand c = {0, top.pos, 0};
            if (tk_pairmap_get(&m->merges, a->id, s.v[a->next].id, &c.rank, &c.newid)) rc = heap_push(&h, c);
        }
    }
    for (size_t i = 0; !rc && i < s.n; i++)
        if (!s.v[i].dead) rc = tk_ids_push(out, s.v[i].id);
    free(s.v);
    free(h.v);
    return rc;
}
