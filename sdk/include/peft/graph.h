/* graph.h — the per-step arena, the autograd tape, and the seeded RNG.
 *
 * A peft_graph is one forward (and optional backward) step. Every temporary tensor of the
 * step is carved out of the graph's arena and released all at once by peft_graph_reset().
 * While the graph records (peft_graph_set_recording), each op that has an input requiring grad
 * pushes a backward node on the tape; peft_graph_backward() walks the tape in reverse (DESIGN.md 2). An op skips the
 * gradient of an input that does not require one (no buffer, no GEMM).
 *
 * Parameters (PEFT_T_PARAM) keep a persistent gradient buffer (malloc'd, PEFT_T_OWNS_GRAD)
 * that backward accumulates into; zero it with peft_tensor_zero_grad() between steps.
 * Thread safety: a graph belongs to one thread.
 */
#ifndef PEFT_GRAPH_H
#define PEFT_GRAPH_H

#include "peft/export.h"

#include <stddef.h>
#include <stdint.h>
#include "peft/plugin.h"
#include "peft/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- RNG: xoshiro256** seeded by splitmix64; normal by Box-Muller. ---- */
struct peft_rng {
    uint64_t s[4];
    int has_spare;
    double spare;
};
PEFT_API void peft_rng_seed(peft_rng *r, uint64_t seed);
PEFT_API uint64_t peft_rng_next(peft_rng *r);
PEFT_API double peft_rng_uniform(peft_rng *r); /* [0,1) */
PEFT_API double peft_rng_normal(peft_rng *r);  /* N(0,1) */

/* ---- persistent tensors (caller owns; free with peft_tensor_free) ---- */
/* zeroed, dtype f32 or i32; NULL on allocation failure */
PEFT_API peft_tensor *peft_tensor_new(int32_t dtype, int ndim, const int64_t *shape);
/* borrowed data (e.g. an mmap'd safetensors range); the tensor never frees data */
PEFT_API peft_tensor *peft_tensor_wrap(int32_t dtype, int ndim, const int64_t *shape, void *data);
PEFT_API void peft_tensor_free(peft_tensor *t); /* frees owned data and grad; NULL ok */
PEFT_API size_t peft_dtype_size(int32_t dtype);
PEFT_API int64_t peft_shape_numel(int ndim, const int64_t *shape);
/* converts f32/f16/bf16 data to f32 (n elements) */
PEFT_API void peft_convert_to_f32(int32_t dtype, const void *src, float *dst, int64_t n);
/* the whole tensor as f32, any storage dtype (bf16, f16, quantized: peft/quant.h) */
PEFT_API void peft_tensor_to_f32(const peft_tensor *t, float *out);
/* ensure t has a persistent zeroed grad buffer (params); returns it or NULL on OOM */
PEFT_API float *peft_tensor_ensure_grad(peft_tensor *t);
PEFT_API void peft_tensor_zero_grad(peft_tensor *t);
/* turns a frozen (maybe bf16/f16/borrowed) tensor into an owned, writable f32 one in place.
 * Returns 0, or -1 on OOM. The previous data pointer is returned in *old_data (borrowed or
 * owned per *old_owned) so that the caller can restore it bit-exactly. */
PEFT_API int peft_tensor_make_f32_owned(peft_tensor *t, void **old_data, int32_t *old_dtype,
                                        int *old_owned);

/* ---- arena ---- */
typedef struct peft_arena peft_arena;
PEFT_API peft_arena *peft_arena_new(size_t chunk_bytes);
PEFT_API void *peft_arena_alloc(peft_arena *a, size_t bytes); /* 64-byte aligned, NOT zeroed */
PEFT_API void peft_arena_reset(peft_arena *a);                /* keeps the memory for reuse */
PEFT_API void peft_arena_free(peft_arena *a);
PEFT_API size_t peft_arena_peak(const peft_arena *a);         /* high-water mark in bytes */
/* a position in the arena; rewinding to it frees everything allocated after it at once */
typedef struct peft_arena_mark {
    void *chunk;
    size_t used, total;
} peft_arena_mark;
PEFT_API peft_arena_mark peft_arena_get_mark(const peft_arena *a);
PEFT_API void peft_arena_rewind(peft_arena *a, peft_arena_mark m);
/* 1 when p lies in memory handed out after the mark */
PEFT_API int peft_arena_after_mark(const peft_arena *a, peft_arena_mark m, const void *p);

/* ---- graph ----
 * peft_graph is opaque (its fields are the core's: core/tensor/graph_internal.h); programs use
 * the calls below. */
PEFT_API peft_graph *peft_graph_new(peft_rng *rng); /* recording = 0, training = 0 */
PEFT_API void peft_graph_free(peft_graph *g);
PEFT_API void peft_graph_reset(peft_graph *g); /* drops the tape, every arena tensor, the error */
/* Recording: 1 makes ops push their backward on the tape (set it before a forward that
 * peft_graph_backward will follow; generation with a KV cache needs 0). Training: 1 turns
 * dropout on (peft_model_forward sets it from peft_model_train). Programs use these rather
 * than the struct's fields, which are not part of the API. */
