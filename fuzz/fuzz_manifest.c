/* fuzz_manifest.c — a mixed model's manifest (peft_mixed.json) beside the fixture mixed adapter
 * folders, loaded onto the fixture GPT-2 with peft_mixed_from_pretrained. */
#include <string.h>
#include "fuzz_util.h"
#include "peft/peft.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    char dir[1024];
    snprintf(dir, sizeof dir, "%s/mixed", fuzz_dir());
    if (!ready) { /* a LoRA and a LoHa adapter saved once (folders "." and "second") */
        peft_ctx *ctx = peft_ctx_new(0);
        peft_base_model *base;
        peft_model *m;
        if (peft_load_base_model(ctx, FUZZ_FIXTURES "/hf-peft/_models/llama", &base) ||
            peft_get_peft_model(ctx, base, "{\"peft_type\": \"LORA\", \"r\": 2, \"target_modules\": [\"q_proj\"]}",
                                "default", 1, &m) ||
            peft_add_adapter(m, "second", "{\"peft_type\": \"LOHA\", \"r\": 2, \"target_modules\": [\"v_proj\"]}") ||
            peft_save_pretrained(m, dir, NULL, 0, 1))
            abort();
        peft_model_free(m);
        peft_ctx_free(ctx);
        ready = 1;
    }
    char path[1100];
    snprintf(path, sizeof path, "%s/peft_mixed.json", dir);
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    fwrite(data, 1, size, f);
    fclose(f);
    peft_ctx *ctx = peft_ctx_new(0);
    peft_base_model *base;
    peft_model *m = NULL;
    if (peft_load_base_model(ctx, FUZZ_FIXTURES "/hf-peft/_models/llama", &base) == 0) {
        if (peft_mixed_from_pretrained(ctx, base, dir, NULL, 0, &m) == 0) peft_model_free(m);
        else peft_base_model_free(base); /* the caller keeps it on failure */
    }
    peft_ctx_free(ctx);
    return 0;
}
