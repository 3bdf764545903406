/* gemm.c — ops_sgemm (gemm.h): OpenBLAS, or oneDNN's dnnl_sgemm when PEFT_GEMM=onednn. oneDNN
 * is dlopen'ed (libdnnl.so.2; no build dependency) on the first call; when it is missing the
 * product stays on OpenBLAS (one warning on stderr). Why a second library: OpenBLAS's threads
 * wait for each other with sched_yield, which on a machine shared with other work hands the
 * core away for a whole time slice at every synchronisation; oneDNN's OpenMP threads spin and
 * keep it (bench/gemm_ceiling, README Speed). oneDNN splits the sum over K across threads for
 * some shapes, so its results can differ in the last bits between thread counts; OpenBLAS's do
 * not (test_kernels holds that), which is why it stays the default. */
#define _GNU_SOURCE
#include "core/ops/gemm.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern int openblas_get_num_threads(void);

typedef int (*dnnl_sgemm_fn)(char, char, int64_t, int64_t, int64_t, float, const float *,
                             int64_t, const float *, int64_t, float, float *, int64_t);
static dnnl_sgemm_fn dnnl_sgemm_p;
static void (*omp_set_threads_p)(int);
static pthread_once_t gemm_once = PTHREAD_ONCE_INIT;
static __thread int omp_threads_set; /* the OpenMP thread count this thread last asked for */

/* loads oneDNN's dnnl_sgemm: 0, or -1 with *why set */
static int load_onednn(const char **why)
{
    void *h = dlopen("libdnnl.so.2", RTLD_NOW | RTLD_LOCAL);
    dnnl_sgemm_fn f = h ? (dnnl_sgemm_fn)dlsym(h, "dnnl_sgemm") : NULL;
    if (!f) {
        *why = h ? "has no dnnl_sgemm" : "does not load (apt-get install libdnnl2)";
        return -1;
    }
    omp_set_threads_p = (void (*)(int))dlsym(h, "omp_set_num_threads");
    dnnl_sgemm_p = f;
    return 0;
}

static void gemm_init(void)
{
    const char *want = getenv("PEFT_GEMM"), *why = NULL;
    if (!want || strcmp(want, "onednn")) return;
    if (load_onednn(&why))
        fprintf(stderr, "libpeft: PEFT_GEMM=onednn but libdnnl.so.2 %s; using OpenBLAS\n", why);
}

int ops_gemm_use(const char *name)
{
    const char *why = NULL;
    pthread_once(&gemm_once, gemm_init);
    if (!strcmp(name, "openblas")) {
        dnnl_sgemm_p = NULL;
        return 0;
    }
    return strcmp(name, "onednn") ? -1 : dnnl_sgemm_p ? 0 : load_onednn(&why);
}

const char *ops_gemm_backend(void)
{
    pthread_once(&gemm_once, gemm_init);
    return dnnl_sgemm_p ? "onednn" : "openblas";
}

void ops_sgemm(enum CBLAS_ORDER order, enum CBLAS_TRANSPOSE ta, enum CBLAS_TRANSPOSE tb, int M,
               int N, int K, float alpha, const float *A, int lda, const float *B, int ldb,
               float beta, float *C, int ldc)
{
    pthread_once(&gemm_once, gemm_init);
    if (dnnl_sgemm_p && order == CblasRowMajor && M > 0 && N > 0 && K > 0) {
        /* one thread-count knob for the whole library: OpenBLAS's (OPENBLAS_NUM_THREADS,
         * openblas_set_num_threads), which the pool follows too */
        const int t = openblas_get_num_threads();
        if (omp_set_threads_p && t != omp_threads_set) {
            omp_set_threads_p(t);
            omp_threads_set = t;
        }
        if (dnnl_sgemm_p(ta == CblasTrans ? 'T' : 'N', tb == CblasTrans ? 'T' : 'N', M, N, K,
                         alpha, A, lda, B, ldb, beta, C, ldc) == 0)
            return;
    }
    cblas_sgemm(order, ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
