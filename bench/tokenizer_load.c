/* tokenizer_load.c — benchmark: peft_tokenizer_load on the big vocabularies, what a user waits for
 * at every `peft tokenize` / `generate` / `run` start on a real model: Gemma2 (256k vocabulary,
 * 34 MB tokenizer.json), Llama-3 (128k vocabulary, 280k merges), Qwen3 (151k vocabulary).
 * Usage: tokenizer_load [--reps N] [DIR...]. Each DIR is a model directory (tokenizer.json,
 * tokenizer_config.json beside it); without one, the fixtures tests/fixtures/tokenizers/{gemma2,
 * llama3,qwen3} unpacked from their .xz into $PEFT_BUILD/fixtures-unpacked/ (default
 * build/fixtures-unpacked/, where test_tokenizer leaves them; unpacked here when missing).
 * Each directory is loaded once untimed (page cache), then N (5) times; prints the median wall
 * time and the median CPU time of one load (this process, user + system; the minimum too, the
 * steadier figure on a busy machine), the vocabulary size, and a machine-readable RESULT line per
 * directory. */
#define _GNU_SOURCE
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include "peft/peft.h"
#include "peft/tokenizer.h"

#define BENCH_NAME "libpeft tokenizer-load"
#include "bench/bench_util.h"

/* a fixture's directory with tokenizer.json unpacked; caller frees */
static char *fixture_dir(const char *name)
{
    const char *build = getenv("PEFT_BUILD") ? getenv("PEFT_BUILD") : "build";
    const char *fix = getenv("PEFT_FIXTURES") ? getenv("PEFT_FIXTURES") : "tests/fixtures";
    char *out = NULL, *tj = NULL, *cmd = NULL;
    struct stat st;
    if (asprintf(&out, "%s/fixtures-unpacked/%s", build, name) < 0 || asprintf(&tj, "%s/tokenizer.json", out) < 0) {
        fprintf(stderr, BENCH_NAME ": out of memory\n");
        exit(1);
    }
    if (stat(tj, &st)) {
        if (asprintf(&cmd,
                     "mkdir -p '%s' && cp '%s/tokenizers/%s/tokenizer_config.json' '%s/' && "
                     "xz -dc '%s/tokenizers/%s/tokenizer.json.xz' > '%s.tmp' && mv '%s.tmp' '%s'",
                     out, fix, name, out, fix, name, tj, tj, tj) < 0 || system(cmd)) {
            fprintf(stderr, BENCH_NAME ": cannot unpack the %s fixture: %s\n", name, cmd ? cmd : "out of memory");
            exit(1);
        }
    }
    free(cmd);
    free(tj);
    return out;
}

static void bench_dir(const char *dir, int reps)
{
    char err[2048] = "";
    peft_tokenizer *tk = NULL;
    if (peft_tokenizer_load(dir, &tk, err, sizeof err)) {
        fprintf(stderr, BENCH_NAME ": %s\n", err);
        exit(1);
    }
    int32_t vocab = peft_tokenizer_vocab_size(tk);
    peft_tokenizer_free(tk);
    double *wall = malloc((size_t)reps * sizeof *wall), *cpu = malloc((size_t)reps * sizeof *cpu);
    if (!wall || !cpu) {
        fprintf(stderr, BENCH_NAME ": out of memory\n");
        exit(1);
    }
    for (int r = 0; r < reps; r++) {
        struct rusage r0, r1;
        getrusage(RUSAGE_SELF, &r0);
        double t0 = now_ms();
        if (peft_tokenizer_load(dir, &tk, err, sizeof err)) {
            fprintf(stderr, BENCH_NAME ": %s\n", err);
            exit(1);
        }
        peft_tokenizer_free(tk);
        wall[r] = now_ms() - t0;
        getrusage(RUSAGE_SELF, &r1);
        cpu[r] = cpu_ms_between(&r0, &r1);
    }
    double lo = wall[0], clo = cpu[0];
    for (int r = 1; r < reps; r++) {
        if (wall[r] < lo) lo = wall[r];
        if (cpu[r] < clo) clo = cpu[r];
    }
    printf("%-40s vocab %7d  load+free %7.1f ms (median of %d; min %.1f), CPU %7.1f ms (min %.1f)\n", dir, vocab,
           median(wall, reps), reps, lo, median(cpu, reps), clo);
    const char *base = strrchr(dir, '/');
    printf("RESULT tokenizer=%s load_ms=%.1f load_cpu_ms=%.1f load_cpu_min_ms=%.1f\n", base ? base + 1 : dir,
           median(wall, reps), median(cpu, reps), clo);
    free(wall);
    free(cpu);
}

int main(int argc, char **argv)
{
    int reps = 5, first = 1;
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc > 2 && !strcmp(argv[1], "--reps")) {
        reps = atoi(argv[2]);
        first = 3;
    }
    if (reps < 1) reps = 1;
    printf("threads: openblas_get_num_threads() = %d; OpenBLAS kernels: %s (%s)\n", openblas_get_num_threads(),
           openblas_get_corename(), openblas_get_config());
    if (first < argc) {
        for (int i = first; i < argc; i++) bench_dir(argv[i], reps);
        return 0;
    }
    static const char *names[] = {"gemma2", "llama3", "qwen3"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++) {
        char *dir = fixture_dir(names[i]);
        bench_dir(dir, reps);
        free(dir);
    }
    return 0;
}
