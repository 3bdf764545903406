/* tokenizer_map.c — the tokenizers' hash maps: token string -> id (vocabularies of 30k-250k
 * entries) and (id, id) -> (merge rank, merged id) for BPE merges. Open addressing with linear
 * probing, power-of-two capacity, load factor <= 1/2; FNV-1a and a 64-bit mixer as hashes. A
 * string slot keeps its key's hash, so probing compares bytes only on a hash match and growing
 * never rereads the keys; the keys live in an arena (one malloc per 64 KB, not per token), which
 * callers may point into (the id -> token arrays) until tk_strmap_free. A loader that knows its
 * count reserves the slots once (no rehash on the way up to 256k keys). */
#include <stdlib.h>
#include <string.h>
#include "peft/peft.h"
#include "tokenizers/internal.h"

/* FNV-1a over a[0..la) then b[0..lb) (the hash of their concatenation), finished; the map keeps
 * its high half */
uint32_t tk_strmap_hash(const char *a, size_t la, const char *b, size_t lb)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < la; i++) {
        h ^= (unsigned char)a[i];
        h *= 1099511628211ull;
    }
    for (size_t i = 0; i < lb; i++) {
        h ^= (unsigned char)b[i];
        h *= 1099511628211ull;
    }
    return (uint32_t)((h ^ (h >> 29)) >> 32);
}

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

/* the keys' arena: chunks of at least STR_CHUNK bytes, each key copied once (NUL-terminated) into
 * the newest chunk with room; a vocabulary of 256k tokens is ~40 chunks, not 256k mallocs */
#define STR_CHUNK ((size_t)64 << 10)
struct tk_strchunk { tk_strchunk *prev; size_t used, size; char data[]; };

static const char *str_copy(tk_strmap *m, const char *k, size_t len)
{
    tk_strchunk *c = m->chunks;
    if (!c || c->size - c->used < len + 1) {
        size_t size = len + 1 > STR_CHUNK ? len + 1 : STR_CHUNK;
        tk_strchunk *n = malloc(sizeof *n + size);
        if (!n) return NULL;
        n->prev = c;
        n->used = 0;
        n->size = size;
        m->chunks = c = n;
    }
    char *d = c->data + c->used;
    memcpy(d, k, len);
    d[len] = 0;
    c->used += len + 1;
    return d;
}

/* the slot a key whose stored hash is h starts probing at in cap (a power of two >= 64) slots:
 * the top bits of a Fibonacci product of h alone, so that growing never rereads the key */
static size_t slot_of(uint32_t h, size_t cap)
{
    return (size_t)(((uint64_t)h * 0x9E3779B97F4A7C15ull) >> (64 - __builtin_ctzll(cap)));
}

/* slots[cap]: key NULL = empty; hash = the high half of the key's 64-bit hash, compared before
 * the bytes and (through slot_of) the only thing that picks the slot. Rehashed into cap slots
 * (a power of two >= 64 and > 2 * m->n) */
static int strmap_resize(tk_strmap *m, size_t cap)
{
    tk_strslot *n = calloc(cap, sizeof *n);
    if (!n) return PEFT_ENOMEM;
    for (size_t i = 0; i < m->cap; i++) {
        const tk_strslot *o = &m->slots[i];
        if (!o->key) continue;
        size_t j = slot_of(o->hash, cap);
        while (n[j].key) j = (j + 1) & (cap - 1);
        n[j] = *o;
    }
    free(m->slots);
    m->slots = n;
    m->cap = cap;
    return 0;
}

/* the capacity (a power of two >= 64) that holds n keys at a load factor <= 1/2 */
static size_t cap_for(size_t n)
{
    size_t cap = 64;
    while (cap < 2 * n) cap *= 2;
    return cap;
}

int tk_strmap_reserve(tk_strmap *m, size_t n)
{
    if (n > SIZE_MAX / 4) return PEFT_ENOMEM;
    size_t cap = cap_for(m->n + n);
    return cap > m->cap ? strmap_resize(m, cap) : 0;
}

int tk_strmap_put(tk_strmap *m, const char *k, size_t len, int32_t v, const char **stored)
{
    return tk_strmap_put_h(m, tk_strmap_hash(k, len, NULL, 0), k, len, v, stored);
}

