/* dtype.h — f32 to bf16 / f16 conversion (round to nearest even), for saving merged models and
 * cast_mixed_precision_params. The other direction is peft_convert_to_f32 (graph.h). */
#ifndef PEFT_DTYPE_H
#define PEFT_DTYPE_H

#include "peft/export.h"

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* src (n f32) -> dst (n elements of dtype: PEFT_DTYPE_F32, _BF16 or _F16). 0, -1 bad dtype */
PEFT_API int peft_convert_from_f32(int32_t dtype, const float *src, void *dst, int64_t n);
/* "F32" / "BF16" / "F16" -> PEFT_DTYPE_*, or -1 */
PEFT_API int32_t peft_dtype_from_name(const char *name);

#ifdef __cplusplus
}
#endif
#endif
