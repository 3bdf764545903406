/* fuzz_adapter.c — an adapter_config.json on the fixture GPT-2 and LLaMA (the input's first
 * byte picks): peft_get_peft_model with every built-in plugin the config names, then a forward
 * and backward on a fixed batch. Bounded: r and friends are capped by the host's checks. */
#include <string.h>
#include "fuzz_util.h"
#include "peft/graph.h"
#include "peft/peft.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    static const char *const models[2] = {FUZZ_FIXTURES "/hf-peft/_models/gpt2",
                                          FUZZ_FIXTURES "/hf-peft/_models/llama"};
    char *cfg = fuzz_text(data + 1, size - 1);
    peft_ctx *ctx = peft_ctx_new(0);
    peft_base_model *base = NULL;
    peft_model *m = NULL;
    if (peft_load_base_model(ctx, models[data[0] & 1], &base) == 0 &&
        peft_get_peft_model(ctx, base, cfg, "default", 0, &m) != 0) {
        peft_base_model_free(base); /* the caller keeps the base on failure */
    } else if (m) {
        int32_t ids[8] = {1, 5, 9, 2, 7, 3, 4, 6}, labels[8] = {1, 5, 9, 2, 7, 3, 4, 6};
        peft_model_inputs in = {.B = 1, .T = 8, .input_ids = ids, .labels = labels};
        peft_graph *g = peft_graph_new(peft_ctx_rng(ctx));
        peft_model_outputs out;
        peft_graph_set_recording(g, 1);
        peft_model_train(m, 1);
        if (peft_model_forward(m, g, &in, &out) == 0 && out.loss) peft_graph_backward(g, out.loss);
        peft_graph_free(g);
        peft_model_free(m);
    }
    peft_ctx_free(ctx);
    free(cfg);
    return 0;
}