int tk_strmap_put_h(tk_strmap *m, uint32_t h, const char *k, size_t len, int32_t v, const char **stored)
{
    if (len > UINT32_MAX) return PEFT_EINVAL;
    if ((m->n + 1) * 2 > m->cap && strmap_resize(m, m->cap ? m->cap * 2 : 64)) return PEFT_ENOMEM;
    size_t j = slot_of(h, m->cap);
    for (; m->slots[j].key; j = (j + 1) & (m->cap - 1)) {
        tk_strslot *s = &m->slots[j];
        if (s->hash == h && s->len == len && !memcmp(s->key, k, len)) {
            s->val = v;
            if (stored) *stored = s->key;
            return 0;
        }
    }
    const char *c = str_copy(m, k, len);
    if (!c) return PEFT_ENOMEM;
    m->slots[j] = (tk_strslot){c, (uint32_t)len, h, v};
    m->n++;
    if (stored) *stored = c;
    return 0;
}

void tk_strmap_prefetch(const tk_strmap *m, uint32_t h)
{
    if (m->cap) __builtin_prefetch(&m->slots[slot_of(h, m->cap)]);
}

void tk_strmap_prefetch_key(const tk_strmap *m, uint32_t h)
{
    if (!m->cap) return;
    const tk_strslot *s = &m->slots[slot_of(h, m->cap)];
    if (s->key && s->hash == h) __builtin_prefetch(s->key);
}

int32_t tk_strmap_get_h(const tk_strmap *m, uint32_t h, const char *a, size_t la, const char *b, size_t lb)
{
    if (!m->cap) return -1;
    const size_t len = la + lb;
    for (size_t j = slot_of(h, m->cap); m->slots[j].key; j = (j + 1) & (m->cap - 1)) {
        const tk_strslot *s = &m->slots[j];
        if (s->hash == h && s->len == len && !memcmp(s->key, a, la) && (!lb || !memcmp(s->key + la, b, lb)))
            return s->val;
    }
    return -1;
}

int32_t tk_strmap_get(const tk_strmap *m, const char *k, size_t len)
{
    if (!m->cap) return -1; /* an empty map (often the added tokens'): no hash to compute */
    return tk_strmap_get_h(m, tk_strmap_hash(k, len, NULL, 0), k, len, NULL, 0);
}

void tk_strmap_free(tk_strmap *m)
{
    for (tk_strchunk *c = m->chunks, *p; c; c = p) {
        p = c->prev;
        free(c);
    }
    free(m->slots);
    memset(m, 0, sizeof *m);
}

/* pair keys: (a << 32 | b) + 1, so that 0 marks an empty slot */
static uint64_t pair_key(int32_t a, int32_t b)
{
    return (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
}

static int pairmap_resize(tk_pairmap *m, size_t cap)
{
    tk_pairslot *n = calloc(cap, sizeof *n);
    if (!n) return PEFT_ENOMEM;
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->slots[i].key) continue;
        size_t j = mix64(m->slots[i].key) & (cap - 1);
        while (n[j].key) j = (j + 1) & (cap - 1);
        n[j] = m->slots[i];
    }
    free(m->slots);
    m->slots = n;
    m->cap = cap;
    return 0;
}

int tk_pairmap_reserve(tk_pairmap *m, size_t n)
{
    if (n > SIZE_MAX / 4) return PEFT_ENOMEM;
    size_t cap = cap_for(m->n + n);
    return cap > m->cap ? pairmap_resize(m, cap) : 0;
}

void tk_pairmap_prefetch(const tk_pairmap *m, int32_t a, int32_t b)
{
    if (m->cap) __builtin_prefetch(&m->slots[mix64(pair_key(a, b)) & (m->cap - 1)], 1);
}

int tk_pairmap_put(tk_pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t newid)
{
    if ((m->n + 1) * 2 > m->cap && pairmap_resize(m, m->cap ? m->cap * 2 : 64)) return PEFT_ENOMEM;
    uint64_t k = pair_key(a, b);
    size_t j = mix64(k) & (m->cap - 1);
    for (; m->slots[j].key; j = (j + 1) & (m->cap - 1)) {
        if (m->slots[j].key == k) {
            m->slots[j].rank = rank;
            m->slots[j].newid = newid;
            return 0;
        }
    }
    m->slots[j] = (tk_pairslot){k, rank, newid};
    m->n++;
    return 0;
}

int tk_pairmap_get(const tk_pairmap *m, int32_t a, int32_t b, int32_t *rank, int32_t *newid)
{
    if (!m->cap) return 0;
    uint64_t k = pair_key(a, b);
    for (size_t j = mix64(k) & (m->cap - 1); m->slots[j].key; j = (j + 1) & (m->cap - 1)) {
        if (m->slots[j].key == k) {
            *rank = m->slots[j].rank;
            *newid = m->slots[j].newid;
            return 1;
        }
    }
    return 0;
}

void tk_pairmap_free(tk_pairmap *m)
{
    free(m->slots);
    memset(m, 0, sizeof *m);
}
