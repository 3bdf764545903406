/* host_linalg.h — SVD, QR and writable base weights for the plugin host table (ABI 1.1), batched
 * solve and inverse (ABI 1.3). */
#ifndef PEFT_HOST_LINALG_H
#define PEFT_HOST_LINALG_H

#include "peft/plugin.h"

int peft_host_svd(int m, int n, const float *a, float *u, float *s, float *vt);
int peft_host_qr(int m, int n, const float *a, float *q, float *r);
float *peft_host_site_weight_writable(const peft_site_info *info);
/* ABI 1.3: batched solve / inverse through LAPACK (see peft/plugin.h) */
int peft_host_solve(int batch, int n, int nrhs, const float *a, const float *b, float *x);
int peft_host_inverse(int batch, int n, const float *a, float *inv);

#endif
