/* pool.h — the kernels' threads (core/ops/ only): elementwise, normalisation and loss kernels
 * split their rows over as many threads as OpenBLAS uses for the GEMMs (openblas_get_num_threads,
 * i.e. OPENBLAS_NUM_THREADS or the cores), so that no core idles between two GEMMs. The workers
 * are started on first use and park (after a short spin) between calls. */
#ifndef PEFT_CORE_OPS_POOL_H
#define PEFT_CORE_OPS_POOL_H

#include <stdint.h>

/* fn(ctx, lo, hi) over [lo, hi) slices of [0, n): slices are contiguous, at least `grain`
 * items each, in as many threads as pay (1 when n < 2 grain, or when another thread is using
 * the pool: then the caller runs it all). Returns when every slice is done. A kernel whose
 * result must not depend on the thread count computes each item independently of the slice. */
typedef void (*ops_range_fn)(void *ctx, int64_t lo, int64_t hi);
__attribute__((visibility("hidden"))) void ops_parallel(int64_t n, int64_t grain, ops_range_fn fn,
                                                        void *ctx);

/* ops_parallel on at most `threads` threads */
__attribute__((visibility("hidden"))) void ops_parallel_n(int threads, int64_t n, int64_t grain,
                                                          ops_range_fn fn, void *ctx);

/* the number of threads ops_parallel uses at most (>= 1) */
__attribute__((visibility("hidden"))) int ops_threads(void);

#endif
