/* real_shape.c — benchmark: a LoRA training step at a real model's shape (issue 11).
 *
 * The base is a config.json alone (bench/configs/llama-3.2-1b.json, llama-3-8b.json, ...): its
 * weights are drawn in memory (peft_load_options.random_init; N(0, initializer_range), norms 1),
 * in the dtype asked (--dtype bfloat16 | float32) and optionally quantized at load (--quant nf4 |
 * int8: QLoRA, with prepare_model_for_kbit_training). Adapter: LoRA r (16), alpha 2r on every
 * linear layer but the head ("all-linear"). Batch --batch x --seq random tokens, labels =
 * inputs. Step: forward with loss (recording), backward, AdamW over the LoRA parameters; dropout
 * off, as the PyTorch peer bench/real_shape_torch.py. The loss is libpeft's chunked one (exact;
 * no full logits held) unless --full-logits. --ckpt turns on gradient checkpointing
 * (prepare_model_for_kbit_training's use_gradient_checkpointing). Prints the
 * load time and RSS after load, each step, ms/step (median), tokens/s, peak RSS, and a
 * machine-readable RESULT line for bench/real_shape.sh. --layers L keeps the widths with L
 * decoder layers (quick profiling of the same kernels). Never a test: figures only.
 */
#define _GNU_SOURCE
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <jansson.h>
#include "peft/graph.h"
#include "peft/model.h"
#include "peft/optim.h"
#include "peft/peft.h"

#define BENCH_NAME "libpeft real-shape"
#include "bench/bench_util.h"

static void usage(const char *argv0)
{
    fprintf(stderr,
            "usage: %s --config CONFIG.json [--dtype bfloat16|float32] [--quant none|nf4|int8]\n"
            "          [--ckpt] [--full-logits] [--batch B] [--seq T] [--steps N] [--warmup W] [--r R]\n"
            "          [--layers L]\n", argv0);
    exit(2);
}

