/* peft/tensor.h — the tensor struct shared by the host (libpeft) and tuner plugins.
 *
 * Part of the plugin ABI: this struct only ever grows at the end. Plugins read fields
 * directly; they create and free tensors only through the host API table (peft/plugin.h).
 *
 * Layout: row-major, contiguous. `data` holds `numel` elements of `dtype`. Everything that is
 * computed (activations, adapter weights, gradients) is PEFT_DTYPE_F32; only frozen base
 * weights may be PEFT_DTYPE_BF16 / PEFT_DTYPE_F16 or quantized (PEFT_DTYPE_INT8 / _NF4 /
 * _NF4_F32, whose `data` is the packed layout of peft/quant.h), converted to f32 at the kernel.
 * Plugins read any of them with the host's tensor_to_f32.
 */
#ifndef PEFT_TENSOR_H
#define PEFT_TENSOR_H

#include <stdint.h>
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/* dtype codes (plain integers, never enums, in ABI structs) */
#define PEFT_DTYPE_F32  0
#define PEFT_DTYPE_F16  1
#define PEFT_DTYPE_BF16 2
#define PEFT_DTYPE_I32  3 /* token ids, labels, masks */
/* quantized frozen weights (peft/quant.h: layouts; kernels dequantize tiles as they go) */
#define PEFT_DTYPE_INT8    4 /* int8, per-row absmax (bitsandbytes LLM.int8 weights) */
#define PEFT_DTYPE_NF4     5 /* 4-bit NormalFloat, blocks of 64, absmax double-quantized */
#define PEFT_DTYPE_NF4_F32 6 /* 4-bit NormalFloat, blocks of 64, f32 absmax (no double quant) */

#define PEFT_MAX_DIMS 4

/* flags */
#define PEFT_T_OWNS_DATA 0x1u /* data was malloc'd for this tensor and is freed with it */
#define PEFT_T_OWNS_GRAD 0x2u /* grad was malloc'd (persistent parameter gradient) */
#define PEFT_T_ARENA     0x4u /* tensor and data live in a graph arena: never free them */
#define PEFT_T_PARAM     0x8u /* a parameter: its grad persists across steps (not in the arena) */
/* An arena f32 tensor handed to its only consumer, which may write into its data and return it
 * as its own output: nobody reads the data afterwards (its producer's backward does not). The
 * host sets it on a linear site's base output for the first adapter of the chain only, and
 * clears it when that adapter returns; a plugin that uses it keeps its backward right when its
 * output is its input (the gradient passes through already). Hosts that never set it are fine:
 * the plugin then writes a new tensor. */
#define PEFT_T_INPLACE   0x10u

typedef struct peft_tensor {
    int32_t dtype;                 /* PEFT_DTYPE_* */
    int32_t ndim;                  /* 0..PEFT_MAX_DIMS (0 = scalar, numel 1) */
    int64_t shape[PEFT_MAX_DIMS];  /* unused dims are 1 */
    int64_t numel;
    void *data;                    /* numel elements of dtype */
    float *grad;                   /* f32, numel elements; NULL until a backward writes it */
    int32_t requires_grad;         /* 1: backward produces a gradient for this tensor */
    uint32_t flags;                /* PEFT_T_* */
} peft_tensor;

static inline float *peft_f32(const peft_tensor *t) { return (float *)t->data; }

#ifdef __cplusplus
}
#endif
#endif
