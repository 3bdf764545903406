/* name_index.h — a hash index from a name to its position in an append-only array (the base
 * model's parameters and sites), so that looking a name up costs O(1) instead of a scan and
 * building a model of n layers is O(n) (core-internal, used by model.c). */
#ifndef PEFT_NAME_INDEX_H
#define PEFT_NAME_INDEX_H

#include <stddef.h>
#include <stdint.h>

typedef struct peft_name_slot {
    const char *key; /* borrowed: the array's own name string, which outlives the index */
    size_t pos;      /* position in the array */
    uint64_t hash;   /* of key: growing never rereads the strings, probes compare it first */
} peft_name_slot;

typedef struct peft_name_index {
    peft_name_slot *slots; /* owned; open addressing, cap a power of two, key NULL = empty */
    size_t cap, n;         /* n: how many array entries are indexed (entries 0..n-1) */
} peft_name_index;

/* Adds entry pos (== ix->n: the array grows at the end) under key (borrowed). The first
 * position wins for a repeated key. 0, or -1 out of memory (the index is left as it was). */
int peft_name_index_add(peft_name_index *ix, const char *key, size_t pos);
/* the position of key, or (size_t)-1 */
size_t peft_name_index_get(const peft_name_index *ix, const char *key);
void peft_name_index_free(peft_name_index *ix);
/* Registers entry pos (the newest, pos == n - 1) of an array in its index *ixp (created on
 * first use, owned by the caller: free with peft_name_index_free then free). An index that
 * could not keep up (out of memory) is dropped: lookups then scan. */
void peft_name_index_track(peft_name_index **ixp, const char *name, size_t pos);
/* the position of name through index ix when it covers all n entries, -1 when absent, else -2
 * (no usable index: the caller scans) */
ptrdiff_t peft_name_index_find(const peft_name_index *ix, size_t n, const char *name);

#endif
