/* fuzz_adapter.c — an adapter_config.json on the fixture GPT-2 and LLaMA (the input's first
 * byte picks): peft_get_peft_model with every built-in plugin the config names, then a forward
 * and backward on a fixed batch, then peft_unload. Bounded: r and friends are capped by the
 * host's checks. The two bases are loaded once and reused while they come back exactly as
 * loaded (fuzz_base.h); the context is made per execution with a fixed seed.
 * The forward is skipped for prompts longer than FUZZ_MAX_PROMPT virtual tokens: a legal config
 * with 7,422 virtual tokens (found by this target) makes attention over 7,430 positions, ~8 s in
 * a release build and ~40 s under the sanitizers, which is the work asked for, not a defect, and
 * starves the fuzzer. The config is still parsed, checked, injected and unloaded. */
#include "fuzz_base.h"

#include <jansson.h>

#define FUZZ_MAX_PROMPT 256

/* does the config ask for a prompt (num_virtual_tokens, adaption prompt's adapter_len) over
 * FUZZ_MAX_PROMPT positions? */
static int long_prompt(const char *cfg)
{
    json_t *j = json_loads(cfg, 0, NULL);
    const char *keys[] = {"num_virtual_tokens", "adapter_len"};
    int over = 0;
    for (int k = 0; k < 2 && json_is_object(j); k++) {
        const json_t *v = json_object_get(j, keys[k]);
        if (json_is_integer(v) && json_integer_value(v) > FUZZ_MAX_PROMPT) over = 1;
    }
    json_decref(j);
    return over;
}

static fuzz_base bases[2] = {{.dir = FUZZ_FIXTURES "/hf-peft/_models/gpt2"},
                             {.dir = FUZZ_FIXTURES "/hf-peft/_models/llama"}};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1) return 0;
    fuzz_base *b = &bases[data[0] & 1];
    peft_base_model *base = fuzz_base_get(b);
    char *cfg = fuzz_text(data + 1, size - 1);
    peft_ctx *ctx = peft_ctx_new(0);
    peft_model *m = NULL;
    if (peft_get_peft_model(ctx, base, cfg, "default", 0, &m) != 0) {
        fuzz_base_put(b, base); /* the caller keeps the base on failure */
    } else {
        int32_t ids[8] = {1, 5, 9, 2, 7, 3, 4, 6}, labels[8] = {1, 5, 9, 2, 7, 3, 4, 6};
        peft_model_inputs in = {.B = 1, .T = 8, .input_ids = ids, .labels = labels};
        peft_graph *g = peft_graph_new(peft_ctx_rng(ctx));
        peft_model_outputs out;
        peft_graph_set_recording(g, 1);
        peft_model_train(m, 1);
        if (!long_prompt(cfg) && peft_model_forward(m, g, &in, &out) == 0 && out.loss)
            peft_graph_backward(g, out.loss);
        peft_graph_free(g);
        peft_base_model *back = NULL;
        if (peft_unload(m, &back) != 0) {
            peft_model_free(m); /* frees the base with it */
            back = NULL;
        }
        fuzz_base_put(b, back);
    }
    peft_ctx_free(ctx);
    free(cfg);
    return 0;
}
