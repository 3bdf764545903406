/* lora_step.c — benchmark: one LoRA training step on GPT-2 124M.
 *
 * Base: GPT-2 124M shape (12 layers, n_embd 768, 12 heads, vocab 50257, 1024 positions) with
 * random weights, written once to $PEFT_BENCH_DIR (default /tmp/libpeft-bench/gpt2-124m) and
 * reused. Adapter: LoRA r=8, alpha=16 on c_attn. Batch 4 x 128 random tokens, labels = inputs.
 * Step: graph reset, forward with loss (recording), backward, AdamW (lr 1e-4) over the LoRA
 * parameters. Dropout is off (eval-mode forward, like the PyTorch peer bench/lora_step_torch.py).
 * The loss is libpeft's fused chunked head + cross-entropy (never the whole logits; the same
 * arithmetic row for row); --full-logits computes the (B, T, V) logits as the peer does.
 * 2 warm-up steps, then --steps N (5) timed steps. Prints ms/step (median, mean), tokens/s, peak
 * RSS and peak arena bytes, and a machine-readable RESULT line for bench/run.sh.
 * The thread count is OpenBLAS's default (OPENBLAS_NUM_THREADS if set) or --threads N
 * (openblas_set_num_threads; libpeft's kernel threads follow it); the kernel set OpenBLAS
 * picked for the CPU is printed too (--blas-core prints only that), since a misdetected CPU
 * (e.g. "Prescott" on a recent Xeon) makes every GEMM 2-3x slower.
 */
#define _GNU_SOURCE
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "peft/graph.h"
#include "peft/model_init.h"
#include "peft/optim.h"
#include "peft/peft.h"

#define BENCH_NAME "libpeft lora-step"
#include "bench/bench_util.h"

#define BATCH 4
#define SEQ 128
#define WARMUP 2
#define SEED 1234

static const char *LORA_CONFIG =
    "{\"peft_type\":\"LORA\",\"task_type\":\"CAUSAL_LM\",\"r\":8,\"lora_alpha\":16,"
    "\"target_modules\":[\"c_attn\"]}";

