/* main.c — the `peft` command: dispatches to its subcommands. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include "cli.h"
#include "peft/warn.h"

static void usage(FILE *f)
{
    fprintf(f,
            "peft %s — parameter-efficient fine-tuning (Hugging Face PEFT in C)\n\n"
            "usage: peft <command> [options]\n\n"
            "commands:\n"
            "  forward     run a model (+ adapters) on IN.json, write logits/loss (and grads)\n"
            "  info        module summary, trainable parameters and adapter status\n"
            "  train       fine-tune a LoRA adapter on a token file and save it (PEFT format)\n"
            "  init-model  write a randomly initialised GPT-2 model directory\n"
            "  plugin-check  run the conformance checks on a tuner plugin .so\n"
            "  merge       fold adapters into the base and write a Hugging Face model directory\n"
            "  run         run the experiments of a YAML file (methods side by side, sweeps)\n"
            "  tokenize    text -> token ids (and back) with a model's tokenizer.json (HF's ids)\n"
            "  combine     combine adapters into a new one (add_weighted_adapter), PEFT format\n"
            "  generate    greedy or sampled generation (KV cache) for causal and seq2seq LMs\n\n"
            "run `peft <command> --help` for its options\n",
            PEFT_VERSION);
}

/* Debian's OpenBLAS 0.3.21 does not know some AVX-512 Xeons and falls back to its SSE3
 * "Prescott" kernels, 2-3x slower. When OPENBLAS_CORETYPE is unset (the user's choice wins),
 * OpenBLAS picked Prescott and the CPU has AVX-512 (or AVX2), run again with the right kernels.
 * PEFT_NO_BLAS_TUNE=1 turns this off. */
extern char *openblas_get_corename(void);

static void tune_blas(char **argv)
{
    if (getenv("OPENBLAS_CORETYPE") || getenv("PEFT_NO_BLAS_TUNE")) return;
    const char *core = openblas_get_corename();
    if (!core || strcasecmp(core, "prescott") != 0) return;
    __builtin_cpu_init();
    const char *want = __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512f") ? "SkylakeX"
                       : __builtin_cpu_supports("avx2")                                         ? "Haswell"
                                                                                                : NULL;
    if (!want) return;
    setenv("OPENBLAS_CORETYPE", want, 1);
    execv("/proc/self/exe", argv); /* on failure: carry on with the slow kernels */
}

/* warnings to stderr, each distinct message once */
static void print_warning(const char *msg, void *ud)
{
    static char seen[16][256];
    static int n;
    (void)ud;
    for (int i = 0; i < n; i++)
        if (!strncmp(seen[i], msg, sizeof seen[i] - 1)) return;
    if (n < 16) snprintf(seen[n++], sizeof seen[0], "%s", msg);
    fprintf(stderr, "peft: warning: %s\n", msg);
}

int main(int argc, char **argv)
{
    tune_blas(argv);
    peft_set_warning_handler(print_warning, NULL);
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (!strcmp(argv[1], "--version")) {
        printf("peft %s (OpenBLAS kernels: %s)\n", PEFT_VERSION, openblas_get_corename());
        return 0;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "forward")) return cmd_forward(argc - 1, argv + 1);
    if (!strcmp(cmd, "info")) return cmd_info(argc - 1, argv + 1);
    if (!strcmp(cmd, "train")) return cmd_train(argc - 1, argv + 1);
    if (!strcmp(cmd, "init-model")) return cmd_init_model(argc - 1, argv + 1);
    if (!strcmp(cmd, "plugin-check")) return cmd_plugin_check(argc - 1, argv + 1);
    if (!strcmp(cmd, "merge")) return cmd_merge(argc - 1, argv + 1);
    if (!strcmp(cmd, "run")) return cmd_run(argc - 1, argv + 1);
    if (!strcmp(cmd, "tokenize")) return cmd_tokenize(argc - 1, argv + 1);
    if (!strcmp(cmd, "combine")) return cmd_combine(argc - 1, argv + 1);
    if (!strcmp(cmd, "generate")) return cmd_generate(argc - 1, argv + 1);
    fprintf(stderr, "peft: unknown command '%s'\n\n", cmd);
    usage(stderr);
    return 2;
}
