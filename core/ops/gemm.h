/* gemm.h — the single-precision matrix product every kernel calls (core/ops/ and the host
 * table's sgemm): OpenBLAS's cblas_sgemm by default, oneDNN's dnnl_sgemm when the environment
 * says PEFT_GEMM=onednn and libdnnl.so.2 loads (README, Speed: faster on a loaded machine,
 * results not bit-identical across thread counts). Core-internal. */
#ifndef PEFT_CORE_OPS_GEMM_H
#define PEFT_CORE_OPS_GEMM_H

#include <cblas.h>

/* cblas_sgemm's contract: C (M,N) = alpha op(A) (M,K) op(B) (K,N) + beta C; row-major calls may
 * go to oneDNN (with as many threads as OpenBLAS uses), anything else to OpenBLAS */
__attribute__((visibility("hidden"))) void
ops_sgemm(enum CBLAS_ORDER order, enum CBLAS_TRANSPOSE ta, enum CBLAS_TRANSPOSE tb, int M, int N,
          int K, float alpha, const float *A, int lda, const float *B, int ldb, float beta,
          float *C, int ldc);

/* "openblas" or "onednn": the library ops_sgemm uses (static string) */
__attribute__((visibility("hidden"))) const char *ops_gemm_backend(void);

/* switches the library from now on ("openblas" or "onednn"; for the tests, which compare
 * them): 0, or -1 when it is unknown or does not load (the library unchanged) */
__attribute__((visibility("hidden"))) int ops_gemm_use(const char *name);

#endif
