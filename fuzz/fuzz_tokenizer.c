/* fuzz_tokenizer.c — tokenizer.json text loaded, then a fixed text encoded and its ids decoded
 * (and the ids 0..15 decoded). */
#include "fuzz_util.h" /* first: it defines _GNU_SOURCE */
#include <string.h>
#include "peft/tokenizer.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *text = fuzz_text(data, size);
    peft_tokenizer *tk = NULL;
    char err[512];
    if (peft_tokenizer_from_json(text, "fuzz", &tk, err, sizeof err) == 0) {
        static const char sample[] = "Hello world! <s> [CLS] \xc3\xa9t\xc3\xa9 12 34  tabs\tand\nnewlines";
        int32_t *ids = NULL;
        size_t n = 0;
        if (peft_tokenizer_encode(tk, sample, sizeof sample - 1, 1, &ids, &n, err, sizeof err) == 0) {
            char *back = NULL;
            if (peft_tokenizer_decode(tk, ids, n, 0, &back, NULL, err, sizeof err) == 0) free(back);
            free(ids);
        }
        int32_t some[16];
        for (int i = 0; i < 16; i++) some[i] = i;
        char *back = NULL;
        if (peft_tokenizer_decode(tk, some, 16, 1, &back, NULL, err, sizeof err) == 0) free(back);
        peft_tokenizer_free(tk);
    }
    free(text);
    return 0;
}
