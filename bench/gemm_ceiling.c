/* gemm_ceiling.c — benchmark (part of `make bench`, never a test): this machine's sgemm speed on
 * the exact GEMM shapes of the two training steps libpeft is measured on, and the floor those
 * GEMMs put under each step, i.e. the most any implementation doing these FLOPs can gain:
 *   - GPT-2 124M LoRA step (bench/lora_step.c: batch 4 x 128, LoRA r=8 on c_attn, f32 base,
 *     chunked head + loss over 8256-row vocabulary tiles);
 *   - Llama-3.2-1B shape (bench/real_shape.c: B=1, T=512, bf16 base read in weight tiles of
 *     2^19 floats by core/ops/linear.c, LoRA r=16 on every linear, chunked head over 2048-row
 *     tiles, attention probabilities recomputed in the backward), as libpeft issues them, and the
 *     same FLOPs as whole-weight GEMMs (what tiling costs).
 * Libraries are dlopen'ed (no build dependency): OpenBLAS (cblas_sgemm), oneDNN (dnnl_sgemm,
 * libdnnl.so.2) and BLIS (cblas_sgemm of libblis.so.4, or GEMM_CEILING_BLIS=path, or the copy
 * bench/blas_compare.sh unpacks under build/blis), each at 1 thread and at every core, each
 * (library, threads) in a forked child so that thread pools do not meet. Each distinct shape is
 * timed (best of several calls, wall clock) and multiplied by its count per step.
 * With PyTorch's measured step time (--torch-gpt2-ms MS, --torch-1b-ms MS, or the files
 * <dir of this program>/torch_gpt2.ms and torch_1b.ms that bench/run.sh and bench/real_shape.sh
 * write), it prints the largest speed ratio over PyTorch the GEMM floor allows.
 * Usage: gemm_ceiling [--quick] [--threads "1 2"] [--libs "openblas onednn blis"]
 *                     [--torch-gpt2-ms MS] [--torch-1b-ms MS]
 * Last lines: RESULT step=... lib=... threads=... floor_ms=... */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

typedef struct {
    const char *what;
    char ta, tb;      /* 'N' or 'T' */
    int M, N, K;      /* C (M,N) = op(A) (M,K) op(B) (K,N), all row-major */
    double count;     /* calls per step */
} shape;

/* ---- GPT-2 124M: N = 4*128 = 512 rows, C 768, 12 layers, 48 (batch, head) pairs of T=128,
 * D=64; f32 Conv1D weights (in, out) used whole; loss rows 4*127 = 508, V 50257 in tiles of
 * 2^22/508 = 8256 rows (6 full + 721); probabilities kept (3 MB) */
static const shape GPT2[] = {
    {"c_attn fwd      x W        512x2304x768", 'N', 'N', 512, 2304, 768, 12},
    {"c_attn dx       dY W^T     512x768x2304", 'N', 'T', 512, 768, 2304, 11},
    {"attn.c_proj fwd            512x768x768", 'N', 'N', 512, 768, 768, 12},
    {"attn.c_proj dx             512x768x768", 'N', 'T', 512, 768, 768, 12},
    {"mlp.c_fc fwd               512x3072x768", 'N', 'N', 512, 3072, 768, 12},
    {"mlp.c_fc dx                512x768x3072", 'N', 'T', 512, 768, 3072, 12},
    {"mlp.c_proj fwd             512x768x3072", 'N', 'N', 512, 768, 3072, 12},
    {"mlp.c_proj dx              512x3072x768", 'N', 'T', 512, 3072, 768, 12},
    {"LoRA x A, dY B^T (r=8)     512x8x768", 'N', 'N', 512, 8, 768, 12 * 2},
    {"LoRA (xA) B, d(xA) A       512x2304x8", 'N', 'N', 512, 2304, 8, 12 * 2},
    {"LoRA dA, dB (K=512)        8x2304x512", 'T', 'N', 8, 2304, 512, 12 * 2},
    {"head tile  L = h W^T       508x8256x768", 'N', 'T', 508, 8256, 768, 50257.0 / 8256},
    {"head tile  acc += E W      508x768x8256", 'N', 'N', 508, 768, 8256, 50257.0 / 8256},
    {"attn QK^T per head         128x128x64", 'N', 'T', 128, 128, 64, 48 * 12},
    {"attn PV per head           128x64x128", 'N', 'N', 128, 64, 128, 48 * 12},
    {"attn dP per head           128x128x64", 'N', 'T', 128, 128, 64, 48 * 12},
    {"attn dQ per head           128x64x128", 'N', 'N', 128, 64, 128, 48 * 12},
    {"attn dK, dV per head       128x64x128^T", 'T', 'N', 128, 64, 128, 2 * 48 * 12},
};

