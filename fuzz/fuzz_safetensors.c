/* fuzz_safetensors.c — peft_st_open on arbitrary bytes: every accepted tensor's data is read
 * in full through its dtype (the bounds the validator promised) and found by name. */
#include "fuzz_util.h" /* first: it defines _GNU_SOURCE */
#include <string.h>
#include "peft/safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = fuzz_file("t.safetensors", data, size);
    peft_st_file *f = NULL;
    if (peft_st_open(NULL, p, &f) == 0) { /* no context: the code alone */
        volatile uint64_t sum = 0;
        volatile float fsum = 0;
        for (size_t i = 0; i < f->n_entries; i++) {
            const peft_st_entry *e = &f->entries[i];
            for (size_t b = 0; b < e->nbytes; b++) sum += ((const uint8_t *)e->data)[b];
            if (e->dtype == PEFT_DTYPE_F32 && e->nbytes >= 4) fsum += ((const float *)e->data)[0]; /* aligned read */
            if (peft_st_find(f, e->name) != e) abort();
        }
        peft_st_close(f);
    }
    return 0;
}
