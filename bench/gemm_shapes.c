/* gemm_shapes.c — benchmark: the f32 GEMMs of one GPT-2 124M LoRA training step (batch 4 x 128,
 * bench/lora_step.c), timed on whichever CBLAS this program is linked with, so that BLAS
 * libraries can be compared on the shapes that matter (bench/blas_compare.sh links it with
 * OpenBLAS and with BLIS). Thread count: the library's own variable (OPENBLAS_NUM_THREADS,
 * BLIS_NUM_THREADS). Prints GFLOP/s per shape and the step's GEMM time (each shape times its
 * count per step), in wall time and in CPU time of the process (all threads): on a machine
 * shared with other work, the CPU time of a 1-thread run is the fair figure. Last line:
 * RESULT gemm_ms=... gemm_cpu_ms=... */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

typedef struct {
    const char *what;
    int ta, tb, M, N, K, count; /* C (M,N) = op(A) (M,K) op(B) (K,N), count per step */
} shape;

/* N = B*T = 512 rows, C = 768, 3C = 2304, 4C = 3072, V = 50257, 12 layers, 12 heads of 64 */
static const shape SHAPES[] = {
    {"c_attn forward   x W (512x768 . 768x2304)", 0, 0, 512, 2304, 768, 12},
    {"c_attn dx        dY W^T (512x2304 . 2304x768)", 0, 1, 512, 768, 2304, 12},
    {"attn.c_proj fwd  (512x768 . 768x768)", 0, 0, 512, 768, 768, 12},
    {"attn.c_proj dx   (512x768 . 768x768^T)", 0, 1, 512, 768, 768, 12},
    {"mlp.c_fc forward (512x768 . 768x3072)", 0, 0, 512, 3072, 768, 12},
    {"mlp.c_fc dx      (512x3072 . 3072x768)", 0, 1, 512, 768, 3072, 12},
    {"mlp.c_proj fwd   (512x3072 . 3072x768)", 0, 0, 512, 768, 3072, 12},
    {"mlp.c_proj dx    (512x768 . 768x3072)", 0, 1, 512, 3072, 768, 12},
    {"lm_head forward  x wte^T (512x768 . 768x50257)", 0, 1, 512, 50257, 768, 1},
    {"lm_head dx       dL wte (512x50257 . 50257x768)", 0, 0, 512, 768, 50257, 1},
    {"attention QK^T   per head (128x64 . 64x128)", 0, 1, 128, 128, 64, 48 * 12},
    {"attention PV     per head (128x128 . 128x64)", 0, 0, 128, 64, 128, 48 * 12},
    {"attention dP, dQ per head (128x64 . 64x128)", 0, 1, 128, 128, 64, 2 * 48 * 12},
    {"attention dK, dV per head (128x128^T . 128x64)", 1, 0, 128, 64, 128, 2 * 48 * 12},
};

static double clock_ms(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static float *randbuf(size_t n)
{
    float *p = malloc(n * sizeof *p);
    if (!p) { fprintf(stderr, "out of memory\n"); exit(1); }
    for (size_t i = 0; i < n; i++) p[i] = (float)((i * 2654435761u) % 1000) / 1000.0f - 0.5f;
    return p;
}

int main(int argc, char **argv)
{
    const int reps = argc > 1 ? atoi(argv[1]) : 3;
    setvbuf(stdout, NULL, _IOLBF, 0);
    double total = 0.0, total_cpu = 0.0;
    for (size_t s = 0; s < sizeof SHAPES / sizeof *SHAPES; s++) {
        const shape *p = &SHAPES[s];
        float *a = randbuf((size_t)p->M * p->K), *b = randbuf((size_t)p->K * p->N),
              *c = randbuf((size_t)p->M * p->N);
        const int lda = p->ta ? p->M : p->K, ldb = p->tb ? p->K : p->N;
        /* enough calls per timing to last ~ a few ms for the small shapes */
        const int inner = p->count > 24 ? 24 : 1;
        double best = 1e30, best_cpu = 1e30;
        for (int r = 0; r < reps + 1; r++) {
            const double t0 = clock_ms(CLOCK_MONOTONIC), c0 = clock_ms(CLOCK_PROCESS_CPUTIME_ID);
            for (int i = 0; i < inner; i++)
                cblas_sgemm(CblasRowMajor, p->ta ? CblasTrans : CblasNoTrans,
                            p->tb ? CblasTrans : CblasNoTrans, p->M, p->N, p->K, 1.0f, a, lda, b,
                            ldb, 0.0f, c, p->N);
            const double dt = (clock_ms(CLOCK_MONOTONIC) - t0) / inner;
            const double dc = (clock_ms(CLOCK_PROCESS_CPUTIME_ID) - c0) / inner;
            if (r > 0 && dt < best) best = dt; /* the first call warms up */
            if (r > 0 && dc < best_cpu) best_cpu = dc;
        }
        const double gflops = 2.0 * p->M * p->N * p->K / (best * 1e6);
        total += best * p->count;
        total_cpu += best_cpu * p->count;
        printf("%-50s %8.3f ms (CPU %8.3f ms) %6.1f GFLOP/s  x%d\n", p->what, best, best_cpu,
               gflops, p->count);
        free(a);
        free(b);
        free(c);
    }
    printf("GEMMs of one step (best of %d each, times their count): %.1f ms, CPU %.1f ms\n", reps,
           total, total_cpu);
    printf("RESULT gemm_ms=%.1f gemm_cpu_ms=%.1f\n", total, total_cpu);
    return 0;
}