/* ---- Llama-3.2-1B: N = 512 rows, C 2048, q/o 2048x2048, k/v 512x2048 (GQA 32/8 heads of
 * 64), gate/up 8192x2048, down 2048x8192, 16 layers; weights (out, in) bf16, widened 2^19
 * floats at a time: 256 rows of 2048 or 64 rows of 8192. Layer 0's inputs need no dx (the
 * embeddings are frozen): q/k/v/gate/up dx x15. Loss rows 511, V 128256 in tiles of 2048 rows
 * (62.6 tiles). Probabilities (32 MB a layer) recomputed in the backward: QK^T twice. */
#define L1B 16.0
static const shape L1B_TILED[] = {
    {"q,o fwd tiles   x T^T      512x256x2048", 'N', 'T', 512, 256, 2048, L1B * 2 * 8},
    {"k,v fwd tiles              512x256x2048", 'N', 'T', 512, 256, 2048, L1B * 2 * 2},
    {"gate,up fwd tiles          512x256x2048", 'N', 'T', 512, 256, 2048, L1B * 2 * 32},
    {"down fwd tiles             512x64x8192", 'N', 'T', 512, 64, 8192, L1B * 32},
    {"q dx tiles      dY_t T     512x2048x256", 'N', 'N', 512, 2048, 256, (L1B - 1) * 8},
    {"o dx tiles                 512x2048x256", 'N', 'N', 512, 2048, 256, L1B * 8},
    {"k,v dx tiles               512x2048x256", 'N', 'N', 512, 2048, 256, (L1B - 1) * 2 * 2},
    {"gate,up dx tiles           512x2048x256", 'N', 'N', 512, 2048, 256, (L1B - 1) * 2 * 32},
    {"down dx tiles              512x8192x64", 'N', 'N', 512, 8192, 64, L1B * 32},
    {"LoRA x A (r=16)            512x16x2048", 'N', 'T', 512, 16, 2048, L1B * 6},
    {"LoRA x A down              512x16x8192", 'N', 'T', 512, 16, 8192, L1B},
    {"LoRA (xA) B^T, d(xA) A     512x2048x16", 'N', 'T', 512, 2048, 16, L1B * 2 * 3},
    {"LoRA (xA) B^T gate,up      512x8192x16", 'N', 'T', 512, 8192, 16, L1B * 2 * 2},
    {"LoRA (xA) B^T k,v          512x512x16", 'N', 'T', 512, 512, 16, L1B * 2 * 2},
    {"LoRA dY B                  512x16x2048", 'N', 'N', 512, 16, 2048, L1B * 3},
    {"LoRA dY B gate,up          512x16x8192", 'N', 'N', 512, 16, 8192, L1B * 2},
    {"LoRA dB = dY^T (xA)        2048x16x512", 'T', 'N', 2048, 16, 512, L1B * 3},
    {"LoRA dB gate,up            8192x16x512", 'T', 'N', 8192, 16, 512, L1B * 2},
    {"LoRA dA = d(xA)^T x        16x2048x512", 'T', 'N', 16, 2048, 512, L1B * 6},
    {"LoRA dA down               16x8192x512", 'T', 'N', 16, 8192, 512, L1B},
    {"head tile  L = h W^T       511x2048x2048", 'N', 'T', 511, 2048, 2048, 128256.0 / 2048},
    {"head tile  acc += E W      511x2048x2048", 'N', 'N', 511, 2048, 2048, 128256.0 / 2048},
    {"attn QK^T per head (x2)    512x512x64", 'N', 'T', 512, 512, 64, L1B * 32 * 2},
    {"attn PV per head           512x64x512", 'N', 'N', 512, 64, 512, L1B * 32},
    {"attn dP per head           512x512x64", 'N', 'T', 512, 512, 64, L1B * 32},
    {"attn dQ per head           512x64x512", 'N', 'N', 512, 64, 512, L1B * 32},
    {"attn dK, dV per head       512x64x512^T", 'T', 'N', 512, 64, 512, L1B * 32 * 2},
};

