/* cmd_init_model.c — `peft init-model`: write a randomly initialised model directory (Hugging
 * Face layout): a GPT-2 of a given shape, or any supported architecture from a config.json. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "peft/model_init.h"
#include "peft/model_save.h"

static const char *HELP =
    "usage: peft init-model --out DIR [--layers 2] [--embd 64] [--heads 4] [--vocab 256]\n"
    "                       [--positions 128] [--seed 0]\n"
    "       peft init-model --config CONFIG.json --out DIR [--dtype float32|bfloat16|float16]\n"
    "                       [--seed 0]\n\n"
    "Writes DIR/config.json and DIR/model.safetensors, initialised as transformers does,\n"
    "deterministic for a seed. The first form: a GPT2LMHeadModel of that shape. With --config:\n"
    "any supported architecture (gpt2, bert, llama, t5, and the LLaMA family), its config.json\n"
    "as given (bench/configs/ holds real ones): Linear and Embedding weights N(0,\n"
    "initializer_range) (GPT-2's c_proj scaled by 1/sqrt(2 n_layer), T5's by its factor rules),\n"
    "the padding_idx row zero, norms 1 (Gemma 0), biases 0.\n";

/* config.json copied into dir, the model drawn in memory from it and saved in dtype */
static int init_from_config(const char *config, const char *out, const char *dtype_name,
                            unsigned long long seed)
{
    int32_t dt = peft_load_dtype_from_name(dtype_name ? dtype_name : "float32");
    if (dt < 0) return cli_fail("--dtype '%s': expected float32, bfloat16 or float16", dtype_name);
    char *text = cli_read_text(config);
    if (!text) return 1;
    char path[4096];
    snprintf(path, sizeof path, "mkdir -p '%s'", out);
    if (strchr(out, '\'') || system(path) != 0) { free(text); return cli_fail("%s: cannot create", out); }
    snprintf(path, sizeof path, "%s/config.json", out);
    FILE *f = fopen(path, "w");
    if (!f || fputs(text, f) < 0 || fclose(f) != 0) { free(text); return cli_fail("%s: cannot write", path); }
    free(text);
    peft_load_options o = {.struct_size = sizeof o, .torch_dtype = dtype_name ? dtype_name : "float32",
                           .random_init = 1, .seed = seed};
    peft_base_model *m;
    peft_ctx *ctx = peft_ctx_new(0);
    if (!ctx) return cli_fail("out of memory");
    if (peft_load_base_model_ex(ctx, out, &o, &m)) {
        cli_fail("%s: %s", config, peft_errmsg(ctx));
        peft_ctx_free(ctx);
        return 1;
    }
    const int64_t n = peft_base_model_param_count(m);
    int rc = peft_base_model_save(ctx, m, out, dt);
    if (rc) cli_fail("%s", peft_errmsg(ctx));
    else printf("wrote a random %s (%lld parameters, %s) to %s\n", peft_base_model_class(m), (long long)n,
                dtype_name ? dtype_name : "float32", out);
    peft_base_model_free(m);
    peft_ctx_free(ctx);
    return rc ? 1 : 0;
}

int cmd_init_model(int argc, char **argv)
{
    const char *out = NULL, *config = NULL, *dtype = NULL;
    peft_gpt2_shape s = {2, 64, 4, 256, 128};
    unsigned long long seed = 0;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (!strcmp(argv[i], "--help")) { fputs(HELP, stdout); return 0; }
        else if ((v = cli_opt(argc, argv, &i, "--out"))) out = v;
        else if ((v = cli_opt(argc, argv, &i, "--config"))) config = v;
        else if ((v = cli_opt(argc, argv, &i, "--dtype"))) dtype = v;
        else if ((v = cli_opt(argc, argv, &i, "--layers"))) s.n_layer = atoi(v);
        else if ((v = cli_opt(argc, argv, &i, "--embd"))) s.n_embd = atoi(v);
        else if ((v = cli_opt(argc, argv, &i, "--heads"))) s.n_head = atoi(v);
        else if ((v = cli_opt(argc, argv, &i, "--vocab"))) s.vocab_size = atoi(v);
        else if ((v = cli_opt(argc, argv, &i, "--positions"))) s.n_positions = atoi(v);
        else if ((v = cli_opt(argc, argv, &i, "--seed"))) seed = strtoull(v, NULL, 10);
        else { fputs(HELP, stderr); return cli_fail("unknown option '%s'", argv[i]); }
    }
    if (!out) { fputs(HELP, stderr); return cli_fail("--out is required"); }
    if (config) return init_from_config(config, out, dtype, seed);
    if (dtype) return cli_fail("--dtype goes with --config");
    peft_ctx *ctx = peft_ctx_new(seed);
    if (!ctx) return cli_fail("out of memory");
    int rc = peft_write_random_gpt2(ctx, out, &s, seed);
    if (rc) cli_fail("%s", peft_errmsg(ctx));
    peft_ctx_free(ctx);
    if (rc) return 1;
    printf("wrote a %d-layer GPT-2 (n_embd %d, %d heads, vocab %d) to %s\n", s.n_layer, s.n_embd,
           s.n_head, s.vocab_size, out);
    return 0;
}
