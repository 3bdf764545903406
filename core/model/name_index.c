/* name_index.c — open-addressing hash (FNV-1a, linear probing, load <= 1/2) from a borrowed
 * name to an array position: the base model's parameter and site lookups in O(1). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "core/model/name_index.h"

static uint64_t hash_name(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

/* slot of key (hash h) in slots (cap a power of two): its own, or the empty one where it would
 * go; the stored hash is compared first, so a probe reads a string only when it is a match */
static size_t probe(const peft_name_slot *slots, size_t cap, const char *key, uint64_t h)
{
    size_t i = (size_t)h & (cap - 1);
    while (slots[i].key && (slots[i].hash != h || strcmp(slots[i].key, key) != 0)) i = (i + 1) & (cap - 1);
    return i;
}

static int grow(peft_name_index *ix)
{
    size_t cap = ix->cap ? 2 * ix->cap : 64;
    peft_name_slot *ns = calloc(cap, sizeof *ns);
    if (!ns) return -1;
    for (size_t i = 0; i < ix->cap; i++) /* the keys are distinct: the first empty slot */
        if (ix->slots[i].key) {
            size_t j = (size_t)ix->slots[i].hash & (cap - 1);
            while (ns[j].key) j = (j + 1) & (cap - 1);
            ns[j] = ix->slots[i];
        }
    free(ix->slots);
    ix->slots = ns;
    ix->cap = cap;
    return 0;
}

int peft_name_index_add(peft_name_index *ix, const char *key, size_t pos)
{
    if (2 * (ix->n + 1) > ix->cap && grow(ix)) return -1;
    const uint64_t h = hash_name(key);
    size_t i = probe(ix->slots, ix->cap, key, h);
    if (!ix->slots[i].key) ix->slots[i] = (peft_name_slot){key, pos, h};
    ix->n++;
    return 0;
}

size_t peft_name_index_get(const peft_name_index *ix, const char *key)
{
    if (!ix->cap) return (size_t)-1;
    size_t i = probe(ix->slots, ix->cap, key, hash_name(key));
    return ix->slots[i].key ? ix->slots[i].pos : (size_t)-1;
}

void peft_name_index_free(peft_name_index *ix)
{
    free(ix->slots);
    ix->slots = NULL;
    ix->cap = ix->n = 0;
}

void peft_name_index_track(peft_name_index **ixp, const char *name, size_t pos)
{
    if (!*ixp && pos == 0) *ixp = calloc(1, sizeof **ixp);
    peft_name_index *ix = *ixp;
    if (!ix) return;
    if (ix->n != pos || peft_name_index_add(ix, name, pos)) {
        peft_name_index_free(ix);
        free(ix);
        *ixp = NULL;
    }
}

ptrdiff_t peft_name_index_find(const peft_name_index *ix, size_t n, const char *name)
{
    if (!ix || ix->n != n) return -2;
    size_t pos = peft_name_index_get(ix, name);
    return pos == (size_t)-1 ? -1 : (ptrdiff_t)pos;
}
