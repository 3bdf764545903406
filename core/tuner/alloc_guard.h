/* alloc_guard.h — a bound on what a plugin may allocate through the host table while it
 * creates an adapter (adapter_init / inject / prompt_init), so that a config asking for absurd
 * sizes (`r: 10000000`) is refused before the memory is taken, not after gigabytes were
 * allocated and initialised (core-internal; the host table's alloc and tensor_new consult it).
 * One guard per thread at a time; the core arms it around its creation calls. */
#ifndef CORE_TUNER_ALLOC_GUARD_H
#define CORE_TUNER_ALLOC_GUARD_H

#include <stddef.h>
#include <stdint.h>

#include "peft/tensor.h"

typedef struct peft_alloc_guard {
    size_t max_one;   /* bytes one allocation may take */
    size_t max_total; /* bytes live at once, over the guard's life */
    size_t live;      /* bytes allocated under the guard and not freed yet */
    const char *module; /* set by the caller: the site being created (borrowed), or NULL */
    /* the first refused request */
    int tripped;
    size_t want;      /* its bytes (SIZE_MAX: its size overflows) */
    int ndim;         /* its shape when it was a tensor, else 0 */
    int64_t shape[PEFT_MAX_DIMS];
} peft_alloc_guard;

/* Arms g (zeroed here but for the two limits) on this thread until peft_alloc_guard_end. */
void peft_alloc_guard_begin(peft_alloc_guard *g, size_t max_one, size_t max_total);
void peft_alloc_guard_end(void);

/* for the host table: 0 when a request of `bytes` (a tensor of that shape when ndim > 0) may
 * go ahead (and is counted), -1 when the armed guard refuses it */
int peft_alloc_guard_take(size_t bytes, int ndim, const int64_t *shape);
/* bytes given back under the guard */
void peft_alloc_guard_give(size_t bytes);

/* "[10000000, 32] (1.2 GB)" or "1.2 GB" for the refused request into buf */
const char *peft_alloc_guard_what(const peft_alloc_guard *g, char *buf, size_t len);

#endif
