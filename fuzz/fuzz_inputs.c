/* fuzz_inputs.c — the inputs JSON of `peft forward` (peft_inputs_load_json), then, when it
 * parses and is small (at most 64 tokens), a forward of the base GPT-2 or LLaMA fixture (the
 * first byte picks; loaded once) on it: the models' input checks (ids, masks, positions, GPT-2's
 * token_type_ids, labels) against whatever the parser lets through. One BLAS thread (fuzz_base.h). */
#include "fuzz_util.h" /* first: it defines _GNU_SOURCE */
#include "fuzz_base.h"
#include "peft/graph.h"
#include "peft/inputs.h"
#include "peft/model.h"
#include "peft/peft.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static peft_ctx *ctx;
    static peft_base_model *models[2];
    if (!ctx) {
        openblas_set_num_threads(1);
        ctx = peft_ctx_new(1);
        if (peft_load_base_model(ctx, FUZZ_FIXTURES "/hf-peft/_models/gpt2", &models[0]) ||
            peft_load_base_model(ctx, FUZZ_FIXTURES "/hf-peft/_models/llama", &models[1]))
            abort();
    }
    const char *p = fuzz_file("in.json", data, size);
    peft_inputs in;
    if (peft_inputs_load_json(ctx, p, &in) != 0) return 0;
    peft_model_inputs mi;
    peft_inputs_view(&in, &mi);
    if (size && mi.B > 0 && mi.T > 0 && mi.B * mi.T <= 64) {
        peft_graph *g = peft_graph_new(peft_ctx_rng(ctx));
        peft_model_outputs out;
        if (g) (void)peft_base_model_forward(models[data[0] & 1], g, &mi, &out);
        peft_graph_free(g);
    }
    peft_inputs_free(&in);
    return 0;
}
