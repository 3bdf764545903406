/* fuzz_manifest.c — a mixed model's manifest (peft_mixed.json) beside the fixture mixed adapter
 * folders, loaded onto the fixture LLaMA with peft_mixed_from_pretrained, then unloaded. The
 * folders are saved once into the scratch dir (in memory); the base is loaded once and reused
 * while it comes back exactly as loaded (fuzz_base.h). */
#include "fuzz_base.h"

static fuzz_base llama = {.dir = FUZZ_FIXTURES "/hf-peft/_models/llama"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int ready;
    static char dir[1024], path[1100];
    if (!ready) { /* a LoRA and a LoHa adapter saved once (folders "." and "second") */
        snprintf(dir, sizeof dir, "%s/mixed", fuzz_dir());
        snprintf(path, sizeof path, "%s/peft_mixed.json", dir);
        peft_ctx *ctx = peft_ctx_new(0);
        peft_base_model *base;
        peft_model *m;
        if (peft_load_base_model(ctx, llama.dir, &base) ||
            peft_get_peft_model(ctx, base, "{\"peft_type\": \"LORA\", \"r\": 2, \"target_modules\": [\"q_proj\"]}",
                                "default", 1, &m) ||
            peft_add_adapter(m, "second", "{\"peft_type\": \"LOHA\", \"r\": 2, \"target_modules\": [\"v_proj\"]}") ||
            peft_save_pretrained(m, dir, NULL, 0, 1))
            abort();
        peft_model_free(m);
        peft_ctx_free(ctx);
        ready = 1;
    }
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (size && fwrite(data, 1, size, f) != size) abort();
    fclose(f);
    peft_ctx *ctx = peft_ctx_new(0);
    peft_base_model *base = fuzz_base_get(&llama);
    peft_model *m = NULL;
    if (peft_mixed_from_pretrained(ctx, base, dir, NULL, 0, &m) == 0) {
        peft_base_model *back = NULL;
        if (peft_unload(m, &back) != 0) {
            peft_model_free(m); /* frees the base with it */
            back = NULL;
        }
        fuzz_base_put(&llama, back);
    } else {
        fuzz_base_put(&llama, base); /* the caller keeps it on failure */
    }
    peft_ctx_free(ctx);
    return 0;
}