static int file_exists(const char *dir, const char *name)
{
    char p[4096];
    struct stat st;
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return stat(p, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0;
}

/* writes the random base model in a child process, so that its ~500 MB of buffers do not count
 * in this process's peak RSS */
static int ensure_model(const char *dir)
{
    if (file_exists(dir, "config.json") && file_exists(dir, "model.safetensors")) {
        printf("base model: %s (cached)\n", dir);
        return 0;
    }
    printf("base model: writing random GPT-2 124M to %s ...\n", dir);
    fflush(stdout);
    double t0 = now_ms();
    pid_t pid = fork();
    if (pid < 0) {
        perror("fork");
        return -1;
    }
    if (pid == 0) {
        peft_gpt2_shape shape = {.n_layer = 12, .n_embd = 768, .n_head = 12,
                                 .vocab_size = 50257, .n_positions = 1024};
        peft_ctx *ctx = peft_ctx_new(SEED);
        if (!ctx || peft_write_random_gpt2(ctx, dir, &shape, SEED)) {
            fprintf(stderr, "libpeft lora-step: cannot write the base model: %s\n",
                    ctx ? peft_errmsg(ctx) : "out of memory");
            _exit(1);
        }
        peft_ctx_free(ctx);
        _exit(0);
    }
    int status = 0;
    if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        return -1;
    printf("base model: written in %.1f s\n", (now_ms() - t0) / 1e3);
    return 0;
}

static void usage(const char *argv0)
{
    fprintf(stderr, "usage: %s [--steps N] [--threads N] [--full-logits] [--blas-core]\n"
            "  --full-logits  the loss over the whole (B, T, V) logits and their gradient\n"
            "                 (default: the fused chunked head + loss, core/ops/chunked_ce.c)\n"
            "  --blas-core    print the kernel set OpenBLAS chose for this CPU and exit\n", argv0);
    exit(2);
}

int main(int argc, char **argv)
{
    int steps = 5, full_logits = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--steps") && i + 1 < argc) {
            steps = atoi(argv[++i]);
            if (steps < 1) usage(argv[0]);
        } else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            int t = atoi(argv[++i]);
            if (t < 1) usage(argv[0]);
            openblas_set_num_threads(t);
        } else if (!strcmp(argv[i], "--full-logits")) {
            full_logits = 1;
        } else if (!strcmp(argv[i], "--blas-core")) {
            printf("%s\n", openblas_get_corename());
            return 0;
        } else {
            usage(argv[0]);
        }
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *dir = getenv("PEFT_BENCH_DIR");
    if (!dir || !*dir) dir = "/tmp/libpeft-bench/gpt2-124m";
    if (ensure_model(dir)) return 1;

    peft_ctx *ctx = peft_ctx_new(SEED);
    if (!ctx) {
        fprintf(stderr, "libpeft lora-step: out of memory\n");
        return 1;
    }
    double t0 = now_ms();
    peft_base_model *base = NULL;
    if (peft_load_base_model(ctx, dir, &base)) die(ctx, "loading the base model");
    /* the loss: the head and cross-entropy fused over row chunks (the (B, T, V) logits and their
     * gradient are never whole; the gradient is found in the forward, so nothing is computed
     * twice), unless --full-logits: the same arithmetic row for row */
    peft_chunked_loss_enable(base, !full_logits);
    peft_model *m = NULL;
    if (peft_get_peft_model(ctx, base, LORA_CONFIG, NULL, 0, &m))
        die(ctx, "peft_get_peft_model");
    peft_model_train(m, 0); /* no dropout: same computation as the PyTorch peer */
    printf("load + inject: %.1f ms\n", now_ms() - t0);
    char line[256];
    if (peft_format_trainable_parameters(m, line, sizeof line)) die(ctx, "trainable parameters");
    printf("%s\n", line);

    peft_adamw_config ocfg = {.lr = 1e-4, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8,
                              .weight_decay = 0.01};
    peft_adamw *opt = peft_adamw_new(m, &ocfg);
    if (!opt) die(ctx, "peft_adamw_new");

    /* batch: random tokens, labels = inputs (the model shifts them) */
    static int32_t ids[BATCH * SEQ];
    peft_rng *rng = peft_ctx_rng(ctx);
    for (int i = 0; i < BATCH * SEQ; i++) ids[i] = (int32_t)(peft_rng_next(rng) % 50257);
    peft_model_inputs in = {.B = BATCH, .T = SEQ, .input_ids = ids, .attention_mask = NULL,
                            .labels = ids};

    peft_graph *g = peft_graph_new(rng);
    if (!g) {
        fprintf(stderr, "libpeft lora-step: out of memory (graph)\n");
        return 1;
    }
    printf("threads: openblas_get_num_threads() = %d; OpenBLAS kernels: %s (%s)\n",
           openblas_get_num_threads(), openblas_get_corename(), openblas_get_config());
    printf("batch %d x %d tokens, LoRA r=8 alpha=16 on c_attn, AdamW lr 1e-4; %d warm-up + %d "
           "timed steps; loss: %s\n", BATCH, SEQ, WARMUP, steps,
           full_logits ? "full logits" : "chunked head + cross-entropy");

    int total = WARMUP + steps;
    double *ms = calloc((size_t)total, sizeof *ms);
    double *fwd = calloc((size_t)total, sizeof *fwd), *bwd = calloc((size_t)total, sizeof *bwd),
           *opt_ms = calloc((size_t)total, sizeof *opt_ms), *cpu = calloc((size_t)total, sizeof *cpu);
    float first_loss = 0, last_loss = 0;
    long *faults = calloc((size_t)total, sizeof *faults);
    for (int s = 0; s < total; s++) {
        struct rusage r0, r1;
        getrusage(RUSAGE_SELF, &r0);
        double a = now_ms();
        peft_graph_reset(g);
        peft_graph_set_recording(g, 1);
        peft_model_outputs out;
        if (peft_model_forward(m, g, &in, &out)) die(ctx, "forward");
        if (!out.loss) {
            fprintf(stderr, "libpeft lora-step: forward returned no loss\n");
            return 1;
        }
        double b = now_ms();
        if (peft_graph_backward(g, out.loss)) {
            fprintf(stderr, "libpeft lora-step: backward failed (%s)\n", peft_errmsg(ctx));
            return 1;
        }
        double c = now_ms();
        peft_adamw_step(opt, 0);
        double d = now_ms();
        getrusage(RUSAGE_SELF, &r1);
        faults[s] = r1.ru_minflt - r0.ru_minflt;
        cpu[s] = cpu_ms_between(&r0, &r1);
        float loss = peft_f32(out.loss)[0];
        if (s == 0) first_loss = loss;
        last_loss = loss;
        ms[s] = d - a;
        fwd[s] = b - a;
        bwd[s] = c - b;
        opt_ms[s] = d - c;
        printf("step %d%s: %.1f ms (forward %.1f, backward %.1f, adamw %.1f), loss %.6f, "
               "%ld minor page faults\n", s, s < WARMUP ? " (warm-up)" : "", ms[s], fwd[s],
               bwd[s], opt_ms[s], loss, faults[s]);
    }

    double *tm = ms + WARMUP;
    double med = median(tm, steps), mean = 0;
    for (int i = 0; i < steps; i++) mean += tm[i];
    mean /= steps;
    const double peak_mb = rss_mb(1);
    double arena_mb = peft_graph_peak_bytes(g) / (1024.0 * 1024.0);
    double tps = BATCH * SEQ / (med / 1e3);

    printf("timed: median %.1f ms/step (forward %.1f, backward %.1f, adamw %.1f), mean %.1f "
           "ms/step, CPU %.1f ms/step (all threads)\n", med, median(fwd + WARMUP, steps),
           median(bwd + WARMUP, steps), median(opt_ms + WARMUP, steps), mean,
           median(cpu + WARMUP, steps));
    printf("peak arena %.1f MB, optimizer state %.2f MB\n", arena_mb,
           peft_adamw_state_bytes(opt) / (1024.0 * 1024.0));
    printf("loss: first step %.6f, last step %.6f\n", first_loss, last_loss);
    printf("libpeft lora-step: %.1f ms/step, %.0f tokens/s, peak RSS %.1f MB\n", med, tps, peak_mb);
    printf("RESULT ms_per_step=%.1f mean_ms=%.1f tokens_per_s=%.0f peak_rss_mb=%.1f "
           "peak_arena_mb=%.1f cpu_ms=%.1f faults=%ld threads=%d\n", med, mean, tps, peak_mb,
           arena_mb, median(cpu + WARMUP, steps), faults[total - 1], openblas_get_num_threads());

    free(ms);
    free(fwd);
    free(bwd);
    free(opt_ms);
    free(cpu);
    free(faults);
    peft_graph_free(g);
    peft_adamw_free(opt);
    peft_model_free(m);
    peft_ctx_free(ctx);
    return 0;
}
