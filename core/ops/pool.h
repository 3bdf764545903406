/* pool.h — the kernels' threads (core/ops/ only): elementwise, normalisation and loss kernels
 * split their rows over as many threads as OpenBLAS uses for the GEMMs (openblas_get_num_threads,
 * i.e. OPENBLAS_NUM_THREADS or the cores), so that no core idles between two GEMMs. The workers
 * are started on first use and park (after a short spin) between calls. */
#ifndef PEFT_CORE_OPS_POOL_H
#define PEFT_CORE_OPS_POOL_H

#include <stddef.h>
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

/* elementwise kernels over slices of n items in the pool (ELEM grain: ~16k items a slice), the
 * same slice pointers offset by lo: each item depends on its own inputs only, so the result is
 * the same for any thread count.
 *   ops_map1: k(x + lo, y + lo, hi - lo)            e.g. y = f(x), or y += x
 *   ops_map2: k(a + lo, b + lo, y + lo, hi - lo)    e.g. y = a + b, or dx += dy f'(x) */
#define OPS_ELEM_GRAIN 16384
typedef void (*ops_map1_fn)(const float *x, float *y, int64_t n);
typedef void (*ops_map2_fn)(const float *a, const float *b, float *y, int64_t n);
__attribute__((visibility("hidden"))) void ops_map1(ops_map1_fn k, const float *x, float *y,
                                                    int64_t n);
__attribute__((visibility("hidden"))) void ops_map2(ops_map2_fn k, const float *a, const float *b,
                                                    float *y, int64_t n);

/* rows per slice for row kernels over rows of C items: about 16k items a slice */
#define OPS_ROW_GRAIN(C) ((C) >= 16384 ? 1 : 16384 / (C))
/* columns per slice for column reductions over N rows (dw of a norm: each column summed over
 * the rows in order, so any split gives the same bytes): about 16k items a slice */
#define OPS_COL_GRAIN(N) ((N) >= 1024 ? 16 : 16384 / ((N) > 0 ? (N) : 1))

/* the pool's thread count fixed at t whatever OpenBLAS uses (0: follow OpenBLAS again); for the
 * tests that hold the GEMMs on one thread and vary the pool's */
__attribute__((visibility("hidden"))) void ops_pool_set_threads(int t);

/* a per-thread scratch buffer of at least n floats, kept (and grown) across calls so that a
 * step's temporaries are not faulted in again every step; freed when the thread exits. One
 * buffer per slot; NULL when out of memory. */
enum {
    OPS_SCRATCH_TILE,    /* a weight tile widened to f32 (linear.c) */
    OPS_SCRATCH_LOGITS,  /* spare: a chunk of logits */
    OPS_SCRATCH_ATTN_DS, /* attention backward: dP / dS of a group of heads */
    OPS_SCRATCH_ATTN_R,  /* attention backward: the soft-capping scores of a head */
    OPS_SCRATCH_ATTN_P,  /* attention backward: recomputed probabilities of a group */
    OPS_SCRATCH_SLOTS
};
__attribute__((visibility("hidden"))) float *ops_scratch(int slot, size_t n);

/* the number of threads ops_parallel uses at most (>= 1) */
__attribute__((visibility("hidden"))) int ops_threads(void);

#endif