PEFT_API void peft_graph_set_recording(peft_graph *g, int on);
PEFT_API int peft_graph_recording(const peft_graph *g);
PEFT_API void peft_graph_set_training(peft_graph *g, int on);
PEFT_API int peft_graph_training(const peft_graph *g);
/* backward nodes recorded so far in this step, and the step arena's high-water mark in bytes */
PEFT_API size_t peft_graph_tape_len(const peft_graph *g);
PEFT_API size_t peft_graph_peak_bytes(const peft_graph *g);

/* arena tensors: f32 zeroed (peft_graph_tensor) or uninitialised (peft_graph_tensor_raw) */
PEFT_API peft_tensor *peft_graph_tensor(peft_graph *g, int ndim, const int64_t *shape);
PEFT_API peft_tensor *peft_graph_tensor_raw(peft_graph *g, int32_t dtype, int ndim, const int64_t *shape);
/* returns zeroed ctx memory for fn, or NULL if not recording */
PEFT_API void *peft_tape_push(peft_graph *g, peft_backward_fn fn, size_t ctx_bytes);
/* declares the output of the node just pushed: once that node's backward has run, nobody
 * needs out's gradient any more and its buffer is reused (keeps backward memory at the live
 * set instead of every activation's gradient) */
PEFT_API void peft_tape_output(peft_graph *g, peft_tensor *out);
/* gradient buffer of t: persistent for params, arena (zeroed on first use) otherwise;
 * NULL if !t->requires_grad */
PEFT_API float *peft_grad_of(peft_graph *g, peft_tensor *t);
/* The step's sticky error (SQLite's mallocFailed idea): the first failure inside a step — the
 * arena or the tape out of memory (PEFT_ENOMEM: an op then returns NULL, or a backward fn got no
 * gradient buffer), an op refusing its input, a plugin's own failure (host->graph_set_error,
 * PEFT_EPLUGIN), a plugin forward returning NULL (named by the host) — stays on the graph until
 * peft_graph_reset; later ones are ignored. peft_model_forward and peft_graph_backward return
 * its code, the message going on the model's context. */
PEFT_API void peft_graph_set_error(peft_graph *g, const char *msg); /* code PEFT_EPLUGIN */
/* the same with a code and a printf-style message; returns code */
PEFT_API int peft_graph_fail(peft_graph *g, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
PEFT_API const char *peft_graph_error(const peft_graph *g); /* NULL when none was set */
PEFT_API int peft_graph_errcode(const peft_graph *g);       /* PEFT_OK when none was set */
/* seeds d(loss)/d(loss) = 1 (loss: a scalar that requires grad, from a recorded forward) and
 * walks the tape in reverse. PEFT_OK, or the graph's error code (set before or during backward;
 * PEFT_EINVAL for a loss that cannot be differentiated) with peft_graph_error(g) saying why: a
 * gradient that could not be computed is never dropped silently. After a failure the
 * parameters' gradients are incomplete: zero them before the next step. */
PEFT_API int peft_graph_backward(peft_graph *g, peft_tensor *loss);

/* The two ops an application needs to build its own objective from model outputs (the
 * architectures' ops are internal to the core; a plugin's come through its host table). Both
 * return a new arena tensor of g (borrowed: valid until peft_graph_reset), recorded on the tape
 * when g records and an input requires grad; NULL with the graph's error set (PEFT_EINVAL on a
 * size mismatch or a non-f32 input, PEFT_ENOMEM). */
/* a, b (same numel, f32) -> a + b, shaped as a */
PEFT_API peft_tensor *peft_graph_add(peft_graph *g, peft_tensor *a, peft_tensor *b);
/* the mean squared error of x (f32) and target (x->numel floats, borrowed) -> a scalar */
PEFT_API peft_tensor *peft_graph_mse(peft_graph *g, peft_tensor *x, const float *target);

/* ---- gradient checkpointing (core/tensor/checkpoint.c) ----
 * A block y = fn(g, ud, x), y shaped like x (a transformer layer). While recording, its
 * activations are dropped once y is computed and recomputed in backward, with the RNG state
 * the forward had (the same dropout masks), so the gradients equal those of the plain run; the
 * step then holds one block's activations at a time. ud (ud_bytes) is copied into the arena;
 * x must be the block's only differentiable arena input (parameters may be any number;
 * peft_checkpoint_ex takes more).
 * Without recording it is plain fn. NULL when fn fails or gives a differently shaped y. */
typedef peft_tensor *(*peft_block_fn)(peft_graph *g, void *ud, peft_tensor *x);
PEFT_API peft_tensor *peft_checkpoint(peft_graph *g, peft_block_fn fn, const void *ud, size_t ud_bytes,
                             peft_tensor *x);
/* peft_checkpoint for a block with more differentiable arena inputs than x (a decoder layer's
 * encoder states, a position bias from a trainable table): extra (n_extra tensors, borrowed,
 * created before this call and alive until backward; the list is copied) get their gradients
 * from the recompute. fn reads them through ud. */
PEFT_API peft_tensor *peft_checkpoint_ex(peft_graph *g, peft_block_fn fn, const void *ud,
                                         size_t ud_bytes, peft_tensor *x,
                                         peft_tensor *const *extra, int n_extra);

#ifdef __cplusplus
}
#endif
#endif
