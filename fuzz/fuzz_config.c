/* fuzz_config.c — a Hugging Face config.json read into a weight-free model (PEFT's meta
 * device: the architecture builds its modules and checks every field), then freed. */
#include "fuzz_util.h" /* first: it defines _GNU_SOURCE */
#include "peft/peft.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = fuzz_file("config.json", data, size);
    peft_base_model *m = NULL;
    peft_ctx *ctx = peft_ctx_new(0);
    if (ctx && peft_load_base_model_meta(ctx, p, NULL, &m) == 0) peft_base_model_free(m);
    peft_ctx_free(ctx);
    return 0;
}
