/* quant.h — frozen weights in their storage dtype: bf16 / f16 as stored, or quantized as
 * bitsandbytes does for QLoRA, read back to f32 one range (tile) at a time.
 *
 * Packed layouts (one buffer, `data` of the tensor; numel = product of the logical shape):
 *   PEFT_DTYPE_INT8 (2-D (R, C)):  float absmax[R]; int8 code[R*C]
 *       w = code * absmax[row] / 127, code = round(w * 127 / absmax[row]) (Linear8bitLt's CB/SCB)
 *   PEFT_DTYPE_NF4 (any shape, flattened, blocks of 64; nb = ceil(numel/64), nb2 = ceil(nb/256)):
 *       float offset; float absmax2[nb2]; uint8 qabsmax[nb]; uint8 code[ceil(numel/2)]
 *       two 4-bit codes a byte, the first element in the high nibble; w = NF4[code] * absmax[b],
 *       absmax[b] = DYN8[qabsmax[b]] * absmax2[b/256] + offset (bitsandbytes' double
 *       quantization: the block absmaxes minus their mean, 8-bit dynamic map, blocks of 256)
 *   PEFT_DTYPE_NF4_F32: float absmax[nb]; uint8 code[ceil(numel/2)] (no double quantization)
 */
#ifndef PEFT_QUANT_H
#define PEFT_QUANT_H

#include "peft/export.h"

#include <stdint.h>
#include <stddef.h>
#include "peft/tensor.h"

#ifdef __cplusplus
extern "C" {
#endif

#define PEFT_NF4_BLOCK 64
#define PEFT_NF4_ABSMAX_BLOCK 256

/* 1 for PEFT_DTYPE_INT8 / _NF4 / _NF4_F32 */
PEFT_API int peft_dtype_is_quantized(int32_t dtype);
/* bytes of data a tensor of this dtype and logical shape holds (any dtype); 0 when invalid
 * (INT8 needs 2 dims) */
PEFT_API size_t peft_dtype_storage_bytes(int32_t dtype, int ndim, const int64_t *shape);
/* "int8" / "nf4" / "nf4-nodq" / "bf16" ... for messages */
PEFT_API const char *peft_dtype_label(int32_t dtype);

/* elements [start, start + n) of t's flattened data as f32 (any storage dtype) */
PEFT_API void peft_tensor_range_to_f32(const peft_tensor *t, int64_t start, int64_t n, float *dst);

/* what quantizing a tensor lost: ||dequant - src|| / ||src|| (0 for a zero tensor), the largest
 * |dequant - src| over its elements, and ||src||^2 */
typedef struct peft_quant_stats {
    double rel_err, max_abs_err, sq_norm;
} peft_quant_stats;

/* peft_tensor_quantize that also fills *st (optional) */
PEFT_API peft_tensor *peft_tensor_quantize_stats(const peft_tensor *src, int32_t qdtype,
                                                 peft_quant_stats *st);

/* A new owned tensor holding src (f32 / bf16 / f16, any shape; 2-D for INT8) quantized to
 * qdtype, frozen. *rel_err (optional): ||dequant - src|| / ||src|| (0 for a zero tensor).
 * NULL on a bad dtype/shape or out of memory. */
PEFT_API peft_tensor *peft_tensor_quantize(const peft_tensor *src, int32_t qdtype, double *rel_err);
/* src values (numel f32, t's shape and dtype) quantized into t's existing buffer (merging into
 * a quantized base re-quantizes in place). 0, or -1 when t is not quantized. */
PEFT_API int peft_requantize_from_f32(peft_tensor *t, const float *src);

/* the 16 NF4 values and bitsandbytes' signed 8-bit dynamic map (256 values, ascending) */
PEFT_API const float *peft_nf4_table(void);
PEFT_API const float *peft_dyn8_table(void);

#ifdef __cplusplus
}
#endif
#endif
