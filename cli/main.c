/* main.c — the `peft` command: dispatches to its subcommands. */
#include <stdio.h>
#include <string.h>
#include "cli.h"

static void usage(FILE *f)
{
    fprintf(f,
            "peft %s — parameter-efficient fine-tuning (Hugging Face PEFT in C)\n\n"
            "usage: peft <command> [options]\n\n"
            "commands:\n"
            "  forward     run a model (+ adapters) on IN.json, write logits/loss (and grads)\n"
            "  info        module summary, trainable parameters and adapter status\n"
            "  train       fine-tune a LoRA adapter on a token file and save it (PEFT format)\n"
            "  init-model  write a randomly initialised GPT-2 model directory\n\n"
            "run `peft <command> --help` for its options\n",
            PEFT_VERSION);
}

int main(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("peft %s\n", PEFT_VERSION);
        return 0;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "forward")) return cmd_forward(argc - 1, argv + 1);
    if (!strcmp(cmd, "info")) return cmd_info(argc - 1, argv + 1);
    if (!strcmp(cmd, "train")) return cmd_train(argc - 1, argv + 1);
    if (!strcmp(cmd, "init-model")) return cmd_init_model(argc - 1, argv + 1);
    fprintf(stderr, "peft: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return 2;
}
