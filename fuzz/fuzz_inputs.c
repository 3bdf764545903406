/* fuzz_inputs.c — the inputs JSON of `peft forward` (peft_inputs_load_json). */
#include "fuzz_util.h"
#include "peft/inputs.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = fuzz_file("in.json", data, size);
    peft_inputs in;
    char err[512];
    if (peft_inputs_load_json(p, &in, err, sizeof err) == 0) peft_inputs_free(&in);
    return 0;
}