#define L1B_NBASE 9 /* the first 9 rows above are the base linears */

/* the base linears of the 1B step as whole-weight GEMMs (the same FLOPs as the tiles above):
 * what an f32 copy of each weight would allow */
static const shape L1B_WHOLE[] = {
    {"q,o fwd whole   x W^T      512x2048x2048", 'N', 'T', 512, 2048, 2048, L1B * 2},
    {"k,v fwd whole              512x512x2048", 'N', 'T', 512, 512, 2048, L1B * 2},
    {"gate,up fwd whole          512x8192x2048", 'N', 'T', 512, 8192, 2048, L1B * 2},
    {"down fwd whole             512x2048x8192", 'N', 'T', 512, 2048, 8192, L1B},
    {"q,o dx whole    dY W       512x2048x2048", 'N', 'N', 512, 2048, 2048, L1B * 2 - 1},
    {"k,v dx whole               512x2048x512", 'N', 'N', 512, 2048, 512, (L1B - 1) * 2},
    {"gate,up dx whole           512x2048x8192", 'N', 'N', 512, 2048, 8192, (L1B - 1) * 2},
    {"down dx whole              512x8192x2048", 'N', 'N', 512, 8192, 2048, L1B},
};

typedef struct {
    const char *name;
    const shape *s;
    int n;
} table;

static const table TABLES[] = {
    {"gpt2", GPT2, sizeof GPT2 / sizeof *GPT2},
    {"1b", L1B_TILED, sizeof L1B_TILED / sizeof *L1B_TILED},
    {"1b-whole", L1B_WHOLE, sizeof L1B_WHOLE / sizeof *L1B_WHOLE},
};
#define NTABLES (int)(sizeof TABLES / sizeof *TABLES)
#define MAXSHAPES 32

/* ---- the libraries -------------------------------------------------------------------------- */

typedef void (*cblas_sgemm_fn)(int, int, int, int, int, int, float, const float *, int,
                               const float *, int, float, float *, int);
typedef int (*dnnl_sgemm_fn)(char, char, int64_t, int64_t, int64_t, float, const float *,
                             int64_t, const float *, int64_t, float, float *, int64_t);

enum { LIB_OPENBLAS, LIB_DNNL, LIB_BLIS, NLIBS };
static const char *LIBNAME[NLIBS] = {"openblas", "onednn", "blis"};

static cblas_sgemm_fn cblas_fn;
static dnnl_sgemm_fn dnnl_fn;

static char exe_dir[PATH_MAX];

