/* cmd_init_model.c — `peft init-model`: write a randomly initialised GPT-2 model directory
 * (Hugging Face layout), e.g. the small base model of the README's main job. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "peft/model_init.h"

static const char *HELP =
    "usage: peft init-model --out DIR [--layers 2] [--embd 64] [--heads 4] [--vocab 256]\n"
    "                       [--positions 128] [--seed 0]\n\n"
    "Writes DIR/config.json and DIR/model.safetensors: a GPT2LMHeadModel initialised as\n"
    "transformers does (N(0, 0.02) weights), deterministic for a seed.\n";

int cmd_init_model(int argc, char **argv)
{
    const char *out = NULL;
    peft_gpt2_shape s = {2, 64, 4, 256, 128};
    unsigned long long seed = 0;
    for (int i = 1; i < argc; i++) {
        const char *v;
        if (!strcmp(argv[i], "--help")) { fputs(HELP, stdout); return 0; }
        else if ((v = cli_opt(argc, argv, &i, "--out"))) out = v;
        else if ((v = cli_opt(argc, argv, &i, "--layers"))) s.n_layer = atoi(v);
        else if ((v = cli_opt(argc, argv, &i, "--embd"))) s.n_embd = atoi(v);
        else if ((v = cli_opt(argc, argv, &i, "--heads"))) s.n_head = atoi(v);
        else if ((v = cli_opt(argc, argv, &i, "--vocab"))) s.vocab_size = atoi(v);
        else if ((v = cli_opt(argc, argv, &i, "--positions"))) s.n_positions = atoi(v);
        else if ((v = cli_opt(argc, argv, &i, "--seed"))) seed = strtoull(v, NULL, 10);
        else { fputs(HELP, stderr); return cli_fail("unknown option '%s'", argv[i]); }
    }
    if (!out) { fputs(HELP, stderr); return cli_fail("--out is required"); }
    char err[1024];
    if (peft_write_random_gpt2(out, &s, seed, err, sizeof err)) return cli_fail("%s", err);
    printf("wrote a %d-layer GPT-2 (n_embd %d, %d heads, vocab %d) to %s\n", s.n_layer, s.n_embd,
           s.n_head, s.vocab_size, out);
    return 0;
}
