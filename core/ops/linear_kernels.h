/* linear_kernels.h — the weight-tile kernels of the linear op, for ops that run a linear inside
 * themselves (the chunked cross-entropy). Core-internal. Weights in any storage dtype are read
 * a tile of stored rows at a time (f32 ones too, through a copy: use cblas directly for those). */
#ifndef PEFT_LINEAR_KERNELS_H
#define PEFT_LINEAR_KERNELS_H

#include <stdint.h>
#include "peft/tensor.h"

// x (N, in), w stored (out, in) or (in, out if w_in_out), y (N, out): y = beta y + x W^T. 0 / -1 OOM
int peft_linear_kernel_fwd(const float *x, const peft_tensor *w, int w_in_out, int64_t N,
                           int64_t in, int64_t outf, float beta, float *yd);
// dy (N, out) -> dx (N, in) += dy W. 0 / -1 OOM
int peft_linear_kernel_dx(const float *dy, const peft_tensor *w, int w_in_out, int64_t N,
                          int64_t in, int64_t outf, float *dx);

// stored elements [start, start + n) of w (any dtype) -> dst (n) f32, in the pool's threads
// (each element converted on its own: the same bytes for any thread count)
void peft_linear_tile_to_f32(const peft_tensor *w, int64_t start, int64_t n, float *dst);

#endif