int main(int argc, char **argv)
{
    const char *config = NULL, *dtype = "bfloat16", *quant = "none";
    int ckpt = 0, full_logits = 0, B = 1, T = 512, steps = 2, warmup = 1, r = 16, layers = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--ckpt")) { ckpt = 1; continue; }
        if (!strcmp(a, "--full-logits")) { full_logits = 1; continue; }
        if (!v) usage(argv[0]);
        i++;
        if (!strcmp(a, "--config")) config = v;
        else if (!strcmp(a, "--dtype")) dtype = v;
        else if (!strcmp(a, "--quant")) quant = v;
        else if (!strcmp(a, "--batch")) B = atoi(v);
        else if (!strcmp(a, "--seq")) T = atoi(v);
        else if (!strcmp(a, "--steps")) steps = atoi(v);
        else if (!strcmp(a, "--warmup")) warmup = atoi(v);
        else if (!strcmp(a, "--r")) r = atoi(v);
        else if (!strcmp(a, "--layers")) layers = atoi(v);
        else usage(argv[0]);
    }
    if (!config || B < 1 || T < 2 || steps < 1 || warmup < 0 || r < 1) usage(argv[0]);
    setvbuf(stdout, NULL, _IOLBF, 0);

    /* a directory holding only config.json: the weights are generated in memory */
    json_error_t je;
    json_t *cfg = json_load_file(config, 0, &je);
    if (!cfg) {
        fprintf(stderr, "libpeft real-shape: %s: %s (line %d)\n", config, je.text, je.line);
        return 1;
    }
    const int64_t V = json_integer_value(json_object_get(cfg, "vocab_size"));
    /* --layers L: the same widths with L decoder layers (quick profiling runs) */
    if (layers > 0) json_object_set_new(cfg, "num_hidden_layers", json_integer(layers));
    char dir[] = "/tmp/libpeft-real-shape.XXXXXX", path[64];
    if (!mkdtemp(dir) || V <= 0) {
        fprintf(stderr, "libpeft real-shape: cannot make a model directory (or no vocab_size)\n");
        return 1;
    }
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (json_dump_file(cfg, path, JSON_INDENT(2))) {
        fprintf(stderr, "libpeft real-shape: cannot write %s\n", path);
        return 1;
    }
    json_decref(cfg);

    peft_ctx *ctx = peft_ctx_new(1234);
    if (!ctx) die(NULL, "out of memory");
    printf("config %s: dtype %s, quant %s, gradient checkpointing %s, %s loss, batch %d x %d, "
           "LoRA r=%d all-linear; OpenBLAS %s, %d threads, GEMMs on %s\n", config, dtype, quant,
           ckpt ? "on" : "off", full_logits ? "full-logits" : "chunked", B, T, r, openblas_get_corename(), openblas_get_num_threads(),
           getenv("PEFT_GEMM") && !strcmp(getenv("PEFT_GEMM"), "onednn") ? "oneDNN (PEFT_GEMM)" : "OpenBLAS");
    double t0 = now_ms();
    peft_load_options o = {.struct_size = sizeof o, .torch_dtype = dtype, .quant = quant,
                           .random_init = 1, .seed = 1234};
    peft_base_model *base = NULL;
    if (peft_load_base_model_ex(ctx, dir, &o, &base)) {
        fprintf(stderr, "libpeft real-shape: loading: %s\n", peft_errmsg(ctx));
        return 1;
    }
    unlink(path);
    rmdir(dir);
    if (ckpt || strcmp(quant, "none")) {
        if (peft_prepare_model_for_kbit_training(ctx, base, ckpt)) die(ctx, "prepare_model_for_kbit_training");
    }
    if (!full_logits) peft_chunked_loss_enable(base, 1);
    char lora[256];
    snprintf(lora, sizeof lora, "{\"peft_type\":\"LORA\",\"task_type\":\"CAUSAL_LM\",\"r\":%d,"
             "\"lora_alpha\":%d,\"lora_dropout\":0.0,\"target_modules\":\"all-linear\"}", r, 2 * r);
    peft_model *m = NULL;
    if (peft_get_peft_model(ctx, base, lora, NULL, 0, &m)) die(ctx, "peft_get_peft_model");
    peft_model_train(m, 0); /* no dropout: the PyTorch peer's computation */
    char line[256];
    if (peft_format_trainable_parameters(m, line, sizeof line)) die(ctx, "trainable parameters");
    printf("load (random weights) + inject: %.1f s; frozen weights %.2f GB; RSS %.0f MB\n%s\n",
           (now_ms() - t0) / 1e3, (double)peft_base_model_weight_bytes(base) / 1e9, rss_mb(0), line);

    peft_adamw_config ocfg = {.lr = 1e-4, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8,
                              .weight_decay = 0.01};
    peft_adamw *opt = peft_adamw_new(m, &ocfg);
    if (!opt) die(ctx, "peft_adamw_new");
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)B * (size_t)T);
    peft_rng *rng = peft_ctx_rng(ctx);
    for (int64_t i = 0; i < (int64_t)B * T; i++) ids[i] = (int32_t)(peft_rng_next(rng) % (uint64_t)V);
    peft_model_inputs in = {.B = B, .T = T, .input_ids = ids, .labels = ids};
    peft_graph *g = peft_graph_new(rng);
    if (!g || !ids) die(NULL, "out of memory");

    const int total = warmup + steps;
    double *ms = calloc((size_t)total, sizeof *ms), *cpu = calloc((size_t)total, sizeof *cpu);
    if (!ms || !cpu) die(NULL, "out of memory");
    for (int s = 0; s < total; s++) {
        const double c0 = cpu_ms();
        double a = now_ms();
        peft_graph_reset(g);
        peft_graph_set_recording(g, 1);
        peft_model_outputs out;
        if (peft_model_forward(m, g, &in, &out) || !out.loss) die(ctx, "forward");
        double b = now_ms();
        if (peft_graph_backward(g, out.loss)) die(ctx, "backward");
        double c = now_ms();
        peft_adamw_step(opt, 0);
        ms[s] = now_ms() - a;
        cpu[s] = cpu_ms() - c0;
        printf("step %d%s: %.2f s (forward %.2f, backward %.2f, adamw %.3f), CPU %.2f s, loss %.5f, "
               "RSS %.0f MB\n", s, s < warmup ? " (warm-up)" : "", ms[s] / 1e3, (b - a) / 1e3,
               (c - b) / 1e3, (ms[s] - (c - a)) / 1e3, cpu[s] / 1e3, peft_f32(out.loss)[0],
               rss_mb(0));
    }
    const double med = median(ms + warmup, steps), tps = (double)B * T / (med / 1e3);
    const double cpu_med = median(cpu + warmup, steps);
    const double peak = rss_mb(1), arena = peft_graph_peak_bytes(g) / (1024.0 * 1024.0);
    printf("libpeft real-shape: %.2f s/step, %.1f tokens/s, peak RSS %.0f MB (step arena %.0f MB)\n",
           med / 1e3, tps, peak, arena);
    printf("RESULT ms_per_step=%.1f tokens_per_s=%.2f peak_rss_mb=%.1f peak_arena_mb=%.1f "
           "cpu_ms_per_step=%.1f\n", med, tps, peak, arena, cpu_med);
    free(ms);
    free(cpu);
    free(ids);
    peft_graph_free(g);
    peft_adamw_free(opt);
    peft_model_free(m);
    peft_ctx_free(ctx);
    return 0;
}
