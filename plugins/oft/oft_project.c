/* oft_project.c — coft's projection of OFT's blocks onto the ball of radius eps (PEFT's
 * _project_batch under no_grad). The Cayley transform itself is the SDK's
 * (peft/plugin_cayley.h), shared with BOFT. */
#include <math.h>

#include "oft.h"

void oft_project(int64_t nblk, int64_t n, float *r, double radius)
{
    const float eps = (float)radius;
    for (int64_t k = 0; k < nblk; k++) {
        float *blk = r + k * n * n;
        double ss = 0;
        for (int64_t i = 0; i < n * n; i++) ss += (double)blk[i] * blk[i];
        const float norm = (float)sqrt(ss);
        /* a block already projected (norm eps up to rounding) is left alone, so that repeated
         * forwards do not keep nudging it (PEFT re-projects it each time, by ~1e-7): the model
         * stays a function of its parameters, bit for bit */
        if (norm <= eps * (1.0f + 1e-5f)) continue;
        for (int64_t i = 0; i < n * n; i++) blk[i] = eps * (blk[i] / norm);
    }
}