/* dlopen the library and set its thread count; 0 or -1 (not present) */
static int lib_open(int lib, int threads)
{
    char buf[64];
    snprintf(buf, sizeof buf, "%d", threads);
    if (lib == LIB_OPENBLAS) {
        void *h = dlopen("libopenblas.so.0", RTLD_NOW);
        if (!h) return -1;
        cblas_fn = (cblas_sgemm_fn)dlsym(h, "cblas_sgemm");
        void (*set)(int) = (void (*)(int))dlsym(h, "openblas_set_num_threads");
        if (!cblas_fn || !set) return -1;
        set(threads);
        return 0;
    }
    if (lib == LIB_DNNL) {
        setenv("OMP_NUM_THREADS", buf, 1); /* oneDNN's Debian build runs on OpenMP */
        setenv("DNNL_VERBOSE", "0", 1);
        void *h = dlopen("libdnnl.so.2", RTLD_NOW);
        if (!h) return -1;
        dnnl_fn = (dnnl_sgemm_fn)dlsym(h, "dnnl_sgemm");
        void (*set)(int) = (void (*)(int))dlsym(h, "omp_set_num_threads");
        if (set) set(threads);
        return dnnl_fn ? 0 : -1;
    }
    setenv("BLIS_NUM_THREADS", buf, 1);
    const char *env = getenv("GEMM_CEILING_BLIS");
    char local[PATH_MAX + 64];
    snprintf(local, sizeof local, "%s/../blis/usr/lib/x86_64-linux-gnu/blis-pthread/libblis.so.4",
             exe_dir);
    const char *cand[] = {env, "libblis.so.4", "libblis.so", local};
    void *h = NULL;
    for (size_t i = 0; i < sizeof cand / sizeof *cand && !h; i++)
        if (cand[i] && *cand[i]) h = dlopen(cand[i], RTLD_NOW | RTLD_LOCAL);
    if (!h) return -1;
    cblas_fn = (cblas_sgemm_fn)dlsym(h, "cblas_sgemm");
    void (*set)(int64_t) = (void (*)(int64_t))dlsym(h, "bli_thread_set_num_threads");
    if (set) set(threads);
    return cblas_fn ? 0 : -1;
}

static void gemm(int lib, const shape *p, const float *a, const float *b, float *c)
{
    const int lda = p->ta == 'T' ? p->M : p->K, ldb = p->tb == 'T' ? p->K : p->N;
    if (lib == LIB_DNNL)
        dnnl_fn(p->ta, p->tb, p->M, p->N, p->K, 1.0f, a, lda, b, ldb, 1.0f, c, p->N);
    else /* CblasRowMajor 101, CblasNoTrans 111, CblasTrans 112 */
        cblas_fn(101, p->ta == 'T' ? 112 : 111, p->tb == 'T' ? 112 : 111, p->M, p->N, p->K,
                 1.0f, a, lda, b, ldb, 1.0f, c, p->N);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static float *buf(size_t n)
{
    float *p = malloc(n * sizeof *p);
    if (!p) { fprintf(stderr, "gemm_ceiling: out of memory\n"); exit(1); }
    for (size_t i = 0; i < n; i++) p[i] = (float)((i * 2654435761u) % 1000) * 1e-6f - 5e-4f;
    return p;
}

/* best seconds of one call of p: at least 3 timed calls and ~budget seconds after a warm-up */
static double time_shape(int lib, const shape *p, double budget)
{
    float *a = buf((size_t)p->M * p->K), *b = buf((size_t)p->K * p->N),
          *c = buf((size_t)p->M * p->N);
    gemm(lib, p, a, b, c);
    double best = 1e30, spent = 0.0;
    for (int r = 0; r < 3 || (spent < budget && r < 200); r++) {
        const double t0 = now_s();
        gemm(lib, p, a, b, c);
        const double dt = now_s() - t0;
        spent += dt;
        if (dt < best) best = dt;
    }
    free(a);
    free(b);
    free(c);
    return best;
}

static double flops(const shape *p) { return 2.0 * p->M * p->N * p->K; }

static double read_ms(const char *name)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/%s", exe_dir, name);
    FILE *f = fopen(path, "r");
    double v = 0.0;
    if (f) {
        if (fscanf(f, "%lf", &v) != 1) v = 0.0;
        fclose(f);
    }
    return v;
}

