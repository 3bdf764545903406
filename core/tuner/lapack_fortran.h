/* lapack_fortran.h — the LAPACK routines the core calls (host_linalg.c; dgesdd_ for the suites'
 * references), declared as OpenBLAS exports them: the Fortran ABI, every argument by address,
 * column-major, gfortran's hidden length of each CHARACTER argument passed as a size_t after the
 * others (as LAPACK's own lapack.h does with LAPACK_FORTRAN_STRLEN_END). libopenblas.so.0
 * carries LAPACK itself, so nothing links LAPACKE: that wrapper pulled in two more copies of
 * OpenBLAS (Debian's libblas.so.3 and liblapack.so.3), libtmglib and libgfortran, loaded and
 * relocated at the start of every process. Private: no public header names these. */
#ifndef PEFT_LAPACK_FORTRAN_H
#define PEFT_LAPACK_FORTRAN_H

#include <stddef.h>

/* a (m, n) col-major, destroyed -> s (min(m, n)), u (ldu, *), vt (ldvt, n); jobz 'S': thin */
void sgesdd_(const char *jobz, const int *m, const int *n, float *a, const int *lda, float *s,
             float *u, const int *ldu, float *vt, const int *ldvt, float *work, const int *lwork,
             int *iwork, int *info, size_t jobz_len);
/* a (m, n) col-major -> R above the diagonal, Householder vectors below, tau (min(m, n)) */
void sgeqrf_(const int *m, const int *n, float *a, const int *lda, float *tau, float *work,
             const int *lwork, int *info);
/* a (m, n) col-major holding k reflectors (sgeqrf's) -> Q's first n columns, in place */
void sorgqr_(const int *m, const int *n, const int *k, float *a, const int *lda, const float *tau,
             float *work, const int *lwork, int *info);
/* a (n, n) col-major -> its LU, ipiv (n); b (n, nrhs) col-major -> x = a^-1 b, in place */
void sgesv_(const int *n, const int *nrhs, float *a, const int *lda, int *ipiv, float *b,
            const int *ldb, int *info);
/* a (m, n) col-major -> its LU with partial pivoting, ipiv (min(m, n)) */
void sgetrf_(const int *m, const int *n, float *a, const int *lda, int *ipiv, int *info);
/* a (n, n) col-major LU from sgetrf + ipiv -> a^-1, in place */
void sgetri_(const int *n, float *a, const int *lda, const int *ipiv, float *work, const int *lwork,
             int *info);
/* the double SVD, for the suites' references (tests/test_combine.c); as sgesdd_ */
void dgesdd_(const char *jobz, const int *m, const int *n, double *a, const int *lda, double *s,
             double *u, const int *ldu, double *vt, const int *ldvt, double *work, const int *lwork,
             int *iwork, int *info, size_t jobz_len);

#endif
