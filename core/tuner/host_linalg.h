/* host_linalg.h — SVD, QR and writable base weights for the plugin host table (ABI 1.1). */
#ifndef PEFT_HOST_LINALG_H
#define PEFT_HOST_LINALG_H

#include "peft/plugin.h"

int peft_host_svd(int m, int n, const float *a, float *u, float *s, float *vt);
int peft_host_qr(int m, int n, const float *a, float *q, float *r);
float *peft_host_site_weight_writable(const peft_site_info *info);

#endif
