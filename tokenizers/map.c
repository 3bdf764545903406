/* tokenizer_map.c — the tokenizers' hash maps: token string -> id (vocabularies of 30k-250k
 * entries) and (id, id) -> (merge rank, merged id) for BPE merges. Open addressing with linear
 * probing, power-of-two capacity, load factor <= 1/2; FNV-1a and a 64-bit mixer as hashes. */
#include <stdlib.h>
#include <string.h>
#include "peft/peft.h"
#include "tokenizers/internal.h"

static uint64_t hash_bytes(const char *k, size_t len)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)k[i];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

static uint64_t mix64(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

static int strmap_grow(tk_strmap *m)
{
    size_t cap = m->cap ? m->cap * 2 : 64;
    tk_strmap n = {calloc(cap, sizeof(char *)), calloc(cap, sizeof(uint32_t)),
                   calloc(cap, sizeof(int32_t)), cap, m->n};
    if (!n.keys || !n.lens || !n.vals) {
        free(n.keys);
        free(n.lens);
        free(n.vals);
        return PEFT_ENOMEM;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->keys[i]) continue;
        size_t j = hash_bytes(m->keys[i], m->lens[i]) & (cap - 1);
        while (n.keys[j]) j = (j + 1) & (cap - 1);
        n.keys[j] = m->keys[i];
        n.lens[j] = m->lens[i];
        n.vals[j] = m->vals[i];
    }
    free(m->keys);
    free(m->lens);
    free(m->vals);
    *m = n;
    return 0;
}

int tk_strmap_put(tk_strmap *m, const char *k, size_t len, int32_t v)
{
    if (len > UINT32_MAX) return PEFT_EINVAL;
    if ((m->n + 1) * 2 > m->cap && strmap_grow(m)) return PEFT_ENOMEM;
    size_t j = hash_bytes(k, len) & (m->cap - 1);
    for (; m->keys[j]; j = (j + 1) & (m->cap - 1)) {
        if (m->lens[j] == len && !memcmp(m->keys[j], k, len)) {
            m->vals[j] = v;
            return 0;
        }
    }
    char *c = malloc(len + 1);
    if (!c) return PEFT_ENOMEM;
    memcpy(c, k, len);
    c[len] = 0;
    m->keys[j] = c;
    m->lens[j] = (uint32_t)len;
    m->vals[j] = v;
    m->n++;
    return 0;
}

int32_t tk_strmap_get(const tk_strmap *m, const char *k, size_t len)
{
    if (!m->cap) return -1;
    size_t j = hash_bytes(k, len) & (m->cap - 1);
    for (; m->keys[j]; j = (j + 1) & (m->cap - 1))
        if (m->lens[j] == len && !memcmp(m->keys[j], k, len)) return m->vals[j];
    return -1;
}

void tk_strmap_free(tk_strmap *m)
{
    for (size_t i = 0; i < m->cap; i++) free(m->keys[i]);
    free(m->keys);
    free(m->lens);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

/* pair keys: (a << 32 | b) + 1, so that 0 marks an empty slot */
static uint64_t pair_key(int32_t a, int32_t b)
{
    return (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
}

static int pairmap_grow(tk_pairmap *m)
{
    size_t cap = m->cap ? m->cap * 2 : 64;
    tk_pairmap n = {calloc(cap, sizeof(uint64_t)), calloc(cap, sizeof(int32_t)),
                    calloc(cap, sizeof(int32_t)), cap, m->n};
    if (!n.keys || !n.rank || !n.newid) {
        free(n.keys);
        free(n.rank);
        free(n.newid);
        return PEFT_ENOMEM;
    }
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->keys[i]) continue;
        size_t j = mix64(m->keys[i]) & (cap - 1);
        while (n.keys[j]) j = (j + 1) & (cap - 1);
        n.keys[j] = m->keys[i];
        n.rank[j] = m->rank[i];
        n.newid[j] = m->newid[i];
    }
    free(m->keys);
    free(m->rank);
    free(m->newid);
    *m = n;
    return 0;
}

int tk_pairmap_put(tk_pairmap *m, int32_t a, int32_t b, int32_t rank, int32_t newid)
{
    if ((m->n + 1) * 2 > m->cap && pairmap_grow(m)) return PEFT_ENOMEM;
    uint64_t k = pair_key(a, b);
    size_t j = mix64(k) & (m->cap - 1);
    for (; m->keys[j]; j = (j + 1) & (m->cap - 1)) {
        if (m->keys[j] == k) {
            m->rank[j] = rank;
            m->newid[j] = newid;
            return 0;
        }
    }
    m->keys[j] = k;
    m->rank[j] = rank;
    m->newid[j] = newid;
    m->n++;
    return 0;
}

int tk_pairmap_get(const tk_pairmap *m, int32_t a, int32_t b, int32_t *rank, int32_t *newid)
{
    if (!m->cap) return 0;
    uint64_t k = pair_key(a, b);
    size_t j = mix64(k) & (m->cap - 1);
    for (; m->keys[j]; j = (j + 1) & (m->cap - 1)) {
        if (m->keys[j] == k) {
            *rank = m->rank[j];
            *newid = m->newid[j];
            return 1;
        }
    }
    return 0;
}

void tk_pairmap_free(tk_pairmap *m)
{
    free(m->keys);
    free(m->rank);
    free(m->newid);
    memset(m, 0, sizeof *m);
}