int main(int argc, char **argv)
{
    double budget = 0.25, torch_ms[NTABLES] = {0};
    char threads_arg[128] = "", libs_arg[128] = "openblas onednn blis";
    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--quick")) budget = 0.05;
        else if (!strcmp(argv[i], "--threads") && v) snprintf(threads_arg, sizeof threads_arg, "%s", argv[++i]);
        else if (!strcmp(argv[i], "--libs") && v) snprintf(libs_arg, sizeof libs_arg, "%s", argv[++i]);
        else if (!strcmp(argv[i], "--torch-gpt2-ms") && v) torch_ms[0] = atof(argv[++i]);
        else if (!strcmp(argv[i], "--torch-1b-ms") && v) torch_ms[1] = atof(argv[++i]);
        else {
            fprintf(stderr, "usage: %s [--quick] [--threads \"1 2\"] [--libs \"openblas onednn blis\"] "
                            "[--torch-gpt2-ms MS] "
                            "[--torch-1b-ms MS]\n", argv[0]);
            return 2;
        }
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    ssize_t len = readlink("/proc/self/exe", exe_dir, sizeof exe_dir - 1);
    exe_dir[len > 0 ? len : 0] = 0;
    char *slash = strrchr(exe_dir, '/');
    if (slash) *slash = 0; else strcpy(exe_dir, ".");
    if (torch_ms[0] <= 0) torch_ms[0] = read_ms("torch_gpt2.ms");
    if (torch_ms[1] <= 0) torch_ms[1] = read_ms("torch_1b.ms");

    const long ncpu = sysconf(_SC_NPROCESSORS_ONLN) > 0 ? sysconf(_SC_NPROCESSORS_ONLN) : 1;
    int thr[8], nthr = 0;
    if (*threads_arg) {
        for (char *s = threads_arg, *e; nthr < 8; s = e) {
            long t = strtol(s, &e, 10);
            if (e == s) break;
            if (t > 0) thr[nthr++] = (int)t;
        }
    }
    if (!nthr) {
        thr[nthr++] = 1;
        if (ncpu > 1) thr[nthr++] = (int)ncpu;
    }
    char model[256] = "?";
    FILE *ci = fopen("/proc/cpuinfo", "r");
    if (ci) {
        char line[512];
        while (fgets(line, sizeof line, ci))
            if (!strncmp(line, "model name", 10) && strchr(line, ':')) {
                snprintf(model, sizeof model, "%s", strchr(line, ':') + 2);
                model[strcspn(model, "\n")] = 0;
                break;
            }
        fclose(ci);
    }
    double la[3] = {0};
    if (getloadavg(la, 3) < 0) la[0] = -1;
    printf("gemm ceiling: %s, %ld cores, load average %.2f; best of >= 3 calls per shape\n", model,
           ncpu, la[0]);

    /* results[lib][thread index][table][shape]: seconds per call, < 0 when absent */
    const size_t nres = (size_t)NLIBS * 8 * NTABLES * MAXSHAPES;
    double *res = mmap(NULL, nres * sizeof *res, PROT_READ | PROT_WRITE,
                       MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    if (res == MAP_FAILED) return 1;
#define RES(l, ti, t, s) res[(((size_t)(l) * 8 + (ti)) * NTABLES + (t)) * MAXSHAPES + (s)]
    for (size_t i = 0; i < nres; i++) res[i] = -1.0;
    int present[NLIBS] = {0};
    for (int l = 0; l < NLIBS; l++) {
        if (!strstr(libs_arg, LIBNAME[l])) continue;
        for (int ti = 0; ti < nthr; ti++) {
            fflush(stdout);
            pid_t pid = fork();
            if (pid == 0) {
                if (lib_open(l, thr[ti])) _exit(3);
                for (int t = 0; t < NTABLES; t++)
                    for (int s = 0; s < TABLES[t].n; s++)
                        RES(l, ti, t, s) = time_shape(l, &TABLES[t].s[s], budget);
                _exit(0);
            }
            int st = 0;
            if (pid < 0 || waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st)) {
                if (pid > 0 && WIFEXITED(st) && WEXITSTATUS(st) == 3)
                    printf("%s: not present (dlopen failed)%s\n", LIBNAME[l],
                           l == LIB_BLIS ? "; `make bench-blas` unpacks Debian's BLIS under build/blis" : "");
                else
                    printf("%s, %d thread(s): failed\n", LIBNAME[l], thr[ti]);
                break;
            }
            present[l] = 1;
        }
    }

    for (int t = 0; t < NTABLES; t++) {
        const table *tb = &TABLES[t];
        printf("\n== %s step: GFLOP/s per shape (count per step) ==\n%-42s %7s", tb->name, "shape",
               "count");
        for (int l = 0; l < NLIBS; l++)
            for (int ti = 0; ti < nthr && present[l]; ti++) {
                char h[32];
                snprintf(h, sizeof h, "%.8s/%dt", LIBNAME[l], thr[ti]);
                printf(" %12s", h);
            }
        printf("\n");
        double gf = 0.0;
        for (int s = 0; s < tb->n; s++) {
            const shape *p = &tb->s[s];
            gf += flops(p) * p->count;
            printf("%-42s %7.1f", p->what, p->count);
            for (int l = 0; l < NLIBS; l++)
                for (int ti = 0; ti < nthr && present[l]; ti++) {
                    const double sec = RES(l, ti, t, s);
                    if (sec > 0) printf(" %12.1f", flops(p) / sec * 1e-9);
                    else printf(" %12s", "-");
                }
            printf("\n");
        }
        printf("%-42s %7s", "floor (sum of count x best call), ms", "");
        for (int l = 0; l < NLIBS; l++)
            for (int ti = 0; ti < nthr && present[l]; ti++) {
                double ms = 0.0;
                for (int s = 0; s < tb->n; s++) ms += RES(l, ti, t, s) * tb->s[s].count * 1e3;
                printf(" %12.0f", ms);
            }
        printf("\n%s: %.1f GFLOP of GEMMs per step\n", tb->name, gf * 1e-9);
        if (t == 2) /* the 1B step's floor with whole-weight base GEMMs instead of tiles */
            for (int l = 0; l < NLIBS; l++)
                for (int ti = 0; ti < nthr && present[l]; ti++) {
                    double ms = 0.0;
                    for (int s = 0; s < TABLES[1].n; s++)
                        if (s >= L1B_NBASE) ms += RES(l, ti, 1, s) * TABLES[1].s[s].count * 1e3;
                    for (int s = 0; s < tb->n; s++) ms += RES(l, ti, t, s) * tb->s[s].count * 1e3;
                    printf("RESULT step=1b-whole-weights lib=%s threads=%d floor_ms=%.1f\n",
                           LIBNAME[l], thr[ti], ms);
                }
        for (int l = 0; l < NLIBS; l++)
            for (int ti = 0; ti < nthr && present[l]; ti++) {
                double ms = 0.0;
                for (int s = 0; s < tb->n; s++) ms += RES(l, ti, t, s) * tb->s[s].count * 1e3;
                printf("RESULT step=%s lib=%s threads=%d floor_ms=%.1f gflops=%.1f", tb->name,
                       LIBNAME[l], thr[ti], ms, gf * 1e-9 / (ms * 1e-3));
                /* PyTorch is measured at the most threads */
                const double tm = t < 2 && ti == nthr - 1 ? torch_ms[t] : 0.0;
                if (tm > 0) printf(" torch_ms=%.1f max_ratio=%.2f", tm, tm / ms);
                printf("\n");
            }
    }
    if (torch_ms[0] <= 0 || torch_ms[1] <= 0)
        printf("(max_ratio = PyTorch's measured step / this floor: pass --torch-gpt2-ms / "
               "--torch-1b-ms, or run `make bench`, whose run.sh and real_shape.sh leave them in "
               "%s/torch_*.ms)\n", exe_dir);
    return 0;
}
