/* fuzz_config.c — a Hugging Face config.json read into a weight-free model (PEFT's meta
 * device: the architecture builds its modules and checks every field), then freed. */
#include "fuzz_util.h"
#include "peft/model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = fuzz_file("config.json", data, size);
    peft_base_model *m = NULL;
    char err[512];
    if (peft_base_model_load_meta(p, NULL, &m, err, sizeof err) == 0) peft_base_model_free(m);
    return 0;
}
