/* blas_check.h — the OpenBLAS kernel-set check (blas_check.c): a warning when OpenBLAS picked
 * pre-AVX kernels on an AVX2 / AVX-512 CPU. */
#ifndef PEFT_CORE_OPS_BLAS_CHECK_H
#define PEFT_CORE_OPS_BLAS_CHECK_H

/* warns once per process (peft_warn) when OpenBLAS's kernels are far below the CPU's */
void ops_blas_check(void);
/* the OPENBLAS_CORETYPE this CPU supports best among SkylakeX / Haswell, or NULL (static) */
const char *ops_blas_coretype_for_cpu(void);
/* 1 when OpenBLAS's kernel set `core` (openblas_get_corename()) predates AVX */
int ops_blas_core_is_old(const char *core);

#endif
